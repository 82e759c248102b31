//! The conformance suite both databases must pass: every port method (see `coverage.rs`,
//! which fails when one is never called here), including the atomicity and the races the
//! domain relies on; the unit of work's all-or-nothing commit; the pure lockout and
//! throttle machines proved equal to their SQL; every statement prepared on both databases;
//! and the two migration sets compared. Each test runs on SQLite, and on PostgreSQL when
//! `PORTCULLIS_TEST_POSTGRES` was set at build time (`both!`; otherwise that variant is
//! reported as skipped). One test binary, a module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod account_import;
mod accounts;
mod admin;
mod audit;
mod card_guard;
mod codes;
mod coverage;
mod factors;
mod failover;
mod keys;
mod lifecycle;
mod limits;
mod lockout;
mod not_me;
mod oidc_grants;
mod oidc_jwks;
mod oidc_requests;
mod oidc_tokens;
mod outbox;
mod registry;
mod schema;
mod sessions;
mod statements;
mod status;
mod upgrade;
mod webhooks;
mod work;
