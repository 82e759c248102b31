//! The secrets directory: 256-bit keys kept in files outside the database, created on first
//! start with owner-only permissions.

use std::fs;
use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {path} is not 64 hexadecimal characters")]
    Malformed { path: String },
    /// The value is never shown, only the variable's name.
    #[error(
        "the environment variable {var} is not a keyring (the file's text) nor one key (64 \
         hexadecimal digits or the base64 of 32 bytes)"
    )]
    MalformedEnvironment { var: String },
    #[error(
        "{name} comes from the environment variable {var}, not from a file: change it where \
         the environment is managed (add a key, make it current, restart the nodes)"
    )]
    FromEnvironment { name: String, var: String },
}

/// Reads the current key of the keyring `name` from `dir` (see [`crate::keyring`]), creating the directory (0700) and the key (0600) when
/// they are missing.
pub fn load_or_create_key(dir: &Path, name: &str) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    load_or_create_key_with(dir, name, || {
        Zeroizing::new(crate::token::random_bytes::<32>())
    })
}

/// As [`load_or_create_key`], with the key a missing file is created with made by `make`
/// (a key derived from another, so that every node creating it makes the same one).
pub fn load_or_create_key_with(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> Zeroizing<[u8; 32]>,
) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    if let Some(ring) = crate::keyring::from_env(name) {
        return ring.map(|ring| ring.current().clone());
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| SecretsError::Io { path, source }
    };
    create_private_dir(dir).map_err(io(dir))?;
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => parse_key(text.trim()).ok_or_else(|| SecretsError::Malformed {
            path: path.display().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = make();
            let hexed = Zeroizing::new(hex::encode(key.as_ref()));
            write_private_file(&path, hexed.as_bytes()).map_err(io(&path))?;
            // Another process may have won the race to create it: read back what is there.
            let text = fs::read_to_string(&path).map_err(io(&path))?;
            parse_key(text.trim()).ok_or_else(|| SecretsError::Malformed {
                path: path.display().to_string(),
            })
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// Reads the key `name` from `dir` without creating anything: `None` when the file is
/// missing (checks and restores must not mint a key that the data was not written under).
pub fn load_existing_key(
    dir: &Path,
    name: &str,
) -> Result<Option<Zeroizing<[u8; 32]>>, SecretsError> {
    if let Some(ring) = crate::keyring::from_env(name) {
        return ring.map(|ring| Some(ring.current().clone()));
    }
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => parse_key(text.trim())
            .map(Some)
            .ok_or_else(|| SecretsError::Malformed {
                path: path.display().to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The current key of a keyring file (or of an older one-key file).
fn parse_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    crate::keyring::KeyRing::parse(text).map(|ring| ring.current().clone())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(contents)?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let a = load_or_create_key(&secrets, "registry.key").unwrap();
        let b = load_or_create_key(&secrets, "registry.key").unwrap();
        assert_eq!(*a, *b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(secrets.join("registry.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(&secrets).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn malformed_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("k"), "not hex").unwrap();
        assert!(matches!(
            load_or_create_key(dir.path(), "k"),
            Err(SecretsError::Malformed { .. })
        ));
    }

    #[test]
    fn an_existing_key_is_read_and_a_missing_one_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        assert!(load_existing_key(&secrets, "registry.key")
            .unwrap()
            .is_none());
        assert!(!secrets.exists(), "nothing was created");
        let made = load_or_create_key(&secrets, "registry.key").unwrap();
        let read = load_existing_key(&secrets, "registry.key")
            .unwrap()
            .unwrap();
        assert_eq!(*made, *read);
        fs::write(secrets.join("bad.key"), "zz").unwrap();
        assert!(matches!(
            load_existing_key(&secrets, "bad.key"),
            Err(SecretsError::Malformed { .. })
        ));
    }
}
