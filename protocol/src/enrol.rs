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
    /// The agent's version.
    #[serde(default)]
    pub version: String,
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

/// A repository and the key that opens it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepositoryKey {
    /// The repository.
    pub id: RepositoryId,
    /// The key's ID: 32 hex digits (16 bytes).
    pub key_id: String,
    /// The repository's suite.
    pub suite: Suite,
    /// The 32-byte key, base64.
    pub key: Secret,
    /// The key's version (1 until keys are rotated).
    pub key_version: u32,
}
