// (a) A person creates an online account through /register with card 378282246310005 /
// 1234, signs in, sees the account home with the card, visits /security, and signs out.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { ANSWERS, CARDS, heading, navigate, pathOf, PASSWORD, signIn, uniqueUserId } from '../lib/flows.mjs';

for (const vp of VIEWPORTS) {
  test(`a. register through the pages, sign in, account home, security, sign out [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 10 });
    const { page } = s;
    const card = CARDS.ann;
    const userId = uniqueUserId(`ann-${vp.name}`);

    let r = await page.goto(s.url('/'));
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), 'Sign in');
    await s.shot('a-signin');

    r = await navigate(page, () => page.getByRole('link', { name: 'Create an online account' }).click());
    assert.equal(pathOf(page), '/register');
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), 'Create an online account');
    await page.locator('#account_type').selectOption(card.accountType);
    await page.locator('#number').fill(card.number);
    await page.locator('#verification').fill(card.verification);
    await s.shot('a-register-card');

    r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(r.status(), 200, await page.locator('main').innerText());
    assert.equal(pathOf(page), '/register');
    assert.equal(await heading(page), 'Choose your sign-in details');
    await page.locator('#user_id').fill(userId);
    await page.locator('#password').fill(PASSWORD);
    for (const [i, a] of ANSWERS.entries()) {
      await page.locator(`#question_${i}`).selectOption(a.question);
      await page.locator(`#answer_${i}`).fill(a.answer);
    }
    await page.locator('input[name=code_channel][value=email]').check();
    await s.shot('a-register-account');

    r = await navigate(page, () => page.getByRole('button', { name: 'Create account' }).click());
    assert.equal(r.status(), 201, await page.locator('main').innerText());
    assert.equal(await heading(page), 'Your online account is ready');
    assert.match(await page.locator('main').innerText(), new RegExp(`User ID ${userId.replace(/\./g, '\\.')}`));
    await s.shot('a-register-done');

    await navigate(page, () => page.getByRole('link', { name: 'Sign in', exact: true }).click());
    assert.equal(pathOf(page), '/');
    r = await signIn(page, userId, PASSWORD);
    assert.equal(pathOf(page), '/account');
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), `Welcome, ${CARDS.ann.holder}`);
    const cardArticle = page.locator('article.card', { hasText: card.product });
    assert.equal(await cardArticle.count(), 1, 'the account home shows the Platinum Card once');
    assert.match(await cardArticle.locator('h3').innerText(), new RegExp(`${card.product}\\s+ending ${card.last4}`));
    const figures = Object.fromEntries(
      await cardArticle.locator('dl.figures > div').evaluateAll((divs) =>
        divs.map((d) => [d.querySelector('dt').textContent.trim(), d.querySelector('dd').textContent.trim()])),
    );
    assert.match(figures.Balance, /^\$[\d,]+\.\d\d$/, `balance figure: ${JSON.stringify(figures)}`);
    assert.match(figures['Credit limit'], /^\$[\d,]+\.\d\d$/);
    assert.ok(figures['Payment due'] && figures['Payment due'] !== '—', 'a payment due date is shown');
    const nav = page.getByRole('navigation', { name: 'Account' });
    assert.equal(await nav.getByRole('link', { name: 'Account', exact: true }).count(), 1);
    assert.equal(await nav.getByRole('button', { name: 'Sign out' }).count(), 1);
    await s.shot('a-account');

    r = await navigate(page, () => nav.getByRole('link', { name: 'Security', exact: true }).click());
    assert.equal(pathOf(page), '/security');
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), 'Security');
    const sessions = page.locator('section', { has: page.getByRole('heading', { name: 'Where you are signed in' }) });
    assert.equal(await sessions.locator('li').count(), 1, 'exactly one session: this browser');
    assert.match(await sessions.innerText(), /This device/);
    const activity = page.locator('section', { has: page.getByRole('heading', { name: 'Recent security activity' }) });
    assert.ok((await activity.locator('li').count()) >= 1, 'recent security activity lists at least the sign-in');
    await s.shot('a-security');

    r = await navigate(page, () => page.getByRole('navigation', { name: 'Account' }).getByRole('button', { name: 'Sign out' }).click());
    assert.equal(new URL(page.url()).pathname, '/');
    assert.match(await page.getByRole('status').innerText(), /You have signed out/);
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'no Sign out button once signed out');
    await s.shot('a-signed-out');

    // The session is really over: the account page now sends the browser to sign in.
    r = await page.goto(s.url('/account'));
    assert.equal(new URL(page.url()).pathname, '/');
    assert.equal(await heading(page), 'Sign in');
  });
}
