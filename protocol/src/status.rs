//! The closed sets of names on the wire (and in the server's database): kinds of run,
//! run and agent states, outcomes and suites. Each parses only its own names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is not one of the set asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {what} (one of: {allowed})")]
pub struct UnknownName {
    /// The set (`run status`, `suite`, ...).
    pub what: &'static str,
    /// The names it has.
    pub allowed: &'static str,
    /// The text given (at most 64 characters of it).
    pub text: String,
}

macro_rules! names {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and database) name.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(text: &str) -> Result<Self, UnknownName> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        allowed: concat!($($text, " "),+).trim_ascii_end(),
                        text: text.chars().take(64).collect(),
                    }),
                }
            }
        }
    };
}

names!(
    /// What a run does.
    RunKind, "kind of run" {
        /// Back up a job's sources.
        Backup = "backup",
        /// Restore a restore point (or some of its paths) to a folder.
        Restore = "restore",
        /// Check that a restore point opens and its data is whole.
        Verify = "verify",
    }
);

names!(
    /// Where a run stands.
    RunStatus, "run status" {
        /// Waiting for its agent to poll.
        Queued = "queued",
        /// Claimed by its agent, under a lease that progress reports extend.
        Running = "running",
        /// Ended well.
        Succeeded = "succeeded",
        /// Ended badly: the agent's error, cancelled, timed out or its agent revoked.
        Failed = "failed",
    }
);

impl RunStatus {
    /// Whether the run has ended.
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed)
    }
}

names!(
    /// How an agent stands with the server.
    AgentStatus, "agent status" {
        /// Heard from recently.
        Online = "online",
        /// Not heard from recently (or never).
        Offline = "offline",
        /// Its API key no longer works.
        Revoked = "revoked",
    }
);

names!(
    /// How a run ended, as its agent reports it.
    Outcome, "outcome" {
        /// It worked.
        Succeeded = "succeeded",
        /// It did not.
        Failed = "failed",
    }
);

impl From<Outcome> for RunStatus {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Succeeded => RunStatus::Succeeded,
            Outcome::Failed => RunStatus::Failed,
        }
    }
}

names!(
    /// A repository's AEAD suite.
    Suite, "suite" {
        /// AES-256-GCM.
        Aes256Gcm = "aes-256-gcm",
        /// ChaCha20-Poly1305.
        ChaCha20Poly1305 = "chacha20-poly1305",
    }
);

impl TryFrom<coffer_core::Suite> for Suite {
    type Error = UnknownName;
    fn try_from(s: coffer_core::Suite) -> Result<Self, UnknownName> {
        match s {
            coffer_core::Suite::Aes256Gcm => Ok(Suite::Aes256Gcm),
            coffer_core::Suite::ChaCha20Poly1305 => Ok(Suite::ChaCha20Poly1305),
            // A suite the core gained after this contract: not on the wire yet.
            other => Err(UnknownName {
                what: "suite",
                allowed: "aes-256-gcm chacha20-poly1305",
                text: format!("{other:?}"),
            }),
        }
    }
}

impl From<Suite> for coffer_core::Suite {
    fn from(s: Suite) -> Self {
        match s {
            Suite::Aes256Gcm => coffer_core::Suite::Aes256Gcm,
            Suite::ChaCha20Poly1305 => coffer_core::Suite::ChaCha20Poly1305,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_fail() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<RunStatus>(&json).unwrap(), *s);
        }
        let e = "paused".parse::<RunStatus>().unwrap_err();
        assert_eq!(e.allowed, "queued running succeeded failed");
        // The bug this replaces: an unknown suite read as AES.
        assert!(serde_json::from_str::<Suite>("\"aes-128-gcm\"").is_err());
        assert!("AES-256-GCM".parse::<Suite>().is_err());
        assert_eq!(
            serde_json::from_str::<Suite>("\"chacha20-poly1305\"").unwrap(),
            Suite::ChaCha20Poly1305
        );
        assert!(serde_json::from_str::<AgentStatus>("\"gone\"").is_err());
        assert!(RunStatus::Failed.is_finished() && !RunStatus::Running.is_finished());
    }
}
