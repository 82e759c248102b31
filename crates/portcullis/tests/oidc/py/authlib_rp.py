"""A relying party written with authlib (an OpenID Connect client library that is not part of
this repository), driven by crates/portcullis/tests/oidc/authlib.rs against the running
server.

    authlib_rp.py ISSUER BASE CONFIG_JSON

ISSUER is the server's `public_url`; BASE is where it really listens (every request to an
ISSUER URL is sent there; the URLs inside tokens, proofs and assertions stay the ISSUER's).
CONFIG_JSON: {"fapi_client", "fapi_key" (the client's private P-256 JWK), "public_client",
"redirect_uri", "user_id", "password", "account_type"}.

What authlib does: the OAuth 2.0 session (code grant, PKCE, refresh, revocation,
introspection), client authentication with its PrivateKeyJWT (ES256), ID token validation
(authlib.oidc.core.CodeIDToken over a JWKS key set). What it lacks and this script adds with
joserfc (authlib's own JOSE library): DPoP proofs (RFC 9449), and the pushed authorization
request (RFC 9126), posted through authlib's client authentication. The sign-in is the
browser's part: plain HTTP form posts to the real sign-in page.

Prints one line per check; exits non-zero at the first failure.
"""

import base64
import hashlib
import html
import json
import re
import sys
import time
from urllib.parse import urlencode

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken, UserInfo
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

ISSUER, BASE, CONF = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
RP = CONF["redirect_uri"]
FORM = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
}


def real(url):
    return BASE + url[len(ISSUER):] if url.startswith(ISSUER) else url


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


class Session(OAuth2Session):
    """authlib's requests session, sending the issuer's URLs to the test server."""

    def request(self, method, url, *args, **kwargs):
        return super().request(method, real(url), *args, **kwargs)


class FreshPrivateKeyJWT(PrivateKeyJWT):
    """authlib's PrivateKeyJWT with a short life and a new `jti` for every assertion (its
    default lifetime, an hour, is beyond what the server accepts, 5 minutes; and claims
    given to it once would be reused, jti included)."""

    def sign(self, auth, token_endpoint):
        self.claims = {"exp": int(time.time()) + 60}
        return super().sign(auth, token_endpoint)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def dpop(key, method, url, access_token=None):
    """A DPoP proof (RFC 9449) for `method` `url`, bound to `access_token` when given."""
    claims = {"htm": method, "htu": url, "iat": int(time.time()), "jti": generate_token(32)}
    if access_token:
        claims["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
    public = key.as_dict(private=False)
    public.pop("kid", None)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


class Browser:
    """The person's browser: cookies by hand, no redirects followed."""

    def __init__(self):
        self.cookies = {}
        self.http = requests.Session()

    def send(self, method, url, **kwargs):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        res = self.http.request(method, url, headers=headers, allow_redirects=False, **kwargs)
        for line in res.raw.headers.getlist("Set-Cookie"):
            pair = line.split(";")[0]
            name, _, value = pair.partition("=")
            self.cookies.pop(name, None)
            if value and "Max-Age=0" not in line:
                self.cookies[name] = value
        return res

    def authorize(self, url):
        """Follows an authorization URL through the sign-in page; the final Location."""
        res = self.send("GET", real(url))
        location = res.headers.get("location", "")
        if location.startswith("/"):
            page = self.send("GET", BASE + location).text
            check("User ID" in page, "the sign-in page is Portcullis's own")
            csrf = re.search(r'name="csrf"[^>]*value="([^"]+)"', page).group(1)
            res = self.send(
                "POST",
                BASE + "/",
                data={
                    "csrf": csrf.replace("&#x2f;", "/").replace("&#43;", "+"),
                    "user_id": CONF["user_id"],
                    "password": CONF["password"],
                    "account_type": CONF["account_type"],
                },
            )
            # The sign-in's answer goes on with the request: the way back, no redirect to
            # /oidc/resume.
            check(res.status_code == 200, "signed in by form post")
            location = way_back(res)
        return location


def way_back(res):
    """The way back to the client after the sign-in: a redirect, or (at the end of a form's
    journey, where the pages' CSP forbids a cross-origin redirect) a page whose refresh and
    link lead there."""
    if res.status_code in (302, 303):
        return res.headers.get("location", "")
    found = re.search(r'id="continue" href="([^"]+)"', res.text)
    check(found is not None, "the way back after the sign-in form")
    return html.unescape(found.group(1))


def query(url, name):
    from urllib.parse import parse_qs, urlparse

    values = parse_qs(urlparse(url).query).get(name)
    return values[0] if values else None


def verify_id_token(meta, token, client_id, nonce):
    """authlib's ID token validation against the published JWKS."""
    key_set = KeySet.import_key_set(requests.get(real(meta["jwks_uri"])).json())
    decoded = jwt.decode(
        token["id_token"], key_set, algorithms=meta["id_token_signing_alg_values_supported"]
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"values": [ISSUER]}, "aud": {"values": [client_id]}},
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=120)
    return UserInfo(claims)


