//! Online accounts: the account row, its cards and answers, and the account's life
//! (creation, sign-ins, passwords, contact details, linked cards, inactivity).

use async_trait::async_trait;

use super::devices::DeviceRow;
use super::outbox::{Message, Outgoing};
use super::{StoreError, StoreResult};
use crate::clock::UnixTime;
use crate::contact::{self, CodeChannel};
use crate::ids::AccountType;
use crate::ServiceError;

/// The figures shown on the account home for one linked card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSummary {
    /// The registry record behind the card (names it for unlinking; not a secret).
    pub id: i64,
    pub last4: String,
    pub product: String,
    /// The holder's name on the registry record (a merchant's trading name).
    pub holder_name: String,
    pub balance: Option<i64>,
    pub credit_limit: Option<i64>,
    pub payment_due_date: Option<String>,
    pub minimum_due: Option<i64>,
    /// The card's status at the issuer (`active`, `blocked`, `lost_stolen`, `closed`).
    pub status: String,
}

#[derive(Clone, Debug)]
pub struct AccountRow {
    pub id: i64,
    pub user_id: String,
    pub account_type: AccountType,
    pub password_hash: String,
    pub code_channel: CodeChannel,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub failed_count: u32,
    pub locked_until: Option<UnixTime>,
    pub created_at: UnixTime,
    pub last_sign_in_at: Option<UnixTime>,
    /// What inactivity counts from: creation, the last sign-in or the reactivation.
    pub last_active_at: UnixTime,
    /// When the inactivity warning went out (cleared by a sign-in or a reactivation).
    pub inactivity_warned_at: Option<UnixTime>,
    /// Set while the account is deactivated (flow 10).
    pub deactivated_at: Option<UnixTime>,
    /// Set by "This was not me": the password is known to someone else, and sign-in refuses
    /// it until a new one is set.
    pub password_compromised_at: Option<UnixTime>,
    /// Set for an account imported with the earlier system's "must change password": a
    /// sign-in sends the person to change it; a new password clears it.
    pub must_change_password_at: Option<UnixTime>,
    /// Set for an account imported without security answers: a sign-in asks the person to
    /// choose questions; choosing them clears it.
    pub security_questions_required_at: Option<UnixTime>,
}

impl AccountRow {
    pub fn is_deactivated(&self) -> bool {
        self.deactivated_at.is_some()
    }

    /// Where a code or notice goes: `preferred` when the account has it, else its
    /// registered channel's rule (see [`contact::destination`]).
    pub fn destination(&self, preferred: Option<CodeChannel>) -> Option<(CodeChannel, String)> {
        contact::destination(
            preferred.unwrap_or(self.code_channel),
            self.email.as_deref(),
            self.phone.as_deref(),
        )
    }

    /// A message to this account, with its email as the fall-back for a text message the
    /// SMS quotas refuse.
    pub fn outgoing(&self, message: Message) -> Outgoing {
        let (fallback_email, fallback_phone) = match message.channel {
            CodeChannel::Sms => (self.email.clone(), None),
            // Only a code is worth a text message when the relay fails: it dies in minutes.
            CodeChannel::Email if message.sensitive => (None, self.phone.clone()),
            CodeChannel::Email => (None, None),
        };
        Outgoing {
            message,
            fallback_email,
            fallback_phone,
        }
    }

    /// A notice to the account's usual channel (none when it has no address at all).
    pub fn notice(&self, subject: String, body: String) -> Option<Outgoing> {
        let (channel, to) = self.destination(None)?;
        Some(self.outgoing(Message {
            channel,
            to,
            subject,
            body,
            sensitive: false,
        }))
    }
}

/// What registration writes, all in the one unit of work.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub user_id: String,
    pub user_id_canonical: String,
    pub account_type: AccountType,
    pub password_hash: String,
    pub security_answers: Vec<(i64, String)>,
    pub code_channel: CodeChannel,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub registry_record_id: i64,
    /// The registration step consumed by this creation.
    pub step_token_hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error("user id taken")]
    UserIdTaken,
    #[error("card already registered")]
    CardAlreadyRegistered,
    #[error("registration step expired or already used")]
    StepGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registration the database refused: each race has its own answer.
impl From<CreateAccountError> for ServiceError {
    fn from(e: CreateAccountError) -> Self {
        match e {
            CreateAccountError::UserIdTaken => ServiceError::UserIdTaken,
            CreateAccountError::CardAlreadyRegistered => ServiceError::CardAlreadyRegistered,
            CreateAccountError::StepGone => ServiceError::StepExpired,
            CreateAccountError::Store(e) => e.into(),
        }
    }
}

/// A deactivated account coming back through the registration path (card number + card
/// ID): new sign-in details on the same account.
#[derive(Clone, Debug)]
pub struct Reregistration {
    pub account_id: i64,
    pub user_id: String,
    pub user_id_canonical: String,
    pub password_hash: String,
    pub security_answers: Vec<(i64, String)>,
    pub code_channel: CodeChannel,
    /// The registration step consumed by it.
    pub step_token_hash: [u8; 32],
}

/// Which contact detail a change replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactField {
    Email,
    Phone,
}

impl ContactField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            _ => None,
        }
    }

    /// The channel messages to this detail use.
    pub fn channel(self) -> CodeChannel {
        match self {
            Self::Email => CodeChannel::Email,
            Self::Phone => CodeChannel::Sms,
        }
    }
}

/// What unlinking a card did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlink {
    Unlinked,
    /// The account has no such card.
    NotLinked,
    /// The card is the account's last: an account always keeps one.
    LastCard,
}

