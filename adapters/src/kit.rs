//! Recovery kits (FORMAT.md §25): a 32-byte key as text to print, keep apart and type
//! back in — base32 (RFC 4648, no padding) of the key and a 3-byte checksum,
//! `SHA-256("coffer recovery kit v1\0" ‖ key)[..3]`, 56 characters in groups of four.
//! The CLI exports keys as kits; the lite server gives its self-backup recovery key as
//! one.

use coffer_core::secret::KEY_LEN;
use coffer_core::{KeyId, SecretKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A kit's first line.
pub const KIT_TITLE: &str = "COFFER RECOVERY KIT v1";
const KIT_CHECKSUM_LABEL: &[u8] = b"coffer recovery kit v1\0";
const KIT_CHARS: usize = 56;

/// Why a kit does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recovery kit: {0}")]
pub struct KitError(pub String);

/// The recovery kit for `key`, as text to print or store.
pub fn recovery_kit(key: &SecretKey) -> Zeroizing<String> {
    let mut data = Zeroizing::new(Vec::with_capacity(KEY_LEN + 3));
    data.extend_from_slice(key.expose_secret());
    data.extend_from_slice(&kit_checksum(key.expose_secret()));
    let encoded = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&data));
    let groups: Vec<&str> = (0..KIT_CHARS / 4)
        .map(|i| &encoded[i * 4..i * 4 + 4])
        .collect();
    Zeroizing::new(format!(
        "{KIT_TITLE}\nKey ID: {}\n{}\n{}\n",
        key.id(),
        groups[..7].join(" "),
        groups[7..].join(" ")
    ))
}

fn kit_checksum(key: &[u8]) -> [u8; 3] {
    let digest = Sha256::new()
        .chain_update(KIT_CHECKSUM_LABEL)
        .chain_update(key)
        .finalize();
    [digest[0], digest[1], digest[2]]
}

/// Parses a recovery kit typed back in: the title line, an optional `Key ID:` line
/// (checked if present), then 56 base32 characters in any grouping. Case, spaces and
/// dashes do not matter; `0`, `1` and `8` are read as `O`, `I` and `B`.
///
/// # Errors
/// [`KitError`] naming what is wrong (a character outside the alphabet, the wrong
/// count, a checksum or key ID that does not match).
pub fn parse_recovery_kit(text: &[u8]) -> Result<SecretKey, KitError> {
    let bad = KitError;
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8 text".into()))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if !lines
        .next()
        .is_some_and(|l| l.eq_ignore_ascii_case(KIT_TITLE))
    {
        return Err(bad(format!("the first line is not {KIT_TITLE:?}")));
    }
    let mut expected_id = None;
    let mut chars = Zeroizing::new(String::new());
    for line in lines {
        if let Some(id) = line
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("key id:"))
            .map(|_| line[7..].trim())
        {
            let mut bytes = [0u8; 16];
            hex::decode_to_slice(id, &mut bytes)
                .map_err(|_| bad("the Key ID line is not 32 hex digits".into()))?;
            if expected_id.replace(KeyId(bytes)).is_some() {
                return Err(bad("more than one Key ID line".into()));
            }
            continue;
        }
        for c in line.chars() {
            match c.to_ascii_uppercase() {
                ' ' | '-' | '\t' => {}
                '0' => chars.push('O'),
                '1' => chars.push('I'),
                '8' => chars.push('B'),
                c @ ('A'..='Z' | '2'..='7') => chars.push(c),
                other => {
                    return Err(bad(format!(
                        "{other:?} is not a recovery-kit character (A-Z, 2-7)"
                    )))
                }
            }
        }
    }
    if chars.len() != KIT_CHARS {
        return Err(bad(format!(
            "{} key characters, expected {KIT_CHARS}",
            chars.len()
        )));
    }
    let data = Zeroizing::new(
        data_encoding::BASE32_NOPAD
            .decode(chars.as_bytes())
            .map_err(|_| bad("not valid base32".into()))?,
    );
    let (key_bytes, checksum) = data.split_at(KEY_LEN);
    if !bool::from(kit_checksum(key_bytes).ct_eq(checksum)) {
        return Err(bad(
            "the checksum does not match: a character is mistyped".into()
        ));
    }
    let key = SecretKey::try_from_slice(key_bytes).map_err(|e| bad(e.to_string()))?;
    if let Some(id) = expected_id {
        if id != key.id() {
            return Err(bad(format!(
                "the key's ID is {}, not the {id} the kit states",
                key.id()
            )));
        }
    }
    Ok(key)
}
