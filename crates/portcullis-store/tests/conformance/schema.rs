//! The two migration sets describe one schema: after both run, SQLite's and PostgreSQL's
//! tables, columns (types mapped), defaults, keys, indexes, foreign keys, checks and
//! triggers are compared, and any difference fails with both sides named. It needs both
//! databases at once, so it runs when `PORTCULLIS_TEST_POSTGRES` was set at build time.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::{Backend, TestDb};
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

/// Columns whose one difference is known and harmless, with why.
const KNOWN: &[(&str, &str, &str)] = &[(
    "maintenance",
    "id",
    "SQLite's INTEGER PRIMARY KEY is the rowid, which would number a row given none; \
     CHECK (id = 1) and the one statement that writes it (id 1) mean it never does",
)];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    /// `int`, `text`, `bytes` or `bool`.
    kind: String,
    not_null: bool,
    /// The default's words, casts left out.
    default: Option<String>,
    /// The database numbers new rows (SQLite's rowid, PostgreSQL's identity).
    identity: bool,
}

/// (name for an index made by CREATE INDEX, columns, unique, predicate words)
type Index = (Option<String>, Vec<String>, bool, Vec<String>);
/// (columns, referenced table, referenced columns, on delete)
type ForeignKey = (Vec<String>, String, Vec<String>, String);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    indexes: BTreeSet<Index>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// The words of each CHECK, sorted.
    checks: BTreeSet<Vec<String>>,
    /// (timing, event)
    triggers: BTreeSet<(String, String)>,
}

type Schema = BTreeMap<String, Table>;

/// Words one dialect writes and the other does not (`x IN (…)` is `x = ANY (ARRAY[…])` to
/// PostgreSQL).
const NOISE: &[&str] = &[
    "check",
    "any",
    "array",
    "text",
    "in",
    "character",
    "varying",
    "bigint",
    "where",
];

/// The words of an SQL expression: names, literals and numbers, lower-cased, without casts,
/// parentheses, operators or the words each dialect spells its own way.
fn words(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut lit = String::from("'");
            for d in chars.by_ref() {
                lit.push(d);
                if d == '\'' {
                    break;
                }
            }
            out.push(lit);
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut word = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' {
                    word.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            let word = word.to_ascii_lowercase();
            if !NOISE.contains(&word.as_str()) {
                out.push(word);
            }
        } else if c == ':' && chars.peek() == Some(&':') {
            // A cast: skip `::type`.
            chars.next();
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == ' ')
            {
                chars.next();
            }
        }
    }
    out
}

/// The expression inside the parentheses that open at `open`.
fn balanced(s: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[open + 1..i];
                }
            }
            _ => {}
        }
    }
    &s[open..]
}

fn sqlite_kind(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "BIGINT" | "INT" => "int",
        "TEXT" => "text",
        "BLOB" => "bytes",
        "BOOLEAN" => "bool",
        other => return format!("unmapped {other}"),
    }
    .into()
}

fn pg_kind(data_type: &str) -> String {
    match data_type {
        "bigint" | "integer" | "smallint" => "int",
        "text" | "character varying" => "text",
        "bytea" => "bytes",
        "boolean" => "bool",
        other => return format!("unmapped {other}"),
    }
    .into()
}

