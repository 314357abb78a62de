//! The key hierarchy (§12), recipient-sealed objects and symmetric objects (§15).

use coffer_adapters::repo::config::names;
use coffer_adapters::repo::keys::RepoKeys;
use coffer_adapters::repo::object::{self, PlainKind, SealedKind};
use coffer_adapters::repo::recipient::{self, RecipientPublic};
use coffer_core::{Error, KeyId, RustCrypto, SecretKey, Suite};
use hpke::{Deserializable, Kem as _, Serializable};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{json, Value};

use super::super::{Expect, File};
use super::{derive_private_key, expand512, fields, flip, h, put, set};

/// X25519(sk, 9), by the HPKE crate (the generator's transcription stops at sk).
fn x25519_public(sk: &[u8; 32]) -> [u8; 32] {
    type Kem = hpke::kem::X25519HkdfSha256;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(sk).unwrap();
    let mut out = [0u8; 32];
    Kem::sk_to_pk(&sk).write_exact(&mut out);
    out
}

/// §12's keys derived from the writer secret.
fn writer_keys(w: &[u8]) -> Vec<(&'static str, Value)> {
    vec![
        ("chunkIdKey", h(&expand512(w, b"coffer/v2 chunk-id", 32))),
        ("indexKey", h(&expand512(w, b"coffer/v2 index", 32))),
        ("configKey", h(&expand512(w, b"coffer/v2 config", 32))),
        ("cacheKey", h(&expand512(w, b"coffer/v2 cache", 32))),
    ]
}

pub fn keys_group(f: &mut File) {
    f.group_field("type", json!("CofferRepositoryKeys"));
    let example: [u8; 32] = std::array::from_fn(|i| i as u8);
    let masters = [
        ("master key 000102…1f (FORMAT.md's example key)", example),
        ("random master key", f.array()),
        ("random master key", f.array()),
        ("master key of 32 zero bytes", [0; 32]),
        ("master key of 32 ff bytes", [0xff; 32]),
    ];
    for (comment, k) in masters {
        let w = expand512(&k, b"coffer/v2 writer", 32);
        let ikm = expand512(&k, b"coffer/v2 x25519", 32);
        let sk = derive_private_key(&ikm);
        let pk = x25519_public(&sk);
        let engine = RepoKeys::full(&SecretKey::from_bytes(k));
        assert_eq!(
            engine.public().as_bytes(),
            &pk,
            "the engine derives another key pair"
        );
        let mut m = fields(vec![("masterKey", h(&k)), ("writerSecret", h(&w))]);
        m.extend(writer_keys(&w).into_iter().map(|(k, v)| (k.to_owned(), v)));
        m.insert("recipientIkm".into(), h(&ikm));
        m.insert("recipientPrivateKey".into(), h(&sk));
        m.insert("recipientPublicKey".into(), h(&pk));
        f.add(comment, &["Derivation"], m, Ok(()));
    }
    for comment in ["writer secret alone", "another writer secret alone"] {
        let w: [u8; 32] = f.array();
        let mut m = fields(vec![("writerSecret", h(&w))]);
        m.extend(writer_keys(&w).into_iter().map(|(k, v)| (k.to_owned(), v)));
        f.add(comment, &["WriteOnlyKey"], m, Ok(()));
    }
    for len in [0, 16, 31, 33, 64] {
        let key = f.bytes(len);
        f.add(
            &format!("a master key of {len} bytes"),
            &["InvalidKeySize"],
            fields(vec![("masterKey", h(&key))]),
            Err(Error::InvalidKeyLength { len }),
        );
    }
}

/// Bytes 0..16 of a recipient-sealed object's header.
pub fn header16(version: u8, kind: u8) -> [u8; 16] {
    let mut h16 = [0u8; 16];
    h16[..8].copy_from_slice(b"COFFER/H");
    h16[8] = version;
    h16[9] = kind;
    h16
}

/// A recipient-sealed object and its object key.
pub struct SealedObject {
    pub object: Vec<u8>,
    pub key: SecretKey,
}

