//! The unit of work over one database transaction (see `portcullis_core::ports::work`).
//!
//! The transaction begins at the first statement (so opening a unit of work costs nothing
//! and a read-only use case never takes a connection for it), every write of the use case
//! runs in it, and the commit writes the queued messages to the outbox, then appends the
//! queued audit events to the chain — last, because the chain's head row serialises
//! appends and should be held as briefly as possible — and COMMITs, through
//! [`crate::tx::commit_audited`] (on SQLite the entries and the COMMIT are one hand-off).
//! Dropped without a commit, the transaction rolls back when its connection returns to the
//! pool. Each area's writes are implemented on [`SqlWork`] in that area's module.

use async_trait::async_trait;
use portcullis_core::audit::AuditEvent;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{Committed, Outgoing, StoreError, StoreResult, UnitOfWork};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::outbox::OutboxSeal;
use crate::tx::{self, Tx, WriteGate};
use crate::{Backend, Db};

pub struct SqlWork {
    pool: Db,
    backend: Backend,
    gate: WriteGate,
    seal: Option<OutboxSeal>,
    now: UnixTime,
    tx: Option<Tx>,
    outgoing: Vec<Outgoing>,
    events: Vec<AuditEvent>,
}

impl SqlWork {
    pub(crate) fn new(
        pool: Db,
        (backend, gate): (Backend, WriteGate),
        seal: Option<OutboxSeal>,
        now: UnixTime,
    ) -> Self {
        Self {
            pool,
            backend,
            gate,
            seal,
            now,
            tx: None,
            outgoing: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The transaction's connection, beginning the transaction at the first statement.
    pub(crate) async fn conn(&mut self) -> StoreResult<&mut AnyConnection> {
        if self.tx.is_none() {
            self.tx = Some(tx::begin(&self.pool, self.backend, &self.gate).await?);
        }
        match self.tx.as_mut() {
            Some(tx) => tx.conn(),
            None => Err(StoreError::Internal("no transaction".into())),
        }
    }

    /// SQLite, before the unit's first statement (`None` once the transaction has begun):
    /// begins the transaction with `first`, a [`crate::tx::begin_then!`] list, in one
    /// hand-off; the rows the list's last statement changed.
    pub(crate) async fn begin_with<'q>(
        &mut self,
        first: Query<'q, Any, AnyArguments<'q>>,
    ) -> StoreResult<Option<u64>> {
        if self.tx.is_some() || self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let (tx, changed) = tx::begin_with(&self.pool, &self.gate, first).await?;
        self.tx = Some(tx);
        Ok(Some(changed))
    }

    /// The outbox keyring's sealer, when the store has one.
    pub(crate) fn outbox_sealer(&self) -> Option<&portcullis_crypto::Sealer> {
        self.seal.as_ref().map(OutboxSeal::sealer)
    }

    /// Which database the unit of work writes to.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The unit of work's time, for the statements that stamp rows.
    pub(crate) fn stamp(&self) -> i64 {
        self.now.0
    }

    /// Nothing done or queued yet: no transaction, no message, no audit event.
    pub(crate) fn is_fresh(&self) -> bool {
        self.tx.is_none() && self.outgoing.is_empty() && self.events.is_empty()
    }

    /// The pool the unit of work's transaction runs on.
    pub(crate) fn pool(&self) -> &Db {
        &self.pool
    }

    /// This store's writer queue (and the chain's head as last known).
    pub(crate) fn gate(&self) -> &WriteGate {
        &self.gate
    }
}

#[async_trait]
impl UnitOfWork for SqlWork {
    fn now(&self) -> UnixTime {
        self.now
    }

    fn send(&mut self, message: Outgoing) {
        self.outgoing.push(message);
    }

    fn audit(&mut self, event: AuditEvent) {
        self.events.push(event);
    }

    async fn commit(
        mut self: Box<Self>,
        audit_key: &portcullis_core::audit::ChainKey,
    ) -> StoreResult<Committed> {
        let messages = std::mem::take(&mut self.outgoing);
        let events = std::mem::take(&mut self.events);
        if self.tx.is_none() && messages.is_empty() && events.is_empty() {
            return Ok(Committed::default());
        }
        let now = self.now;
        let seal = self.seal.clone();
        let conn = self.conn().await?;
        crate::outbox::enqueue(conn, seal.as_ref(), &messages, now).await?;
        crate::webhooks::enqueue_events(conn, &events, now).await?;
        let tx = self
            .tx
            .take()
            .ok_or_else(|| StoreError::Internal("no transaction".into()))?;
        tx::commit_audited(tx, &events, now, audit_key).await?;
        Ok(Committed {
            messages: messages.len(),
            audited: events.len(),
        })
    }
}
