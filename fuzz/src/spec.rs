//! FORMAT.md written out again, independently of the core: the header checks of §5.3,
//! §6.3 and §7.3 in the order the spec gives (so the core must report the same error),
//! and a C2SP sealer (§4, §5) on the primitive crates directly.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use coffer_core::Error;
use hmac::{Hmac, Mac};
use sha2::Sha512;

/// `"COFFER/S"`.
pub const STREAM_MAGIC: &[u8; 8] = b"COFFER/S";
/// `"COFFER/K"`.
pub const KEY_MAGIC: &[u8; 8] = b"COFFER/K";
/// `"COFFER/P"`.
pub const PASS_MAGIC: &[u8; 8] = b"COFFER/P";
/// §6.1.
pub const KEY_ENVELOPE_LEN: usize = 152;
/// §7.1.
pub const PASS_ENVELOPE_LEN: usize = 168;

/// §5.3 rows 1–4 (shared by §6.3 and §7.3 row 1).
fn prefix(b: &[u8], magic: &[u8; 8]) -> Result<(), Error> {
    if b.len() < 8 {
        return Err(Error::Truncated);
    }
    if &b[..8] != magic {
        return Err(Error::BadMagic);
    }
    match b.get(8) {
        None => return Err(Error::Truncated),
        Some(&1) => {}
        Some(&version) => return Err(Error::UnsupportedVersion { version }),
    }
    match b.get(9) {
        None => Err(Error::Truncated),
        Some(1 | 2) => Ok(()),
        Some(&suite) => Err(Error::UnsupportedSuite { suite }),
    }
}

/// `StreamHeader::decode`: §5.3 rows 1–6.
pub fn stream_header(b: &[u8]) -> Result<(), Error> {
    prefix(b, STREAM_MAGIC)?;
    if b.len() < 32 {
        return Err(Error::Truncated);
    }
    if b[10..16].iter().any(|&x| x != 0) {
        return Err(Error::ReservedBitsSet);
    }
    Ok(())
}

/// What opening a stream whose first bytes are `b` must report under a key with ID
/// `key_id`, when the commitment cannot match (§5.3 rows 1–9).
pub fn stream_open_failure(b: &[u8], key_id: &[u8; 16]) -> Error {
    if let Err(e) = stream_header(b) {
        return e;
    }
    if &b[16..32] != key_id {
        let mut expected = [0u8; 16];
        expected.copy_from_slice(&b[16..32]);
        return Error::WrongKey {
            expected: coffer_core::KeyId(expected),
        };
    }
    if b.len() < 88 {
        return Error::Truncated;
    }
    Error::CommitmentMismatch
}

/// `KeyEnvelope::decode`: §6.3 rows 1–4.
pub fn key_envelope(b: &[u8]) -> Result<(), Error> {
    prefix(b, KEY_MAGIC)?;
    length(b, KEY_ENVELOPE_LEN)?;
    purpose(b[10])?;
    if b[11] != 0 {
        return Err(Error::ReservedBitsSet);
    }
    Ok(())
}

/// What unwrapping `b` with a KEK of ID `kek_id` must report when the commitment
/// cannot match (§6.3 rows 1–6).
pub fn key_envelope_failure(b: &[u8], kek_id: &[u8; 16]) -> Error {
    if let Err(e) = key_envelope(b) {
        return e;
    }
    if &b[16..32] != kek_id {
        let mut expected = [0u8; 16];
        expected.copy_from_slice(&b[16..32]);
        return Error::WrongKey {
            expected: coffer_core::KeyId(expected),
        };
    }
    Error::CommitmentMismatch
}

