//! Notification channels, tenants' alert settings, alerts and their deliveries.
//!
//! An alert is a condition, open until it clears: a job's runs failing, a job missing
//! its schedule, an agent offline, a storage test failing. Repeats while it is open
//! count on it (`occurrences`) instead of opening another, so a job failing every hour
//! sends one message, then a reminder at most every `repeat_secs` if it keeps failing.
//! A delivery is one message of one alert to one channel, retried with backoff until
//! sent or given up; its payload is kept so each attempt sends the same bytes.

use coffer_adapters::catalogue::rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{rfc3339, DbError, DbResult};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// A run of a job (or a one-off run) failed.
    #[serde(rename = "run.failed")]
    RunFailed,
    /// A job was due and its run had not started within the grace.
    #[serde(rename = "job.missed_schedule")]
    MissedSchedule,
    /// An agent has not been heard from for longer than the threshold.
    #[serde(rename = "agent.offline")]
    AgentOffline,
    /// A storage backend failed its test.
    #[serde(rename = "storage.failed")]
    StorageFailed,
    /// The server's self-backup failed.
    #[serde(rename = "self_backup.failed")]
    SelfBackupFailed,
    /// An upgrade failed its health check and was rolled back.
    #[serde(rename = "upgrade.rolled_back")]
    UpgradeRolledBack,
    /// A sample sent from the "test" button.
    #[serde(rename = "test")]
    Test,
}

impl AlertKind {
    /// Every kind, in the order people read them.
    pub const ALL: [AlertKind; 7] = [
        AlertKind::RunFailed,
        AlertKind::MissedSchedule,
        AlertKind::AgentOffline,
        AlertKind::StorageFailed,
        AlertKind::SelfBackupFailed,
        AlertKind::UpgradeRolledBack,
        AlertKind::Test,
    ];

    /// The stored (and sent) name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RunFailed => "run.failed",
            AlertKind::MissedSchedule => "job.missed_schedule",
            AlertKind::AgentOffline => "agent.offline",
            AlertKind::StorageFailed => "storage.failed",
            AlertKind::SelfBackupFailed => "self_backup.failed",
            AlertKind::UpgradeRolledBack => "upgrade.rolled_back",
            AlertKind::Test => "test",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// How a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Email over SMTP.
    Email,
    /// An HTTP POST signed as Standard Webhooks says.
    Webhook,
}

impl ChannelKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
        }
    }
}

/// A channel as stored. `config` is its settings as JSON (no secret in it); `secret`
/// is sealed under the KEK.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    /// ID.
    pub id: i64,
    /// Its tenant; `None`: the server's own (the admin's).
    pub tenant_id: Option<i64>,
    /// Name, unique within the tenant.
    pub name: String,
    /// Email or webhook.
    pub kind: ChannelKind,
    /// Settings (JSON).
    pub config: serde_json::Value,
    /// The sealed secret (SMTP password, webhook signing secret).
    pub secret: Option<Vec<u8>>,
    /// Alert kinds it takes; empty: all.
    pub events: Vec<AlertKind>,
    /// Whether it sends.
    pub enabled: bool,
    /// When it was added.
    pub created_at: i64,
}

/// A channel as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `email` or `webhook`.
    pub kind: ChannelKind,
    /// Settings, without the secret.
    pub config: serde_json::Value,
    /// Whether a secret is set.
    pub has_secret: bool,
    /// Alert kinds it takes; empty: all.
    pub events: Vec<AlertKind>,
    /// Whether it sends.
    pub enabled: bool,
    /// When it was added.
    pub created_at: String,
}

impl ChannelRow {
    /// The API's view.
    pub fn view(&self) -> Channel {
        Channel {
            id: self.id.to_string(),
            name: self.name.clone(),
            kind: self.kind,
            config: self.config.clone(),
            has_secret: self.secret.is_some(),
            events: self.events.clone(),
            enabled: self.enabled,
            created_at: rfc3339(self.created_at),
        }
    }

