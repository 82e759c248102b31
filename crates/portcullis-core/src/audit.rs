//! The audit log: a typed stream of security events, each entry chained to the one before
//! by a SHA-256 over the previous entry's hash and this entry's fields, so any edit,
//! deletion or reordering breaks the chain at the first entry it touches.

use std::collections::BTreeMap;

use portcullis_crypto::{KeyRing, KeyedHasher, LiveRing};

use crate::clock::UnixTime;

/// The kinds of security event. Their names are stable: they are stored and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditKind {
    AccountCreated,
    SignIn,
    SignInFailed,
    SignInLocked,
    AccountLocked,
    AccountUnlocked,
    SignOut,
    SessionEnded,
    PasswordChanged,
    CardVerificationFailed,
    /// A card stopped accepting its card ID online (too many wrong ones).
    CardPaused,
    /// Support set a paused card to accept its card ID again.
    CardCleared,
    SupportAction,
    /// A support request refused: a revoked admin token, or one without the scope needed.
    SupportDenied,
    AdminTokenCreated,
    AdminTokenRevoked,
    RecoveryStarted,
    RecoveryVerified,
    RecoveryFailed,
    RecoveryCodeFailed,
    PasswordReset,
    UserIdRecovered,
    MfaChallenged,
    MfaFailed,
    FactorAdded,
    FactorRemoved,
    RecoveryCodesIssued,
    RecoveryCodeUsed,
    DeviceTrusted,
    DeviceUntrusted,
    Reauthenticated,
    NotMe,
    /// A change of email or phone was asked for (password right, code sent to the new one).
    ContactChangeStarted,
    ContactChanged,
    CardLinked,
    CardUnlinked,
    InactivityWarned,
    AccountDeactivated,
    AccountReactivated,
    /// Security questions chosen or replaced while signed in.
    SecurityAnswersChanged,
    /// The issuer changed the status of a linked card (a registry load).
    CardStatusChanged,
    /// A card replaced by a reissue: its online account now holds the new card.
    CardReissued,
    /// A registry load (file import or push) committed.
    RegistryLoaded,
    /// Every card of the account is closed: deactivated after the read-only time.
    AccountDeactivatedCardsClosed,
    /// A sign-in from a device the account had not seen (its owner was told).
    DeviceNew,
    /// A webhook subscription added or removed (by the operator or an admin token).
    WebhookAdded,
    WebhookRemoved,
    /// The person allowed a relying party (not first-party) the scopes it asked for.
    OidcGrantGiven,
    /// The person refused a relying party on the consent page.
    OidcGrantDenied,
    /// The person withdrew a relying party's access.
    OidcGrantRevoked,
    /// OpenID Connect: tokens issued for an authorization code.
    OidcTokenIssued,
    /// OpenID Connect: a refresh token used, and replaced.
    OidcRefreshRotated,
    /// OpenID Connect: a used refresh token presented again; its family revoked and the
    /// session behind it ended.
    OidcRefreshReused,
    /// OpenID Connect: a used authorization code presented again; what it issued revoked.
    OidcCodeReplayed,
    /// OpenID Connect: a client revoked a token (RFC 7009).
    OidcTokenRevoked,
    /// OpenID Connect: a registered client failed to authenticate (at most one entry per
    /// client a minute).
    OidcClientAuthFailed,
    /// An OpenID Connect client registered or revoked (by the operator or an admin token).
    OidcClientAdded,
    OidcClientRevoked,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "account.created",
            Self::SignIn => "signin.succeeded",
            Self::SignInFailed => "signin.failed",
            Self::SignInLocked => "signin.locked",
            Self::AccountLocked => "account.locked",
            Self::AccountUnlocked => "account.unlocked",
            Self::SignOut => "session.signed_out",
            Self::SessionEnded => "session.ended",
            Self::PasswordChanged => "password.changed",
            Self::CardVerificationFailed => "registration.card_failed",
            Self::CardPaused => "card.paused",
            Self::CardCleared => "card.cleared",
            Self::SupportAction => "support.action",
            Self::SupportDenied => "support.denied",
            Self::AdminTokenCreated => "admin_token.created",
            Self::AdminTokenRevoked => "admin_token.revoked",
            Self::RecoveryStarted => "recovery.started",
            Self::RecoveryVerified => "recovery.verified",
            Self::RecoveryFailed => "recovery.failed",
            Self::RecoveryCodeFailed => "recovery.code_failed",
            Self::PasswordReset => "password.reset",
            Self::UserIdRecovered => "recovery.user_id",
            Self::MfaChallenged => "mfa.challenged",
            Self::MfaFailed => "mfa.failed",
            Self::FactorAdded => "factor.added",
            Self::FactorRemoved => "factor.removed",
            Self::RecoveryCodesIssued => "recovery_codes.issued",
            Self::RecoveryCodeUsed => "recovery_codes.used",
            Self::DeviceTrusted => "device.trusted",
            Self::DeviceUntrusted => "device.untrusted",
            Self::Reauthenticated => "session.reauthenticated",
            Self::NotMe => "account.not_me",
            Self::ContactChangeStarted => "contact.change_started",
            Self::ContactChanged => "contact.changed",
            Self::CardLinked => "card.linked",
            Self::CardUnlinked => "card.unlinked",
            Self::InactivityWarned => "account.inactivity_warned",
            Self::AccountDeactivated => "account.deactivated",
            Self::AccountReactivated => "account.reactivated",
            Self::SecurityAnswersChanged => "security_answers.changed",
            Self::CardStatusChanged => "card.status_changed",
            Self::CardReissued => "card.reissued",
            Self::RegistryLoaded => "registry.loaded",
            Self::AccountDeactivatedCardsClosed => "account.deactivated_cards_closed",
            Self::DeviceNew => "device.new",
            Self::WebhookAdded => "webhook.added",
            Self::WebhookRemoved => "webhook.removed",
            Self::OidcGrantGiven => "oidc.grant_given",
            Self::OidcGrantDenied => "oidc.grant_denied",
            Self::OidcGrantRevoked => "oidc.grant_revoked",
            Self::OidcTokenIssued => "oidc.token_issued",
            Self::OidcRefreshRotated => "oidc.refresh_rotated",
            Self::OidcRefreshReused => "oidc.refresh_reused",
            Self::OidcCodeReplayed => "oidc.code_replayed",
            Self::OidcTokenRevoked => "oidc.token_revoked",
            Self::OidcClientAuthFailed => "oidc.client_auth_failed",
            Self::OidcClientAdded => "oidc_client.added",
            Self::OidcClientRevoked => "oidc_client.revoked",
        }
    }

    /// A sentence for the person's own activity list.
    pub fn describe(kind: &str) -> &'static str {
        match kind {
            "account.created" => "Online account created",
            "signin.succeeded" => "Signed in",
            "signin.failed" => "Failed sign-in attempt",
            "signin.locked" => "Sign-in attempt while locked",
            "account.locked" => "Account locked after failed attempts",
            "account.unlocked" => "Account unlocked",
            "session.signed_out" => "Signed out",
            "session.ended" => "Session ended",
            "password.changed" => "Password changed",
            "security_answers.changed" => "Security questions chosen",
            "support.action" => "Action by customer support",
            "support.denied" => "Customer support request refused",
            "admin_token.created" => "Support token created",
            "admin_token.revoked" => "Support token revoked",
            "recovery.verified" => "Identity checked to recover the account",
            "recovery.failed" => "Failed attempt to recover the account",
            "recovery.code_failed" => "Wrong security code entered",
            "password.reset" => "Password reset with a security code",
            "recovery.user_id" => "User ID looked up with a security code",
            "mfa.challenged" => "Second step asked at sign-in",
            "mfa.failed" => "Wrong second-step code at sign-in",
            "factor.added" => "Second factor added",
            "factor.removed" => "Second factor removed",
            "recovery_codes.issued" => "New recovery codes made",
            "recovery_codes.used" => "Recovery code used to sign in",
            "device.trusted" => "Device trusted for 30 days",
            "device.untrusted" => "Device no longer trusted",
            "session.reauthenticated" => "Password entered again",
            "account.not_me" => "\"This was not me\": sessions ended and account locked",
            "contact.change_started" => "Contact details change asked for",
            "contact.changed" => "Contact details changed",
            "card.linked" => "Card linked",
            "card.unlinked" => "Card unlinked",
            "account.inactivity_warned" => "Inactivity warning sent",
            "account.deactivated" => "Account deactivated after inactivity",
            "account.reactivated" => "Account reactivated",
            "card.status_changed" => "Card status changed by the issuer",
            "card.reissued" => "Card replaced by a new card",
            "registry.loaded" => "Card registry updated",
            "account.deactivated_cards_closed" => "Account deactivated: every card closed",
            "device.new" => "Signed in from a new device",
            "webhook.added" => "Webhook subscription added",
            "webhook.removed" => "Webhook subscription removed",
            "oidc.grant_given" => "Access given to a site or app",
            "oidc.grant_denied" => "Access refused to a site or app",
            "oidc.grant_revoked" => "Access withdrawn from a site or app",
            "oidc.token_issued" => "Signed in to a site or app",
            "oidc.refresh_rotated" => "A site or app renewed its access",
            "oidc.refresh_reused" => "A site or app's access was ended: a copied token was used",
            "oidc.code_replayed" => "A site or app's access was ended: a sign-in code was reused",
            "oidc.token_revoked" => "A site or app gave up its access",
            "oidc.client_auth_failed" => "A site or app failed to authenticate",
            "oidc_client.added" => "Sign-in client registered",
            "oidc_client.revoked" => "Sign-in client revoked",
            _ => "Security event",
        }
    }
}

