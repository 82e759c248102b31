//! Service status: "is there a problem today?".
//!
//! Owns the state of each part of the service (judged from signals a background prober
//! gathers — never per request — by the pure [`assess`]), the in-memory [`StatusBoard`]
//! every request reads, the history of changes kept for the 90-day view, the incidents and
//! planned maintenance operators post, and maintenance mode (one row shared by all nodes).

use std::sync::{Arc, RwLock};

use super::{Portcullis, Work};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::ports::{IncidentRow, MaintenanceRow, NewIncident, StatusChange};
use crate::support::{SupportAuthority, SupportScope};
use crate::ServiceError;

/// The parts of the service, in the order they are shown.
pub const COMPONENTS: [&str; 6] = [
    "sign-in",
    "registration",
    "recovery",
    "email",
    "text messages",
    "database",
];

/// Days of history shown.
pub const HISTORY_DAYS: i64 = 90;
/// An incident settled longer ago than this is no longer listed.
pub const INCIDENT_SHOWN_SECS: i64 = 7 * 86_400;
/// A pending message older than this makes its channel degraded …
pub const OUTBOX_DEGRADED_AGE_SECS: i64 = 300;
/// … and older than this, an outage.
pub const OUTBOX_OUTAGE_AGE_SECS: i64 = 1_800;
/// A database round trip slower than this is degraded.
pub const DATABASE_SLOW_MS: u64 = 1_000;
pub const TITLE_MAX_CHARS: usize = 200;
pub const MESSAGE_MAX_CHARS: usize = 4_000;

/// A part's state, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentState {
    Operational,
    Degraded,
    Outage,
}

impl ComponentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::Degraded => "degraded",
            Self::Outage => "outage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Operational, Self::Degraded, Self::Outage]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What the prober saw of the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseProbe {
    /// It answered and took the probe's write.
    Answered {
        millis: u64,
    },
    /// It answered, but the probe's write failed (a full disk, a read-only file system, a
    /// lock held too long): reads work, nothing that writes does.
    WritesFailing {
        millis: u64,
    },
    Failed,
}

impl DatabaseProbe {
    /// Whether the database takes writes.
    pub fn writes(&self) -> bool {
        matches!(self, Self::Answered { .. })
    }
}

/// Delivery counters of this node (from the delivery worker), for the prober and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliverySignals {
    pub enqueued: u64,
    pub sent_email: u64,
    pub sent_sms: u64,
    pub retried: u64,
    pub failed: u64,
    /// Attempts that failed (retried or given up), by channel.
    pub failures_email: u64,
    pub failures_sms: u64,
    /// Whether the provider's circuit breaker is open (it failed repeatedly and is left
    /// alone until its next trial).
    pub email_provider_down: bool,
    pub sms_provider_down: bool,
}

/// Reads this node's delivery counters.
pub type DeliverySource = Arc<dyn Fn() -> DeliverySignals + Send + Sync>;

/// One channel's signals (email, or text messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelSignals {
    /// Age of this channel's oldest pending message; `None` when the outbox could not be
    /// read.
    pub oldest_pending_age_secs: Option<i64>,
    /// Attempts on this channel that failed since the previous probe.
    pub recent_failures: u64,
    /// The provider's circuit breaker is open.
    pub provider_down: bool,
}

/// This node's own saturation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub open_connections: usize,
    pub connection_cap: usize,
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// Requests answered 503 since the previous probe (the in-flight cap, the deadline, a
    /// sign-in the database could not serve): people are being turned away.
    pub recent_unavailable: u64,
}

impl NodeLoad {
    /// Nine tenths of the connection cap or of the requests in flight is close to refusing;
    /// a 503 since the last probe is refusing.
    pub fn saturated(&self) -> bool {
        let near = |n: usize, cap: usize| cap > 0 && n.saturating_mul(10) >= cap.saturating_mul(9);
        near(self.open_connections, self.connection_cap)
            || near(self.in_flight, self.max_in_flight)
            || self.recent_unavailable > 0
    }
}

/// Everything one probe gathered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSignals {
    pub database: DatabaseProbe,
    /// Waiting hash jobs and the pool's waiting room.
    pub hash_queue: usize,
    pub hash_capacity: usize,
    pub email: ChannelSignals,
    pub sms: ChannelSignals,
    pub load: NodeLoad,
}

