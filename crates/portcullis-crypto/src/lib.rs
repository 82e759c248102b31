//! Cryptographic building blocks for Portcullis: password hashing on a bounded pool of
//! workers, keyed hashes for card data, random tokens, constant-time comparison and the
//! secrets directory. Nothing here knows about HTTP, SQL or the product's rules.

pub mod ct;
pub mod hashing;
pub mod jws;
pub mod keyed;
pub mod keyring;
pub mod legacy;
pub mod passkey;
pub mod seal;
pub mod secrets;
pub mod token;
pub mod totp;
pub mod webhook;

pub use ct::ct_eq;
pub use hashing::{HashError, HashParams, HashPool, Verification};
pub use keyed::KeyedHasher;
pub use keyring::{KeyRing, LiveRing};
pub use seal::Sealer;
pub use token::{sha256, Token};