/// An event to append. `detail` must never hold a secret.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub account_id: Option<i64>,
    pub actor: String,
    pub client_ip: Option<String>,
    pub detail: String,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, account_id: Option<i64>) -> Self {
        Self {
            kind,
            account_id,
            actor: "self".into(),
            client_ip: None,
            detail: String::new(),
        }
    }

    pub fn ip(mut self, ip: Option<&str>) -> Self {
        self.client_ip = ip.map(str::to_owned);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }
}

/// A stored entry, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: UnixTime,
    pub kind: String,
    pub account_id: Option<i64>,
    pub actor: String,
    pub client_ip: Option<String>,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    /// The id, in `audit.key`'s keyring, of the key the entry's hash is under (1 for
    /// entries written before the chain had a key of its own).
    pub key_id: i64,
}

pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// The fields an entry's hash covers.
#[derive(Clone, Copy, Debug)]
pub struct ChainInput<'a> {
    pub prev: &'a [u8],
    pub seq: i64,
    pub at: UnixTime,
    pub kind: &'a str,
    pub account_id: Option<i64>,
    pub actor: &'a str,
    pub client_ip: Option<&'a str>,
    pub detail: &'a str,
}

/// The audit key's domain. The chain is keyed (HMAC-SHA-256 under `audit.key`, which lives
/// outside the database), so someone who can write to the database cannot recompute a
/// consistent chain after an edit.
const CHAIN_DOMAIN: &str = "portcullis/audit-chain/v1";