/// One channel's state: its queue's age, its recent failures, its provider's breaker.
fn channel_state(c: &ChannelSignals) -> ComponentState {
    use ComponentState::{Degraded, Operational, Outage};
    let queue = match c.oldest_pending_age_secs {
        None => Outage,
        Some(age) if age > OUTBOX_OUTAGE_AGE_SECS => Outage,
        Some(age) if age > OUTBOX_DEGRADED_AGE_SECS => Degraded,
        Some(_) => Operational,
    };
    let provider = if c.provider_down {
        Outage
    } else if c.recent_failures > 0 {
        Degraded
    } else {
        Operational
    };
    queue.max(provider)
}

/// The state of every part, from one probe's signals. Pure: tested step by step.
pub fn assess(s: &ProbeSignals) -> Vec<(&'static str, ComponentState)> {
    use ComponentState::{Degraded, Operational, Outage};
    let database = match s.database {
        DatabaseProbe::Failed => Outage,
        DatabaseProbe::WritesFailing { .. } => Degraded,
        DatabaseProbe::Answered { millis } if millis > DATABASE_SLOW_MS => Degraded,
        DatabaseProbe::Answered { .. } => Operational,
    };
    // Everything people do writes (sessions, attempts, audit): without writes it is down.
    let writes = if s.database.writes() {
        database
    } else {
        Outage
    };
    // The pool refuses work when its waiting room is full; three quarters full is a warning.
    let hashing = if s.hash_capacity > 0 && s.hash_queue * 4 >= s.hash_capacity * 3 {
        Degraded
    } else {
        Operational
    };
    let saturation = if s.load.saturated() {
        Degraded
    } else {
        Operational
    };
    let email = channel_state(&s.email).max(writes);
    let sms = channel_state(&s.sms).max(writes);
    // Recovery needs writes and a code on its way by either channel: a slow channel makes
    // it degraded.
    let recovery = writes.max(saturation).max(email.min(sms).min(Degraded));
    let interactive = writes.max(hashing).max(saturation);
    vec![
        ("sign-in", interactive),
        ("registration", interactive),
        ("recovery", recovery),
        ("email", email),
        ("text messages", sms),
        ("database", database),
    ]
}

/// The latest probe, held in memory and read by every status request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSnapshot {
    pub components: Vec<(&'static str, ComponentState)>,
    /// The last probe's write failed (`/readyz` answers 503 while it does).
    pub writes_failing: bool,
    /// `None` before the first probe.
    pub probed_at: Option<UnixTime>,
}

impl StatusSnapshot {
    /// Email or text messages are not working normally: a code sent now may be late.
    pub fn messages_late(&self) -> bool {
        self.components.iter().any(|(name, state)| {
            matches!(*name, "email" | "text messages") && *state != ComponentState::Operational
        })
    }

    pub fn overall(&self) -> ComponentState {
        self.components
            .iter()
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(ComponentState::Operational)
    }
}

/// The node's latest view of each part; clones share it.
#[derive(Clone, Debug)]
pub struct StatusBoard(Arc<RwLock<StatusSnapshot>>);

impl Default for StatusBoard {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(StatusSnapshot {
            components: COMPONENTS
                .into_iter()
                .map(|c| (c, ComponentState::Operational))
                .collect(),
            writes_failing: false,
            probed_at: None,
        })))
    }
}

impl StatusBoard {
    pub fn snapshot(&self) -> StatusSnapshot {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the view; returns the parts whose state changed (all of them on the first
    /// probe, so a restarted node records where it stands).
    fn replace(&self, next: StatusSnapshot) -> Vec<(&'static str, ComponentState)> {
        let mut guard = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let first = guard.probed_at.is_none();
        let changed = next
            .components
            .iter()
            .filter(|(name, state)| {
                first
                    || !guard
                        .components
                        .iter()
                        .any(|(n, s)| n == name && s == state)
            })
            .copied()
            .collect();
        *guard = next;
        changed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentKind {
    Incident,
    Maintenance,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incident => "incident",
            Self::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Incident, Self::Maintenance]
            .into_iter()
            .find(|v| v.as_str() == s.trim())
    }

    /// The states an entry of this kind moves through.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            Self::Incident => &["investigating", "identified", "monitoring", "resolved"],
            Self::Maintenance => &["scheduled", "in_progress", "completed"],
        }
    }

