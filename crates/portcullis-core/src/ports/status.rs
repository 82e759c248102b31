//! Service status: operators' incidents and planned maintenance, the history of each part's
//! state, and the maintenance-mode row every node reads (see `crate::service::status`).

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;

/// An incident or planned maintenance to store (kind and state already checked by core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIncident {
    pub kind: String,
    pub title: String,
    pub message: String,
    pub state: String,
    pub starts_at: Option<UnixTime>,
    pub ends_at: Option<UnixTime>,
}

/// An incident as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub message: String,
    pub state: String,
    pub starts_at: Option<UnixTime>,
    pub ends_at: Option<UnixTime>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// One recorded change of a part's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub component: String,
    pub state: String,
    pub changed_at: UnixTime,
}

/// Maintenance mode, as stored: on while the row exists and `until` is ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceRow {
    pub until: UnixTime,
    pub message: String,
    pub set_at: UnixTime,
}

#[async_trait]
pub trait StatusReads: Send + Sync {
    async fn incident_by_id(&self, id: i64) -> StoreResult<Option<IncidentRow>>;
    /// Incidents updated at or after `since`, plus every one not yet settled, newest first.
    async fn list_incidents(&self, since: UnixTime, limit: i64) -> StoreResult<Vec<IncidentRow>>;
    /// Changes at or after `since`, oldest first; also the newest change of each part
    /// before `since`, so the state at `since` is known.
    async fn status_changes(&self, since: UnixTime) -> StoreResult<Vec<StatusChange>>;
    async fn maintenance(&self) -> StoreResult<Option<MaintenanceRow>>;
}

#[async_trait]
pub trait StatusWrites: Send {
    /// Stores an incident, created and updated now.
    async fn create_incident(&mut self, new: &NewIncident) -> StoreResult<IncidentRow>;
    /// Moves an incident to `state` (and replaces its message when given); `None` when no
    /// incident has this id.
    async fn update_incident(
        &mut self,
        id: i64,
        state: &str,
        message: Option<&str>,
    ) -> StoreResult<Option<IncidentRow>>;
    /// Records that `component` is in `state` from now.
    async fn record_status_change(&mut self, component: &str, state: &str) -> StoreResult<()>;
    /// Sets (`Some`) or clears (`None`) maintenance mode for every node.
    async fn set_maintenance(&mut self, maintenance: Option<&MaintenanceRow>) -> StoreResult<()>;
}