/// The key the chain was computed under before it had a keyring of its own: derived from
/// the registry key's first key. It is `audit.key`'s key 1 (the file is created with it),
/// so chains written before stay valid.
pub fn derived_key(registry_key: &KeyedHasher) -> zeroize::Zeroizing<[u8; 32]> {
    zeroize::Zeroizing::new(registry_key.hash("portcullis/audit-key/v1", &[]))
}

/// [`derived_key`] as a hasher.
pub fn audit_key(registry_key: &KeyedHasher) -> KeyedHasher {
    KeyedHasher::new(derived_key(registry_key))
}

/// The key a unit of work appends its entries under: its id in `audit.key`'s keyring
/// (stored with each entry, `audit_log.key_id`) and the key.
#[derive(Clone, Debug)]
pub struct ChainKey {
    pub id: u32,
    pub key: KeyedHasher,
}

impl From<KeyedHasher> for ChainKey {
    /// A lone key is key 1.
    fn from(key: KeyedHasher) -> Self {
        Self { id: 1, key }
    }
}

/// The keys entries are verified under, by key id: each entry under the key it names.
#[derive(Clone, Debug, Default)]
pub struct ChainKeys(BTreeMap<i64, KeyedHasher>);

impl ChainKeys {
    /// Every key of `ring`.
    pub fn of_ring(ring: &KeyRing) -> Self {
        Self(
            ring.ids()
                .into_iter()
                .filter_map(|id| Some((i64::from(id), KeyedHasher::new(ring.get(id)?.clone()))))
                .collect(),
        )
    }

    pub fn get(&self, id: i64) -> Option<&KeyedHasher> {
        self.0.get(&id)
    }
}

impl From<KeyedHasher> for ChainKeys {
    /// A lone key is key 1.
    fn from(key: KeyedHasher) -> Self {
        Self(BTreeMap::from([(1, key)]))
    }
}

