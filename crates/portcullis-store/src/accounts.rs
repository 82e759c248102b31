//! Online accounts: lookups, and the account's state changes inside a unit of work
//! (creation, sign-ins, passwords, unlocking, contact details, linked cards, inactivity).
//! Each change is one conditional statement, or a few whose first takes the account's row
//! (on PostgreSQL; SQLite transactions hold the write lock from BEGIN), so of two racing
//! callers exactly one makes it.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{
    AccountReads, AccountRow, AccountWrites, CardSummary, ContactField, CreateAccountError,
    DeviceRow, NewAccount, Reregistration, StoreError, StoreResult, Unlink,
};
use portcullis_core::steps::StepKind;
use sqlx::AnyConnection;

use crate::devices::{device_columns, JoinedDeviceRecord};
use crate::error::is_unique_violation;
use crate::registry::account_type;
use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

/// The account columns every account query reads, in [`AccountRecord`]'s names.
macro_rules! account_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "id, ",
            $prefix,
            "user_id, ",
            $prefix,
            "account_type, ",
            $prefix,
            "password_hash, ",
            $prefix,
            "code_channel, ",
            $prefix,
            "email, ",
            $prefix,
            "phone, ",
            $prefix,
            "failed_count, ",
            $prefix,
            "locked_until, ",
            $prefix,
            "created_at, ",
            $prefix,
            "last_sign_in_at, ",
            $prefix,
            "last_active_at, ",
            $prefix,
            "inactivity_warned_at, ",
            $prefix,
            "deactivated_at, ",
            $prefix,
            "password_compromised_at, ",
            $prefix,
            "must_change_password_at, ",
            $prefix,
            "security_questions_required_at"
        )
    };
}

pub(crate) use account_columns;

/// The account's cards beside the account `a`: one row per card, one with no card.
macro_rules! home_cards_join {
    () => {
        "LEFT JOIN account_cards c ON c.account_id = a.id \
         LEFT JOIN registry_records r ON r.id = c.registry_record_id"
    };
}

/// The card columns of a card summary, in [`CardRecord`]'s names.
macro_rules! card_columns {
    () => {
        "r.id AS card_id, r.last4, r.product, r.holder_name, r.balance, r.credit_limit, \
         r.payment_due_date, r.minimum_due, r.status AS card_status"
    };
}

pub(crate) use {card_columns, home_cards_join};

