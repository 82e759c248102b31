//! Accounts import (issue 17, contract "Accounts import"): online accounts brought over from
//! an issuer's earlier login system, all or nothing.
//!
//! Each line is checked in full before anything is written: the User ID, account type and
//! contact details as registration checks them; the card in the registry, of the same
//! account type and backing no online account yet; the password hash in a form sign-in can
//! check (`portcullis_crypto::legacy`) and within the configured cost ceilings. Any bad line
//! (or two lines with the same User ID or card) and nothing is imported; every error names
//! its line and field and never echoes a card number or a hash. Then one unit of work
//! creates every account, links its card and audits it.
//!
//! The hash is kept as it is: the first successful sign-in verifies it on the hashing pool
//! and replaces it with the current argon2id in that sign-in's unit of work (`signin.rs`).

use std::collections::HashMap;

use portcullis_crypto::legacy::{self, Ceilings, Scheme};

use super::Portcullis;
use crate::audit::{AuditEvent, AuditKind};
use crate::card::{CardNumber, MerchantNumber, NUMBER_DOMAIN_CARD, NUMBER_DOMAIN_MERCHANT};
use crate::clock::UnixTime;
use crate::contact::{CodeChannel, Email, Phone};
use crate::ids::{AccountType, UserId};
use crate::ports::{CreateAccountError, ImportedAccount};
use crate::ServiceError;

/// After this many errors the operator has enough to fix.
pub const MAX_IMPORT_ERRORS: usize = 100;

/// One line of the file, as read (the file format is the binary's business).
/// Debug leaves out the password hash and all but the card's last four (as `CardNumber`).
#[derive(Clone, Default)]
pub struct AccountImportLine {
    /// The 1-based line of the file.
    pub line: u64,
    pub user_id: String,
    pub account_type: String,
    pub card_number: String,
    pub password_hash: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// RFC 3339, or Unix seconds.
    pub created_at: String,
    pub must_change_password: bool,
}

impl std::fmt::Debug for AccountImportLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.card_number.trim();
        let last4 = digits.get(digits.len().saturating_sub(4)..).unwrap_or("");
        f.debug_struct("AccountImportLine")
            .field("line", &self.line)
            .field("user_id", &self.user_id)
            .field("account_type", &self.account_type)
            .field("card_number", &format_args!("••••{last4}"))
            .field("password_hash", &"[redacted]")
            .field("must_change_password", &self.must_change_password)
            .finish_non_exhaustive()
    }
}

