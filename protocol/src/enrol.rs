//! Enrolment (`POST /v1/enroll`) and the repository key (`GET /v1/agent/repository-key`).

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, DestinationId, RepositoryId, TenantId};
use crate::secret::Secret;
use crate::status::Suite;

/// What an agent sends to enrol.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time enrolment token (`cfe_…`).
    pub token: Secret,
    /// The machine's host name.
    pub hostname: String,
    /// The agent's name in lists (default: the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// The machine it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<crate::Platform>,
}

/// What enrolment answers (201).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollAnswer {
    /// The new agent.
    pub agent_id: AgentId,
    /// Its API key (`cfg_…`), shown this once.
    pub api_key: Secret,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Where its backups go.
    pub destination: Destination,
    /// The repository there, and its key.
    pub repository: RepositoryKey,
}

/// Where an agent's objects live. Object keys the agent uses are relative to `prefix`:
/// the server prepends it when it signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The destination.
    pub id: DestinationId,
    /// Its bucket.
    pub bucket: String,
    /// Its root prefix in the bucket.
    pub prefix: String,
}

/// A repository and the key that opens it: a deduplicated repository (FORMAT.md Part
/// II) in `folder` under the destination, and the key-encryption key of one of its key
/// files (FORMAT.md §21, wrapping 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryKey {
    /// The repository.
    pub id: RepositoryId,
    /// Its folder, relative to the destination.
    pub folder: String,
    /// What the key file opened by `key` allows.
    pub access: KeyAccess,
    /// The key-encryption key's ID: 32 hex digits (16 bytes).
    pub key_id: String,
    /// The repository's suite.
    pub suite: Suite,
    /// The 32-byte key-encryption key, base64.
    pub key: Secret,
}

/// What a key file allows (FORMAT.md §21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAccess {
    /// Add backups and deduplicate against them; open nothing stored.
    WriteOnly,
    /// Everything.
    Full,
}