fn default_words(default: Option<String>) -> Option<String> {
    default.map(|d| words(&d).join(" "))
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = SqliteConnection::connect(url).await.unwrap();
    let tables = sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for t in tables {
        let name: String = t.get("name");
        let create: String = t.get("sql");
        let mut table = Table::default();
        let cols = sqlx::query(
            "SELECT name, type, \"notnull\" AS nn, dflt_value, pk FROM pragma_table_info($1) \
             ORDER BY pk",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let pk_count = cols.iter().filter(|c| c.get::<i64, _>("pk") > 0).count();
        for c in &cols {
            let pk: i64 = c.get("pk");
            let declared: String = c.get("type");
            if pk > 0 {
                table.primary_key.push(c.get("name"));
            }
            table.columns.insert(
                c.get("name"),
                Column {
                    kind: sqlite_kind(&declared),
                    not_null: c.get::<i64, _>("nn") != 0 || pk > 0,
                    default: default_words(c.get("dflt_value")),
                    identity: pk_count == 1 && pk == 1 && declared.eq_ignore_ascii_case("INTEGER"),
                },
            );
        }
        let indexes =
            sqlx::query("SELECT name, \"unique\" AS u, origin FROM pragma_index_list($1)")
                .bind(&name)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        for i in indexes {
            let index: String = i.get("name");
            let origin: String = i.get("origin");
            if origin == "pk" {
                continue;
            }
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            let sql: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1",
            )
            .bind(&index)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(None);
            let predicate = sql
                .as_deref()
                .and_then(|s| s.find(" WHERE ").map(|at| words(&s[at..])))
                .unwrap_or_default();
            table.indexes.insert((
                (origin == "c").then_some(index),
                columns,
                i.get::<i64, _>("u") != 0,
                predicate,
            ));
        }
        let fks = sqlx::query(
            "SELECT id, \"table\" AS t, \"from\" AS f, \"to\" AS c, on_delete \
             FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut grouped: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for fk in fks {
            let e = grouped
                .entry(fk.get("id"))
                .or_insert_with(|| (Vec::new(), fk.get("t"), Vec::new(), fk.get("on_delete")));
            e.0.push(fk.get("f"));
            e.2.push(fk.get("c"));
        }
        table.foreign_keys = grouped.into_values().collect();
        let upper = create.to_ascii_uppercase();
        let mut from = 0;
        while let Some(at) = upper[from..].find("CHECK") {
            let at = from + at;
            let open = at + upper[at..].find('(').unwrap();
            let mut check = words(balanced(&create, open));
            check.sort();
            table.checks.insert(check);
            from = open + 1;
        }
        schema.insert(name, table);
    }
    let triggers: Vec<(String, String)> =
        sqlx::query_as("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (table, sql) in triggers {
        let w = words(&sql);
        let timing = w
            .iter()
            .find(|w| ["before", "after", "instead"].contains(&w.as_str()))
            .cloned()
            .unwrap_or_default();
        for event in ["insert", "update", "delete"] {
            if w.iter().take(6).any(|x| x == event) {
                if let Some(t) = schema.get_mut(&table) {
                    t.triggers
                        .insert((timing.to_uppercase(), event.to_uppercase()));
                }
            }
        }
    }
    schema
}

