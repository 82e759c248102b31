// (b) A wrong password gets the one generic answer, keeps the User ID and drops the password;
// after six wrong passwords the account locks, and only the correct password learns that.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, pathOf, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';

const LOCK_AFTER_FAILURES = 6;

for (const vp of VIEWPORTS) {
  test(`b. wrong password: generic error, User ID kept, password cleared; locked after ${LOCK_AFTER_FAILURES} [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 25 });
    const { page } = s;
    const userId = await registerViaApi(s.server.url, CARDS.ann, uniqueUserId(`lock-${vp.name}`));

    await page.goto(s.url('/'));
    await s.shot('b-signin');

    for (let attempt = 1; attempt <= LOCK_AFTER_FAILURES; attempt++) {
      const r = await signIn(page, userId, `Wrong-Password-${attempt}!`);
      assert.equal(r.status(), 401, `attempt ${attempt}`);
      assert.equal(pathOf(page), '/', `attempt ${attempt} stays on the sign-in page`);
      assert.equal(await heading(page), 'Sign in');
      const alert = page.getByRole('alert');
      assert.match(await alert.innerText(), /is not correct/, `attempt ${attempt}`);
      assert.doesNotMatch(await alert.innerText(), /lock/i, 'the error never hints at the lock');
      assert.equal(await page.locator('#user_id').inputValue(), userId, 'the User ID is kept');
      assert.equal(await page.locator('#password').inputValue(), '', 'the password is not sent back');
      assert.equal(
        await page.locator('#user_id').getAttribute('aria-describedby'),
        'form-error',
        'the User ID field points at the error',
      );
      const html = await page.content();
      assert.ok(!html.includes(`Wrong-Password-${attempt}!`), 'the wrong password appears nowhere in the page');
      if (attempt === 1) await s.shot('b-wrong-password');
    }

    // Locked now: the correct password learns of the lock (423)...
    let r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 423);
    assert.equal(await heading(page), 'Your account is locked');
    assert.match(await page.getByRole('alert').innerText(), /locked/);
    assert.match(await page.locator('main time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
    await s.shot('b-locked');

    // ...and a wrong one still gets only the generic error.
    await page.goto(s.url('/'));
    r = await signIn(page, userId, 'Still-Wrong-7!');
    assert.equal(r.status(), 401);
    assert.match(await page.getByRole('alert').innerText(), /is not correct/);

    // An unknown User ID gets exactly the same answer as a wrong password.
    r = await signIn(page, uniqueUserId('nobody'), PASSWORD);
    assert.equal(r.status(), 401);
    assert.match(await page.getByRole('alert').innerText(), /is not correct/);
    await s.shot('b-unknown-user');
  });
}
