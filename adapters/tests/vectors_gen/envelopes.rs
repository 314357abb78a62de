//! Key-wrap and passphrase envelope vectors.

use coffer_core::chunked;
use coffer_core::envelope::{self, KeyEnvelope, Purpose, KEY_ENVELOPE_HEADER_LEN};
use coffer_core::passphrase::{
    self, Argon2Block, Argon2Params, PassphraseEnvelope, PASSPHRASE_HEADER_LEN,
};
use coffer_core::{Error, KeyId, RustCrypto, SecretKey, Suite};
use serde_json::{json, Map, Value};

use super::{hexv, File};

const PURPOSES: [(Purpose, &str); 3] = [
    (Purpose::RepositoryKey, "RepositoryKey"),
    (Purpose::ProfileKey, "ProfileKey"),
    (Purpose::MasterKey, "MasterKey"),
];

fn purpose_name(p: Purpose) -> &'static str {
    PURPOSES.iter().find(|(q, _)| *q == p).unwrap().1
}

/// Seals `secret` under `kek` behind an arbitrary (possibly non-conforming) header,
/// exactly as a conforming writer would seal a conforming one.
fn forge(
    f: &mut File,
    suite: Suite,
    kek: &SecretKey,
    header: &[u8],
    ctx: &[u8],
    secret: &[u8; 32],
) -> Vec<u8> {
    let mut body = *secret;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(f.array());
    let (preamble, tag) =
        chunked::seal_short(&RustCrypto, suite, kek, &[header, ctx], &mut rng, &mut body).unwrap();
    [header, &preamble, &body, &tag].concat()
}

fn common_notes(f: &mut File, magic: &str) {
    let n = |f: &mut File, flag, bug, d: &str| f.note(flag, bug, d);
    n(
        f,
        "ModifiedMagic",
        "MISSING_STEP",
        &format!("The magic is not {magic} (BadMagic), checked first."),
    );
    n(
        f,
        "UnsupportedVersion",
        "MISSING_STEP",
        "The version byte is not 1 (UnsupportedVersion).",
    );
    n(
        f,
        "UnsupportedSuite",
        "MISSING_STEP",
        "The suite byte names no suite (UnsupportedSuite).",
    );
    n(
        f,
        "UnsupportedPurpose",
        "MISSING_STEP",
        "The purpose byte names no purpose (UnsupportedPurpose).",
    );
    n(f, "ReservedBitsSet", "MISSING_STEP", "A reserved byte is not zero (ReservedBitsSet), also when the envelope was sealed with it set, so the commitment alone would accept it.");
    n(f, "ModifiedHeader", "AUTH_BYPASS", "A bound header field (suite, purpose, key version, wrapped key ID, Argon2 parameters or salt) was changed to another acceptable value: the header is the context, so the commitment check fails.");
    n(f, "ModifiedCiphertext", "AUTH_BYPASS", "The salt, commitment, sealed key or tag was modified: CommitmentMismatch (WrongPassphrase for passphrase envelopes) for the salt and commitment, CorruptedChunk 0 for the sealed key and tag.");
    n(
        f,
        "Truncation",
        "AUTH_BYPASS",
        "The envelope is shorter than its fixed length (Truncated).",
    );
    n(f, "NonCanonical", "CAN_OF_WORMS", "An encoding a lax parser might accept: extra bytes after the fixed length (TrailingData), or reserved bytes set in an otherwise authentic envelope. Every envelope has exactly one valid encoding.");
    n(
        f,
        "WrongContext",
        "MISSING_STEP",
        "A valid envelope opened with another caller context: the commitment check fails.",
    );
    n(f, "WrongPurpose", "MISSING_STEP", "An authentic envelope that wraps a key for another purpose than the reader asks for (WrongPurpose), checked after the envelope authenticated.");
    n(f, "KeyIdMismatch", "MISSING_STEP", "An authentic envelope whose header states another key ID than the wrapped key's: the reader must compare after opening (KeyIdMismatch).");
    n(f, "EdgeValue", "EDGE_CASE", "A valid envelope with a field at an edge of its range (key version 0 or 2^32-1, empty context or passphrase).");
}