statements! {
    FIND_ACCOUNT = concat!("SELECT ", account_columns!(""),
        " FROM online_accounts WHERE user_id_canonical = $1");
    /// The account by User ID and the one of its devices whose token hash is `$2` (none when
    /// `$2` is NULL): the two reads of a sign-in before its hash, in one.
    FIND_ACCOUNT_ON_DEVICE = concat!("SELECT ", account_columns!("a."), ", ",
        device_columns!("d."),
        " FROM online_accounts a LEFT JOIN devices d ON d.account_id = a.id AND d.token_hash = $2 \
         WHERE a.user_id_canonical = $1");
    ACCOUNT_BY_ID = concat!("SELECT ", account_columns!(""), " FROM online_accounts WHERE id = $1");
    ACCOUNTS_BY_EMAIL = concat!("SELECT ", account_columns!(""),
        " FROM online_accounts WHERE email = $1 ORDER BY id");
    ACCOUNTS_TO_WARN = concat!("SELECT ", account_columns!(""),
        " FROM online_accounts WHERE status = 'active' AND inactivity_warned_at IS NULL \
         AND last_active_at <= $1 ORDER BY last_active_at, id LIMIT $2");
    ACCOUNTS_TO_DEACTIVATE = concat!("SELECT ", account_columns!(""),
        " FROM online_accounts WHERE status = 'active' AND inactivity_warned_at IS NOT NULL \
         AND inactivity_warned_at <= $1 ORDER BY inactivity_warned_at, id LIMIT $2");
    CARDS_FOR_ACCOUNT = concat!("SELECT ", card_columns!(),
        " FROM account_cards c JOIN registry_records r ON r.id = c.registry_record_id \
         WHERE c.account_id = $1 ORDER BY c.linked_at, r.id");
    /// The account row repeated beside each linked card (or once, with NULL card columns,
    /// when it has none): the account home in one statement.
    ACCOUNT_HOME = concat!("SELECT ", account_columns!("a."), ", ", card_columns!(),
        " FROM online_accounts a ", home_cards_join!(), " WHERE a.id = $1 ORDER BY c.linked_at, r.id");
    CARD_HASHES = "SELECT r.id, r.number_hash, r.verification_hash, r.key_id FROM account_cards c \
        JOIN registry_records r ON r.id = c.registry_record_id WHERE c.account_id = $1";
    SECURITY_ANSWERS = "SELECT question_id, answer_hash FROM security_answers \
        WHERE account_id = $1 ORDER BY question_id";
    PASSWORD_HISTORY = "SELECT password_hash FROM password_history WHERE account_id = $1 \
        ORDER BY id DESC LIMIT $2";

    /// Consuming the registration step first makes it single-use.
    CONSUME_STEP = "DELETE FROM steps WHERE token_hash = $1 AND kind = $2";
    CARD_TAKEN = "SELECT account_id FROM account_cards WHERE registry_record_id = $1";
    INSERT_ACCOUNT = "INSERT INTO online_accounts (user_id, user_id_canonical, account_type, \
        password_hash, code_channel, email, phone, created_at, last_active_at, public_id) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id";
    /// The record's primary key in account_cards is the rule: one account per card.
    INSERT_ACCOUNT_CARD = "INSERT INTO account_cards (registry_record_id, account_id, linked_at) \
        VALUES ($1, $2, $3)";
    INSERT_ANSWER = "INSERT INTO security_answers (account_id, question_id, answer_hash) \
        VALUES ($1, $2, $3)";
    DELETE_ANSWERS = "DELETE FROM security_answers WHERE account_id = $1";
    ANSWERS_CHOSEN = "UPDATE online_accounts SET security_questions_required_at = NULL \
        WHERE id = $1";
    REREGISTER = "UPDATE online_accounts SET user_id = $2, user_id_canonical = $3, \
        password_hash = $4, code_channel = $5, status = 'active', deactivated_at = NULL, \
        inactivity_warned_at = NULL, last_active_at = $6, failed_count = 0, locked_until = NULL \
        WHERE id = $1 AND status = 'deactivated'";
    CLEAR_DEVICE_LOCKS = "UPDATE devices SET failed_count = 0, locked_until = NULL \
        WHERE account_id = $1";

    /// Only over the hash the sign-in verified: a reset that landed meanwhile wins.
    RECORD_SIGN_IN = "UPDATE online_accounts SET failed_count = 0, last_sign_in_at = $2, \
        last_active_at = $2, inactivity_warned_at = NULL WHERE id = $1 AND password_hash = $3";
    REHASH_PASSWORD = "UPDATE online_accounts SET password_hash = $2 \
        WHERE id = $1 AND password_hash = $3";
    COPY_TO_HISTORY = "INSERT INTO password_history (account_id, password_hash, created_at) \
        SELECT id, password_hash, $2 FROM online_accounts WHERE id = $1";
    /// A new password clears a "not me" compromise mark: the old one is what was known.
    SET_PASSWORD = "UPDATE online_accounts SET password_hash = $2, \
        password_compromised_at = NULL, must_change_password_at = NULL WHERE id = $1";
    /// "This was not me": the password is known to someone else.
    MARK_COMPROMISED = "UPDATE online_accounts SET password_compromised_at = $2 WHERE id = $1";
    TRIM_HISTORY = "DELETE FROM password_history WHERE account_id = $1 AND id NOT IN \
        (SELECT id FROM password_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2)";
    /// An unlock by support or by card ID + code also lifts the locks of the account's
    /// known devices: the person proved who they are.
    UNLOCK_DEVICES = "UPDATE devices SET failed_count = 0, locked_until = NULL \
        WHERE account_id = $1 AND (locked_until IS NOT NULL OR failed_count > 0)";
    UNLOCK_ACCOUNT = "UPDATE online_accounts SET failed_count = 0, locked_until = NULL \
        WHERE id = $1 AND (locked_until IS NOT NULL OR failed_count > 0)";
    /// The column comes from the enum, never from input: one statement per field.
    CHANGE_EMAIL = "UPDATE online_accounts SET email = $2 WHERE id = $1";
    CHANGE_PHONE = "UPDATE online_accounts SET phone = $2 WHERE id = $1";
    /// The value a contact change replaces, kept for "This was not me".
    KEEP_EMAIL = "INSERT INTO contact_history (account_id, field, old_value, changed_at) \
        SELECT id, 'email', email, $2 FROM online_accounts WHERE id = $1";
    KEEP_PHONE = "INSERT INTO contact_history (account_id, field, old_value, changed_at) \
        SELECT id, 'phone', phone, $2 FROM online_accounts WHERE id = $1";
    /// Each field back to its value before the first change at or after $2.
    REVERT_EMAIL = "UPDATE online_accounts SET email = (SELECT h.old_value FROM contact_history h \
        WHERE h.account_id = $1 AND h.field = 'email' AND h.changed_at >= $2 \
        ORDER BY h.changed_at, h.id LIMIT 1) \
        WHERE id = $1 AND EXISTS (SELECT 1 FROM contact_history h \
        WHERE h.account_id = $1 AND h.field = 'email' AND h.changed_at >= $2)";
    REVERT_PHONE = "UPDATE online_accounts SET phone = (SELECT h.old_value FROM contact_history h \
        WHERE h.account_id = $1 AND h.field = 'phone' AND h.changed_at >= $2 \
        ORDER BY h.changed_at, h.id LIMIT 1) \
        WHERE id = $1 AND EXISTS (SELECT 1 FROM contact_history h \
        WHERE h.account_id = $1 AND h.field = 'phone' AND h.changed_at >= $2)";
    DROP_REVERTED = "DELETE FROM contact_history WHERE account_id = $1 AND changed_at >= $2";
    CONTACT_OF = "SELECT email, phone FROM online_accounts WHERE id = $1";
    LINK_CARD = "INSERT INTO account_cards (registry_record_id, account_id, linked_at) \
        VALUES ($1, $2, $3) ON CONFLICT (registry_record_id) DO NOTHING";
    /// A write first: the account's row lock (PostgreSQL), so a parallel unlink waits and
    /// then counts the cards this one left.
    TAKE_ACCOUNT_ROW = "UPDATE online_accounts SET id = id WHERE id = $1";
    ACCOUNT_CARD_IDS = "SELECT registry_record_id FROM account_cards WHERE account_id = $1";
    UNLINK_CARD = "DELETE FROM account_cards WHERE registry_record_id = $1 AND account_id = $2";
    MARK_WARNED = "UPDATE online_accounts SET inactivity_warned_at = $2 WHERE id = $1 \
        AND status = 'active' AND inactivity_warned_at IS NULL AND last_active_at <= $3";
    DEACTIVATE = "UPDATE online_accounts SET status = 'deactivated', deactivated_at = $2 \
        WHERE id = $1 AND status = 'active' AND inactivity_warned_at IS NOT NULL \
        AND inactivity_warned_at <= $3";
    END_SESSIONS = "DELETE FROM sessions WHERE account_id = $1";
    REACTIVATE = "UPDATE online_accounts SET status = 'active', deactivated_at = NULL, \
        inactivity_warned_at = NULL, last_active_at = $2 WHERE id = $1 AND status = 'deactivated'";
}

