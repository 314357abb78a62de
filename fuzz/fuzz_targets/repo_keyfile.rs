//! `repo_keyfile`: key files (FORMAT.md §21): `keyfile::inspect`, and `keyfile::open`
//! in a fixed repository with a fixed key-encryption key (`Unlock::Kek`).
//!
//! Input: any bytes, as a key file. The seeds include the two files that open
//! ([`coffer_fuzz::repo::valid`]: full and write-only access), a passphrase file, a
//! file under another KEK and one of another repository. No passphrase is ever tried
//! (each try is an Argon2id run): a passphrase file given a KEK must come back
//! `Ok(None)` before any work.
//!
//! Checks: no panic, heap capped; `inspect` accepts only the two lengths of §21, and
//! reports the access, wrapping and repository bytes; `open` returns `Ok(None)` only
//! for a passphrase file or a KEK file naming another KEK, and a key only for a valid
//! file, with its access and secret. Every valid file opens.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::keyfile::{self, Unlock};
use coffer_adapters::repo::keys::Access;
use coffer_core::envelope::{KeyEnvelope, KEY_ENVELOPE_LEN};
use coffer_core::passphrase::PASSPHRASE_ENVELOPE_LEN;
use coffer_fuzz::repo::{kek, valid, KEY_FILE_NAME, REPO_ID};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

const HEAD_LEN: usize = 24;

fuzz_target!(|data: &[u8]| {
    let info = keyfile::inspect(KEY_FILE_NAME, data).ok();
    if let Some(info) = info {
        let envelope = if info.passphrase {
            PASSPHRASE_ENVELOPE_LEN
        } else {
            KEY_ENVELOPE_LEN
        };
        assert_eq!(data.len(), HEAD_LEN + envelope);
        assert_eq!(&data[..4], b"CKF2");
        let access = match info.access {
            Access::Full => 1,
            Access::WriteOnly => 2,
        };
        assert_eq!(data[4..8], [access, 2 - u8::from(info.passphrase), 0, 0]);
        assert_eq!(info.repo[..], data[8..24]);
    }

    let kek_id = kek().id();
    let valid = valid().key_files.iter().find(|f| f.bytes == data);
    match keyfile::open(KEY_FILE_NAME, data, &REPO_ID, &Unlock::Kek(kek())) {
        Ok(Some((access, secret))) => {
            let f = valid.expect("opened a key file it did not wrap");
            assert_eq!(access, f.access);
            assert!(secret == f.secret, "opened to another secret");
        }
        Ok(None) => {
            let info = info.expect("Ok(None) for a file inspect refuses");
            assert_eq!(info.repo, REPO_ID, "Ok(None) for another repository's file");
            if !info.passphrase {
                let env =
                    KeyEnvelope::decode(&data[HEAD_LEN..]).expect("Ok(None) for a bad envelope");
                assert_ne!(env.kek_id, kek_id, "Ok(None) for a file under this KEK");
            }
        }
        Err(e) => assert!(valid.is_none(), "a valid key file failed: {e}"),
    }
});
