//! What a poll hands an agent (`GET /v1/agent/poll`): `{"work": null}` or one [`Work`].
//!
//! A work item is `{"run_id", "lease_expires_at", "kind", "spec"}`, `spec` being the
//! kind's own fields. An agent that meets a kind it does not know reads the run ID
//! alone ([`WorkHeader`]) and fails that run, naming the kind, instead of guessing.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, RestorePointId, RunId};
use crate::secret::Secret;
use crate::status::RunKind;

/// A poll's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollAnswer {
    /// The work claimed for this agent, if any.
    pub work: Option<Work>,
}

/// One run handed to its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// The run.
    pub run_id: RunId,
    /// Finish, or report progress, before this (RFC 3339).
    pub lease_expires_at: String,
    /// What to do.
    #[serde(flatten)]
    pub item: WorkItem,
}

/// What a run does, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "spec", rename_all = "snake_case")]
pub enum WorkItem {
    /// Back up a job's sources.
    Backup(BackupWork),
    /// Restore a restore point.
    Restore(RestoreWork),
    /// Verify a restore point.
    Verify(VerifyWork),
}

impl WorkItem {
    /// The kind of run.
    #[must_use]
    pub fn kind(&self) -> RunKind {
        match self {
            WorkItem::Backup(_) => RunKind::Backup,
            WorkItem::Restore(_) => RunKind::Restore,
            WorkItem::Verify(_) => RunKind::Verify,
        }
    }
}

/// The part of a work item every version of the contract has: enough to report on a
/// run whose kind this agent does not know.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkHeader {
    /// The run.
    pub run_id: RunId,
    /// Its kind, as sent.
    #[serde(default)]
    pub kind: String,
}

/// A backup to make, into the agent's repository with its write-only key. The server
/// holds the repository's shared lock for the run (the agent's URLs cannot overwrite
/// or delete, so it takes none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupWork {
    /// The job.
    pub job_id: JobId,
    /// Absolute paths.
    pub sources: Vec<String>,
    /// Exclude patterns (restic's rules, as `coffer backup --exclude`); left out of
    /// the JSON when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// The repository's folder, relative to the destination.
    pub prefix: String,
    /// The restore point's name.
    pub name: String,
    /// Tags the snapshot carries (the server's retention groups by them).
    pub tags: Vec<String>,
    /// The most bytes a second the backup may upload (the lower of the agent's and
    /// the job's limits); `None`: no limit.
    #[serde(default)]
    pub upload_limit: Option<u64>,
}

/// A restore to do. `key` opens a full key file made for this run alone, removed when
/// the run ends; the agent keeps it in memory only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreWork {
    /// The restore point.
    pub restore_point_id: RestorePointId,
    /// The repository's folder, relative to the destination.
    pub prefix: String,
    /// The restore point's name.
    pub name: String,
    /// Its snapshot (32 hex digits).
    pub snapshot: String,
    /// The run's key-encryption key, base64.
    pub key: Secret,
    /// Where to restore to (absolute).
    pub target: String,
    /// Only these paths of the snapshot, with everything under them (empty:
    /// everything).
    pub paths: Vec<String>,
    /// The destination holding the repository, when it is not this agent's own (a
    /// restore point made by another agent, perhaps a revoked one). Pre-signed URLs for
    /// it are asked for with the run's ID, and only to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<crate::enrol::Destination>,
}

/// A verify to do: the repository checked with every pack read. `key` as for a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyWork {
    /// The restore point.
    pub restore_point_id: RestorePointId,
    /// The repository's folder, relative to the destination.
    pub prefix: String,
    /// The restore point's name.
    pub name: String,
    /// Its snapshot (32 hex digits).
    pub snapshot: String,
    /// The run's key-encryption key, base64.
    pub key: Secret,
    /// The destination holding the repository, when it is not this agent's own (a
    /// restore point made by another agent, perhaps a revoked one). Pre-signed URLs for
    /// it are asked for with the run's ID, and only to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<crate::enrol::Destination>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Work {
        Work {
            run_id: "42".parse().unwrap(),
            lease_expires_at: "2026-11-30T12:00:00Z".into(),
            item: WorkItem::Restore(RestoreWork {
                restore_point_id: "9".parse().unwrap(),
                prefix: "repo".into(),
                name: "b1".into(),
                snapshot: "ab".repeat(16),
                key: Secret::new("a2V5".into()),
                target: "/srv/restore".into(),
                paths: vec!["etc/hosts".into()],
                destination: None,
            }),
        }
    }

    #[test]
    fn work_round_trips_with_its_kind_beside_the_run() {
        let work = sample();
        let json = serde_json::to_value(&work).unwrap();
        assert_eq!(json["kind"], "restore");
        assert_eq!(json["run_id"], "42");
        assert_eq!(json["spec"]["target"], "/srv/restore");
        let back: Work = serde_json::from_value(json).unwrap();
        assert_eq!(back, work);
        assert_eq!(back.item.kind(), RunKind::Restore);
    }

    #[test]
    fn an_unknown_kind_fails_but_its_run_can_still_be_named() {
        let text = r#"{"run_id": "42", "lease_expires_at": "x", "kind": "defrag", "spec": {}}"#;
        assert!(serde_json::from_str::<Work>(text).is_err());
        let header: WorkHeader = serde_json::from_str(text).unwrap();
        assert_eq!((header.run_id.get(), header.kind.as_str()), (42, "defrag"));
        // A spec with a field the kind does not have is refused, not ignored.
        let mut json = serde_json::to_value(sample()).unwrap();
        json["spec"]["overwrite"] = true.into();
        assert!(serde_json::from_value::<Work>(json).is_err());
    }
}
