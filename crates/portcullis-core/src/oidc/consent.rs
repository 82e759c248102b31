//! Consent rules: whether a grant covers a request's scopes, and the grant a new "Allow"
//! leaves. Scopes are space-separated (RFC 6749 §3.3); order and repeats do not matter.

use std::collections::BTreeSet;

fn set(scope: &str) -> BTreeSet<&str> {
    scope.split(' ').filter(|s| !s.is_empty()).collect()
}

/// Whether every scope `asked` is among the scopes `granted`.
pub fn scopes_within(asked: &str, granted: &str) -> bool {
    set(asked).is_subset(&set(granted))
}

/// The scopes of a grant widened by a new "Allow": both sets, sorted, once each.
pub fn scope_union(granted: &str, asked: &str) -> String {
    let mut all = set(granted);
    all.extend(set(asked));
    all.into_iter().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_and_union() {
        assert!(scopes_within("openid", "email openid"));
        assert!(scopes_within("openid  email", "email openid"));
        assert!(!scopes_within("openid phone", "email openid"));
        assert!(scopes_within("", "openid"));
        assert_eq!(
            scope_union("openid email", "openid phone"),
            "email openid phone"
        );
        assert_eq!(scope_union("", "openid"), "openid");
    }
}
