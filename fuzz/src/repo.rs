//! The repository objects (FORMAT.md §15–§23) that the repository targets know to be
//! valid, and the samples their seeds are made of.
//!
//! An opener target asserts that exactly these objects open: the fuzzer cannot forge an
//! HPKE-sealed key, a key-wrap envelope or a chunk, so any other bytes must be refused.
//! For that the target and `examples/repo_seeds.rs` (which writes them as seeds) must
//! build the same bytes, so everything here is deterministic: fixed keys, a fixed
//! repository ID, and seeded RNGs. The adapters' own sealers (`Config::seal`,
//! `keyfile::make`, `object::seal_to`) draw their salts and HPKE ephemeral keys from the
//! OS, so the objects are put together here from the same pieces: the adapters'
//! encoders, contexts and names, the core's `stream::seal` and `envelope::wrap_key`,
//! and the `hpke` crate with the suite of `adapters/src/repo/recipient.rs`. The seed
//! generator checks that the adapters' openers accept each of them.

use std::sync::OnceLock;

use coffer_adapters::repo::config::{names, ChunkerSizes, Config, CONFIG_MAGIC, CONFIG_NAME};
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::object::{self, PlainKind, RepoId, SealedKind, OBJECT_MAGIC, SUITE};
use coffer_adapters::repo::pack::{BlobKind, Compression, PackBuilder};
use coffer_adapters::repo::recipient::RecipientSecret;
use coffer_adapters::repo::snapshot::{Snapshot, Summary};
use coffer_core::envelope::{self, Purpose};
use coffer_core::{RustCrypto, SecretKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeS, Serializable};
use rand_core::RngCore;

use crate::{fuzz_key, other_key, rng, seal_stream};

/// The most heap the Rust side of a repository target may hold at once. Inputs are a
/// few KiB (`run.sh`'s `-max_len`), so anything near this was sized by a length read
/// from the input: the capped allocator (the `cap` crate) refuses it and the process
/// aborts, which libFuzzer reports as a crash.
pub const ALLOC_LIMIT: usize = 64 << 20;

/// The repository every object belongs to.
pub const REPO_ID: RepoId = *b"coffer-fuzz-repo";

/// The key-file name the targets report errors under (any name does).
pub const KEY_FILE_NAME: &str = "keys/6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

/// The configuration key `Config::open` is given: [`fuzz_key`].
pub fn config_key() -> SecretKey {
    fuzz_key()
}

/// The key-encryption key `keyfile::open` is given: [`other_key`].
pub fn kek() -> SecretKey {
    other_key()
}

/// The repository's recipient secret: derived from the master key [`fuzz_key`].
pub fn recipient() -> RecipientSecret {
    RecipientSecret::from_master(&fuzz_key())
}

/// A key file that opens under [`kek`] in [`REPO_ID`].
pub struct ValidKeyFile {
    /// The file.
    pub bytes: Vec<u8>,
    /// What it grants.
    pub access: Access,
    /// The secret it wraps.
    pub secret: SecretKey,
}

/// A recipient-sealed object that opens under [`recipient`] as `kind` named `name`.
pub struct ValidSealed {
    /// Pack or snapshot.
    pub kind: SealedKind,
    /// The object's name (part of its context).
    pub name: String,
    /// The object.
    pub bytes: Vec<u8>,
    /// Its object key, as `object_key` must return it.
    pub key: SecretKey,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
}

/// Every object the opener targets must accept, and nothing else.
pub struct Valid {
    /// The configuration `config_object` holds.
    pub config: Config,
    /// The stored configuration (`"CCF2" ‖ ID ‖ stream`) under [`config_key`].
    pub config_object: Vec<u8>,
    /// Key files under [`kek`]: one full, one write-only.
    pub key_files: Vec<ValidKeyFile>,
    /// A pack and a snapshot sealed to [`recipient`]'s public key.
    pub sealed: Vec<ValidSealed>,
    /// [`recipient`], derived once (each derivation is an X25519 scalar multiplication).
    pub secret: RecipientSecret,
}

/// The valid objects, built once per process.
pub fn valid() -> &'static Valid {
    static VALID: OnceLock<Valid> = OnceLock::new();
    VALID.get_or_init(|| {
        let secret = recipient();
        let config = Config {
            id: REPO_ID,
            chunker: ChunkerSizes::V2,
            public: secret.public(),
            created: 1_790_000_000,
        };
        let config_object = seal_config(&REPO_ID, &config.encode(), 1);
        let key_files = [
            (Access::Full, fuzz_key(), 2),
            (Access::WriteOnly, writer(), 3),
        ]
        .into_iter()
        .map(|(access, secret, seed)| ValidKeyFile {
            bytes: key_file(access, 2, &REPO_ID, &secret, &kek(), seed),
            access,
            secret,
        })
        .collect();
        let sealed = [
            (SealedKind::Pack, pack_name(), sample_pack(), 4),
            (SealedKind::Snapshot, snapshot_name(), sample_snapshot(), 5),
        ]
        .into_iter()
        .map(|(kind, name, plaintext, seed)| {
            let (bytes, key) = seal_to(&secret, kind, &name, &plaintext, seed);
            ValidSealed {
                kind,
                name,
                bytes,
                key,
                plaintext,
            }
        })
        .collect();
        Valid {
            config,
            config_object,
            key_files,
            sealed,
            secret,
        }
    })
}

/// The writer secret `W` the write-only key file wraps (any 32 bytes do here).
pub fn writer() -> SecretKey {
    SecretKey::from_bytes([0x77; 32])
}

/// The name of the valid pack.
pub fn pack_name() -> String {
    names::pack(&[0xab; 16])
}

