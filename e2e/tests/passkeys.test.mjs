// (i) Passkeys end to end through the real pages, with Chromium's virtual authenticator
// (DevTools WebAuthn domain): add a passkey on /security/factors, sign in with it alone,
// use it as the second step after a password, rename it and remove it. Passkeys need a host
// name, so this test uses http://localhost:PORT (a secure context) rather than 127.0.0.1.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, navigate, pathOf, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';

async function axeClean(page, name) {
  const result = await runAxe(page);
  assert.equal(result.blocking.length, 0, `${name}:\n${describeViolations(result.blocking)}`);
}

for (const vp of VIEWPORTS) {
  test(`i. passkeys: add one, sign in with it alone and as a second step, rename, remove [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 130 });
    const { page, context } = s;
    const base = s.url('').replace('127.0.0.1', 'localhost');
    const userId = uniqueUserId(`pk-${vp.name}`);
    await registerViaApi(s.url(''), CARDS.ann, userId);

    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });

    await page.goto(`${base}/`);
    await signIn(page, userId, PASSWORD);
    assert.equal(pathOf(page), '/account');
    await page.goto(`${base}/security/factors`);
    const add = page.locator('form[data-passkey=register]');
    assert.equal(await add.isVisible(), true, 'the passkey form is shown where WebAuthn exists');
    await page.locator('#passkey-name').fill('Test phone');
    let r = await navigate(page, () => add.getByRole('button', { name: 'Add a passkey' }).click());
    assert.equal(r.status(), 200, await page.locator('main').innerText());
    assert.match(await page.locator('main').innerText(), /Your passkey is added/);
    assert.match(await page.locator('main').innerText(), /Test phone/);
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'one credential on the authenticator');
    assert.equal(credentials[0].isResidentCredential, true);
    await axeClean(page, 'passkey added');
    await s.shot('i-passkey-added');

    // Sign out; sign in with the passkey alone (no User ID, no password).
    const nav = page.getByRole('navigation', { name: 'Account' });
    await navigate(page, () => nav.getByRole('button', { name: 'Sign out' }).click());
    const passkeyButton = page.getByRole('button', { name: 'Sign in with a passkey' });
    assert.equal(await passkeyButton.isVisible(), true);
    await s.shot('i-signin-with-passkey');
    r = await navigate(page, () => passkeyButton.click());
    assert.equal(pathOf(page), '/account', await page.locator('main').innerText());
    assert.equal(await heading(page), `Welcome, ${CARDS.ann.holder}`);

    // Sign out; a password sign-in now asks for the passkey as the second step.
    await navigate(page, () => nav.getByRole('button', { name: 'Sign out' }).click());
    r = await signIn(page, userId, PASSWORD);
    assert.equal(await heading(page), 'Confirm it is you');
    await axeClean(page, 'second step with a passkey');
    await s.shot('i-mfa-passkey');
    r = await navigate(page, () => page.getByRole('button', { name: 'Use a passkey' }).click());
    assert.equal(pathOf(page), '/account', await page.locator('main').innerText());

    // Rename, then remove it (just signed in, so no password is asked again).
    await page.goto(`${base}/security/factors`);
    const item = page.locator('li', { hasText: 'Test phone' });
    await item.locator('input[name=name]').fill('Old phone');
    r = await navigate(page, () => item.getByRole('button', { name: /Rename/ }).click());
    assert.match(await page.locator('main').innerText(), /Old phone/);
    r = await navigate(page, () => page.locator('li', { hasText: 'Old phone' }).getByRole('button', { name: /Remove/ }).click());
    assert.equal(r.status(), 200);
    assert.doesNotMatch(await page.locator('section', { has: page.getByRole('heading', { name: 'Your second steps' }) }).innerText(), /Old phone/);
  });
}