    /// Whether the channel sends alerts of `kind` (a test goes to the channel tested,
    /// not through this).
    pub fn takes(&self, kind: AlertKind) -> bool {
        self.enabled && (self.events.is_empty() || self.events.contains(&kind))
    }
}

/// A channel to add.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// Its ID, chosen first: the sealed secret is bound to it.
    pub id: i64,
    /// Its tenant, or `None` for the server's own.
    pub tenant_id: Option<i64>,
    /// Name.
    pub name: String,
    /// Email or webhook.
    pub kind: ChannelKind,
    /// Settings (JSON, no secret).
    pub config: serde_json::Value,
    /// The sealed secret.
    pub secret: Option<Vec<u8>>,
    /// Alert kinds; empty: all.
    pub events: Vec<AlertKind>,
}

const CHANNEL_COLUMNS: &str =
    "id, tenant_id, name, kind, config, secret, events, enabled, created_at";

fn channel_row(row: &Row<'_>) -> coffer_adapters::catalogue::rusqlite::Result<ChannelRow> {
    let kind: String = row.get(3)?;
    let config: String = row.get(4)?;
    let events: String = row.get(6)?;
    Ok(ChannelRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        name: row.get(2)?,
        kind: if kind == "email" {
            ChannelKind::Email
        } else {
            ChannelKind::Webhook
        },
        config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
        secret: row.get(5)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        enabled: row.get::<_, i64>(7)? == 1,
        created_at: row.get(8)?,
    })
}

/// Adds a channel; returns it. A name the tenant already uses is a conflict.
///
/// # Errors
/// `channel_exists`, or SQLite's.
pub fn insert_channel(conn: &Connection, new: &NewChannel, at: i64) -> DbResult<ChannelRow> {
    let id = new.id;
    conn.execute(
        "INSERT INTO notification_channels (id, tenant_id, name, kind, config, secret,
                                            events, enabled, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)",
        params![
            id,
            new.tenant_id,
            new.name,
            new.kind.as_str(),
            new.config.to_string(),
            new.secret,
            serde_json::to_string(&new.events).map_err(DbError::corrupt)?,
            at
        ],
    )
    .map_err(|e| {
        if super::is_constraint(&e) {
            DbError::Conflict {
                code: "channel_exists",
                message: "name: a channel of this name exists".to_owned(),
            }
        } else {
            e.into()
        }
    })?;
    channel(conn, new.tenant_id, id)?.ok_or_else(|| DbError::corrupt("channel just added"))
}

/// The channels of `tenant` (`None`: the server's own).
///
/// # Errors
/// SQLite's.
pub fn channels(conn: &Connection, tenant_id: Option<i64>) -> DbResult<Vec<ChannelRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels
         WHERE tenant_id IS ?1 ORDER BY id"
    ))?;
    let rows = st.query_map([tenant_id], channel_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Channel `id` of `tenant` (`None`: the server's own).
///
/// # Errors
/// SQLite's.
pub fn channel(conn: &Connection, tenant_id: Option<i64>, id: i64) -> DbResult<Option<ChannelRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {CHANNEL_COLUMNS} FROM notification_channels
                 WHERE id = ?1 AND tenant_id IS ?2"
            ),
            params![id, tenant_id],
            channel_row,
        )
        .optional()?)
}

/// Turns channel `id` on or off; false if there is no such channel.
///
/// # Errors
/// SQLite's.
pub fn set_enabled(conn: &Connection, tenant_id: Option<i64>, id: i64, on: bool) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE notification_channels SET enabled = ?3 WHERE id = ?1 AND tenant_id IS ?2",
        params![id, tenant_id, i64::from(on)],
    )? == 1)
}

