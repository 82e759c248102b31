// (d) axe-core on every page a person meets: sign in, both steps of /register (also with
// their error messages), the success page, the account home, security, signed out, a wrong
// password, the lock page, the demo outbox and the not-found page; each in the light and the
// dark colour scheme. Any violation of impact serious or critical fails the test; lesser ones
// are printed.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { ANSWERS, CARDS, heading, navigate, PASSWORD, signIn, uniqueUserId } from '../lib/flows.mjs';

for (const vp of VIEWPORTS) {
  test(`d. axe: no serious or critical violations on any page [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 55 });
    const { page } = s;
    const card = CARDS.ann;
    const userId = uniqueUserId(`axe-${vp.name}`);
    const blocking = [];
    const checked = [];
    const lesser = new Map(); // one line per rule and element, with the pages it was on

    // Checks the page as it is, in both colour schemes, with a screenshot of each.
    const check = async (name, expectedHeading) => {
      assert.equal(await heading(page), expectedHeading, `${name}: unexpected page`);
      const file = await s.shot(`d-${name}`);
      for (const scheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme: scheme });
        if (scheme === 'dark') await page.screenshot({ path: file.replace(/\.png$/, '-dark.png'), fullPage: true });
        const result = await runAxe(page);
        checked.push(`${name} (${scheme})`);
        for (const v of result.lesser) {
          for (const node of v.nodes) {
            const key = `[${v.impact}] ${v.id}: ${v.help} — ${node.target}`;
            if (!lesser.has(key)) lesser.set(key, []);
            lesser.get(key).push(`${name} (${scheme})`);
          }
        }
        if (result.blocking.length) blocking.push(`${name} (${scheme}):\n${describeViolations(result.blocking)}`);
      }
      await page.emulateMedia({ colorScheme: 'light' });
    };

    await page.goto(s.url('/'));
    await check('signin', 'Sign in');

    await page.goto(s.url('/register'));
    await check('register-card', 'Create an online account');
    let r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(r.status(), 400);
    await check('register-card-errors', 'Create an online account');

    await page.locator('#number').fill(card.number);
    await page.locator('#verification').fill(card.verification);
    r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(r.status(), 200);
    await check('register-account', 'Choose your sign-in details');

    // Step 2 with mistakes: a short password and no security questions.
    await page.locator('#user_id').fill(userId);
    await page.locator('#password').fill('short');
    r = await navigate(page, () => page.getByRole('button', { name: 'Create account' }).click());
    assert.equal(r.status(), 400);
    await check('register-account-errors', 'Choose your sign-in details');

    // The mistakes put right on the same form: the registration goes through.
    assert.equal(await page.locator('#user_id').inputValue(), userId, 'the User ID is kept after an error');
    await page.locator('#password').fill(PASSWORD);
    for (const [i, a] of ANSWERS.entries()) {
      await page.locator(`#question_${i}`).selectOption(a.question);
      await page.locator(`#answer_${i}`).fill(a.answer);
    }
    await page.locator('input[name=code_channel][value=email]').check();
    r = await navigate(page, () => page.getByRole('button', { name: 'Create account' }).click());
    assert.equal(r.status(), 201, await page.locator('main').innerText());
    await check('register-done', 'Your online account is ready');

    await page.goto(s.url('/'));
    await signIn(page, userId, PASSWORD);
    await check('account', `Welcome, ${CARDS.ann.holder}`);
    await page.goto(s.url('/security'));
    await check('security', 'Security');
    await page.goto(s.url('/demo/outbox'));
    await check('outbox', 'Demo outbox');
    await page.goto(s.url('/no-such-page'));
    await check('not-found', 'Page not found');
    await page.goto(s.url('/account'));
    await navigate(page, () => page.getByRole('button', { name: 'Sign out' }).click());
    await check('signed-out', 'Sign in');

    for (let i = 1; i <= 6; i++) {
      r = await signIn(page, userId, `Wrong-Password-${i}!`);
      assert.equal(r.status(), 401);
      if (i === 1) await check('wrong-password', 'Sign in');
    }
    r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 423);
    await check('locked', 'Your account is locked');

    for (const [finding, pages] of lesser) {
      t.diagnostic(`lesser axe finding ${finding}\n  on ${pages.length === checked.length ? 'every page' : pages.join(', ')}`);
    }
    t.diagnostic(`axe checked ${checked.length} page states: ${checked.join(', ')}`);
    assert.equal(blocking.length, 0, `serious or critical accessibility violations:\n${blocking.join('\n')}`);
  });
}
