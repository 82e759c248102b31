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
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => o.to_owned(),
        (None, None) => ua.chars().take(60).collect(),
    }
}

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
        assert_eq!(describe_device("curl/8"), "curl/8");
        assert_eq!(describe_or(None, "Unknown device"), "Unknown device");
    }
}