/// An account and the device of [`FIND_ACCOUNT_ON_DEVICE`]'s outer join.
#[derive(sqlx::FromRow)]
struct AccountOnDeviceRecord {
    #[sqlx(flatten)]
    account: AccountRecord,
    #[sqlx(flatten)]
    device: JoinedDeviceRecord,
}

/// An `online_accounts` row as read.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRecord {
    id: i64,
    user_id: String,
    account_type: String,
    password_hash: String,
    code_channel: String,
    email: Option<String>,
    phone: Option<String>,
    failed_count: i64,
    locked_until: Option<i64>,
    created_at: i64,
    last_sign_in_at: Option<i64>,
    last_active_at: Option<i64>,
    inactivity_warned_at: Option<i64>,
    deactivated_at: Option<i64>,
    password_compromised_at: Option<i64>,
    must_change_password_at: Option<i64>,
    security_questions_required_at: Option<i64>,
}

impl TryFrom<AccountRecord> for AccountRow {
    type Error = StoreError;

    fn try_from(r: AccountRecord) -> StoreResult<Self> {
        Ok(AccountRow {
            id: r.id,
            user_id: r.user_id,
            account_type: account_type(&r.account_type)?,
            password_hash: r.password_hash,
            code_channel: CodeChannel::parse(&r.code_channel).ok_or_else(|| {
                StoreError::Internal(format!("unknown code channel {:?}", r.code_channel))
            })?,
            email: r.email,
            phone: r.phone,
            failed_count: u32::try_from(r.failed_count).unwrap_or(u32::MAX),
            locked_until: r.locked_until.map(UnixTime),
            created_at: UnixTime(r.created_at),
            last_sign_in_at: r.last_sign_in_at.map(UnixTime),
            last_active_at: UnixTime(r.last_active_at.unwrap_or(r.created_at)),
            inactivity_warned_at: r.inactivity_warned_at.map(UnixTime),
            deactivated_at: r.deactivated_at.map(UnixTime),
            password_compromised_at: r.password_compromised_at.map(UnixTime),
            must_change_password_at: r.must_change_password_at.map(UnixTime),
            security_questions_required_at: r.security_questions_required_at.map(UnixTime),
        })
    }
}

