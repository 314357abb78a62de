//! Passphrase envelopes: a 32-byte secret sealed under a KEK that Argon2id derives from
//! a passphrase, in memory the caller provides.
//!
//! ```text
//! offset  len  field
//!      0    8  magic "COFFER/P"
//!      8    1  format version (1)
//!      9    1  suite
//!     10    1  purpose
//!     11    1  reserved, zero
//!     12    4  key version, big-endian
//!     16    4  Argon2id memory in KiB, big-endian
//!     20    4  Argon2id passes, big-endian
//!     24    4  Argon2id lanes, big-endian
//!     28    4  reserved, zero
//!     32   16  Argon2id salt
//!     48   16  wrapped key's ID
//!     64   24  salt             ┐ chunked-encryption message of one final chunk under
//!     88   32  commitment       │ KEK = Argon2id(passphrase, Argon2 salt, params, 32),
//!    120   32  wrapped key      │ context = header(64) ‖ caller context
//!    152   16  tag              ┘
//! ```
//! 168 bytes in all. The parameters are checked against [`Argon2Params::MIN`] and
//! [`Argon2Params::MAX`] before any work, so a hostile envelope cannot make a reader
//! use gigabytes of memory or spin for hours.

use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::CryptoRngCore;
use zeroize::Zeroize;

pub use argon2::Block as Argon2Block;

use crate::envelope::{check_length, check_purpose, open_secret, seal_secret, Purpose};
use crate::header::{check_reserved, field, put, read_prefix, write_prefix};
use crate::provider::{CryptoProvider, Suite};
use crate::secret::{KeyId, SecretKey, KEY_LEN};
use crate::Error;

/// Magic of a passphrase envelope.
pub const PASSPHRASE_ENVELOPE_MAGIC: &[u8; 8] = b"COFFER/P";
/// Length of a passphrase envelope's header.
pub const PASSPHRASE_HEADER_LEN: usize = 64;
/// Length of a passphrase envelope.
pub const PASSPHRASE_ENVELOPE_LEN: usize =
    PASSPHRASE_HEADER_LEN + crate::envelope::SEALED_SECRET_LEN;
/// Length of the Argon2id salt.
pub const ARGON2_SALT_LEN: usize = 16;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB (= Argon2 blocks the caller must provide).
    pub memory_kib: u32,
    /// Passes over memory.
    pub passes: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
}

impl Argon2Params {
    /// The weakest parameters a reader accepts: 8 MiB, 1 pass, 1 lane.
    pub const MIN: Argon2Params = Argon2Params {
        memory_kib: 8 * 1024,
        passes: 1,
        lanes: 1,
    };
    /// The costliest parameters a reader accepts: 1 GiB, 16 passes, 4 lanes.
    pub const MAX: Argon2Params = Argon2Params {
        memory_kib: 1024 * 1024,
        passes: 16,
        lanes: 4,
    };
    /// What Coffer writes unless told otherwise: 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: Argon2Params = Argon2Params {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };

    /// Checks every parameter against [`Argon2Params::MIN`] and [`Argon2Params::MAX`].
    ///
    /// # Errors
    /// [`Error::ParameterOutOfBounds`] naming the first parameter out of bounds.
    pub fn check(&self) -> Result<(), Error> {
        bound(
            "argon2 memory KiB",
            self.memory_kib,
            Self::MIN.memory_kib,
            Self::MAX.memory_kib,
        )?;
        bound(
            "argon2 passes",
            self.passes,
            Self::MIN.passes,
            Self::MAX.passes,
        )?;
        bound("argon2 lanes", self.lanes, Self::MIN.lanes, Self::MAX.lanes)
    }

    /// Argon2 blocks (1 KiB each) the caller must provide for these parameters.
    pub fn blocks(&self) -> usize {
        self.memory_kib as usize
    }
}

fn bound(parameter: &'static str, value: u32, min: u32, max: u32) -> Result<(), Error> {
    if value < min || value > max {
        return Err(Error::ParameterOutOfBounds {
            parameter,
            value: value.into(),
            min: min.into(),
            max: max.into(),
        });
    }
    Ok(())
}

/// The fields of a passphrase envelope's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassphraseEnvelope {
    /// The AEAD sealing the key.
    pub suite: Suite,
    /// What the key is for.
    pub purpose: Purpose,
    /// The wrapped key's version.
    pub key_version: u32,
    /// Argon2id parameters.
    pub params: Argon2Params,
    /// Argon2id salt.
    pub argon2_salt: [u8; ARGON2_SALT_LEN],
    /// ID of the wrapped key.
    pub key_id: KeyId,
}

