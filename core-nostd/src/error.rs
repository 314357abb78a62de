//! The core's one error type.

use core::fmt;

use crate::envelope::Purpose;
use crate::secret::KeyId;

/// Everything that can go wrong in the core, each variant something a user or caller
/// can act on.
///
/// Authentication failures say where (which chunk) and nothing else. Caller mistakes
/// ([`Error::BufferTooSmall`], [`Error::InvalidKeyLength`], [`Error::BatchMisuse`]) are
/// distinct from hostile or damaged input. Limits carry their numbers. No variant ever
/// holds key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The object was sealed for another key; `expected` is the key ID it names.
    WrongKey {
        /// The key ID written in the object's header.
        expected: KeyId,
    },
    /// The passphrase does not open this envelope.
    WrongPassphrase,
    /// The key commitment did not match: the key is wrong, or the context, the header,
    /// the salt or the commitment differ from what was sealed. No chunk was opened.
    CommitmentMismatch,
    /// Chunk `index` (counting from 0) failed authentication: it was corrupted,
    /// reordered, or comes from another stream. Its plaintext was not released.
    CorruptedChunk {
        /// Index of the chunk that failed.
        index: u64,
    },
    /// The input ended early: inside the header, inside a chunk, or before the short
    /// final chunk that every message ends with.
    Truncated,
    /// There are bytes after the end of a fixed-size object (an envelope). In a stream
    /// the end of the input decides which chunk is final, so bytes after a stream's
    /// final chunk make that chunk fail as [`Error::CorruptedChunk`] instead.
    TrailingData,
    /// The input does not start with the Coffer magic for this kind of object.
    BadMagic,
    /// The format version is not one this build reads.
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The suite byte names no suite this build knows.
    UnsupportedSuite {
        /// The suite byte found.
        suite: u8,
    },
    /// The purpose byte of an envelope names no known purpose.
    UnsupportedPurpose {
        /// The purpose byte found.
        purpose: u8,
    },
    /// Reserved bytes of a header are not zero.
    ReservedBitsSet,
    /// An authentic envelope's wrapped key does not have the key ID its header states.
    KeyIdMismatch,
    /// The envelope is valid but wraps a key for another purpose.
    WrongPurpose {
        /// The purpose the caller asked for.
        expected: Purpose,
        /// The purpose the envelope states.
        found: Purpose,
    },
    /// A parameter lies outside the bounds this build accepts.
    ParameterOutOfBounds {
        /// Which parameter.
        parameter: &'static str,
        /// Its value.
        value: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A key was given with the wrong length (keys are 32 bytes).
    InvalidKeyLength {
        /// The length given.
        len: usize,
    },
    /// The caller's buffer is too small for the operation.
    BufferTooSmall {
        /// Bytes (or Argon2 blocks) needed.
        needed: usize,
        /// Bytes (or Argon2 blocks) provided.
        provided: usize,
    },
    /// The message would exceed the scheme's limit of 2^38 chunks.
    StreamTooLong,
    /// A batch sealer or opener ([`crate::chunked::batch`]) was used out of turn: a
    /// batch asked for after the final one, or a share handed to the sealer or opener
    /// of another stream or direction. Always the caller's mistake, never the input's;
    /// `what` says which.
    BatchMisuse {
        /// What the caller did.
        what: &'static str,
    },
    /// The underlying reader or writer failed.
    Io(embedded_io::ErrorKind),
    /// The crypto provider failed on an operation that cannot fail on valid input.
    Provider,
    /// A postcard record (a manifest entry) does not decode: `record` names which kind.
    MalformedRecord {
        /// The record type.
        record: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongKey { expected } => {
                write!(f, "wrong key: this object is sealed for key {expected}")
            }
            Error::WrongPassphrase => f.write_str("wrong passphrase"),
            Error::CommitmentMismatch => f.write_str(
                "key commitment mismatch: wrong key or context, or the header was altered",
            ),
            Error::CorruptedChunk { index } => {
                write!(f, "chunk {index} is corrupted (authentication failed)")
            }
            Error::Truncated => f.write_str("truncated: the input ended before the final chunk"),
            Error::TrailingData => f.write_str("trailing data after the end of the object"),
            Error::BadMagic => f.write_str("not a Coffer object (bad magic)"),
            Error::UnsupportedVersion { version } => {
                write!(f, "unsupported format version {version}")
            }
            Error::UnsupportedSuite { suite } => write!(f, "unsupported suite {suite}"),
            Error::UnsupportedPurpose { purpose } => {
                write!(f, "unsupported envelope purpose {purpose}")
            }
            Error::ReservedBitsSet => f.write_str("reserved header bytes are not zero"),
            Error::KeyIdMismatch => {
                f.write_str("the wrapped key does not match the key ID in the envelope")
            }
            Error::WrongPurpose { expected, found } => {
                write!(f, "envelope wraps a {found} key, expected a {expected} key")
            }
            Error::ParameterOutOfBounds {
                parameter,
                value,
                min,
                max,
            } => write!(
                f,
                "parameter {parameter} = {value} is out of bounds ({min}..={max})"
            ),
            Error::InvalidKeyLength { len } => {
                write!(f, "invalid key length {len} (keys are 32 bytes)")
            }
            Error::BufferTooSmall { needed, provided } => {
                write!(f, "buffer too small: {needed} needed, {provided} provided")
            }
            Error::StreamTooLong => f.write_str("stream exceeds 2^38 chunks"),
            Error::BatchMisuse { what } => write!(f, "batch API misuse: {what}"),
            Error::Io(kind) => write!(f, "I/O error: {kind:?}"),
            Error::Provider => f.write_str("crypto provider failure"),
            Error::MalformedRecord { record } => write!(f, "malformed {record} record"),
        }
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Error::Io(kind) => *kind,
            Error::BufferTooSmall { .. }
            | Error::InvalidKeyLength { .. }
            | Error::BatchMisuse { .. } => embedded_io::ErrorKind::InvalidInput,
            _ => embedded_io::ErrorKind::InvalidData,
        }
    }
}

impl Error {
    /// Wraps an I/O error of a reader or writer.
    pub(crate) fn io<E: embedded_io::Error>(e: E) -> Self {
        Error::Io(e.kind())
    }
}
