//! `passphrase_unwrap`: `passphrase::unwrap_with_passphrase` over arbitrary bytes and
//! over mutated valid envelopes, with Argon2id memory for the minimum parameters only
//! (`Argon2Params::MIN`, 8192 blocks = 8 MiB, allocated once per process).
//!
//! Input layout (little-endian; missing bytes read as 0):
//! ```text
//! 0   mode % 2: 0 raw bytes, 1 valid envelope + mutation
//! 1   purpose the caller expects (n % 3 + 1)
//! 2   flags: bit 0 which prepared envelope (suite 1, repository key / suite 2, profile
//!     key), bit 1 splice donor is the other prepared envelope (else the same key and
//!     parameters under fresh salts), bit 2 unwrap with a fuzz-chosen passphrase
//! mode 0: the envelope's bytes
//! mode 1: 10-byte mutation, u8 passphrase length (n % 32), the passphrase
//! ```
//! Checks:
//! - mode 0: decoding errors are exactly FORMAT.md §7.3's (rows 1–5, in order); bounds
//!   are checked before any memory is used: parameters within bounds that need more
//!   than the 8192 blocks given fail with `BufferTooSmall`, never allocate; otherwise
//!   Argon2id runs and the commitment fails (`WrongPassphrase`);
//! - mode 1: the unmodified envelope (or donor) unwraps to its key under the right
//!   passphrase and purpose, `WrongPurpose` under another purpose, `WrongPassphrase`
//!   under another passphrase; any other bytes fail with §7.3's error (decode errors,
//!   `BufferTooSmall`, `WrongPassphrase` if the first 120 bytes changed, else
//!   `CorruptedChunk{0}`).
#![no_main]

use std::cell::RefCell;
use std::sync::LazyLock;

use coffer_core::envelope::Purpose;
use coffer_core::passphrase::{self, Argon2Block, Argon2Params, PassphraseEnvelope};
use coffer_core::{Error, RustCrypto, SecretKey, Suite};
use coffer_fuzz::*;
use libfuzzer_sys::fuzz_target;

const PASSPHRASE: &[u8] = b"correct horse battery staple";
const BLOCKS: usize = Argon2Params::MIN.memory_kib as usize;

thread_local! {
    /// Argon2id memory for the minimum parameters, allocated once.
    static MEMORY: RefCell<Vec<Argon2Block>> = RefCell::new(vec![Argon2Block::default(); BLOCKS]);
}

struct Prepared {
    key: [u8; 32],
    purpose: Purpose,
    envelope: Vec<u8>,
    /// The same key, purpose and parameters under fresh salts.
    twin: Vec<u8>,
}

fn prepare(suite: Suite, purpose: Purpose, key: [u8; 32], seed: u64) -> Prepared {
    let wrap = |seed: u64| {
        MEMORY.with_borrow_mut(|memory| {
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
                memory,
            )
            .expect("wrap_with_passphrase")
            .to_vec()
        })
    };
    Prepared {
        key,
        purpose,
        envelope: wrap(seed),
        twin: wrap(seed + 1),
    }
}

static PREPARED: LazyLock<[Prepared; 2]> = LazyLock::new(|| {
    [
        prepare(Suite::Aes256Gcm, Purpose::RepositoryKey, [0x11; 32], 1),
        prepare(Suite::ChaCha20Poly1305, Purpose::ProfileKey, [0x22; 32], 3),
    ]
});

fn unwrap(
    passphrase: &[u8],
    bytes: &[u8],
    purpose: Purpose,
) -> Result<(SecretKey, PassphraseEnvelope), Error> {
    MEMORY.with_borrow_mut(|memory| {
        assert_eq!(memory.len(), BLOCKS);
        passphrase::unwrap_with_passphrase(
            &RustCrypto,
            passphrase,
            bytes,
            purpose,
            FUZZ_CONTEXT,
            memory,
        )
    })
}

/// The error §7.3 gives for bytes that are no valid envelope under `passphrase`
/// (`intact_prefix`: the first 120 bytes are those of a valid envelope).
fn expected_failure(bytes: &[u8], passphrase_ok: bool, intact_prefix: bool) -> Error {
    match spec::passphrase_envelope(bytes) {
        Err(e) => e,
        Ok(memory) if memory as usize > BLOCKS => Error::BufferTooSmall {
            needed: memory as usize,
            provided: BLOCKS,
        },
        Ok(_) if passphrase_ok && intact_prefix => Error::CorruptedChunk { index: 0 },
        Ok(_) => Error::WrongPassphrase,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.u8() % 2;
    let expected = Purpose::from_byte(input.u8() % 3 + 1).expect("purpose");
    let flags = input.u8();

    if mode == 0 {
        let bytes = input.rest();
        let got = unwrap(PASSPHRASE, bytes, expected);
        let want = expected_failure(bytes, false, false);
        match got {
            Ok(_) => panic!("raw envelope accepted"),
            Err(e) => assert!(
                same_error(&e, &want),
                "raw envelope: core {e:?}, spec {want:?}"
            ),
        }
        return;
    }

    let prepared = &*PREPARED;
    let chosen = &prepared[usize::from(flags & 1)];
    let donor = if flags & 2 != 0 {
        &prepared[usize::from(!flags & 1)].envelope
    } else {
        &chosen.twin
    };
    let mutation = Mutation::parse(&mut input);
    let pass_len = usize::from(input.u8() % 32);
    let fuzz_pass = input.bytes(pass_len);
    let passphrase = if flags & 4 != 0 {
        fuzz_pass
    } else {
        PASSPHRASE
    };
    let passphrase_ok = passphrase == PASSPHRASE;

    let bytes = mutation.apply(&chosen.envelope, donor, 0, 16);
    let got = unwrap(passphrase, &bytes, expected);
    let intact = prepared
        .iter()
        .flat_map(|p| [(&p.envelope, p), (&p.twin, p)])
        .find(|(env, _)| env[..] == bytes[..]);
    match intact {
        Some((env, p)) => {
            let want = if !passphrase_ok {
                Err(Error::WrongPassphrase)
            } else if p.purpose != expected {
                Err(Error::WrongPurpose {
                    expected,
                    found: p.purpose,
                })
            } else {
                Ok(p.key)
            };
            let got_key = got
                .as_ref()
                .map(|(k, _)| *k.expose_secret())
                .map_err(|e| *e);
            assert_eq!(got_key, want, "intact envelope");
            if let Ok((_, info)) = &got {
                assert_eq!(Ok(*info), PassphraseEnvelope::decode(env));
                assert_eq!(info.params, Argon2Params::MIN);
            }
        }
        None => {
            let intact_prefix = prepared
                .iter()
                .flat_map(|p| [&p.envelope, &p.twin])
                .any(|env| bytes.len() >= 120 && env[..120] == bytes[..120]);
            let want = expected_failure(&bytes, passphrase_ok, intact_prefix);
            match got {
                Ok(_) => panic!("modified envelope ({mutation:?}) accepted"),
                Err(e) => assert!(
                    same_error(&e, &want),
                    "modified envelope ({mutation:?}): core {e:?}, spec {want:?}"
                ),
            }
        }
    }
});
