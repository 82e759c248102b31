//! The domain of Portcullis: the rules of online accounts, independent of HTTP and SQL.
//!
//! - [`ids`], [`card`], [`contact`], [`money`]: parsed newtypes ("parse, don't validate");
//!   [`contact`] also holds the one masking rule and the one channel choice.
//! - [`password`], [`security_questions`]: the password policy and security answers.
//! - [`session`], [`lockout`], [`throttle`], [`card_guard`], [`inactivity`], [`otp`]: the
//!   rules, pure functions of time.
//! - [`registry`]: issuer registry records and their validation.
//! - [`steps`], [`support`], [`device`], [`audit`]: shared domain types (the flow steps and
//!   code purposes, support authority and scopes, device descriptions, audit events).
//! - [`ports`]: the traits the adapters implement (reads, claims, units of work, the
//!   delivery worker), and [`clock`].
//! - [`service`]: the use cases (register, sign in, second factors, recovery, the account,
//!   support, status).
//!
//! No module cycles: `tests/module_graph.rs` reads every module's paths and fails on one.

pub mod audit;
pub mod card;
pub mod card_guard;
pub mod clock;
pub mod config;
pub mod contact;
pub mod counters;
pub mod device;
pub mod error;
pub mod ids;
pub mod inactivity;
pub mod lockout;
pub mod money;
pub mod oidc;
pub mod otp;
pub mod par;
pub mod password;
pub mod ports;
pub mod registry;
pub mod security_questions;
pub mod service;
pub mod session;
pub mod steps;
pub mod support;
pub mod throttle;
pub mod webhooks;

pub use error::{FieldError, ServiceError};