fn envelope_fields(
    secret_name: &str,
    secret: &[u8],
    ctx: &[u8],
    purpose: Purpose,
    env: &[u8],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(secret_name.into(), hexv(secret));
    m.insert("ctx".into(), hexv(ctx));
    m.insert("purpose".into(), json!(purpose_name(purpose)));
    m.insert("envelope".into(), hexv(env));
    m
}

fn valid_fields(m: &mut Map<String, Value>, wrapped: &SecretKey, suite: Suite, version: u32) {
    m.insert("wrappedKey".into(), hexv(wrapped.expose_secret()));
    m.insert("wrappedKeyId".into(), hexv(wrapped.id().as_bytes()));
    m.insert("suite".into(), json!(suite.to_byte()));
    m.insert("keyVersion".into(), json!(version));
}

pub fn key_envelope_file() -> File {
    let mut f = File::new(
        "coffer_key_envelope_test.json",
        "Coffer key-wrap envelope v1",
        0xC0FF_EE03,
        &[
            "Coffer key-wrap envelopes (FORMAT.md §6): a 48-byte header, then a 32-byte key sealed under a KEK with the header followed by ctx as context.",
            "Unwrap each envelope with kek, ctx and purpose; see test-vectors/README.md.",
        ],
    );
    common_notes(&mut f, "COFFER/K");
    f.note("ModifiedKekId", "MISSING_STEP", "The header's KEK ID was changed: the reader selects the KEK by ID and must report WrongKey naming the header's KEK ID.");
    f.note("WrongKek", "MISSING_STEP", "A valid envelope opened with another KEK: WrongKey, naming the KEK the header names, before any decryption.");
    f.note(
        "InvalidKeySize",
        "BASIC",
        "The KEK is not 32 bytes (InvalidKeyLength).",
    );
    f.group_field("type", json!("CofferKeyEnvelope"));

    let kek = SecretKey::from_bytes(f.array());
    let other_kek = SecretKey::from_bytes(f.array());
    let ctx = b"tenant 7 / repository 3".to_vec();
    let wrap = |f: &mut File, suite, wrapped: &SecretKey, purpose, version, ctx: &[u8]| {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(f.array());
        envelope::wrap_key(
            &RustCrypto,
            suite,
            &kek,
            wrapped,
            purpose,
            version,
            ctx,
            &mut rng,
        )
        .unwrap()
    };
    let valid = |f: &mut File,
                 comment: &str,
                 flags: &[&str],
                 env: &[u8],
                 wrapped: &SecretKey,
                 suite,
                 purpose,
                 version,
                 ctx: &[u8]| {
        let mut m = envelope_fields("kek", kek.expose_secret(), ctx, purpose, env);
        valid_fields(&mut m, wrapped, suite, version);
        m.insert("kekId".into(), hexv(kek.id().as_bytes()));
        f.add(comment, flags, m, Ok(()));
    };

    // ---- valid ----
    for suite in Suite::ALL {
        for (purpose, name) in PURPOSES {
            let wrapped = SecretKey::from_bytes(f.array());
            let env = wrap(&mut f, suite, &wrapped, purpose, 1, &ctx);
            valid(
                &mut f,
                &format!("{} {name}, key version 1", suite.aead_name()),
                &[],
                &env,
                &wrapped,
                suite,
                purpose,
                1,
                &ctx,
            );
        }
    }
    for (version, ctx_here, comment) in [
        (0u32, ctx.clone(), "key version 0"),
        (u32::MAX, ctx.clone(), "key version 2^32-1"),
        (5, Vec::new(), "empty context"),
    ] {
        let wrapped = SecretKey::from_bytes(f.array());
        let env = wrap(
            &mut f,
            Suite::Aes256Gcm,
            &wrapped,
            Purpose::RepositoryKey,
            version,
            &ctx_here,
        );
        valid(
            &mut f,
            comment,
            &["EdgeValue"],
            &env,
            &wrapped,
            Suite::Aes256Gcm,
            Purpose::RepositoryKey,
            version,
            &ctx_here,
        );
    }

    // ---- invalid ----
    let wrapped = SecretKey::from_bytes(f.array());
    let base = wrap(
        &mut f,
        Suite::Aes256Gcm,
        &wrapped,
        Purpose::RepositoryKey,
        9,
        &ctx,
    );
    let invalid = |f: &mut File,
                   comment: &str,
                   flags: &[&str],
                   kek_bytes: &[u8],
                   ctx: &[u8],
                   purpose: Purpose,
                   env: &[u8],
                   e: Error| {
        let m = envelope_fields("kek", kek_bytes, ctx, purpose, env);
        f.add(comment, flags, m, Err(e));
    };
    let k = kek.expose_secret().to_vec();
    let rk = Purpose::RepositoryKey;
    let set = |at: usize, value: u8| {
        let mut bad = base;
        bad[at] = value;
        bad
    };
    invalid(
        &mut f,
        "magic: first byte lower-case",
        &["ModifiedMagic"],
        &k,
        &ctx,
        rk,
        &set(0, b'c'),
        Error::BadMagic,
    );
    invalid(
        &mut f,
        "magic: COFFER/S, a stream's",
        &["ModifiedMagic"],
        &k,
        &ctx,
        rk,
        &set(7, b'S'),
        Error::BadMagic,
    );
    invalid(
        &mut f,
        "magic: COFFER/P, a passphrase envelope's",
        &["ModifiedMagic"],
        &k,
        &ctx,
        rk,
        &set(7, b'P'),
        Error::BadMagic,
    );
    for v in [0u8, 2] {
        invalid(
            &mut f,
            &format!("version {v}"),
            &["UnsupportedVersion"],
            &k,
            &ctx,
            rk,
            &set(8, v),
            Error::UnsupportedVersion { version: v },
        );
    }
    for v in [0u8, 3] {
        invalid(
            &mut f,
            &format!("suite {v}"),
            &["UnsupportedSuite"],
            &k,
            &ctx,
            rk,
            &set(9, v),
            Error::UnsupportedSuite { suite: v },
        );
    }
    invalid(
        &mut f,
        "suite changed to ChaCha20-Poly1305",
        &["ModifiedHeader"],
        &k,
        &ctx,
        rk,
        &set(9, 2),
        Error::CommitmentMismatch,
    );
    for v in [0u8, 4, 255] {
        invalid(
            &mut f,
            &format!("purpose {v}"),
            &["UnsupportedPurpose"],
            &k,
            &ctx,
            rk,
            &set(10, v),
            Error::UnsupportedPurpose { purpose: v },
        );
    }
    invalid(
        &mut f,
        "purpose changed to ProfileKey, opened as ProfileKey",
        &["ModifiedHeader"],
        &k,
        &ctx,
        Purpose::ProfileKey,
        &set(10, 2),
        Error::CommitmentMismatch,
    );
    invalid(
        &mut f,
        "reserved byte 11 set",
        &["ReservedBitsSet"],
        &k,
        &ctx,
        rk,
        &set(11, 1),
        Error::ReservedBitsSet,
    );
    invalid(
        &mut f,
        "key version changed (9 to 10)",
        &["ModifiedHeader"],
        &k,
        &ctx,
        rk,
        &set(15, 10),
        Error::CommitmentMismatch,
    );
    invalid(
        &mut f,
        "key version's high byte changed",
        &["ModifiedHeader"],
        &k,
        &ctx,
        rk,
        &set(12, 1),
        Error::CommitmentMismatch,
    );
    let mut bad = base;
    bad[16] ^= 1;
    let named = KeyId(bad[16..32].try_into().unwrap());
    invalid(
        &mut f,
        "KEK ID flipped",
        &["ModifiedKekId"],
        &k,
        &ctx,
        rk,
        &bad,
        Error::WrongKey { expected: named },
    );
    let mut bad = base;
    bad[47] ^= 1;
    invalid(
        &mut f,
        "wrapped key ID flipped",
        &["ModifiedHeader"],
        &k,
        &ctx,
        rk,
        &bad,
        Error::CommitmentMismatch,
    );
    for (at, what, e) in [
        (48usize, "salt", Error::CommitmentMismatch),
        (72, "commitment", Error::CommitmentMismatch),
        (104, "sealed key", Error::CorruptedChunk { index: 0 }),
        (
            135,
            "sealed key's last byte",
            Error::CorruptedChunk { index: 0 },
        ),
        (136, "tag", Error::CorruptedChunk { index: 0 }),
        (151, "tag's last byte", Error::CorruptedChunk { index: 0 }),
    ] {
        let mut bad = base;
        bad[at] ^= 0x40;
        invalid(
            &mut f,
            &format!("{what} flipped"),
            &["ModifiedCiphertext"],
            &k,
            &ctx,
            rk,
            &bad,
            e,
        );
    }
    for len in [0usize, 4, 8, 47, 48, 104, 151] {
        invalid(
            &mut f,
            &format!("truncated to {len} bytes"),
            &["Truncation"],
            &k,
            &ctx,
            rk,
            &base[..len],
            Error::Truncated,
        );
    }
    invalid(
        &mut f,
        "one zero byte appended",
        &["NonCanonical"],
        &k,
        &ctx,
        rk,
        &[&base[..], &[0]].concat(),
        Error::TrailingData,
    );
    invalid(
        &mut f,
        "a second envelope appended",
        &["NonCanonical"],
        &k,
        &ctx,
        rk,
        &[&base[..], &base[..]].concat(),
        Error::TrailingData,
    );
    let mut header = KeyEnvelope {
        suite: Suite::Aes256Gcm,
        purpose: rk,
        key_version: 9,
        kek_id: kek.id(),
        key_id: wrapped.id(),
    }
    .encode();
    header[11] = 0x01;
    let forged = forge(
        &mut f,
        Suite::Aes256Gcm,
        &kek,
        &header,
        &ctx,
        wrapped.expose_secret(),
    );
    invalid(
        &mut f,
        "reserved byte set and sealed that way (authentic)",
        &["NonCanonical", "ReservedBitsSet"],
        &k,
        &ctx,
        rk,
        &forged,
        Error::ReservedBitsSet,
    );
    invalid(
        &mut f,
        "opened with another KEK",
        &["WrongKek"],
        other_kek.expose_secret(),
        &ctx,
        rk,
        &base,
        Error::WrongKey { expected: kek.id() },
    );
    invalid(
        &mut f,
        "opened with another context",
        &["WrongContext"],
        &k,
        b"tenant 7 / repository 4",
        rk,
        &base,
        Error::CommitmentMismatch,
    );
    invalid(
        &mut f,
        "opened with an empty context",
        &["WrongContext"],
        &k,
        b"",
        rk,
        &base,
        Error::CommitmentMismatch,
    );
    for (p, _) in &PURPOSES[1..] {
        invalid(
            &mut f,
            &format!("a RepositoryKey envelope opened as {}", purpose_name(*p)),
            &["WrongPurpose"],
            &k,
            &ctx,
            *p,
            &base,
            Error::WrongPurpose {
                expected: *p,
                found: rk,
            },
        );
    }
    let header = KeyEnvelope {
        suite: Suite::Aes256Gcm,
        purpose: rk,
        key_version: 9,
        kek_id: kek.id(),
        key_id: other_kek.id(),
    }
    .encode();
    let forged = forge(
        &mut f,
        Suite::Aes256Gcm,
        &kek,
        &header,
        &ctx,
        wrapped.expose_secret(),
    );
    invalid(
        &mut f,
        "authentic, but the header states another key's ID",
        &["KeyIdMismatch"],
        &k,
        &ctx,
        rk,
        &forged,
        Error::KeyIdMismatch,
    );
    for len in [31usize, 33] {
        let short = [&k[..], &[7u8]].concat()[..len].to_vec();
        invalid(
            &mut f,
            &format!("{len}-byte KEK"),
            &["InvalidKeySize"],
            &short,
            &ctx,
            rk,
            &base,
            Error::InvalidKeyLength { len },
        );
    }
    assert_eq!(KEY_ENVELOPE_HEADER_LEN, 48);
    f
}

