//! Key files, recovery kits and the envelopes the CLI writes (formats: `cli/README.md`).
//!
//! A key file holds one 32-byte key as text, with its key ID in a comment line:
//!
//! ```text
//! # Coffer key file. Anyone who has it can open what it seals: keep it private.
//! # key id: 5d0c...(32 hex digits)
//! coffer-key-v1:(64 lowercase hex digits)
//! ```
//!
//! A recovery kit is the same key for paper: base32 (RFC 4648, no padding) of the key
//! followed by a 3-byte checksum, `SHA-256("coffer recovery kit v1\0" ‖ key)[..3]`,
//! 56 characters printed in groups of four.

use std::fs;
use std::io::Write;
use std::path::Path;

use coffer_core::envelope::{self, Purpose, KEY_ENVELOPE_MAGIC};
use coffer_core::passphrase::{
    self, Argon2Block, Argon2Params, PassphraseEnvelope, PASSPHRASE_ENVELOPE_MAGIC,
};
use coffer_core::secret::KEY_LEN;
use coffer_core::{SecretKey, Suite};

use zeroize::Zeroizing;

use crate::exit::{CliError, Result};
use crate::secrets::read_secret_file;

/// The context every envelope the CLI writes is bound to.
pub(crate) const ENVELOPE_CONTEXT: &[u8] = b"coffer/cli";

const KEY_FILE_TAG: &str = "coffer-key-v1:";

/// The text of a key file for `key`.
pub(crate) fn key_file_text(key: &SecretKey) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# Coffer key file. Anyone who has it can open what it seals: keep it private.\n\
         # key id: {}\n{KEY_FILE_TAG}{}\n",
        key.id(),
        Zeroizing::new(hex::encode(key.expose_secret())).as_str()
    ))
}

/// Parses a key file's text: comment (`#`) and blank lines aside, exactly one line
/// `coffer-key-v1:` followed by 64 hex digits.
///
/// # Errors
/// [`CliError::Corrupt`] naming what is wrong.
pub(crate) fn parse_key_file(text: &[u8]) -> Result<SecretKey> {
    let bad = |why: &str| CliError::Corrupt(format!("not a Coffer key file: {why}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8 text"))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or_else(|| bad("no key line"))?;
    if lines.next().is_some() {
        return Err(bad("more than one key line"));
    }
    let digits = line
        .strip_prefix(KEY_FILE_TAG)
        .ok_or_else(|| bad("the key line does not start with coffer-key-v1:"))?;
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(digits, &mut bytes[..])
        .map_err(|_| bad("the key is not 64 hex digits"))?;
    Ok(SecretKey::from_bytes(*bytes))
}

/// Reads a key file.
///
/// # Errors
/// File errors; as [`parse_key_file`], naming the file.
pub(crate) fn read_key_file(path: &Path) -> Result<SecretKey> {
    let bytes = read_secret_file(path)?;
    parse_key_file(&bytes).map_err(|e| e.context(path.display()))
}

