//! Registry import throughput: generates a registry file, imports it into a fresh database,
//! then imports it again (every row an update) and prints both rates.
//!
//! ```text
//! cargo run --release -p portcullis --example import_bench -- [--count N] [--database-url URL] [--jsonl]
//! ```
//! Without `--database-url` the database is a SQLite file in a temporary folder. A PostgreSQL
//! database given by URL should be empty: the figures assume the first pass inserts.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use portcullis::gen::write_demo_registry;
use portcullis::import::{import_file, ImportContext, ImportReport};
use portcullis_core::ports::RegistryReads;
use portcullis_crypto::secrets::load_or_create_key;
use portcullis_crypto::KeyRing;
use portcullis_store::{SqlStore, StoreOptions};

struct Options {
    count: u64,
    database_url: Option<String>,
    jsonl: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        count: 1_000_000,
        database_url: None,
        jsonl: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => {
                let n = args.next().context("--count needs a number")?;
                options.count = n
                    .replace('_', "")
                    .parse()
                    .context("--count needs a number")?;
            }
            "--database-url" => {
                options.database_url = Some(args.next().context("--database-url needs a URL")?);
            }
            "--jsonl" => options.jsonl = true,
            other => {
                bail!("unknown argument {other:?} (use --count N, --database-url URL, --jsonl)")
            }
        }
    }
    Ok(options)
}

fn print_pass(name: &str, report: &ImportReport) {
    let seconds = report.elapsed.as_secs_f64();
    let rate = report.records as f64 / seconds.max(f64::EPSILON);
    println!(
        "{name:<10} {:>9} records  {seconds:>7.2} s  {rate:>10.0} records/s",
        report.records
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let dir = tempfile::Builder::new().prefix("import-bench-").tempdir()?;
    let file: PathBuf = dir.path().join(if options.jsonl {
        "registry.jsonl"
    } else {
        "registry.csv"
    });

    let started = Instant::now();
    write_demo_registry(&file, options.count, 2024)?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "generated  {:>9} records  {:>7.2} s  ({:.1} MB, {})",
        options.count,
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6,
        file.display()
    );

    let url = options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = SqlStore::connect(&url, StoreOptions::default()).await?;
    println!("database   {}", store_label(&url));
    let keys = KeyRing::single(load_or_create_key(
        &dir.path().join("secrets"),
        "registry.key",
    )?);

    let policies = portcullis_core::config::Policies::default();
    let audit = portcullis_core::audit::audit_key(&portcullis_crypto::KeyedHasher::new(
        keys.first().clone(),
    ))
    .into();
    let ctx = ImportContext {
        store: &store,
        keys: &keys,
        audit: &audit,
        policies: &policies,
        actor: "cli:bench",
        now: portcullis_core::clock::UnixTime(1_700_000_000),
    };
    let first = import_file(&ctx, &file).await?;
    print_pass("import", &first);
    let second = import_file(&ctx, &file).await?;
    print_pass("re-import", &second);

    let stored = store.count_records().await?;
    println!("stored     {stored:>9} records");
    if u64::try_from(stored).ok() != Some(options.count) {
        bail!(
            "expected {} records in the database, found {stored}",
            options.count
        );
    }
    store.close().await;
    Ok(())
}

/// The URL without a password, if it has one.
fn store_label(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_owned(),
    }
}
