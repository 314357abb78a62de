//! Shared pieces of Coffer's fuzz targets: a byte parser for the targets' input
//! layouts, deterministic RNGs, readers that return short reads and fail on demand, a
//! Read + Seek cursor, the mutations applied to valid objects, and a small reference
//! model of FORMAT.md (header checks in order, and an independent C2SP sealer) that the
//! targets compare the core against. [`repo`] holds the valid repository objects the
//! repository targets compare the adapters' openers against.
//!
//! Every target's input starts with a few control bytes parsed by [`Input`]; the layout
//! of each is documented at the top of its file and in `fuzz/README.md`, and
//! `fuzz/seed-corpora.sh` writes seeds in the same layouts.

use coffer_core::chunked::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, SEAL_BUFFER_LEN};
use coffer_core::stream::{self, STREAM_PREFIX_LEN};
use coffer_core::{Error, RustCrypto, SecretKey, Suite};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// The input key every stream target opens with: bytes 0..32, the key of FORMAT.md's
/// examples (key ID `8586aca7724c3a33929a0345934cc605`), so seeds taken from the test
/// vectors get past the key-ID check to the commitment.
pub fn fuzz_key() -> SecretKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    SecretKey::from_bytes(k)
}

/// A second key, for "wrong key" and rewrap checks.
pub fn other_key() -> SecretKey {
    SecretKey::from_bytes([0xA5; 32])
}

/// The fixed caller context of the targets. No test vector uses it, so no seed is a
/// valid stream under ([`fuzz_key`], this context): a raw input never authenticates.
pub const FUZZ_CONTEXT: &[u8] = b"coffer-fuzz fixed context";

/// A deterministic CSPRNG (salts, keys) from a seed the input chooses.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Sequential reader of a target's input: fixed-size fields first, then the rest.
/// Past the end every field reads as zero, so any input parses.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.bytes(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    /// Next byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// Next 2 bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// Next 4 bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// Next 8 bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let all = self.data;
        self.data = &[];
        all
    }
}

/// A suite from a control byte.
pub fn suite_from(bit: u8) -> Suite {
    Suite::ALL[usize::from(bit & 1)]
}

/// A deterministic sequence of sizes (xorshift64* over a seed), drawn from a table that
/// favours the boundaries of the format (a tag, a chunk, a chunk on the wire).
pub struct Sizes {
    state: u64,
}

impl Sizes {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Sizes {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A read size for a caller's buffer: 1 to 20000 bytes.
    pub fn read_len(&mut self) -> usize {
        const TABLE: [usize; 12] = [1, 2, 7, 15, 16, 17, 100, 4096, 16383, 16384, 16400, 20000];
        let r = self.next_u64();
        let pick = TABLE[(r % TABLE.len() as u64) as usize];
        if r & (1 << 40) != 0 {
            // Sometimes any size in 1..=pick.
            1 + ((r >> 41) as usize) % pick
        } else {
            pick
        }
    }

    /// How much one `read` of a reader returns at most (short reads).
    pub fn reader_cap(&mut self) -> usize {
        const TABLE: [usize; 8] = [usize::MAX, usize::MAX, 1, 3, 16, 17, 1000, 16399];
        TABLE[(self.next_u64() % TABLE.len() as u64) as usize]
    }

    /// Any value below `bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64().checked_rem(bound).unwrap_or(0)
    }
}

/// An [`embedded_io::Read`] over bytes that returns short reads of varying sizes and,
/// if asked, fails with [`embedded_io::ErrorKind::Other`] on every call once it reached
/// offset `fail_at` (it first returns all bytes before that offset).
pub struct TrickleReader<'a> {
    data: &'a [u8],
    pos: usize,
    caps: Option<Sizes>,
    fail_at: Option<usize>,
}

impl<'a> TrickleReader<'a> {
    /// A reader over `data`. `caps`: short reads drawn from this sequence (None: every
    /// read returns as much as asked). `fail_at`: an I/O error from this offset on,
    /// ignored unless it lies inside `data`.
    pub fn new(data: &'a [u8], caps: Option<Sizes>, fail_at: Option<usize>) -> Self {
        TrickleReader {
            data,
            pos: 0,
            caps,
            fail_at: fail_at.filter(|&at| at < data.len()),
        }
    }

    /// The offset where the reader fails, if it does.
    pub fn fail_at(&self) -> Option<usize> {
        self.fail_at
    }
}

