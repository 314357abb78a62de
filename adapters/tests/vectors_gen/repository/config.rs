//! The configuration (§20) and key files (§21).

use coffer_adapters::repo::config::{ChunkerSizes, Config};
use coffer_adapters::repo::keyfile::{self, Unlock};
use coffer_adapters::repo::keys::{Access, RepoKeys};
use coffer_adapters::repo::object::{self, PlainKind};
use coffer_adapters::repo::recipient::RecipientPublic;
use coffer_core::passphrase::Argon2Params;
use coffer_core::{Error, SecretKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;
use zeroize::Zeroizing;

use super::super::{Expect, File};
use super::{expand512, fields, flip, h, set};

fn config_key_of(master: &[u8; 32]) -> SecretKey {
    let w = expand512(master, b"coffer/v2 writer", 32);
    SecretKey::from_bytes(expand512(&w, b"coffer/v2 config", 32).try_into().unwrap())
}

/// Seals any 76-byte (or other) plaintext as the configuration of repository `outer`,
/// as `Config::seal_with` seals its own.
fn seal_config(f: &mut File, key: &SecretKey, outer: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let mut rng = ChaCha20Rng::from_seed(f.array());
    let ctx = object::plain_context(PlainKind::Config, outer, "config");
    let stream = object::seal_bytes_with(&mut rng, key, &ctx, plain).unwrap();
    [&b"CCF2"[..], outer, &stream].concat()
}

pub fn config_group(f: &mut File) {
    f.group_field("type", json!("CofferConfig"));
    let master: [u8; 32] = f.array();
    let key = config_key_of(&master);
    let public = RepoKeys::full(&SecretKey::from_bytes(master))
        .public()
        .clone();
    let id: [u8; 16] = f.array();

    let valid = |f: &mut File, comment: &str, flags: &[&str], c: &Config, full: bool| {
        let seed: [u8; 32] = f.array();
        let stored = c
            .seal_with(&mut ChaCha20Rng::from_seed(seed), &key)
            .unwrap();
        let mut m = fields(vec![
            ("configKey", h(key.expose_secret())),
            ("config", h(&stored)),
        ]);
        if full {
            m.insert("masterKey".into(), h(&master));
        }
        for (k, v) in [
            ("repositoryId", h(&c.id)),
            ("minSize", json!(c.chunker.min_size)),
            ("maskBits", json!(c.chunker.mask_bits)),
            ("maxSize", json!(c.chunker.max_size)),
            ("publicKey", h(c.public.as_bytes())),
            ("created", json!(c.created)),
        ] {
            m.insert(k.into(), v);
        }
        f.add_expect(comment, flags, m, Expect::Valid);
        stored
    };
    let v2 = Config {
        id,
        chunker: ChunkerSizes::V2,
        public: public.clone(),
        created: 1_767_225_600,
    };
    let good = valid(
        f,
        "the v2 chunker parameters, opened with the master key (the public key is checked)",
        &[],
        &v2,
        true,
    );
    let small = Config {
        chunker: ChunkerSizes {
            min_size: 256,
            mask_bits: 6,
            max_size: 4096,
        },
        ..v2.clone()
    };
    valid(
        f,
        "small chunker parameters, opened with the writer secret's config key alone",
        &["WriteOnlyKey"],
        &small,
        false,
    );
    for (min, mask, max, created) in [(64, 1, 65, -1i64), ((1 << 26) - 1, 31, 1 << 26, i64::MAX)] {
        let edge = Config {
            chunker: ChunkerSizes {
                min_size: min,
                mask_bits: mask,
                max_size: max,
            },
            created,
            ..v2.clone()
        };
        valid(
            f,
            &format!("parameters at the edges of §13.1: {min}, {mask}, {max}; created {created}"),
            &["EdgeValue"],
            &edge,
            true,
        );
    }

    let base = |config: &[u8], full: bool| {
        let mut m = fields(vec![
            ("configKey", h(key.expose_secret())),
            ("config", h(config)),
        ]);
        if full {
            m.insert("masterKey".into(), h(&master));
        }
        m
    };
    let format = || Expect::Named("RepoFormat");
    f.add_expect(
        "the repository ID outside changed: it is in the stream's context",
        &["WrongRepository"],
        base(&flip(&good, 4, 0x01), true),
        Expect::Core(Error::CommitmentMismatch),
    );
    let mut inner = v2.encode();
    inner[8] ^= 0x01;
    let other_inside = seal_config(f, &key, &id, &inner);
    f.add_expect(
        "the repository ID inside differs from the one outside",
        &["IdMismatch"],
        base(&other_inside, true),
        format(),
    );
    let other = SecretKey::from_bytes(f.array());
    let mut m = base(&good, false);
    m.insert("configKey".into(), h(other.expose_secret()));
    f.add_expect(
        "opened with another config key",
        &["WrongKey"],
        m,
        Expect::Core(Error::WrongKey { expected: key.id() }),
    );
    f.add_expect(
        "magic CCF3 outside",
        &["ModifiedMagic"],
        base(&set(&good, 3, b'3'), true),
        format(),
    );
    let sealed = seal_config(f, &key, &id, &set(&v2.encode(), 3, b'3'));
    f.add_expect(
        "magic CCF3 inside",
        &["ModifiedMagic"],
        base(&sealed, true),
        format(),
    );
    let sealed = seal_config(f, &key, &id, &set(&v2.encode(), 4, 3));
    f.add_expect(
        "version 3 inside",
        &["UnsupportedVersion"],
        base(&sealed, true),
        format(),
    );
    let sealed = seal_config(f, &key, &id, &set(&v2.encode(), 6, 1));
    f.add_expect(
        "reserved byte 6 set inside",
        &["ReservedBitsSet"],
        base(&sealed, true),
        format(),
    );
    let plain = v2.encode();
    for (len, what) in [(75, "75 bytes"), (77, "77 bytes"), (0, "empty")] {
        let mut p = plain.clone();
        p.resize(len, 0);
        let sealed = seal_config(f, &key, &id, &p);
        f.add_expect(
            &format!("a plaintext of {what}"),
            &["WrongLength"],
            base(&sealed, true),
            format(),
        );
    }
    for (min, mask, max, what) in [
        (63, 17, 4096, "min_size 63"),
        (256, 0, 4096, "mask_bits 0"),
        (256, 32, 4096, "mask_bits 32"),
        (4096, 6, 4096, "max_size = min_size"),
        (256, 6, (1 << 26) + 1, "max_size 2^26 + 1"),
    ] {
        let c = Config {
            chunker: ChunkerSizes {
                min_size: min,
                mask_bits: mask,
                max_size: max,
            },
            ..v2.clone()
        };
        let sealed = seal_config(f, &key, &id, &c.encode());
        f.add_expect(
            &format!("chunker parameters out of bounds: {what}"),
            &["ParameterOutOfBounds"],
            base(&sealed, false),
            format(),
        );
    }
    let foreign = RepoKeys::full(&SecretKey::from_bytes(f.array()))
        .public()
        .clone();
    let c = Config {
        public: foreign,
        ..v2.clone()
    };
    let sealed = seal_config(f, &key, &id, &c.encode());
    f.add_expect(
        "another key pair's public key, opened with the master key",
        &["WrongPublicKey"],
        base(&sealed, true),
        format(),
    );
    let mut base_point = [0u8; 32];
    base_point[0] = 9;
    let c = Config {
        public: RecipientPublic::from_bytes(base_point),
        ..v2.clone()
    };
    let sealed = seal_config(f, &key, &id, &c.encode());
    f.add_expect(
        "the X25519 base point as public key, opened with the master key",
        &["WrongPublicKey"],
        base(&sealed, true),
        format(),
    );
    f.add_expect(
        "cut to 19 bytes: no whole repository ID",
        &["Truncation"],
        base(&good[..19], true),
        format(),
    );
    f.add_expect(
        "cut by one byte",
        &["Truncation"],
        base(&good[..good.len() - 1], true),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
}

fn unlock_fields(unlock: &Unlock) -> (&'static str, serde_json::Value) {
    match unlock {
        Unlock::Kek(k) => ("kek", h(k.expose_secret())),
        Unlock::Passphrase(p) => ("passphrase", h(p)),
    }
}

pub fn key_file_group(f: &mut File) {
    f.group_field("type", json!("CofferKeyFile"));
    let repo: [u8; 16] = f.array();
    let master = SecretKey::from_bytes(f.array());
    let writer = SecretKey::from_bytes(
        expand512(master.expose_secret(), b"coffer/v2 writer", 32)
            .try_into()
            .unwrap(),
    );
    let kek = SecretKey::from_bytes(f.array());
    let pass = b"correct horse battery staple".to_vec();
    let min = Argon2Params::MIN;

    let make = |f: &mut File, access: Access, secret: &SecretKey, unlock: &Unlock| {
        let mut rng = ChaCha20Rng::from_seed(f.array());
        keyfile::make_with(&mut rng, &repo, access, secret, unlock, min).unwrap()
    };
    let base = |file: &[u8], unlock: &Unlock, repo: &[u8; 16]| {
        let (k, v) = unlock_fields(unlock);
        fields(vec![
            ("repositoryId", h(repo)),
            ("keyFile", h(file)),
            (k, v),
        ])
    };
    let by_kek = Unlock::Kek(SecretKey::from_bytes(*kek.expose_secret()));
    let by_pass = Unlock::Passphrase(Zeroizing::new(pass.clone()));
    let mut files = Vec::new();
    for (comment, flags, access, secret, unlock) in [
        (
            "a full key (the master key) under a KEK",
            &[][..],
            Access::Full,
            &master,
            &by_kek,
        ),
        (
            "a write-only key (the writer secret) under a KEK",
            &["WriteOnlyKey"][..],
            Access::WriteOnly,
            &writer,
            &by_kek,
        ),
        (
            "a full key under a passphrase, Argon2id minimum parameters",
            &["Passphrase"][..],
            Access::Full,
            &master,
            &by_pass,
        ),
        (
            "a write-only key under a passphrase",
            &["Passphrase", "WriteOnlyKey"][..],
            Access::WriteOnly,
            &writer,
            &by_pass,
        ),
    ] {
        let file = make(f, access, secret, unlock);
        assert_eq!(
            file.len(),
            if matches!(unlock, Unlock::Kek(_)) {
                176
            } else {
                192
            }
        );
        let mut m = base(&file, unlock, &repo);
        m.insert(
            "access".into(),
            json!(if access == Access::Full {
                "full"
            } else {
                "writeOnly"
            }),
        );
        m.insert("wrappedKey".into(), h(secret.expose_secret()));
        f.add_expect(comment, flags, m, Expect::Valid);
        files.push(file);
    }
    let (full_kek, wo_kek, full_pass) = (&files[0], &files[1], &files[2]);
    let format = || Expect::Named("RepoFormat");
    let mismatch = || Expect::Core(Error::CommitmentMismatch);
    f.add_expect(
        "a write-only file's access byte changed to full",
        &["ModifiedAccess"],
        base(&set(wo_kek, 4, 1), &by_kek, &repo),
        mismatch(),
    );
    f.add_expect(
        "a full file's access byte changed to write-only",
        &["ModifiedAccess"],
        base(&set(full_kek, 4, 2), &by_kek, &repo),
        mismatch(),
    );
    f.add_expect(
        "a passphrase file's access byte changed",
        &["ModifiedAccess"],
        base(&set(full_pass, 4, 2), &by_pass, &repo),
        Expect::Core(Error::WrongPassphrase),
    );
    f.add_expect(
        "a KEK file's wrapping byte changed to passphrase: 176 bytes, not 192",
        &["ModifiedAccess"],
        base(&set(full_kek, 5, 1), &by_kek, &repo),
        format(),
    );
    for (i, v, what) in [
        (4, 0, "access 0"),
        (4, 3, "access 3"),
        (5, 0, "wrapping 0"),
        (5, 3, "wrapping 3"),
    ] {
        f.add_expect(
            what,
            &["UnknownValue"],
            base(&set(full_kek, i, v), &by_kek, &repo),
            format(),
        );
    }
    for i in [6, 7] {
        f.add_expect(
            &format!("reserved byte {i} set"),
            &["ReservedBitsSet"],
            base(&set(full_kek, i, 1), &by_kek, &repo),
            format(),
        );
    }
    f.add_expect(
        "magic CKF1",
        &["ModifiedMagic"],
        base(&set(full_kek, 3, b'1'), &by_kek, &repo),
        format(),
    );
    let moved = flip(full_kek, 8, 0x01);
    f.add_expect(
        "the file names another repository than the one opened",
        &["WrongRepository"],
        base(&moved, &by_kek, &repo),
        format(),
    );
    let mut other_repo = repo;
    other_repo[0] ^= 0x01;
    f.add_expect(
        "the file's repository ID changed, and the repository opened is that one",
        &["WrongRepository"],
        base(&moved, &by_kek, &other_repo),
        mismatch(),
    );
    let other_kek = Unlock::Kek(SecretKey::from_bytes(f.array()));
    f.add_expect(
        "opened with another KEK",
        &["WrongKek"],
        base(full_kek, &other_kek, &repo),
        Expect::Core(Error::WrongKey { expected: kek.id() }),
    );
    let wrong_pass = Unlock::Passphrase(Zeroizing::new(b"correct horse battery stapler".to_vec()));
    f.add_expect(
        "opened with another passphrase",
        &["WrongPassphrase"],
        base(full_pass, &wrong_pass, &repo),
        Expect::Core(Error::WrongPassphrase),
    );
    f.add_expect(
        "bit flipped in the envelope's sealed key",
        &["ModifiedCiphertext"],
        base(&flip(full_kek, 24 + 48 + 56 + 3, 0x01), &by_kek, &repo),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
    for (file, unlock, len) in [
        (full_kek, &by_kek, 175),
        (full_kek, &by_kek, 24),
        (full_kek, &by_kek, 0),
        (full_pass, &by_pass, 191),
        (full_pass, &by_pass, 176),
    ] {
        f.add_expect(
            &format!("cut to {len} bytes"),
            &["WrongLength"],
            base(&file[..len], unlock, &repo),
            format(),
        );
    }
    let mut longer = full_kek.clone();
    longer.push(0);
    f.add_expect(
        "177 bytes: a byte after a KEK file",
        &["WrongLength"],
        base(&longer, &by_kek, &repo),
        format(),
    );
}