async fn pg_schema(url: &str) -> Schema {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for name in tables {
        let mut table = Table::default();
        let cols = sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS data_type, \
             is_nullable::text AS nullable, column_default::text AS dflt, \
             is_identity::text AS identity \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for c in cols {
            let default: Option<String> = c.get("dflt");
            let identity = c.get::<String, _>("identity") == "YES"
                || default
                    .as_deref()
                    .is_some_and(|d| d.starts_with("nextval("));
            table.columns.insert(
                c.get("name"),
                Column {
                    kind: pg_kind(&c.get::<String, _>("data_type")),
                    not_null: c.get::<String, _>("nullable") == "NO",
                    default: if identity {
                        None
                    } else {
                        default_words(default)
                    },
                    identity,
                },
            );
        }
        let indexes = sqlx::query(
            "SELECT i.relname::text AS name, ix.indisunique AS u, ix.indisprimary AS pk, \
             pg_get_expr(ix.indpred, ix.indrelid) AS predicate, \
             EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ix.indexrelid) AS owned, \
             ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                   ORDER BY k.ord) AS columns \
             FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_class t ON t.oid = ix.indrelid \
             WHERE t.relname = $1 AND t.relnamespace = 'public'::regnamespace",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for i in indexes {
            let columns: Vec<String> = i.get("columns");
            if i.get::<bool, _>("pk") {
                table.primary_key = columns;
                continue;
            }
            let predicate: Option<String> = i.get("predicate");
            table.indexes.insert((
                (!i.get::<bool, _>("owned")).then(|| i.get("name")),
                columns,
                i.get("u"),
                predicate.map(|p| words(&p)).unwrap_or_default(),
            ));
        }
        let constraints: Vec<(String, String)> = sqlx::query_as(
            "SELECT contype::text, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = $1::regclass AND contype IN ('f', 'c')",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (kind, def) in constraints {
            if kind == "c" {
                let mut check = words(&def);
                check.sort();
                table.checks.insert(check);
                continue;
            }
            // FOREIGN KEY (a, b) REFERENCES t(c, d) [ON DELETE …]
            let cols = balanced(&def, def.find('(').unwrap());
            let after = &def[def.find("REFERENCES ").unwrap() + 11..];
            let paren = after.find('(').unwrap();
            let target = after[..paren].trim().to_owned();
            let ref_cols = balanced(after, paren);
            let on_delete = after
                .find("ON DELETE ")
                .map(|at| after[at + 10..].trim().to_owned())
                .unwrap_or_else(|| "NO ACTION".into());
            let split = |s: &str| s.split(',').map(|c| c.trim().to_owned()).collect();
            table
                .foreign_keys
                .insert((split(cols), target, split(ref_cols), on_delete));
        }
        schema.insert(name, table);
    }
    let triggers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT event_object_table::text, action_timing::text, event_manipulation::text \
         FROM information_schema.triggers WHERE trigger_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (table, timing, event) in triggers {
        if let Some(t) = schema.get_mut(&table) {
            t.triggers.insert((timing, event));
        }
    }
    schema
}

/// Every difference between the two schemas, in words.
fn differences(sqlite: &Schema, pg: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = sqlite.keys().chain(pg.keys()).collect();
    for name in names {
        let (Some(a), Some(b)) = (sqlite.get(name), pg.get(name)) else {
            out.push(format!(
                "table {name}: only on {}",
                if sqlite.contains_key(name) {
                    "SQLite"
                } else {
                    "PostgreSQL"
                }
            ));
            continue;
        };
        let columns: BTreeSet<&String> = a.columns.keys().chain(b.columns.keys()).collect();
        for c in columns {
            if KNOWN.iter().any(|(t, col, _)| t == name && col == c) {
                continue;
            }
            if a.columns.get(c) != b.columns.get(c) {
                out.push(format!(
                    "{name}.{c}: SQLite {:?}, PostgreSQL {:?}",
                    a.columns.get(c),
                    b.columns.get(c)
                ));
            }
        }
        let mut compare = |what: &str, x: String, y: String| {
            if x != y {
                out.push(format!("{name} {what}: SQLite {x}, PostgreSQL {y}"));
            }
        };
        compare(
            "primary key",
            format!("{:?}", a.primary_key),
            format!("{:?}", b.primary_key),
        );
        compare(
            "indexes",
            format!("{:?}", a.indexes),
            format!("{:?}", b.indexes),
        );
        compare(
            "foreign keys",
            format!("{:?}", a.foreign_keys),
            format!("{:?}", b.foreign_keys),
        );
        compare(
            "checks",
            format!("{:?}", a.checks),
            format!("{:?}", b.checks),
        );
        compare(
            "triggers",
            format!("{:?}", a.triggers),
            format!("{:?}", b.triggers),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(portcullis_postgres),
    ignore = "needs PostgreSQL: PORTCULLIS_TEST_POSTGRES was not set when the tests were built"
)]
async fn migrations_describe_one_schema_on_both_databases() {
    let sqlite = TestDb::new(Backend::Sqlite).await;
    let pg = TestDb::new(Backend::Postgres).await;
    for db in [&sqlite, &pg] {
        SqlStore::connect(&db.url, StoreOptions::default())
            .await
            .unwrap()
            .close()
            .await;
    }
    let a = sqlite_schema(&sqlite.url).await;
    let b = pg_schema(&pg.url).await;
    assert!(a.len() >= 20, "{} tables", a.len());
    let diff = differences(&a, &b);
    assert!(
        diff.is_empty(),
        "the SQLite and PostgreSQL migrations differ:\n{}",
        diff.join("\n")
    );
}

#[test]
fn words_drop_casts_and_dialect_spelling() {
    assert_eq!(
        words("CHECK ((channel = ANY (ARRAY['email'::text, 'sms'::text])))"),
        words("CHECK (channel IN ('email', 'sms'))")
    );
    assert_eq!(words("'active'::text"), ["'active'"]);
    assert_eq!(
        words("(revoked_at IS NULL)"),
        words(" WHERE revoked_at IS NULL")
    );
}
