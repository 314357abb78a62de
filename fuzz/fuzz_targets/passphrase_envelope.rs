//! `passphrase_envelope`: parsing of passphrase envelopes, over arbitrary bytes and over
//! mutated valid envelopes, without running Argon2id (so it runs millions of inputs;
//! `passphrase_unwrap` runs the whole unwrap, Argon2id included, far more slowly).
//!
//! Input layout (little-endian; missing bytes read as 0), the same as
//! `passphrase_unwrap`'s so the two share seeds:
//! ```text
//! 0   mode % 2: 0 raw bytes, 1 valid envelope + mutation
//! 1   purpose the caller expects (n % 3 + 1)
//! 2   flags: bit 0 which prepared envelope (suite 1, repository key / suite 2, profile
//!     key), bit 1 splice donor is the other prepared envelope (else the same key under
//!     fresh salts)
//! mode 0: the envelope's bytes
//! mode 1: 10-byte mutation
//! ```
//! Checks:
//! - `PassphraseEnvelope::decode` fails exactly as FORMAT.md §7.3 (rows 1–5, in order;
//!   `spec.rs`) says, and when it succeeds its fields are the bytes at §7.1's offsets
//!   and re-encode to the same 64-byte header;
//! - `unwrap_with_passphrase` given no Argon2id memory fails with that same decoding
//!   error, or with `BufferTooSmall` naming the parameters' memory: decoding and
//!   bounds come before any memory is touched or any Argon2id pass is run.
#![no_main]

use std::sync::LazyLock;

use coffer_core::envelope::Purpose;
use coffer_core::passphrase::{
    self, Argon2Block, Argon2Params, PassphraseEnvelope, PASSPHRASE_HEADER_LEN,
};
use coffer_core::{Error, RustCrypto, SecretKey, Suite};
use coffer_fuzz::*;
use libfuzzer_sys::fuzz_target;

const PASSPHRASE: &[u8] = b"correct horse battery staple";

/// Two valid envelopes and their twins (same key, fresh salts), made once.
static PREPARED: LazyLock<[[Vec<u8>; 2]; 2]> = LazyLock::new(|| {
    let mut memory = vec![Argon2Block::default(); Argon2Params::MIN.memory_kib as usize];
    let mut wrap = |suite, purpose, key: [u8; 32], seed| {
        passphrase::wrap_with_passphrase(
            &RustCrypto,
            suite,
            PASSPHRASE,
            &SecretKey::from_bytes(key),
            purpose,
            7,
            Argon2Params::MIN,
            FUZZ_CONTEXT,
            &mut rng(seed),
            &mut memory,
        )
        .expect("wrap_with_passphrase")
        .to_vec()
    };
    [
        [
            wrap(Suite::Aes256Gcm, Purpose::RepositoryKey, [0x11; 32], 1),
            wrap(Suite::Aes256Gcm, Purpose::RepositoryKey, [0x11; 32], 2),
        ],
        [
            wrap(Suite::ChaCha20Poly1305, Purpose::ProfileKey, [0x22; 32], 3),
            wrap(Suite::ChaCha20Poly1305, Purpose::ProfileKey, [0x22; 32], 4),
        ],
    ]
});

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check(bytes: &[u8], purpose: Purpose) {
    let spec = spec::passphrase_envelope(bytes);
    match (PassphraseEnvelope::decode(bytes), &spec) {
        (Err(got), Err(want)) => assert!(same_error(&got, want), "core {got:?}, spec {want:?}"),
        (Ok(info), Ok(memory)) => {
            assert_eq!(info.params.memory_kib, *memory);
            assert_eq!(
                (info.suite.to_byte(), info.purpose.to_byte()),
                (bytes[9], bytes[10])
            );
            assert_eq!(info.key_version, word(bytes, 12));
            assert_eq!(
                (info.params.passes, info.params.lanes),
                (word(bytes, 20), word(bytes, 24))
            );
            assert_eq!(info.argon2_salt[..], bytes[32..48]);
            assert_eq!(info.key_id.as_bytes()[..], bytes[48..64]);
            assert_eq!(info.encode()[..], bytes[..PASSPHRASE_HEADER_LEN]);
        }
        (got, want) => panic!("core {got:?}, spec {want:?}"),
    }
    let want = match spec {
        Err(e) => e,
        Ok(memory) => Error::BufferTooSmall {
            needed: memory as usize,
            provided: 0,
        },
    };
    match passphrase::unwrap_with_passphrase(
        &RustCrypto,
        PASSPHRASE,
        bytes,
        purpose,
        FUZZ_CONTEXT,
        &mut [],
    ) {
        Ok(_) => panic!("unwrapped without Argon2id memory"),
        Err(e) => assert!(same_error(&e, &want), "unwrap: core {e:?}, spec {want:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.u8() % 2;
    let purpose = Purpose::from_byte(input.u8() % 3 + 1).expect("purpose");
    let flags = input.u8();
    if mode == 0 {
        check(input.rest(), purpose);
        return;
    }
    let prepared = &*PREPARED;
    let chosen = &prepared[usize::from(flags & 1)];
    let donor = if flags & 2 != 0 {
        &prepared[usize::from(!flags & 1)][0]
    } else {
        &chosen[1]
    };
    let bytes = Mutation::parse(&mut input).apply(&chosen[0], donor, 0, 16);
    check(&bytes, purpose);
});
