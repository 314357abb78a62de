//! A plain transcription of FORMAT.md §12–§14, written from the text and sharing no code
//! with `coffer_core::chunker`: every derivation spelled out, each tested position's
//! digest computed from its window by the definition of `H` (no rolling, no batching,
//! no skipping), one AES block per position, §13.4's loop as written.
//!
//! The core's tests compare the chunker with it; the vector generator
//! (`adapters/tests/vectors_gen/chunker.rs`, which includes this file) makes the
//! expected cuts and IDs with it.
#![allow(dead_code)]

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// §1: HKDF-Expand-SHA-512 with the key used directly as the PRK.
pub fn hkdf_expand_sha512(prk: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut okm = Vec::new();
    let mut previous = Vec::new();
    let mut counter = 1u8;
    while okm.len() < len {
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(prk).unwrap();
        mac.update(&previous);
        mac.update(info);
        mac.update(&[counter]);
        previous = mac.finalize().into_bytes().to_vec();
        okm.extend_from_slice(&previous);
        counter += 1;
    }
    okm.truncate(len);
    okm
}

/// §12's keys below the master key.
pub struct Keys {
    pub writer: [u8; 32],
    pub cipher: [u8; 16],
    pub table: [u8; 16],
    pub chunk_id: [u8; 32],
}

impl Keys {
    pub fn from_master(master: &[u8; 32]) -> Keys {
        let writer = hkdf_expand_sha512(master, b"coffer/v2 writer", 32);
        Keys::from_writer(&writer.try_into().unwrap())
    }

    pub fn from_writer(writer: &[u8; 32]) -> Keys {
        Keys {
            writer: *writer,
            cipher: hkdf_expand_sha512(writer, b"coffer/v2 chunker", 16)
                .try_into()
                .unwrap(),
            table: hkdf_expand_sha512(writer, b"coffer/v2 chunker-table", 16)
                .try_into()
                .unwrap(),
            chunk_id: hkdf_expand_sha512(writer, b"coffer/v2 chunk-id", 32)
                .try_into()
                .unwrap(),
        }
    }
}

pub fn aes128(key: &[u8; 16], block: [u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(key.into());
    let mut b = block.into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// §13.2: `T[b] = u128le(AES-128-Encrypt(t, u128le(b)))`.
pub fn table(table_key: &[u8; 16]) -> Vec<u128> {
    (0..256u128)
        .map(|b| u128::from_le_bytes(aes128(table_key, b.to_le_bytes())))
        .collect()
}

/// §13.2: `H(w) = XOR over j = 0 … 63 of rotl128(T[w[63 − j]], j)`.
pub fn window_hash(table: &[u128], w: &[u8]) -> u128 {
    assert_eq!(w.len(), 64);
    let mut h = 0u128;
    for j in 0..64 {
        h ^= table[w[63 - j] as usize].rotate_left(j as u32);
    }
    h
}

/// §13.2: `D(w) = H(w) >> 63`.
pub fn digest(h: u128) -> u128 {
    h >> 63
}

/// §13.3: the cut decision on a window, with the cipher keyed with `c`.
pub fn decision(cipher: &Aes128, table: &[u128], mask_bits: u32, w: &[u8]) -> bool {
    let mut o = digest(window_hash(table, w)).to_le_bytes().into();
    cipher.encrypt_block(&mut o);
    u32::from_le_bytes(o[0..4].try_into().unwrap()) & ((1u32 << mask_bits) - 1) == 0
}

/// §13.4: the end offset of every chunk.
pub fn cuts(
    cipher_key: &[u8; 16],
    table_key: &[u8; 16],
    (min_size, mask_bits, max_size): (usize, u32, usize),
    data: &[u8],
) -> Vec<usize> {
    let t = table(table_key);
    let cipher = Aes128::new(cipher_key.into());
    let n = data.len();
    let mut ends = Vec::new();
    let mut s = 0;
    // "An empty input has no chunks"; each chunk starts where the previous one ended.
    while s < n {
        // 1. If n − s ≤ min_size, the rest [s, n) is the last chunk.
        if n - s <= min_size {
            ends.push(n);
            break;
        }
        // 2. Test p = s + min_size, s + min_size + 1, … while p < n and p < s + max_size.
        let mut end = None;
        let mut p = s + min_size;
        while p < n && p < s + max_size {
            if decision(&cipher, &t, mask_bits, &data[p - 64..p]) {
                end = Some(p);
                break;
            }
            p += 1;
        }
        // 3. If none is found, the chunk ends at min(s + max_size, n).
        let end = end.unwrap_or((s + max_size).min(n));
        ends.push(end);
        s = end;
    }
    ends
}

/// §14: `HMAC-SHA-256(key = chunk ID key, message = the chunk)`.
pub fn chunk_id(key: &[u8; 32], chunk: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(chunk);
    mac.finalize().into_bytes().into()
}