#[async_trait]
pub trait AccountReads: Send + Sync {
    async fn find_account(&self, user_id_canonical: &str) -> StoreResult<Option<AccountRow>>;
    /// The account with this User ID and, when `device_token_hash` is the hash of one of its
    /// devices' tokens, that device, in one read (a sign-in reads both before the hash).
    async fn find_account_on_device(
        &self,
        user_id_canonical: &str,
        device_token_hash: Option<&[u8; 32]>,
    ) -> StoreResult<Option<(AccountRow, Option<DeviceRow>)>>;
    async fn account_by_id(&self, id: i64) -> StoreResult<Option<AccountRow>>;
    async fn cards_for_account(&self, account_id: i64) -> StoreResult<Vec<CardSummary>>;
    /// The account and its cards in one read (the account home and `GET /me`, the most
    /// frequent authenticated request).
    async fn account_home(
        &self,
        account_id: i64,
    ) -> StoreResult<Option<(AccountRow, Vec<CardSummary>)>>;
    /// The account's linked cards: (registry record id, number hash, verification hash, the
    /// registry key id both hashes are under).
    async fn card_hashes(&self, account_id: i64) -> StoreResult<Vec<(i64, Vec<u8>, Vec<u8>, i64)>>;
    /// The account's security answers: (question id, answer hash).
    async fn security_answers(&self, account_id: i64) -> StoreResult<Vec<(i64, String)>>;
    /// Accounts whose contact email is `email` (lower-cased), oldest first.
    async fn accounts_by_email(&self, email: &str) -> StoreResult<Vec<AccountRow>>;
    /// The newest `limit` earlier password hashes.
    async fn password_history(&self, account_id: i64, limit: usize) -> StoreResult<Vec<String>>;
    /// Active, not yet warned accounts last active at or before `inactive_since`.
    async fn accounts_to_warn(
        &self,
        inactive_since: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>>;
    /// Active accounts warned at or before `warned_before`.
    async fn accounts_to_deactivate(
        &self,
        warned_before: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>>;
}

/// An account's state changes, inside a unit of work (stamped with its `now`). Each is one
/// conditional statement (or a few, the first of which takes the account's row): the
/// answer says whether this caller made the change, so of two racing callers one wins.
#[async_trait]
pub trait AccountWrites: Send {
    /// Consumes the registration step, creates the account, links its card and stores its
    /// answers.
    async fn create_account(&mut self, new: NewAccount) -> Result<i64, CreateAccountError>;
    /// Replaces the account's security answers (question id, answer hash) and clears
    /// "security questions required".
    async fn replace_security_answers(
        &mut self,
        account_id: i64,
        answers: &[(i64, String)],
    ) -> StoreResult<()>;
    /// A deactivated account back with new sign-in details, consuming the registration step.
    async fn reregister_account(&mut self, r: Reregistration) -> Result<(), CreateAccountError>;
    /// A successful sign-in: records the time and restarts the account's failure count (a
    /// lock already set stays), only while the stored hash is still `verified_hash`: false
    /// when a reset or change landed since the password was checked (the sign-in is then
    /// refused, and its unit of work dropped).
    async fn record_sign_in(&mut self, account_id: i64, verified_hash: &str) -> StoreResult<bool>;
    /// Replaces the hash in place (a rehash at new parameters: same password), only while the
    /// stored hash is still `old`: a password reset or change that landed meanwhile wins.
    async fn rehash_password(&mut self, account_id: i64, old: &str, new: &str)
        -> StoreResult<bool>;
    /// "This was not me": the password is known to someone else; sign-in refuses it until a
    /// new one is set (which clears the mark).
    async fn mark_password_compromised(&mut self, account_id: i64) -> StoreResult<()>;
    /// A new password: the old hash moves to the history, keeping the newest `keep`; a
    /// compromise mark is cleared.
    async fn change_password(
        &mut self,
        account_id: i64,
        new_hash: &str,
        keep: usize,
    ) -> StoreResult<()>;
    /// Clears the account's lock and count, and those of its known devices; true when there
    /// was something to clear.
    async fn unlock_account(&mut self, account_id: i64) -> StoreResult<bool>;
    /// "This was not me": every change of the email or phone made at or after `since` is
    /// undone (each field back to its value before the first such change). The account's
    /// email and phone afterwards when anything was undone.
    async fn revert_contact_since(
        &mut self,
        account_id: i64,
        since: UnixTime,
    ) -> StoreResult<Option<(Option<String>, Option<String>)>>;
    /// Replaces the account's email or phone, keeping the value it replaces (for
    /// [`Self::revert_contact_since`]).
    async fn change_contact(
        &mut self,
        account_id: i64,
        field: ContactField,
        value: &str,
    ) -> StoreResult<bool>;
    /// Links a record to the account; false when the record already backs an account
    /// (this one or another): the record's primary key decides, atomically.
    async fn link_card(&mut self, account_id: i64, record_id: i64) -> StoreResult<bool>;
    /// Unlinks a card unless it is the account's last (checked under the account's row
    /// lock, so two parallel unlinks cannot leave it with none).
    async fn unlink_card(&mut self, account_id: i64, record_id: i64) -> StoreResult<Unlink>;
    /// Records the warning if the account is still active, unwarned and inactive since
    /// `inactive_since`; true for the one caller that did.
    async fn mark_inactivity_warned(
        &mut self,
        account_id: i64,
        inactive_since: UnixTime,
    ) -> StoreResult<bool>;
    /// Deactivates the account (ending its sessions) if it is still active and was warned
    /// at or before `warned_before`; true for the one caller that did.
    async fn deactivate_account(
        &mut self,
        account_id: i64,
        warned_before: UnixTime,
    ) -> StoreResult<bool>;
    /// Reactivates a deactivated account (support); true when it was deactivated.
    async fn reactivate_account(&mut self, account_id: i64) -> StoreResult<bool>;
}