/// One problem on one line; `field` is a contract field name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportLineError {
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ImportLineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(
                f,
                "line {}, field {}: {}",
                self.line, self.field, self.message
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountImportError {
    /// Lines with problems, in file order (at most [`MAX_IMPORT_ERRORS`]); nothing imported.
    #[error("{} error(s) in the file; nothing was imported", .0.len())]
    Invalid(Vec<ImportLineError>),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What an import did: the accounts created, by the scheme of the hash they brought.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountImportReport {
    pub accounts: u64,
    pub by_scheme: Vec<(&'static str, u64)>,
}

/// A line that passed the checks that need no database.
struct Checked {
    line: u64,
    account: ImportedAccount,
    /// The number's HMAC under each registry key, the current one first (the card's row
    /// may be under any of them: docs/design/keys.md, "The registry key").
    number_hashes: Vec<(i64, [u8; 32])>,
    scheme: Scheme,
}

impl Portcullis {
    /// Imports `lines` in one unit of work, or nothing when any line is bad.
    pub async fn import_accounts(
        &self,
        lines: &[AccountImportLine],
        ceilings: &Ceilings,
    ) -> Result<AccountImportReport, AccountImportError> {
        let now = self.clock.now();
        let mut errors = Vec::new();
        let mut checked = Vec::with_capacity(lines.len());
        let mut user_ids: HashMap<String, u64> = HashMap::new();
        let mut cards: HashMap<[u8; 32], u64> = HashMap::new();
        for line in lines {
            match self.check_line(line, ceilings) {
                Ok(c) => {
                    let mut clash = Vec::new();
                    if let Some(first) =
                        user_ids.insert(c.account.user_id_canonical.clone(), c.line)
                    {
                        clash.push(("user_id", format!("the same User ID as line {first}")));
                    }
                    // The HMAC under the current key (the ring is never empty).
                    let card = c.number_hashes.first().map(|(_, hash)| *hash);
                    if let Some(first) = card.and_then(|hash| cards.insert(hash, c.line)) {
                        clash.push(("card_number", format!("the same card as line {first}")));
                    }
                    errors.extend(clash.into_iter().map(|(field, message)| ImportLineError {
                        line: c.line,
                        field: field.into(),
                        message,
                    }));
                    checked.push(c);
                }
                Err(mut e) => errors.append(&mut e),
            }
            if errors.len() >= MAX_IMPORT_ERRORS {
                break;
            }
        }
        // What the database knows: the card and the User ID (reads, before any write).
        for c in &mut checked {
            if errors.len() >= MAX_IMPORT_ERRORS {
                break;
            }
            let error = |field: &str, message: &str| ImportLineError {
                line: c.line,
                field: field.into(),
                message: message.into(),
            };
            let mut found = None;
            for (key_id, hash) in &c.number_hashes {
                let row = self
                    .ports
                    .registry
                    .find_record(*key_id, hash)
                    .await
                    .map_err(ServiceError::from)?;
                if let Some(r) = row {
                    found.get_or_insert(r);
                }
            }
            match found {
                None => errors.push(error("card_number", "not in the registry")),
                Some(r) if r.account_type != c.account.account_type => errors.push(error(
                    "account_type",
                    "the card's registry record is of another account type",
                )),
                Some(r) if r.account_id.is_some() => errors.push(error(
                    "card_number",
                    "the card already backs an online account",
                )),
                // A card that proves nothing online (docs/design/cards.md) cannot back a
                // migrated account either: import it with the card that replaced it.
                Some(r) if !r.usable() => {
                    errors.push(error(
                        "card_number",
                        &format!(
                        "the card is {} in the registry; import the account with its current card",
                        if r.replaced { "replaced" } else { r.status.as_str() }
                    ),
                    ))
                }
                Some(r) => {
                    c.account.registry_record_id = r.id;
                }
            }
            if self
                .ports
                .accounts
                .find_account(&c.account.user_id_canonical)
                .await
                .map_err(ServiceError::from)?
                .is_some()
            {
                errors.push(error("user_id", "already taken by an online account"));
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            errors.truncate(MAX_IMPORT_ERRORS);
            return Err(AccountImportError::Invalid(errors));
        }

        let mut work = self.begin(now);
        let mut by_scheme: HashMap<&'static str, u64> = HashMap::new();
        for c in &checked {
            let id = match work.import_account(&c.account).await {
                Ok(id) => id,
                // Taken meanwhile (a registration raced the import): the unit of work is
                // dropped, so nothing is imported.
                Err(CreateAccountError::UserIdTaken) => {
                    return Err(invalid(
                        c.line,
                        "user_id",
                        "already taken by an online account",
                    ))
                }
                Err(CreateAccountError::CardAlreadyRegistered) => {
                    return Err(invalid(
                        c.line,
                        "card_number",
                        "the card already backs an online account",
                    ))
                }
                Err(e) => return Err(ServiceError::from(e).into()),
            };
            *by_scheme.entry(c.scheme.as_str()).or_default() += 1;
            work.audit(
                AuditEvent::new(AuditKind::AccountCreated, Some(id)).detail(format!(
                    "imported from the earlier login system: type={} hash={}{}",
                    c.account.account_type.as_str(),
                    c.scheme.as_str(),
                    if c.account.must_change_password {
                        " must_change_password"
                    } else {
                        ""
                    }
                )),
            );
        }
        work.commit().await?;
        let mut by_scheme: Vec<_> = by_scheme.into_iter().collect();
        by_scheme.sort();
        Ok(AccountImportReport {
            accounts: checked.len() as u64,
            by_scheme,
        })
    }

    /// The checks of one line that need no database.
    fn check_line(
        &self,
        line: &AccountImportLine,
        ceilings: &Ceilings,
    ) -> Result<Checked, Vec<ImportLineError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(ImportLineError {
                line: line.line,
                field: field.into(),
                message,
            })
        };
        let user_id = UserId::parse(&line.user_id)
            .map_err(|m| fail("user_id", m.into()))
            .ok();
        let account_type = AccountType::parse(&line.account_type);
        if account_type.is_none() {
            fail(
                "account_type",
                "must be personal, merchant or corporate".into(),
            );
        }
        let number_hash = account_type.and_then(|t| {
            let hashed = if t.uses_cards() {
                CardNumber::parse(&line.card_number)
                    .map(|n| (NUMBER_DOMAIN_CARD, n.digits().to_owned()))
            } else {
                MerchantNumber::parse(&line.card_number)
                    .map(|n| (NUMBER_DOMAIN_MERCHANT, n.digits().to_owned()))
            };
            let (domain, digits) = hashed.map_err(|m| fail("card_number", m.into())).ok()?;
            Some(
                self.registry_keys()
                    .into_iter()
                    .map(|(id, key)| (id, key.hash(domain, &[digits.as_bytes()])))
                    .collect::<Vec<_>>(),
            )
        });
        let scheme = match legacy::parse(&line.password_hash).and_then(|f| f.within(ceilings)) {
            Ok(form) => Some(form.scheme),
            Err(e) => {
                fail("password_hash", e.to_string());
                None
            }
        };
        let email = optional(&line.email)
            .map(|e| Email::parse(e).map_err(|m| fail("email", m.into())).ok())
            .unwrap_or_default();
        let phone = optional(&line.phone)
            .map(|p| Phone::parse(p).map_err(|m| fail("phone", m.into())).ok())
            .unwrap_or_default();
        if optional(&line.email).is_none() && optional(&line.phone).is_none() {
            fail(
                "email",
                "an account needs an email address or a mobile number for its codes".into(),
            );
        }
        let created_at = parse_time(&line.created_at)
            .map_err(|m| fail("created_at", m.into()))
            .ok();
        match (user_id, account_type, number_hash, scheme, created_at) {
            (
                Some(user_id),
                Some(account_type),
                Some(number_hash),
                Some(scheme),
                Some(created_at),
            ) if errors.is_empty() => {
                let code_channel = if email.is_some() {
                    CodeChannel::Email
                } else {
                    CodeChannel::Sms
                };
                Ok(Checked {
                    line: line.line,
                    number_hashes: number_hash,
                    scheme,
                    account: ImportedAccount {
                        user_id: user_id.as_str().to_owned(),
                        user_id_canonical: user_id.canonical().to_owned(),
                        account_type,
                        password_hash: line.password_hash.trim().to_owned(),
                        code_channel,
                        email: email.map(|e| e.as_str().to_owned()),
                        phone: phone.map(|p| p.as_str().to_owned()),
                        registry_record_id: 0,
                        created_at,
                        must_change_password: line.must_change_password,
                    },
                })
            }
            _ => Err(errors),
        }
    }
}

fn invalid(line: u64, field: &str, message: &str) -> AccountImportError {
    AccountImportError::Invalid(vec![ImportLineError {
        line,
        field: field.into(),
        message: message.into(),
    }])
}

fn optional(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// RFC 3339, or whole Unix seconds.
fn parse_time(value: &str) -> Result<UnixTime, &'static str> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse()
            .map(UnixTime)
            .map_err(|_| "not a time (RFC 3339, or Unix seconds)");
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| UnixTime(t.unix_timestamp()))
        .map_err(|_| "not a time (RFC 3339, or Unix seconds)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(parse_time("1700000000"), Ok(UnixTime(1_700_000_000)));
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z"),
            Ok(UnixTime(1_700_000_000))
        );
        assert!(parse_time("").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("-5").is_err());
    }
}
