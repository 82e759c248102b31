//! The one integration-test binary of the `portcullis` crate: the real application over
//! HTTP, on SQLite and (when `PORTCULLIS_TEST_POSTGRES` is set) PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod accounts_import;
mod backup;
mod binary;
mod card_guard;
mod card_unpause;
mod cards;
mod crash;
mod defences;
mod delivery;
mod failover;
mod faults;
mod ha_load;
mod idempotency_keys;
mod import;
mod keys;
mod keys_audit;
mod keys_codes;
mod keys_env;
mod keys_registry;
mod leases;
mod lifecycle;
mod limits;
mod lockout_model;
mod metrics;
mod mfa;
mod not_me;
mod not_me_passkeys;
mod operations;
mod outage;
mod overload;
mod pages;
mod per_account;
mod peraddr;
pub mod races;
mod read_replica;
pub mod recovery;
mod registration;
mod rolling;
mod secrets;
mod sessions;
mod signin;
mod soft_passkey;
mod status;
mod support;
mod three_nodes;
mod tls;
mod upgrade;
mod webhook_rules;
mod webhooks;
