//! What a registry load does to online accounts (issue 17, docs/design/cards.md): the
//! linked cards whose status it changed, the move of a replaced card's online account to
//! its replacement, the `Idempotency-Key`s of registry pushes, and the accounts whose every
//! card is closed. All set-based: each question is one indexed statement over the load's
//! records (`changed_in`, `replaces_hash`), never a statement per record.

use crate::Db;
use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AccountRow, CardReissue, CardStatusChange, PushKey, RegistryWrites, Settled, StoreResult,
};

use crate::accounts::{account_columns, AccountRecord};
use crate::error::is_unique_violation;
use crate::registry::{card_status, SqlImport};
use crate::sql::statements;
use crate::{db_err, SqlWork};

/// A replacement of a replacement is followed this many times in one load at most.
const MAX_CHAIN: usize = 8;

/// The accounts with cards, all of them closed since `$1` at the latest.
macro_rules! all_closed {
    ($a:literal) => {
        concat!(
            $a,
            ".status = 'active' AND EXISTS (SELECT 1 FROM account_cards c WHERE c.account_id = ",
            $a,
            ".id) AND NOT EXISTS (SELECT 1 FROM account_cards c JOIN registry_records r \
             ON r.id = c.registry_record_id WHERE c.account_id = ",
            $a,
            ".id AND (r.status <> 'closed' OR r.status_since IS NULL OR r.status_since > $1))"
        )
    };
}

statements! {
    /// The linked cards whose status this load changed, with their accounts.
    STATUS_CHANGES = concat!("SELECT r.id AS record_id, r.last4, r.status, ",
        account_columns!("a."),
        " FROM registry_records r JOIN account_cards c ON c.registry_record_id = r.id \
         JOIN online_accounts a ON a.id = c.account_id WHERE r.changed_in = $1 ORDER BY r.id");
    /// Linked cards that a record of this load replaces, whose replacement backs no account
    /// yet.
    REISSUES = concat!("SELECT o.id AS old_id, o.last4 AS old_last4, n.id AS new_id, \
         n.last4 AS new_last4, ",
        account_columns!("a."),
        " FROM registry_records n JOIN registry_records o ON o.number_hash = n.replaces_hash \
         JOIN account_cards c ON c.registry_record_id = o.id \
         JOIN online_accounts a ON a.id = c.account_id \
         WHERE n.reissued_in = $1 AND NOT EXISTS \
         (SELECT 1 FROM account_cards x WHERE x.registry_record_id = n.id) ORDER BY n.id");
    MOVE_CARD = "UPDATE account_cards SET registry_record_id = $2, linked_at = $3 \
        WHERE registry_record_id = $1";
    FIND_PUSH = "SELECT request_hash, response FROM registry_pushes WHERE idempotency_key = $1";
    INSERT_PUSH = "INSERT INTO registry_pushes (idempotency_key, request_hash, response, \
        created_at) VALUES ($1, $2, $3, $4)";
    ACCOUNTS_ALL_CLOSED = concat!("SELECT ", account_columns!("a."),
        " FROM online_accounts a WHERE ", all_closed!("a"), " ORDER BY a.id LIMIT $2");
    DEACTIVATE_CLOSED = concat!("UPDATE online_accounts SET status = 'deactivated', \
        deactivated_at = $3 WHERE id = $2 AND ", all_closed!("online_accounts"));
}

#[derive(sqlx::FromRow)]
struct StatusChangeRow {
    record_id: i64,
    last4: String,
    status: String,
    #[sqlx(flatten)]
    account: AccountRecord,
}

#[derive(sqlx::FromRow)]
struct ReissueRow {
    old_id: i64,
    old_last4: String,
    new_id: i64,
    new_last4: String,
    #[sqlx(flatten)]
    account: AccountRecord,
}

