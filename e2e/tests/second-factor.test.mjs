// (h) Second-factor set-up through the pages: a person signs in, opens Security → Two-step
// sign-in, adds an authenticator app by its QR code and key (the code the app would show is
// computed here with Node's own HMAC-SHA-1, RFC 6238), makes recovery codes, signs out, and
// signs in again with the second step, trusting the device. axe runs on each new page.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, navigate, pathOf, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';
import { totp } from '../lib/totp.mjs';

async function axeClean(page, name) {
  const result = await runAxe(page);
  assert.equal(result.blocking.length, 0, `${name}:\n${describeViolations(result.blocking)}`);
}

for (const vp of VIEWPORTS) {
  test(`h. second factor: authenticator app, recovery codes, sign in with the second step [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 120 });
    const { page } = s;
    const userId = uniqueUserId(`mfa-${vp.name}`);
    await registerViaApi(s.url(''), CARDS.ann, userId);

    await page.goto(s.url('/'));
    await signIn(page, userId, PASSWORD);
    assert.equal(pathOf(page), '/account');
    const nav = page.getByRole('navigation', { name: 'Account' });
    await navigate(page, () => nav.getByRole('link', { name: 'Security', exact: true }).click());
    let r = await navigate(page, () => page.getByRole('link', { name: /Two-step sign-in/ }).click());
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), 'Two-step sign-in');
    await axeClean(page, 'two-step sign-in');
    await s.shot('h-factors');

    // Just signed in, so no password is asked again: add an authenticator app.
    r = await navigate(page, () => page.getByRole('button', { name: 'Add an authenticator app' }).click());
    assert.equal(r.status(), 200);
    assert.equal(await page.locator('.qr svg').count(), 1, 'a QR code drawn as SVG');
    const secret = (await page.locator('code.secret').innerText()).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await axeClean(page, 'authenticator set-up');
    await s.shot('h-totp-setup');
    await page.locator('#totp-code').fill(totp(secret, Date.now() / 1000));
    r = await navigate(page, () => page.getByRole('button', { name: 'Turn on' }).click());
    assert.equal(r.status(), 200, await page.locator('main').innerText());
    assert.match(await page.locator('main').innerText(), /Your authenticator app is on/);

    r = await navigate(page, () => page.getByRole('button', { name: 'Make new recovery codes' }).click());
    assert.equal(r.status(), 200);
    const codes = await page.locator('ul.codes code').allInnerTexts();
    assert.equal(codes.length, 10);
    await axeClean(page, 'recovery codes');
    await s.shot('h-recovery-codes');

    // Sign out, then in again: the second step is asked for.
    await navigate(page, () => nav.getByRole('button', { name: 'Sign out' }).click());
    r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), 'Confirm it is you');
    assert.equal(await page.locator('#code').getAttribute('autocomplete'), 'one-time-code');
    await axeClean(page, 'second step');
    await s.shot('h-mfa');
    // A wrong code: told so, with the tries left.
    await page.locator('#code').fill('000000');
    r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(r.status(), 400);
    assert.match(await page.locator('[role=alert]').innerText(), /not right.*4 more tries/);
    // A recovery code, trusting this device.
    await page.getByLabel('One of my recovery codes').check();
    await page.locator('#code').fill(codes[0]);
    await page.getByLabel(/Trust this device/).check();
    r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(pathOf(page), '/account');
    assert.equal(r.status(), 200);

    // The trusted device skips the second step next time and is listed.
    await navigate(page, () => nav.getByRole('button', { name: 'Sign out' }).click());
    await signIn(page, userId, PASSWORD);
    assert.equal(pathOf(page), '/account');
    await page.goto(s.url('/security/factors'));
    const trusted = page.locator('section', { has: page.getByRole('heading', { name: 'Trusted devices' }) });
    assert.equal(await trusted.locator('li').count(), 1);
    assert.match(await page.locator('main').innerText(), /You have 9 unused recovery codes/);
    await s.shot('h-trusted');
  });
}