/// Sets the alert kinds channel `id` takes (empty: all).
///
/// # Errors
/// SQLite's.
pub fn set_events(
    conn: &Connection,
    tenant_id: Option<i64>,
    id: i64,
    events: &[AlertKind],
) -> DbResult<()> {
    conn.execute(
        "UPDATE notification_channels SET events = ?3 WHERE id = ?1 AND tenant_id IS ?2",
        params![
            id,
            tenant_id,
            serde_json::to_string(events).map_err(DbError::corrupt)?
        ],
    )?;
    Ok(())
}

/// Removes channel `id` and its deliveries; false if there is no such channel.
///
/// # Errors
/// SQLite's.
pub fn delete_channel(conn: &Connection, tenant_id: Option<i64>, id: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "DELETE FROM notification_channels WHERE id = ?1 AND tenant_id IS ?2",
        params![id, tenant_id],
    )? == 1)
}

/// A tenant's alert settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    /// A job is missed when its run has not started this long after it was due.
    pub missed_grace_secs: i64,
    /// An agent is offline when not heard from for this long.
    pub offline_after_secs: i64,
    /// An open alert that keeps repeating is sent again at most this often.
    pub repeat_secs: i64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            missed_grace_secs: 3600,
            offline_after_secs: 3600,
            repeat_secs: 6 * 3600,
        }
    }
}

/// `tenant`'s alert settings (the defaults until set; the server's own alerts use the
/// defaults).
///
/// # Errors
/// SQLite's.
pub fn settings(conn: &Connection, tenant_id: Option<i64>) -> DbResult<AlertSettings> {
    let Some(tenant_id) = tenant_id else {
        return Ok(AlertSettings::default());
    };
    Ok(conn
        .query_row(
            "SELECT missed_grace_secs, offline_after_secs, repeat_secs FROM alert_settings
             WHERE tenant_id = ?1",
            [tenant_id],
            |row| {
                Ok(AlertSettings {
                    missed_grace_secs: row.get(0)?,
                    offline_after_secs: row.get(1)?,
                    repeat_secs: row.get(2)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Sets `tenant`'s alert settings.
///
/// # Errors
/// SQLite's.
pub fn set_settings(conn: &Connection, tenant_id: i64, s: &AlertSettings) -> DbResult<()> {
    conn.execute(
        "INSERT INTO alert_settings (tenant_id, missed_grace_secs, offline_after_secs, repeat_secs)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id) DO UPDATE SET missed_grace_secs = ?2,
             offline_after_secs = ?3, repeat_secs = ?4",
        params![
            tenant_id,
            s.missed_grace_secs,
            s.offline_after_secs,
            s.repeat_secs
        ],
    )?;
    Ok(())
}

/// An alert to raise.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Its tenant; `None`: the server's own.
    pub tenant_id: Option<i64>,
    /// What it is about.
    pub kind: AlertKind,
    /// The object it is about (`job:5`, `agent:3`, `backend:2`).
    pub subject: String,
    /// One line for a subject line or a list.
    pub summary: String,
    /// More, for the message's body.
    pub detail: String,
}

/// An alert as stored and shown.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// ID.
    pub id: String,
    /// Its tenant (`null`: the server's own).
    pub tenant_id: Option<String>,
    /// What it is about.
    pub kind: AlertKind,
    /// The object it is about.
    pub subject: String,
    /// One line.
    pub summary: String,
    /// More.
    pub detail: String,
    /// When it opened.
    pub opened_at: String,
    /// When it was last raised (or seen to hold).
    pub last_seen_at: String,
    /// How many times it was raised while open.
    pub occurrences: u64,
    /// Up to which occurrence messages went out.
    pub notified_occurrences: u64,
    /// When it was last sent.
    pub last_notified_at: Option<String>,
    /// When it cleared (`null`: open).
    pub resolved_at: Option<String>,
}

const ALERT_COLUMNS: &str = "id, tenant_id, kind, subject, summary, detail, opened_at, \
    last_seen_at, occurrences, notified_occurrences, last_notified_at, resolved_at";

fn alert_row(row: &Row<'_>) -> coffer_adapters::catalogue::rusqlite::Result<Alert> {
    let kind: String = row.get(2)?;
    Ok(Alert {
        id: row.get::<_, i64>(0)?.to_string(),
        tenant_id: row.get::<_, Option<i64>>(1)?.map(|t| t.to_string()),
        kind: AlertKind::parse(&kind).unwrap_or(AlertKind::Test),
        subject: row.get(3)?,
        summary: row.get(4)?,
        detail: row.get(5)?,
        opened_at: rfc3339(row.get(6)?),
        last_seen_at: rfc3339(row.get(7)?),
        occurrences: row.get(8)?,
        notified_occurrences: row.get(9)?,
        last_notified_at: row.get::<_, Option<i64>>(10)?.map(rfc3339),
        resolved_at: row.get::<_, Option<i64>>(11)?.map(rfc3339),
    })
}

fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn open_id(conn: &Connection, a: &NewAlert) -> DbResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM alerts WHERE tenant_id IS ?1 AND kind = ?2 AND subject = ?3
                 AND resolved_at IS NULL",
            params![a.tenant_id, a.kind.as_str(), a.subject],
            |row| row.get(0),
        )
        .optional()?)
}

fn insert_alert(conn: &Connection, a: &NewAlert, at: i64) -> DbResult<i64> {
    let id = super::new_id();
    conn.execute(
        "INSERT INTO alerts (id, tenant_id, kind, subject, summary, detail, opened_at,
                             last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            id,
            a.tenant_id,
            a.kind.as_str(),
            truncated(&a.subject, 256),
            truncated(&a.summary, 1024),
            truncated(&a.detail, 8192),
            at
        ],
    )?;
    Ok(id)
}

