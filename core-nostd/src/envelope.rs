//! Key-wrap envelopes: a 32-byte secret sealed under a key-encryption key (KEK) as a
//! one-chunk chunked-encryption message, with the envelope's fields and the caller's
//! context (tenant, repository) bound as the context.
//!
//! ```text
//! offset  len  field
//!      0    8  magic "COFFER/K"
//!      8    1  format version (1)
//!      9    1  suite
//!     10    1  purpose (1 repository key, 2 profile key, 3 master key)
//!     11    1  reserved, zero
//!     12    4  key version, big-endian
//!     16   16  KEK ID
//!     32   16  wrapped key's ID
//!     48   24  salt             ┐ chunked-encryption message of one final chunk,
//!     72   32  commitment       │ context = header(48) ‖ caller context
//!    104   32  wrapped key      │
//!    136   16  tag              ┘
//! ```
//! 152 bytes in all. Rotating a KEK rewraps envelopes ([`rewrap_key`]): the wrapped
//! key, its ID and version stay, so everything sealed under it stays readable.

use core::fmt;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;

use crate::chunked::{self, PREAMBLE_LEN};
use crate::header::{check_reserved, field, put, read_prefix, write_prefix};
use crate::provider::{CryptoProvider, Suite, TAG_LEN};
use crate::secret::{KeyId, SecretKey, KEY_LEN};
use crate::Error;

/// Magic of a key-wrap envelope.
pub const KEY_ENVELOPE_MAGIC: &[u8; 8] = b"COFFER/K";
/// Length of a key-wrap envelope's header.
pub const KEY_ENVELOPE_HEADER_LEN: usize = 48;
/// Length of the sealed part of every envelope: preamble, wrapped key, tag.
pub const SEALED_SECRET_LEN: usize = PREAMBLE_LEN + KEY_LEN + TAG_LEN;
/// Length of a key-wrap envelope.
pub const KEY_ENVELOPE_LEN: usize = KEY_ENVELOPE_HEADER_LEN + SEALED_SECRET_LEN;

/// What a wrapped key is for. Opening checks it, so a key wrapped for one use cannot be
/// passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// A repository's secret, from which its streams' keys come. Byte 1.
    RepositoryKey,
    /// A profile's master key. Byte 2.
    ProfileKey,
    /// A user's master key, in a recovery kit. Byte 3.
    MasterKey,
}

impl Purpose {
    /// The purpose's byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Purpose::RepositoryKey => 1,
            Purpose::ProfileKey => 2,
            Purpose::MasterKey => 3,
        }
    }

    /// Reads a purpose byte.
    ///
    /// # Errors
    /// [`Error::UnsupportedPurpose`] for unknown bytes.
    pub fn from_byte(byte: u8) -> Result<Self, Error> {
        match byte {
            1 => Ok(Purpose::RepositoryKey),
            2 => Ok(Purpose::ProfileKey),
            3 => Ok(Purpose::MasterKey),
            purpose => Err(Error::UnsupportedPurpose { purpose }),
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::RepositoryKey => "repository",
            Purpose::ProfileKey => "profile",
            Purpose::MasterKey => "master",
        })
    }
}

/// The fields of a key-wrap envelope's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEnvelope {
    /// The AEAD sealing the key.
    pub suite: Suite,
    /// What the key is for.
    pub purpose: Purpose,
    /// The wrapped key's version, chosen by the caller (rotation of the key itself).
    pub key_version: u32,
    /// ID of the KEK that opens the envelope.
    pub kek_id: KeyId,
    /// ID of the wrapped key.
    pub key_id: KeyId,
}

impl KeyEnvelope {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; KEY_ENVELOPE_HEADER_LEN] {
        let mut out = [0u8; KEY_ENVELOPE_HEADER_LEN];
        write_prefix(&mut out, KEY_ENVELOPE_MAGIC, self.suite);
        put(&mut out, 10, &[self.purpose.to_byte()]);
        put(&mut out, 12, &self.key_version.to_be_bytes());
        put(&mut out, 16, self.kek_id.as_bytes());
        put(&mut out, 32, self.key_id.as_bytes());
        out
    }

    /// Parses a whole envelope's header, without opening it: enough to pick the KEK by
    /// ID. Nothing here is authentic until [`unwrap_key`] succeeds.
    ///
    /// # Errors
    /// [`Error::Truncated`] / [`Error::TrailingData`] unless `envelope` is exactly
    /// [`KEY_ENVELOPE_LEN`] bytes; [`Error::BadMagic`]; [`Error::UnsupportedVersion`];
    /// [`Error::UnsupportedSuite`]; [`Error::UnsupportedPurpose`];
    /// [`Error::ReservedBitsSet`].
    pub fn decode(envelope: &[u8]) -> Result<Self, Error> {
        let suite = read_prefix(envelope, KEY_ENVELOPE_MAGIC)?;
        check_length(envelope, KEY_ENVELOPE_LEN)?;
        let purpose = Purpose::from_byte(field::<1>(envelope, 10)?[0])?;
        check_reserved(&field::<1>(envelope, 11)?)?;
        Ok(KeyEnvelope {
            suite,
            purpose,
            key_version: u32::from_be_bytes(field(envelope, 12)?),
            kek_id: KeyId(field(envelope, 16)?),
            key_id: KeyId(field(envelope, 32)?),
        })
    }
}

