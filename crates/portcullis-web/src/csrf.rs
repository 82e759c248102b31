//! CSRF protection for every form: a random value in a `SameSite=Strict` cookie, and in the
//! form a keyed hash of it (HMAC under a server key). A cross-site page can neither read the
//! cookie nor compute the token, and a cookie planted from a sibling domain is useless
//! without the key. The cookie is replaced at sign-in, so a token from before sign-in is
//! worthless after it. Requests that say they come from another site (`Sec-Fetch-Site:
//! cross-site`, or an `Origin` naming another host) are refused before the token is checked.

use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_crypto::{ct_eq, token::random_bytes, KeyRing, KeyedHasher};

const DOMAIN: &str = "portcullis/csrf/v1";

fn token_under(key: &KeyedHasher, anchor: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.hash(DOMAIN, &[anchor.as_bytes()]))
}

/// The token a form must carry for the cookie value `anchor`, under the current CSRF key.
pub fn token_for(keys: &KeyRing, anchor: &str) -> String {
    keys.hashers()
        .next()
        .map(|key| token_under(&key, anchor))
        .unwrap_or_default()
}

pub fn new_anchor() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Checks a submitted token against the cookie, under every key of the ring (a form shown
/// before a rotation stays good until its cookie expires). Every key is tried, matched or
/// not, so the time taken says nothing about which key matched.
pub fn verify(keys: &KeyRing, anchor: Option<&str>, submitted: &str) -> bool {
    match anchor {
        Some(a) if !a.is_empty() && !submitted.is_empty() => {
            keys.hashers().fold(false, |found, key| {
                ct_eq(token_under(&key, a).as_bytes(), submitted.as_bytes()) | found
            })
        }
        _ => false,
    }
}

/// Whether the browser says the request came from another site. `Sec-Fetch-Site`, sent by
/// every current browser, decides when present (`same-origin` and `none` — a typed URL or a
/// bookmark — pass); only without it is `Origin` compared with `Host`. (`Origin: null` is what
/// a browser sends for a same-origin form under a strict referrer policy, so it is judged by
/// `Sec-Fetch-Site` when that is present, and refused only when it is not.)
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split("://").nth(1).unwrap_or(origin);
            origin_host != host
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn token_matches_only_its_cookie() {
        let key = KeyRing::single(Zeroizing::new([1; 32]));
        let a = new_anchor();
        let t = token_for(&key, &a);
        assert!(verify(&key, Some(&a), &t));
        assert!(!verify(&key, Some(&new_anchor()), &t));
        assert!(!verify(&key, None, &t));
        assert!(!verify(&key, Some(&a), ""));
        let other = KeyRing::single(Zeroizing::new([2; 32]));
        assert!(!verify(&other, Some(&a), &t));
    }

    #[test]
    fn a_token_from_before_a_rotation_stays_good() {
        let mut ring = KeyRing::single(Zeroizing::new([1; 32]));
        let a = new_anchor();
        let old = token_for(&ring, &a);
        ring.add_current();
        let new = token_for(&ring, &a);
        assert_ne!(old, new, "new forms carry the new key's token");
        assert!(verify(&ring, Some(&a), &old));
        assert!(verify(&ring, Some(&a), &new));
        assert!(!verify(&ring, Some(&new_anchor()), &old));
    }

    #[test]
    fn cross_site_detection() {
        let mut h = HeaderMap::new();
        h.insert("host", "bank.example".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert("origin", "https://bank.example".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(cross_site(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&h));
        // What Chromium sends for a same-origin form under Referrer-Policy: no-referrer.
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        h.insert("origin", "null".parse().unwrap());
        assert!(!cross_site(&h));
        // Without Sec-Fetch-Site, a null origin is refused.
        let mut h = HeaderMap::new();
        h.insert("origin", "null".parse().unwrap());
        assert!(cross_site(&h));
    }
}