/// The audit chain's keyring (`audit.key`, followed as it is rotated): new entries are
/// appended under its current key, and each entry is verified under the key id it names.
#[derive(Clone, Debug)]
pub struct AuditKeys {
    ring: LiveRing,
}

impl AuditKeys {
    pub fn new(ring: LiveRing) -> Self {
        Self { ring }
    }

    /// A fixed ring of one key, id 1, derived from the registry key (a process built
    /// without the secrets folder's `audit.key`: tests, tools).
    pub fn derived(registry_key: &KeyedHasher) -> Self {
        Self::new(LiveRing::fixed(KeyRing::single(derived_key(registry_key))))
    }

    /// The key new entries are appended under.
    pub fn current(&self) -> ChainKey {
        let ring = self.ring.snapshot();
        ChainKey {
            id: ring.current_id(),
            key: KeyedHasher::new(ring.current().clone()),
        }
    }

    /// Every key, the file looked at now (a verification must know a key another node
    /// rotated a moment ago).
    pub fn all(&self) -> ChainKeys {
        ChainKeys::of_ring(&self.ring.refresh())
    }

    pub fn ring(&self) -> &LiveRing {
        &self.ring
    }
}

/// The chain hash of an entry: SHA-256 over the previous hash and every field, each
/// length-prefixed.
pub fn chain_hash(key: &KeyedHasher, entry: &ChainInput<'_>) -> [u8; 32] {
    let ChainInput {
        prev,
        seq,
        at,
        kind,
        account_id,
        actor,
        client_ip,
        detail,
    } = *entry;
    let mut buf = Vec::with_capacity(128 + detail.len());
    let mut put = |bytes: &[u8]| {
        buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    put(prev);
    put(&seq.to_be_bytes());
    put(&at.0.to_be_bytes());
    put(kind.as_bytes());
    put(&account_id.map_or(-1, |a| a).to_be_bytes());
    put(actor.as_bytes());
    put(client_ip.unwrap_or("").as_bytes());
    put(detail.as_bytes());
    key.hash(CHAIN_DOMAIN, &[&buf])
}

/// Why verification stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry's stored hash does not match its contents.
    Altered { seq: i64 },
    /// The entry does not follow the one before it (deleted, inserted or reordered).
    Broken { seq: i64 },
    /// The log ends before the chain's head: this entry and any after it were deleted.
    Truncated { seq: i64 },
    /// The last entry is not the one the chain's head recorded: the chain was rewritten
    /// from some point on.
    Rewritten { seq: i64 },
    /// The entry names a key id `audit.key` does not hold: a keyring not copied from the
    /// node that rotated it, or a key id edited in the database.
    UnknownKey { seq: i64, key_id: i64 },
    /// The entry is under an older key than one the chain had already moved to, later than
    /// a node's keyring can lag a rotation ([`KEY_LAG_SECS`], [`CLOCK_SKEW_SECS`]): appended
    /// by someone holding an old key (a leaked key stays able to make entries that verify
    /// only within that window of its successor's first use), or by a node whose keyring
    /// was not updated.
    OldKey { seq: i64, key_id: i64, newer: i64 },
}

/// How long after the first entry under a newer audit key an entry under an older one is
/// still accepted: every node must be appending under the rotated key within this time
/// (nodes re-read `audit.key` within half a second, but a secret store may take minutes to
/// copy it, and a ring from the environment changes by a rolling restart).
pub const KEY_LAG_SECS: i64 = 3_600;
/// How far behind the latest entry seen an entry under an older key may be dated (the
/// nodes' clocks differ): without it, one backdated into the window above could be
/// appended at any later time.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Where a walk of the chain stands: the last verified entry's hash and sequence number,
/// when each key id was first used, and the latest time seen.
#[derive(Clone, Debug)]
pub struct ChainWalk {
    pub prev: Vec<u8>,
    pub seq: i64,
    first_used: BTreeMap<i64, i64>,
    latest_at: i64,
}

impl Default for ChainWalk {
    /// Before the first entry.
    fn default() -> Self {
        Self {
            prev: GENESIS_HASH.to_vec(),
            seq: 0,
            first_used: BTreeMap::new(),
            latest_at: i64::MIN,
        }
    }
}

