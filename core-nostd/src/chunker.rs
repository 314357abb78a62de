//! Content-defined chunking, keyed (FORMAT.md §13), and chunk IDs (§14).
//!
//! A deduplicating writer cuts its data where the content says, so that an edit moves
//! only the boundaries near it, and names each chunk by a MAC of its bytes, so equal
//! chunks are stored once. Both are keyed with secrets derived from the repository's
//! writer secret (§12): whoever sees only chunk lengths and IDs learns no equation about
//! the secrets, which is how the chunking secrets of restic, Borg 1 and Tarsnap were
//! recovered (Truong et al., "Breaking and Fixing Content-Defined Chunking", ePrint
//! 2025/558). The cut decision is their hash-then-encrypt construction: a rolling
//! buzhash over 128-bit words with a secret table compresses the 64 bytes before a
//! position into a 65-bit digest, and AES-128 under a secret key decides on the digest.
//!
//! ## Cost
//! Only positions at least `min_size` past a chunk's start are tested, and the hash
//! needs only the 64 bytes before the first of them, so most bytes are skipped without
//! being read; each tested position costs one rolling-hash step and one AES block. The
//! blocks are encrypted 16 at a time, which pipelines AES-NI (detected at run time; on
//! aarch64 the `aes` crate uses the ARMv8 AES instructions only when built with
//! `RUSTFLAGS="--cfg aes_armv8"`, else its constant-time software AES). With the v2
//! parameters, 20% of positions are tested (`benches/chunker.rs` measures it).
//!
//! ## Use
//! ```
//! use coffer_core::chunker::{chunk_id, Chunker, ChunkerParams, WriterSecret};
//! use coffer_core::SecretKey;
//!
//! let writer = WriterSecret::from_master(&SecretKey::from_bytes([7; 32]));
//! let chunker = Chunker::from_writer_secret(&writer, ChunkerParams::new(256, 6, 2048)?);
//! let id_key = writer.chunk_id_key();
//!
//! let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
//! // Data that arrives in pieces: the cuts do not depend on how it is split.
//! let mut stream = chunker.stream();
//! let (mut chunk, mut ids) = (Vec::new(), Vec::new());
//! for mut piece in data.chunks(1000) {
//!     while let Some(end) = stream.next_cut(piece) {
//!         chunk.extend_from_slice(&piece[..end]);
//!         ids.push(chunk_id(&id_key, &chunk));
//!         chunk.clear();
//!         piece = &piece[end..];
//!     }
//!     chunk.extend_from_slice(piece);
//! }
//! if stream.finish().is_some() {
//!     ids.push(chunk_id(&id_key, &chunk));
//! }
//!
//! // Data held whole: the chunks' end offsets.
//! let ends: Vec<usize> = chunker.cuts(&data).collect();
//! assert_eq!(ends.len(), ids.len());
//! assert_eq!(ends.last(), Some(&data.len()));
//! # Ok::<(), coffer_core::Error>(())
//! ```

mod chunk_id;
mod hash;
mod keys;
mod stream;

use core::fmt;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128Enc;

use crate::Error;

pub use chunk_id::{chunk_id, ChunkIdHasher, CHUNK_ID_LEN};
pub use keys::{ChunkIdKey, ChunkerKeys, WriterSecret, CHUNKER_KEY_LEN, CHUNK_ID_KEY_LEN};
pub use stream::{ChunkStream, Cuts};

/// Bytes of the rolling hash's window (`window` in FORMAT.md §13.1).
pub const WINDOW_LEN: usize = 64;

/// The chunker's parameters (FORMAT.md §13.1), within the bounds a reader enforces.
///
/// No chunk but a stream's last is shorter than `min_size`, and none is longer than
/// `max_size`; past `min_size`, each position is a cut point with probability
/// 2^−`mask_bits`. Checked when made, so a `ChunkerParams` is always within bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    min_size: u32,
    mask_bits: u32,
    max_size: u32,
}

impl ChunkerParams {
    /// The v2 parameters: `min_size` 512 KiB, `mask_bits` 17, `max_size` 4 MiB (chunks of
    /// about 640 KiB on average).
    pub const V2: Self = ChunkerParams {
        min_size: 524_288,
        mask_bits: 17,
        max_size: 4_194_304,
    };
    /// The largest `min_size` and `max_size`: 2^26 bytes (64 MiB).
    pub const SIZE_BOUND: u32 = 1 << 26;
    /// The largest `mask_bits`.
    pub const MASK_BITS_BOUND: u32 = 31;

    /// Checks the parameters against FORMAT.md §13.1: 64 ≤ `min_size` ≤ 2^26,
    /// 1 ≤ `mask_bits` ≤ 31, `min_size` < `max_size` ≤ 2^26.
    ///
    /// # Errors
    /// [`Error::ParameterOutOfBounds`] naming the first parameter out of bounds, in that
    /// order, with its bounds.
    pub fn new(min_size: u32, mask_bits: u32, max_size: u32) -> Result<Self, Error> {
        bound("chunker min_size", min_size, 64, Self::SIZE_BOUND)?;
        bound("chunker mask_bits", mask_bits, 1, Self::MASK_BITS_BOUND)?;
        bound(
            "chunker max_size",
            max_size,
            min_size.saturating_add(1),
            Self::SIZE_BOUND,
        )?;
        Ok(ChunkerParams {
            min_size,
            mask_bits,
            max_size,
        })
    }

    /// `min_size`: no chunk but the last is shorter.
    pub const fn min_size(&self) -> u32 {
        self.min_size
    }

    /// `mask_bits`: a position past `min_size` cuts with probability 2^−`mask_bits`.
    pub const fn mask_bits(&self) -> u32 {
        self.mask_bits
    }