impl embedded_io::ErrorType for TrickleReader<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for TrickleReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let end = match self.fail_at {
            Some(at) if self.pos >= at => return Err(embedded_io::ErrorKind::Other),
            Some(at) => at,
            None => self.data.len(),
        };
        let cap = self.caps.as_mut().map_or(usize::MAX, Sizes::reader_cap);
        let n = (end - self.pos).min(buf.len()).min(cap);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// An [`embedded_io::Read`] + [`embedded_io::Seek`] cursor over bytes, with short reads.
/// If `shrink` is non-zero, the data loses its last `shrink` bytes right after the first
/// `SeekFrom::End` measured it: a file cut short between measuring and reading.
pub struct Cursor<'a> {
    data: &'a [u8],
    visible: usize,
    pos: u64,
    caps: Sizes,
    shrink: usize,
    measured: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at offset 0.
    pub fn new(data: &'a [u8], caps: Sizes, shrink: usize) -> Self {
        Cursor {
            data,
            visible: data.len(),
            pos: 0,
            caps,
            shrink,
            measured: false,
        }
    }

    /// How many bytes the reader still has after shrinking.
    pub fn visible(&self) -> usize {
        self.visible
    }
}

impl embedded_io::ErrorType for Cursor<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let pos = usize::try_from(self.pos).unwrap_or(usize::MAX);
        if pos >= self.visible || buf.is_empty() {
            return Ok(0);
        }
        let n = (self.visible - pos)
            .min(buf.len())
            .min(self.caps.reader_cap());
        buf[..n].copy_from_slice(&self.data[pos..pos + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl embedded_io::Seek for Cursor<'_> {
    fn seek(&mut self, pos: embedded_io::SeekFrom) -> Result<u64, Self::Error> {
        let target = match pos {
            embedded_io::SeekFrom::Start(n) => Some(n),
            embedded_io::SeekFrom::End(off) => {
                let end = self.visible as u64;
                if !self.measured {
                    self.measured = true;
                    self.visible = self.visible.saturating_sub(self.shrink);
                }
                end.checked_add_signed(off)
            }
            embedded_io::SeekFrom::Current(off) => self.pos.checked_add_signed(off),
        };
        let target = target.ok_or(embedded_io::ErrorKind::InvalidInput)?;
        self.pos = target;
        Ok(target)
    }
}

/// A change to a valid object: bit flip, truncation, extension, byte set, splice with a
/// donor object, insertion, deletion, and segment swap / duplication / removal /
/// overwrite (segments are the object's chunks for streams).
#[derive(Debug, Clone, Copy)]
pub struct Mutation {
    kind: u8,
    a: u32,
    b: u32,
    c: u8,
}

/// Bytes [`Mutation::parse`] reads.
pub const MUTATION_LEN: usize = 10;

impl Mutation {
    /// Reads a mutation: kind, two positions, a byte value.
    pub fn parse(input: &mut Input<'_>) -> Self {
        Mutation {
            kind: input.u8(),
            a: input.u32(),
            b: input.u32(),
            c: input.u8(),
        }
    }

    /// Whether this mutation is the identity (kind 0).
    pub fn is_none(&self) -> bool {
        self.kind % 12 == 0
    }

    /// Whether the mutation splices in a donor object (kind 5); other kinds ignore it.
    pub fn needs_donor(&self) -> bool {
        self.kind % 12 == 5
    }

    /// Applies the mutation to `orig`. `donor` is another valid object of the same kind
    /// (for splices); `base` and `stride` cut `orig[base..]` into segments (chunks).
    pub fn apply(&self, orig: &[u8], donor: &[u8], base: usize, stride: usize) -> Vec<u8> {
        let len = orig.len();
        let a = self.a as usize;
        let b = self.b as usize;
        let mut out = orig.to_vec();
        match self.kind % 12 {
            0 => {}
            1 => {
                if len > 0 {
                    out[a % len] ^= 1 << (self.b % 8);
                }
            }
            2 => out.truncate(a % (len + 1)),
            3 => out.extend(std::iter::repeat_n(self.c, 1 + b % 64)),
            4 => {
                if len > 0 {
                    out[a % len] = self.c;
                }
            }
            5 => {
                out.truncate(a % (len + 1));
                out.extend_from_slice(&donor[b % (donor.len() + 1)..]);
            }
            6 => {
                let at = a % (len + 1);
                let n = 1 + b % 32;
                out.splice(at..at, std::iter::repeat_n(self.c, n));
            }
            7 => {
                if len > 0 {
                    let at = a % len;
                    let n = 1 + b % (len - at).min(64);
                    out.drain(at..at + n);
                }
            }
            kind => {
                let base = base.min(len);
                let mut segs: Vec<&[u8]> = orig[base..].chunks(stride.max(1)).collect();
                if !segs.is_empty() {
                    let i = a % segs.len();
                    let j = b % segs.len();
                    match kind {
                        8 => segs.swap(i, j),
                        9 => segs.insert(j, segs[i]),
                        10 => {
                            segs.remove(i);
                        }
                        _ => segs[j] = segs[i],
                    }
                }
                out.truncate(base);
                for s in segs {
                    out.extend_from_slice(s);
                }
            }
        }
        out
    }
}

/// Seals `plaintext` as a stream with the core, pushing it in one slice.
///
/// # Panics
/// If the core fails to seal (it cannot, with a correct buffer).
pub fn seal_stream(
    suite: Suite,
    key: &SecretKey,
    ctx: &[u8],
    seed: u64,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut r = rng(seed);
    let (mut sealer, prefix) = stream::seal(
        &RustCrypto,
        suite,
        key,
        ctx,
        &mut r,
        vec![0u8; SEAL_BUFFER_LEN],
    )
    .expect("seal");
    let mut out = prefix.to_vec();
    let mut rest = plaintext;
    while !rest.is_empty() {
        let (taken, chunk) = sealer.push(rest).expect("push");
        if let Some(chunk) = chunk {
            out.extend_from_slice(chunk);
        }
        rest = &rest[taken..];
    }
    out.extend_from_slice(sealer.finish().expect("finish").ciphertext());
    out
}

/// A stream's valid prefix (header, salt, commitment) under `key` and `ctx`, salt from
/// `seed`.
pub fn stream_prefix(
    suite: Suite,
    key: &SecretKey,
    ctx: &[u8],
    seed: u64,
) -> [u8; STREAM_PREFIX_LEN] {
    let mut r = rng(seed);
    let (_sealer, prefix) = stream::seal(
        &RustCrypto,
        suite,
        key,
        ctx,
        &mut r,
        vec![0u8; SEAL_BUFFER_LEN],
    )
    .expect("seal");
    prefix
}

/// FORMAT.md §5.1: `88 + L + 16·(⌊L/16384⌋ + 1)`.
pub fn sealed_stream_len(plaintext_len: usize) -> usize {
    88 + plaintext_len + 16 * (plaintext_len / CHUNK_LEN + 1)
}

/// A plaintext of `len` bytes: `seed` repeated (or a counter pattern if it is empty).
pub fn plaintext(seed: &[u8], len: usize) -> Vec<u8> {
    if seed.is_empty() {
        (0..len).map(|i| (i % 251) as u8).collect()
    } else {
        seed.iter().copied().cycle().take(len).collect()
    }
}

/// A plaintext length from a selector and a raw number, biased to chunk boundaries:
/// small (< 512), around 1 or 2 chunks (±32), or anything up to 3 chunks.
pub fn plaintext_len(selector: u8, raw: u32) -> usize {
    let raw = raw as usize;
    match selector % 4 {
        0 | 1 => raw % 512,
        2 => (1 + raw % 2) * CHUNK_LEN - 32 + (raw >> 8) % 64,
        _ => raw % (3 * CHUNK_LEN + 64),
    }
}

/// Errors equal, except that [`Error::ParameterOutOfBounds`] compares value and bounds,
/// not the parameter's name.
pub fn same_error(a: &Error, b: &Error) -> bool {
    match (a, b) {
        (
            Error::ParameterOutOfBounds {
                value: v1,
                min: lo1,
                max: hi1,
                ..
            },
            Error::ParameterOutOfBounds {
                value: v2,
                min: lo2,
                max: hi2,
                ..
            },
        ) => (v1, lo1, hi1) == (v2, lo2, hi2),
        _ => a == b,
    }
}

/// Chunk `k`'s wire bytes start at this offset of a stream.
pub fn chunk_offset(k: usize) -> usize {
    STREAM_PREFIX_LEN + k * ENCRYPTED_CHUNK_LEN
}

pub mod spec;

pub mod repo;
