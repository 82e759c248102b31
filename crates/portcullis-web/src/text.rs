//! The words on the pages: one catalogue per language, `locales/<lang>.toml`, embedded in the
//! binary and parsed once.
//!
//! A catalogue is TOML whose tables only group keys: `[signin]` then `title = "Sign in"` is
//! the key `signin.title`. Values are strings; `{name}` in a value is a placeholder filled by
//! [`Catalogue::fill`]. The top-level `lang` key is the page's `<html lang>`.
//!
//! Templates reach the catalogue through their `chrome` value (`chrome.t("signin.title")`),
//! page handlers through [`en`]. The JSON API's problem texts are for programs and are not
//! here. The tests at the bottom hold the catalogue and its users to each other: every key
//! used exists, every key is used, the placeholders match, and no template has words of its
//! own.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;

const EN: &str = include_str!("../locales/en.toml");

/// One language's texts.
#[derive(Debug)]
pub struct Catalogue {
    lang: String,
    entries: HashMap<String, String>,
}

/// The English catalogue, the complete one.
pub fn en() -> &'static Catalogue {
    static EN_CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    EN_CATALOGUE.get_or_init(|| {
        Catalogue::parse(EN).unwrap_or_else(|e| {
            // The tests parse the same embedded file, so this is never reached by a build
            // that passed them; if it were, pages would show keys rather than fail.
            tracing::error!(error = %e, "the English text catalogue does not parse");
            Catalogue {
                lang: "en".into(),
                entries: HashMap::new(),
            }
        })
    })
}

impl Catalogue {
    pub fn parse(source: &str) -> Result<Self, String> {
        let table: toml::Table = source.parse().map_err(|e| format!("{e}"))?;
        let mut entries = HashMap::new();
        let mut lang = None;
        for (key, value) in table {
            if key == "lang" {
                lang = value.as_str().map(str::to_owned);
                continue;
            }
            flatten(&key, value, &mut entries)?;
        }
        Ok(Self {
            lang: lang.ok_or("the catalogue has no top-level lang")?,
            entries,
        })
    }

    /// The language tag, for `<html lang>`.
    pub fn lang(&self) -> &str {
        &self.lang
    }

    /// The text for `key`. A missing key shows as itself (and is logged): a page with a key
    /// on it is better than no page, and the tests make sure it does not happen.
    pub fn t<'a>(&'a self, key: &'a str) -> &'a str {
        match self.entries.get(key) {
            Some(text) => text,
            None => {
                tracing::error!(key, "no text in the catalogue for this key");
                key
            }
        }
    }

    /// The text for `key` with each `{name}` replaced by its value.
    pub fn fill(&self, key: &str, args: &[(&str, &dyn Display)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), &value.to_string());
        }
        text
    }

    /// Every key, for the tests.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

fn flatten(
    prefix: &str,
    value: toml::Value,
    into: &mut HashMap<String, String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(s) => {
            into.insert(prefix.to_owned(), s);
            Ok(())
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                flatten(&format!("{prefix}.{k}"), v, into)?;
            }
            Ok(())
        }
        other => Err(format!("{prefix}: expected a string, found {other}")),
    }
}

/// The `{name}` placeholders of a text, in order of first appearance.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or("");
        let Some(close) = after.find('}') else { break };
        let name = after.get(..close).unwrap_or("");
        if !name.is_empty()
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && !found.contains(&name)
        {
            found.push(name);
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    found
}
