//! Coffer sealed streams: a 32-byte header, then a chunked-encryption message whose
//! context starts with the header's bytes.
//!
//! ```text
//! offset  len  field
//!      0    8  magic "COFFER/S"
//!      8    1  format version (1)
//!      9    1  suite (1 = AES-256-GCM, 2 = ChaCha20-Poly1305)
//!     10    6  reserved, zero
//!     16   16  key ID of the input key
//!     32   24  salt              ┐ chunked-encryption message, context =
//!     56   32  commitment        │ header(32) ‖ caller context
//!     88    …  chunks            ┘
//! ```
//!
//! The key ID lets a reader pick its key without trying each; a different key is
//! reported as [`Error::WrongKey`] naming the ID the stream wants. Any change to a
//! header byte changes the context and so fails the commitment.

use embedded_io::{Read, Seek, SeekFrom};
use subtle::ConstantTimeEq;

use crate::chunked::batch::{BatchOpener, BatchSealer, OpenCursor, SealCursor};
use crate::chunked::hazmat::{self, ChunkKeys};
use crate::chunked::{stream_open_fill, RandomAccessOpener, Sealer, StreamOpener};
use crate::chunked::{OPEN_BUFFER_LEN, PREAMBLE_LEN};
use crate::header::{check_reserved, field, put, read_prefix, write_prefix};
use crate::provider::{CryptoProvider, Suite};
use crate::secret::{KeyId, SecretKey};
use crate::Error;
use rand_core::CryptoRngCore;

/// Magic of a sealed stream.
pub const STREAM_MAGIC: &[u8; 8] = b"COFFER/S";
/// Length of the stream header.
pub const STREAM_HEADER_LEN: usize = 32;
/// Bytes before the first chunk: header and preamble.
pub const STREAM_PREFIX_LEN: usize = STREAM_HEADER_LEN + PREAMBLE_LEN;

const KEY_ID_AT: usize = 16;

/// A stream being sealed, and the prefix to write before its chunks.
pub type SealStart<C, B> = (Sealer<C, B>, [u8; STREAM_PREFIX_LEN]);
/// An opened stream's header and its streaming opener.
pub type Opened<R, C, B> = (StreamHeader, StreamOpener<R, C, B>);
/// An opened stream's header and its random-access opener.
pub type OpenedAt<R, C, B> = (StreamHeader, RandomAccessOpener<R, C, B>);
/// A stream being sealed in batches: the sealer, its cursor, and the prefix to write
/// before the first batch.
pub type BatchSealStart<C> = (BatchSealer<C>, SealCursor, [u8; STREAM_PREFIX_LEN]);
/// An accepted stream's header, and the opener and cursor of its batches.
pub type BatchOpened<C> = (StreamHeader, BatchOpener<C>, OpenCursor);

/// A sealed stream's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// The chunk AEAD.
    pub suite: Suite,
    /// ID of the key the stream is sealed under.
    pub key_id: KeyId,
}

impl StreamHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; STREAM_HEADER_LEN] {
        let mut out = [0u8; STREAM_HEADER_LEN];
        write_prefix(&mut out, STREAM_MAGIC, self.suite);
        put(&mut out, KEY_ID_AT, self.key_id.as_bytes());
        out
    }

    /// Decodes a header from the start of `bytes` (trailing bytes are the stream's).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::UnsupportedSuite`], [`Error::ReservedBitsSet`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < STREAM_HEADER_LEN {
            // Check what is there first, so a stranger's file says "bad magic".
            read_prefix(bytes, STREAM_MAGIC)?;
            return Err(Error::Truncated);
        }
        let suite = read_prefix(bytes, STREAM_MAGIC)?;
        check_reserved(bytes.get(10..KEY_ID_AT).unwrap_or_default())?;
        Ok(StreamHeader {
            suite,
            key_id: KeyId(field(bytes, KEY_ID_AT)?),
        })
    }

    fn check_key(&self, key: &SecretKey) -> Result<(), Error> {
        if bool::from(self.key_id.ct_eq(&key.id())) {
            Ok(())
        } else {
            Err(Error::WrongKey {
                expected: self.key_id,
            })
        }
    }
}

/// Starts sealing a stream; write the returned prefix, then each chunk the sealer emits,
/// then [`crate::chunked::Sealed::ciphertext`]. `buf` needs
/// [`crate::chunked::SEAL_BUFFER_LEN`] bytes.
///
/// # Errors
/// [`Error::BufferTooSmall`]; [`Error::Provider`].
pub fn seal<P: CryptoProvider, B: AsMut<[u8]>>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    context: &[u8],
    rng: &mut impl CryptoRngCore,
    buf: B,
) -> Result<SealStart<P::Cipher, B>, Error> {
    let header = StreamHeader {
        suite,
        key_id: key.id(),
    }
    .encode();
    let (sealer, preamble) = Sealer::new(provider, suite, key, &[&header, context], rng, buf)?;
    let mut prefix = [0u8; STREAM_PREFIX_LEN];
    put(&mut prefix, 0, &header);
    put(&mut prefix, STREAM_HEADER_LEN, &preamble);
    Ok((sealer, prefix))
}