/// `PassphraseEnvelope::decode`: §7.3 rows 1–5. Returns the Argon2id memory (KiB).
pub fn passphrase_envelope(b: &[u8]) -> Result<u32, Error> {
    prefix(b, PASS_MAGIC)?;
    length(b, PASS_ENVELOPE_LEN)?;
    purpose(b[10])?;
    if b[11] != 0 || b[28..32].iter().any(|&x| x != 0) {
        return Err(Error::ReservedBitsSet);
    }
    let word = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let bounds = [
        ("argon2 memory KiB", word(16), 8192, 1 << 20),
        ("argon2 passes", word(20), 1, 16),
        ("argon2 lanes", word(24), 1, 4),
    ];
    for (parameter, value, min, max) in bounds {
        if value < min || value > max {
            return Err(Error::ParameterOutOfBounds {
                parameter,
                value: value.into(),
                min: min.into(),
                max: max.into(),
            });
        }
    }
    Ok(word(16))
}

fn length(b: &[u8], len: usize) -> Result<(), Error> {
    match b.len() {
        n if n < len => Err(Error::Truncated),
        n if n > len => Err(Error::TrailingData),
        _ => Ok(()),
    }
}

fn purpose(p: u8) -> Result<(), Error> {
    match p {
        1..=3 => Ok(()),
        purpose => Err(Error::UnsupportedPurpose { purpose }),
    }
}

/// HKDF-Expand-SHA-512 with the key itself as PRK (§1).
pub fn hkdf_expand(prk: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let mut previous: Vec<u8> = Vec::new();
    for (counter, block) in (1u8..).zip(out.chunks_mut(64)) {
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(prk).expect("hmac key");
        mac.update(&previous);
        for part in info {
            mac.update(part);
        }
        mac.update(&[counter]);
        previous = mac.finalize().into_bytes().to_vec();
        block.copy_from_slice(&previous[..block.len()]);
    }
}

/// `key_id(K)` (§2).
pub fn key_id(key: &[u8; 32]) -> [u8; 16] {
    let mut id = [0u8; 16];
    hkdf_expand(key, &[b"coffer/v1 key-id"], &mut id);
    id
}

/// A sealed stream (§5.2) of `plaintext` under `key`, `ctx` and `salt`, built from the
/// spec alone.
pub fn seal_stream(
    suite: u8,
    key: &[u8; 32],
    ctx: &[u8],
    salt: &[u8; 24],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut header = Vec::with_capacity(32);
    header.extend_from_slice(STREAM_MAGIC);
    header.extend_from_slice(&[1, suite, 0, 0, 0, 0, 0, 0]);
    header.extend_from_slice(&key_id(key));
    let name: &[u8] = if suite == 1 {
        b"AEAD_AES_256_GCM"
    } else {
        b"AEAD_CHACHA20_POLY1305"
    };
    let mut okm = [0u8; 76];
    hkdf_expand(
        key,
        &[
            b"c2sp.org/chunked-encryption@v1+",
            name,
            &[0],
            salt,
            &header,
            ctx,
        ],
        &mut okm,
    );
    let (aead_key, rest) = okm.split_at(32);
    let (base_nonce, commitment) = rest.split_at(12);
    let mut out = header;
    out.extend_from_slice(salt);
    out.extend_from_slice(commitment);
    let n = plaintext.len() / 16384 + 1;
    for i in 0..n {
        let chunk = &plaintext[i * 16384..((i + 1) * 16384).min(plaintext.len())];
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(base_nonce);
        for (x, y) in nonce[4..].iter_mut().zip((i as u64).to_be_bytes()) {
            *x ^= y;
        }
        let mut body = chunk.to_vec();
        let tag = if suite == 1 {
            aes_gcm::Aes256Gcm::new_from_slice(aead_key)
                .expect("key")
                .encrypt_in_place_detached((&nonce).into(), b"", &mut body)
                .expect("seal")
                .to_vec()
        } else {
            chacha20poly1305::ChaCha20Poly1305::new_from_slice(aead_key)
                .expect("key")
                .encrypt_in_place_detached((&nonce).into(), b"", &mut body)
                .expect("seal")
                .to_vec()
        };
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
    }
    out
}
