use super::*;

fn signals() -> ProbeSignals {
    let channel = ChannelSignals {
        oldest_pending_age_secs: Some(0),
        recent_failures: 0,
        provider_down: false,
    };
    ProbeSignals {
        database: DatabaseProbe::Answered { millis: 3 },
        hash_queue: 0,
        hash_capacity: 16,
        email: channel,
        sms: channel,
        load: NodeLoad {
            open_connections: 1,
            connection_cap: 100,
            in_flight: 0,
            max_in_flight: 50,
            recent_unavailable: 0,
        },
    }
}

fn state(parts: &[(&str, ComponentState)], name: &str) -> ComponentState {
    parts.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn all_well_is_operational() {
    let parts = assess(&signals());
    assert_eq!(parts.len(), COMPONENTS.len());
    assert!(parts.iter().all(|(_, s)| *s == ComponentState::Operational));
}

#[test]
fn a_database_outage_takes_down_what_needs_it() {
    let unread = ChannelSignals {
        oldest_pending_age_secs: None,
        ..signals().email
    };
    let parts = assess(&ProbeSignals {
        database: DatabaseProbe::Failed,
        email: unread,
        sms: unread,
        ..signals()
    });
    for name in COMPONENTS {
        assert_eq!(state(&parts, name), ComponentState::Outage, "{name}");
    }
}

#[test]
fn a_full_hashing_pool_degrades_sign_in_and_registration_only() {
    let parts = assess(&ProbeSignals {
        hash_queue: 12,
        ..signals()
    });
    assert_eq!(state(&parts, "sign-in"), ComponentState::Degraded);
    assert_eq!(state(&parts, "registration"), ComponentState::Degraded);
    assert_eq!(state(&parts, "database"), ComponentState::Operational);
    assert_eq!(state(&parts, "email"), ComponentState::Operational);
}

#[test]
fn an_old_outbox_or_failures_degrade_their_own_channel_and_recovery() {
    let old = |age| ChannelSignals {
        oldest_pending_age_secs: Some(age),
        ..signals().email
    };
    let parts = assess(&ProbeSignals {
        email: old(OUTBOX_DEGRADED_AGE_SECS + 1),
        sms: old(OUTBOX_DEGRADED_AGE_SECS + 1),
        ..signals()
    });
    assert_eq!(state(&parts, "email"), ComponentState::Degraded);
    assert_eq!(state(&parts, "recovery"), ComponentState::Degraded);
    let parts = assess(&ProbeSignals {
        sms: old(OUTBOX_OUTAGE_AGE_SECS + 1),
        ..signals()
    });
    assert_eq!(state(&parts, "text messages"), ComponentState::Outage);
    assert_eq!(state(&parts, "email"), ComponentState::Operational);
    // Codes still go by email: recovery works.
    assert_eq!(state(&parts, "recovery"), ComponentState::Operational);
    let parts = assess(&ProbeSignals {
        email: ChannelSignals {
            recent_failures: 2,
            ..signals().email
        },
        ..signals()
    });
    assert_eq!(state(&parts, "email"), ComponentState::Degraded);
    assert_eq!(state(&parts, "text messages"), ComponentState::Operational);
    assert_eq!(state(&parts, "sign-in"), ComponentState::Operational);
    // A provider whose breaker is open is an outage of its channel alone.
    let parts = assess(&ProbeSignals {
        sms: ChannelSignals {
            provider_down: true,
            ..signals().sms
        },
        ..signals()
    });
    assert_eq!(state(&parts, "text messages"), ComponentState::Outage);
    assert_eq!(state(&parts, "email"), ComponentState::Operational);
}

#[test]
fn failing_writes_take_down_what_writes_and_degrade_the_database() {
    let parts = assess(&ProbeSignals {
        database: DatabaseProbe::WritesFailing { millis: 2 },
        ..signals()
    });
    assert_eq!(state(&parts, "database"), ComponentState::Degraded);
    for name in [
        "sign-in",
        "registration",
        "recovery",
        "email",
        "text messages",
    ] {
        assert_eq!(state(&parts, name), ComponentState::Outage, "{name}");
    }
}

#[test]
fn a_saturated_node_degrades_what_people_use() {
    let parts = assess(&ProbeSignals {
        load: NodeLoad {
            open_connections: 95,
            connection_cap: 100,
            in_flight: 0,
            max_in_flight: 50,
            recent_unavailable: 0,
        },
        ..signals()
    });
    assert_eq!(state(&parts, "sign-in"), ComponentState::Degraded);
    assert_eq!(state(&parts, "recovery"), ComponentState::Degraded);
    assert_eq!(state(&parts, "database"), ComponentState::Operational);
}

#[test]
fn history_carries_states_across_days_and_keeps_the_worst() {
    let day = 86_400;
    let now = UnixTime(20_000 * day + 100);
    let ch = |c: &str, s: &str, t: i64| StatusChange {
        component: c.into(),
        state: s.into(),
        changed_at: UnixTime(t),
    };
    let changes = vec![
        ch("database", "operational", 19_998 * day),
        ch("database", "outage", 19_998 * day + 50),
        ch("database", "operational", 19_998 * day + 60),
        ch("email", "degraded", 19_999 * day + 10),
    ];
    let h = history(&changes, now);
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].worst, ComponentState::Outage);
    assert_eq!(h[1].worst, ComponentState::Degraded);
    // Email is still degraded: carried into today.
    assert_eq!(h[2].worst, ComponentState::Degraded);
    assert_eq!(h[2].date.len(), 10);
    assert!(history(&[], now).is_empty());
}

#[test]
fn the_board_reports_every_part_first_then_only_changes() {
    let board = StatusBoard::default();
    let first = board.replace(StatusSnapshot {
        components: assess(&signals()),

        writes_failing: false,
        probed_at: Some(UnixTime(1)),
    });
    assert_eq!(first.len(), COMPONENTS.len());
    let again = board.replace(StatusSnapshot {
        components: assess(&signals()),

        writes_failing: false,
        probed_at: Some(UnixTime(2)),
    });
    assert!(again.is_empty());
    let down = board.replace(StatusSnapshot {
        components: assess(&ProbeSignals {
            hash_queue: 16,
            ..signals()
        }),
        writes_failing: false,
        probed_at: Some(UnixTime(3)),
    });
    assert_eq!(down.len(), 2);
}