/// Wraps `key` under `kek`.
///
/// # Errors
/// [`Error::Provider`].
#[allow(clippy::too_many_arguments)]
pub fn wrap_key<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    kek: &SecretKey,
    key: &SecretKey,
    purpose: Purpose,
    key_version: u32,
    context: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<[u8; KEY_ENVELOPE_LEN], Error> {
    let header = KeyEnvelope {
        suite,
        purpose,
        key_version,
        kek_id: kek.id(),
        key_id: key.id(),
    }
    .encode();
    let mut out = [0u8; KEY_ENVELOPE_LEN];
    put(&mut out, 0, &header);
    let sealed = out.get_mut(KEY_ENVELOPE_HEADER_LEN..).unwrap_or_default();
    seal_secret(provider, suite, kek, &header, context, key, rng, sealed)?;
    Ok(out)
}

/// Opens an envelope with `kek`, checking that it wraps a key for `purpose`.
///
/// # Errors
/// As [`KeyEnvelope::decode`]; [`Error::WrongKey`] if `kek` is not the KEK the envelope
/// names; [`Error::CommitmentMismatch`] for a wrong context or an altered header;
/// [`Error::CorruptedChunk`]; [`Error::KeyIdMismatch`]; [`Error::WrongPurpose`].
pub fn unwrap_key<P: CryptoProvider>(
    provider: &P,
    kek: &SecretKey,
    envelope: &[u8],
    purpose: Purpose,
    context: &[u8],
) -> Result<(SecretKey, KeyEnvelope), Error> {
    let info = KeyEnvelope::decode(envelope)?;
    if !bool::from(info.kek_id.ct_eq(&kek.id())) {
        return Err(Error::WrongKey {
            expected: info.kek_id,
        });
    }
    let (header, sealed) = envelope.split_at(KEY_ENVELOPE_HEADER_LEN);
    let key = open_secret(
        provider,
        info.suite,
        kek,
        header,
        context,
        sealed,
        &info.key_id,
    )?;
    check_purpose(info.purpose, purpose)?;
    Ok((key, info))
}

/// Rewraps an envelope under a new KEK: same key, key ID, version and purpose, fresh
/// salt. The old envelope is checked in full first.
///
/// # Errors
/// As [`unwrap_key`] and [`wrap_key`].
#[allow(clippy::too_many_arguments)]
pub fn rewrap_key<P: CryptoProvider>(
    provider: &P,
    old_kek: &SecretKey,
    new_kek: &SecretKey,
    envelope: &[u8],
    purpose: Purpose,
    context: &[u8],
    new_suite: Suite,
    rng: &mut impl CryptoRngCore,
) -> Result<[u8; KEY_ENVELOPE_LEN], Error> {
    let (key, info) = unwrap_key(provider, old_kek, envelope, purpose, context)?;
    wrap_key(
        provider,
        new_suite,
        new_kek,
        &key,
        info.purpose,
        info.key_version,
        context,
        rng,
    )
}

pub(crate) fn check_purpose(found: Purpose, expected: Purpose) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::WrongPurpose { expected, found })
    }
}

pub(crate) fn check_length(bytes: &[u8], len: usize) -> Result<(), Error> {
    match bytes.len() {
        n if n < len => Err(Error::Truncated),
        n if n > len => Err(Error::TrailingData),
        _ => Ok(()),
    }
}

/// Seals `secret` under `kek` into `out` ([`SEALED_SECRET_LEN`] bytes), context
/// `header ‖ context`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_secret<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    kek: &SecretKey,
    header: &[u8],
    context: &[u8],
    secret: &SecretKey,
    rng: &mut impl CryptoRngCore,
    out: &mut [u8],
) -> Result<(), Error> {
    let body = out
        .get_mut(PREAMBLE_LEN..PREAMBLE_LEN + KEY_LEN)
        .ok_or(Error::Provider)?;
    body.copy_from_slice(secret.expose_secret());
    let (preamble, tag) = chunked::seal_short(provider, suite, kek, &[header, context], rng, body)?;
    put(out, 0, &preamble);
    put(out, PREAMBLE_LEN + KEY_LEN, &tag);
    Ok(())
}

/// Opens a sealed secret and checks it against the key ID the header states.
pub(crate) fn open_secret<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    kek: &SecretKey,
    header: &[u8],
    context: &[u8],
    sealed: &[u8],
    key_id: &KeyId,
) -> Result<SecretKey, Error> {
    let mut key = SecretKey::from_bytes([0; KEY_LEN]);
    chunked::open_short(
        provider,
        suite,
        kek,
        &[header, context],
        sealed,
        key.bytes_mut(),
    )?;
    if !bool::from(key.id().ct_eq(key_id)) {
        return Err(Error::KeyIdMismatch);
    }
    Ok(key)
}
