//! The server's key-encryption key (KEK): where it comes from and how a new one is made.
//!
//! The KEK wraps every repository secret and seals stored storage credentials. It never
//! lives in the database (whoever copies the database must not get the keys with it)
//! and never in argv (other users see argv in `ps`). It is read from a file holding 64
//! hex digits (and an optional newline), or from the environment variable
//! [`KEK_ENV`] in the same form. Files are created with mode 0600 and refused if other
//! users may read them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use coffer_core::SecretKey;
use rand_core::OsRng;
use zeroize::Zeroizing;

/// Environment variable holding the KEK itself, in hex.
pub const KEK_ENV: &str = "COFFER_SERVER_KEK";
/// Environment variable naming the KEK file.
pub const KEK_FILE_ENV: &str = "COFFER_SERVER_KEK_FILE";
/// The KEK file's name inside the data directory, when none is configured.
pub const DEFAULT_KEK_FILE: &str = "kek.hex";

/// Why a KEK could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The file does not exist.
    #[error(
        "the KEK file {0} does not exist (create one with `coffer-server gen-kek --out FILE`)"
    )]
    Missing(PathBuf),
    /// The file or variable does not hold 64 hex digits.
    #[error("the KEK in {0} is malformed: expected 64 hex digits (32 bytes)")]
    Malformed(String),
    /// Other users may read the file.
    #[error("the KEK file {0} is readable by other users (mode {1:o}); run chmod 600 on it")]
    TooOpen(PathBuf, u32),
    /// The file exists already (when generating).
    #[error("{0} exists already; refusing to overwrite a KEK")]
    Exists(PathBuf),
    /// Reading or writing the file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Where the KEK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// A file of 64 hex digits.
    File(PathBuf),
    /// The [`KEK_ENV`] variable.
    Env,
}

impl KekSource {
    /// Loads the KEK.
    ///
    /// # Errors
    /// [`KekError`] saying what is wrong with the file or variable.
    pub fn load(&self) -> Result<SecretKey, KekError> {
        match self {
            KekSource::File(path) => load_file(path),
            KekSource::Env => {
                let value = Zeroizing::new(
                    std::env::var(KEK_ENV)
                        .map_err(|_| KekError::Malformed(format!("${KEK_ENV}")))?,
                );
                parse(&value).ok_or_else(|| KekError::Malformed(format!("${KEK_ENV}")))
            }
        }
    }
}

/// Reads a KEK file, refusing one that others may read.
///
/// # Errors
/// [`KekError`].
pub fn load_file(path: &Path) -> Result<SecretKey, KekError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KekError::Missing(path.to_owned()))
        }
        Err(e) => return Err(KekError::Io(path.to_owned(), e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KekError::TooOpen(path.to_owned(), mode));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| KekError::Io(path.into(), e))?);
    parse(&text).ok_or_else(|| KekError::Malformed(path.display().to_string()))
}

/// Creates a new random KEK in `path` (mode 0600, never overwriting) and returns it.
///
/// # Errors
/// [`KekError::Exists`]; [`KekError::Io`].
pub fn generate_file(path: &Path) -> Result<SecretKey, KekError> {
    let key = SecretKey::generate(&mut OsRng);
    write_file(path, &key)?;
    Ok(key)
}

/// Writes `key` as a KEK file in `path` (mode 0600, never overwriting): a KEK restored
/// from a self-backup on a new machine.
///
/// # Errors
/// [`KekError::Exists`]; [`KekError::Io`].
pub fn write_file(path: &Path, key: &SecretKey) -> Result<(), KekError> {
    let text = Zeroizing::new(format!("{}\n", hex::encode(key.expose_secret())));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KekError::Exists(path.to_owned()),
        _ => KekError::Io(path.to_owned(), e),
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| KekError::Io(path.to_owned(), e))?;
    Ok(())
}

fn parse(text: &str) -> Option<SecretKey> {
    let hex_text = text.trim_end_matches(['\n', '\r']);
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_text, bytes.as_mut()).ok()?;
    Some(SecretKey::from_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_load_back_and_bad_ones_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let key = generate_file(&path).unwrap();
        assert_eq!(load_file(&path).unwrap().id(), key.id());
        assert!(matches!(generate_file(&path), Err(KekError::Exists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(load_file(&path), Err(KekError::TooOpen(..))));
        }

        let missing = dir.path().join("missing");
        let e = load_file(&missing).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");

        let bad = dir.path().join("bad");
        generate_file(&bad).unwrap();
        fs::write(&bad, "not hex at all").unwrap();
        let e = load_file(&bad).unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
        assert!(!e.to_string().contains("not hex"), "{e}");
        fs::write(&bad, "ab".repeat(31)).unwrap();
        assert!(matches!(load_file(&bad), Err(KekError::Malformed(_))));
    }
}
