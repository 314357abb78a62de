//! Writing results: lines for people, or one JSON document for scripts (`--json`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::exit::{CliError, Result};

/// Prints `value` as JSON if `json`, else `text` (if not empty), on stdout.
///
/// # Errors
/// [`CliError::Io`] if stdout is closed.
pub(crate) fn emit(json: bool, value: Value, text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let written = if json {
        writeln!(out, "{value}")
    } else if text.is_empty() {
        Ok(())
    } else {
        writeln!(out, "{text}")
    };
    written.map_err(|e| CliError::io("writing to stdout", e))
}

/// As [`emit`], but on stderr when stdout carries data (`-o -`), so a script's JSON
/// never lands inside the data stream.
///
/// # Errors
/// [`CliError::Io`] if the stream is closed.
pub(crate) fn emit_beside(json: bool, value: Value, stdout_is_data: bool) -> Result<()> {
    if !stdout_is_data {
        return emit(json, value, "");
    }
    if json {
        writeln!(std::io::stderr(), "{value}").map_err(|e| CliError::io("writing to stderr", e))?;
    }
    Ok(())
}

/// Whether a path argument means stdin or stdout.
pub(crate) fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A path shown to people and in JSON (lossy for non-UTF-8 names).
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
