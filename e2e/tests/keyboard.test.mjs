// (c) Keyboard only: no clicks, no fills. Only Tab, Shift+Tab, Enter, Space, arrow keys and
// page.keyboard.type, as a person without a mouse would use the pages.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, navigate, pathOf, PASSWORD, registerViaApi, uniqueUserId } from '../lib/flows.mjs';
import { byId, byText, focused, tabTo } from '../lib/keyboard.mjs';

for (const vp of VIEWPORTS) {
  test(`c. keyboard only: sign in, account, security, sign out [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 35 });
    const { page } = s;
    const userId = await registerViaApi(s.server.url, CARDS.ann, uniqueUserId(`kb-${vp.name}`));

    await page.goto(s.url('/'));
    // The first Tab reaches the skip link, which must then be on screen.
    let f = await tabTo(page, 'the skip link', byText('a', 'Skip to content'), { max: 1 });
    const box = await page.locator('a.skip').boundingBox();
    assert.ok(box && box.x >= 0 && box.y >= 0 && box.x + box.width <= vp.viewport.width, `the focused skip link is on screen: ${JSON.stringify(box)}`);
    await s.shot('c-skip-link');
    // Enter follows it; the next Tab lands in the form, past the header and the demo note.
    await page.keyboard.press('Enter');
    f = await tabTo(page, 'the User ID field', byId('user_id'), { max: 1 });
    await page.keyboard.type(userId);
    await tabTo(page, 'the password field', byId('password'), { max: 1 });
    await page.keyboard.type(PASSWORD);
    // The next stop is the password's own Show password button (added by password.js).
    await tabTo(page, 'the Show password button', byText('button', 'Show password'), { max: 1 });
    f = await tabTo(page, 'the account type', byId('account_type'), { max: 1 });
    assert.equal(f.value, 'personal');
    // Arrow keys change a closed select on Linux; go down to the next type and back.
    await page.keyboard.press('ArrowDown');
    assert.notEqual((await focused(page)).value, 'personal', 'ArrowDown changes the account type');
    await page.keyboard.press('ArrowUp');
    assert.equal((await focused(page)).value, 'personal', 'ArrowUp changes it back');
    // Shift+Tab goes back to the password, which still holds what was typed.
    f = await tabTo(page, 'the password field again', byId('password'), { key: 'Shift+Tab', max: 2 });
    assert.equal(f.value, PASSWORD);
    await tabTo(page, 'the account type again', byId('account_type'), { max: 2 });
    await tabTo(page, 'the Remember my User ID box', (f) => f.name === 'remember', { max: 1 });
    await tabTo(page, 'the Sign in button', byText('button', 'Sign in'), { max: 1 });
    await s.shot('c-signin-filled');
    // Space presses the focused button.
    let r = await navigate(page, () => page.keyboard.press('Space'));
    assert.equal(pathOf(page), '/account');
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), `Welcome, ${CARDS.ann.holder}`);
    await s.shot('c-account');

    await tabTo(page, 'the Security link in the header', byText('a', 'Security'));
    r = await navigate(page, () => page.keyboard.press('Enter'));
    assert.equal(pathOf(page), '/security');
    assert.equal(await heading(page), 'Security');
    await s.shot('c-security');

    await tabTo(page, 'the Sign out button', byText('button', 'Sign out'));
    r = await navigate(page, () => page.keyboard.press('Enter'));
    assert.equal(new URL(page.url()).pathname, '/');
    assert.match(await page.getByRole('status').innerText(), /You have signed out/);
    await s.shot('c-signed-out');
  });

  test(`c. keyboard only: create an online account through /register [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 45 });
    const { page } = s;
    const card = CARDS.ben;
    const userId = uniqueUserId(`kbreg-${vp.name}`);

    await page.goto(s.url('/'));
    await tabTo(page, 'the Create an online account link', byText('a', 'Create an online account'));
    await navigate(page, () => page.keyboard.press('Enter'));
    assert.equal(pathOf(page), '/register');

    let f = await tabTo(page, 'the account type', byId('account_type'));
    assert.equal(f.value, card.accountType);
    await tabTo(page, 'the card number', byId('number'), { max: 1 });
    await page.keyboard.type(card.number);
    await tabTo(page, 'the card ID', byId('verification'), { max: 1 });
    await page.keyboard.type(card.verification);
    await s.shot('c-register-card');
    // Enter in a text field submits its form.
    let r = await navigate(page, () => page.keyboard.press('Enter'));
    assert.equal(r.status(), 200, await page.locator('main').innerText());
    assert.equal(await heading(page), 'Choose your sign-in details');

    await tabTo(page, 'the User ID field', byId('user_id'));
    await page.keyboard.type(userId);
    await tabTo(page, 'the password field', byId('password'), { max: 1 });
    await page.keyboard.type(PASSWORD);
    await tabTo(page, 'the Show password button', byText('button', 'Show password'), { max: 1 });
    for (let slot = 0; slot < 3; slot++) {
      await tabTo(page, `question ${slot + 1}`, byId(`question_${slot}`), { max: 1 });
      // Three different questions: the first, second and third in the list.
      for (let i = 0; i <= slot; i++) await page.keyboard.press('ArrowDown');
      assert.equal((await focused(page)).value, String(slot + 1));
      await tabTo(page, `answer ${slot + 1}`, byId(`answer_${slot}`), { max: 1 });
      await page.keyboard.type(`Answer number ${slot + 1}`);
    }
    // The radio group takes one Tab stop; arrows move the choice, Space sets it.
    f = await tabTo(page, 'the code channel', (x) => x.name === 'code_channel', { max: 1 });
    assert.equal(f.value, 'email', 'email is chosen when the card has an email address');
    await page.keyboard.press('ArrowDown');
    assert.equal((await focused(page)).value, 'sms');
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('Space');
    assert.equal(await page.locator('input[name=code_channel]:checked').inputValue(), 'email');
    await tabTo(page, 'the Create account button', byText('button', 'Create account'), { max: 1 });
    await s.shot('c-register-account');
    r = await navigate(page, () => page.keyboard.press('Enter'));
    assert.equal(r.status(), 201, await page.locator('main').innerText());
    assert.equal(await heading(page), 'Your online account is ready');
    await s.shot('c-register-done');

    await tabTo(page, 'the Sign in link', byText('a', 'Sign in'));
    await navigate(page, () => page.keyboard.press('Enter'));
    assert.equal(pathOf(page), '/');
  });
}
