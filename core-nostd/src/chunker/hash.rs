//! The keyed rolling hash of FORMAT.md §13.2 and the cut decision of §13.3, in the form
//! the chunker runs them: up to [`BATCH`] positions hashed, then their digests encrypted
//! in one call (which pipelines AES-NI), then scanned for the first cut.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
use zeroize::Zeroize;

use super::keys::CHUNKER_KEY_LEN;
use super::WINDOW_LEN;

/// Positions tested per call to the block cipher. Small enough that the CPU runs the
/// hashing of one batch while the AES rounds of the previous one are still in flight
/// (on a Xeon with AES-NI, 64 MiB of v2 chunking took 38 ms with batches of 16, 41 ms
/// with 32, 47 ms with 8 or 64); large enough to amortise the call.
const BATCH: usize = 16;

/// The table `T[b] = u128le(AES-128-Encrypt(t, u128le(b)))` for `b = 0 … 255`: secret,
/// since it is the hash's key. Held as its low and high 64-bit halves in two arrays, so
/// each half is one scaled load. Wiped on drop.
pub(super) struct Table {
    lo: [u64; 256],
    hi: [u64; 256],
}

/// The hash `H` as its low and high 64-bit halves.
#[derive(Clone, Copy, Default)]
pub(super) struct Hash {
    lo: u64,
    hi: u64,
}

impl Hash {
    /// `rotl128(H, 1)`.
    #[inline(always)]
    fn rotl1(self) -> Hash {
        Hash {
            lo: self.lo.wrapping_shl(1) | self.hi.wrapping_shr(63),
            hi: self.hi.wrapping_shl(1) | self.lo.wrapping_shr(63),
        }
    }

    /// The digest `D = H >> 63` (the top 65 bits), as the block `u128le(D)`.
    #[inline(always)]
    pub(super) fn digest_block(self) -> Block {
        let low = self.hi.wrapping_shl(1) | self.lo.wrapping_shr(63);
        let high = self.hi.wrapping_shr(63);
        (u128::from(low) | u128::from(high).wrapping_shl(64))
            .to_le_bytes()
            .into()
    }

    /// `H` as a 128-bit integer.
    pub(super) fn to_u128(self) -> u128 {
        u128::from(self.lo) | u128::from(self.hi).wrapping_shl(64)
    }
}

impl Zeroize for Hash {
    fn zeroize(&mut self) {
        self.lo.zeroize();
        self.hi.zeroize();
    }
}

impl Table {
    /// Derives the table from the chunker table key `t`.
    pub(super) fn derive(table_key: &[u8; CHUNKER_KEY_LEN]) -> Self {
        let cipher = Aes128Enc::new(table_key.into());
        let mut blocks = [Block::default(); 256];
        for (b, block) in (0..=u8::MAX).zip(blocks.iter_mut()) {
            // u128le(b): b, then 15 zero bytes.
            *block = u128::from(b).to_le_bytes().into();
        }
        cipher.encrypt_blocks(&mut blocks);
        let mut table = Table {
            lo: [0; 256],
            hi: [0; 256],
        };
        let halves = table.lo.iter_mut().zip(table.hi.iter_mut());
        for ((lo, hi), block) in halves.zip(blocks.iter_mut()) {
            let entry = u128::from_le_bytes((*block).into());
            *lo = entry as u64;
            *hi = entry.wrapping_shr(64) as u64;
            block.as_mut_slice().zeroize();
        }
        table
    }

    /// `T[b]`.
    pub(super) fn entry(&self, b: u8) -> u128 {
        Hash {
            lo: self.lo_of(b),
            hi: self.hi_of(b),
        }
        .to_u128()
    }

    // A u8 always indexes 256 entries; the compiler drops the checks.
    #[inline(always)]
    fn lo_of(&self, b: u8) -> u64 {
        self.lo.get(usize::from(b)).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn hi_of(&self, b: u8) -> u64 {
        self.hi.get(usize::from(b)).copied().unwrap_or(0)
    }

    /// Rolls bytes into the hash without any leaving it: the first 64 bytes of a window,
    /// from `H = 0` (after them, `H` is the window's hash).
    pub(super) fn roll_in(&self, hash: Hash, bytes: &[u8]) -> Hash {
        let mut h = hash;
        for &x_in in bytes {
            let r = h.rotl1();
            h = Hash {
                lo: r.lo ^ self.lo_of(x_in),
                hi: r.hi ^ self.hi_of(x_in),
            };
        }
        h
    }

    /// `H(w)` of one whole window, from its definition.
    pub(super) fn window_hash(&self, window: &[u8; WINDOW_LEN]) -> Hash {
        self.roll_in(Hash::default(), window)
    }

    /// The rolling step: `x_in` enters the window, `x_out` (64 bytes earlier) leaves:
    /// `H' = rotl128(H, 1) XOR T[x_in] XOR rotl128(T[x_out], 64)`, where the rotation by
    /// 64 swaps the halves of `T[x_out]`.
    #[inline(always)]
    fn roll(&self, hash: Hash, x_in: u8, x_out: u8) -> Hash {
        let r = hash.rotl1();
        Hash {
            lo: r.lo ^ (self.lo_of(x_in) ^ self.hi_of(x_out)),
            hi: r.hi ^ (self.hi_of(x_in) ^ self.lo_of(x_out)),
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.lo.zeroize();
        self.hi.zeroize();
    }
}

/// Whether the encrypted digest `o` decides a cut: `u32le(o[0..4]) AND mask = 0`.
#[inline(always)]
pub(super) fn is_cut(encrypted: &Block, mask: u32) -> bool {
    encrypted
        .first_chunk::<4>()
        .is_some_and(|word| u32::from_le_bytes(*word) & mask == 0)
}

/// Tests positions one after another: `region[WINDOW_LEN..]` are the bytes that enter
/// the window in turn and `region[..]` the bytes that leave it, 64 earlier. Before each
/// byte enters, the position in front of it is tested on `hash`, the hash of the 64
/// bytes before it; then the byte is rolled in.
///
/// Returns the index in `region[WINDOW_LEN..]` of the byte in front of which the first
/// cut point lies (`hash` is then spent), or `None` with `hash` rolled over every byte.
pub(super) fn scan(
    table: &Table,
    cipher: &Aes128Enc,
    mask: u32,
    hash: &mut Hash,
    region: &[u8],
) -> Option<usize> {
    let entering = region.get(WINDOW_LEN..).unwrap_or_default();
    let mut blocks = [Block::default(); BATCH];
    let mut tested = 0usize;
    // Batch k enters region[64 + k·BATCH ..][..BATCH] and removes the bytes 64 earlier,
    // region[k·BATCH ..][..BATCH].
    for (ins, outs) in entering.chunks(BATCH).zip(region.chunks(BATCH)) {
        let mut h = *hash;
        for ((block, &x_in), &x_out) in blocks.iter_mut().zip(ins).zip(outs) {
            *block = h.digest_block();
            h = table.roll(h, x_in, x_out);
        }
        *hash = h;
        let batch = blocks.get_mut(..ins.len()).unwrap_or_default();
        cipher.encrypt_blocks(batch);
        if let Some(k) = batch.iter().position(|o| is_cut(o, mask)) {
            return Some(tested.saturating_add(k));
        }
        tested = tested.saturating_add(ins.len());
    }
    None
}
