// (e) Every response the browser receives from the server carries a Content-Security-Policy
// with frame-ancestors 'none' (pages, redirects, the stylesheet, errors, the favicon's 404),
// and no page meets a CSP violation: nothing the server sends needs what its policy forbids.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { ANSWERS, CARDS, navigate, PASSWORD, signIn, uniqueUserId } from '../lib/flows.mjs';

const isCspMessage = (m) => /Content Security Policy/i.test(m.text);

for (const vp of VIEWPORTS) {
  test(`e. CSP with frame-ancestors 'none' on every response, no CSP violations [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 80 });
    const { page, seen } = s;
    const userId = uniqueUserId(`csp-${vp.name}`);

    // The whole journey, through the pages.
    await page.goto(s.url('/'));
    await s.shot('e-signin');
    await navigate(page, () => page.getByRole('link', { name: 'Create an online account' }).click());
    await page.locator('#number').fill(CARDS.ann.number);
    await page.locator('#verification').fill(CARDS.ann.verification);
    await s.shot('e-register-card');
    await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    await page.locator('#user_id').fill(userId);
    await page.locator('#password').fill(PASSWORD);
    for (const [i, a] of ANSWERS.entries()) {
      await page.locator(`#question_${i}`).selectOption(a.question);
      await page.locator(`#answer_${i}`).fill(a.answer);
    }
    await s.shot('e-register-account');
    let r = await navigate(page, () => page.getByRole('button', { name: 'Create account' }).click());
    assert.equal(r.status(), 201);
    await s.shot('e-register-done');
    await navigate(page, () => page.getByRole('link', { name: 'Sign in', exact: true }).click());
    r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 200);
    await s.shot('e-account');
    await navigate(page, () => page.getByRole('link', { name: 'Security', exact: true }).click());
    await s.shot('e-security');
    await navigate(page, () => page.getByRole('button', { name: 'Sign out' }).click());
    await s.shot('e-signed-out');
    for (let i = 1; i <= 6; i++) await signIn(page, userId, `Wrong-Password-${i}!`);
    await s.shot('e-wrong-password');
    r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 423);
    await s.shot('e-locked');
    await page.goto(s.url('/no-such-page'));
    await s.shot('e-not-found');
    // A page only a signed-in browser may see: the answer is a redirect to sign in.
    await page.goto(s.url('/security'));

    const ours = seen.responses.filter((x) => new URL(x.url).origin === s.server.origin);
    const kinds = new Set(ours.map((x) => `${x.method} ${x.status}`));
    t.diagnostic(`${ours.length} responses from the server: ${[...kinds].sort().join(', ')}`);
    assert.ok(ours.some((x) => x.url.endsWith('/static/style.css')), 'the stylesheet was among them');
    for (const asset of ['/static/theme.css', '/static/password.js', '/static/passkeys.js']) {
      assert.ok(ours.some((x) => x.url.endsWith(asset) && x.status === 200), `${asset} was among them`);
    }
    assert.ok(ours.some((x) => x.status >= 300 && x.status < 400), 'redirects were among them');
    assert.ok(ours.some((x) => x.status === 404), 'a not-found answer was among them');
    const missing = ours.filter((x) => !/frame-ancestors 'none'/.test(x.csp ?? ''));
    assert.deepEqual(
      missing.map((x) => `${x.method} ${x.status} ${x.url} csp=${x.csp}`),
      [],
      'responses without frame-ancestors \'none\'',
    );

    const others = seen.console.filter((m) => m.type === 'error' && !isCspMessage(m));
    if (others.length) {
      t.diagnostic(`other console errors (not CSP):\n${others.map((m) => `${m.page}: ${m.text}`).join('\n')}`);
    }
    assert.deepEqual(seen.console.filter(isCspMessage), [], 'CSP messages in the console');
    assert.deepEqual(seen.violations, [], 'securitypolicyviolation events');
    assert.deepEqual(seen.pageErrors, [], 'uncaught page errors');

    // The canary: an inline script, which the policy forbids, must show up in both witnesses,
    // so an empty list above means "no violations", not "not listening".
    await page.evaluate(() => {
      const el = document.createElement('script');
      el.textContent = 'window.__inlineRan = true';
      document.body.append(el);
    });
    await page.waitForFunction(() => true);
    for (let i = 0; i < 50 && (seen.violations.length === 0 || !seen.console.some(isCspMessage)); i++) {
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(await page.evaluate(() => window.__inlineRan ?? false), false, 'the inline script was blocked');
    assert.ok(seen.console.some(isCspMessage), 'the console reported the canary violation');
    assert.equal(seen.violations.length, 1, 'the securitypolicyviolation event reported the canary');
    assert.equal(seen.violations[0].directive, 'script-src-elem');
  });
}
