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

/// The English text for `key` (page handlers; templates use `chrome.t`).
pub fn t(key: &'static str) -> &'static str {
    en().t(key)
}

/// The English text for `key` with its placeholders filled.
pub fn fill(key: &str, args: &[(&str, &dyn Display)]) -> String {
    en().fill(key, args)
}

#[cfg(test)]
mod tests {
    //! The catalogue and the code that uses it are checked against each other by reading the
    //! sources: the templates, and the page handlers in `src/pages/`.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::*;

    /// The calls that take a catalogue key: `t`, `t1`, `t2` (templates, through `chrome`),
    /// `fill` and `plural` (page code).
    const CALLS: &[&str] = &["t", "t1", "t2", "fill", "plural"];

    /// Keys a page renders into a data attribute for a script to fill, with the script.
    const FILLED_IN_THE_BROWSER: &[(&str, &str)] = &[
        ("password.checklist.progress", "static/password.js"),
        ("password.checklist.missing", "static/password.js"),
        ("passkey.failed", "static/passkeys.js"),
    ];

    #[derive(Debug)]
    struct Use {
        call: String,
        keys: Vec<String>,
        names: BTreeSet<String>,
        at: String,
    }

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn files(dir: &str, ext: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| {
                let name = p.strip_prefix(root()).unwrap().display().to_string();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no .{ext} files in {dir}");
        out
    }

    fn sources() -> Vec<(String, String)> {
        let mut all = files("templates", "html");
        all.extend(files("src/pages", "rs"));
        all
    }

    fn is_key(s: &str) -> bool {
        s.contains('.')
            && s.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
    }

    fn is_name(s: &str) -> bool {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    }

    /// The string literals of `args` (up to the call's closing parenthesis), and where it ends.
    fn literals(args: &str) -> (Vec<String>, usize) {
        let mut found = Vec::new();
        let mut depth = 0usize;
        let mut chars = args.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let mut lit = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    lit.push(n);
                                }
                            }
                            '"' => break,
                            c => lit.push(c),
                        }
                    }
                    found.push(lit);
                }
                '(' | '[' => depth += 1,
                ')' | ']' if depth == 0 => return (found, i),
                ')' | ']' => depth -= 1,
                _ => {}
            }
        }
        (found, args.len())
    }

    /// Every call of a [`CALLS`] function in `source`.
    fn uses(file: &str, source: &str) -> Vec<Use> {
        let mut out = Vec::new();
        for (open, _) in source.match_indices('(') {
            let before = &source[..open];
            let name_start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let call = &before[name_start..];
            if !CALLS.contains(&call) || before[..name_start].ends_with("fn ") {
                continue;
            }
            let args = &source[open + 1..];
            let (lits, end) = literals(args);
            let line = before.lines().count();
            let at = format!("{file}:{line}");
            let arg_text = args[..end].trim();
            // The functions that pass a key along (text.rs, Chrome, plural) name it so.
            if ["key", "one", "many"]
                .iter()
                .any(|v| arg_text == *v || arg_text.starts_with(&format!("{v},")))
            {
                continue;
            }
            let keys: Vec<String> = lits.iter().filter(|l| is_key(l)).cloned().collect();
            assert!(
                !keys.is_empty(),
                "{at}: {call}({arg_text}) has no literal key"
            );
            let names = lits
                .iter()
                .filter(|l| is_name(l))
                .cloned()
                .collect::<BTreeSet<_>>();
            out.push(Use {
                call: call.to_owned(),
                keys,
                names,
                at,
            });
        }
        out
    }

    fn all_uses() -> Vec<Use> {
        let all: Vec<Use> = sources()
            .iter()
            .flat_map(|(file, source)| uses(file, source))
            .collect();
        assert!(
            all.len() > 200,
            "only {} uses found: the scanner is broken",
            all.len()
        );
        all
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_catalogue_parses_and_names_its_language() {
        let c = Catalogue::parse(EN).unwrap();
        assert_eq!(c.lang(), "en");
        assert_eq!(en().lang(), "en");
        assert_eq!(c.t("signin.title"), "Sign in");
        assert_eq!(
            c.fill("password.rule.too_short", &[("min", &8)]),
            "At least 8 characters"
        );
        assert!(Catalogue::parse("[a]\nb = 1\nlang = \"en\"").is_err());
        assert!(Catalogue::parse("[a]\nb = \"x\"").is_err(), "no lang");
    }

    #[test]
    fn placeholders_are_found_in_order() {
        assert_eq!(placeholders("{met} of {total} ({met})"), ["met", "total"]);
        assert_eq!(
            placeholders("no {Capital} or {} or { x }"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn the_scanner_finds_keys_and_names() {
        let found = uses(
            "x",
            r#"{{ chrome.t1("a.b", "user_id", user_id) }} text::fill("c.d", &[("min", &f(1)), ("max", &2)]) plural("e.one", "e.many", n) format("not.this")"#,
        );
        let got: Vec<(&str, Vec<String>, BTreeSet<String>)> = found
            .iter()
            .map(|u| (u.call.as_str(), u.keys.clone(), u.names.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("t1", vec!["a.b".into()], set(&["user_id"])),
                ("fill", vec!["c.d".into()], set(&["min", "max"])),
                ("plural", vec!["e.one".into(), "e.many".into()], set(&[])),
            ]
        );
    }

    /// (a) Every key a template or a page handler uses is in the catalogue.
    #[test]
    fn every_key_used_is_in_the_catalogue() {
        let c = Catalogue::parse(EN).unwrap();
        let known: BTreeSet<&str> = c.keys().collect();
        let missing: Vec<String> = all_uses()
            .iter()
            .flat_map(|u| u.keys.iter().map(move |k| (k, &u.at)))
            .filter(|(k, _)| !known.contains(k.as_str()))
            .map(|(k, at)| format!("{at}: {k}"))
            .collect();
        assert!(
            missing.is_empty(),
            "keys not in locales/en.toml:\n{missing:#?}"
        );
    }

    /// (b) No key in the catalogue is unused.
    #[test]
    fn every_key_in_the_catalogue_is_used() {
        let used: BTreeSet<String> = all_uses().into_iter().flat_map(|u| u.keys).collect();
        let c = Catalogue::parse(EN).unwrap();
        let unused: Vec<&str> = c
            .keys()
            .filter(|k| !used.contains(*k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(unused.is_empty(), "keys nothing uses:\n{unused:#?}");
    }

    /// (d) The placeholders each use fills are the ones its text has.
    #[test]
    fn placeholders_in_use_match_the_catalogue() {
        let c = Catalogue::parse(EN).unwrap();
        let browser: BTreeMap<&str, &str> = FILLED_IN_THE_BROWSER.iter().copied().collect();
        let mut wrong = Vec::new();
        for u in all_uses() {
            for key in &u.keys {
                let wanted: BTreeSet<String> = placeholders(c.t(key))
                    .into_iter()
                    .map(String::from)
                    .collect();
                let ok = match u.call.as_str() {
                    "t" => match browser.get(key.as_str()) {
                        None => wanted.is_empty(),
                        Some(script) => {
                            let js = std::fs::read_to_string(root().join(script)).unwrap();
                            wanted.iter().all(|n| {
                                js.contains(&format!("{n}:")) || js.contains(&format!("{{{n}}}"))
                            })
                        }
                    },
                    "plural" => wanted.is_subset(&set(&["count"])),
                    _ => wanted == u.names,
                };
                if !ok {
                    wrong.push(format!(
                        "{}: {}({key}) fills {:?}, the text has {:?}",
                        u.at, u.call, u.names, wanted
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        for (key, _) in FILLED_IN_THE_BROWSER {
            assert!(!placeholders(c.t(key)).is_empty(), "{key}");
        }
    }

    /// Removes every `open … close` span.
    fn strip(text: &str, open: &str, close: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            out.push_str(&rest[..i]);
            out.push(' ');
            rest = rest[i + open.len()..]
                .find(close)
                .map_or("", |j| &rest[i + open.len() + j + close.len()..]);
        }
        out.push_str(rest);
        out
    }

    /// The words a person could read in a template once every expression is gone: text
    /// between tags, and the attributes that are read out or shown.
    fn own_words(template: &str) -> Vec<String> {
        let bare = strip(&strip(&strip(template, "{#", "#}"), "{%", "%}"), "{{", "}}");
        let mut shown = Vec::new();
        for attr in ["aria-label", "title", "alt", "placeholder"] {
            for (i, _) in bare.match_indices(&format!(" {attr}=\"")) {
                let start = i + attr.len() + 3;
                let end = bare[start..].find('"').map_or(bare.len(), |j| start + j);
                shown.push(bare[start..end].to_owned());
            }
        }
        shown.push(strip(&bare, "<", ">"));
        shown
            .iter()
            .flat_map(|t| t.split(|c: char| !c.is_alphabetic()))
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn own_words_sees_text_and_read_attributes() {
        assert_eq!(
            own_words(r#"<p class="x">Hello {{ a }}<b>world</b></p>"#),
            ["Hello", "world"]
        );
        assert_eq!(
            own_words(r#"<button aria-label="Close it">{{ chrome.t("x.y") }}</button>"#),
            ["Close", "it"]
        );
        assert_eq!(
            own_words(r#"<input type="hidden" name="method" value="card"> · {# note #}"#),
            Vec::<String>::new()
        );
    }

    /// (c) No template has words of its own: with the tags and the template expressions
    /// taken away, nothing a person could read is left.
    #[test]
    fn templates_have_no_text_outside_the_catalogue() {
        let mut found = Vec::new();
        for (file, source) in files("templates", "html") {
            let words = own_words(&source);
            if !words.is_empty() {
                found.push(format!("{file}: {}", words.join(" ")));
            }
        }
        assert!(found.is_empty(), "text outside the catalogue:\n{found:#?}");
    }

    /// The page handlers put no sentence of their own on a page: a string literal with two
    /// words in it, outside comments, logging and tests, is a text that belongs in the
    /// catalogue.
    #[test]
    fn page_code_has_no_sentences_of_its_own() {
        let mut found = Vec::new();
        for (file, source) in files("src/pages", "rs") {
            let code = source.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let line = line.trim();
                if line.starts_with("//") || line.contains("tracing::") {
                    continue;
                }
                let (lits, _) = literals(&format!("{line})"));
                for lit in lits {
                    let words = lit
                        .split(' ')
                        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() > 1)
                        .count();
                    if words >= 2 && !lit.contains("charset=") {
                        found.push(format!("{file}:{}: {lit:?}", n + 1));
                    }
                }
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn the_sources_are_where_the_tests_look() {
        assert!(Path::new(&root().join("locales/en.toml")).exists());
        assert!(sources().len() > 20);
    }
}
