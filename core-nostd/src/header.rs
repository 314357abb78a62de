//! Codec helpers shared by the three Coffer headers (stream, key envelope, passphrase
//! envelope): each starts `magic(8) ‖ version(1) ‖ suite(1)` and has reserved bytes that
//! must be zero.

use crate::provider::Suite;
use crate::Error;

/// The one format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of every magic.
pub(crate) const MAGIC_LEN: usize = 8;

/// Checks magic, version and suite at the start of a header; returns the suite.
pub(crate) fn read_prefix(bytes: &[u8], magic: &[u8; MAGIC_LEN]) -> Result<Suite, Error> {
    let found = bytes.get(..MAGIC_LEN).ok_or(Error::Truncated)?;
    if found != magic {
        return Err(Error::BadMagic);
    }
    let version = *bytes.get(MAGIC_LEN).ok_or(Error::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { version });
    }
    Suite::from_byte(*bytes.get(MAGIC_LEN + 1).ok_or(Error::Truncated)?)
}

/// Writes `magic ‖ version ‖ suite` at the start of `out`.
pub(crate) fn write_prefix(out: &mut [u8], magic: &[u8; MAGIC_LEN], suite: Suite) {
    if let Some(m) = out.get_mut(..MAGIC_LEN) {
        m.copy_from_slice(magic);
    }
    if let Some(v) = out.get_mut(MAGIC_LEN) {
        *v = FORMAT_VERSION;
    }
    if let Some(s) = out.get_mut(MAGIC_LEN + 1) {
        *s = suite.to_byte();
    }
}

/// Fails unless every byte of `bytes` is zero.
pub(crate) fn check_reserved(bytes: &[u8]) -> Result<(), Error> {
    if bytes.iter().any(|&b| b != 0) {
        return Err(Error::ReservedBitsSet);
    }
    Ok(())
}

/// Copies a fixed-size field out of a header already checked to be long enough.
pub(crate) fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    out.copy_from_slice(
        bytes
            .get(at..at.saturating_add(N))
            .ok_or(Error::Truncated)?,
    );
    Ok(out)
}

/// Writes a field into a header buffer known to be long enough.
pub(crate) fn put(out: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = out.get_mut(at..at.saturating_add(value.len())) {
        dst.copy_from_slice(value);
    }
}