pub(crate) async fn settle(import: &mut SqlImport) -> StoreResult<Settled> {
    let rows: Vec<StatusChangeRow> = sqlx::query_as(STATUS_CHANGES)
        .bind(import.load)
        .fetch_all(import.tx.conn()?)
        .await
        .map_err(db_err)?;
    let mut settled = Settled::default();
    for r in rows {
        settled.status_changes.push(CardStatusChange {
            record_id: r.record_id,
            last4: r.last4,
            status: card_status(&r.status)?,
            account: AccountRow::try_from(r.account)?,
        });
    }
    // A card replaced twice within one load (lost, then its replacement damaged) moves
    // along the chain one step per round.
    for _ in 0..MAX_CHAIN {
        let rows: Vec<ReissueRow> = sqlx::query_as(REISSUES)
            .bind(import.load)
            .fetch_all(import.tx.conn()?)
            .await
            .map_err(db_err)?;
        if rows.is_empty() {
            break;
        }
        let mut moved_to = std::collections::HashSet::new();
        for r in rows {
            // Two records naming the same old card: the first (oldest) takes the account.
            if !moved_to.insert(r.old_id) {
                continue;
            }
            sqlx::query(MOVE_CARD)
                .bind(r.old_id)
                .bind(r.new_id)
                .bind(import.now.0)
                .execute(import.tx.conn()?)
                .await
                .map_err(db_err)?;
            settled.reissues.push(CardReissue {
                old_record_id: r.old_id,
                old_last4: r.old_last4,
                new_record_id: r.new_id,
                new_last4: r.new_last4,
                account: AccountRow::try_from(r.account)?,
            });
        }
    }
    Ok(settled)
}

pub(crate) async fn claim_push_key(
    import: &mut SqlImport,
    key: &str,
    request_hash: &[u8; 32],
    response: &str,
) -> StoreResult<PushKey> {
    let found: Option<(Vec<u8>, String)> = sqlx::query_as(FIND_PUSH)
        .bind(key)
        .fetch_optional(import.tx.conn()?)
        .await
        .map_err(db_err)?;
    if let Some((hash, response)) = found {
        return Ok(if portcullis_crypto::ct_eq(&hash, request_hash) {
            PushKey::Replay(response)
        } else {
            PushKey::Conflict
        });
    }
    // On PostgreSQL a parallel push with the same key waits here on the key's index entry
    // until this load commits or rolls back; it then fails as a duplicate and its caller
    // asks again (SQLite loads are serialised by their write lock from BEGIN).
    sqlx::query(INSERT_PUSH)
        .bind(key)
        .bind(request_hash.to_vec())
        .bind(response)
        .bind(import.now.0)
        .execute(import.tx.conn()?)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "registry_pushes") {
                portcullis_core::ports::StoreError::Unavailable(
                    "a push with the same Idempotency-Key is in progress".into(),
                )
            } else {
                db_err(e)
            }
        })?;
    Ok(PushKey::Fresh)
}

pub(crate) async fn accounts_with_cards_closed(
    pool: &Db,
    closed_before: UnixTime,
    limit: i64,
) -> StoreResult<Vec<AccountRow>> {
    let rows: Vec<AccountRecord> = sqlx::query_as(ACCOUNTS_ALL_CLOSED)
        .bind(closed_before.0)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.into_iter().map(AccountRow::try_from).collect()
}

#[async_trait]
impl RegistryWrites for SqlWork {
    async fn deactivate_closed_account(
        &mut self,
        account_id: i64,
        closed_before: UnixTime,
    ) -> StoreResult<bool> {
        let now = self.stamp();
        let conn = self.conn().await?;
        let done = sqlx::query(DEACTIVATE_CLOSED)
            .bind(closed_before.0)
            .bind(account_id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        // A deactivated account keeps no session (as the inactivity deactivation).
        sqlx::query(crate::accounts::END_SESSIONS)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(true)
    }

    async fn move_record(
        &mut self,
        id: i64,
        from_key_id: i64,
        to_key_id: i64,
        number_hash: &[u8; 32],
        verification_hash: &[u8; 32],
    ) -> StoreResult<bool> {
        crate::registry::move_found(
            self,
            id,
            from_key_id,
            to_key_id,
            number_hash,
            verification_hash,
        )
        .await
    }
}
