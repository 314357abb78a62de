//! Key-wrap and passphrase envelopes: round trips, rewrap, every bound field and every
//! single-bit flip rejected, Argon2id parameters bounded before any work.

mod common;

use coffer_core::envelope::{self, KeyEnvelope, Purpose, KEY_ENVELOPE_LEN};
use coffer_core::passphrase::{
    self, Argon2Block, Argon2Params, PassphraseEnvelope, PASSPHRASE_ENVELOPE_LEN,
};
use coffer_core::{Error, RustCrypto, SecretKey, Suite};
use common::rng;

const CTX: &[u8] = b"tenant-1/repo-7";

/// Fast parameters for tests: the smallest a reader accepts.
const TEST_PARAMS: Argon2Params = Argon2Params::MIN;

fn memory(params: Argon2Params) -> Vec<Argon2Block> {
    vec![Argon2Block::default(); params.blocks()]
}

#[test]
fn key_envelope_round_trip_and_rewrap() {
    let mut r = rng(20);
    let kek = SecretKey::generate(&mut r);
    let key = SecretKey::generate(&mut r);
    for suite in Suite::ALL {
        let env = envelope::wrap_key(
            &RustCrypto,
            suite,
            &kek,
            &key,
            Purpose::RepositoryKey,
            7,
            CTX,
            &mut r,
        )
        .unwrap();
        assert_eq!(env.len(), KEY_ENVELOPE_LEN);
        let info = KeyEnvelope::decode(&env).unwrap();
        assert_eq!(
            (
                info.suite,
                info.purpose,
                info.key_version,
                info.kek_id,
                info.key_id
            ),
            (suite, Purpose::RepositoryKey, 7, kek.id(), key.id())
        );
        let (opened, _) =
            envelope::unwrap_key(&RustCrypto, &kek, &env, Purpose::RepositoryKey, CTX).unwrap();
        assert!(opened == key);

        // Rotation: a new KEK opens the rewrapped envelope; the key and its ID stay.
        let new_kek = SecretKey::generate(&mut r);
        let rewrapped = envelope::rewrap_key(
            &RustCrypto,
            &kek,
            &new_kek,
            &env,
            Purpose::RepositoryKey,
            CTX,
            suite,
            &mut r,
        )
        .unwrap();
        let (again, info2) = envelope::unwrap_key(
            &RustCrypto,
            &new_kek,
            &rewrapped,
            Purpose::RepositoryKey,
            CTX,
        )
        .unwrap();
        assert!(again == key);
        assert_eq!(
            (info2.key_id, info2.key_version, info2.kek_id),
            (key.id(), 7, new_kek.id())
        );
        assert_eq!(
            envelope::unwrap_key(&RustCrypto, &kek, &rewrapped, Purpose::RepositoryKey, CTX).err(),
            Some(Error::WrongKey {
                expected: new_kek.id()
            })
        );
    }
}

