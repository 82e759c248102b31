// (g) The security page's account changes in a real browser: changing the email address
// (password, then the code sent to the new address, read from the demo outbox) and linking
// and unlinking a card of the same holder, at phone and desktop sizes, with screenshots and
// axe (no serious or critical violation) on each step.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, navigate, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';

/** The newest security code sent to `to`, waiting for delivery. */
async function codeFor(server, to) {
  const file = path.join(server.dir, 'portcullis-data', 'outbox.jsonl');
  for (let i = 0; i < 200; i++) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const messages = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const m = messages.filter((x) => x.to === to && /security code/.test(x.subject)).at(-1);
    if (m) return m.body.match(/\b(\d{6})\b/)[1];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no code arrived for ${to}`);
}

/** Every message sent to `to` so far, waiting up to 10 s for at least one. */
async function messagesTo(server, to) {
  const file = path.join(server.dir, 'portcullis-data', 'outbox.jsonl');
  for (let i = 0; i < 200; i++) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const found = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((m) => m.to === to);
    if (found.length) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  return [];
}

async function noSeriousAxe(page, where) {
  const { blocking } = await runAxe(page);
  assert.deepEqual(blocking, [], `${where}: ${describeViolations(blocking)}`);
}

for (const vp of VIEWPORTS) {
  test(`g. security page: change the email address and link a card [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 90 });
    const { page } = s;
    const userId = await registerViaApi(s.server.url, CARDS.ann, uniqueUserId(`sec-${vp.name}`));
    await page.goto(s.url('/'));
    const r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 200, 'signed in, on the account home');
    await page.goto(s.url('/security'));
    assert.equal(await heading(page), 'Security');
    await noSeriousAxe(page, 'security');
    await s.shot('g-security');

    // The contact change: a wrong password first is told next to its field.
    const newEmail = `ann.${vp.name}@example.org`;
    await page.locator('#contact_value').fill(newEmail);
    await page.locator('#contact_password').fill('Not-My-Password-1!');
    let res = await navigate(page, () => page.getByRole('button', { name: 'Send a code to the new address' }).click());
    assert.equal(res.status(), 400);
    assert.match(await page.locator('main').innerText(), /That is not your current password/);
    await noSeriousAxe(page, 'security with a contact error');
    await s.shot('g-contact-error');

    await page.locator('#contact_value').fill(newEmail);
    await page.locator('#contact_password').fill(PASSWORD);
    res = await navigate(page, () => page.getByRole('button', { name: 'Send a code to the new address' }).click());
    assert.equal(res.status(), 200);
    assert.equal(await heading(page), 'Enter your code');
    await noSeriousAxe(page, 'contact code');
    await s.shot('g-contact-code');
    await page.locator('#code').fill(await codeFor(s.server, newEmail));
    res = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(res.status(), 200);
    assert.match(await page.locator('main').innerText(), /Your email address is changed/);
    const told = await messagesTo(s.server, 'ann@example.com');
    assert.ok(told.some((m) => /email address was changed/.test(m.subject)), 'the old address is told');
    await noSeriousAxe(page, 'security after the change');
    await s.shot('g-contact-done');

    // Linking Ann's second card, then unlinking it again.
    await page.locator('#card_number').fill(CARDS.annBlue.number);
    await page.locator('#card_verification').fill(CARDS.annBlue.verification);
    res = await navigate(page, () => page.getByRole('button', { name: 'Link card' }).click());
    assert.equal(res.status(), 200);
    assert.match(await page.locator('main').innerText(), /ending 4444 is now linked/);
    await noSeriousAxe(page, 'security with two cards');
    await s.shot('g-card-linked');
    res = await navigate(page, () => page.getByRole('button', { name: 'Unlink the card ending 4444' }).click());
    assert.equal(res.status(), 200);
    assert.match(await page.locator('main').innerText(), /The card is unlinked/);
    assert.equal(await page.getByRole('button', { name: /^Unlink/ }).count(), 0, 'the last card has no unlink button');
  });
}
