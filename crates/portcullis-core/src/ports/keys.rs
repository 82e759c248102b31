//! Values sealed under a keyring (`portcullis_crypto::Sealer`: each names its key id), as
//! key rotation needs them: counted per key id for `keys status`, and moved to the current
//! key in small batches by the re-seal job. Each call is one short statement of its own
//! (never a long transaction); a move replaces a value only if it is still the one read, so
//! a use case that changed it meanwhile wins.

use async_trait::async_trait;

use super::StoreResult;

/// Where sealed values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedColumn {
    /// Authenticator-app secrets and passkey credentials (`factor.key`).
    FactorSecret,
    /// Queued message bodies that carry a one-time code (`outbox.key`).
    OutboxBody,
    /// Webhook subscriptions' signing secrets (`outbox.key`, under their own label).
    WebhookSecret,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 3] = [
        SealedColumn::FactorSecret,
        SealedColumn::OutboxBody,
        SealedColumn::WebhookSecret,
    ];

    /// The keyring (file name in the secrets folder) the column is sealed under.
    pub fn key_name(self) -> &'static str {
        match self {
            SealedColumn::FactorSecret => "factor.key",
            SealedColumn::OutboxBody | SealedColumn::WebhookSecret => "outbox.key",
        }
    }
}

/// A sealed value and its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedValue {
    pub row_id: i64,
    pub value: String,
}

#[async_trait]
pub trait SealedValues: Send + Sync {
    /// How many values of `column` match the SQL `LIKE` pattern `pattern`.
    async fn count_sealed(&self, column: SealedColumn, pattern: &str) -> StoreResult<i64>;
    /// Up to `limit` sealed values of `column` that do not match `current` (a `LIKE`
    /// pattern: the current key's values), with row ids above `after`, in row order.
    async fn sealed_not_under(
        &self,
        column: SealedColumn,
        current: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>>;
    /// Replaces row `row_id`'s value with `new` if it is still `old`; whether it did.
    async fn replace_sealed(
        &self,
        column: SealedColumn,
        row_id: i64,
        old: &str,
        new: &str,
    ) -> StoreResult<bool>;
}