/// Seals `plaintext` behind any header, as the engine seals behind its own: the object
/// key, the HPKE ephemeral key and the stream's salt all from one seeded generator.
/// With a conforming header the bytes are checked against `seal_to_with`.
pub fn seal(
    f: &mut File,
    public: &RecipientPublic,
    h16: [u8; 16],
    repo: &[u8; 16],
    name: &str,
    plaintext: &[u8],
) -> SealedObject {
    let seed: [u8; 32] = f.array();
    let mut rng = ChaCha20Rng::from_seed(seed);
    let ctx = object::sealed_context(&h16, repo, name);
    let key = SecretKey::generate(&mut rng);
    let sealed_key = recipient::seal_key_with(&mut rng, public, &key, &ctx).unwrap();
    let stream = object::seal_bytes_with(&mut rng, &key, &ctx, plaintext).unwrap();
    let out = [&h16[..], &sealed_key, &stream].concat();
    let kind = match (h16 == header16(2, 1), h16 == header16(2, 2)) {
        (true, _) => Some(SealedKind::Pack),
        (_, true) => Some(SealedKind::Snapshot),
        _ => None,
    };
    if let Some(kind) = kind {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let engine = object::seal_to_with(&mut rng, public, kind, repo, name, plaintext).unwrap();
        assert!(engine == out, "the engine seals otherwise");
    }
    SealedObject { object: out, key }
}

/// Where the sealed stream of a recipient-sealed object starts.
const STREAM: usize = 96;

