//! Where `coffer server` finds its server and token: `--url`, then $COFFER_SERVER_URL,
//! then the config file; the token from `--token-file`, then $COFFER_SERVER_TOKEN, then
//! the config file. Never from the command line, where other users and shell
//! histories see it.
//!
//! The config file is `key = value` lines (`url`, `token`; values may be quoted, `#`
//! starts a comment), so a TOML file of those two keys reads too. A file holding a
//! token must be readable by its owner alone: one that the group or others may read
//! is refused, as ssh refuses a private key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::args::Connection;
use crate::exit::{CliError, Result};
use crate::secrets::read_secret_file;

/// The environment variable the server's URL may come from.
pub(crate) const URL_ENV: &str = "COFFER_SERVER_URL";
/// The environment variable the token may come from.
pub(crate) const TOKEN_ENV: &str = "COFFER_SERVER_TOKEN";

/// A server and the token to show it.
pub(crate) struct Target {
    /// Its base URL.
    pub(crate) url: String,
    /// The bearer token, wiped on drop.
    pub(crate) token: Zeroizing<String>,
}

/// The server and token `connection` and the environment name.
///
/// # Errors
/// [`CliError::Usage`] if no URL or no token is found, or a token file is readable by
/// others; file errors.
pub(crate) fn resolve(connection: &Connection) -> Result<Target> {
    let file = match config_path(connection.config.as_deref())? {
        Some(path) if path.exists() || connection.config.is_some() => {
            Some((read_config(&path)?, path))
        }
        _ => None,
    };
    let url = connection
        .url
        .clone()
        .or_else(|| std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()))
        .or_else(|| file.as_ref().and_then(|(f, _)| f.url.clone()))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no server URL: give --url, set {URL_ENV}, or run `coffer server login`"
            ))
        })?;
    let token = if let Some(path) = &connection.token_file {
        check_private(path)?;
        let bytes = read_secret_file(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| CliError::Usage(format!("{}: the token is not UTF-8", path.display())))?;
        Zeroizing::new(text.trim().to_owned())
    } else if let Some(value) = std::env::var_os(TOKEN_ENV).filter(|v| !v.is_empty()) {
        Zeroizing::new(
            value
                .into_string()
                .map_err(|_| CliError::Usage(format!("{TOKEN_ENV}: the token is not UTF-8")))?,
        )
    } else if let Some((ConfigFile { token: Some(t), .. }, _)) = file {
        t
    } else {
        return Err(CliError::Usage(format!(
            "no token: set {TOKEN_ENV}, give --token-file, or run `coffer server login`"
        )));
    };
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError::Usage(
            "the token is empty or has spaces or control characters in it".into(),
        ));
    }
    Ok(Target { url, token })
}

/// `--config`, else `$XDG_CONFIG_HOME/coffer/server.toml` (`~/.config/...`); `None`
/// when there is no home to put it in.
///
/// # Errors
/// None today; kept fallible for callers that need a path.
pub(crate) fn config_path(given: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(p) = given {
        return Ok(Some(p.to_owned()));
    }
    Ok(std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("coffer/server.toml")))
}

/// Writes `url` and `token` to `path` (mode 0600, its folder created 0700), replacing
/// the file whole (a temporary file renamed over it).
///
/// # Errors
/// File errors.
pub(crate) fn write_config(path: &Path, url: &str, token: &str) -> Result<()> {
    let what = || format!("writing {}", path.display());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::io(what(), e))?;
    }
    let text = Zeroizing::new(format!(
        "# coffer server: written by `coffer server login`\nurl = {}\ntoken = {}\n",
        quote(url),
        quote(token)
    ));
    let tmp = crate::output::with_suffix(path, ".tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CliError::io(what(), e))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(CliError::io(what(), e));
    }
    Ok(())
}

/// What a config file holds.
struct ConfigFile {
    url: Option<String>,
    token: Option<Zeroizing<String>>,
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let bytes = read_secret_file(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::Usage(format!("{}: not UTF-8", path.display())))?;
    let mut file = ConfigFile {
        url: None,
        token: None,
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            // The line may hold the token: never echo it.
            return Err(CliError::Usage(format!(
                "{} line {}: not `key = value`",
                path.display(),
                n + 1
            )));
        };
        let value = unquote(value.trim());
        match key.trim() {
            "url" => file.url = Some(value.to_owned()),
            "token" => {
                check_private(path)?;
                file.token = Some(Zeroizing::new(value.to_owned()));
            }
            other => {
                return Err(CliError::Usage(format!(
                    "{} line {}: unknown key {other:?} (url, token)",
                    path.display(),
                    n + 1
                )))
            }
        }
    }
    Ok(file)
}

/// Refuses a file that anyone but its owner may read or write.
fn check_private(path: &Path) -> Result<()> {
    let meta =
        fs::metadata(path).map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::Usage(format!(
            "{} holds a token but is open to others (mode {mode:04o}): run chmod 600 on it",
            path.display()
        )));
    }
    Ok(())
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_open_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/server.toml");
        write_config(&path, "http://127.0.0.1:1", "cfo_secret").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let file = read_config(&path).unwrap();
        assert_eq!(file.url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(
            file.token.as_deref().map(String::as_str),
            Some("cfo_secret")
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_config(&path).err().unwrap();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(!e.to_string().contains("cfo_secret"), "{e}");
    }
}
