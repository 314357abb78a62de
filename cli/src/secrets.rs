//! Where secrets come from: files, environment variables, or a prompt on the terminal;
//! never the command line, where other users and shell histories can read them.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::exit::{CliError, Result};

/// The environment variable a passphrase may come from.
pub(crate) const PASSPHRASE_ENV: &str = "COFFER_PASSPHRASE";
/// The environment variable a new passphrase (rewrap, export) may come from.
pub(crate) const NEW_PASSPHRASE_ENV: &str = "COFFER_NEW_PASSPHRASE";

/// The largest secret file read: key files and passphrases are tiny, so anything
/// bigger is the wrong file, and is not read into memory.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a small secret file (a key file, a passphrase file, a recovery kit) into
/// memory that is wiped on drop.
///
/// # Errors
/// [`CliError::NotFound`], [`CliError::Io`]; [`CliError::Usage`] for a file over 64 KiB.
pub(crate) fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let what = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).map_err(|e| CliError::io(what(), e))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io(what(), e))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(CliError::Usage(format!(
            "{} is larger than 64 KiB: not a key or passphrase file",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Which passphrase is wanted, for the prompt and the error messages.
#[derive(Clone, Copy)]
pub(crate) struct PassphraseSpec<'a> {
    /// A file given on the command line, if any.
    pub(crate) file: Option<&'a Path>,
    /// The environment variable to try next.
    pub(crate) env: &'static str,
    /// What the prompt asks for, e.g. "Passphrase for the repository".
    pub(crate) prompt: &'a str,
    /// Ask twice on a terminal (a new passphrase that nobody can check later).
    pub(crate) confirm: bool,
}

/// A passphrase from `--...-file`, then the environment variable, then a prompt on the
/// terminal. A file's one trailing newline is not part of it.
///
/// # Errors
/// [`CliError::Usage`] if none of the sources gives one, or it is empty, or the two
/// entries differ; file errors.
pub(crate) fn passphrase(spec: PassphraseSpec<'_>) -> Result<Zeroizing<String>> {
    let phrase = if let Some(path) = spec.file {
        let bytes = read_secret_file(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            CliError::Usage(format!("{}: the passphrase is not UTF-8", path.display()))
        })?;
        let text = text
            .strip_suffix('\n')
            .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
        Zeroizing::new(text.to_owned())
    } else if let Some(value) = std::env::var_os(spec.env) {
        let text = value
            .into_string()
            .map_err(|_| CliError::Usage(format!("{}: the passphrase is not UTF-8", spec.env)))?;
        Zeroizing::new(text)
    } else {
        let no_terminal = |_| {
            CliError::Usage(format!(
                "{} needed: give a file option, set {}, or run on a terminal",
                spec.prompt, spec.env
            ))
        };
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("{}: ", spec.prompt)).map_err(no_terminal)?,
        );
        if spec.confirm {
            let second = Zeroizing::new(
                rpassword::prompt_password(format!("{} (again): ", spec.prompt))
                    .map_err(no_terminal)?,
            );
            if !bool::from(subtle_eq(first.as_bytes(), second.as_bytes())) {
                return Err(CliError::Usage("the two passphrases differ".into()));
            }
        }
        first
    };
    if phrase.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: empty passphrase",
            spec.prompt
        )));
    }
    Ok(phrase)
}

/// Constant-time equality of two byte strings (their lengths are not secret).
fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return subtle::Choice::from(0);
    }
    a.ct_eq(b)
}
