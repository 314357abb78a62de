//! What machine an agent runs on: its operating system and processor architecture, as
//! Rust names them (`std::env::consts::{OS, ARCH}`: `linux`/`aarch64`, `freebsd`/`x86_64`).
//! Operators see it on the agents page and in `coffer server agents`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most characters of either name.
pub const MAX_NAME: usize = 32;

/// An agent's operating system and architecture. Each name is 1 to [`MAX_NAME`]
/// characters of `a`–`z`, `0`–`9` and `_`; anything else fails to parse, so a
/// platform on the wire or in the database is always one a page can show as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Wire")]
pub struct Platform {
    /// Operating system (`linux`, `macos`, `freebsd`, `windows`, ...).
    pub os: String,
    /// Processor architecture (`x86_64`, `aarch64`, `arm`, `riscv64`, ...).
    pub arch: String,
}

/// A platform name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("platform {field} must be 1 to {MAX_NAME} characters of a-z, 0-9 and _")]
pub struct BadPlatform {
    /// `os` or `arch`.
    pub field: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    os: String,
    arch: String,
}

impl TryFrom<Wire> for Platform {
    type Error = BadPlatform;

    fn try_from(w: Wire) -> Result<Self, BadPlatform> {
        Self::new(w.os, w.arch)
    }
}

fn well_formed(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Platform {
    /// A platform from its two names.
    ///
    /// # Errors
    /// [`BadPlatform`] naming the field that is not well formed.
    pub fn new(os: String, arch: String) -> Result<Self, BadPlatform> {
        if !well_formed(&os) {
            return Err(BadPlatform { field: "os" });
        }
        if !well_formed(&arch) {
            return Err(BadPlatform { field: "arch" });
        }
        Ok(Self { os, arch })
    }

    /// The platform this program was built for.
    #[must_use]
    pub fn current() -> Self {
        Self {
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_names_parse() {
        let p: Platform = serde_json::from_str(r#"{"os": "linux", "arch": "aarch64"}"#).unwrap();
        assert_eq!(p.to_string(), "linux/aarch64");
        for bad in [
            r#"{"os": "", "arch": "x86_64"}"#,
            r#"{"os": "Linux", "arch": "x86_64"}"#,
            r#"{"os": "linux", "arch": "<b>x86</b>"}"#,
            r#"{"os": "linux", "arch": "x86_64", "cpu": "zen"}"#,
            r#"{"os": "linux"}"#,
        ] {
            assert!(serde_json::from_str::<Platform>(bad).is_err(), "{bad}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        assert_eq!(
            Platform::new("linux".into(), long),
            Err(BadPlatform { field: "arch" })
        );
        let current = Platform::current();
        assert_eq!(
            Platform::new(current.os.clone(), current.arch.clone()),
            Ok(current)
        );
    }
}
