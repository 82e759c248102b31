// (j) The password fields: the live checklist of the policy's rules beside a new password, and
// the Show password button on every password field (both from static/password.js), on the
// registration account step and the security page; and that without JavaScript the rules stay
// a plain list and no button appears.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { byId, byText, focused, tabTo } from '../lib/keyboard.mjs';
import { ANSWERS, CARDS, heading, navigate, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';

async function noSeriousAxe(page, where) {
  const { blocking } = await runAxe(page);
  assert.deepEqual(blocking, [], `${where}: ${describeViolations(blocking)}`);
}

/** Each rule's check (its data-check) with the state the script gave it. */
function states(page, listId) {
  return page.locator(`#${listId} li`).evaluateAll((items) =>
    Object.fromEntries(items.map((li) => [li.dataset.check + (li.dataset.value ? `:${li.dataset.value}` : ''), li.dataset.state])),
  );
}

/** What the list's one live region says, once it matches `pattern`. */
async function announced(page, pattern, { within = 5000 } = {}) {
  const live = page.locator('[data-checklist-status]');
  const deadline = Date.now() + within;
  let text;
  while (Date.now() < deadline) {
    text = await live.textContent();
    if (pattern.test(text)) return text;
    await page.waitForTimeout(100);
  }
  assert.fail(`the live region says ${JSON.stringify(text)}, not ${pattern}, after ${within} ms`);
}

/** Registers the card through step 1 of /register and lands on step 2. */
async function toAccountStep(s, card) {
  const { page } = s;
  await page.goto(s.url('/register'));
  await page.locator('#account_type').selectOption(card.accountType);
  await page.locator('#number').fill(card.number);
  await page.locator('#verification').fill(card.verification);
  const r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
  assert.equal(r.status(), 200);
  assert.equal(await heading(page), 'Choose your sign-in details');
}

/** Records, in sessionStorage (it survives the navigation), the type each password field
 * had when its form was submitted: the listener is on window, so it runs after password.js's
 * own submit handler. */
function recordTypesAtSubmit(page) {
  return page.evaluate(() => {
    window.addEventListener('submit', (e) => {
      const types = [...e.target.querySelectorAll('input[id*=password]')].map((i) => `${i.id}=${i.type}`);
      sessionStorage.setItem('typesAtSubmit', types.join(' '));
    });
  });
}

for (const vp of VIEWPORTS) {
  test(`j. registration: the checklist follows what is typed; show and hide by keyboard and by click; submit after showing [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 140 });
    const { page } = s;
    const userId = uniqueUserId(`pux-${vp.name}`);
    await toAccountStep(s, CARDS.ann);

    // Before anything is typed: the policy's rules, each "not yet", and the common-password
    // rule says it is checked on submit. One live region, empty.
    const list = page.locator('#password-rules');
    assert.equal(await list.getAttribute('class'), 'rules checklist');
    assert.deepEqual(await states(page, 'password-rules'), {
      'min-length:8': 'unmet',
      'max-length:128': 'unmet',
      letter: 'unmet',
      capital: 'unmet',
      symbol: 'unmet',
      'not-user-id': 'unmet',
      'on-submit': 'later',
    });
    assert.match(await list.locator('li[data-check=on-submit]').innerText(), /common.*when you submit/s);
    assert.equal(await page.locator('#password').locator('xpath=ancestor::div[contains(@class,"field")]').locator('[aria-live]').count(), 1);
    assert.equal(await page.locator('[data-checklist-status]').textContent(), '');

    // Typing changes the states at once: text and mark, not colour alone.
    await page.locator('#user_id').fill(userId);
    await page.locator('#password').pressSequentially('harbour');
    let st = await states(page, 'password-rules');
    assert.equal(st['min-length:8'], 'unmet');
    assert.equal(st.letter, 'met');
    assert.equal(st.capital, 'unmet');
    assert.equal(st.symbol, 'unmet');
    const letter = list.locator('li[data-check=letter]');
    assert.equal(await letter.locator('.rule-mark').textContent(), '✓');
    assert.match(await letter.innerText(), /\(done\)/);
    assert.match(await list.locator('li[data-check=capital]').innerText(), /\(not yet\)/);
    await s.shot('j-register-typing');

    // The announcement waits for a pause in typing, then says what is still needed, once.
    const first = await announced(page, /password rules met/);
    assert.equal(first, '3 of 6 password rules met. Still needed: At least 8 characters, A capital letter, A symbol, like ! or #.');
    await page.locator('#password').pressSequentially('X');
    assert.equal(await page.locator('[data-checklist-status]').textContent(), first, 'not announced on every keystroke');
    assert.equal((await states(page, 'password-rules')).capital, 'met', 'the list itself follows at once');

    // The User ID inside the password: that rule is not met; the User ID field counts too.
    await page.locator('#password').fill(`${userId.toUpperCase()}!`);
    st = await states(page, 'password-rules');
    assert.equal(st['not-user-id'], 'unmet');
    assert.equal(st.symbol, 'met');
    await page.locator('#user_id').fill('someone.else');
    assert.equal((await states(page, 'password-rules'))['not-user-id'], 'met');
    await page.locator('#user_id').fill(userId);

    // A password that meets every rule checked here.
    await page.locator('#password').fill('');
    await page.locator('#password').pressSequentially(PASSWORD);
    st = await states(page, 'password-rules');
    assert.deepEqual(Object.values(st).filter((v) => v !== 'met'), ['later']);
    await announced(page, /^6 of 6 password rules met\. Every rule we can check as you type is met\.$/);

    // Show and hide, by keyboard: Tab from the field reaches the button; Space and Enter.
    const button = page.getByRole('button', { name: 'Show password' });
    assert.equal(await button.getAttribute('type'), 'button');
    assert.equal(await button.getAttribute('aria-controls'), 'password');
    // Its words carry the state (no aria-pressed: see password.js).
    assert.equal(await button.getAttribute('aria-pressed'), null);
    const box = await button.boundingBox();
    assert.ok(box.height >= 44 && box.width >= 44, `touch target ${box.width}×${box.height}`);
    await page.locator('#password').focus();
    await tabTo(page, 'the Show password button', byText('button', 'Show password'), { max: 1 });
    await page.keyboard.press('Space');
    assert.equal(await page.locator('#password').getAttribute('type'), 'text');
    let f = await focused(page);
    assert.equal(f.text, 'Hide password');
    assert.ok(f.focusVisible && f.outline, 'the button keeps a visible focus ring');
    assert.equal(await page.locator('button.reveal').innerText(), 'Hide password');
    assert.equal(await page.locator('#password').inputValue(), PASSWORD);
    await s.shot('j-register-shown');
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('#password').getAttribute('type'), 'password');
    f = await focused(page);
    assert.equal(f.text, 'Show password');
    assert.equal(await page.locator('button.reveal').innerText(), 'Show password');
    await tabTo(page, 'the password field', byId('password'), { key: 'Shift+Tab', max: 1 });

    // And by click (a tap on the phone), then submit while it is shown.
    await button.click();
    assert.equal(await page.locator('#password').getAttribute('type'), 'text');
    await noSeriousAxe(page, 'register account step, password shown');
    for (const [i, a] of ANSWERS.entries()) {
      await page.locator(`#question_${i}`).selectOption(a.question);
      await page.locator(`#answer_${i}`).fill(a.answer);
    }
    await page.locator('input[name=code_channel][value=email]').check();
    await recordTypesAtSubmit(page);
    const r = await navigate(page, () => page.getByRole('button', { name: 'Create account' }).click());
    assert.equal(r.status(), 201, await page.locator('main').innerText());
    assert.equal(await heading(page), 'Your online account is ready');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('typesAtSubmit')), 'password=password',
      'the field was a password field again when the form was submitted');

    // The password that was shown is the one that was saved.
    await navigate(page, () => page.getByRole('link', { name: 'Sign in', exact: true }).click());
    assert.equal(await page.locator('button.reveal[aria-controls=password]').count(), 1, 'sign-in has the button too');
    const signedIn = await signIn(page, userId, PASSWORD);
    assert.equal(signedIn.status(), 200);
    assert.equal(await heading(page), `Welcome, ${CARDS.ann.holder}`);
  });

  test(`j. security page: the checklist knows the User ID; change the password after showing it [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 150 });
    const { page } = s;
    const userId = await registerViaApi(s.server.url, CARDS.ben, uniqueUserId(`puxs-${vp.name}`));
    await page.goto(s.url('/'));
    await signIn(page, userId, PASSWORD);
    await page.goto(s.url('/security'));
    assert.equal(await heading(page), 'Security');

    // Every password field has its own button; only the new password has a checklist.
    for (const id of ['contact_password', 'current_password', 'new_password']) {
      assert.equal(await page.locator(`button.reveal[aria-controls=${id}]`).count(), 1, id);
    }
    assert.equal(await page.locator('ul[data-checklist]').count(), 1);
    assert.equal(await page.locator('#new-password-rules').getAttribute('data-user-id'), userId);

    await page.locator('#current_password').fill(PASSWORD);
    await page.locator('#new_password').pressSequentially(`My-${userId}-2`);
    assert.equal((await states(page, 'new-password-rules'))['not-user-id'], 'unmet');
    await page.locator('#new_password').fill('');
    await page.locator('#new_password').pressSequentially('Lantern-Quay-93?');
    const st = await states(page, 'new-password-rules');
    assert.deepEqual(Object.values(st).filter((v) => v !== 'met'), ['later']);
    await page.locator('button.reveal[aria-controls=new_password]').click();
    assert.equal(await page.locator('#new_password').getAttribute('type'), 'text');
    assert.equal(await page.locator('#current_password').getAttribute('type'), 'password', 'each button shows only its own field');
    await announced(page, /^6 of 6 password rules met/);
    await noSeriousAxe(page, 'security, new password shown');
    await page.locator('#new-password-rules').scrollIntoViewIfNeeded();
    await s.shot('j-security-shown');

    await recordTypesAtSubmit(page);
    await navigate(page, () => page.getByRole('button', { name: 'Change password', exact: true }).click());
    assert.match(await page.locator('main').innerText(), /password (is|has been) changed/i);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('typesAtSubmit')), 'current_password=password new_password=password');
    await s.shot('j-security-changed');
  });

  test(`j. without JavaScript the rules are a plain list and there is no Show password button [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 160 });
    const context = await s.browser.newContext({ viewport: vp.viewport, isMobile: vp.isMobile, hasTouch: vp.hasTouch, javaScriptEnabled: false });
    t.after(() => context.close().catch(() => {}));
    const page = await context.newPage();
    await toAccountStep({ page, url: s.url }, CARDS.ann);
    const list = page.locator('#password-rules');
    assert.equal(await list.getAttribute('class'), 'rules');
    assert.equal(await list.locator('li').count(), 7);
    assert.equal(await list.locator('li[data-state]').count(), 0);
    assert.equal(await list.locator('.rule-mark').count(), 0);
    assert.match(await list.innerText(), /At least 8 characters\s+At most 128 characters\s+A letter/);
    assert.equal(await page.locator('button.reveal').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Show password' }).count(), 0);
    assert.equal(await page.locator('[data-checklist-status]').count(), 0);
  });
}
