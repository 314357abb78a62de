//! The agent ⇄ server contract of Coffer's lite server (`server-lite/agent-api.md`), as
//! Rust types both sides compile against: what one side writes, the other reads with
//! the same definition, and a value neither knows (an unknown suite, status or kind of
//! work) fails to parse instead of becoming a default.
//!
//! Layout: [`ids`] (typed IDs), [`status`] (run and agent states, outcomes, suites),
//! [`platform`] (what machine an agent runs on), [`enrol`] (enrolment and the
//! repository key), [`work`] (what a poll hands out), [`report`] (heartbeats,
//! progress, completion, log lines), [`presign`] (pre-signed storage requests),
//! [`secret`] (secrets that cross the wire).

pub mod enrol;
pub mod ids;
pub mod platform;
pub mod presign;
pub mod report;
pub mod secret;
pub mod status;
pub mod work;

pub use ids::{AgentId, DestinationId, JobId, RepositoryId, RestorePointId, RunId, TenantId};
pub use platform::Platform;
pub use status::{AgentStatus, Outcome, RunKind, RunStatus, Suite};

/// The largest count the wire carries: SQLite's integers are signed 64-bit.
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// Deserializes a count, refusing values over [`MAX_COUNT`] (they would not fit the
/// server's database).
///
/// # Errors
/// serde's custom error naming the limit.
pub fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error as _;
    use serde::Deserialize as _;
    let value = u64::deserialize(d)?;
    if value > MAX_COUNT {
        return Err(D::Error::custom(format!("larger than {MAX_COUNT}")));
    }
    Ok(value)
}

/// [`count`] for an optional count (`null` or absent: `None`).
///
/// # Errors
/// As [`count`].
pub fn count_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    use serde::Deserialize as _;
    match Option::<u64>::deserialize(d)? {
        Some(v) if v > MAX_COUNT => Err(D::Error::custom(format!("larger than {MAX_COUNT}"))),
        other => Ok(other),
    }
}

/// An error body: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// A stable `snake_case` code.
    pub code: String,
    /// Text for people, naming the field at fault.
    pub message: String,
}
