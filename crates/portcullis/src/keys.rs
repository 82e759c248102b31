//! Key rotation (docs/design/keys.md): `portcullis keys rotate NAME` adds a new current key
//! to a keyring in the secrets folder (running nodes follow the file, no restart),
//! `portcullis keys status` shows each key name's current and old ids and how many rows
//! still use each old id, and the re-seal job (a lease, one node at a time; also
//! `portcullis keys reseal`) moves sealed values to the current key in small batches.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_core::clock::{Clock, SystemClock, UnixTime};
use portcullis_core::ports::{
    AuditReads, Claims, RegistryReads, SealedColumn, SealedValues, StoreResult,
};
use portcullis_crypto::keyring::{load_ring, rotate_ring};
use portcullis_crypto::{KeyRing, KeyedHasher, Sealer};
use portcullis_store::SqlStore;

use crate::app::{AUDIT_KEY, CSRF_KEY, FACTOR_KEY, OUTBOX_KEY, REGISTRY_KEY};
use crate::config::Config;

/// The key names `keys rotate` takes.
pub const ROTATABLE: [&str; 5] = [REGISTRY_KEY, FACTOR_KEY, OUTBOX_KEY, CSRF_KEY, AUDIT_KEY];

/// Every key name, as `keys status` lists them.
pub const ALL: [&str; 5] = [REGISTRY_KEY, FACTOR_KEY, OUTBOX_KEY, CSRF_KEY, AUDIT_KEY];

/// The re-seal job's lease row (migration 0015). How often it runs and how many values
/// one statement reads (then moved one by one) are `[keys]` settings.
pub const RESEAL_JOB: &str = "reseal";

/// Why a key name cannot be rotated, or `None` when it can.
pub fn refusal(name: &str) -> Option<String> {
    if ROTATABLE.contains(&name) {
        return None;
    }
    Some(format!(
        "no key is named {name:?}: the key names are {}",
        ALL.join(", ")
    ))
}