impl PassphraseEnvelope {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; PASSPHRASE_HEADER_LEN] {
        let mut out = [0u8; PASSPHRASE_HEADER_LEN];
        write_prefix(&mut out, PASSPHRASE_ENVELOPE_MAGIC, self.suite);
        put(&mut out, 10, &[self.purpose.to_byte()]);
        put(&mut out, 12, &self.key_version.to_be_bytes());
        put(&mut out, 16, &self.params.memory_kib.to_be_bytes());
        put(&mut out, 20, &self.params.passes.to_be_bytes());
        put(&mut out, 24, &self.params.lanes.to_be_bytes());
        put(&mut out, 32, &self.argon2_salt);
        put(&mut out, 48, self.key_id.as_bytes());
        out
    }

    /// Parses a whole envelope's header and checks the Argon2id bounds, without
    /// running Argon2id. Nothing here is authentic until [`unwrap_with_passphrase`]
    /// succeeds.
    ///
    /// # Errors
    /// [`Error::Truncated`] / [`Error::TrailingData`] unless `envelope` is exactly
    /// [`PASSPHRASE_ENVELOPE_LEN`] bytes; [`Error::BadMagic`];
    /// [`Error::UnsupportedVersion`]; [`Error::UnsupportedSuite`];
    /// [`Error::UnsupportedPurpose`]; [`Error::ReservedBitsSet`];
    /// [`Error::ParameterOutOfBounds`].
    pub fn decode(envelope: &[u8]) -> Result<Self, Error> {
        let suite = read_prefix(envelope, PASSPHRASE_ENVELOPE_MAGIC)?;
        check_length(envelope, PASSPHRASE_ENVELOPE_LEN)?;
        let purpose = Purpose::from_byte(field::<1>(envelope, 10)?[0])?;
        check_reserved(&field::<1>(envelope, 11)?)?;
        check_reserved(&field::<4>(envelope, 28)?)?;
        let params = Argon2Params {
            memory_kib: u32::from_be_bytes(field(envelope, 16)?),
            passes: u32::from_be_bytes(field(envelope, 20)?),
            lanes: u32::from_be_bytes(field(envelope, 24)?),
        };
        params.check()?;
        Ok(PassphraseEnvelope {
            suite,
            purpose,
            key_version: u32::from_be_bytes(field(envelope, 12)?),
            params,
            argon2_salt: field(envelope, 32)?,
            key_id: KeyId(field(envelope, 48)?),
        })
    }
}

/// Wraps `key` under a passphrase. `memory` must hold at least `params.blocks()` blocks.
///
/// # Errors
/// [`Error::ParameterOutOfBounds`] for parameters a reader would refuse;
/// [`Error::BufferTooSmall`] if `memory` is too small; [`Error::Provider`].
#[allow(clippy::too_many_arguments)]
pub fn wrap_with_passphrase<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    passphrase: &[u8],
    key: &SecretKey,
    purpose: Purpose,
    key_version: u32,
    params: Argon2Params,
    context: &[u8],
    rng: &mut impl CryptoRngCore,
    memory: &mut [Argon2Block],
) -> Result<[u8; PASSPHRASE_ENVELOPE_LEN], Error> {
    params.check()?;
    let mut argon2_salt = [0u8; ARGON2_SALT_LEN];
    rng.fill_bytes(&mut argon2_salt);
    let info = PassphraseEnvelope {
        suite,
        purpose,
        key_version,
        params,
        argon2_salt,
        key_id: key.id(),
    };
    let header = info.encode();
    let kek = derive_kek(passphrase, &params, &argon2_salt, memory)?;
    let mut out = [0u8; PASSPHRASE_ENVELOPE_LEN];
    put(&mut out, 0, &header);
    let sealed = out.get_mut(PASSPHRASE_HEADER_LEN..).unwrap_or_default();
    seal_secret(provider, suite, &kek, &header, context, key, rng, sealed)?;
    Ok(out)
}

/// Opens a passphrase envelope, checking that it wraps a key for `purpose`. `memory`
/// must hold at least the envelope's `params.blocks()` blocks (see
/// [`PassphraseEnvelope::decode`] to learn them first).
///
/// # Errors
/// As [`PassphraseEnvelope::decode`]; [`Error::BufferTooSmall`];
/// [`Error::WrongPassphrase`] (also for a wrong context or an altered header);
/// [`Error::CorruptedChunk`]; [`Error::KeyIdMismatch`]; [`Error::WrongPurpose`].
pub fn unwrap_with_passphrase<P: CryptoProvider>(
    provider: &P,
    passphrase: &[u8],
    envelope: &[u8],
    purpose: Purpose,
    context: &[u8],
    memory: &mut [Argon2Block],
) -> Result<(SecretKey, PassphraseEnvelope), Error> {
    let info = PassphraseEnvelope::decode(envelope)?;
    let kek = derive_kek(passphrase, &info.params, &info.argon2_salt, memory)?;
    let (header, sealed) = envelope.split_at(PASSPHRASE_HEADER_LEN);
    let key = open_secret(
        provider,
        info.suite,
        &kek,
        header,
        context,
        sealed,
        &info.key_id,
    )
    .map_err(|e| match e {
        Error::CommitmentMismatch => Error::WrongPassphrase,
        other => other,
    })?;
    check_purpose(info.purpose, purpose)?;
    Ok((key, info))
}

/// KEK = Argon2id(passphrase, salt, params, 32 bytes), no secret, no associated data.
fn derive_kek(
    passphrase: &[u8],
    params: &Argon2Params,
    salt: &[u8; ARGON2_SALT_LEN],
    memory: &mut [Argon2Block],
) -> Result<SecretKey, Error> {
    let needed = params.blocks();
    let provided = memory.len();
    let memory = memory
        .get_mut(..needed)
        .ok_or(Error::BufferTooSmall { needed, provided })?;
    let argon_params = Params::new(
        params.memory_kib,
        params.passes,
        params.lanes,
        Some(KEY_LEN),
    )
    .map_err(|_| Error::ParameterOutOfBounds {
        parameter: "argon2 parameters",
        value: params.memory_kib.into(),
        min: Argon2Params::MIN.memory_kib.into(),
        max: Argon2Params::MAX.memory_kib.into(),
    })?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut kek = [0u8; KEY_LEN];
    let result = argon2.hash_password_into_with_memory(passphrase, salt, &mut kek, &mut *memory);
    // The memory holds passphrase-derived state: wipe it for the caller.
    memory.iter_mut().for_each(Zeroize::zeroize);
    if result.is_err() {
        kek.zeroize();
        return Err(Error::Provider);
    }
    let key = SecretKey::from_bytes(kek);
    kek.zeroize();
    Ok(key)
}