impl ChainWalk {
    /// Whether an entry under `key_id` at `at` is in key order (else the newest key id the
    /// chain had moved to); the walk moves past it.
    fn in_key_order(&mut self, key_id: i64, at: i64) -> Result<(), i64> {
        // The first use of a key newer than this one: when this one was superseded.
        let superseded = self
            .first_used
            .range(key_id.saturating_add(1)..)
            .map(|(_, first)| *first)
            .min();
        let ok = superseded.is_none_or(|since| {
            at <= since.saturating_add(KEY_LAG_SECS)
                && at >= self.latest_at.saturating_sub(CLOCK_SKEW_SECS)
        });
        if !ok {
            return Err(self
                .first_used
                .keys()
                .next_back()
                .copied()
                .unwrap_or(key_id));
        }
        self.first_used.entry(key_id).or_insert(at);
        self.latest_at = self.latest_at.max(at);
        Ok(())
    }
}

impl ChainBreak {
    /// The first bad entry's sequence number.
    pub fn seq(&self) -> i64 {
        match *self {
            ChainBreak::Altered { seq }
            | ChainBreak::Broken { seq }
            | ChainBreak::Truncated { seq }
            | ChainBreak::Rewritten { seq }
            | ChainBreak::UnknownKey { seq, .. }
            | ChainBreak::OldKey { seq, .. } => seq,
        }
    }

    /// A stable one-word name for the problem.
    pub fn problem(&self) -> &'static str {
        match self {
            ChainBreak::Altered { .. } => "altered",
            ChainBreak::Broken { .. } => "broken",
            ChainBreak::Truncated { .. } => "truncated",
            ChainBreak::Rewritten { .. } => "rewritten",
            ChainBreak::UnknownKey { .. } => "unknown_key",
            ChainBreak::OldKey { .. } => "old_key",
        }
    }
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Altered { seq } => write!(f, "entry {seq}: its contents do not match its hash (edited)"),
            ChainBreak::Broken { seq } => write!(f, "entry {seq}: it does not follow the entry before it (deleted, inserted or reordered)"),
            ChainBreak::Truncated { seq } => write!(f, "entry {seq}: missing, and so is every entry after it, up to the chain's head (deleted from the end)"),
            ChainBreak::Rewritten { seq } => write!(f, "entry {seq}: it is not the entry the chain's head recorded (the chain was rewritten)"),
            ChainBreak::UnknownKey { seq, key_id } => write!(f, "entry {seq}: it names audit key {key_id}, which audit.key does not hold (a keyring not copied from the node that rotated it, or an edited key id)"),
            ChainBreak::OldKey { seq, key_id, newer } => write!(f, "entry {seq}: it is under audit key {key_id}, after the chain had moved to key {newer} for longer than a keyring can lag ({KEY_LAG_SECS} s; made with an old key, or by a node whose audit.key was not updated)"),
        }
    }
}

/// Checks that a verified run ended where the chain's head says it ends: `last_seq` and
/// `last_hash` are where [`verify_run`] stopped, `head_seq` and `head_hash` what the head
/// row holds. Catches deletions from the end, which leave a shorter chain that is intact.
pub fn verify_head(
    last_seq: i64,
    last_hash: &[u8],
    head_seq: i64,
    head_hash: &[u8],
) -> Result<(), ChainBreak> {
    if last_seq < head_seq {
        return Err(ChainBreak::Truncated { seq: last_seq + 1 });
    }
    if last_seq == head_seq && last_hash != head_hash {
        return Err(ChainBreak::Rewritten { seq: last_seq });
    }
    Ok(())
}