    /// `max_size`: no chunk is longer.
    pub const fn max_size(&self) -> u32 {
        self.max_size
    }
}

fn bound(parameter: &'static str, value: u32, min: u32, max: u32) -> Result<(), Error> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Error::ParameterOutOfBounds {
        parameter,
        value: value.into(),
        min: min.into(),
        max: max.into(),
    })
}

/// The keyed chunker (FORMAT.md §13): the hash's secret table (4 KiB), the AES-128 key
/// schedule of the cut decision, and the parameters. It holds no state of any stream:
/// one `Chunker` serves any number of streams ([`Chunker::stream`]), on any number of
/// threads. Wiped on drop (the table here, the key schedule by the `aes` crate's
/// `zeroize` feature); `Debug` shows only the parameters.
pub struct Chunker {
    table: hash::Table,
    cipher: Aes128Enc,
    params: ChunkerParams,
    /// `min_size − 64`: where a chunk's first window starts.
    warm_start: usize,
    min_size: usize,
    max_size: usize,
    /// `2^mask_bits − 1`.
    mask: u32,
}

impl Chunker {
    /// A chunker with the given keys (the table is derived here: 256 AES blocks).
    pub fn new(keys: &ChunkerKeys, params: ChunkerParams) -> Self {
        let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Chunker {
            table: hash::Table::derive(keys.table_key()),
            cipher: Aes128Enc::new(keys.cipher_key().into()),
            params,
            warm_start: size(params.min_size).saturating_sub(WINDOW_LEN),
            min_size: size(params.min_size),
            max_size: size(params.max_size),
            mask: 1u32
                .checked_shl(params.mask_bits)
                .unwrap_or(0)
                .wrapping_sub(1),
        }
    }

    /// The chunker of a writer secret's chunker keys ([`WriterSecret::chunker_keys`]).
    pub fn from_writer_secret(writer: &WriterSecret, params: ChunkerParams) -> Self {
        Self::new(&writer.chunker_keys(), params)
    }

    /// The parameters.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The entry `T[b]` of the secret table of FORMAT.md §13.2, for checking against test
    /// vectors. Whoever knows the table can compute the digests.
    pub fn expose_table_entry(&self, b: u8) -> u128 {
        self.table.entry(b)
    }

    /// Whether the position after `window` is a cut point (FORMAT.md §13.3), on its own:
    /// whether it ends a chunk also depends on where the chunk started (§13.4).
    pub fn is_cut_point(&self, window: &[u8; WINDOW_LEN]) -> bool {
        let mut block = self.table.window_hash(window).digest_block();
        self.cipher.encrypt_block(&mut block);
        hash::is_cut(&block, self.mask)
    }

    /// A new stream to cut, starting with its first chunk.
    pub fn stream(&self) -> ChunkStream<'_> {
        ChunkStream::new(self)
    }

    /// The chunks of data held whole, as their end offsets in `data`: ascending, the last
    /// being `data.len()`; none for empty data.
    pub fn cuts<'a>(&'a self, data: &'a [u8]) -> Cuts<'a> {
        Cuts::new(self, data)
    }
}

impl fmt::Debug for Chunker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_parameters_are_within_bounds() {
        let p = ChunkerParams::V2;
        assert_eq!(
            ChunkerParams::new(p.min_size(), p.mask_bits(), p.max_size()),
            Ok(p)
        );
        assert_eq!(
            (p.min_size(), p.mask_bits(), p.max_size()),
            (1 << 19, 17, 1 << 22)
        );
    }

    #[test]
    fn parameters_out_of_bounds_are_refused_with_their_bounds() {
        let out = |parameter, value, min, max| {
            Err(Error::ParameterOutOfBounds {
                parameter,
                value,
                min,
                max,
            })
        };
        let limit = u64::from(ChunkerParams::SIZE_BOUND);
        for (params, want) in [
            ((63, 17, 1000), out("chunker min_size", 63, 64, limit)),
            ((0, 0, 0), out("chunker min_size", 0, 64, limit)),
            (
                (1 << 26 | 1, 17, 1 << 27),
                out("chunker min_size", limit + 1, 64, limit),
            ),
            ((64, 0, 1000), out("chunker mask_bits", 0, 1, 31)),
            ((64, 32, 1000), out("chunker mask_bits", 32, 1, 31)),
            ((64, 17, 64), out("chunker max_size", 64, 65, limit)),
            ((1000, 17, 999), out("chunker max_size", 999, 1001, limit)),
            (
                (64, 17, 1 << 26 | 1),
                out("chunker max_size", limit + 1, 65, limit),
            ),
            (
                (1 << 26, 1, 1 << 26),
                out("chunker max_size", limit, limit + 1, limit),
            ),
        ] {
            assert_eq!(
                ChunkerParams::new(params.0, params.1, params.2),
                want,
                "{params:?}"
            );
        }
        for (min, mask, max) in [(64, 1, 65), (64, 31, 1 << 26), ((1 << 26) - 1, 5, 1 << 26)] {
            assert!(ChunkerParams::new(min, mask, max).is_ok());
        }
    }

    #[test]
    fn chunker_keys_come_from_the_writer_secret() {
        let writer = WriterSecret::from_bytes([3; 32]);
        let keys = writer.chunker_keys();
        let a = Chunker::from_writer_secret(&writer, ChunkerParams::V2);
        let b = Chunker::new(&keys, ChunkerParams::V2);
        let other = Chunker::new(
            &ChunkerKeys::from_bytes([0; 16], [0; 16]),
            ChunkerParams::V2,
        );
        assert_eq!(a.expose_table_entry(7), b.expose_table_entry(7));
        assert_ne!(a.expose_table_entry(7), other.expose_table_entry(7));
        assert_eq!(a.params(), ChunkerParams::V2);
    }
}