/// An event happened (a run failed): opens the alert, or counts one more occurrence
/// on the open one (its summary and detail become the latest). Returns its ID.
///
/// # Errors
/// SQLite's.
pub fn raise(conn: &Connection, a: &NewAlert, at: i64) -> DbResult<i64> {
    match open_id(conn, a)? {
        Some(id) => {
            conn.execute(
                "UPDATE alerts SET occurrences = occurrences + 1, last_seen_at = ?2,
                                   summary = ?3, detail = ?4
                 WHERE id = ?1",
                params![
                    id,
                    at,
                    truncated(&a.summary, 1024),
                    truncated(&a.detail, 8192)
                ],
            )?;
            Ok(id)
        }
        None => insert_alert(conn, a, at),
    }
}

/// A condition holds (an agent is offline): opens the alert if it is not open, and
/// otherwise only notes it was seen (a condition that goes on is one occurrence).
/// Returns whether it was opened now.
///
/// # Errors
/// SQLite's.
pub fn hold(conn: &Connection, a: &NewAlert, at: i64) -> DbResult<bool> {
    match open_id(conn, a)? {
        Some(id) => {
            conn.execute(
                "UPDATE alerts SET last_seen_at = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            Ok(false)
        }
        None => {
            insert_alert(conn, a, at)?;
            Ok(true)
        }
    }
}

/// Closes the open alert of `kind` on `subject`; false if none was open.
///
/// # Errors
/// SQLite's.
pub fn resolve(
    conn: &Connection,
    tenant_id: Option<i64>,
    kind: AlertKind,
    subject: &str,
    at: i64,
) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE alerts SET resolved_at = ?4
         WHERE tenant_id IS ?1 AND kind = ?2 AND subject = ?3 AND resolved_at IS NULL",
        params![tenant_id, kind.as_str(), subject, at],
    )? > 0)
}

