//! Typed IDs. On the wire an ID is a string of decimal digits (opaque to agents); in
//! the server's database it is a positive 64-bit integer. Parsing refuses anything else,
//! so a malformed ID is an error where it is read, never a 0 that names nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that is not an ID of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {what} ID (IDs are positive decimal numbers)")]
pub struct BadId {
    /// What kind of ID was expected (`run`, `agent`, ...).
    pub what: &'static str,
    /// The text given (at most 64 characters of it).
    pub text: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// What this kind of ID names, for messages.
            pub const WHAT: &'static str = $what;

            /// The ID for a database row ID; `None` unless it is positive.
            #[must_use]
            pub fn new(raw: i64) -> Option<Self> {
                (raw > 0).then_some($name(raw))
            }

            /// The database row ID.
            #[must_use]
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = BadId;
            fn try_from(raw: i64) -> Result<Self, BadId> {
                $name::new(raw).ok_or_else(|| BadId {
                    what: $what,
                    text: raw.to_string(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(text: &str) -> Result<Self, BadId> {
                // Only plain digits: no sign, spaces or leading `+` that `i64::from_str`
                // would take.
                text.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| text.parse::<i64>().ok())
                    .flatten()
                    .and_then($name::new)
                    .ok_or_else(|| BadId {
                        what: $what,
                        text: text.chars().take(64).collect(),
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A tenant.
    TenantId,
    "tenant"
);
id_type!(
    /// An agent.
    AgentId,
    "agent"
);
id_type!(
    /// A run (one piece of work for one agent).
    RunId,
    "run"
);
id_type!(
    /// A backup job.
    JobId,
    "job"
);
id_type!(
    /// A repository.
    RepositoryId,
    "repository"
);
id_type!(
    /// A destination (where an agent's repository lives).
    DestinationId,
    "destination"
);
id_type!(
    /// A restore point.
    RestorePointId,
    "restore point"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_decimal_strings_and_nothing_else() {
        let id: RunId = "7240315629568".parse().unwrap();
        assert_eq!(id.get(), 7_240_315_629_568);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"7240315629568\"");
        assert_eq!(
            serde_json::from_str::<RunId>("\"7240315629568\"").unwrap(),
            id
        );
        for bad in [
            "",
            "0",
            "-4",
            "+4",
            " 4",
            "4 ",
            "1e3",
            "x",
            "99999999999999999999",
        ] {
            let e = bad.parse::<RunId>().unwrap_err();
            assert_eq!(e.what, "run", "{bad:?}");
        }
        // A number is not an ID: the contract's IDs are strings.
        assert!(serde_json::from_str::<AgentId>("4").is_err());
        assert!(serde_json::from_str::<AgentId>("\"abc\"").is_err());
        assert_eq!(AgentId::new(0), None);
    }
}
