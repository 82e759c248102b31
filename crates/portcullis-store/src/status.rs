//! Service status: incidents and planned maintenance, the history of each part's state, and
//! the single maintenance-mode row (`id = 1`) every node reads.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    IncidentRow, MaintenanceRow, NewIncident, StatusChange, StatusStore, StoreResult,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{db_err, SqlStore};

const COLUMNS: &str = "id, kind, title, message, state, starts_at, ends_at, created_at, updated_at";

fn incident_row(row: &AnyRow) -> StoreResult<IncidentRow> {
    let opt = |name: &str| -> StoreResult<Option<UnixTime>> {
        Ok(row
            .try_get::<Option<i64>, _>(name)
            .map_err(db_err)?
            .map(UnixTime))
    };
    Ok(IncidentRow {
        id: row.try_get("id").map_err(db_err)?,
        kind: row.try_get("kind").map_err(db_err)?,
        title: row.try_get("title").map_err(db_err)?,
        message: row.try_get("message").map_err(db_err)?,
        state: row.try_get("state").map_err(db_err)?,
        starts_at: opt("starts_at")?,
        ends_at: opt("ends_at")?,
        created_at: UnixTime(row.try_get("created_at").map_err(db_err)?),
        updated_at: UnixTime(row.try_get("updated_at").map_err(db_err)?),
    })
}

fn change_row(row: &AnyRow) -> StoreResult<StatusChange> {
    Ok(StatusChange {
        component: row.try_get("component").map_err(db_err)?,
        state: row.try_get("state").map_err(db_err)?,
        changed_at: UnixTime(row.try_get("changed_at").map_err(db_err)?),
    })
}

#[async_trait]
impl StatusStore for SqlStore {
    async fn create_incident(&self, new: &NewIncident) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO status_incidents \
             (kind, title, message, state, starts_at, ends_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(new.kind.as_str())
        .bind(new.title.as_str())
        .bind(new.message.as_str())
        .bind(new.state.as_str())
        .bind(new.starts_at.map(|t| t.0))
        .bind(new.ends_at.map(|t| t.0))
        .bind(new.now.0)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        row.try_get("id").map_err(db_err)
    }

    async fn update_incident(
        &self,
        id: i64,
        state: &str,
        message: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<Option<IncidentRow>> {
        let sql = format!(
            "UPDATE status_incidents SET state = $1, message = COALESCE($2, message), \
             updated_at = $3 WHERE id = $4 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(state)
            .bind(message)
            .bind(now.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(incident_row).transpose()
    }

    async fn incident_by_id(&self, id: i64) -> StoreResult<Option<IncidentRow>> {
        let sql = format!("SELECT {COLUMNS} FROM status_incidents WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(incident_row).transpose()
    }

    async fn list_incidents(&self, since: UnixTime, limit: i64) -> StoreResult<Vec<IncidentRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM status_incidents \
             WHERE updated_at >= $1 OR state NOT IN ('resolved', 'completed') \
             ORDER BY updated_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(since.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(incident_row).collect()
    }

    async fn record_status_change(&self, change: &StatusChange) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO status_history (component, state, changed_at) VALUES ($1, $2, $3)",
        )
        .bind(change.component.as_str())
        .bind(change.state.as_str())
        .bind(change.changed_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn status_changes(&self, since: UnixTime) -> StoreResult<Vec<StatusChange>> {
        // The newest change of each part before `since` (its state at `since`), then every
        // change after it.
        let rows = sqlx::query(
            "SELECT component, state, changed_at FROM status_history h \
             WHERE changed_at >= $1 \
                OR id = (SELECT MAX(id) FROM status_history p \
                         WHERE p.component = h.component AND p.changed_at < $1) \
             ORDER BY changed_at, id",
        )
        .bind(since.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(change_row).collect()
    }

    async fn set_maintenance(&self, maintenance: Option<&MaintenanceRow>) -> StoreResult<()> {
        match maintenance {
            Some(m) => {
                sqlx::query(
                    "INSERT INTO maintenance (id, until_at, message, set_at) \
                     VALUES (1, $1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET until_at = excluded.until_at, \
                     message = excluded.message, set_at = excluded.set_at",
                )
                .bind(m.until.0)
                .bind(m.message.as_str())
                .bind(m.set_at.0)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            }
            None => {
                sqlx::query("DELETE FROM maintenance WHERE id = 1")
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
            }
        }
        Ok(())
    }

    async fn maintenance(&self) -> StoreResult<Option<MaintenanceRow>> {
        let row = sqlx::query("SELECT until_at, message, set_at FROM maintenance WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(MaintenanceRow {
                until: UnixTime(r.try_get("until_at").map_err(db_err)?),
                message: r.try_get("message").map_err(db_err)?,
                set_at: UnixTime(r.try_get("set_at").map_err(db_err)?),
            })
        })
        .transpose()
    }
}
