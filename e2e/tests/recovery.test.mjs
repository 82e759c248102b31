// Forgot password (which also unlocks a locked account with the card ID and a code) and forgot
// User ID, through the real pages, reading each one-time code from the demo outbox the way an
// operator of the demo would.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import { runAxe, describeViolations } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';

/** The newest security code sent to `to` after `after` messages, waiting for delivery. */
async function codeFor(server, to, after) {
  const file = path.join(server.dir, 'portcullis-data', 'outbox.jsonl');
  for (let i = 0; i < 200; i++) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const messages = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).slice(after);
    const m = messages.filter((x) => x.to === to && /security code/.test(x.subject)).at(-1);
    if (m) return m.body.match(/\b(\d{6})\b/)[1];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no code arrived for ${to}`);
}

async function outboxCount(server) {
  const file = path.join(server.dir, 'portcullis-data', 'outbox.jsonl');
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).length;
}

async function noSeriousAxe(page, where) {
  const { blocking: violations } = await runAxe(page);
  assert.deepEqual(violations, [], `${where}: ${describeViolations(violations)}`);
}

for (const vp of VIEWPORTS) {
  test(`f. forgot password unlocks a locked account and sets a new password [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 60 });
    const { page } = s;
    const userId = await registerViaApi(s.server.url, CARDS.ann, uniqueUserId(`rec-${vp.name}`));
    await page.goto(s.url('/'));
    for (let i = 0; i < 6; i++) await signIn(page, userId, `Wrong-Password-${i}!`);
    const locked = await signIn(page, userId, PASSWORD);
    assert.equal(locked.status(), 423);

    // The lock page leads to self-service unlock.
    await page.getByRole('link', { name: 'Unlock with my card' }).click();
    assert.equal(await heading(page), 'Forgot your password?');
    await s.shot('f-start');
    await page.locator('#user_id').fill(userId);
    await page.getByRole('button', { name: 'Continue' }).click();
    assert.equal(await heading(page), 'Confirm it is you');
    await noSeriousAxe(page, 'recover verify');
    await s.shot('f-verify');

    // A wrong card ID first: told plainly, with the tries left.
    await page.locator('#card_id').fill('9999');
    await page.getByRole('button', { name: 'Send me a code' }).first().click();
    assert.match(await page.getByRole('alert').innerText(), /do not match our records/);
    const before = await outboxCount(s.server);
    await page.locator('#card_id').fill('1234');
    await page.getByRole('button', { name: 'Send me a code' }).first().click();
    assert.equal(await heading(page), 'Enter your code');
    assert.match(await page.locator('main').innerText(), /a•••@example\.com/);
    await noSeriousAxe(page, 'recover code');
    await s.shot('f-code');

    const code = await codeFor(s.server, 'ann@example.com', before);
    assert.equal(await page.locator('#code').getAttribute('autocomplete'), 'one-time-code');
    await page.locator('#code').fill(code);
    await page.getByRole('button', { name: 'Continue' }).click();
    assert.equal(await heading(page), 'Choose a new password');
    assert.match(await page.getByRole('status').first().innerText(), /unlocked/);
    // The reset page has the live checklist and the Show password button too. It does not know
    // the User ID, so that rule, like the common-password one, is checked when submitted.
    await page.locator('#new_password').pressSequentially('quiet');
    const rules = page.locator('#new-password-rules li');
    assert.deepEqual(
      await rules.evaluateAll((li) => li.map((x) => `${x.dataset.check}=${x.dataset.state}`)),
      ['min-length=unmet', 'max-length=met', 'letter=met', 'capital=unmet', 'symbol=unmet', 'on-submit=later', 'on-submit=later'],
    );
    assert.match(await rules.nth(5).innerText(), /User ID \(we check this when you submit\)/);
    assert.equal(await page.locator('button.reveal[aria-controls=new_password]').innerText(), 'Show password');
    await noSeriousAxe(page, 'recover reset');
    await s.shot('f-reset');

    await page.locator('#new_password').fill('Quiet-Harbour-77!');
    await page.getByRole('button', { name: 'Change password' }).click();
    assert.equal(await heading(page), 'Your password is changed');
    await s.shot('f-done');

    await page.getByRole('link', { name: 'Sign in' }).click();
    const r = await signIn(page, userId, 'Quiet-Harbour-77!');
    assert.equal(r.status(), 200);
    assert.match(await heading(page), /^Welcome/);
  });

  test(`g. forgot User ID by email [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 70 });
    const { page } = s;
    const userId = await registerViaApi(s.server.url, CARDS.ben, uniqueUserId(`uid-${vp.name}`));
    await page.goto(s.url('/'));
    await page.getByRole('link', { name: 'Forgot your User ID?' }).click();
    assert.equal(await heading(page), 'Forgot your User ID?');
    await noSeriousAxe(page, 'recover user id');
    await s.shot('g-start');
    const before = await outboxCount(s.server);
    await page.locator('#email').fill('ben@example.com');
    await page.getByRole('button', { name: 'Send me a code' }).click();
    assert.equal(await heading(page), 'Enter your code');
    await s.shot('g-code');
    const code = await codeFor(s.server, 'ben@example.com', before);
    await page.locator('#code').fill(code);
    await page.getByRole('button', { name: 'Continue' }).click();
    assert.equal(await heading(page), 'Your User ID');
    assert.match(await page.locator('main').innerText(), new RegExp(userId.replace(/[.]/g, '\\.')));
    await noSeriousAxe(page, 'user id shown');
    await s.shot('g-done');
  });
}
