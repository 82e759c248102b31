//! Keyrings: each key name in the secrets folder (`factor.key`, `csrf.key`, …) is one file
//! holding numbered 256-bit keys and which one is current. What a key protects records the
//! key's id (a sealed value starts `sealed:v2:ID:`), so a new current key can be added while
//! the old ones stay for reading and verifying, and running processes pick the new one up
//! by re-reading the file when it changes (no restart).
//!
//! The file (owner-only, replaced atomically by a rename on rotation):
//!
//! ```text
//! # portcullis keyring: numbered keys, the current one seals and signs
//! current 2
//! key 1 <64 hex digits>
//! key 2 <64 hex digits>
//! ```
//!
//! A file of one line of 64 hexadecimal digits (how keys were kept before keyrings) is the
//! keyring whose only and current key is id 1, so data written before rotation existed
//! needs no change.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use zeroize::Zeroizing;

use crate::secrets::SecretsError;

/// One key name's keys.
#[derive(Clone)]
pub struct KeyRing {
    current: u32,
    /// The current key (also in `keys`), kept apart so reading it cannot fail.
    current_key: Zeroizing<[u8; 32]>,
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("ids", &self.ids())
            .finish()
    }
}

impl KeyRing {
    /// A keyring of one key, id 1.
    pub fn single(key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            current: 1,
            current_key: key.clone(),
            keys: BTreeMap::from([(1, key)]),
        }
    }

    /// The current key's id.
    pub fn current_id(&self) -> u32 {
        self.current
    }

    /// The current key.
    pub fn current(&self) -> &Zeroizing<[u8; 32]> {
        &self.current_key
    }

    /// The key with the lowest id (id 1 unless the file was written by hand): the key
    /// `registry.key`'s fixed uses stay under, whatever is current.
    pub fn first(&self) -> &Zeroizing<[u8; 32]> {
        self.keys.values().next().unwrap_or(&self.current_key)
    }

    /// The key with id `id`, if the ring holds it.
    pub fn get(&self, id: u32) -> Option<&Zeroizing<[u8; 32]>> {
        self.keys.get(&id)
    }

    /// Every id, oldest first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The ids other than the current one, oldest first.
    pub fn old_ids(&self) -> Vec<u32> {
        self.ids()
            .into_iter()
            .filter(|id| *id != self.current)
            .collect()
    }

    /// Every key, the current one first (what verifying tries, in order).
    pub fn current_first(&self) -> impl Iterator<Item = (u32, &Zeroizing<[u8; 32]>)> {
        std::iter::once((self.current, self.current())).chain(
            self.keys
                .iter()
                .filter(move |(id, _)| **id != self.current)
                .map(|(id, k)| (*id, k)),
        )
    }

    /// HMAC-SHA-256 under each key, the current one first.
    pub fn hashers(&self) -> impl Iterator<Item = crate::KeyedHasher> + '_ {
        self.current_first()
            .map(|(_, key)| crate::KeyedHasher::new(key.clone()))
    }

    /// Adds a fresh random key with the next id and makes it current; its id.
    pub fn add_current(&mut self) -> u32 {
        let id = self.keys.keys().next_back().copied().unwrap_or(0) + 1;
        let key = Zeroizing::new(crate::token::random_bytes::<32>());
        self.keys.insert(id, key.clone());
        self.current = id;
        self.current_key = key;
        id
    }

    /// Adds a fresh random key with the next id *without* making it current: published
    /// ahead of its use (an OpenID Connect signing key, `oidc keys rotate --prepare`); its
    /// id.
    pub fn add_next(&mut self) -> u32 {
        let id = self.keys.keys().next_back().copied().unwrap_or(0) + 1;
        self.keys
            .insert(id, Zeroizing::new(crate::token::random_bytes::<32>()));
        id
    }

    /// The first key after the current one (prepared by [`KeyRing::add_next`]), if any.
    pub fn next_id(&self) -> Option<u32> {
        self.keys.keys().copied().find(|id| *id > self.current)
    }

    /// Makes the prepared key current; its id, or `None` when none was prepared.
    pub fn activate_next(&mut self) -> Option<u32> {
        let id = self.next_id()?;
        self.current_key = self.keys.get(&id)?.clone();
        self.current = id;
        Some(id)
    }

    /// The file's text (see the module's documentation).
    fn render(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from(
            "# portcullis keyring: numbered keys, the current one seals and signs\n",
        ));
        out.push_str(&format!("current {}\n", self.current));
        for (id, key) in &self.keys {
            out.push_str(&format!("key {id} "));
            out.push_str(&Zeroizing::new(hex::encode(key.as_ref())));
            out.push('\n');
        }
        out
    }

    /// Parses a keyring file, or the older one-key file; `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        if let Some(key) = parse_hex(trimmed) {
            return Some(Self::single(key));
        }
        let mut current = None;
        let mut keys = BTreeMap::new();
        for line in trimmed.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("current"), Some(id), None, None) => current = Some(id.parse().ok()?),
                (Some("key"), Some(id), Some(hexed), None) => {
                    let id: u32 = id.parse().ok()?;
                    if id == 0 || keys.insert(id, parse_hex(hexed)?).is_some() {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        let current = current?;
        let current_key = keys.get(&current)?.clone();
        Some(Self {
            current,
            current_key,
            keys,
        })
    }
}

