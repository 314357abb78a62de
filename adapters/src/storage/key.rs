//! Object keys, checked once so no backend ever sees a path that could escape its root.

use std::fmt;

use crate::Error;

/// The longest key S3 accepts, in bytes.
const MAX_KEY_LEN: usize = 1024;
/// The longest segment of a key: what a folder entry can be named on common file
/// systems, so the local store can hold every key it accepts.
const MAX_SEGMENT_LEN: usize = 255;

/// A validated object key: `/`-separated segments, none empty, `.` or `..`, no leading
/// or trailing `/`, no backslash, NUL or control character, at most 1024 bytes, no segment
/// longer than 255 bytes; and no
/// segment starting with `.coffer-tmp-` (the local backend's temporaries).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks `key`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] naming what is wrong.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        let fail = |reason: &'static str| Error::InvalidKey {
            key: key.clone(),
            reason,
        };
        if key.is_empty() {
            return Err(fail("empty key"));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(fail("longer than 1024 bytes"));
        }
        if key.starts_with('/') {
            return Err(fail("absolute path"));
        }
        if key.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(fail("backslash or control character"));
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(fail("empty path segment")),
                "." | ".." => return Err(fail("'.' or '..' segment")),
                s if s.len() > MAX_SEGMENT_LEN => {
                    return Err(fail("a path segment longer than 255 bytes"))
                }
                s if s.starts_with(super::local::TEMP_PREFIX) => {
                    return Err(fail("reserved temporary-file name"))
                }
                _ => {}
            }
        }
        Ok(ObjectKey(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key followed by `/` and `name` (validated).
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    pub fn join(&self, name: &str) -> Result<Self, Error> {
        ObjectKey::new(format!("{}/{name}", self.0))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_or_confuse_a_backend_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/",
            "../x",
            "a/../b",
            "./a",
            "a/.",
            "a\\b",
            "a\0b",
            "a\nb",
            ".coffer-tmp-123",
            "x/.coffer-tmp-9",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ObjectKey::new("x".repeat(1025)).is_err());
        assert!(ObjectKey::new(format!("a/{}", "x".repeat(256))).is_err());
        assert!(ObjectKey::new(format!("a/{}", "x".repeat(255))).is_ok());
        for good in [
            "a",
            "tenant-1/repo/backups/2026-11-23T10:00:00Z.coffer",
            "a/.hidden",
            "é/ü",
        ] {
            assert_eq!(ObjectKey::new(good).unwrap().as_str(), good);
        }
        assert_eq!(
            ObjectKey::new("a").unwrap().join("b").unwrap().as_str(),
            "a/b"
        );
        assert!(ObjectKey::new("a").unwrap().join("..").is_err());
    }
}