#[test]
fn key_envelope_rejects_wrong_kek_context_purpose_and_length() {
    let mut r = rng(21);
    let kek = SecretKey::generate(&mut r);
    let key = SecretKey::generate(&mut r);
    let env = envelope::wrap_key(
        &RustCrypto,
        Suite::Aes256Gcm,
        &kek,
        &key,
        Purpose::ProfileKey,
        1,
        CTX,
        &mut r,
    )
    .unwrap();
    let other = SecretKey::generate(&mut r);
    let open = |k: &SecretKey, e: &[u8], p: Purpose, c: &[u8]| {
        envelope::unwrap_key(&RustCrypto, k, e, p, c)
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(
        open(&other, &env, Purpose::ProfileKey, CTX),
        Error::WrongKey { expected: kek.id() }
    );
    assert_eq!(
        open(&kek, &env, Purpose::ProfileKey, b"tenant-2/repo-7"),
        Error::CommitmentMismatch
    );
    assert_eq!(
        open(&kek, &env, Purpose::RepositoryKey, CTX),
        Error::WrongPurpose {
            expected: Purpose::RepositoryKey,
            found: Purpose::ProfileKey
        }
    );
    assert_eq!(
        open(&kek, &env[..KEY_ENVELOPE_LEN - 1], Purpose::ProfileKey, CTX),
        Error::Truncated
    );
    let mut long = env.to_vec();
    long.push(0);
    assert_eq!(
        open(&kek, &long, Purpose::ProfileKey, CTX),
        Error::TrailingData
    );
}

#[test]
fn every_single_bit_flip_of_a_key_envelope_is_rejected() {
    let mut r = rng(22);
    let kek = SecretKey::generate(&mut r);
    let key = SecretKey::generate(&mut r);
    let env = envelope::wrap_key(
        &RustCrypto,
        Suite::ChaCha20Poly1305,
        &kek,
        &key,
        Purpose::RepositoryKey,
        3,
        CTX,
        &mut r,
    )
    .unwrap();
    for at in 0..env.len() {
        for bit in 0..8 {
            let mut bad = env;
            bad[at] ^= 1 << bit;
            let err = envelope::unwrap_key(&RustCrypto, &kek, &bad, Purpose::RepositoryKey, CTX)
                .map(|_| ())
                .unwrap_err();
            let ok = match at {
                0..=7 => err == Error::BadMagic,
                8 => matches!(err, Error::UnsupportedVersion { .. }),
                9 => matches!(err, Error::UnsupportedSuite { .. }),
                // A purpose flip may land on another known purpose: the commitment catches it.
                10 => matches!(
                    err,
                    Error::UnsupportedPurpose { .. } | Error::CommitmentMismatch
                ),
                11 => err == Error::ReservedBitsSet,
                16..=31 => matches!(err, Error::WrongKey { expected } if expected != kek.id()),
                12..=15 | 32..=103 => err == Error::CommitmentMismatch,
                _ => err == Error::CorruptedChunk { index: 0 },
            };
            assert!(ok, "byte {at} bit {bit}: {err:?}");
        }
    }
}

#[test]
fn passphrase_envelope_round_trip_and_errors() {
    let mut r = rng(23);
    let key = SecretKey::generate(&mut r);
    let mut mem = memory(TEST_PARAMS);
    let env = passphrase::wrap_with_passphrase(
        &RustCrypto,
        Suite::Aes256Gcm,
        b"correct horse",
        &key,
        Purpose::MasterKey,
        1,
        TEST_PARAMS,
        CTX,
        &mut r,
        &mut mem,
    )
    .unwrap();
    assert_eq!(env.len(), PASSPHRASE_ENVELOPE_LEN);
    assert!(
        mem.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)),
        "Argon2 memory is wiped after use"
    );
    let (opened, info) = passphrase::unwrap_with_passphrase(
        &RustCrypto,
        b"correct horse",
        &env,
        Purpose::MasterKey,
        CTX,
        &mut mem,
    )
    .unwrap();
    assert!(opened == key);
    assert_eq!((info.params, info.key_id), (TEST_PARAMS, key.id()));

    let open = |pass: &[u8], e: &[u8], p: Purpose, c: &[u8], m: &mut [Argon2Block]| {
        passphrase::unwrap_with_passphrase(&RustCrypto, pass, e, p, c, m)
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(
        open(b"correct horsf", &env, Purpose::MasterKey, CTX, &mut mem),
        Error::WrongPassphrase
    );
    assert_eq!(
        open(
            b"correct horse",
            &env,
            Purpose::MasterKey,
            b"other",
            &mut mem
        ),
        Error::WrongPassphrase
    );
    assert_eq!(
        open(b"correct horse", &env, Purpose::ProfileKey, CTX, &mut mem),
        Error::WrongPurpose {
            expected: Purpose::ProfileKey,
            found: Purpose::MasterKey
        }
    );
    let mut small = memory(Argon2Params {
        memory_kib: 1024,
        ..TEST_PARAMS
    });
    assert_eq!(
        open(b"correct horse", &env, Purpose::MasterKey, CTX, &mut small),
        Error::BufferTooSmall {
            needed: TEST_PARAMS.blocks(),
            provided: 1024
        }
    );
    // The salt, the commitment and the sealed key are authenticated like any chunk.
    for at in [64usize, 100, 130, 160] {
        let mut bad = env;
        bad[at] ^= 0x01;
        assert!(
            matches!(
                open(b"correct horse", &bad, Purpose::MasterKey, CTX, &mut mem),
                Error::WrongPassphrase | Error::CorruptedChunk { index: 0 }
            ),
            "byte {at}"
        );
    }
}

/// A hostile envelope asking for too much (or too little) work is refused before
/// Argon2id runs: no memory is asked for, no time is spent.
#[test]
fn argon2_parameters_are_bounded_on_read_in_both_directions() {
    let mut r = rng(24);
    let key = SecretKey::generate(&mut r);
    let mut mem = memory(TEST_PARAMS);
    let env = passphrase::wrap_with_passphrase(
        &RustCrypto,
        Suite::Aes256Gcm,
        b"pw",
        &key,
        Purpose::MasterKey,
        1,
        TEST_PARAMS,
        b"",
        &mut r,
        &mut mem,
    )
    .unwrap();
    let cases: [(usize, u32, &str); 6] = [
        (16, 4 * 1024 * 1024, "argon2 memory KiB"), // 4 GiB
        (16, 64, "argon2 memory KiB"),
        (20, 1_000_000_000, "argon2 passes"),
        (20, 0, "argon2 passes"),
        (24, 64, "argon2 lanes"),
        (24, 0, "argon2 lanes"),
    ];
    for (at, value, name) in cases {
        let mut bad = env;
        bad[at..at + 4].copy_from_slice(&value.to_be_bytes());
        let err = PassphraseEnvelope::decode(&bad).unwrap_err();
        assert!(
            matches!(err, Error::ParameterOutOfBounds { parameter, value: v, .. } if parameter == name && v == u64::from(value)),
            "{name}={value}: {err:?}"
        );
        // The caller's tiny buffer is never even looked at.
        let err2 = passphrase::unwrap_with_passphrase(
            &RustCrypto,
            b"pw",
            &bad,
            Purpose::MasterKey,
            b"",
            &mut [],
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(err2, err);
    }
    // Writing refuses what reading would refuse.
    let too_weak = Argon2Params {
        memory_kib: 64,
        ..TEST_PARAMS
    };
    assert!(matches!(
        passphrase::wrap_with_passphrase(
            &RustCrypto,
            Suite::Aes256Gcm,
            b"pw",
            &key,
            Purpose::MasterKey,
            1,
            too_weak,
            b"",
            &mut r,
            &mut mem
        ),
        Err(Error::ParameterOutOfBounds { .. })
    ));
    // Reserved bytes must be zero.
    let mut reserved = env;
    reserved[30] = 1;
    assert_eq!(
        PassphraseEnvelope::decode(&reserved).unwrap_err(),
        Error::ReservedBitsSet
    );
}
