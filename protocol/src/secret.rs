//! A secret that crosses the wire (an API key, a repository key in base64): serialized
//! as its text, wiped from memory on drop, never shown by `Debug`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A secret string.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `text`.
    #[must_use]
    pub fn new(text: String) -> Self {
        Secret(Zeroizing::new(text))
    }

    /// The secret itself, for the one place that uses it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The secret as an owned, wiped-on-drop string.
    #[must_use]
    pub fn into_inner(self) -> Zeroizing<String> {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret_and_json_carries_it() {
        let s = Secret::new("cfg_topsecret".into());
        assert!(!format!("{s:?}").contains("topsecret"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"cfg_topsecret\"");
        let back: Secret = serde_json::from_str("\"cfg_topsecret\"").unwrap();
        assert_eq!(back.expose(), "cfg_topsecret");
    }
}