fn parse_hex(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, key.as_mut()).ok()?;
    Some(key)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SecretsError {
    let path = path.display().to_string();
    move |source| SecretsError::Io { path, source }
}

/// The environment variable that, when set, holds the keyring `name` instead of its file:
/// `PORTCULLIS_KEY_` and the name without `.key`, upper-cased (`registry.key`:
/// `PORTCULLIS_KEY_REGISTRY`).
pub fn env_var(name: &str) -> String {
    let stem = name.strip_suffix(".key").unwrap_or(name);
    format!(
        "PORTCULLIS_KEY_{}",
        stem.to_ascii_uppercase().replace(['.', '-'], "_")
    )
}

/// The keyring `name` from its environment variable, when it is set: the file's text (or
/// its older one line of 64 hexadecimal digits), or one key as the base64 of 32 bytes
/// (key 1). A malformed value (not UTF-8 included: it is set, so it is never ignored for
/// the file) is named by its variable only, never shown.
pub fn from_env(name: &str) -> Option<Result<KeyRing, SecretsError>> {
    let var = env_var(name);
    let text = match std::env::var(&var) {
        Ok(text) => Zeroizing::new(text),
        Err(std::env::VarError::NotPresent) => return None,
        Err(std::env::VarError::NotUnicode(raw)) => {
            drop(Zeroizing::new(raw.into_encoded_bytes()));
            return Some(Err(SecretsError::MalformedEnvironment { var }));
        }
    };
    let ring = KeyRing::parse(&text).or_else(|| {
        use base64::Engine;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        (bytes.len() == 32).then(|| {
            key.copy_from_slice(&bytes);
            KeyRing::single(key)
        })
    });
    Some(ring.ok_or(SecretsError::MalformedEnvironment { var }))
}

/// Reads the keyring `name` in `dir` (or from its environment variable, [`env_var`], which
/// overrides the file); `None` when neither is there.
pub fn load_ring(dir: &Path, name: &str) -> Result<Option<KeyRing>, SecretsError> {
    if let Some(ring) = from_env(name) {
        return ring.map(Some);
    }
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => KeyRing::parse(&text)
            .map(Some)
            .ok_or_else(|| SecretsError::Malformed {
                path: path.display().to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path)(e)),
    }
}

/// Reads the keyring `name`, creating the folder (0700) and a one-key ring (0600) when
/// they are missing.
pub fn load_or_create_ring(dir: &Path, name: &str) -> Result<KeyRing, SecretsError> {
    let key = crate::secrets::load_or_create_key(dir, name)?;
    // The file may already be a keyring of several keys: read it whole.
    Ok(load_ring(dir, name)?.unwrap_or_else(|| KeyRing::single(key)))
}

/// As [`load_or_create_ring`], a missing file created with the one key `make` gives (a key
/// derived from another, the same on every node that creates it).
pub fn load_or_create_ring_with(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> Zeroizing<[u8; 32]>,
) -> Result<KeyRing, SecretsError> {
    let key = crate::secrets::load_or_create_key_with(dir, name, make)?;
    Ok(load_ring(dir, name)?.unwrap_or_else(|| KeyRing::single(key)))
}

/// Why a key cannot be removed from its keyring.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error("{name} has no key {id} (it holds {held})")]
    Unknown { name: String, id: u32, held: String },
    #[error("key {id} is {name}'s current key: rotate first, then retire the old one")]
    Current { name: String, id: u32 },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// Removes the old key `id` from the keyring `name` and writes the file back atomically,