    /// The state it is settled in.
    fn settled(self) -> &'static str {
        match self {
            Self::Incident => "resolved",
            Self::Maintenance => "completed",
        }
    }
}

/// Whether an incident's state means it is over.
pub fn is_settled(state: &str) -> bool {
    state == "resolved" || state == "completed"
}

/// An incident or planned maintenance as posted.
#[derive(Clone, Debug)]
pub struct IncidentInput {
    pub kind: String,
    pub title: String,
    pub message: String,
    /// Defaults to the kind's first state.
    pub state: Option<String>,
    pub starts_at: Option<UnixTime>,
    pub ends_at: Option<UnixTime>,
}

/// One day of the history: the worst state any part was in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryDay {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub worst: ComponentState,
}

/// The whole public answer.
#[derive(Clone, Debug)]
pub struct StatusReport {
    pub snapshot: StatusSnapshot,
    pub incidents: Vec<IncidentRow>,
    pub history: Vec<HistoryDay>,
    pub maintenance: Option<MaintenanceRow>,
}

impl StatusReport {
    /// The one sentence at the top of the page.
    pub fn headline(&self) -> String {
        if let Some(m) = &self.maintenance {
            return format!(
                "Planned maintenance is under way until {}: {}",
                m.until.to_rfc3339(),
                m.message
            );
        }
        let open = self
            .incidents
            .iter()
            .filter(|i| i.kind == "incident" && !is_settled(&i.state))
            .count();
        let troubled: Vec<&str> = self
            .snapshot
            .components
            .iter()
            .filter(|(_, s)| *s != ComponentState::Operational)
            .map(|(n, _)| *n)
            .collect();
        match (troubled.is_empty(), open) {
            (true, 0) => "No problems today: every part of the service is working normally.".into(),
            (true, _) => "Every part is working, and we are following up an incident below.".into(),
            (false, _) => format!(
                "There is a problem today: {} {} not working normally.",
                troubled.join(", "),
                if troubled.len() == 1 { "is" } else { "are" }
            ),
        }
    }
}

fn day_of(t: UnixTime) -> i64 {
    t.0.div_euclid(86_400)
}

fn date_of_day(day: i64) -> String {
    UnixTime(day * 86_400)
        .to_rfc3339()
        .get(..10)
        .unwrap_or_default()
        .to_owned()
}

/// The worst state of any part on each day from the first recorded change (at most
/// [`HISTORY_DAYS`] ago) to today, oldest first. Pure.
pub fn history(changes: &[StatusChange], now: UnixTime) -> Vec<HistoryDay> {
    let today = day_of(now);
    let first_day = today - (HISTORY_DAYS - 1);
    let Some(start) = changes
        .iter()
        .map(|c| day_of(c.changed_at).max(first_day))
        .min()
    else {
        return Vec::new();
    };
    let mut current: Vec<(&str, ComponentState)> = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    for day in start..=today {
        // The state carried in from the day before …
        let mut worst = current
            .iter()
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(ComponentState::Operational);
        // … and every change during the day.
        while let Some(c) = changes.get(i) {
            if day_of(c.changed_at) > day {
                break;
            }
            let state = ComponentState::parse(&c.state).unwrap_or(ComponentState::Degraded);
            current.retain(|(n, _)| *n != c.component.as_str());
            current.push((c.component.as_str(), state));
            worst = worst.max(state);
            i += 1;
        }
        out.push(HistoryDay {
            date: date_of_day(day),
            worst,
        });
    }
    out
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ServiceError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ServiceError::field(field, "Enter some text."));
    }
    if v.chars().count() > max {
        return Err(ServiceError::field(
            field,
            format!("Use at most {max} characters."),
        ));
    }
    Ok(v.to_owned())
}