def refused(call):
    """The OAuth error of a call expected to fail (None if it succeeded)."""
    try:
        call()
    except OAuthError as e:
        return e.error
    return None


def main():
    meta = requests.get(real(ISSUER + "/.well-known/openid-configuration")).json()
    check(meta["issuer"] == ISSUER, "discovery: issuer")
    check(meta["code_challenge_methods_supported"] == ["S256"], "discovery: PKCE S256 only")
    check("private_key_jwt" in meta["token_endpoint_auth_methods_supported"], "discovery: private_key_jwt")
    check("ES256" in meta["dpop_signing_alg_values_supported"], "discovery: DPoP")
    token_ep, par_ep = meta["token_endpoint"], meta["pushed_authorization_request_endpoint"]
    userinfo_ep = meta["userinfo_endpoint"]

    # The FAPI 2.0 site: PAR + PKCE + private_key_jwt + DPoP.
    cid = CONF["fapi_client"]
    dpop_key = ECKey.generate_key("P-256")
    site = Session(
        cid,
        ECKey.import_key(CONF["fapi_key"]),
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        redirect_uri=RP,
    )
    # The assertion's audience is the issuer identifier.
    site.register_client_auth_method(FreshPrivateKeyJWT(ISSUER, alg="ES256"))
    browser = Browser()

    def signed_in_code(nonce, scope="openid offline_access email"):
        verifier = generate_token(48)
        state = generate_token(16)
        res = site.post(
            par_ep,
            data={
                "response_type": "code",
                "client_id": cid,
                "redirect_uri": RP,
                "scope": scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            },
            headers={"DPoP": dpop(dpop_key, "POST", par_ep)},
            auth=site.client_auth("private_key_jwt"),
            withhold_token=True,
        )
        check(res.status_code == 201, f"PAR accepted ({res.status_code} {res.text[:200]})")
        request_uri = res.json()["request_uri"]
        plain = browser.send(
            "GET",
            real(meta["authorization_endpoint"]) + "?" + urlencode(
                {"response_type": "code", "client_id": cid, "redirect_uri": RP, "scope": "openid",
                 "state": state, "code_challenge": create_s256_code_challenge(verifier),
                 "code_challenge_method": "S256"}),
        )
        check(query(plain.headers.get("location", ""), "code") is None,
              "a FAPI client's request without PAR gets no code")
        back = browser.authorize(
            meta["authorization_endpoint"] + "?" + urlencode({"client_id": cid, "request_uri": request_uri})
        )
        check(back.startswith(RP) and query(back, "state") == state, "back at the site with its state")
        check(query(back, "iss") == ISSUER, "iss in the authorization response (RFC 9207)")
        return query(back, "code"), verifier

    def token_call(**kwargs):
        return site.fetch_token(
            token_ep, headers={**FORM, "DPoP": dpop(dpop_key, "POST", token_ep)}, **kwargs
        )

    def refresh(rt):
        return site.refresh_token(
            token_ep, refresh_token=rt, headers={**FORM, "DPoP": dpop(dpop_key, "POST", token_ep)}
        )

    def introspect(token):
        return site.introspect_token(meta["introspection_endpoint"], token=token).json()

    nonce = generate_token(16)
    code, verifier = signed_in_code(nonce)
    token = token_call(grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=RP)
    check(token["token_type"] == "DPoP", "tokens bound to the DPoP key")
    info = verify_id_token(meta, token, cid, nonce)
    check(info["sub"] != CONF["user_id"] and info["amr"] and info["acr"], "ID token verified by authlib")
    check(refused(lambda: token_call(grant_type="authorization_code", code=code,
                                     code_verifier=verifier, redirect_uri=RP)) == "invalid_grant",
          "the code is single use")
    # The replay revoked what the code issued: a new grant for the rest.
    nonce = generate_token(16)
    code, verifier = signed_in_code(nonce)
    token = token_call(grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=RP)
    at, rt = token["access_token"], token["refresh_token"]
    res = requests.get(
        real(userinfo_ep),
        headers={"Authorization": f"DPoP {at}", "DPoP": dpop(dpop_key, "GET", userinfo_ep, at)},
    )
    check(res.status_code == 200 and res.json()["sub"] == info["sub"], "userinfo with DPoP")
    res = requests.get(real(userinfo_ep), headers={"Authorization": f"Bearer {at}"})
    check(res.status_code == 401, "a DPoP-bound token presented as Bearer is refused")
    live = introspect(at)
    check(live["active"] is True and live["cnf"]["jkt"] == dpop_key.thumbprint(), "introspection: active, cnf.jkt")

    rotated = refresh(rt)
    check(rotated["refresh_token"] != rt, "refresh rotates the refresh token")
    check(introspect(rotated["access_token"])["active"] is True, "the new access token is active")
    res = site.revoke_token(meta["revocation_endpoint"], token=rotated["refresh_token"],
                            token_type_hint="refresh_token")
    check(res.status_code == 200, "revocation (RFC 7009)")
    check(introspect(rotated["access_token"])["active"] is False, "revoking the grant ends its access token")
    check(refused(lambda: refresh(rotated["refresh_token"])) == "invalid_grant", "a revoked refresh token is refused")

    # Reuse detection: the browser's session is still open, so no sign-in this time.
    nonce = generate_token(16)
    code, verifier = signed_in_code(nonce)
    token = token_call(grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=RP)
    first = token["refresh_token"]
    second = refresh(first)["refresh_token"]
    check(refused(lambda: refresh(first)) == "invalid_grant", "a reused refresh token is refused")
    check(refused(lambda: refresh(second)) == "invalid_grant", "the reuse ended the whole family")

    # The mobile app: a public client, PKCE, no secret, Bearer tokens.
    pub_id = CONF["public_client"]
    app = Session(pub_id, token_endpoint_auth_method="none", scope="openid",
                  redirect_uri=RP, code_challenge_method="S256")
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, _state = app.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    # The reuse above ended the session behind the family: the person signs in again.
    back = browser.authorize(url)
    check(back.startswith(RP), "the app is sent back with a code")
    token = app.fetch_token(token_ep, authorization_response=back, code_verifier=verifier)
    info_pub = verify_id_token(meta, token, pub_id, nonce)
    check(info_pub["sub"] == info["sub"], "the public client's ID token: same person, same sub")
    res = app.get(userinfo_ep)
    check(res.status_code == 200 and res.json()["sub"] == info["sub"], "userinfo with authlib's Bearer auth")
    res = app.revoke_token(meta["revocation_endpoint"], token=token["access_token"],
                           token_type_hint="access_token")
    check(res.status_code == 200, "the public client revokes its access token")
    check(app.get(userinfo_ep).status_code == 401, "a revoked access token is refused at userinfo")

    # RP-Initiated Logout 1.0: the app's ID token as the hint, back to its registered URI with
    # its state; then prompt=none finds no session (login_required, no code).
    end_ep = meta["end_session_endpoint"]
    after = CONF["post_logout_redirect_uri"]
    res = browser.send("GET", real(end_ep) + "?" + urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": after, "state": "bye"}))
    check(res.status_code in (302, 303) and res.headers.get("location") == after + "?state=bye",
          "end session: signed out and sent to the registered URI with the state")
    res = browser.send("GET", real(end_ep) + "?" + urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": "https://evil.example/x"}))
    check("evil.example" not in res.headers.get("location", ""),
          "end session never sends the browser to an unregistered URI")
    url, _state = app.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=generate_token(48),
        nonce=generate_token(16), prompt="none")
    back = browser.authorize(url)
    check(back.startswith(RP) and query(back, "error") == "login_required"
          and query(back, "code") is None, "prompt=none after the logout: login_required")
    print("authlib relying party: all checks passed", flush=True)


if __name__ == "__main__":
    main()
