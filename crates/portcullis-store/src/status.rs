//! Service status: incidents and planned maintenance, the history of each part's state, and
//! the single maintenance-mode row (`id = 1`) every node reads.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    IncidentRow, MaintenanceRow, NewIncident, StatusChange, StatusReads, StatusWrites, StoreResult,
};

use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

macro_rules! columns {
    () => {
        "id, kind, title, message, state, starts_at, ends_at, created_at, updated_at"
    };
}

statements! {
    CREATE_INCIDENT = concat!("INSERT INTO status_incidents \
        (kind, title, message, state, starts_at, ends_at, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ", columns!());
    UPDATE_INCIDENT = concat!("UPDATE status_incidents SET state = $1, \
        message = COALESCE($2, message), updated_at = $3 WHERE id = $4 RETURNING ", columns!());
    INCIDENT_BY_ID = concat!("SELECT ", columns!(), " FROM status_incidents WHERE id = $1");
    LIST_INCIDENTS = concat!("SELECT ", columns!(), " FROM status_incidents \
        WHERE updated_at >= $1 OR state NOT IN ('resolved', 'completed') \
        ORDER BY updated_at DESC, id DESC LIMIT $2");
    RECORD_CHANGE = "INSERT INTO status_history (component, state, changed_at) \
        VALUES ($1, $2, $3)";
    /// The newest change of each part before `since` (its state at `since`), then every
    /// change after it.
    STATUS_CHANGES = "SELECT component, state, changed_at FROM status_history h \
        WHERE changed_at >= $1 \
           OR id = (SELECT MAX(id) FROM status_history p \
                    WHERE p.component = h.component AND p.changed_at < $1) \
        ORDER BY changed_at, id";
    SET_MAINTENANCE = "INSERT INTO maintenance (id, until_at, message, set_at) \
        VALUES (1, $1, $2, $3) \
        ON CONFLICT (id) DO UPDATE SET until_at = excluded.until_at, \
        message = excluded.message, set_at = excluded.set_at";
    CLEAR_MAINTENANCE = "DELETE FROM maintenance WHERE id = 1";
    MAINTENANCE = "SELECT until_at, message, set_at FROM maintenance WHERE id = 1";
}

#[derive(sqlx::FromRow)]
struct IncidentRecord {
    id: i64,
    kind: String,
    title: String,
    message: String,
    state: String,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<IncidentRecord> for IncidentRow {
    fn from(r: IncidentRecord) -> Self {
        IncidentRow {
            id: r.id,
            kind: r.kind,
            title: r.title,
            message: r.message,
            state: r.state,
            starts_at: r.starts_at.map(UnixTime),
            ends_at: r.ends_at.map(UnixTime),
            created_at: UnixTime(r.created_at),
            updated_at: UnixTime(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ChangeRecord {
    component: String,
    state: String,
    changed_at: i64,
}

#[derive(sqlx::FromRow)]
struct MaintenanceRecord {
    until_at: i64,
    message: String,
    set_at: i64,
}

#[async_trait]
impl StatusReads for SqlStore {
    async fn incident_by_id(&self, id: i64) -> StoreResult<Option<IncidentRow>> {
        let row: Option<IncidentRecord> = sqlx::query_as(INCIDENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(IncidentRow::from))
    }

    async fn list_incidents(&self, since: UnixTime, limit: i64) -> StoreResult<Vec<IncidentRow>> {
        let rows: Vec<IncidentRecord> = sqlx::query_as(LIST_INCIDENTS)
            .bind(since.0)
            .bind(limit)
            .fetch_all(self.reads())
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(IncidentRow::from).collect())
    }

    async fn status_changes(&self, since: UnixTime) -> StoreResult<Vec<StatusChange>> {
        let rows: Vec<ChangeRecord> = sqlx::query_as(STATUS_CHANGES)
            .bind(since.0)
            .fetch_all(self.reads())
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| StatusChange {
                component: r.component,
                state: r.state,
                changed_at: UnixTime(r.changed_at),
            })
            .collect())
    }

    async fn maintenance(&self) -> StoreResult<Option<MaintenanceRow>> {
        let row: Option<MaintenanceRecord> = sqlx::query_as(MAINTENANCE)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| MaintenanceRow {
            until: UnixTime(r.until_at),
            message: r.message,
            set_at: UnixTime(r.set_at),
        }))
    }
}

#[async_trait]
impl StatusWrites for SqlWork {
    async fn create_incident(&mut self, new: &NewIncident) -> StoreResult<IncidentRow> {
        let now = self.stamp();
        let row: IncidentRecord = sqlx::query_as(CREATE_INCIDENT)
            .bind(new.kind.as_str())
            .bind(new.title.as_str())
            .bind(new.message.as_str())
            .bind(new.state.as_str())
            .bind(new.starts_at.map(|t| t.0))
            .bind(new.ends_at.map(|t| t.0))
            .bind(now)
            .fetch_one(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(row.into())
    }

    async fn update_incident(
        &mut self,
        id: i64,
        state: &str,
        message: Option<&str>,
    ) -> StoreResult<Option<IncidentRow>> {
        let now = self.stamp();
        let row: Option<IncidentRecord> = sqlx::query_as(UPDATE_INCIDENT)
            .bind(state)
            .bind(message)
            .bind(now)
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(row.map(IncidentRow::from))
    }

    async fn record_status_change(&mut self, component: &str, state: &str) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(RECORD_CHANGE)
            .bind(component)
            .bind(state)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_maintenance(&mut self, maintenance: Option<&MaintenanceRow>) -> StoreResult<()> {
        let conn = self.conn().await?;
        match maintenance {
            Some(m) => sqlx::query(SET_MAINTENANCE)
                .bind(m.until.0)
                .bind(m.message.as_str())
                .bind(m.set_at.0)
                .execute(conn)
                .await
                .map_err(db_err)?,
            None => sqlx::query(CLEAR_MAINTENANCE)
                .execute(conn)
                .await
                .map_err(db_err)?,
        };
        Ok(())
    }
}
