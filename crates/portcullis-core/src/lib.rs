//! The domain of Portcullis: the rules of online accounts, independent of HTTP and SQL.
//!
//! - [`ids`], [`card`], [`contact`], [`money`]: parsed newtypes ("parse, don't validate").
//! - [`password`], [`security_questions`]: the password policy and security answers.
//! - [`session`], [`lockout`]: the session and lockout rules, pure functions of time.
//! - [`registry`]: issuer registry records and their validation.
//! - [`ports`]: the traits the adapters implement (stores, notifier, clock).
//! - [`service`]: the use cases (register, sign in, sessions, account home).

pub mod audit;
pub mod card;
pub mod clock;
pub mod config;
pub mod contact;
pub mod counters;
pub mod error;
pub mod ids;
pub mod inactivity;
pub mod lockout;
pub mod money;
pub mod otp;
pub mod password;
pub mod ports;
pub mod registry;
pub mod security_questions;
pub mod service;
pub mod session;
pub mod throttle;

pub use error::{FieldError, ServiceError};