/// `portcullis keys rotate NAME`.
pub fn rotate(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    if let Some(why) = refusal(name) {
        eprintln!("error: {why}");
        return Ok(ExitCode::FAILURE);
    }
    if name == AUDIT_KEY {
        // Never a random key 1: the chain written so far is under the derived one.
        if let Some(ring) = audit_ring(&config.secrets_dir)? {
            if let Some(key) = ring.get(1) {
                portcullis_crypto::keyring::load_or_create_ring_with(
                    &config.secrets_dir,
                    AUDIT_KEY,
                    || key.clone(),
                )
                .context("creating the audit key")?;
            }
        }
    }
    let ring = match rotate_ring(&config.secrets_dir, name) {
        Err(e @ portcullis_crypto::secrets::SecretsError::FromEnvironment { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
        rotated => rotated
            .with_context(|| format!("rotating {name} in {}", config.secrets_dir.display()))?,
    };
    let old: Vec<String> = ring.old_ids().iter().map(u32::to_string).collect();
    println!(
        "{name}: key {} is current; old keys kept for reading: {}",
        ring.current_id(),
        old.join(", ")
    );
    println!(
        "Running nodes use it within a second (they re-read {}). Copy the file to every \
         node's secrets folder first when nodes do not share it (docs/operations.md, \
         \"Rotate keys\").",
        config.secrets_dir.join(name).display()
    );
    if name == AUDIT_KEY {
        println!(
            "New audit entries are chained under key {}; each entry names its key and \
             `portcullis audit verify` checks it under that key, so the old keys stay.",
            ring.current_id()
        );
    } else if name == REGISTRY_KEY {
        println!(
            "Cards are found under every key; registry rows move to the new key when the \
             issuer's file is next imported (`portcullis registry import FILE`), and \
             `portcullis keys status` counts the rows left on old keys."
        );
    } else if name != CSRF_KEY {
        println!(
            "The re-seal job moves what is sealed under the old keys; `portcullis keys \
             reseal` does it now, and `portcullis keys status` shows what is left."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One key name's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    pub name: &'static str,
    pub current: u32,
    /// Each old id, with how many rows still use it (`None`: nothing stored uses this key,
    /// as for the CSRF key, whose tokens live only in forms).
    pub old: Vec<(u32, Option<i64>)>,
    /// Rows on the current key.
    pub on_current: Option<i64>,
}

impl KeyStatus {
    /// Rows still on an old key.
    pub fn rows_on_old(&self) -> i64 {
        self.old.iter().filter_map(|(_, n)| *n).sum()
    }
}

/// Every column sealed under `name` (`outbox.key` seals two: queued messages and webhook
/// signing secrets); empty when nothing stored uses the key.
fn columns_of(name: &str) -> Vec<SealedColumn> {
    SealedColumn::ALL
        .into_iter()
        .filter(|column| column.key_name() == name)
        .collect()
}

/// The key names that seal columns, each once, in [`SealedColumn::ALL`]'s order.
fn sealing_key_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for column in SealedColumn::ALL {
        if !names.contains(&column.key_name()) {
            names.push(column.key_name());
        }
    }
    names
}

/// Values sealed under key `id` in all of `columns`.
async fn rows_under(
    store: &dyn SealedValues,
    columns: &[SealedColumn],
    id: u32,
) -> StoreResult<i64> {
    let mut total = 0;
    for column in columns {
        for pattern in Sealer::like_patterns(id) {
            total += store.count_sealed(*column, &pattern).await?;
        }
    }
    Ok(total)
}

/// `audit.key` as it is in `secrets`, or, before a first start has created it, the ring of
/// the one key it will be created with (derived from `registry.key`'s key 1, the key the
/// chain was under before it had its own); `None` without either file.
pub fn audit_ring(secrets: &std::path::Path) -> anyhow::Result<Option<KeyRing>> {
    if let Some(ring) = load_ring(secrets, AUDIT_KEY).context("reading the audit key")? {
        return Ok(Some(ring));
    }
    Ok(load_ring(secrets, REGISTRY_KEY)
        .context("reading the registry key")?
        .map(|registry| {
            KeyRing::single(portcullis_core::audit::derived_key(&KeyedHasher::new(
                registry.first().clone(),
            )))
        }))
}

/// The audit entries per key id, as `db check` prints them: `key 1: 120, key 2: 8`.
pub async fn audit_rows_text(store: &dyn AuditReads) -> StoreResult<String> {
    let counts = store.count_audit_by_key().await?;
    if counts.is_empty() {
        return Ok("no entries".to_owned());
    }
    Ok(counts
        .iter()
        .map(|(id, n)| format!("key {id}: {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Rows per key id in `counts` shown against `ring`: the current id's, and each old id's
/// (ids the file no longer holds included, so they are not missed).
fn by_key_status(name: &'static str, ring: &KeyRing, counts: &[(i64, i64)]) -> KeyStatus {
    let rows = |id: u32| {
        counts
            .iter()
            .filter(|(k, _)| *k == i64::from(id))
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    let mut old: Vec<(u32, Option<i64>)> = ring
        .old_ids()
        .into_iter()
        .map(|id| (id, Some(rows(id))))
        .collect();
    for (id, n) in counts {
        if let Ok(id) = u32::try_from(*id) {
            if ring.get(id).is_none() {
                old.push((id, Some(*n)));
            }
        }
    }
    KeyStatus {
        name,
        current: ring.current_id(),
        old,
        on_current: Some(rows(ring.current_id())),
    }
}

/// Every key name's current id, old ids and rows per id (keys missing from the folder are
/// left out).
pub async fn status<S: SealedValues + RegistryReads + AuditReads>(
    secrets: &std::path::Path,
    store: &S,
) -> anyhow::Result<Vec<KeyStatus>> {
    let mut out = Vec::new();
    for name in ALL {
        let ring = if name == AUDIT_KEY {
            audit_ring(secrets)?
        } else {
            load_ring(secrets, name).with_context(|| format!("reading {name}"))?
        };
        let Some(ring) = ring else {
            continue;
        };
        if name == REGISTRY_KEY {
            out.push(by_key_status(name, &ring, &store.count_by_key().await?));
            continue;
        }
        if name == AUDIT_KEY {
            out.push(by_key_status(
                name,
                &ring,
                &store.count_audit_by_key().await?,
            ));
            continue;
        }
        let columns = columns_of(name);
        let mut old = Vec::new();
        for id in ring.old_ids() {
            let rows = if columns.is_empty() {
                None
            } else {
                Some(rows_under(store, &columns, id).await?)
            };
            old.push((id, rows));
        }
        let on_current = if columns.is_empty() {
            None
        } else {
            Some(rows_under(store, &columns, ring.current_id()).await?)
        };
        out.push(KeyStatus {
            name,
            current: ring.current_id(),
            old,
            on_current,
        });
    }
    // The OpenID Connect signing keys: rotated by `portcullis oidc keys rotate`, they seal
    // nothing (the JWKS publishes the current key and the one before it).
    let oidc = portcullis_core::service::oidc::SIGNING_RING;
    if let Some(ring) = load_ring(secrets, oidc).with_context(|| format!("reading {oidc}"))? {
        out.push(KeyStatus {
            name: oidc,
            current: ring.current_id(),
            old: ring.old_ids().into_iter().map(|id| (id, None)).collect(),
            on_current: None,
        });
    }
    Ok(out)
}

/// `keys status` as printed.
pub fn describe(statuses: &[KeyStatus]) -> String {
    let mut out = String::new();
    for s in statuses {
        let rows = |n: Option<i64>| match n {
            Some(n) if s.name == REGISTRY_KEY => format!("{n} registry rows"),
            Some(n) if s.name == AUDIT_KEY => format!("{n} audit entries"),
            Some(n) => format!("{n} rows"),
            None => "nothing stored".to_owned(),
        };
        out.push_str(&format!(
            "{:<13} current {} ({})",
            s.name,
            s.current,
            rows(s.on_current)
        ));
        if s.old.is_empty() {
            out.push_str("; no old keys");
        } else {
            let old: Vec<String> = s
                .old
                .iter()
                .map(|(id, n)| format!("{id} ({})", rows(*n)))
                .collect();
            out.push_str(&format!("; old: {}", old.join(", ")));
            if s.name == REGISTRY_KEY && s.rows_on_old() > 0 {
                out.push_str(
                    "; the next `portcullis registry import` of the issuer's file moves them",
                );
            }
        }
        if s.name == REGISTRY_KEY {
            out.push_str(" (recovery-code hints made under an old key keep it: old keys are kept)");
        }
        if s.name == portcullis_core::service::oidc::SIGNING_RING {
            out.push_str(" (signs ID tokens; rotated by `portcullis oidc keys rotate`)");
        }
        out.push('\n');
    }
    out
}

/// `portcullis keys status`.
pub async fn status_cli(config: &Config, store: &SqlStore) -> anyhow::Result<ExitCode> {
    let statuses = status(&config.secrets_dir, store).await?;
    print!("{}", describe(&statuses));
    Ok(ExitCode::SUCCESS)
}

/// What one pass of the re-seal did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Values moved to the current key.
    pub moved: u64,
    /// Values no key of the ring opens (a key removed from the file, or damage): left as
    /// they are, and counted.
    pub unopenable: u64,
    /// Values changed by a use case between the read and the move (already under the new
    /// key by then): left to it.
    pub raced: u64,
}

/// Moves every value of `column` that is not under `sealer`'s current key, `batch` at a
/// time: one read per batch, then one conditional UPDATE per value, never a long
/// transaction.
pub async fn reseal_column(
    store: &dyn SealedValues,
    column: SealedColumn,
    sealer: &Sealer,
    batch: u32,
) -> StoreResult<Resealed> {
    let mut done = Resealed::default();
    // The file as it is now, not as last looked at: a rotation a moment ago counts.
    let current = sealer.ring().refresh().current_id();
    let pattern = format!("sealed:v2:{current}:%");
    let mut after = 0;
    loop {
        let values = store
            .sealed_not_under(column, &pattern, after, batch)
            .await?;
        let Some(last) = values.last() else {
            break;
        };
        after = last.row_id;
        for value in &values {
            match sealer.reseal(&value.value) {
                Some(new) => {
                    if store
                        .replace_sealed(column, value.row_id, &value.value, &new)
                        .await?
                    {
                        done.moved += 1;
                    } else {
                        done.raced += 1;
                    }
                }
                None => done.unopenable += 1,
            }
        }
    }
    Ok(done)
}

/// The sealers of each sealed column, as the serving process holds them.
#[derive(Clone, Debug)]
pub struct Sealers {
    pub factor: Sealer,
    pub outbox: Option<Sealer>,
    /// Webhook signing secrets: the outbox keyring under their own label.
    pub webhook: Option<Sealer>,
}

impl Sealers {
    pub fn of(built: &crate::app::Built) -> Self {
        Self {
            factor: built.app.factor_sealer().clone(),
            outbox: built.store.outbox_sealer(),
            webhook: built.store.webhook_sealer(),
        }
    }
}

/// One pass over every sealed column, `batch` values per read.
pub async fn reseal_all(
    store: &dyn SealedValues,
    sealers: &Sealers,
    batch: u32,
) -> StoreResult<Resealed> {
    let mut total = Resealed::default();
    let columns = [
        (SealedColumn::FactorSecret, Some(&sealers.factor)),
        (SealedColumn::OutboxBody, sealers.outbox.as_ref()),
        (SealedColumn::WebhookSecret, sealers.webhook.as_ref()),
    ];
    for (column, sealer) in columns {
        let Some(sealer) = sealer else { continue };
        let done = reseal_column(store, column, sealer, batch).await?;
        total.moved += done.moved;
        total.unopenable += done.unopenable;
        total.raced += done.raced;
    }
    Ok(total)
}

/// `portcullis keys reseal`: one pass now, whatever the lease.
pub async fn reseal_cli(
    store: &SqlStore,
    sealers: &Sealers,
    batch: u32,
) -> anyhow::Result<ExitCode> {
    let done = reseal_all(store, sealers, batch).await?;
    println!(
        "moved {} sealed values to the current keys ({} could not be opened, {} changed \
         meanwhile)",
        done.moved, done.unopenable, done.raced
    );
    Ok(if done.unopenable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the re-seal every `interval` on the node that takes the lease, `batch` values per
/// read.
pub fn spawn_job(
    store: Arc<SqlStore>,
    sealers: Sealers,
    interval: Duration,
    batch: u32,
) -> crate::inactivity::LeasedJob {
    let lease_secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1);
    let sealers = Arc::new(sealers);
    crate::inactivity::LeasedJob::spawn(RESEAL_JOB, interval, move |node| {
        let (store, sealers) = (store.clone(), sealers.clone());
        async move {
            let now = SystemClock.now();
            match store
                .claim_job(RESEAL_JOB, &node, now, UnixTime(now.0 + lease_secs))
                .await
            {
                Ok(true) => match reseal_all(store.as_ref(), &sealers, batch).await {
                    Ok(done) if done.moved > 0 || done.unopenable > 0 => tracing::info!(
                        moved = done.moved,
                        unopenable = done.unopenable,
                        "re-seal job moved values to the current keys"
                    ),
                    Ok(_) => tracing::debug!("re-seal job: nothing to move"),
                    Err(e) => tracing::warn!(error = %e, "re-seal job failed"),
                },
                Ok(false) => tracing::debug!("re-seal job: another node holds the lease"),
                Err(e) => tracing::warn!(error = %e, "re-seal job could not take its lease"),
            }
        }
    })
}

/// `db check`'s key-id check: the registry rows, and for each sealed column the values,
/// under a key id its keyring in `secrets` does not hold (a rotated keyring not copied to this folder, or a
/// keyring from another backup). One line for the report, and the problems found.
pub async fn check_key_ids<S: SealedValues + RegistryReads + AuditReads>(
    secrets: &std::path::Path,
    store: &S,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    // Registry rows and audit entries name the key they are under.
    if let Some(ring) =
        load_ring(secrets, REGISTRY_KEY).with_context(|| format!("reading {REGISTRY_KEY}"))?
    {
        let counts = store.count_by_key().await?;
        seen.push(ring_line(REGISTRY_KEY, &ring));
        problems.extend(unknown_key_rows(
            secrets,
            (REGISTRY_KEY, &ring),
            &counts,
            "registry rows",
            "those cards are not found",
        ));
    }
    if let Some(ring) = audit_ring(secrets)? {
        let counts = store.count_audit_by_key().await?;
        seen.push(ring_line(AUDIT_KEY, &ring));
        problems.extend(unknown_key_rows(
            secrets,
            (AUDIT_KEY, &ring),
            &counts,
            "audit entries",
            "they cannot be verified",
        ));
    }
    for name in sealing_key_names() {
        let Some(ring) = load_ring(secrets, name).with_context(|| format!("reading {name}"))?
        else {
            continue;
        };
        let columns = columns_of(name);
        let mut total = 0;
        for column in &columns {
            total += store.count_sealed(*column, "sealed:%").await?;
        }
        let mut known = 0;
        for id in ring.ids() {
            known += rows_under(store, &columns, id).await?;
        }
        seen.push(ring_line(name, &ring));
        let ids: Vec<String> = ring.ids().iter().map(u32::to_string).collect();
        if total > known {
            problems.push(format!(
                "{} values are sealed under a key id {name} in {} does not hold (it holds {}): \
                 copy the keyring from the node that rotated it, or restore the secrets folder \
                 from the same backup as the database",
                total - known,
                secrets.display(),
                ids.join(", ")
            ));
        }
    }
    Ok((seen.join("; "), problems))
}

/// `db check`'s line for one keyring: `registry.key 1,2 (current 2)`.
fn ring_line(name: &str, ring: &KeyRing) -> String {
    let ids: Vec<String> = ring.ids().iter().map(u32::to_string).collect();
    format!("{name} {} (current {})", ids.join(","), ring.current_id())
}

/// The problem, if any, of the rows in `counts` (per key id) under an id the keyring
/// `name` does not hold.
fn unknown_key_rows(
    secrets: &std::path::Path,
    (name, ring): (&str, &KeyRing),
    counts: &[(i64, i64)],
    rows: &str,
    consequence: &str,
) -> Option<String> {
    let unknown: i64 = counts
        .iter()
        .filter(|(id, _)| u32::try_from(*id).map_or(true, |id| ring.get(id).is_none()))
        .map(|(_, n)| *n)
        .sum();
    let ids: Vec<String> = ring.ids().iter().map(u32::to_string).collect();
    (unknown > 0).then(|| {
        format!(
            "{unknown} {rows} are under a key id {name} in {} does not hold (it holds {}): \
             {consequence}; copy the keyring from the node that rotated it, or restore the \
             secrets folder from the same backup as the database",
            secrets.display(),
            ids.join(", ")
        )
    })
}
