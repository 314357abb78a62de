//! What the repository tests share: a key-encryption key to unlock with, and seeded
//! bytes that do not compress (xorshift), so chunking and packing see real work.
#![allow(dead_code, unreachable_pub)]

use coffer_adapters::repo::keyfile::Unlock;
use coffer_core::SecretKey;

/// Unlocks with the KEK of 32 bytes `b`.
pub fn kek(b: u8) -> Unlock {
    Unlock::Kek(SecretKey::from_bytes([b; 32]))
}

/// `n` bytes from a xorshift generator seeded with `seed`.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
