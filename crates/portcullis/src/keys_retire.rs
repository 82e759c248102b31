//! `portcullis keys retire NAME ID` (docs/design/keys.md, "Retiring a key"): removes an old
//! key from its keyring once nothing needs it — no stored row is under it (`keys status`
//! counts them), and for a key whose uses are short-lived and not stored, the longest of
//! them has run out since the last rotation. The file is rewritten atomically under the
//! rotation's lock.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{AuditReads, RegistryReads, SealedValues};
use portcullis_crypto::keyring::{env_var, last_rotated, load_ring, retire_key};
use portcullis_crypto::secrets::SecretsError;

use crate::app::{AUDIT_KEY, CSRF_KEY, REGISTRY_KEY};
use crate::config::Config;
use crate::keys::{refusal, status};

/// Why the key `id` of `name` must stay, or `None` when it can go. `now` is the time the
/// short-lived uses' windows are measured to.
pub async fn retire_refusal<S: SealedValues + RegistryReads + AuditReads>(
    config: &Config,
    store: &S,
    name: &str,
    id: u32,
    now: UnixTime,
) -> anyhow::Result<Option<String>> {
    if let Some(why) = refusal(name) {
        return Ok(Some(why));
    }
    let var = env_var(name);
    if std::env::var_os(&var).is_some() {
        return Ok(Some(
            SecretsError::FromEnvironment {
                name: name.to_owned(),
                var,
            }
            .to_string(),
        ));
    }
    let secrets = &config.secrets_dir;
    let Some(ring) = load_ring(secrets, name).with_context(|| format!("reading {name}"))? else {
        return Ok(Some(format!(
            "there is no {name} in {}: nothing to retire",
            secrets.display()
        )));
    };
    if ring.get(id).is_none() {
        let held: Vec<String> = ring.ids().iter().map(u32::to_string).collect();
        return Ok(Some(format!(
            "{name} has no key {id} (it holds {})",
            held.join(", ")
        )));
    }
    if ring.current_id() == id {
        return Ok(Some(format!(
            "key {id} is {name}'s current key: rotate first (`portcullis keys rotate {name}`), \
             then retire the old one"
        )));
    }
    let statuses = status(secrets, store).await?;
    let rows = statuses
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| s.old.iter())
        .filter(|(old, _)| *old == id)
        .filter_map(|(_, n)| *n)
        .sum::<i64>();
    if rows > 0 {
        let what = match name {
            REGISTRY_KEY => {
                "registry rows are still under it: the next `portcullis registry import` of \
                 the issuer's file moves them"
            }
            AUDIT_KEY => {
                "audit entries are still under it, and each is verified under its own key \
                 for as long as the log keeps it"
            }
            _ => "sealed values are still under it: `portcullis keys reseal` moves them",
        };
        return Ok(Some(format!("{rows} {what} (`portcullis keys status`)")));
    }
    if name == REGISTRY_KEY {
        // Recovery codes made while this key was current carry their hint under it with no
        // key id to count them by, and the ring's first key also keys the decoy questions
        // and a paused card's step.
        return Ok(Some(format!(
            "recovery codes made while {REGISTRY_KEY}'s key {id} was current carry hints \
             under it, which nothing counts yet (docs/design/keys.md, \"The registry \
             key\"): an old registry key is kept"
        )));
    }
    if name == CSRF_KEY {
        // A form's token lives as long as the page it is on: at most a session's life.
        let window = Duration::from_secs(
            u64::try_from(config.policies().session.absolute_secs).unwrap_or(0),
        );
        let rotated = last_rotated(secrets, name)
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .and_then(|at| i64::try_from(at.as_secs()).ok())
            .unwrap_or(i64::MAX);
        let since = Duration::from_secs(u64::try_from(now.0 - rotated).unwrap_or(0));
        if since < window {
            let left = (window - since).as_secs().div_ceil(60);
            return Ok(Some(format!(
                "forms shown before {name}'s last rotation may still carry a token under key \
                 {id}: retire it once a session's longest life has passed since then (in \
                 {left} minutes)"
            )));
        }
    }
    Ok(None)
}

/// `portcullis keys retire NAME ID`.
pub async fn retire_cli<S: SealedValues + RegistryReads + AuditReads>(
    config: &Config,
    store: &S,
    name: &str,
    id: u32,
    now: UnixTime,
) -> anyhow::Result<ExitCode> {
    if let Some(why) = retire_refusal(config, store, name, id, now).await? {
        eprintln!("error: {name} key {id} is not retired: {why}");
        return Ok(ExitCode::FAILURE);
    }
    match retire_key(&config.secrets_dir, name, id) {
        Ok(ring) => {
            let held: Vec<String> = ring.ids().iter().map(u32::to_string).collect();
            println!(
                "{name}: key {id} removed; it holds {} (current {}). Copy the file to every \
                 node's secrets folder (docs/operations.md, \"Rotate keys\"), and keep a \
                 backup of the secrets folder for as long as backups of the database taken \
                 before the move need the old key.",
                held.join(", "),
                ring.current_id()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {name} key {id} is not retired: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
