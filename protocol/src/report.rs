//! What an agent reports: heartbeats, progress, a run's completion, log lines.

use serde::{Deserialize, Serialize};

use crate::status::Outcome;

/// `POST /v1/agent/heartbeat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The agent's version.
    #[serde(default)]
    pub version: Option<String>,
    /// The machine it runs on (older agents leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<crate::Platform>,
}

/// The heartbeat's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// The server's clock (RFC 3339).
    pub server_time: String,
}

/// `POST /v1/agent/runs/{run_id}/progress`: how far a running run is. Files and
/// bytes count what the run has gone through (a backup: read or found unchanged; a
/// restore: written); the totals are what it will go through, once known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Bytes processed so far.
    #[serde(deserialize_with = "crate::count")]
    pub bytes: u64,
    /// Files processed so far.
    #[serde(deserialize_with = "crate::count")]
    pub files: u64,
    /// Bytes in all, when known.
    #[serde(default, deserialize_with = "crate::count_opt")]
    pub bytes_total: Option<u64>,
    /// Files in all, when known.
    #[serde(default, deserialize_with = "crate::count_opt")]
    pub files_total: Option<u64>,
    /// Bytes a second, over the last report's interval.
    #[serde(default, deserialize_with = "crate::count_opt")]
    pub rate: Option<u64>,
    /// The file being worked on.
    #[serde(default)]
    pub current: Option<String>,
}

/// The progress report's answer: the extended lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressAnswer {
    /// The new end of the lease (RFC 3339).
    pub lease_expires_at: String,
}

/// `POST /v1/agent/runs/{run_id}/complete`: how a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    /// How it ended.
    pub status: Outcome,
    /// Bytes processed.
    #[serde(deserialize_with = "crate::count")]
    pub bytes: u64,
    /// Files processed.
    #[serde(deserialize_with = "crate::count")]
    pub files: u64,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The restore point a successful backup made.
    #[serde(default)]
    pub restore_point: Option<NewRestorePoint>,
}

impl Completion {
    /// A failure with `error`, after `bytes` and `files`.
    #[must_use]
    pub fn failed(bytes: u64, files: u64, error: String) -> Self {
        Completion {
            status: Outcome::Failed,
            bytes,
            files,
            error: Some(error),
            restore_point: None,
        }
    }
}

/// A restore point, as the backup that made it reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRestorePoint {
    /// Backup name.
    pub name: String,
    /// The repository's folder, relative to the destination.
    pub prefix: String,
    /// The snapshot (32 hex digits).
    pub snapshot: String,
    /// Bytes in storage.
    #[serde(deserialize_with = "crate::count")]
    pub stored_bytes: u64,
    /// Bytes of file content.
    #[serde(deserialize_with = "crate::count")]
    pub content_bytes: u64,
    /// Files.
    #[serde(deserialize_with = "crate::count")]
    pub files: u64,
    /// When the backup was taken (RFC 3339).
    pub created_at: String,
}

/// `POST /v1/agent/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
}

/// One line of an agent's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// How much it matters.
    pub level: LogLevel,
    /// What happened.
    pub message: String,
    /// When (RFC 3339).
    pub time: String,
}

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Routine.
    Info,
    /// Worth a look.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_over_the_database_limit_and_unknown_fields_are_refused() {
        let ok = r#"{"status": "failed", "bytes": 9223372036854775807, "files": 0,
                     "error": "disk full"}"#;
        let c: Completion = serde_json::from_str(ok).unwrap();
        assert_eq!(
            c,
            Completion::failed(i64::MAX as u64, 0, "disk full".into())
        );
        let over = ok.replace("9223372036854775807", "9223372036854775808");
        assert!(serde_json::from_str::<Completion>(&over).is_err());
        assert!(serde_json::from_str::<Progress>(r#"{"bytes": 1, "files": 2, "eta": 3}"#).is_err());
        let p: Progress = serde_json::from_str(
            r#"{"bytes": 1, "files": 2, "bytes_total": 10, "rate": 5, "current": "/a"}"#,
        )
        .unwrap();
        assert_eq!(
            (p.bytes_total, p.files_total, p.rate),
            (Some(10), None, Some(5))
        );
        assert!(serde_json::from_str::<Progress>(
            r#"{"bytes": 1, "files": 2, "bytes_total": 9223372036854775808}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Completion>(
            r#"{"status": "skipped", "bytes": 0, "files": 0}"#
        )
        .is_err());
    }
}
