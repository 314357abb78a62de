//! What a notification says: the JSON event a webhook receives (and the record a
//! delivery keeps), and the email made from it.

use serde::{Deserialize, Serialize};

use crate::db::notify::{Alert, AlertKind};

/// The event, as a webhook's body: Standard Webhooks' recommended `type`, `timestamp`,
/// `data` shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// The alert's kind (`run.failed`, `job.missed_schedule`, ...).
    #[serde(rename = "type")]
    pub kind: AlertKind,
    /// When the message was made (RFC 3339).
    pub timestamp: String,
    /// What happened.
    pub data: EventData,
}

/// An event's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventData {
    /// The alert (repeats of one condition share it).
    pub alert_id: String,
    /// The tenant (`null`: the server's own).
    pub tenant_id: Option<String>,
    /// The object it is about (`job:5`, `agent:3`, `backend:2`).
    pub subject: String,
    /// One line.
    pub summary: String,
    /// More.
    pub detail: String,
    /// Times it happened while open (a reminder says more than one).
    pub occurrences: u64,
    /// Whether this is a reminder of an alert already sent.
    pub reminder: bool,
    /// When it opened.
    pub opened_at: String,
    /// When it last happened.
    pub last_seen_at: String,
}

impl Event {
    /// The event for `alert` as it stands (`reminder` when it was sent before).
    pub fn of(alert: &Alert, at: i64) -> Self {
        Event {
            kind: alert.kind,
            timestamp: crate::db::rfc3339(at),
            data: EventData {
                alert_id: alert.id.clone(),
                tenant_id: alert.tenant_id.clone(),
                subject: alert.subject.clone(),
                summary: alert.summary.clone(),
                detail: alert.detail.clone(),
                occurrences: alert.occurrences,
                reminder: alert.notified_occurrences > 0,
                opened_at: alert.opened_at.clone(),
                last_seen_at: alert.last_seen_at.clone(),
            },
        }
    }

    /// The email's subject line.
    pub fn subject(&self) -> String {
        let d = &self.data;
        if d.reminder {
            format!(
                "[Coffer] {} (still happening: {} times since {})",
                d.summary, d.occurrences, d.opened_at
            )
        } else {
            format!("[Coffer] {}", d.summary)
        }
    }

    /// The email's text.
    pub fn text(&self) -> String {
        let d = &self.data;
        let mut out = format!("{}\n\n", d.summary);
        if !d.detail.is_empty() {
            out.push_str(&d.detail);
            out.push_str("\n\n");
        }
        out.push_str(&format!(
            "Alert:       {} ({})\nAbout:       {}\nFirst seen:  {}\nLast seen:   {}\nOccurrences: {}\n",
            d.alert_id,
            self.kind.as_str(),
            d.subject,
            d.opened_at,
            d.last_seen_at,
            d.occurrences
        ));
        if let Some(t) = &d.tenant_id {
            out.push_str(&format!("Tenant:      {t}\n"));
        }
        out.push_str(
            "\nRepeats are grouped: while this stays open you get a reminder at most as often \
             as the tenant's repeat interval, and nothing once it clears.\n",
        );
        out
    }
}
