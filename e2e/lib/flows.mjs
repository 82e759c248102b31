// The demo data and the steps several tests share: creating an online account (through the
// JSON API, or through the pages with the mouse) and signing in.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

/** The demo registry `portcullis serve --demo` loads. One card can hold one online account. */
export const CARDS = {
  ann: { accountType: 'personal', number: '378282246310005', verification: '1234', product: 'Platinum Card', last4: '0005', holder: 'Ann Example' },
  ben: { accountType: 'personal', number: '371449635398431', verification: '5678', product: 'Gold Card', last4: '8431', holder: 'Ben Sample' },
  // Ann's second card (same holder): for "link another card".
  annBlue: { accountType: 'personal', number: '5555555555554444', verification: '321', product: 'Blue Cash Card', last4: '4444', holder: 'Ann Example' },
  shop: { accountType: 'merchant', number: '1234567890', verification: 'SHOP42', holder: 'Corner Coffee Ltd' },
};

/** A User ID no other test uses (6–32 of letters, digits and . _ - @). */
export function uniqueUserId(prefix) {
  return `${prefix}.${randomBytes(3).toString('hex')}`;
}

/** Passes the issuer profile: 8+ characters, a letter, a capital, a symbol; not common. */
export const PASSWORD = 'Harbour-Lantern-42!';

export const ANSWERS = [
  { question: '1', answer: 'Biscuit the terrier' },
  { question: '4', answer: 'Hillside Primary' },
  { question: '7', answer: 'Lisbon' },
];

/** Creates an online account with `POST /api/v1/registration/verify-card` and `/complete`. */
export async function registerViaApi(baseUrl, card, userId, password = PASSWORD) {
  const post = async (path, body) => {
    const r = await fetch(`${baseUrl}/api/v1${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  const verified = await post('/registration/verify-card', {
    account_type: card.accountType,
    number: card.number,
    verification: card.verification,
  });
  assert.equal(verified.status, 200, `verify-card: ${JSON.stringify(verified.body)}`);
  const completed = await post('/registration/complete', {
    registration_token: verified.body.registration_token,
    user_id: userId,
    password,
    security_answers: ANSWERS.map((a) => ({ question_id: Number(a.question), answer: a.answer })),
    code_channel: 'email',
  });
  assert.equal(completed.status, 201, `complete: ${JSON.stringify(completed.body)}`);
  return completed.body.user_id;
}

/** Navigation helper: clicks (or presses) and returns the response of the page it led to. */
export async function navigate(page, action) {
  const [response] = await Promise.all([page.waitForNavigation(), action()]);
  if (response?.request().method() === 'POST' && response.status() === 403) {
    const text = await page.locator('main').innerText();
    if (/this form expired/i.test(text)) {
      assert.fail(
        `the server refused a same-origin form POST to ${response.url()} as a CSRF failure (403). ` +
          'Chromium sends "Origin: null" on form POSTs from pages whose Referrer-Policy is no-referrer; ' +
          'the check must trust Sec-Fetch-Site: same-origin (see e2e/README.md).',
      );
    }
  }
  return response;
}

/** Fills the sign-in form on the current page and submits it; returns the response. */
export async function signIn(page, userId, password, accountType = 'personal') {
  await page.locator('#user_id').fill(userId);
  await page.locator('#password').fill(password);
  await page.locator('#account_type').selectOption(accountType);
  return navigate(page, () => page.getByRole('button', { name: 'Sign in', exact: true }).click());
}

/** The text of the page's one <h1>. */
export async function heading(page) {
  return (await page.locator('h1').innerText()).trim();
}

/** The path (and query) of the page's current address. */
export function pathOf(page) {
  const u = new URL(page.url());
  return u.pathname + u.search;
}
