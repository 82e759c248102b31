// (k) OpenID Connect in the browser: a relying party (this test, on the Node side) pushes an
// authorization request (PAR + PKCE, client_secret_basic) for a client NOT registered
// first-party; Chromium follows it through the real sign-in page and the second-factor page
// (an authenticator app set up through the JSON API; the code computed here, RFC 6238),
// gets the consent page, allows, and comes back to the client's redirect URI with a code.
// The client exchanges the code and verifies the ID token's ES256 signature against the
// published JWKS with Node's own crypto. Then RP-Initiated Logout without a hint: the
// confirmation page, "Sign out", back to the registered post-logout URI. axe on the consent,
// logout and signed-out pages.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { CARDS, heading, navigate, PASSWORD, registerViaApi, signIn, uniqueUserId } from '../lib/flows.mjs';
import { totp } from '../lib/totp.mjs';

const RP = 'https://rp.example/cb';
const AFTER = 'https://rp.example/logged-out';
const ISSUER = 'http://localhost:8080';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** `portcullis oidc client add` in the server's directory, as an operator runs it. */
function addClient(server) {
  const bin = process.env.PORTCULLIS_BIN;
  const out = execFileSync(
    bin,
    ['--database-url', 'sqlite://./portcullis-data/demo.db', 'oidc', 'client', 'add',
      '--name', 'Budget Planner', '--redirect-uri', RP, '--post-logout-redirect-uri', AFTER],
    { cwd: server.dir, env: { ...process.env, PORTCULLIS_PUBLIC_URL: ISSUER }, encoding: 'utf8' },
  );
  return JSON.parse(out.trim());
}

async function api(base, path, body, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}/api/v1${path}`, { method: 'POST', headers, body: JSON.stringify(body ?? {}) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function form(url, params, client) {
  const r = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
    },
    body: new URLSearchParams(params).toString(),
  });
  return { status: r.status, body: await r.json() };
}

/** Verifies a compact ES256 JWS against a JWKS; answers its claims. */
function verifyEs256(jwt, jwks) {
  const [h, c, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  assert.equal(header.alg, 'ES256');
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `no key ${header.kid} in the JWKS`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${c}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  assert.ok(ok, 'the ID token signature verifies against the JWKS');
  return JSON.parse(Buffer.from(c, 'base64url'));
}

async function axeClean(page, name) {
  const result = await runAxe(page);
  assert.equal(result.blocking.length, 0, `${name}:\n${describeViolations(result.blocking)}`);
}

for (const vp of VIEWPORTS) {
  test(`k. OIDC: PAR, sign-in with the second step, consent, verified ID token, sign-out [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 170 });
    const { page } = s;
    const userId = uniqueUserId(`oidc-${vp.name}`);
    await registerViaApi(s.url(''), CARDS.ann, userId);
    // An authenticator app, through the JSON API.
    const signedIn = await api(s.url(''), '/sessions', { user_id: userId, password: PASSWORD, account_type: 'personal' });
    assert.equal(signedIn.status, 201);
    const token = signedIn.body.session_token;
    const setup = await api(s.url(''), '/me/factors/totp', {}, token);
    assert.equal(setup.status, 201);
    const secret = setup.body.secret;
    const now = Date.now() / 1000;
    assert.equal((await api(s.url(''), '/me/factors/totp/confirm', { code: totp(secret, now) }, token)).status, 204);

    const client = addClient(s.server);
    assert.ok(client.client_id && client.client_secret);

    // The relying party's side: PAR with PKCE, state and nonce.
    const verifier = b64url(crypto.randomBytes(32));
    const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
    const state = b64url(crypto.randomBytes(12));
    const nonce = b64url(crypto.randomBytes(12));
    const par = await form(s.url('/oidc/par'), {
      response_type: 'code', client_id: client.client_id, redirect_uri: RP, scope: 'openid email',
      state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
    }, client);
    assert.equal(par.status, 201, JSON.stringify(par.body));

    // The client's own site is not on this network: the browser's visits there are answered
    // here, and their addresses kept.
    const rpVisits = [];
    await page.route('https://rp.example/**', (route) => {
      rpVisits.push(route.request().url());
      route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><html lang="en"><title>RP</title><h1>RP</h1></html>' });
    });

    // The browser: authorize → sign-in page → second step → consent page.
    await page.goto(s.url(`/oidc/authorize?client_id=${client.client_id}&request_uri=${encodeURIComponent(par.body.request_uri)}`));
    assert.equal(await heading(page), 'Sign in');
    let r = await signIn(page, userId, PASSWORD);
    assert.equal(r.status(), 200);
    assert.equal(await heading(page), 'Confirm it is you');
    // The next time step: the set-up's code may not be used twice.
    await page.locator('#code').fill(totp(secret, now + 30));
    r = await navigate(page, () => page.getByRole('button', { name: 'Continue' }).click());
    assert.equal(r.status(), 200, await page.locator('main').innerText());
    assert.equal(await heading(page), 'Budget Planner wants to use your sign-in');
    assert.match(await page.locator('main').innerText(), /See your email address/);
    await axeClean(page, 'consent');
    await s.shot('k-consent');

    // "Allow": back at the client with a code, the state and the issuer.
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.href.startsWith(RP));
    const back = new URL(rpVisits.at(-1));
    assert.equal(back.searchParams.get('state'), state);
    assert.equal(back.searchParams.get('iss'), ISSUER);
    const code = back.searchParams.get('code');
    assert.ok(code);

    // The client exchanges it and verifies the ID token against the JWKS.
    const tokens = await form(s.url('/oidc/token'), {
      grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: RP,
    }, client);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const jwks = await (await fetch(s.url('/oidc/jwks'))).json();
    const claims = verifyEs256(tokens.body.id_token, jwks);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.aud, client.client_id);
    assert.equal(claims.nonce, nonce);
    assert.ok(claims.exp > Date.now() / 1000);
    assert.notEqual(claims.sub, userId, 'sub is not the User ID');

    // RP-Initiated Logout without a hint: the person confirms.
    await page.goto(s.url(`/oidc/logout?client_id=${client.client_id}&post_logout_redirect_uri=${encodeURIComponent(AFTER)}&state=bye`));
    assert.equal(await heading(page), 'Sign out');
    await axeClean(page, 'logout');
    await s.shot('k-logout');
    await page.getByRole('main').getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.href.startsWith(AFTER));
    assert.equal(rpVisits.at(-1), `${AFTER}?state=bye`);
    // Signed out: the access token is dead, and with nowhere to go, the signed-out page.
    const info = await fetch(s.url('/oidc/userinfo'), { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
    assert.equal(info.status, 401);
    await page.goto(s.url('/oidc/logout'));
    assert.equal(await heading(page), 'You are signed out');
    await axeClean(page, 'signed out');
    await s.shot('k-signed-out');
  });
}
