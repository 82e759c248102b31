//! The environment overlay: `PORTCULLIS_<SECTION>_<KEY>` over the file's table.

use super::KEYS;

pub fn env_name(section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("PORTCULLIS_{}", key.to_ascii_uppercase())
    } else {
        format!(
            "PORTCULLIS_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}

/// Applies `PORTCULLIS_*` variables over the file's table. Values are read as TOML literals
/// (so `true`, `6` and `"x"` work) and otherwise as plain strings.
pub(super) fn overlay_env(table: &mut toml::Table, get: impl Fn(&str) -> Option<String>) {
    for (section, key) in KEYS {
        let Some(raw) = get(&env_name(section, key)) else {
            continue;
        };
        let value = parse_literal(&raw);
        let target = if section.is_empty() {
            &mut *table
        } else {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => t,
                _ => continue,
            }
        };
        target.insert(key.to_string(), value);
    }
}

fn parse_literal(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_)))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}