/// The name of the valid snapshot.
pub fn snapshot_name() -> String {
    names::snapshot(&[0xcd; 16])
}

/// A stored configuration: `"CCF2" ‖ id ‖` `plaintext` sealed under [`config_key`] with
/// the context of `id` (FORMAT.md §20), salt from `seed`.
pub fn seal_config(id: &RepoId, plaintext: &[u8], seed: u64) -> Vec<u8> {
    let context = object::plain_context(PlainKind::Config, id, CONFIG_NAME);
    let mut out = CONFIG_MAGIC.to_vec();
    out.extend_from_slice(id);
    out.extend_from_slice(&seal_stream(
        SUITE,
        &config_key(),
        &context,
        seed,
        plaintext,
    ));
    out
}

/// A key file (FORMAT.md §21) with a key-wrap envelope under `kek`: `"CKF2" ‖ access ‖
/// wrapping ‖ 0x0000 ‖ repo ‖ envelope`, as `keyfile::make` writes it. `wrapping` is
/// written as given (2 for a KEK), so a test can claim another.
pub fn key_file(
    access: Access,
    wrapping: u8,
    repo: &RepoId,
    secret: &SecretKey,
    kek: &SecretKey,
    seed: u64,
) -> Vec<u8> {
    let mut file = key_file_head(access, wrapping, repo);
    let env = envelope::wrap_key(
        &RustCrypto,
        SUITE,
        kek,
        secret,
        Purpose::RepositoryKey,
        1,
        &key_file_context(&file, repo),
        &mut rng(seed),
    )
    .expect("wrapping a key cannot fail");
    file.extend_from_slice(&env);
    file
}

/// A key file's 24-byte head.
pub fn key_file_head(access: Access, wrapping: u8, repo: &RepoId) -> Vec<u8> {
    let mut head = b"CKF2".to_vec();
    head.push(match access {
        Access::Full => 1,
        Access::WriteOnly => 2,
    });
    head.push(wrapping);
    head.extend_from_slice(&[0, 0]);
    head.extend_from_slice(repo);
    head
}

/// A key file's envelope context: `"coffer/v2 key-file" ‖ head[..8] ‖ repo`.
pub fn key_file_context(head: &[u8], repo: &RepoId) -> Vec<u8> {
    [b"coffer/v2 key-file".as_slice(), &head[..8], &repo[..]].concat()
}

/// A recipient-sealed object (FORMAT.md §15) of [`REPO_ID`] to `secret`'s public key,
/// with its object key; the object key, HPKE's ephemeral key and the stream's salt come
/// from `seed`.
pub fn seal_to(
    secret: &RecipientSecret,
    kind: SealedKind,
    name: &str,
    plaintext: &[u8],
    seed: u64,
) -> (Vec<u8>, SecretKey) {
    type Kem = X25519HkdfSha256;
    let mut r = rng(seed);
    let mut h16 = [0u8; 16];
    h16[..8].copy_from_slice(OBJECT_MAGIC);
    h16[8] = 2;
    h16[9] = kind as u8;
    let context = object::sealed_context(&h16, &REPO_ID, name);
    let key = SecretKey::generate(&mut r);
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(secret.public().as_bytes())
        .expect("a derived public key is valid");
    let mut wrapped = *key.expose_secret();
    let (encapped, tag) = hpke::single_shot_seal_in_place_detached::<
        ChaCha20Poly1305,
        HkdfSha256,
        Kem,
        _,
    >(&OpModeS::Base, &public, &context, &mut wrapped, &[], &mut r)
    .expect("HPKE sealing to a valid key cannot fail");
    let mut out = h16.to_vec();
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&tag.to_bytes());
    out.extend_from_slice(&seal_stream(SUITE, &key, &context, r.next_u64(), plaintext));
    (out, key)
}

/// A pack plaintext made by the adapters' `PackBuilder` from `blobs` (data or tree,
/// stored or marked zstd; the bytes are not checked against the mark here).
pub fn pack(blobs: &[(u8, BlobKind, Compression, &[u8])]) -> Vec<u8> {
    let mut b = PackBuilder::new();
    for &(id, kind, compression, stored) in blobs {
        let raw_len = match compression {
            Compression::None => stored.len(),
            Compression::Zstd => stored.len() * 3,
        };
        b.add([id; 32], kind, compression, stored, raw_len)
            .expect("small blobs");
    }
    b.finish().0
}

/// A small pack plaintext: a data blob, a tree blob and a compressed blob.
pub fn sample_pack() -> Vec<u8> {
    pack(&[
        (1, BlobKind::Data, Compression::None, b"hello, pack"),
        (2, BlobKind::Tree, Compression::None, &[2, 0]),
        (3, BlobKind::Data, Compression::Zstd, b"(zstd)"),
    ])
}

/// A snapshot with every optional field set.
pub fn sample_snapshot() -> Vec<u8> {
    Snapshot {
        version: 2,
        time: 1_790_000_000,
        time_ns: 999_999_999,
        host: "nas".into(),
        user: "root".into(),
        paths: vec![b"/srv/data".to_vec(), b"/etc".to_vec()],
        tags: vec!["daily".into(), "db".into()],
        parent: Some([0x5a; 16]),
        tree: [0x11; 32],
        program: "coffer 0.1.0".into(),
        command: Some("pg_dumpall".into()),
        summary: Summary {
            files: 3,
            dirs: 2,
            bytes: 300,
            packs: 1,
            duration_ms: 1234,
            ..Summary::default()
        },
    }
    .encode()
    .expect("encoding a snapshot cannot fail")
}
