//! `envelope`: key-wrap envelopes (`envelope::unwrap_key`, `rewrap_key`) with a fixed
//! KEK and context, over arbitrary bytes and over mutated envelopes made by `wrap_key`.
//!
//! Input layout (little-endian; missing bytes read as 0):
//! ```text
//! 0   mode % 2: 0 raw bytes, 1 valid envelope + mutation
//! 1   purpose the caller expects (n % 3 + 1)
//! 2   flags: bit 0 suite of the envelope, bit 1 suite of the rewrap, bit 2 the splice
//!     donor wraps another key (else the same key under a fresh salt)
//! mode 0: the envelope's bytes
//! mode 1: u8 the envelope's purpose, u32 key version, u64 salt seed, 10-byte mutation,
//!         32 bytes of the wrapped key (zero-padded)
//! ```
//! Checks:
//! - mode 0: `unwrap_key` and `rewrap_key` fail with exactly the error FORMAT.md §6.3
//!   gives (rows 1–6; the commitment never matches);
//! - mode 1: the unmodified envelope (or the donor) unwraps to its key and header under
//!   the expected purpose, and gives `WrongPurpose` under another one, `WrongKey` under
//!   another KEK and `CommitmentMismatch` under another context; any other bytes fail
//!   with §6.3's error (decode errors, `WrongKey`, `CommitmentMismatch` if the first 104
//!   bytes changed, else `CorruptedChunk{0}`); `rewrap_key` fails exactly as
//!   `unwrap_key` does, and its envelope unwraps under the new KEK only, to the same key,
//!   purpose and version.
#![no_main]

use coffer_core::envelope::{self, KeyEnvelope, Purpose, KEY_ENVELOPE_LEN};
use coffer_core::{Error, RustCrypto, SecretKey, Suite};
use coffer_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn purpose_from(n: u8) -> Purpose {
    Purpose::from_byte(n % 3 + 1).expect("purpose 1..=3")
}

