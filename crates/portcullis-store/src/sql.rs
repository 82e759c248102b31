//! How the store writes SQL: every statement is a named constant declared with
//! [`statements!`], which also lists it in its module's `STATEMENTS`. The crate gathers them
//! all in [`crate::statements`], and the conformance suite prepares every one on both
//! databases (`statements_prepare_on_both_databases`), so a typo or a dialect slip fails at
//! test time, as `sqlx::query!` would at compile time. A source test
//! (`no_sql_outside_named_statements`) refuses any statement written inline.

/// Which databases a statement is for. Almost all are for both; the few dialect
/// differences stay inside this crate and are named here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Both,
    Sqlite,
    Postgres,
}

/// One named statement.
#[derive(Clone, Copy, Debug)]
pub struct Statement {
    pub name: &'static str,
    pub sql: &'static str,
    pub dialect: Dialect,
}

/// `statements! { NAME = "SQL"; NAME2: postgres = "SQL"; … }` declares each as a
/// `pub(crate) const NAME: &str` and lists them all in `pub(crate) const STATEMENTS`.
macro_rules! statements {
    ($( $(#[doc = $doc:literal])* $name:ident $(: $dialect:ident)? = $sql:expr; )*) => {
        $( $(#[doc = $doc])* pub(crate) const $name: &str = $sql; )*
        /// Every statement of this module, for the test that prepares them all.
        pub(crate) const STATEMENTS: &[$crate::sql::Statement] = &[$(
            $crate::sql::Statement {
                name: concat!(module_path!(), "::", stringify!($name)),
                sql: $name,
                dialect: statements!(@dialect $($dialect)?),
            },
        )*];
    };
    (@dialect) => { $crate::sql::Dialect::Both };
    (@dialect sqlite) => { $crate::sql::Dialect::Sqlite };
    (@dialect postgres) => { $crate::sql::Dialect::Postgres };
}

pub(crate) use statements;

/// Appends `rows` parenthesised rows of `columns` placeholders each to a multi-row
/// `INSERT`, each row opened by `open` (`"("`, or `"(constant, "` for a value written into
/// the statement). SQLite gets anonymous `?` placeholders: sqlx looks each numbered
/// parameter up by name, which SQLite does by a linear scan, so thousands of `$n`
/// parameters cost ~10^8 steps per statement (measured on the registry import: 3,000
/// records/s instead of tens of thousands). PostgreSQL gets `$1 … $n`.
pub(crate) fn push_rows(
    sql: &mut String,
    rows: usize,
    columns: usize,
    backend: crate::Backend,
    open: &str,
) {
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(open);
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                crate::Backend::Sqlite => sql.push('?'),
                crate::Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(i * columns + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
}