/// Starts sealing a stream in batches of chunks ([`crate::chunked::batch`]), to be
/// sealed on several threads: write the returned prefix, then each batch the cursor lays
/// out, up to and including the final one. The bytes are those [`seal`] writes for the
/// same salt.
///
/// # Errors
/// [`Error::Provider`].
pub fn seal_batches<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    context: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<BatchSealStart<P::Cipher>, Error> {
    let header = StreamHeader {
        suite,
        key_id: key.id(),
    }
    .encode();
    let (keys, preamble) = hazmat::begin(provider, suite, key, &[&header, context], rng)?;
    let (sealer, cursor) = BatchSealer::from_keys(keys, &preamble);
    let mut prefix = [0u8; STREAM_PREFIX_LEN];
    put(&mut prefix, 0, &header);
    put(&mut prefix, STREAM_HEADER_LEN, &preamble);
    Ok((sealer, cursor, prefix))
}

/// Opens a stream from `reader`: checks the header, the key ID and the commitment, and
/// returns a streaming opener for its chunks. `buf` needs [`OPEN_BUFFER_LEN`] bytes.
///
/// # Errors
/// Header errors as [`StreamHeader::decode`]; [`Error::WrongKey`];
/// [`Error::CommitmentMismatch`]; [`Error::Truncated`]; [`Error::Io`].
pub fn open<P: CryptoProvider, R: Read, B: AsMut<[u8]>>(
    provider: &P,
    key: &SecretKey,
    context: &[u8],
    mut reader: R,
    mut buf: B,
) -> Result<Opened<R, P::Cipher, B>, Error> {
    let provided = buf.as_mut().len();
    if provided < OPEN_BUFFER_LEN {
        return Err(Error::BufferTooSmall {
            needed: OPEN_BUFFER_LEN,
            provided,
        });
    }
    let mut prefix = [0u8; STREAM_PREFIX_LEN];
    let got = stream_open_fill(&mut reader, &mut prefix)?;
    let (header, keys, _) = accept_keys(
        provider,
        key,
        context,
        prefix.get(..got).unwrap_or_default(),
    )?;
    Ok((header, StreamOpener::from_keys(reader, keys, buf)))
}

/// Opens a stream that starts at offset `start` of `reader` and runs to its end, for
/// random access. `buf` needs [`OPEN_BUFFER_LEN`] bytes.
///
/// # Errors
/// As [`open`], and as [`RandomAccessOpener::new`].
pub fn open_random_access<P: CryptoProvider, R: Read + Seek, B: AsMut<[u8]>>(
    provider: &P,
    key: &SecretKey,
    context: &[u8],
    mut reader: R,
    start: u64,
    mut buf: B,
) -> Result<OpenedAt<R, P::Cipher, B>, Error> {
    let provided = buf.as_mut().len();
    if provided < OPEN_BUFFER_LEN {
        return Err(Error::BufferTooSmall {
            needed: OPEN_BUFFER_LEN,
            provided,
        });
    }
    let end = reader.seek(SeekFrom::End(0)).map_err(Error::io)?;
    reader.seek(SeekFrom::Start(start)).map_err(Error::io)?;
    let mut prefix = [0u8; STREAM_PREFIX_LEN];
    let got = stream_open_fill(&mut reader, &mut prefix)?;
    let (header, keys, _) = accept_keys(
        provider,
        key,
        context,
        prefix.get(..got).unwrap_or_default(),
    )?;
    let chunks_start = start.saturating_add(STREAM_PREFIX_LEN as u64);
    let opener = RandomAccessOpener::from_keys(reader, keys, buf, chunks_start, end)?;
    Ok((header, opener))
}

/// Header, key ID and commitment checks on the first [`STREAM_PREFIX_LEN`] bytes of a
/// stream (fewer is [`Error::Truncated`]); returns the header, and the opener and cursor
/// of its chunks in batches ([`crate::chunked::batch`]), for callers that read the
/// stream themselves and open many chunks at a time (on several threads, say).
///
/// # Errors
/// As [`open`].
pub fn accept_prefix<P: CryptoProvider>(
    provider: &P,
    key: &SecretKey,
    context: &[u8],
    prefix: &[u8],
) -> Result<BatchOpened<P::Cipher>, Error> {
    let (header, keys, preamble) = accept_keys(provider, key, context, prefix)?;
    let (opener, cursor) = BatchOpener::from_keys(keys, &preamble);
    Ok((header, opener, cursor))
}

/// A stream's header, its chunk keys and its preamble, once checked.
type Accepted<C> = (StreamHeader, ChunkKeys<C>, [u8; PREAMBLE_LEN]);

/// The checks of [`accept_prefix`]; returns the header, the chunk keys and the preamble.
fn accept_keys<P: CryptoProvider>(
    provider: &P,
    key: &SecretKey,
    context: &[u8],
    prefix: &[u8],
) -> Result<Accepted<P::Cipher>, Error> {
    let header = StreamHeader::decode(prefix)?;
    header.check_key(key)?;
    let preamble: [u8; PREAMBLE_LEN] = field(prefix, STREAM_HEADER_LEN)?;
    let header_bytes = header.encode();
    let keys = hazmat::accept(
        provider,
        header.suite,
        key,
        &[&header_bytes, context],
        &preamble,
    )?;
    Ok((header, keys, preamble))
}