pub fn recipient_group(f: &mut File) {
    f.group_field("type", json!("CofferRecipientObject"));
    let master: [u8; 32] = f.array();
    let public = RepoKeys::full(&SecretKey::from_bytes(master))
        .public()
        .clone();
    let repo: [u8; 16] = f.array();
    let name = names::pack(&f.array());
    let snapshot_name = names::snapshot(&f.array());

    let base = |m: &[u8; 32], repo: &[u8; 16], name: &str, kind: u8, object: &[u8]| {
        fields(vec![
            ("masterKey", h(m)),
            ("repositoryId", h(repo)),
            ("name", json!(name)),
            ("kind", json!(kind)),
            ("object", h(object)),
        ])
    };

    // ---- valid ----
    for (comment, kind, len, flags) in [
        ("a pack of 300 bytes", 1u8, 300usize, &[][..]),
        ("a pack of 0 bytes", 1, 0, &["EdgeLength"][..]),
        (
            "a pack of 16384 bytes: one full chunk and the empty final chunk",
            1,
            16384,
            &["EdgeLength"][..],
        ),
        ("a pack of 20000 bytes: two chunks", 1, 20000, &[][..]),
        ("a snapshot of 200 bytes", 2, 200, &["OtherKind"][..]),
    ] {
        let pt = f.bytes(len);
        let n = if kind == 1 { &name } else { &snapshot_name };
        let s = seal(f, &public, header16(2, kind), &repo, n, &pt);
        let mut m = base(&master, &repo, n, kind, &s.object);
        m.insert("objectKey".into(), h(s.key.expose_secret()));
        m.insert("msg".into(), h(&pt));
        f.add_expect(comment, flags, m, Expect::Valid);
    }

    // ---- one object of 300 bytes, and one of two chunks, refused in every way ----
    let pt = f.bytes(300);
    let good = seal(f, &public, header16(2, 1), &repo, &name, &pt).object;
    let pt2 = f.bytes(16_500);
    let two = seal(f, &public, header16(2, 1), &repo, &name, &pt2).object;
    let bad = |f: &mut File, comment: &str, flag: &str, m, e| f.add_expect(comment, &[flag], m, e);

    let other_name = names::pack(&f.array());
    bad(
        f,
        "opened under another pack's name",
        "WrongName",
        base(&master, &repo, &other_name, 1, &good),
        Expect::Named("Recipient"),
    );
    let other_repo: [u8; 16] = f.array();
    bad(
        f,
        "opened for another repository ID",
        "WrongRepository",
        base(&master, &other_repo, &name, 1, &good),
        Expect::Named("Recipient"),
    );
    let other_master: [u8; 32] = f.array();
    bad(
        f,
        "opened with another repository's master key",
        "WrongKey",
        base(&other_master, &repo, &name, 1, &good),
        Expect::Named("Recipient"),
    );
    bad(
        f,
        "a pack opened as a snapshot (header kind 1, kind 2 expected)",
        "WrongKind",
        base(&master, &repo, &name, 2, &good),
        Expect::Named("RepoFormat"),
    );
    bad(
        f,
        "kind byte changed to 2, opened as a snapshot: the HPKE context differs",
        "WrongKind",
        base(&master, &repo, &name, 2, &set(&good, 9, 2)),
        Expect::Named("Recipient"),
    );
    let s = seal(f, &public, header16(2, 2), &repo, &name, &pt);
    bad(
        f,
        "sealed as a snapshot (kind 2) under the pack's name, opened as a pack",
        "WrongKind",
        base(&master, &repo, &name, 1, &s.object),
        Expect::Named("RepoFormat"),
    );

    bad(
        f,
        "magic COFFER/S",
        "ModifiedMagic",
        base(&master, &repo, &name, 1, &put(&good, 0, b"COFFER/S")),
        Expect::Named("RepoFormat"),
    );
    bad(
        f,
        "magic COFFER/h",
        "ModifiedMagic",
        base(&master, &repo, &name, 1, &set(&good, 7, b'h')),
        Expect::Named("RepoFormat"),
    );
    bad(
        f,
        "version 1",
        "UnsupportedVersion",
        base(&master, &repo, &name, 1, &set(&good, 8, 1)),
        Expect::Named("RepoFormat"),
    );
    for version in [1u8, 3] {
        let s = seal(f, &public, header16(version, 1), &repo, &name, &pt);
        bad(
            f,
            &format!("version {version}, sealed with it"),
            "UnsupportedVersion",
            base(&master, &repo, &name, 1, &s.object),
            Expect::Named("RepoFormat"),
        );
    }
    for i in [10usize, 15] {
        bad(
            f,
            &format!("reserved byte {i} set"),
            "ReservedBitsSet",
            base(&master, &repo, &name, 1, &set(&good, i, 1)),
            Expect::Named("RepoFormat"),
        );
    }
    let mut h16 = header16(2, 1);
    h16[12] = 0x80;
    let s = seal(f, &public, h16, &repo, &name, &pt);
    bad(
        f,
        "reserved byte 12 set, sealed with it",
        "ReservedBitsSet",
        base(&master, &repo, &name, 1, &s.object),
        Expect::Named("RepoFormat"),
    );

    for (i, what) in [
        (16, "the encapsulated key's first byte"),
        (47, "the encapsulated key's last byte"),
        (48, "the encrypted object key's first byte"),
        (79, "the encrypted object key's last byte"),
        (80, "the object key's tag"),
        (95, "the object key's tag, last byte"),
    ] {
        bad(
            f,
            &format!("bit flipped in {what}"),
            "ModifiedCiphertext",
            base(&master, &repo, &name, 1, &flip(&good, i, 0x01)),
            Expect::Named("Recipient"),
        );
    }
    bad(
        f,
        "the encapsulated key is the X25519 point 0",
        "LowOrderPoint",
        base(&master, &repo, &name, 1, &put(&good, 16, &[0; 32])),
        Expect::Named("Recipient"),
    );
    let mut one = [0u8; 32];
    one[0] = 1;
    bad(
        f,
        "the encapsulated key is the X25519 point 1 (order 1)",
        "LowOrderPoint",
        base(&master, &repo, &name, 1, &put(&good, 16, &one)),
        Expect::Named("Recipient"),
    );

    // The stream: header (32), salt (24), commitment (32), then chunks.
    bad(
        f,
        "the sealed stream's version byte changed",
        "ModifiedCiphertext",
        base(&master, &repo, &name, 1, &set(&good, STREAM + 8, 2)),
        Expect::Core(Error::UnsupportedVersion { version: 2 }),
    );
    let key_id = flip(&good, STREAM + 16, 0x01);
    let mut expected = [0u8; 16];
    expected.copy_from_slice(&key_id[STREAM + 16..STREAM + 32]);
    bad(
        f,
        "the sealed stream's key ID changed",
        "ModifiedCiphertext",
        base(&master, &repo, &name, 1, &key_id),
        Expect::Core(Error::WrongKey {
            expected: KeyId(expected),
        }),
    );
    bad(
        f,
        "bit flipped in the stream's salt",
        "ModifiedCiphertext",
        base(&master, &repo, &name, 1, &flip(&good, STREAM + 32, 0x01)),
        Expect::Core(Error::CommitmentMismatch),
    );
    bad(
        f,
        "bit flipped in the stream's commitment",
        "ModifiedCiphertext",
        base(&master, &repo, &name, 1, &flip(&good, STREAM + 56, 0x80)),
        Expect::Core(Error::CommitmentMismatch),
    );
    bad(
        f,
        "bit flipped in the stream's only chunk",
        "ModifiedCiphertext",
        base(
            &master,
            &repo,
            &name,
            1,
            &flip(&good, STREAM + 88 + 10, 0x01),
        ),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
    bad(
        f,
        "bit flipped in the stream's last tag byte",
        "ModifiedCiphertext",
        base(&master, &repo, &name, 1, &flip(&good, good.len() - 1, 0x01)),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
    bad(
        f,
        "bit flipped in the second chunk of two",
        "ModifiedCiphertext",
        base(&master, &repo, &name, 1, &flip(&two, two.len() - 30, 0x01)),
        Expect::Core(Error::CorruptedChunk { index: 1 }),
    );

    for (cut, what, e) in [
        (0usize, "empty", Expect::Named("RepoFormat")),
        (16, "bytes 0..16 only", Expect::Named("RepoFormat")),
        (
            95,
            "inside the encrypted object key's tag",
            Expect::Named("RepoFormat"),
        ),
        (
            96,
            "after the header: no stream",
            Expect::Core(Error::Truncated),
        ),
        (
            96 + 32 + 24,
            "inside the stream's preamble",
            Expect::Core(Error::Truncated),
        ),
        (
            96 + 88 + 15,
            "the final chunk shorter than a tag",
            Expect::Core(Error::Truncated),
        ),
        (
            good.len() - 1,
            "one byte short",
            Expect::Core(Error::CorruptedChunk { index: 0 }),
        ),
    ] {
        bad(
            f,
            &format!("cut to {cut} bytes: {what}"),
            "Truncation",
            base(&master, &repo, &name, 1, &good[..cut]),
            e,
        );
    }
    bad(
        f,
        "two chunks cut after the first, full one: the final chunk is missing",
        "Truncation",
        base(&master, &repo, &name, 1, &two[..STREAM + 88 + 16384 + 16]),
        Expect::Core(Error::Truncated),
    );
    let mut longer = good.clone();
    longer.push(0);
    bad(
        f,
        "a byte after the final chunk",
        "TrailingData",
        base(&master, &repo, &name, 1, &longer),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );

    // A stream under the other suite: readers may accept it.
    let seed: [u8; 32] = f.array();
    let mut rng = ChaCha20Rng::from_seed(seed);
    let h16 = header16(2, 1);
    let ctx = object::sealed_context(&h16, &repo, &name);
    let key = SecretKey::generate(&mut rng);
    let sealed_key = recipient::seal_key_with(&mut rng, &public, &key, &ctx).unwrap();
    let stream = seal_stream(Suite::ChaCha20Poly1305, &key, &ctx, &pt, &mut rng);
    let obj = [&h16[..], &sealed_key, &stream].concat();
    let mut m = base(&master, &repo, &name, 1, &obj);
    m.insert("objectKey".into(), h(key.expose_secret()));
    m.insert("msg".into(), h(&pt));
    f.add_expect(
        "the inner stream sealed with ChaCha20-Poly1305",
        &["OtherSuite"],
        m,
        Expect::Acceptable,
    );
}

/// A sealed stream (FORMAT.md §5) under any suite, by the core's sealer.
fn seal_stream(
    suite: Suite,
    key: &SecretKey,
    ctx: &[u8],
    plaintext: &[u8],
    rng: &mut ChaCha20Rng,
) -> Vec<u8> {
    let mut buf = vec![0u8; coffer_core::chunked::SEAL_BUFFER_LEN];
    let (mut sealer, prefix) =
        coffer_core::stream::seal(&RustCrypto, suite, key, ctx, rng, &mut buf[..]).unwrap();
    let mut out = prefix.to_vec();
    let mut rest = plaintext;
    while !rest.is_empty() {
        let (n, ct) = sealer.push(rest).unwrap();
        if let Some(ct) = ct {
            out.extend_from_slice(ct);
        }
        rest = &rest[n..];
    }
    out.extend_from_slice(sealer.finish().unwrap().ciphertext());
    out
}

/// The labels of §15's symmetric objects, as the tests spell them.
fn label(kind: PlainKind) -> &'static str {
    match kind {
        PlainKind::Index => "coffer/v2 index",
        PlainKind::Config => "coffer/v2 config",
        PlainKind::Cache => "coffer/v2 cache",
        PlainKind::Lock => "coffer/v2 lock",
    }
}

/// A symmetric object, sealed by the engine with a seeded salt.
fn seal_symmetric(
    f: &mut File,
    key: &SecretKey,
    kind: PlainKind,
    repo: &[u8; 16],
    name: &str,
    pt: &[u8],
) -> Vec<u8> {
    let mut rng = ChaCha20Rng::from_seed(f.array());
    let ctx = object::plain_context(kind, repo, name);
    object::seal_bytes_with(&mut rng, key, &ctx, pt).unwrap()
}

pub fn symmetric_group(f: &mut File) {
    f.group_field("type", json!("CofferSymmetricObject"));
    let w: [u8; 32] = f.array();
    let index_key =
        SecretKey::from_bytes(expand512(&w, b"coffer/v2 index", 32).try_into().unwrap());
    let cache_key =
        SecretKey::from_bytes(expand512(&w, b"coffer/v2 cache", 32).try_into().unwrap());
    let repo: [u8; 16] = f.array();
    let index_name = names::index(&f.array());
    let lock_name = names::lock(&f.array());
    let cache_name = hex::encode(f.array::<32>());

    let base = |key: &SecretKey, kind: PlainKind, repo: &[u8; 16], name: &str, object: &[u8]| {
        fields(vec![
            ("key", h(key.expose_secret())),
            ("label", json!(label(kind))),
            ("repositoryId", h(repo)),
            ("name", json!(name)),
            ("object", h(object)),
        ])
    };
    // An index plaintext with no packs, a lock (postcard: exclusive, host, pid, time),
    // a cache of no trees.
    let empty_index = [&b"CIX2"[..], &[0; 8]].concat();
    let lock = [
        &[0u8, 4][..],
        b"host",
        &[0xb9, 0x60],
        &[0x80, 0xc4, 0x9f, 0xd5, 0x0c],
    ]
    .concat();
    let cache = [&f.bytes(48)[..], &[0]].concat();
    for (comment, key, kind, name, pt) in [
        (
            "an index object (no packs)",
            &index_key,
            PlainKind::Index,
            &index_name,
            empty_index.clone(),
        ),
        (
            "a lock object (shared, host \"host\", pid 12345, time 1700000000)",
            &index_key,
            PlainKind::Lock,
            &lock_name,
            lock.clone(),
        ),
        (
            "a writer's cache (no trees)",
            &cache_key,
            PlainKind::Cache,
            &cache_name,
            cache,
        ),
    ] {
        let object = seal_symmetric(f, key, kind, &repo, name, &pt);
        let mut m = base(key, kind, &repo, name, &object);
        m.insert("msg".into(), h(&pt));
        f.add_expect(comment, &[], m, Expect::Valid);
    }
    let pt = f.bytes(20_000);
    let object = seal_symmetric(f, &index_key, PlainKind::Index, &repo, &index_name, &pt);
    let mut m = base(&index_key, PlainKind::Index, &repo, &index_name, &object);
    m.insert("msg".into(), h(&pt));
    f.add_expect(
        "20000 bytes under the index key: two chunks",
        &["EdgeLength"],
        m,
        Expect::Valid,
    );

    let good = seal_symmetric(
        f,
        &index_key,
        PlainKind::Index,
        &repo,
        &index_name,
        &empty_index,
    );
    let other_name = names::index(&f.array());
    let other_repo: [u8; 16] = f.array();
    let other_key = SecretKey::generate(&mut ChaCha20Rng::from_seed(f.array()));
    let mismatch = Expect::Core(Error::CommitmentMismatch);
    f.add_expect(
        "an index opened under another index's name",
        &["WrongName"],
        base(&index_key, PlainKind::Index, &repo, &other_name, &good),
        mismatch,
    );
    f.add_expect(
        "an index opened for another repository",
        &["WrongRepository"],
        base(
            &index_key,
            PlainKind::Index,
            &other_repo,
            &index_name,
            &good,
        ),
        Expect::Core(Error::CommitmentMismatch),
    );
    f.add_expect(
        "an index opened as a lock",
        &["WrongLabel"],
        base(&index_key, PlainKind::Lock, &repo, &index_name, &good),
        Expect::Core(Error::CommitmentMismatch),
    );
    f.add_expect(
        "an index opened with the cache key",
        &["WrongKey"],
        base(&cache_key, PlainKind::Index, &repo, &index_name, &good),
        Expect::Core(Error::WrongKey {
            expected: index_key.id(),
        }),
    );
    f.add_expect(
        "an index opened with another writer's index key",
        &["WrongKey"],
        base(&other_key, PlainKind::Index, &repo, &index_name, &good),
        Expect::Core(Error::WrongKey {
            expected: index_key.id(),
        }),
    );
    f.add_expect(
        "bit flipped in the chunk",
        &["ModifiedCiphertext"],
        base(
            &index_key,
            PlainKind::Index,
            &repo,
            &index_name,
            &flip(&good, 88 + 3, 0x40),
        ),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
    f.add_expect(
        "cut by one byte",
        &["Truncation"],
        base(
            &index_key,
            PlainKind::Index,
            &repo,
            &index_name,
            &good[..good.len() - 1],
        ),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
    f.add_expect(
        "cut inside the stream's header",
        &["Truncation"],
        base(
            &index_key,
            PlainKind::Index,
            &repo,
            &index_name,
            &good[..20],
        ),
        Expect::Core(Error::Truncated),
    );
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 16]);
    f.add_expect(
        "16 zero bytes after the final chunk",
        &["TrailingData"],
        base(&index_key, PlainKind::Index, &repo, &index_name, &longer),
        Expect::Core(Error::CorruptedChunk { index: 0 }),
    );
}
