//! Every statement the store runs, prepared on both databases: a typo or a dialect slip
//! (a PostgreSQL-only cast, a SQLite-only function, a column that is not there) fails here,
//! as `sqlx::query!` would at compile time. And a source check that keeps it so: no SQL is
//! written anywhere in the store but in its named statements.

use portcullis_testkit::{both, Backend};
use sqlx::Executor;

use crate::support::store;

async fn statements_prepare(backend: Backend) {
    let (s, _db) = store(backend).await;
    let kind = match backend {
        Backend::Sqlite => portcullis_store::Backend::Sqlite,
        Backend::Postgres => portcullis_store::Backend::Postgres,
    };
    let statements = portcullis_store::statements(kind);
    assert!(statements.len() > 100, "{} statements", statements.len());
    let mut conn = s.pool().acquire().await.unwrap();
    let mut broken = Vec::new();
    for (name, sql) in &statements {
        if let Err(e) = (&mut *conn).prepare(sql.as_str()).await {
            broken.push(format!("{name}: {e}"));
        }
    }
    assert!(
        broken.is_empty(),
        "statements that do not prepare on {backend:?}:\n{}",
        broken.join("\n")
    );
}
both!(statements_prepare_on_both_databases, statements_prepare);

/// Removes every `name! { … }` block for the given macro names, braces matched.
fn without_blocks(src: &str, openers: &[&str]) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    loop {
        let next = openers
            .iter()
            .filter_map(|o| rest.find(o).map(|i| (i, o.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let after = &rest[at + len..];
        let open = after.find('{').unwrap();
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after.char_indices().skip(open) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
}

/// No SQL outside the named statements: every `sqlx::query…(` takes a constant, and no
/// string literal holding SQL is written anywhere else in the store's source (the column
/// lists of `macro_rules!` feed the statements; `registry::upsert_sql`,
/// `registry::sqlite_merge_sql` and `audit::append_sql` are the statements built at run
/// time, by their row count, and are prepared above at several sizes).
#[test]
fn no_sql_outside_named_statements() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let sql = regex_lite("SELECT |INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|PRAGMA |BEGIN ");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let src = without_blocks(
            &src,
            &[
                "statements! {",
                "macro_rules! ",
                "pub(crate) fn upsert_sql(",
                "pub(crate) fn sqlite_merge_sql(",
                "pub(crate) fn append_sql(",
            ],
        );
        for (n, line) in src.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for call in [
                "query(\"",
                "query_as(\"",
                "query_scalar(\"",
                "query(&format!",
                "query(&sql",
            ] {
                if code.contains(call) {
                    found.push(format!("{}:{}: inline SQL: {code}", path.display(), n + 1));
                }
            }
            if code.contains('"') && sql(code) {
                found.push(format!("{}:{}: SQL literal: {code}", path.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "write SQL as a named statement (statements! in its module):\n{}",
        found.join("\n")
    );
}

/// A tiny matcher for alternatives of literal text, `[a-z_]+` allowed in one place.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let alternatives: Vec<String> = pattern.split('|').map(str::to_owned).collect();
    move |line: &str| {
        alternatives
            .iter()
            .any(|alt| match alt.split_once("[a-z_]+") {
                None => line.contains(alt.as_str()),
                Some((before, after)) => line.match_indices(before).any(|(i, _)| {
                    let rest = &line[i + before.len()..];
                    let word = rest
                        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                        .unwrap_or(rest.len());
                    word > 0 && rest[word..].starts_with(after)
                }),
            })
    }
}
