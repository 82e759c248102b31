//! Cookies: reading them, and writing them with the strict attributes every cookie here
//! carries (`HttpOnly`, `SameSite`, `Path=/`, and `Secure` with the `__Host-` prefix).

use axum::http::{header, HeaderMap, HeaderValue};

pub const SESSION: &str = "portcullis_session";
pub const CSRF: &str = "portcullis_csrf";
/// The device token: lets a device that signed in before keep its own failure allowance.
pub const DEVICE: &str = "portcullis_device";
/// Browsers cap cookie lifetimes at 400 days.
pub const DEVICE_MAX_AGE: i64 = 400 * 86_400;

/// The cookie's name on the wire.
pub fn name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The value of cookie `name`, if present.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

#[derive(Clone, Copy)]
pub enum SameSite {
    Lax,
    Strict,
}

/// A `Set-Cookie` value. `max_age: None` is a browser-session cookie; `Some(0)` deletes.
pub fn set(
    name: &str,
    value: &str,
    max_age: Option<i64>,
    same_site: SameSite,
    secure: bool,
) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly");
    s.push_str(match same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::Strict => "; SameSite=Strict",
    });
    if secure {
        s.push_str("; Secure");
    }
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; __Host-portcullis_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(get(&h, "__Host-portcullis_session").as_deref(), Some("tok"));
        assert_eq!(get(&h, "portcullis_session"), None);
    }

    #[test]
    fn strict_attributes() {
        let v = set("__Host-x", "v", Some(60), SameSite::Lax, true);
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-x=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
    }
}