/// under the same lock as [`rotate_ring`] (its temporary file). The current key cannot be
/// removed. The file keeps its modification time, which stays the time of the last
/// rotation (what `keys retire` measures a short-lived use's window from). The ring as
/// written.
pub fn retire_key(dir: &Path, name: &str, id: u32) -> Result<KeyRing, RetireError> {
    let path = dir.join(name);
    let modified = fs::metadata(&path).and_then(|m| m.modified()).ok();
    let ring = rewrite_locked(dir, name, |ring| {
        if ring.get(id).is_none() {
            let held: Vec<String> = ring.ids().iter().map(u32::to_string).collect();
            return Err(RetireError::Unknown {
                name: name.to_owned(),
                id,
                held: held.join(", "),
            });
        }
        if ring.current_id() == id {
            return Err(RetireError::Current {
                name: name.to_owned(),
                id,
            });
        }
        ring.keys.remove(&id);
        Ok(())
    })?;
    if let Some(modified) = modified {
        // Best effort: a later time only makes the next retirement wait longer.
        let _ = fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(modified));
    }
    Ok(ring)
}

/// When the keyring `name` was last rotated, as its file says (its modification time; a
/// copy made without keeping times only makes it later).
pub fn last_rotated(dir: &Path, name: &str) -> Option<SystemTime> {
    fs::metadata(dir.join(name)).and_then(|m| m.modified()).ok()
}

/// Adds a new current key to the keyring `name` (created first if missing) and writes it
/// back atomically (a temporary owner-only file renamed over the old one): the old keys
/// stay for reading. The ring as written.
///
/// The temporary file is also the lock: it is created before the ring is read, so two
/// rotations at once (two nodes sharing the folder) cannot both add a key N + 1 and lose
/// one of them; the second is refused while the first is under way. A rotation that died
/// half way leaves the file, and the next is refused naming it (remove it by hand).
pub fn rotate_ring(dir: &Path, name: &str) -> Result<KeyRing, SecretsError> {
    rewrite_locked(dir, name, |ring| {
        ring.add_current();
        Ok::<(), SecretsError>(())
    })
}

/// Adds a key to the keyring `name` that is published but not yet current (see
/// [`KeyRing::add_next`]), as [`rotate_ring`] does (atomically, under its lock).
pub fn prepare_ring(dir: &Path, name: &str) -> Result<KeyRing, SecretsError> {
    rewrite_locked(dir, name, |ring| {
        ring.add_next();
        Ok::<(), SecretsError>(())
    })
}

/// Why a prepared key could not be made current.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("no key was prepared (run the rotation with --prepare first)")]
    NothingPrepared,
}

/// Makes the prepared key of the keyring `name` current (see [`KeyRing::activate_next`]),
/// as [`rotate_ring`] does (atomically, under its lock).
pub fn activate_ring(dir: &Path, name: &str) -> Result<KeyRing, ActivateError> {
    rewrite_locked(dir, name, |ring| {
        ring.activate_next()
            .map(|_| ())
            .ok_or(ActivateError::NothingPrepared)
    })
}

