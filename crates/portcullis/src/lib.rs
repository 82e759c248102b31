//! The Portcullis binary's library: configuration, wiring and the commands, so that tests
//! can build the same application the binary runs.

pub mod accounts_import;
pub mod admin;
pub mod app;
pub mod config;
pub mod db;
pub mod demo;
pub mod gen;
pub mod import;
pub mod inactivity;
pub mod keys;
pub mod keys_retire;
pub mod mode;
pub mod oidc;
pub mod serve;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod webhooks;