pub fn passphrase_envelope_file() -> File {
    let mut f = File::new(
        "coffer_passphrase_envelope_test.json",
        "Coffer passphrase envelope v1",
        0xC0FF_EE04,
        &[
            "Coffer passphrase envelopes (FORMAT.md §7): a 64-byte header with Argon2id parameters, then a 32-byte key sealed under Argon2id(passphrase) with the header followed by ctx as context.",
            "Valid vectors use small Argon2id parameters so they run fast; see test-vectors/README.md.",
        ],
    );
    common_notes(&mut f, "COFFER/P");
    f.note("WrongPassphrase", "MISSING_STEP", "A valid envelope opened with another passphrase: the commitment check fails (WrongPassphrase).");
    f.note("Argon2ParameterTooLow", "MODIFIED_PARAMETER", "An Argon2id parameter below the bounds of FORMAT.md §7.2 (memory < 8192 KiB, passes < 1, lanes < 1): refused before running Argon2id (ParameterOutOfBounds).");
    f.note("Argon2ParameterTooHigh", "CAN_OF_WORMS", "An Argon2id parameter above the bounds (memory > 1 GiB, passes > 16, lanes > 4): a hostile envelope must not make the reader allocate or spin; refused before running Argon2id (ParameterOutOfBounds).");
    f.group_field("type", json!("CofferPassphraseEnvelope"));

    let small = Argon2Params {
        memory_kib: 8192,
        passes: 1,
        lanes: 1,
    };
    let pass = "correct horse battery staple".as_bytes().to_vec();
    let ctx = b"profile alice".to_vec();
    let mut memory = vec![Argon2Block::default(); 16384];
    let mut wrap = |f: &mut File,
                    suite,
                    pass: &[u8],
                    wrapped: &SecretKey,
                    purpose,
                    version,
                    params: Argon2Params,
                    ctx: &[u8]| {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(f.array());
        passphrase::wrap_with_passphrase(
            &RustCrypto,
            suite,
            pass,
            wrapped,
            purpose,
            version,
            params,
            ctx,
            &mut rng,
            &mut memory,
        )
        .unwrap()
    };
    let valid = |f: &mut File,
                 comment: &str,
                 flags: &[&str],
                 pass: &[u8],
                 env: &[u8],
                 wrapped: &SecretKey,
                 suite,
                 purpose,
                 version,
                 params: Argon2Params,
                 ctx: &[u8]| {
        let mut m = envelope_fields("passphrase", pass, ctx, purpose, env);
        valid_fields(&mut m, wrapped, suite, version);
        m.insert(
            "argon2".into(),
            json!({"memoryKib": params.memory_kib, "passes": params.passes, "lanes": params.lanes}),
        );
        f.add(comment, flags, m, Ok(()));
    };

    // ---- valid ----
    for (suite, purpose, params) in [
        (Suite::Aes256Gcm, Purpose::MasterKey, small),
        (Suite::ChaCha20Poly1305, Purpose::ProfileKey, small),
        (
            Suite::Aes256Gcm,
            Purpose::RepositoryKey,
            Argon2Params {
                memory_kib: 16384,
                passes: 2,
                lanes: 2,
            },
        ),
    ] {
        let wrapped = SecretKey::from_bytes(f.array());
        let env = wrap(&mut f, suite, &pass, &wrapped, purpose, 1, params, &ctx);
        let comment = format!(
            "{} {}, m={} KiB t={} p={}",
            suite.aead_name(),
            purpose_name(purpose),
            params.memory_kib,
            params.passes,
            params.lanes
        );
        valid(
            &mut f,
            &comment,
            &[],
            &pass,
            &env,
            &wrapped,
            suite,
            purpose,
            1,
            params,
            &ctx,
        );
    }
    for (p, c, comment) in [
        (Vec::new(), ctx.clone(), "empty passphrase"),
        (
            "pässwörd ✓".as_bytes().to_vec(),
            ctx.clone(),
            "non-ASCII UTF-8 passphrase",
        ),
        (pass.clone(), Vec::new(), "empty context"),
    ] {
        let wrapped = SecretKey::from_bytes(f.array());
        let env = wrap(
            &mut f,
            Suite::Aes256Gcm,
            &p,
            &wrapped,
            Purpose::MasterKey,
            u32::MAX,
            small,
            &c,
        );
        valid(
            &mut f,
            comment,
            &["EdgeValue"],
            &p,
            &env,
            &wrapped,
            Suite::Aes256Gcm,
            Purpose::MasterKey,
            u32::MAX,
            small,
            &c,
        );
    }

    // ---- invalid ----
    let wrapped = SecretKey::from_bytes(f.array());
    let mk = Purpose::MasterKey;
    let base = wrap(
        &mut f,
        Suite::Aes256Gcm,
        &pass,
        &wrapped,
        mk,
        3,
        small,
        &ctx,
    );
    let invalid = |f: &mut File,
                   comment: &str,
                   flags: &[&str],
                   pass: &[u8],
                   ctx: &[u8],
                   purpose: Purpose,
                   env: &[u8],
                   e: Error| {
        let m = envelope_fields("passphrase", pass, ctx, purpose, env);
        f.add(comment, flags, m, Err(e));
    };
    let set = |at: usize, bytes: &[u8]| {
        let mut bad = base;
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        bad
    };
    invalid(
        &mut f,
        "magic: COFFER/K, a key envelope's",
        &["ModifiedMagic"],
        &pass,
        &ctx,
        mk,
        &set(7, b"K"),
        Error::BadMagic,
    );
    invalid(
        &mut f,
        "magic: first byte changed",
        &["ModifiedMagic"],
        &pass,
        &ctx,
        mk,
        &set(0, b"D"),
        Error::BadMagic,
    );
    invalid(
        &mut f,
        "version 2",
        &["UnsupportedVersion"],
        &pass,
        &ctx,
        mk,
        &set(8, &[2]),
        Error::UnsupportedVersion { version: 2 },
    );
    invalid(
        &mut f,
        "suite 0",
        &["UnsupportedSuite"],
        &pass,
        &ctx,
        mk,
        &set(9, &[0]),
        Error::UnsupportedSuite { suite: 0 },
    );
    invalid(
        &mut f,
        "suite changed to ChaCha20-Poly1305",
        &["ModifiedHeader"],
        &pass,
        &ctx,
        mk,
        &set(9, &[2]),
        Error::WrongPassphrase,
    );
    invalid(
        &mut f,
        "purpose 0",
        &["UnsupportedPurpose"],
        &pass,
        &ctx,
        mk,
        &set(10, &[0]),
        Error::UnsupportedPurpose { purpose: 0 },
    );
    invalid(
        &mut f,
        "reserved byte 11 set",
        &["ReservedBitsSet"],
        &pass,
        &ctx,
        mk,
        &set(11, &[1]),
        Error::ReservedBitsSet,
    );
    invalid(
        &mut f,
        "reserved byte 28 set",
        &["ReservedBitsSet"],
        &pass,
        &ctx,
        mk,
        &set(28, &[1]),
        Error::ReservedBitsSet,
    );
    invalid(
        &mut f,
        "reserved byte 31 set",
        &["ReservedBitsSet"],
        &pass,
        &ctx,
        mk,
        &set(31, &[0x80]),
        Error::ReservedBitsSet,
    );
    invalid(
        &mut f,
        "key version changed",
        &["ModifiedHeader"],
        &pass,
        &ctx,
        mk,
        &set(15, &[4]),
        Error::WrongPassphrase,
    );
    let bound = |parameter, value: u32, min: u32, max: u32| Error::ParameterOutOfBounds {
        parameter,
        value: value.into(),
        min: min.into(),
        max: max.into(),
    };
    let (lo, hi) = (Argon2Params::MIN, Argon2Params::MAX);
    for (at, value, flag, comment) in [
        (16usize, 0u32, "Argon2ParameterTooLow", "memory 0 KiB"),
        (
            16,
            8191,
            "Argon2ParameterTooLow",
            "memory 8191 KiB, one below the minimum",
        ),
        (
            16,
            1_048_577,
            "Argon2ParameterTooHigh",
            "memory 1 GiB + 1 KiB",
        ),
        (
            16,
            u32::MAX,
            "Argon2ParameterTooHigh",
            "memory 2^32-1 KiB (4 TiB)",
        ),
        (20, 0, "Argon2ParameterTooLow", "0 passes"),
        (20, 17, "Argon2ParameterTooHigh", "17 passes"),
        (20, 1_000_000_000, "Argon2ParameterTooHigh", "10^9 passes"),
        (24, 0, "Argon2ParameterTooLow", "0 lanes"),
        (24, 5, "Argon2ParameterTooHigh", "5 lanes"),
        (24, u32::MAX, "Argon2ParameterTooHigh", "2^32-1 lanes"),
    ] {
        let e = match at {
            16 => bound("argon2 memory KiB", value, lo.memory_kib, hi.memory_kib),
            20 => bound("argon2 passes", value, lo.passes, hi.passes),
            _ => bound("argon2 lanes", value, lo.lanes, hi.lanes),
        };
        invalid(
            &mut f,
            comment,
            &[flag],
            &pass,
            &ctx,
            mk,
            &set(at, &value.to_be_bytes()),
            e,
        );
    }
    invalid(
        &mut f,
        "memory changed within bounds (8192 to 8193 KiB)",
        &["ModifiedHeader"],
        &pass,
        &ctx,
        mk,
        &set(16, &8193u32.to_be_bytes()),
        Error::WrongPassphrase,
    );
    invalid(
        &mut f,
        "passes changed within bounds (1 to 2)",
        &["ModifiedHeader"],
        &pass,
        &ctx,
        mk,
        &set(20, &2u32.to_be_bytes()),
        Error::WrongPassphrase,
    );
    let mut bad = base;
    bad[32] ^= 1;
    invalid(
        &mut f,
        "Argon2 salt flipped",
        &["ModifiedHeader"],
        &pass,
        &ctx,
        mk,
        &bad,
        Error::WrongPassphrase,
    );
    let mut bad = base;
    bad[63] ^= 1;
    invalid(
        &mut f,
        "wrapped key ID flipped",
        &["ModifiedHeader"],
        &pass,
        &ctx,
        mk,
        &bad,
        Error::WrongPassphrase,
    );
    for (at, what, e) in [
        (64usize, "salt", Error::WrongPassphrase),
        (100, "commitment", Error::WrongPassphrase),
        (120, "sealed key", Error::CorruptedChunk { index: 0 }),
        (167, "tag's last byte", Error::CorruptedChunk { index: 0 }),
    ] {
        let mut bad = base;
        bad[at] ^= 0x02;
        invalid(
            &mut f,
            &format!("{what} flipped"),
            &["ModifiedCiphertext"],
            &pass,
            &ctx,
            mk,
            &bad,
            e,
        );
    }
    for len in [0usize, 9, 63, 64, 167] {
        invalid(
            &mut f,
            &format!("truncated to {len} bytes"),
            &["Truncation"],
            &pass,
            &ctx,
            mk,
            &base[..len],
            Error::Truncated,
        );
    }
    invalid(
        &mut f,
        "one zero byte appended",
        &["NonCanonical"],
        &pass,
        &ctx,
        mk,
        &[&base[..], &[0]].concat(),
        Error::TrailingData,
    );
    invalid(
        &mut f,
        "opened with another passphrase",
        &["WrongPassphrase"],
        b"correct horse battery stapler",
        &ctx,
        mk,
        &base,
        Error::WrongPassphrase,
    );
    invalid(
        &mut f,
        "opened with an empty passphrase",
        &["WrongPassphrase"],
        b"",
        &ctx,
        mk,
        &base,
        Error::WrongPassphrase,
    );
    invalid(
        &mut f,
        "opened with another context",
        &["WrongContext"],
        &pass,
        b"profile bob",
        mk,
        &base,
        Error::WrongPassphrase,
    );
    invalid(
        &mut f,
        "a MasterKey envelope opened as RepositoryKey",
        &["WrongPurpose"],
        &pass,
        &ctx,
        Purpose::RepositoryKey,
        &base,
        Error::WrongPurpose {
            expected: Purpose::RepositoryKey,
            found: mk,
        },
    );

    // Authentic forgeries: the KEK derived with Argon2id directly, the header chosen.
    let forge_pp =
        |f: &mut File, mutate: &dyn Fn(&mut [u8; PASSPHRASE_HEADER_LEN]), key_id: KeyId| {
            let salt: [u8; 16] = f.array();
            let mut header = PassphraseEnvelope {
                suite: Suite::Aes256Gcm,
                purpose: mk,
                key_version: 3,
                params: small,
                argon2_salt: salt,
                key_id,
            }
            .encode();
            mutate(&mut header);
            let mut kek = [0u8; 32];
            argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                argon2::Params::new(small.memory_kib, small.passes, small.lanes, Some(32)).unwrap(),
            )
            .hash_password_into(&pass, &salt, &mut kek)
            .unwrap();
            forge(
                f,
                Suite::Aes256Gcm,
                &SecretKey::from_bytes(kek),
                &header,
                &ctx,
                wrapped.expose_secret(),
            )
        };
    let forged = forge_pp(&mut f, &|h| h[29] = 1, wrapped.id());
    invalid(
        &mut f,
        "reserved byte 29 set and sealed that way (authentic)",
        &["NonCanonical", "ReservedBitsSet"],
        &pass,
        &ctx,
        mk,
        &forged,
        Error::ReservedBitsSet,
    );
    let forged = forge_pp(&mut f, &|_| {}, SecretKey::from_bytes([1; 32]).id());
    invalid(
        &mut f,
        "authentic, but the header states another key's ID",
        &["KeyIdMismatch"],
        &pass,
        &ctx,
        mk,
        &forged,
        Error::KeyIdMismatch,
    );
    // The forgery path reproduces a real envelope when nothing is changed.
    let check = forge_pp(&mut f, &|_| {}, wrapped.id());
    let mut memory = vec![Argon2Block::default(); small.blocks()];
    let (key, _) =
        passphrase::unwrap_with_passphrase(&RustCrypto, &pass, &check, mk, &ctx, &mut memory)
            .unwrap();
    assert_eq!(key.expose_secret(), wrapped.expose_secret());
    f
}

use rand_core::SeedableRng as _;