/// Reads the keyring `name` (created first if missing), changes it with `change` and
/// writes it back atomically, holding the lock (the temporary file, created before the
/// read) throughout. Nothing is written when `change` refuses.
fn rewrite_locked<E: From<SecretsError>>(
    dir: &Path,
    name: &str,
    change: impl FnOnce(&mut KeyRing) -> Result<(), E>,
) -> Result<KeyRing, E> {
    if std::env::var_os(env_var(name)).is_some() {
        return Err(SecretsError::FromEnvironment {
            name: name.to_owned(),
            var: env_var(name),
        }
        .into());
    }
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.rotating"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .map_err(io_error(&temporary))
        .map_err(E::from)?;
    let written: Result<KeyRing, E> = (|| {
        let mut ring = load_or_create_ring(dir, name)?;
        change(&mut ring)?;
        file.write_all(ring.render().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(&temporary))?;
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        Ok(ring)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// What tells that the file changed: its inode (a rotation renames a new file in), size
/// and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        inode,
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// How often a [`LiveRing`] looks at its file at most.
const RECHECK: Duration = Duration::from_millis(500);

/// A keyring shared by a running process that follows its file: at most every half second
/// (on use, no background task) the file is looked at, and re-read when it changed; a file
/// that does not parse keeps the keys in hand. Cheap to clone.
#[derive(Clone)]
pub struct LiveRing {
    inner: Arc<Live>,
}

struct Live {
    path: Option<PathBuf>,
    ring: RwLock<Arc<KeyRing>>,
    seen: Mutex<(Option<Fingerprint>, Instant)>,
}

impl std::fmt::Debug for LiveRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRing")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl LiveRing {
    /// A fixed ring (tests, or a key derived from another): never re-read.
    pub fn fixed(ring: KeyRing) -> Self {
        Self {
            inner: Arc::new(Live {
                path: None,
                ring: RwLock::new(Arc::new(ring)),
                seen: Mutex::new((None, Instant::now())),
            }),
        }
    }

    /// The keyring `name` in `dir` (created when missing), followed from now on; from its
    /// environment variable instead when that is set (then fixed: a process's environment
    /// does not change).
    pub fn open(dir: &Path, name: &str) -> Result<Self, SecretsError> {
        if let Some(ring) = from_env(name) {
            return ring.map(Self::fixed);
        }
        let path = dir.join(name);
        let ring = load_or_create_ring(dir, name)?;
        Ok(Self {
            inner: Arc::new(Live {
                seen: Mutex::new((fingerprint(&path), Instant::now())),
                path: Some(path),
                ring: RwLock::new(Arc::new(ring)),
            }),
        })
    }

    /// The keys as they are now (the file looked at if it is time).
    pub fn snapshot(&self) -> Arc<KeyRing> {
        self.check(false);
        self.read()
    }

    /// Looks at the file at once (a value under a key id this process does not know yet:
    /// another node may have rotated first); the keys after.
    pub fn refresh(&self) -> Arc<KeyRing> {
        self.check(true);
        self.read()
    }

    fn read(&self) -> Arc<KeyRing> {
        match self.inner.ring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn check(&self, now: bool) {
        let Some(path) = &self.inner.path else {
            return;
        };
        // One looker at a time: on use, the others go on with the keys in hand; asked to
        // look now (a value under an unknown key id), wait for the looker.
        let mut seen = if now {
            match self.inner.seen.lock() {
                Ok(seen) => seen,
                Err(poisoned) => poisoned.into_inner(),
            }
        } else {
            match self.inner.seen.try_lock() {
                Ok(seen) => seen,
                Err(_) => return,
            }
        };
        if !now && seen.1.elapsed() < RECHECK {
            return;
        }
        seen.1 = Instant::now();
        let print = fingerprint(path);
        if print == seen.0 {
            return;
        }
        let Some(ring) = fs::read_to_string(path)
            .ok()
            .and_then(|text| KeyRing::parse(&text))
        else {
            return;
        };
        seen.0 = print;
        let mut slot = match self.inner.ring.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(ring);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_key_is_kept_but_not_current_until_activated() {
        let mut ring = KeyRing::single(Zeroizing::new([1u8; 32]));
        assert_eq!(ring.next_id(), None);
        assert_eq!(ring.add_next(), 2);
        assert_eq!((ring.current_id(), ring.next_id()), (1, Some(2)));
        let again = KeyRing::parse(&ring.render()).unwrap();
        assert_eq!((again.current_id(), again.next_id()), (1, Some(2)));
        assert_eq!(ring.activate_next(), Some(2));
        assert_eq!((ring.current_id(), ring.next_id()), (2, None));
        assert_eq!(ring.current().as_ref(), ring.get(2).unwrap().as_ref());
        assert_eq!(ring.activate_next(), None);
    }

    #[test]
    fn an_old_one_key_file_is_key_one() {
        let ring = KeyRing::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(ring.current_id(), 1);
        assert_eq!(ring.ids(), vec![1]);
        assert_eq!(ring.current().as_ref(), &[0xab; 32]);
    }

    #[test]
    fn malformed_rings_are_refused() {
        let k = "00".repeat(32);
        assert!(KeyRing::parse(&format!("current 2\nkey 1 {k}\n")).is_none());
        assert!(KeyRing::parse(&format!("current 1\nkey 1 {k}\nkey 1 {k}\n")).is_none());
        assert!(KeyRing::parse(&format!("current 1\nkey 1 zz{k}\n")).is_none());
        assert!(KeyRing::parse(&format!("key 1 {k}\n")).is_none());
        assert!(KeyRing::parse(&format!("current 0\nkey 0 {k}\n")).is_none());
        assert!(KeyRing::parse(&format!("current 1\nkey 1 {k}\nmore\n")).is_none());
    }

    #[test]
    fn rotation_adds_a_current_key_and_keeps_the_old_ones_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_ring(dir.path(), "factor.key").unwrap();
        assert_eq!(first.ids(), vec![1]);
        let rotated = rotate_ring(dir.path(), "factor.key").unwrap();
        assert_eq!(rotated.current_id(), 2);
        assert_eq!(rotated.old_ids(), vec![1]);
        assert_eq!(rotated.get(1).unwrap().as_ref(), first.current().as_ref());
        assert_ne!(rotated.current().as_ref(), first.current().as_ref());
        let read = load_ring(dir.path(), "factor.key").unwrap().unwrap();
        assert_eq!(read.ids(), vec![1, 2]);
        assert_eq!(read.current().as_ref(), rotated.current().as_ref());
        assert_eq!(
            read.current_first().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![2, 1]
        );
        // The one-key reader gives the current key of a keyring.
        let current = crate::secrets::load_existing_key(dir.path(), "factor.key")
            .unwrap()
            .unwrap();
        assert_eq!(current.as_ref(), rotated.current().as_ref());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("factor.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_old_key_is_retired_the_current_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_ring(dir.path(), "audit.key").unwrap();
        rotate_ring(dir.path(), "audit.key").unwrap();
        let rotated_at = last_rotated(dir.path(), "audit.key").unwrap();
        assert!(matches!(
            retire_key(dir.path(), "audit.key", 2),
            Err(RetireError::Current { id: 2, .. })
        ));
        assert!(matches!(
            retire_key(dir.path(), "audit.key", 7),
            Err(RetireError::Unknown { id: 7, .. })
        ));
        // The lock is rotation's: refused while another change is under way.
        let lock = dir.path().join(".audit.key.rotating");
        fs::write(&lock, "").unwrap();
        assert!(matches!(
            retire_key(dir.path(), "audit.key", 1),
            Err(RetireError::Secrets(_))
        ));
        fs::remove_file(&lock).unwrap();
        let ring = retire_key(dir.path(), "audit.key", 1).unwrap();
        assert_eq!(ring.ids(), vec![2]);
        let read = load_ring(dir.path(), "audit.key").unwrap().unwrap();
        assert_eq!((read.ids(), read.current_id()), (vec![2], 2));
        assert_eq!(
            last_rotated(dir.path(), "audit.key").unwrap(),
            rotated_at,
            "the file keeps the rotation's time"
        );
        // The next rotation does not reuse a retired id below the highest.
        assert_eq!(
            rotate_ring(dir.path(), "audit.key").unwrap().current_id(),
            3
        );
    }

    #[test]
    fn a_missing_ring_is_created_with_the_key_given() {
        let dir = tempfile::tempdir().unwrap();
        let ring =
            load_or_create_ring_with(dir.path(), "audit.key", || Zeroizing::new([9; 32])).unwrap();
        assert_eq!(ring.ids(), vec![1]);
        assert_eq!(ring.current().as_ref(), &[9; 32]);
        let again =
            load_or_create_ring_with(dir.path(), "audit.key", || Zeroizing::new([8; 32])).unwrap();
        assert_eq!(
            again.current().as_ref(),
            &[9; 32],
            "an existing file is kept"
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a real wait for the recheck interval
    fn a_live_ring_follows_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveRing::open(dir.path(), "csrf.key").unwrap();
        assert_eq!(live.snapshot().current_id(), 1);
        rotate_ring(dir.path(), "csrf.key").unwrap();
        assert_eq!(live.refresh().current_id(), 2, "seen at once when asked");
        rotate_ring(dir.path(), "csrf.key").unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while live.snapshot().current_id() != 3 {
            assert!(Instant::now() < deadline, "picked up within the recheck");
            std::thread::sleep(Duration::from_millis(50));
        }
        // A garbled file keeps the keys in hand.
        fs::write(dir.path().join("csrf.key"), "garbage").unwrap();
        assert_eq!(live.refresh().ids(), vec![1, 2, 3]);
    }
}