/// A linked card's figures.
#[derive(sqlx::FromRow)]
struct CardRecord {
    card_id: i64,
    last4: String,
    product: String,
    holder_name: String,
    balance: Option<i64>,
    credit_limit: Option<i64>,
    payment_due_date: Option<String>,
    minimum_due: Option<i64>,
    card_status: String,
}

impl From<CardRecord> for CardSummary {
    fn from(r: CardRecord) -> Self {
        CardSummary {
            id: r.card_id,
            last4: r.last4,
            product: r.product,
            holder_name: r.holder_name,
            balance: r.balance,
            credit_limit: r.credit_limit,
            payment_due_date: r.payment_due_date,
            minimum_due: r.minimum_due,
            status: r.card_status,
        }
    }
}

/// One row of the account home: the account, and one card or none.
#[derive(sqlx::FromRow)]
pub(crate) struct HomeRecord {
    #[sqlx(flatten)]
    account: AccountRecord,
    card_id: Option<i64>,
    last4: Option<String>,
    product: Option<String>,
    holder_name: Option<String>,
    balance: Option<i64>,
    credit_limit: Option<i64>,
    payment_due_date: Option<String>,
    minimum_due: Option<i64>,
    card_status: Option<String>,
}

impl HomeRecord {
    /// The account of the first row (every row has the same) and the card of each row.
    pub(crate) fn home(rows: Vec<Self>) -> StoreResult<Option<(AccountRow, Vec<CardSummary>)>> {
        let cards = rows.iter().filter_map(Self::card).collect();
        let Some(first) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some((AccountRow::try_from(first.account)?, cards)))
    }

    pub(crate) fn card(&self) -> Option<CardSummary> {
        Some(CardSummary {
            id: self.card_id?,
            last4: self.last4.clone()?,
            product: self.product.clone()?,
            holder_name: self.holder_name.clone()?,
            balance: self.balance,
            credit_limit: self.credit_limit,
            payment_due_date: self.payment_due_date.clone(),
            minimum_due: self.minimum_due,
            status: self.card_status.clone()?,
        })
    }
}

