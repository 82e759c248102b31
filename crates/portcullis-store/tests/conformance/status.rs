//! Service status: incidents, the history of each part's state, and maintenance mode.

use portcullis_core::ports::{MaintenanceRow, NewIncident, StatusReads, Transactions};
use portcullis_testkit::{both, Backend};

use crate::support::{commit, store, T};

fn incident(kind: &str, state: &str, title: &str) -> NewIncident {
    NewIncident {
        kind: kind.into(),
        title: title.into(),
        message: "Looking into it.".into(),
        state: state.into(),
        starts_at: None,
        ends_at: None,
    }
}

async fn incidents(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut w = s.begin(T);
    let first = w
        .create_incident(&incident("incident", "investigating", "Slow sign-in"))
        .await
        .unwrap();
    commit(w).await;
    assert_eq!(
        (
            first.kind.as_str(),
            first.state.as_str(),
            first.created_at,
            first.updated_at
        ),
        ("incident", "investigating", T, T)
    );
    assert_eq!(
        s.incident_by_id(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert!(s.incident_by_id(first.id + 99).await.unwrap().is_none());
    let mut w = s.begin(T.plus_secs(100));
    let planned = w
        .create_incident(&NewIncident {
            starts_at: Some(T.plus_secs(1000)),
            ends_at: Some(T.plus_secs(2000)),
            ..incident("maintenance", "scheduled", "Database upgrade")
        })
        .await
        .unwrap();
    // A state change keeps the message unless a new one is given.
    let moved = w
        .update_incident(first.id, "identified", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            moved.state.as_str(),
            moved.message.as_str(),
            moved.updated_at
        ),
        ("identified", "Looking into it.", T.plus_secs(100))
    );
    let resolved = w
        .update_incident(first.id, "resolved", Some("Fixed."))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.message, "Fixed.");
    assert!(w
        .update_incident(first.id + 99, "resolved", None)
        .await
        .unwrap()
        .is_none());
    commit(w).await;
    assert_eq!(planned.starts_at, Some(T.plus_secs(1000)));
    // Newest first; a settled incident drops out after `since`, an open one never does.
    let listed = s.list_incidents(T, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.id).collect::<Vec<_>>(),
        [planned.id, first.id]
    );
    let later = s.list_incidents(T.plus_secs(101), 10).await.unwrap();
    assert_eq!(later.iter().map(|i| i.id).collect::<Vec<_>>(), [planned.id]);
    assert_eq!(s.list_incidents(T, 1).await.unwrap().len(), 1);
}
both!(incidents_conformance, incidents);

async fn history_and_maintenance(backend: Backend) {
    let (s, _db) = store(backend).await;
    for (at, component, state) in [
        (0, "database", "operational"),
        (10, "email", "degraded"),
        (20, "database", "outage"),
        (30, "database", "operational"),
    ] {
        let mut w = s.begin(T.plus_secs(at));
        w.record_status_change(component, state).await.unwrap();
        commit(w).await;
    }
    // Since 25: each part's last change before it (its state then), and every later one.
    let changes = s.status_changes(T.plus_secs(25)).await.unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.component.as_str(), c.state.as_str(), c.changed_at.0 - T.0))
            .collect::<Vec<_>>(),
        [
            ("email", "degraded", 10),
            ("database", "outage", 20),
            ("database", "operational", 30)
        ]
    );
    // Maintenance mode: one row, replaced, then cleared.
    assert!(s.maintenance().await.unwrap().is_none());
    let on = |until: i64, message: &str| MaintenanceRow {
        until: T.plus_secs(until),
        message: message.into(),
        set_at: T,
    };
    let mut w = s.begin(T);
    w.set_maintenance(Some(&on(60, "first"))).await.unwrap();
    w.set_maintenance(Some(&on(120, "second"))).await.unwrap();
    commit(w).await;
    assert_eq!(s.maintenance().await.unwrap(), Some(on(120, "second")));
    let mut w = s.begin(T);
    w.set_maintenance(None).await.unwrap();
    commit(w).await;
    assert!(s.maintenance().await.unwrap().is_none());
}
both!(history_and_maintenance_conformance, history_and_maintenance);