/// Writes `contents` to `path` with mode 0600, refusing to replace anything there:
/// written to a temporary name in the same folder, synced, then linked into place.
///
/// # Errors
/// [`CliError::Exists`] if `path` exists; I/O errors.
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let what = || format!("writing {}", path.display());
    if fs::symlink_metadata(path).is_ok() {
        return Err(CliError::Exists(format!(
            "{} already exists; not overwriting it",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates its files with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffer-key-")
        .tempfile_in(dir)
        .map_err(|e| CliError::io(what(), e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| CliError::io(what(), e))?;
    tmp.persist_noclobber(path)
        .map_err(|e| CliError::io(what(), e.error))?;
    Ok(())
}

/// The recovery kit for `key`, as text to print or store (FORMAT.md §25).
pub(crate) fn recovery_kit(key: &SecretKey) -> Zeroizing<String> {
    coffer_adapters::kit::recovery_kit(key)
}

/// Parses a recovery kit typed back in (FORMAT.md §25).
///
/// # Errors
/// [`CliError::Corrupt`] naming what is wrong (a character outside the alphabet, the
/// wrong count, a checksum or key ID that does not match).
pub(crate) fn parse_recovery_kit(text: &[u8]) -> Result<SecretKey> {
    coffer_adapters::kit::parse_recovery_kit(text).map_err(|e| CliError::Corrupt(e.to_string()))
}

/// What a secret-bearing file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    /// A passphrase envelope (`COFFER/P`), alone or in front of a sealed file.
    PassphraseEnvelope,
    /// A key-wrap envelope (`COFFER/K`).
    KeyEnvelope,
    /// A sealed stream (`COFFER/S`).
    Stream,
    /// A key file.
    KeyFile,
    /// A recovery kit.
    RecoveryKit,
    /// None of these.
    Unknown,
}

/// Tells what `bytes` (the start of a file) are.
pub(crate) fn detect(bytes: &[u8]) -> Detected {
    if bytes.starts_with(PASSPHRASE_ENVELOPE_MAGIC) {
        Detected::PassphraseEnvelope
    } else if bytes.starts_with(KEY_ENVELOPE_MAGIC) {
        Detected::KeyEnvelope
    } else if bytes.starts_with(coffer_core::stream::STREAM_MAGIC) {
        Detected::Stream
    } else if contains(bytes, KEY_FILE_TAG.as_bytes()) {
        Detected::KeyFile
    } else if bytes
        .get(..coffer_adapters::kit::KIT_TITLE.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(coffer_adapters::kit::KIT_TITLE.as_bytes()))
    {
        Detected::RecoveryKit
    } else {
        Detected::Unknown
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Argon2id memory for `params`, zeroed; the core wipes it after use.
fn argon2_memory(params: &Argon2Params) -> Vec<Argon2Block> {
    vec![Argon2Block::default(); params.blocks()]
}

/// Wraps `key` under a passphrase (Argon2id with Coffer's default parameters).
///
/// # Errors
/// Core errors (none expected with valid parameters).
pub(crate) fn wrap_passphrase(
    key: &SecretKey,
    phrase: &str,
    purpose: Purpose,
    context: &[u8],
) -> Result<Vec<u8>> {
    let params = Argon2Params::DEFAULT;
    let envelope = passphrase::wrap_with_passphrase(
        &coffer_adapters::default_provider(),
        Suite::Aes256Gcm,
        phrase.as_bytes(),
        key,
        purpose,
        1,
        params,
        context,
        &mut rand_core::OsRng,
        &mut argon2_memory(&params),
    )?;
    Ok(envelope.to_vec())
}

/// Opens a passphrase envelope (the memory its bounded parameters ask for).
///
/// # Errors
/// [`CliError::WrongKey`] for a wrong passphrase; [`CliError::Corrupt`] for a damaged
/// envelope or one of another purpose.
pub(crate) fn unwrap_passphrase(
    envelope: &[u8],
    phrase: &str,
    purpose: Purpose,
    context: &[u8],
) -> Result<SecretKey> {
    let info = PassphraseEnvelope::decode(envelope)?;
    let (key, _) = passphrase::unwrap_with_passphrase(
        &coffer_adapters::default_provider(),
        phrase.as_bytes(),
        envelope,
        purpose,
        context,
        &mut argon2_memory(&info.params),
    )?;
    Ok(key)
}

/// Wraps `key` under the key-encryption key `kek`.
///
/// # Errors
/// Core errors (none expected).
pub(crate) fn wrap_kek(
    key: &SecretKey,
    kek: &SecretKey,
    purpose: Purpose,
    context: &[u8],
) -> Result<Vec<u8>> {
    let envelope = envelope::wrap_key(
        &coffer_adapters::default_provider(),
        Suite::Aes256Gcm,
        kek,
        key,
        purpose,
        1,
        context,
        &mut rand_core::OsRng,
    )?;
    Ok(envelope.to_vec())
}

/// Opens a key-wrap envelope with `kek`.
///
/// # Errors
/// [`CliError::WrongKey`] if `kek` is not the KEK it names; [`CliError::Corrupt`].
pub(crate) fn unwrap_kek(
    envelope: &[u8],
    kek: &SecretKey,
    purpose: Purpose,
    context: &[u8],
) -> Result<SecretKey> {
    let (key, _) = envelope::unwrap_key(
        &coffer_adapters::default_provider(),
        kek,
        envelope,
        purpose,
        context,
    )?;
    Ok(key)
}

/// The purpose an envelope's header states (unauthenticated until it is opened).
///
/// # Errors
/// [`CliError::Corrupt`] for bytes that are no envelope.
pub(crate) fn envelope_purpose(envelope: &[u8]) -> Result<Purpose> {
    match detect(envelope) {
        Detected::PassphraseEnvelope => Ok(PassphraseEnvelope::decode(envelope)?.purpose),
        Detected::KeyEnvelope => Ok(envelope::KeyEnvelope::decode(envelope)?.purpose),
        _ => Err(CliError::Corrupt("not a Coffer key envelope".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_show_the_id() {
        let key = SecretKey::from_bytes([0x5a; 32]);
        let text = key_file_text(&key);
        assert!(text.contains(&key.id().to_string()));
        assert_eq!(parse_key_file(text.as_bytes()).unwrap(), key);
        assert_eq!(detect(text.as_bytes()), Detected::KeyFile);
        for bad in [
            "",
            "# only a comment\n",
            "coffer-key-v1:00\n",
            "coffer-key-v2:5a5a\n",
        ] {
            assert!(parse_key_file(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let two = format!("{}{}", text.as_str(), text.as_str());
        assert!(parse_key_file(two.as_bytes()).is_err());
    }

    #[test]
    fn recovery_kits_round_trip_tolerate_case_and_confusables_and_catch_typos() {
        let key = SecretKey::from_bytes(core::array::from_fn(|i| i as u8 * 7));
        let kit = recovery_kit(&key);
        assert_eq!(detect(kit.as_bytes()), Detected::RecoveryKit);
        assert_eq!(parse_recovery_kit(kit.as_bytes()).unwrap(), key);
        // Typed back sloppily: lower case, dashes, a zero for an O, one line, no ID.
        let lines: Vec<&str> = kit.lines().collect();
        let typed = format!("{}\n{} {}", lines[0], lines[2], lines[3]);
        let sloppy = typed.to_lowercase().replace(' ', "-").replace('o', "0");
        let sloppy = sloppy.replacen("c0ffer-rec0very-kit-v1", "coffer recovery kit v1", 1);
        assert_eq!(parse_recovery_kit(sloppy.as_bytes()).unwrap(), key);
        // One changed character in the key lines fails the checksum.
        let third = lines[2];
        let changed = if third.starts_with('A') { "B" } else { "A" };
        let typo = kit.replacen(third, &format!("{changed}{}", &third[1..]), 1);
        let err = parse_recovery_kit(typo.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        // A missing group is named as a count.
        let short = kit.replacen(&third[..5], "", 1);
        let err = parse_recovery_kit(short.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("52 key characters"), "{err}");
    }

    #[test]
    fn envelopes_round_trip_and_wrong_secrets_are_wrong_key_errors() {
        let key = SecretKey::from_bytes([3; 32]);
        let kek = SecretKey::from_bytes([4; 32]);
        let wrapped = wrap_kek(&key, &kek, Purpose::MasterKey, ENVELOPE_CONTEXT).unwrap();
        assert_eq!(
            unwrap_kek(&wrapped, &kek, Purpose::MasterKey, ENVELOPE_CONTEXT).unwrap(),
            key
        );
        let other = SecretKey::from_bytes([5; 32]);
        assert!(matches!(
            unwrap_kek(&wrapped, &other, Purpose::MasterKey, ENVELOPE_CONTEXT),
            Err(CliError::WrongKey(_))
        ));
        let sealed =
            wrap_passphrase(&key, "correct horse", Purpose::MasterKey, ENVELOPE_CONTEXT).unwrap();
        assert_eq!(
            unwrap_passphrase(
                &sealed,
                "correct horse",
                Purpose::MasterKey,
                ENVELOPE_CONTEXT
            )
            .unwrap(),
            key
        );
        assert!(matches!(
            unwrap_passphrase(&sealed, "wrong horse", Purpose::MasterKey, ENVELOPE_CONTEXT),
            Err(CliError::WrongKey(_))
        ));
        assert_eq!(envelope_purpose(&sealed).unwrap(), Purpose::MasterKey);
    }
}