/// Checks a run of entries in order, continuing from where `walk` stands, each entry under
/// the key its `key_id` names (an id `keys` does not hold is [`ChainBreak::UnknownKey`]),
/// and the keys in the order they were made current (an entry under an older key than one
/// already used, outside the window a rotation needs to reach every node, is
/// [`ChainBreak::OldKey`]).
pub fn verify_run(
    keys: &ChainKeys,
    entries: &[AuditEntry],
    walk: &mut ChainWalk,
) -> Result<(), ChainBreak> {
    for e in entries {
        if e.seq != walk.seq + 1 || e.prev_hash != walk.prev {
            return Err(ChainBreak::Broken { seq: e.seq });
        }
        let Some(key) = keys.get(e.key_id) else {
            return Err(ChainBreak::UnknownKey {
                seq: e.seq,
                key_id: e.key_id,
            });
        };
        let expected = chain_hash(
            key,
            &ChainInput {
                prev: &e.prev_hash,
                seq: e.seq,
                at: e.at,
                kind: &e.kind,
                account_id: e.account_id,
                actor: &e.actor,
                client_ip: e.client_ip.as_deref(),
                detail: &e.detail,
            },
        );
        if expected.as_slice() != e.hash.as_slice() {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        if let Err(newer) = walk.in_key_order(e.key_id, e.at.0) {
            return Err(ChainBreak::OldKey {
                seq: e.seq,
                key_id: e.key_id,
                newer,
            });
        }
        walk.prev = e.hash.clone();
        walk.seq = e.seq;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entry `seq` after `prev`, hashed under `key`, naming `key_id`.
    fn entry(key: &KeyedHasher, key_id: i64, prev: &[u8], seq: i64) -> AuditEntry {
        entry_at(key, key_id, prev, seq, seq)
    }

    /// The same, dated `at`.
    fn entry_at(key: &KeyedHasher, key_id: i64, prev: &[u8], seq: i64, at: i64) -> AuditEntry {
        let hash = chain_hash(
            key,
            &ChainInput {
                prev,
                seq,
                at: UnixTime(at),
                kind: "signin.succeeded",
                account_id: Some(1),
                actor: "self",
                client_ip: None,
                detail: "",
            },
        );
        AuditEntry {
            seq,
            at: UnixTime(at),
            kind: "signin.succeeded".into(),
            account_id: Some(1),
            actor: "self".into(),
            client_ip: None,
            detail: String::new(),
            prev_hash: prev.to_vec(),
            hash: hash.to_vec(),
            key_id,
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_vec();
        (1..=n)
            .map(|seq| {
                let e = entry(&key(), 1, &prev, seq);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn key() -> KeyedHasher {
        KeyedHasher::new(zeroize::Zeroizing::new([5; 32]))
    }

    /// A ring of [`key`] as key 1 and `[7; 32]` as key 2, the current one.
    fn two_keys() -> ChainKeys {
        let ring = KeyRing::parse(&format!(
            "current 2\nkey 1 {}\nkey 2 {}\n",
            "05".repeat(32),
            "07".repeat(32)
        ))
        .unwrap();
        ChainKeys::of_ring(&ring)
    }

    fn verify(entries: &[AuditEntry]) -> Result<(), ChainBreak> {
        verify_run(&key().into(), entries, &mut ChainWalk::default())
    }

    #[test]
    fn the_chain_is_keyed() {
        // The same entries under another key do not verify: recomputing the chain needs the
        // key, which is not in the database.
        let c = chain(3);
        let other = KeyedHasher::new(zeroize::Zeroizing::new([6; 32]));
        assert_eq!(
            verify_run(&other.into(), &c, &mut ChainWalk::default()),
            Err(ChainBreak::Altered { seq: 1 })
        );
    }

    #[test]
    fn a_clean_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn an_edit_is_found() {
        let mut c = chain(5);
        c[2].detail = "changed".into();
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn a_deletion_is_found() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c), Err(ChainBreak::Broken { seq: 3 }));
    }

    #[test]
    fn a_deletion_from_the_end_is_found_by_the_head() {
        let c = chain(5);
        let head = c[4].hash.clone();
        let mut walk = ChainWalk::default();
        verify_run(&key().into(), &c[..3], &mut walk).unwrap();
        let prev = walk.prev.clone();
        assert_eq!(
            verify_head(walk.seq, &prev, 5, &head),
            Err(ChainBreak::Truncated { seq: 4 })
        );
        assert_eq!(
            verify_head(3, &prev, 3, &head),
            Err(ChainBreak::Rewritten { seq: 3 })
        );
        assert_eq!(verify_head(5, &head, 5, &head), Ok(()));
        assert_eq!(ChainBreak::Truncated { seq: 4 }.seq(), 4);
        assert_eq!(ChainBreak::Altered { seq: 2 }.problem(), "altered");
    }

    #[test]
    fn each_entry_is_verified_under_the_key_it_names() {
        // Entries 1-2 under key 1, 3-4 under key 2 (a rotation in between).
        let two = KeyedHasher::new(zeroize::Zeroizing::new([7; 32]));
        let mut c = chain(2);
        for seq in 3..=4 {
            let e = entry(&two, 2, &c[c.len() - 1].hash, seq);
            c.push(e);
        }
        let keys = two_keys();
        let run = |c: &[AuditEntry]| verify_run(&keys, c, &mut ChainWalk::default());
        assert_eq!(run(&c), Ok(()));
        // Under key 1 alone, the first entry under key 2 is not verifiable.
        assert_eq!(
            verify(&c),
            Err(ChainBreak::UnknownKey { seq: 3, key_id: 2 })
        );
        // An entry moved to the other key by editing its id does not verify.
        let mut moved = c.clone();
        moved[3].key_id = 1;
        assert_eq!(run(&moved), Err(ChainBreak::Altered { seq: 4 }));
        let mut edited = c;
        edited[2].detail = "changed".into();
        assert_eq!(run(&edited), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn an_old_key_is_accepted_only_while_a_rotation_reaches_every_node() {
        let two = KeyedHasher::new(zeroize::Zeroizing::new([7; 32]));
        let keys = two_keys();
        // (key, at) of each entry after the first two under key 1 at times 1 and 2.
        let build = |tail: &[(i64, i64)]| {
            let mut c = chain(2);
            for (n, &(id, at)) in tail.iter().enumerate() {
                let k = if id == 1 { key() } else { two.clone() };
                let seq = 3 + i64::try_from(n).unwrap();
                let e = entry_at(&k, id, &c[c.len() - 1].hash, seq, at);
                c.push(e);
            }
            c
        };
        let run = |c: &[AuditEntry]| verify_run(&keys, c, &mut ChainWalk::default());
        let past = 1_000 + KEY_LAG_SECS + 1;
        // Key 2 first used at 1,000; a node still on key 1 appends within the lag: fine.
        let within = 1_000 + KEY_LAG_SECS;
        assert_eq!(
            run(&build(&[(2, 1_000), (1, 1_001), (2, 1_002), (1, within)])),
            Ok(())
        );
        // Past the lag, an entry under key 1 (a leaked old key, or a node never updated).
        assert_eq!(
            run(&build(&[(2, 1_000), (2, past - 1), (1, past)])),
            Err(ChainBreak::OldKey {
                seq: 5,
                key_id: 1,
                newer: 2
            })
        );
        // Backdated into the lag but appended after later entries: found too.
        assert_eq!(
            run(&build(&[(2, 1_000), (2, past), (1, 1_100)])),
            Err(ChainBreak::OldKey {
                seq: 5,
                key_id: 1,
                newer: 2
            })
        );
        // A little behind the latest entry (clocks differ between nodes): fine.
        assert_eq!(run(&build(&[(2, 1_000), (2, 1_030), (1, 1_000)])), Ok(()));
        // Two rotations: key 1 is measured from key 2's first use, not key 3's.
        let three = KeyedHasher::new(zeroize::Zeroizing::new([8; 32]));
        let ring = KeyRing::parse(&format!(
            "current 3\nkey 1 {}\nkey 2 {}\nkey 3 {}\n",
            "05".repeat(32),
            "07".repeat(32),
            "08".repeat(32)
        ))
        .unwrap();
        let mut c = chain(2);
        for (seq, k, id, at) in [
            (3, &two, 2, 1_000),
            (4, &three, 3, past),
            (5, &key(), 1, past),
        ] {
            let e = entry_at(k, id, &c[c.len() - 1].hash, seq, at);
            c.push(e);
        }
        assert_eq!(
            verify_run(&ChainKeys::of_ring(&ring), &c, &mut ChainWalk::default()),
            Err(ChainBreak::OldKey {
                seq: 5,
                key_id: 1,
                newer: 3
            })
        );
        // The walk carries the keys' first uses across runs (the support API walks in pages).
        let c = build(&[(2, 1_000), (2, past - 1), (1, past)]);
        let mut walk = ChainWalk::default();
        assert_eq!(verify_run(&keys, &c[..4], &mut walk), Ok(()));
        assert_eq!(
            verify_run(&keys, &c[4..], &mut walk),
            Err(ChainBreak::OldKey {
                seq: 5,
                key_id: 1,
                newer: 2
            })
        );
        assert_eq!(
            ChainBreak::OldKey {
                seq: 5,
                key_id: 1,
                newer: 2
            }
            .problem(),
            "old_key"
        );
    }

    #[test]
    fn a_reordering_is_found() {
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c), Err(ChainBreak::Broken { seq: 3 }));
    }
}
