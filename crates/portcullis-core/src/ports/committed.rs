//! What a commit wrote besides its state change: the unit of work's answer
//! ([`super::UnitOfWork::commit`]) and that of the writes that commit by themselves (a token
//! exchange, a registry load).

/// What a commit wrote besides the state change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Outbox rows (the delivery worker is woken when there are any).
    pub messages: usize,
    /// Audit entries appended to the chain.
    pub audited: usize,
}
