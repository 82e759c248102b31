//! The `[accounts_import]` section: the highest cost a password hash imported from an earlier
//! login system may ask for (`portcullis accounts import`). A hash above a ceiling is refused
//! at import with its line, so no imported hash can make one sign-in hold a hashing worker
//! for long (the pool is shared with every other sign-in).

use anyhow::bail;
use portcullis_crypto::legacy::Ceilings;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsImportConfig {
    /// bcrypt's cost (log2 rounds).
    pub max_bcrypt_cost: u32,
    /// PBKDF2 iterations (passlib and Django forms, SHA-256 and SHA-512).
    pub max_pbkdf2_iterations: u32,
    /// scrypt's `ln` (N = 2^ln).
    pub max_scrypt_log_n: u8,
    /// argon2 memory in KiB (imported argon2 hashes of any variant).
    pub max_argon2_memory_kib: u32,
    /// argon2 passes (t).
    pub max_argon2_iterations: u32,
}

impl Default for AccountsImportConfig {
    fn default() -> Self {
        let c = Ceilings::default();
        Self {
            max_bcrypt_cost: c.bcrypt_cost,
            max_pbkdf2_iterations: c.pbkdf2_iterations,
            max_scrypt_log_n: c.scrypt_log_n,
            max_argon2_memory_kib: c.argon2_memory_kib,
            max_argon2_iterations: c.argon2_iterations,
        }
    }
}

impl AccountsImportConfig {
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            bcrypt_cost: self.max_bcrypt_cost,
            pbkdf2_iterations: self.max_pbkdf2_iterations,
            scrypt_log_n: self.max_scrypt_log_n,
            argon2_memory_kib: self.max_argon2_memory_kib,
            argon2_iterations: self.max_argon2_iterations,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !(4..=31).contains(&self.max_bcrypt_cost) {
            bail!("accounts_import.max_bcrypt_cost must be between 4 and 31");
        }
        if self.max_pbkdf2_iterations == 0
            || self.max_scrypt_log_n == 0
            || self.max_argon2_memory_kib == 0
            || self.max_argon2_iterations == 0
        {
            bail!("accounts_import ceilings must be positive");
        }
        Ok(())
    }
}