/// The open alerts of `kind`: (tenant, subject).
///
/// # Errors
/// SQLite's.
pub fn open_subjects(conn: &Connection, kind: AlertKind) -> DbResult<Vec<(Option<i64>, String)>> {
    let mut st = conn
        .prepare("SELECT tenant_id, subject FROM alerts WHERE kind = ?1 AND resolved_at IS NULL")?;
    let rows = st.query_map([kind.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `tenant`'s newest `limit` alerts (`None`: the server's own), open ones only if asked.
///
/// # Errors
/// SQLite's.
pub fn alerts(
    conn: &Connection,
    tenant_id: Option<i64>,
    open_only: bool,
    limit: u32,
) -> DbResult<Vec<Alert>> {
    let mut st = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts
         WHERE tenant_id IS ?1 AND (?2 = 0 OR resolved_at IS NULL)
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = st.query_map(params![tenant_id, i64::from(open_only), limit], alert_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An alert that has something to send: (ID, tenant, kind, occurrences).
#[derive(Debug, Clone)]
pub struct Pending {
    /// The alert.
    pub alert: Alert,
    /// Its tenant.
    pub tenant_id: Option<i64>,
    /// Its occurrences now.
    pub occurrences: u64,
}

/// Open alerts never sent, and open alerts raised again since they were last sent
/// whose tenant's repeat interval has passed.
///
/// # Errors
/// SQLite's.
pub fn to_send(conn: &Connection, at: i64) -> DbResult<Vec<Pending>> {
    let default_repeat = AlertSettings::default().repeat_secs;
    let mut st = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts a LEFT JOIN alert_settings s USING (tenant_id)
         WHERE a.resolved_at IS NULL
           AND (a.notified_occurrences = 0
                OR (a.occurrences > a.notified_occurrences
                    AND a.last_notified_at + coalesce(s.repeat_secs, ?2) <= ?1))
         ORDER BY a.id"
    ))?;
    let rows = st.query_map(params![at, default_repeat], alert_row)?;
    let mut out = Vec::new();
    for alert in rows {
        let alert = alert?;
        out.push(Pending {
            tenant_id: alert.tenant_id.as_deref().and_then(|t| t.parse().ok()),
            occurrences: alert.occurrences,
            alert,
        });
    }
    Ok(out)
}

/// Notes that alert `id` was sent up to `occurrences` at `at`.
///
/// # Errors
/// SQLite's.
pub fn mark_sent(conn: &Connection, id: i64, occurrences: u64, at: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE alerts SET notified_occurrences = ?2, last_notified_at = ?3 WHERE id = ?1",
        params![id, occurrences, at],
    )?;
    Ok(())
}

/// Opens a sample alert for a channel's test, closed at once (it never repeats).
///
/// # Errors
/// SQLite's.
pub fn insert_test_alert(conn: &Connection, tenant_id: Option<i64>, at: i64) -> DbResult<Alert> {
    let id = super::new_id();
    conn.execute(
        "INSERT INTO alerts (id, tenant_id, kind, subject, summary, detail, opened_at,
                             last_seen_at, notified_occurrences, last_notified_at, resolved_at)
         VALUES (?1, ?2, 'test', 'test', 'A test notification from Coffer',
                 'Sent from the test button: this channel works.', ?3, ?3, 1, ?3, ?3)",
        params![id, tenant_id, at],
    )?;
    conn.query_row(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
        [id],
        alert_row,
    )
    .map_err(Into::into)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Accepted by the receiver.
    Sent,
    /// Given up after its last attempt.
    Failed,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// ID.
    pub id: String,
    /// The alert.
    pub alert_id: String,
    /// The channel.
    pub channel_id: String,
    /// The message's ID (`webhook-id`, or the email's Message-ID), the same on every
    /// attempt so a receiver can drop duplicates.
    pub message_id: String,
    /// Where it stands.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// When it was sent or given up.
    pub finished_at: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, alert_id, channel_id, message_id, status, attempts, \
    next_attempt_at, last_error, created_at, finished_at";

fn delivery_row(row: &Row<'_>) -> coffer_adapters::catalogue::rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: row.get::<_, i64>(0)?.to_string(),
        alert_id: row.get::<_, i64>(1)?.to_string(),
        channel_id: row.get::<_, i64>(2)?.to_string(),
        message_id: row.get(3)?,
        status: row.get(4)?,
        attempts: row.get(5)?,
        next_attempt_at: row.get::<_, Option<i64>>(6)?.map(rfc3339),
        last_error: row.get(7)?,
        created_at: rfc3339(row.get(8)?),
        finished_at: row.get::<_, Option<i64>>(9)?.map(rfc3339),
    })
}

