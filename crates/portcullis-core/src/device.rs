//! How a device is described to its owner: a short name from its user agent, for the
//! sessions list, the trusted devices and the new-device notice.

/// A short device name from a user agent: "Chrome on Android".
pub fn describe_device(ua: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let os = [
        ("iPhone", "iPhone"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS", "Mac"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    // Only names from the lists above: a user agent is the client's own text, and any of
    // it repeated in a message from the bank would let a stranger write into that message.
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("a browser on {o}"),
        (None, None) => UNKNOWN_BROWSER.to_owned(),
    }
}

/// What an unrecognised user agent is called.
pub const UNKNOWN_BROWSER: &str = "a browser";

/// A device's description, or `fallback` when it sent no user agent.
pub fn describe_or(user_agent: Option<&str>, fallback: &str) -> String {
    user_agent
        .map(describe_device)
        .unwrap_or_else(|| fallback.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_by_browser_and_system() {
        assert_eq!(
            describe_device(
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
            ),
            "Chrome on Android"
        );
        assert_eq!(describe_device("Firefox/128.0"), "Firefox");
        assert_eq!(describe_device("curl/8"), "a browser");
        assert_eq!(
            describe_device("Call +1 555 0100 now: your account is at risk (Windows NT 10.0)"),
            "a browser on Windows"
        );
        assert_eq!(
            describe_device("Visit evil.example to keep your card active"),
            "a browser"
        );
        assert_eq!(describe_or(None, "Unknown device"), "Unknown device");
    }
}