/// `rewrap_key` from the fuzz KEK to the other key: fails exactly as `unwrap` did, or
/// makes an envelope that only the new KEK opens, to the same key.
fn check_rewrap(
    bytes: &[u8],
    purpose: Purpose,
    new_suite: Suite,
    seed: u64,
    unwrapped: &Result<(SecretKey, KeyEnvelope), Error>,
) {
    let kek = fuzz_key();
    let new_kek = other_key();
    let rewrapped = envelope::rewrap_key(
        &RustCrypto,
        &kek,
        &new_kek,
        bytes,
        purpose,
        FUZZ_CONTEXT,
        new_suite,
        &mut rng(seed ^ 0xFEED),
    );
    match (unwrapped, rewrapped) {
        (Err(a), Err(b)) => assert_eq!(*a, b, "rewrap failed differently from unwrap"),
        (Err(a), Ok(_)) => panic!("rewrap accepted what unwrap refused ({a:?})"),
        (Ok(_), Err(b)) => panic!("rewrap refused what unwrap accepted ({b:?})"),
        (Ok((key, info)), Ok(new_env)) => {
            assert_eq!(new_env.len(), KEY_ENVELOPE_LEN);
            let (key2, info2) =
                envelope::unwrap_key(&RustCrypto, &new_kek, &new_env, purpose, FUZZ_CONTEXT)
                    .expect("rewrapped envelope opens under the new KEK");
            assert_eq!(key2, *key, "rewrap changed the key");
            assert_eq!(info2.purpose, info.purpose);
            assert_eq!(info2.key_version, info.key_version);
            assert_eq!(info2.key_id, info.key_id);
            assert_eq!(info2.kek_id, new_kek.id());
            assert_eq!(info2.suite, new_suite);
            assert_eq!(
                envelope::unwrap_key(&RustCrypto, &kek, &new_env, purpose, FUZZ_CONTEXT).err(),
                Some(Error::WrongKey {
                    expected: new_kek.id()
                }),
                "rewrapped envelope under the old KEK"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.u8() % 2;
    let expected = purpose_from(input.u8());
    let flags = input.u8();
    let kek = fuzz_key();
    let new_suite = suite_from(flags >> 1);

    if mode == 0 {
        let bytes = input.rest();
        let got = envelope::unwrap_key(&RustCrypto, &kek, bytes, expected, FUZZ_CONTEXT);
        let want = spec::key_envelope_failure(bytes, kek.id().as_bytes());
        match &got {
            Ok(_) => panic!("raw envelope accepted"),
            Err(e) => assert_eq!(*e, want, "raw envelope"),
        }
        check_rewrap(bytes, expected, new_suite, 0, &got);
        return;
    }

    let suite = suite_from(flags);
    let purpose = purpose_from(input.u8());
    let version = input.u32();
    let seed = input.u64();
    let mutation = Mutation::parse(&mut input);
    let mut key_bytes = [0u8; 32];
    let given = input.bytes(32);
    key_bytes[..given.len()].copy_from_slice(given);
    let wrapped = SecretKey::from_bytes(key_bytes);
    let donor_key = if flags & 4 != 0 {
        SecretKey::generate(&mut rng(seed ^ 0xD0D0))
    } else {
        SecretKey::from_bytes(key_bytes)
    };

    let wrap = |key: &SecretKey, seed: u64| {
        envelope::wrap_key(
            &RustCrypto,
            suite,
            &kek,
            key,
            purpose,
            version,
            FUZZ_CONTEXT,
            &mut rng(seed),
        )
        .expect("wrap_key")
    };
    let original = wrap(&wrapped, seed);
    let donor = wrap(&donor_key, seed ^ 0x5EED);
    let header = KeyEnvelope::decode(&original).expect("a fresh envelope decodes");
    assert_eq!(
        header,
        KeyEnvelope {
            suite,
            purpose,
            key_version: version,
            kek_id: kek.id(),
            key_id: wrapped.id(),
        }
    );

    let bytes = mutation.apply(&original, &donor, 0, 16);
    let got = envelope::unwrap_key(&RustCrypto, &kek, &bytes, expected, FUZZ_CONTEXT);
    let intact = [(&original, &wrapped), (&donor, &donor_key)]
        .into_iter()
        .find(|(env, _)| env[..] == bytes[..]);
    match intact {
        Some((env, key)) => {
            if purpose == expected {
                let (out, info) = got.as_ref().expect("a valid envelope unwraps");
                assert_eq!(out, key, "unwrapped another key");
                assert_eq!(Ok(*info), KeyEnvelope::decode(&env[..]));
            } else {
                assert_eq!(
                    got.as_ref().err(),
                    Some(&Error::WrongPurpose {
                        expected,
                        found: purpose
                    })
                );
            }
            assert_eq!(
                envelope::unwrap_key(&RustCrypto, &other_key(), &bytes, purpose, FUZZ_CONTEXT)
                    .err(),
                Some(Error::WrongKey { expected: kek.id() })
            );
            assert_eq!(
                envelope::unwrap_key(&RustCrypto, &kek, &bytes, purpose, b"another context").err(),
                Some(Error::CommitmentMismatch)
            );
        }
        None => {
            let e = got.as_ref().err().copied();
            let want = match spec::key_envelope(&bytes) {
                Err(d) => d,
                Ok(()) if bytes[16..32] != kek.id().as_bytes()[..] => {
                    spec::key_envelope_failure(&bytes, kek.id().as_bytes())
                }
                Ok(()) if bytes[..104] != original[..104] && bytes[..104] != donor[..104] => {
                    Error::CommitmentMismatch
                }
                Ok(()) => Error::CorruptedChunk { index: 0 },
            };
            assert_eq!(e, Some(want), "modified envelope ({mutation:?})");
        }
    }
    check_rewrap(&bytes, expected, new_suite, seed, &got);
});