/// Queues a delivery of `payload` (the alert's message) to `channel`, due at `at`.
/// Returns its ID.
///
/// # Errors
/// SQLite's.
pub fn enqueue(
    conn: &Connection,
    tenant_id: Option<i64>,
    alert_id: i64,
    channel_id: i64,
    message_id: &str,
    payload: &str,
    at: i64,
) -> DbResult<i64> {
    let id = super::new_id();
    conn.execute(
        "INSERT INTO deliveries (id, tenant_id, alert_id, channel_id, message_id, status,
                                 next_attempt_at, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?6)",
        params![id, tenant_id, alert_id, channel_id, message_id, at, payload],
    )?;
    Ok(id)
}

/// A delivery to attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// ID.
    pub id: i64,
    /// The channel.
    pub channel_id: i64,
    /// The channel's tenant.
    pub tenant_id: Option<i64>,
    /// The message's ID.
    pub message_id: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The message (JSON).
    pub payload: String,
}

/// Pending deliveries due by `at`, oldest first, at most `limit`.
///
/// # Errors
/// SQLite's.
pub fn due(conn: &Connection, at: i64, limit: u32) -> DbResult<Vec<DueDelivery>> {
    let mut st = conn.prepare(
        "SELECT id, channel_id, tenant_id, message_id, attempts, payload FROM deliveries
         WHERE status = 'pending' AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, id LIMIT ?2",
    )?;
    let rows = st.query_map(params![at, limit], |row| {
        Ok(DueDelivery {
            id: row.get(0)?,
            channel_id: row.get(1)?,
            tenant_id: row.get(2)?,
            message_id: row.get(3)?,
            attempts: row.get(4)?,
            payload: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// Sent.
    Sent,
    /// Failed; try again at this time.
    Retry {
        /// Why.
        error: String,
        /// When.
        next_at: i64,
    },
    /// Failed for the last time.
    GiveUp {
        /// Why.
        error: String,
    },
}

/// Records an attempt of delivery `id` made at `at`.
///
/// # Errors
/// SQLite's.
pub fn record_attempt(conn: &Connection, id: i64, attempt: &Attempt, at: i64) -> DbResult<()> {
    let (status, next, error, finished) = match attempt {
        Attempt::Sent => ("sent", None, None, Some(at)),
        Attempt::Retry { error, next_at } => ("pending", Some(*next_at), Some(error), None),
        Attempt::GiveUp { error } => ("failed", None, Some(error), Some(at)),
    };
    conn.execute(
        "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3,
                               last_error = coalesce(?4, last_error), finished_at = ?5
         WHERE id = ?1",
        params![
            id,
            status,
            next,
            error.map(|e| truncated(e, 2048).to_owned()),
            finished
        ],
    )?;
    Ok(())
}

/// `tenant`'s newest `limit` deliveries (`None`: the server's own), of one status if
/// given.
///
/// # Errors
/// SQLite's.
pub fn deliveries(
    conn: &Connection,
    tenant_id: Option<i64>,
    status: Option<DeliveryStatus>,
    limit: u32,
) -> DbResult<Vec<Delivery>> {
    let status = status.map(|s| match s {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Failed => "failed",
    });
    let mut st = conn.prepare(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries
         WHERE tenant_id IS ?1 AND (?2 IS NULL OR status = ?2)
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = st.query_map(params![tenant_id, status, limit], delivery_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Delivery `id`.
///
/// # Errors
/// SQLite's.
pub fn delivery(conn: &Connection, id: i64) -> DbResult<Option<Delivery>> {
    Ok(conn
        .query_row(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"),
            [id],
            delivery_row,
        )
        .optional()?)
}