impl Portcullis {
    /// Publishes one probe's result on `board` and records the parts whose state changed.
    pub async fn record_probe(&self, board: &StatusBoard, signals: &ProbeSignals) {
        let now = self.clock.now();
        let changed = board.replace(StatusSnapshot {
            components: assess(signals),
            writes_failing: !signals.database.writes() && signals.database != DatabaseProbe::Failed,
            probed_at: Some(now),
        });
        if changed.is_empty() {
            return;
        }
        let mut work = self.begin(now);
        let mut recorded = Ok(());
        for (component, state) in &changed {
            recorded = work.record_status_change(component, state.as_str()).await;
            if recorded.is_err() {
                break;
            }
        }
        let recorded = match recorded {
            Ok(()) => work.commit().await.map(|_| ()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = recorded {
            // The database may be the part that is down: the board still tells.
            tracing::warn!(error = %e, "status changes not recorded");
        }
    }

    /// The public answer: the board, plus incidents and history when the database answers
    /// (the page must still load, from memory, when it does not).
    /// The board alone, without incidents, history or maintenance (which live in the
    /// database): what the status answers while the database cannot.
    pub fn status_from_memory(&self, board: &StatusBoard) -> StatusReport {
        StatusReport {
            snapshot: board.snapshot(),
            incidents: Vec::new(),
            history: history(&[], self.clock.now()),
            maintenance: Default::default(),
        }
    }

    pub async fn status_report(&self, board: &StatusBoard) -> StatusReport {
        let now = self.clock.now();
        // When the last probe found the database down, answer from memory at once: the
        // queries below would each wait out the pool's acquire timeout, just when people
        // look at the page (crash.rs, `crash_postgres_outage_answers_503_and_recovers_without_restart`).
        let database_down = board
            .snapshot()
            .components
            .iter()
            .any(|(name, state)| *name == "database" && *state == ComponentState::Outage);
        if database_down {
            return self.status_from_memory(board);
        }
        let incidents = self
            .ports
            .status
            .list_incidents(now.plus_secs(-INCIDENT_SHOWN_SECS), 50)
            .await
            .unwrap_or_default();
        let changes = self
            .ports
            .status
            .status_changes(now.plus_secs(-HISTORY_DAYS * 86_400))
            .await
            .unwrap_or_default();
        StatusReport {
            snapshot: board.snapshot(),
            incidents,
            history: history(&changes, now),
            maintenance: self.maintenance_at(now).await.unwrap_or_default(),
        }
    }

    /// Posts an incident or planned maintenance (scope `status:write`).
    pub async fn create_incident(
        &self,
        authority: &SupportAuthority,
        input: IncidentInput,
    ) -> Result<IncidentRow, ServiceError> {
        self.post_incident(authority, input, None).await
    }

    /// [`Self::create_incident`], keeping `keep`'s `Idempotency-Key` with the new
    /// incident's id in the same unit of work when given.
    pub(crate) async fn post_incident(
        &self,
        authority: &SupportAuthority,
        input: IncidentInput,
        keep: Option<crate::ports::IdempotencyKeep<'_>>,
    ) -> Result<IncidentRow, ServiceError> {
        require_status_write(authority)?;
        let kind = IncidentKind::parse(&input.kind)
            .ok_or_else(|| ServiceError::field("kind", "Use incident or maintenance."))?;
        let title = text("title", &input.title, TITLE_MAX_CHARS)?;
        let message = text("message", &input.message, MESSAGE_MAX_CHARS)?;
        let state = match input.state.as_deref().map(str::trim) {
            None | Some("") => kind.states().first().copied().unwrap_or("investigating"),
            Some(s) => *kind
                .states()
                .iter()
                .find(|k| **k == s)
                .ok_or_else(|| invalid_state(kind))?,
        };
        if let (Some(a), Some(b)) = (input.starts_at, input.ends_at) {
            if b < a {
                return Err(ServiceError::field(
                    "ends",
                    "The end must come after the start.",
                ));
            }
        }
        let now = self.clock.now();
        let mut work = self.begin(now);
        let row = work
            .create_incident(&NewIncident {
                kind: kind.as_str().to_owned(),
                title,
                message,
                state: state.to_owned(),
                starts_at: input.starts_at,
                ends_at: input.ends_at,
            })
            .await?;
        audit_status(
            &mut work,
            authority,
            format!("status {} #{} posted", kind.as_str(), row.id),
        );
        if let Some(keep) = keep {
            work.keep_idempotency_key(keep.scope, keep.key, keep.request_hash, &row.id.to_string())
                .await?;
        }
        work.commit().await?;
        Ok(row)
    }

    /// Moves an incident on (scope `status:write`); `None` when there is no such incident.
    pub async fn update_incident(
        &self,
        authority: &SupportAuthority,
        id: i64,
        state: &str,
        message: Option<&str>,
    ) -> Result<Option<IncidentRow>, ServiceError> {
        require_status_write(authority)?;
        let Some(existing) = self.ports.status.incident_by_id(id).await? else {
            return Ok(None);
        };
        let kind = IncidentKind::parse(&existing.kind)
            .ok_or_else(|| ServiceError::Internal("unknown incident kind".into()))?;
        let state = state.trim();
        if !kind.states().contains(&state) {
            return Err(invalid_state(kind));
        }
        let message = message
            .map(|m| text("message", m, MESSAGE_MAX_CHARS))
            .transpose()?;
        let mut work = self.begin(self.clock.now());
        let row = work.update_incident(id, state, message.as_deref()).await?;
        if row.is_none() {
            return Ok(None);
        }
        audit_status(
            &mut work,
            authority,
            format!("status incident #{id} now {state}"),
        );
        work.commit().await?;
        Ok(row)
    }

    /// Recent and open incidents (scope `status:write`, for the command line).
    pub async fn list_incidents(
        &self,
        authority: &SupportAuthority,
    ) -> Result<Vec<IncidentRow>, ServiceError> {
        require_status_write(authority)?;
        Ok(self
            .ports
            .status
            .list_incidents(self.clock.now().plus_secs(-HISTORY_DAYS * 86_400), 500)
            .await?)
    }

    /// Switches maintenance mode on for every node until `until` (scope `status:write`).
    pub async fn maintenance_on(
        &self,
        authority: &SupportAuthority,
        until: UnixTime,
        message: Option<&str>,
    ) -> Result<MaintenanceRow, ServiceError> {
        require_status_write(authority)?;
        let now = self.clock.now();
        if until <= now {
            return Err(ServiceError::field("until", "Choose a time in the future."));
        }
        let message = match message {
            Some(m) => text("message", m, MESSAGE_MAX_CHARS)?,
            None => "We are carrying out planned maintenance and will be back shortly.".into(),
        };
        let row = MaintenanceRow {
            until,
            message,
            set_at: now,
        };
        let mut work = self.begin(now);
        work.set_maintenance(Some(&row)).await?;
        audit_status(
            &mut work,
            authority,
            format!("maintenance mode on until {}", until.to_rfc3339()),
        );
        work.commit().await?;
        Ok(row)
    }

    /// Switches maintenance mode off (scope `status:write`).
    pub async fn maintenance_off(&self, authority: &SupportAuthority) -> Result<(), ServiceError> {
        require_status_write(authority)?;
        let mut work = self.begin(self.clock.now());
        work.set_maintenance(None).await?;
        audit_status(&mut work, authority, "maintenance mode off".into());
        work.commit().await?;
        Ok(())
    }

    /// Maintenance mode if it is on now (a row whose end has passed is off).
    pub async fn maintenance_now(&self) -> Result<Option<MaintenanceRow>, ServiceError> {
        self.maintenance_at(self.clock.now()).await
    }

    async fn maintenance_at(&self, now: UnixTime) -> Result<Option<MaintenanceRow>, ServiceError> {
        Ok(self
            .ports
            .status
            .maintenance()
            .await?
            .filter(|m| m.until > now))
    }
}

/// An operator's change to the status page, audited in its unit of work.
fn audit_status(work: &mut Work<'_>, authority: &SupportAuthority, detail: String) {
    work.audit(
        AuditEvent::new(AuditKind::SupportAction, None)
            .actor(authority.actor())
            .detail(detail),
    );
}

fn invalid_state(kind: IncidentKind) -> ServiceError {
    ServiceError::field(
        "state",
        format!(
            "Use one of {} for {} ({} settles it).",
            kind.states().join(", "),
            kind.as_str(),
            kind.settled()
        ),
    )
}

pub(super) fn require_status_write(authority: &SupportAuthority) -> Result<(), ServiceError> {
    if authority.allows(SupportScope::StatusWrite) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

/// Reads an RFC 3339 time typed by an operator (`2030-01-02T03:04:05Z`).
pub fn parse_time(field: &str, input: &str) -> Result<UnixTime, ServiceError> {
    time::OffsetDateTime::parse(input.trim(), &time::format_description::well_known::Rfc3339)
        .map(|t| UnixTime(t.unix_timestamp()))
        .map_err(|_| ServiceError::field(field, "Use an RFC 3339 time, e.g. 2030-01-02T03:00:00Z."))
}

#[cfg(test)]
mod tests;