fn accounts(records: Vec<AccountRecord>) -> StoreResult<Vec<AccountRow>> {
    records.into_iter().map(AccountRow::try_from).collect()
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The account's answers, inside the transaction.
async fn insert_answers(
    conn: &mut AnyConnection,
    account_id: i64,
    answers: &[(i64, String)],
) -> StoreResult<()> {
    for (question_id, hash) in answers {
        sqlx::query(INSERT_ANSWER)
            .bind(account_id)
            .bind(*question_id)
            .bind(hash.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Consumes the registration step `token_hash`: false when it is gone.
async fn consume_registration(
    conn: &mut AnyConnection,
    token_hash: &[u8; 32],
) -> StoreResult<bool> {
    let done = sqlx::query(CONSUME_STEP)
        .bind(token_hash.to_vec())
        .bind(StepKind::Registration.as_str())
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl AccountReads for SqlStore {
    async fn find_account(&self, user_id_canonical: &str) -> StoreResult<Option<AccountRow>> {
        let row: Option<AccountRecord> = sqlx::query_as(FIND_ACCOUNT)
            .bind(user_id_canonical)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(AccountRow::try_from).transpose()
    }

    async fn find_account_on_device(
        &self,
        user_id_canonical: &str,
        device_token_hash: Option<&[u8; 32]>,
    ) -> StoreResult<Option<(AccountRow, Option<DeviceRow>)>> {
        let row: Option<AccountOnDeviceRecord> = sqlx::query_as(FIND_ACCOUNT_ON_DEVICE)
            .bind(user_id_canonical)
            .bind(device_token_hash.map(|h| h.to_vec()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(AccountOnDeviceRecord { account, device }) = row else {
            return Ok(None);
        };
        Ok(Some((AccountRow::try_from(account)?, device.device())))
    }

    async fn account_by_id(&self, id: i64) -> StoreResult<Option<AccountRow>> {
        let row: Option<AccountRecord> = sqlx::query_as(ACCOUNT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(AccountRow::try_from).transpose()
    }

    async fn cards_for_account(&self, account_id: i64) -> StoreResult<Vec<CardSummary>> {
        let rows: Vec<CardRecord> = sqlx::query_as(CARDS_FOR_ACCOUNT)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(CardSummary::from).collect())
    }

    async fn account_home(
        &self,
        account_id: i64,
    ) -> StoreResult<Option<(AccountRow, Vec<CardSummary>)>> {
        let rows: Vec<HomeRecord> = sqlx::query_as(ACCOUNT_HOME)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        HomeRecord::home(rows)
    }

    async fn card_hashes(&self, account_id: i64) -> StoreResult<Vec<(i64, Vec<u8>, Vec<u8>, i64)>> {
        sqlx::query_as(CARD_HASHES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn security_answers(&self, account_id: i64) -> StoreResult<Vec<(i64, String)>> {
        sqlx::query_as(SECURITY_ANSWERS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn accounts_by_email(&self, email: &str) -> StoreResult<Vec<AccountRow>> {
        let rows = sqlx::query_as(ACCOUNTS_BY_EMAIL)
            .bind(email)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        accounts(rows)
    }

    async fn password_history(&self, account_id: i64, limit: usize) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(PASSWORD_HISTORY)
            .bind(account_id)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn accounts_to_warn(
        &self,
        inactive_since: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>> {
        let rows = sqlx::query_as(ACCOUNTS_TO_WARN)
            .bind(inactive_since.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        accounts(rows)
    }

    async fn accounts_to_deactivate(
        &self,
        warned_before: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>> {
        let rows = sqlx::query_as(ACCOUNTS_TO_DEACTIVATE)
            .bind(warned_before.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        accounts(rows)
    }
}

#[async_trait]
impl AccountWrites for SqlWork {
    async fn create_account(&mut self, new: NewAccount) -> Result<i64, CreateAccountError> {
        let now = self.stamp();
        let conn = self.conn().await?;
        if !consume_registration(conn, &new.step_token_hash).await? {
            return Err(CreateAccountError::StepGone);
        }
        let taken: Option<i64> = sqlx::query_scalar(CARD_TAKEN)
            .bind(new.registry_record_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        if taken.is_some() {
            return Err(CreateAccountError::CardAlreadyRegistered);
        }
        let inserted: Result<i64, _> = sqlx::query_scalar(INSERT_ACCOUNT)
            .bind(new.user_id)
            .bind(new.user_id_canonical)
            .bind(new.account_type.as_str())
            .bind(new.password_hash)
            .bind(new.code_channel.as_str())
            .bind(new.email)
            .bind(new.phone)
            .bind(now)
            .bind(new_public_id())
            .fetch_one(&mut *conn)
            .await;
        let account_id = match inserted {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e, "user_id_canonical") => {
                return Err(CreateAccountError::UserIdTaken)
            }
            Err(e) => return Err(db_err(e).into()),
        };
        let linked = sqlx::query(INSERT_ACCOUNT_CARD)
            .bind(new.registry_record_id)
            .bind(account_id)
            .bind(now)
            .execute(&mut *conn)
            .await;
        match linked {
            Ok(_) => {}
            Err(e)
                if is_unique_violation(&e, "account_cards")
                    || is_unique_violation(&e, "registry_record_id") =>
            {
                return Err(CreateAccountError::CardAlreadyRegistered)
            }
            Err(e) => return Err(db_err(e).into()),
        }
        insert_answers(conn, account_id, &new.security_answers).await?;
        Ok(account_id)
    }

    async fn replace_security_answers(
        &mut self,
        account_id: i64,
        answers: &[(i64, String)],
    ) -> StoreResult<()> {
        let conn = self.conn().await?;
        sqlx::query(DELETE_ANSWERS)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        insert_answers(conn, account_id, answers).await?;
        sqlx::query(ANSWERS_CHOSEN)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn reregister_account(&mut self, r: Reregistration) -> Result<(), CreateAccountError> {
        let now = self.stamp();
        let conn = self.conn().await?;
        if !consume_registration(conn, &r.step_token_hash).await? {
            return Err(CreateAccountError::StepGone);
        }
        let updated = sqlx::query(REREGISTER)
            .bind(r.account_id)
            .bind(&r.user_id)
            .bind(&r.user_id_canonical)
            .bind(&r.password_hash)
            .bind(r.code_channel.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await;
        match updated {
            Ok(done) if done.rows_affected() == 1 => {}
            // Reactivated by someone else meanwhile: the card now backs an active account.
            Ok(_) => return Err(CreateAccountError::CardAlreadyRegistered),
            Err(e) if is_unique_violation(&e, "user_id_canonical") => {
                return Err(CreateAccountError::UserIdTaken)
            }
            Err(e) => return Err(db_err(e).into()),
        }
        sqlx::query(DELETE_ANSWERS)
            .bind(r.account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        insert_answers(conn, r.account_id, &r.security_answers).await?;
        sqlx::query(CLEAR_DEVICE_LOCKS)
            .bind(r.account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn record_sign_in(&mut self, account_id: i64, verified_hash: &str) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(RECORD_SIGN_IN)
            .bind(account_id)
            .bind(now)
            .bind(verified_hash)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rehash_password(
        &mut self,
        account_id: i64,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(REHASH_PASSWORD)
            .bind(account_id)
            .bind(new)
            .bind(old)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_password_compromised(&mut self, account_id: i64) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(MARK_COMPROMISED)
            .bind(account_id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn change_password(
        &mut self,
        account_id: i64,
        new_hash: &str,
        keep: usize,
    ) -> StoreResult<()> {
        let now = self.stamp();
        let conn = self.conn().await?;
        sqlx::query(COPY_TO_HISTORY)
            .bind(account_id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        let updated = sqlx::query(SET_PASSWORD)
            .bind(account_id)
            .bind(new_hash)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Internal(format!("no account {account_id}")));
        }
        sqlx::query(TRIM_HISTORY)
            .bind(account_id)
            .bind(limit_of(keep))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn unlock_account(&mut self, account_id: i64) -> StoreResult<bool> {
        let conn = self.conn().await?;
        sqlx::query(UNLOCK_DEVICES)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        let done = sqlx::query(UNLOCK_ACCOUNT)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revert_contact_since(
        &mut self,
        account_id: i64,
        since: UnixTime,
    ) -> StoreResult<Option<(Option<String>, Option<String>)>> {
        let mut reverted = 0;
        for sql in [REVERT_EMAIL, REVERT_PHONE] {
            reverted += sqlx::query(sql)
                .bind(account_id)
                .bind(since.0)
                .execute(self.conn().await?)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        if reverted == 0 {
            return Ok(None);
        }
        sqlx::query(DROP_REVERTED)
            .bind(account_id)
            .bind(since.0)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        let contact: Option<(Option<String>, Option<String>)> = sqlx::query_as(CONTACT_OF)
            .bind(account_id)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(contact)
    }

    async fn change_contact(
        &mut self,
        account_id: i64,
        field: ContactField,
        value: &str,
    ) -> StoreResult<bool> {
        let (keep, sql) = match field {
            ContactField::Email => (KEEP_EMAIL, CHANGE_EMAIL),
            ContactField::Phone => (KEEP_PHONE, CHANGE_PHONE),
        };
        let now = self.stamp();
        sqlx::query(keep)
            .bind(account_id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        let done = sqlx::query(sql)
            .bind(account_id)
            .bind(value)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn link_card(&mut self, account_id: i64, record_id: i64) -> StoreResult<bool> {
        let now = self.stamp();
        let inserted = sqlx::query(LINK_CARD)
            .bind(record_id)
            .bind(account_id)
            .bind(now)
            .execute(self.conn().await?)
            .await;
        match inserted {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e, "registry_record_id") => Ok(false),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn unlink_card(&mut self, account_id: i64, record_id: i64) -> StoreResult<Unlink> {
        let conn = self.conn().await?;
        sqlx::query(TAKE_ACCOUNT_ROW)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        let cards: Vec<i64> = sqlx::query_scalar(ACCOUNT_CARD_IDS)
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        if !cards.contains(&record_id) {
            return Ok(Unlink::NotLinked);
        }
        if cards.len() < 2 {
            return Ok(Unlink::LastCard);
        }
        sqlx::query(UNLINK_CARD)
            .bind(record_id)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(Unlink::Unlinked)
    }

    async fn mark_inactivity_warned(
        &mut self,
        account_id: i64,
        inactive_since: UnixTime,
    ) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(MARK_WARNED)
            .bind(account_id)
            .bind(now)
            .bind(inactive_since.0)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn deactivate_account(
        &mut self,
        account_id: i64,
        warned_before: UnixTime,
    ) -> StoreResult<bool> {
        let now = self.stamp();
        let conn = self.conn().await?;
        let done = sqlx::query(DEACTIVATE)
            .bind(account_id)
            .bind(now)
            .bind(warned_before.0)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(END_SESSIONS)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(true)
    }

    async fn reactivate_account(&mut self, account_id: i64) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(REACTIVATE)
            .bind(account_id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

/// A new account's public id (`acct_` and 32 hex digits of randomness): what security events
/// carry, fixed for the account's life and unrelated to its User ID, row number or any key.
pub(crate) fn new_public_id() -> String {
    let bytes: [u8; 16] = portcullis_crypto::token::random_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("acct_{hex}")
}
