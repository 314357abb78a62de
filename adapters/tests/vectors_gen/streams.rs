//! Sealed-stream vectors, one file per suite.

use std::io::Write as _;

use coffer_core::chunked::hazmat::{ChunkKeys, DerivedKeys};
use coffer_core::chunked::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, SALT_LEN, SEAL_BUFFER_LEN};
use coffer_core::provider::RustCryptoCipher;
use coffer_core::stream::{self, StreamHeader, STREAM_HEADER_LEN, STREAM_PREFIX_LEN};
use coffer_core::{Error, KeyId, RustCrypto, SecretKey, Suite};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::{hexv, sha512, zlib, File, FixedRng};

/// Ciphertexts longer than this are stored zlib-compressed (`ctCompressed`).
const INLINE_CT: usize = 2048;
/// Messages up to this length are also given in full (`msg`).
const INLINE_MSG: usize = 256;

/// A sealed stream built by the generator, with what went into it.
struct Sealed {
    suite: Suite,
    key: SecretKey,
    ctx: Vec<u8>,
    header: [u8; STREAM_HEADER_LEN],
    salt: [u8; SALT_LEN],
    bytes: Vec<u8>,
    plain: Vec<u8>,
}

impl Sealed {
    fn keys(&self) -> ChunkKeys<RustCryptoCipher> {
        chunk_keys(self.suite, &self.key, &self.header, &self.ctx, &self.salt).0
    }
    fn chunk_count(&self) -> usize {
        self.plain.len() / CHUNK_LEN + 1
    }
    /// Byte range of chunk `i` (ciphertext and tag) in `bytes`.
    fn chunk(&self, i: usize) -> std::ops::Range<usize> {
        let start = STREAM_PREFIX_LEN + i * ENCRYPTED_CHUNK_LEN;
        start..(start + ENCRYPTED_CHUNK_LEN).min(self.bytes.len())
    }
    fn prefix(&self, full_chunks: usize) -> &[u8] {
        &self.plain[..full_chunks * CHUNK_LEN]
    }
}

fn chunk_keys(
    suite: Suite,
    key: &SecretKey,
    header: &[u8],
    ctx: &[u8],
    salt: &[u8; SALT_LEN],
) -> (ChunkKeys<RustCryptoCipher>, [u8; 32]) {
    let derived = DerivedKeys::derive(suite, key, salt, &[header, ctx]).unwrap();
    let keys =
        ChunkKeys::from_raw(&RustCrypto, suite, &derived.aead_key, derived.base_nonce).unwrap();
    (keys, derived.commitment)
}

/// Seals chunk `i` of `len` bytes. Messages of a chunk or more use the keystream as
/// plaintext, so the ciphertext bodies are zeros and the files compress to their tags
/// (the trick Wycheproof's Cobblestone vectors use); shorter ones use random bytes.
fn seal_chunk(
    keys: &ChunkKeys<RustCryptoCipher>,
    i: usize,
    len: usize,
    zero_ct: bool,
    random: &mut dyn FnMut(usize) -> Vec<u8>,
) -> (Vec<u8>, Vec<u8>) {
    let plain = if zero_ct {
        let mut keystream = vec![0u8; len];
        keys.seal_chunk(i as u64, &mut keystream).unwrap();
        keystream
    } else {
        random(len)
    };
    let mut ct = plain.clone();
    let tag = keys.seal_chunk(i as u64, &mut ct).unwrap();
    ct.extend_from_slice(&tag);
    (plain, ct)
}

impl File {
    fn seal_with_header(
        &mut self,
        suite: Suite,
        key: &SecretKey,
        ctx: &[u8],
        len: usize,
        header: [u8; STREAM_HEADER_LEN],
    ) -> Sealed {
        let salt: [u8; SALT_LEN] = self.array();
        let (keys, commitment) = chunk_keys(suite, key, &header, ctx, &salt);
        let mut bytes = [&header[..], &salt, &commitment].concat();
        let mut plain = Vec::with_capacity(len);
        let zero_ct = len >= CHUNK_LEN;
        let mut random = |n: usize| self.bytes(n);
        for i in 0..=len / CHUNK_LEN {
            let size = if i < len / CHUNK_LEN {
                CHUNK_LEN
            } else {
                len % CHUNK_LEN
            };
            let (p, c) = seal_chunk(&keys, i, size, zero_ct, &mut random);
            plain.extend_from_slice(&p);
            bytes.extend_from_slice(&c);
        }
        Sealed {
            suite,
            key: SecretKey::from_bytes(*key.expose_secret()),
            ctx: ctx.to_vec(),
            header,
            salt,
            bytes,
            plain,
        }
    }

    /// A stream built chunk by chunk, checked against the real sealer fed the same
    /// salt and the plaintext in uneven slices.
    fn seal(&mut self, suite: Suite, key: &SecretKey, ctx: &[u8], len: usize) -> Sealed {
        let header = StreamHeader {
            suite,
            key_id: key.id(),
        }
        .encode();
        let sealed = self.seal_with_header(suite, key, ctx, len, header);
        let mut rng = FixedRng(sealed.salt.to_vec());
        let mut buf = vec![0u8; SEAL_BUFFER_LEN];
        let (mut sealer, prefix) =
            stream::seal(&RustCrypto, suite, key, ctx, &mut rng, &mut buf[..]).unwrap();
        let mut out = prefix.to_vec();
        for piece in sealed.plain.chunks(5000) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (n, ct) = sealer.push(rest).unwrap();
                out.extend_from_slice(ct.unwrap_or_default());
                rest = &rest[n..];
            }
        }
        out.extend_from_slice(sealer.finish().unwrap().ciphertext());
        assert!(
            out == sealed.bytes,
            "the sealer disagrees with the generator"
        );
        sealed
    }

    fn stream_fields(&self, key: &[u8], ctx: &[u8], ct: &[u8]) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("key".into(), hexv(key));
        if let Ok(k) = SecretKey::try_from_slice(key) {
            m.insert("keyId".into(), hexv(k.id().as_bytes()));
        }
        m.insert("ctx".into(), hexv(ctx));
        if ct.len() <= INLINE_CT {
            m.insert("ct".into(), hexv(ct));
        } else {
            m.insert("ctCompressed".into(), hexv(&zlib(ct)));
        }
        m
    }

    fn message_fields(m: &mut Map<String, Value>, msg: &[u8]) {
        m.insert("msgLength".into(), json!(msg.len()));
        m.insert("msgSha512".into(), hexv(&sha512(msg)));
        if msg.len() <= INLINE_MSG {
            m.insert("msg".into(), hexv(msg));
        }
    }

    fn valid_stream(&mut self, comment: &str, flags: &[&str], s: &Sealed) {
        let mut m = self.stream_fields(s.key.expose_secret(), &s.ctx, &s.bytes);
        Self::message_fields(&mut m, &s.plain);
        self.add(comment, flags, m, Ok(()));
    }

    /// An invalid stream. `released` is what a streaming reader may output before it
    /// fails (flagged PartialPlaintext when not empty).
    #[allow(clippy::too_many_arguments)]
    fn invalid_stream(
        &mut self,
        comment: &str,
        flags: &[&str],
        key: &[u8],
        ctx: &[u8],
        ct: &[u8],
        released: &[u8],
        error: Error,
    ) {
        let mut m = self.stream_fields(key, ctx, ct);
        let mut flags = flags.to_vec();
        if !released.is_empty() {
            Self::message_fields(&mut m, released);
            flags.push("PartialPlaintext");
        }
        self.add(comment, &flags, m, Err(error));
    }
}

fn notes(f: &mut File) {
    let n = |f: &mut File, flag, bug, d| f.note(flag, bug, d);
    n(f, "CounterRollover", "EDGE_CASE", "The message has more than 2^8 or 2^16 chunks, so the chunk index XORed into the nonce crosses a byte boundary. Valid; a reader with a narrow or misplaced counter fails it.");
    n(f, "EdgeLength", "EDGE_CASE", "A valid message whose length is 0, 1, or sits on or next to a multiple of the 16384-byte chunk size (so its final chunk is empty or almost full).");
    n(
        f,
        "ModifiedMagic",
        "MISSING_STEP",
        "The magic (bytes 0..8) is not COFFER/S. The reader must refuse it first, with BadMagic.",
    );
    n(f, "UnsupportedVersion", "MISSING_STEP", "The version byte is not 1. A v1 reader must refuse it (UnsupportedVersion) rather than guess.");
    n(
        f,
        "UnsupportedSuite",
        "MISSING_STEP",
        "The suite byte names no suite (UnsupportedSuite).",
    );
    n(f, "ReservedBitsSet", "MISSING_STEP", "A reserved header byte is not zero (ReservedBitsSet), including in headers that were sealed with the byte set, so the commitment alone would accept them.");
    n(f, "ModifiedHeader", "AUTH_BYPASS", "A header byte was changed to another acceptable value (the other suite): the header is bound as context, so the commitment check fails (CommitmentMismatch).");
    n(f, "ModifiedKeyId", "MISSING_STEP", "The header's key ID was changed. A reader selects the key by ID and must report WrongKey naming the header's ID; when the ID was changed to match a wrong key, the commitment check still fails.");
    n(f, "ModifiedCiphertext", "AUTH_BYPASS", "The salt, the commitment, a chunk body or a tag was modified. Decryption must fail: CommitmentMismatch for the salt and commitment, CorruptedChunk naming the chunk otherwise.");
    n(f, "HeaderFailure", "FUNCTIONALITY", "The stream must be rejected while processing the header, key ID and commitment, before any chunk is decrypted.");
    n(f, "Truncation", "AUTH_BYPASS", "The stream was cut short: empty, inside the header, the salt or the commitment, inside a chunk body or tag, or missing its short final chunk. Truncated when the length cannot be a message, CorruptedChunk when what is left parses as a shorter final chunk.");
    n(f, "FullSizeFinalChunk", "AUTH_BYPASS", "The stream ends with a full 16384-byte chunk, validly sealed at its index: the empty final chunk a message of this length needs is missing (Truncated).");
    n(f, "TrailingData", "AUTH_BYPASS", "Garbage bytes or a validly sealed extra chunk follow the short final chunk. Decryption must fail; the end of the stream decides which chunk is final, so the chunk that absorbed the extra bytes fails (CorruptedChunk).");
    n(f, "ChunkReordering", "AUTH_BYPASS", "Chunks were swapped, duplicated or dropped. The per-chunk nonce must make the first chunk out of place fail (CorruptedChunk).");
    n(f, "ChunkSplice", "AUTH_BYPASS", "A chunk was replaced by the chunk at the same index of another stream under the same key. The per-message key derivation must make it fail (CorruptedChunk).");
    n(f, "WrongKey", "MISSING_STEP", "A valid stream opened with another key: the reader must report WrongKey with the key ID the header names, without trying to decrypt.");
    n(f, "WrongContext", "MISSING_STEP", "A valid stream opened with another caller context: the commitment check must reject it (CommitmentMismatch) before any chunk is decrypted.");
    n(
        f,
        "InvalidKeySize",
        "BASIC",
        "The key is not 32 bytes and must be refused (InvalidKeyLength).",
    );
    n(f, "PartialPlaintext", "FUNCTIONALITY", "The stream is invalid, but starts with validly sealed chunks: msgLength and msgSha512 describe the longest valid prefix. A streaming reader may release that prefix before it fails, and must then keep failing; it must release nothing more.");
    n(f, "ValidFinalChunk", "FUNCTIONALITY", "The stream is invalid, but its final chunk is validly sealed at its index: authenticating the length by opening the final chunk (to seek from the end) succeeds. It must fail for every other invalid vector.");
}

pub fn stream_file(suite: Suite) -> File {
    let (name, seed) = match suite {
        Suite::Aes256Gcm => ("coffer_stream_aes_256_gcm_test.json", 0xC0FF_EE01),
        Suite::ChaCha20Poly1305 => ("coffer_stream_chacha20_poly1305_test.json", 0xC0FF_EE02),
        _ => unreachable!(),
    };
    let mut f = File::new(
        name,
        &format!("Coffer sealed stream v1, {}", suite.aead_name()),
        seed,
        &[
            "Coffer sealed streams (FORMAT.md §5): a 32-byte header, then a C2SP chunked-encryption message whose context is the header followed by ctx.",
            "Apply each test through a streaming reader and a random-access reader; see test-vectors/README.md.",
        ],
    );
    notes(&mut f);
    f.group_field("type", json!("CofferStream"));
    f.group_field("suite", json!(suite.to_byte()));
    f.group_field("aead", json!(suite.aead_name()));

    let key = SecretKey::from_bytes(f.array());
    let other_key = SecretKey::from_bytes(f.array());
    let ctx = b"tenant 7 / repository 3".to_vec();

    // ---- valid ----
    for (len, comment) in [
        (0, "empty message: one empty final chunk"),
        (1, "one byte"),
        (
            CHUNK_LEN - 1,
            "one byte short of a chunk: a single, almost full final chunk",
        ),
        (
            CHUNK_LEN,
            "exactly one chunk: a full chunk, then an empty final chunk",
        ),
        (CHUNK_LEN + 1, "a full chunk and a one-byte final chunk"),
        (2 * CHUNK_LEN, "two full chunks and an empty final chunk"),
        (
            3 * CHUNK_LEN + 1000,
            "three full chunks and a short final chunk",
        ),
    ] {
        let s = f.seal(suite, &key, &ctx, len);
        f.valid_stream(comment, &["EdgeLength"], &s);
    }
    let s = f.seal(suite, &key, b"", 100);
    f.valid_stream("empty caller context", &[], &s);
    let s = f.seal(suite, &key, b"ctx\0with a NUL byte", 100);
    f.valid_stream("caller context containing a NUL byte", &[], &s);
    let zero_key = SecretKey::from_bytes([0; 32]);
    let s = f.seal(suite, &zero_key, &ctx, 64);
    f.valid_stream(
        "all-zero key (valid, though no real key should be)",
        &[],
        &s,
    );
    let s = f.seal(suite, &key, &ctx, 256 * CHUNK_LEN + 7);
    f.valid_stream(
        "257 chunks: the last index (256) crosses 2^8",
        &["CounterRollover"],
        &s,
    );
    let s = f.seal(suite, &key, &ctx, 257 * CHUNK_LEN);
    f.valid_stream(
        "258 chunks, the last one empty: indices 256 and 257 past 2^8",
        &["CounterRollover"],
        &s,
    );
    huge_rollover(&mut f, suite, &key, &ctx);

    // ---- header fields ----
    let base = f.seal(suite, &key, &ctx, 100);
    let k = base.key.expose_secret().to_vec();
    let header_case = |f: &mut File, at: usize, value: u8, comment: &str, flags: &[&str], e| {
        let mut bad = base.bytes.clone();
        bad[at] = value;
        f.invalid_stream(comment, flags, &k, &ctx, &bad, &[], e);
    };
    let hf = |flag: &'static str| [flag, "HeaderFailure"];
    header_case(
        &mut f,
        0,
        b'c',
        "magic: first byte lower-case",
        &hf("ModifiedMagic"),
        Error::BadMagic,
    );
    header_case(
        &mut f,
        7,
        b'K',
        "magic: COFFER/K, an envelope's",
        &hf("ModifiedMagic"),
        Error::BadMagic,
    );
    header_case(
        &mut f,
        3,
        0xff,
        "magic: one byte 0xff",
        &hf("ModifiedMagic"),
        Error::BadMagic,
    );
    for v in [0u8, 2, 255] {
        header_case(
            &mut f,
            8,
            v,
            &format!("version {v}"),
            &hf("UnsupportedVersion"),
            Error::UnsupportedVersion { version: v },
        );
    }
    for v in [0u8, 3, 255] {
        header_case(
            &mut f,
            9,
            v,
            &format!("suite {v}"),
            &hf("UnsupportedSuite"),
            Error::UnsupportedSuite { suite: v },
        );
    }
    let other_suite = Suite::ALL.into_iter().find(|s| *s != suite).unwrap();
    header_case(
        &mut f,
        9,
        other_suite.to_byte(),
        "suite byte changed to the other suite",
        &hf("ModifiedHeader"),
        Error::CommitmentMismatch,
    );
    for at in [10usize, 12, 15] {
        header_case(
            &mut f,
            at,
            1,
            &format!("reserved byte {at} set to 1"),
            &hf("ReservedBitsSet"),
            Error::ReservedBitsSet,
        );
    }
    let mut forged = StreamHeader {
        suite,
        key_id: key.id(),
    }
    .encode();
    forged[11] = 0x80;
    let s = f.seal_with_header(suite, &key, &ctx, 100, forged);
    f.invalid_stream(
        "reserved byte 11 set in a header that was sealed that way (the commitment matches)",
        &hf("ReservedBitsSet"),
        &k,
        &ctx,
        &s.bytes,
        &[],
        Error::ReservedBitsSet,
    );
    for at in [16usize, 31] {
        let mut bad = base.bytes.clone();
        bad[at] ^= 0x01;
        let expected = KeyId(bad[16..32].try_into().unwrap());
        f.invalid_stream(
            &format!("key ID byte {at} flipped"),
            &hf("ModifiedKeyId"),
            &k,
            &ctx,
            &bad,
            &[],
            Error::WrongKey { expected },
        );
    }
    let mut bad = base.bytes.clone();
    bad[16..32].copy_from_slice(other_key.id().as_bytes());
    f.invalid_stream(
        "key ID replaced by a wrong key's ID, opened with that wrong key",
        &["ModifiedKeyId", "WrongKey", "HeaderFailure"],
        other_key.expose_secret(),
        &ctx,
        &bad,
        &[],
        Error::CommitmentMismatch,
    );

    // ---- salt, commitment, chunks ----
    for (at, what) in [
        (STREAM_HEADER_LEN, "first salt byte"),
        (STREAM_HEADER_LEN + 23, "last salt byte"),
        (STREAM_HEADER_LEN + 24, "first commitment byte"),
        (STREAM_PREFIX_LEN - 1, "last commitment byte"),
    ] {
        let mut bad = base.bytes.clone();
        bad[at] ^= 0x80;
        f.invalid_stream(
            &format!("{what} flipped"),
            &["ModifiedCiphertext", "HeaderFailure"],
            &k,
            &ctx,
            &bad,
            &[],
            Error::CommitmentMismatch,
        );
    }
    for (at, what) in [
        (STREAM_PREFIX_LEN, "first ciphertext byte"),
        (STREAM_PREFIX_LEN + 99, "last ciphertext byte"),
        (STREAM_PREFIX_LEN + 100, "first tag byte"),
        (STREAM_PREFIX_LEN + 115, "last tag byte"),
    ] {
        let mut bad = base.bytes.clone();
        bad[at] ^= 0x01;
        f.invalid_stream(
            &format!("single chunk: {what} flipped"),
            &["ModifiedCiphertext"],
            &k,
            &ctx,
            &bad,
            &[],
            Error::CorruptedChunk { index: 0 },
        );
    }
    let empty = f.seal(suite, &key, &ctx, 0);
    let mut bad = empty.bytes.clone();
    bad[STREAM_PREFIX_LEN + 5] ^= 0x10;
    f.invalid_stream(
        "empty message: tag flipped",
        &["ModifiedCiphertext"],
        &k,
        &ctx,
        &bad,
        &[],
        Error::CorruptedChunk { index: 0 },
    );

    let four = f.seal(suite, &key, &ctx, 3 * CHUNK_LEN + 1000);
    for (chunk, offset, what) in [
        (0usize, 0usize, "chunk 0 body"),
        (1, 5000, "chunk 1 body"),
        (2, CHUNK_LEN + 3, "chunk 2 tag"),
    ] {
        let mut bad = four.bytes.clone();
        bad[four.chunk(chunk).start + offset] ^= 0x04;
        f.invalid_stream(
            &format!("four chunks: {what} flipped"),
            &["ModifiedCiphertext", "ValidFinalChunk"],
            &k,
            &ctx,
            &bad,
            four.prefix(chunk),
            Error::CorruptedChunk {
                index: chunk as u64,
            },
        );
    }
    let mut bad = four.bytes.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    f.invalid_stream(
        "four chunks: the final chunk's last tag byte flipped",
        &["ModifiedCiphertext"],
        &k,
        &ctx,
        &bad,
        four.prefix(3),
        Error::CorruptedChunk { index: 3 },
    );

    // ---- truncation ----
    let cut = |f: &mut File,
               s: &Sealed,
               at: usize,
               comment: &str,
               flags: &[&str],
               released: usize,
               e: Error| {
        let released = s.prefix(released).to_vec();
        f.invalid_stream(
            comment,
            flags,
            s.key.expose_secret(),
            &s.ctx,
            &s.bytes[..at],
            &released,
            e,
        );
    };
    let tr = ["Truncation", "HeaderFailure"];
    cut(&mut f, &base, 0, "empty input", &tr, 0, Error::Truncated);
    cut(
        &mut f,
        &base,
        4,
        "4 bytes: inside the magic",
        &tr,
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        20,
        "20 bytes: inside the key ID",
        &tr,
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        32,
        "the header alone",
        &tr,
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        40,
        "inside the salt",
        &tr,
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        56,
        "header and salt, no commitment",
        &tr,
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        70,
        "inside the commitment",
        &tr,
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        STREAM_PREFIX_LEN,
        "header, salt and commitment, no chunk",
        &["Truncation"],
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        STREAM_PREFIX_LEN + 15,
        "15 bytes of the only chunk: shorter than a tag",
        &["Truncation"],
        0,
        Error::Truncated,
    );
    cut(
        &mut f,
        &base,
        STREAM_PREFIX_LEN + 50,
        "the only chunk cut inside its body",
        &["Truncation"],
        0,
        Error::CorruptedChunk { index: 0 },
    );
    cut(
        &mut f,
        &base,
        STREAM_PREFIX_LEN + 100,
        "the only chunk without its tag",
        &["Truncation"],
        0,
        Error::CorruptedChunk { index: 0 },
    );
    cut(
        &mut f,
        &base,
        STREAM_PREFIX_LEN + 110,
        "the only chunk cut inside its tag",
        &["Truncation"],
        0,
        Error::CorruptedChunk { index: 0 },
    );
    let end0 = four.chunk(0).end;
    cut(
        &mut f,
        &four,
        end0 + 10,
        "four chunks cut 10 bytes into chunk 1",
        &["Truncation"],
        1,
        Error::Truncated,
    );
    cut(
        &mut f,
        &four,
        end0 + 6000,
        "four chunks cut inside chunk 1's body",
        &["Truncation"],
        1,
        Error::CorruptedChunk { index: 1 },
    );
    cut(
        &mut f,
        &four,
        four.chunk(2).end - 8,
        "four chunks cut inside chunk 2's tag",
        &["Truncation"],
        2,
        Error::CorruptedChunk { index: 2 },
    );
    cut(
        &mut f,
        &four,
        four.chunk(3).start,
        "four chunks without the short final chunk",
        &["Truncation"],
        3,
        Error::Truncated,
    );
    cut(
        &mut f,
        &four,
        four.chunk(3).start + 300,
        "four chunks cut inside the final chunk",
        &["Truncation"],
        3,
        Error::CorruptedChunk { index: 3 },
    );
    let one = f.seal(suite, &key, &ctx, CHUNK_LEN);
    cut(
        &mut f,
        &one,
        one.chunk(1).start,
        "one full chunk and no empty final chunk",
        &["Truncation", "FullSizeFinalChunk"],
        1,
        Error::Truncated,
    );
    let two = f.seal(suite, &key, &ctx, 2 * CHUNK_LEN);
    cut(
        &mut f,
        &two,
        two.chunk(2).start,
        "two full chunks and no empty final chunk",
        &["Truncation", "FullSizeFinalChunk"],
        2,
        Error::Truncated,
    );

    // ---- trailing data ----
    let trailing =
        |f: &mut File, s: &Sealed, extra: &[u8], comment: &str, released: usize, e: Error| {
            let bad = [&s.bytes[..], extra].concat();
            let released = s.prefix(released).to_vec();
            f.invalid_stream(
                comment,
                &["TrailingData"],
                s.key.expose_secret(),
                &s.ctx,
                &bad,
                &released,
                e,
            );
        };
    trailing(
        &mut f,
        &base,
        &[0],
        "one zero byte after the final chunk",
        0,
        Error::CorruptedChunk { index: 0 },
    );
    let garbage = f.bytes(20);
    trailing(
        &mut f,
        &base,
        &garbage,
        "20 garbage bytes after the final chunk",
        0,
        Error::CorruptedChunk { index: 0 },
    );
    trailing(
        &mut f,
        &empty,
        &[0; 16],
        "16 zero bytes after an empty final chunk",
        0,
        Error::CorruptedChunk { index: 0 },
    );
    let garbage = f.bytes(40);
    trailing(
        &mut f,
        &four,
        &garbage,
        "40 garbage bytes after four chunks",
        3,
        Error::CorruptedChunk { index: 3 },
    );
    let mut extra = vec![0u8; 30];
    let tag = four.keys().seal_chunk(4, &mut extra).unwrap();
    extra.extend_from_slice(&tag);
    trailing(
        &mut f,
        &four,
        &extra,
        "a validly sealed chunk 4 after the final chunk 3",
        3,
        Error::CorruptedChunk { index: 3 },
    );
    let mut extra = vec![0u8; 0];
    let tag = empty.keys().seal_chunk(1, &mut extra).unwrap();
    trailing(
        &mut f,
        &empty,
        &tag,
        "a validly sealed empty chunk 1 after an empty final chunk",
        0,
        Error::CorruptedChunk { index: 0 },
    );

    // ---- reordering, duplication, splicing ----
    let c = |i: usize| four.bytes[four.chunk(i)].to_vec();
    let prefix = four.bytes[..STREAM_PREFIX_LEN].to_vec();
    let arrange = |order: &[Vec<u8>]| {
        let mut out = prefix.clone();
        for part in order {
            out.extend_from_slice(part);
        }
        out
    };
    for (order, comment, released, index, vfc) in [
        (
            vec![c(1), c(0), c(2), c(3)],
            "chunks 0 and 1 swapped",
            0,
            0u64,
            true,
        ),
        (
            vec![c(0), c(0), c(2), c(3)],
            "chunk 0 duplicated in place of chunk 1",
            1,
            1,
            true,
        ),
        (
            vec![c(0), c(1), c(1), c(3)],
            "chunk 1 duplicated in place of chunk 2",
            2,
            2,
            true,
        ),
        (vec![c(0), c(2), c(3)], "chunk 1 dropped", 1, 1, false),
        (
            vec![c(0), c(1), c(3), c(2)],
            "final chunk moved before chunk 2",
            2,
            2,
            false,
        ),
        (
            vec![c(0), c(1), c(2), c(3), c(3)],
            "final chunk duplicated",
            3,
            3,
            false,
        ),
    ] {
        let bad = arrange(&order);
        let flags: &[&str] = if vfc {
            &["ChunkReordering", "ValidFinalChunk"]
        } else {
            &["ChunkReordering"]
        };
        f.invalid_stream(
            comment,
            flags,
            &k,
            &ctx,
            &bad,
            four.prefix(released),
            Error::CorruptedChunk { index },
        );
    }
    let twin = f.seal(suite, &key, &ctx, 3 * CHUNK_LEN + 1000);
    let mut bad = four.bytes.clone();
    bad[four.chunk(1)].copy_from_slice(&twin.bytes[twin.chunk(1)]);
    f.invalid_stream(
        "chunk 1 from another stream under the same key",
        &["ChunkSplice", "ValidFinalChunk"],
        &k,
        &ctx,
        &bad,
        four.prefix(1),
        Error::CorruptedChunk { index: 1 },
    );
    let mut bad = four.bytes.clone();
    let final_range = four.chunk(3);
    bad.truncate(final_range.start);
    bad.extend_from_slice(&twin.bytes[twin.chunk(3)]);
    f.invalid_stream(
        "final chunk from another stream under the same key",
        &["ChunkSplice"],
        &k,
        &ctx,
        &bad,
        four.prefix(3),
        Error::CorruptedChunk { index: 3 },
    );

    // ---- wrong key, context, key size ----
    f.invalid_stream(
        "opened with another key",
        &["WrongKey", "HeaderFailure"],
        other_key.expose_secret(),
        &ctx,
        &base.bytes,
        &[],
        Error::WrongKey { expected: key.id() },
    );
    for (wrong, comment) in [
        (b"".to_vec(), "opened with an empty context"),
        (
            [&ctx[..], b"!"].concat(),
            "opened with the context plus one byte",
        ),
        (
            b"tenant 7 / repository 4".to_vec(),
            "opened with another repository's context",
        ),
    ] {
        f.invalid_stream(
            comment,
            &["WrongContext", "HeaderFailure"],
            &k,
            &wrong,
            &base.bytes,
            &[],
            Error::CommitmentMismatch,
        );
    }
    let s = f.seal(suite, &key, b"", 10);
    f.invalid_stream(
        "sealed with an empty context, opened with one",
        &["WrongContext", "HeaderFailure"],
        &k,
        b"x",
        &s.bytes,
        &[],
        Error::CommitmentMismatch,
    );
    for len in [31usize, 33, 16] {
        let key_bytes = [&k[..], &[0u8; 33]].concat()[..len].to_vec();
        f.invalid_stream(
            &format!("{len}-byte key"),
            &["InvalidKeySize", "HeaderFailure"],
            &key_bytes,
            &ctx,
            &base.bytes,
            &[],
            Error::InvalidKeyLength { len },
        );
    }
    f
}

/// 2^16 full chunks and a short final chunk: the last index needs three bytes. About
/// 1 GiB of plaintext, built and compressed as a stream so it never sits in memory.
fn huge_rollover(f: &mut File, suite: Suite, key: &SecretKey, ctx: &[u8]) {
    let full = 1usize << 16;
    let final_len = 100;
    let header = StreamHeader {
        suite,
        key_id: key.id(),
    }
    .encode();
    let salt: [u8; SALT_LEN] = f.array();
    let (keys, commitment) = chunk_keys(suite, key, &header, ctx, &salt);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&header).unwrap();
    z.write_all(&salt).unwrap();
    z.write_all(&commitment).unwrap();
    let mut hash = Sha512::new();
    let mut no_random =
        |_: usize| -> Vec<u8> { unreachable!("zero-ciphertext chunks need no randomness") };
    for i in 0..=full {
        let len = if i < full { CHUNK_LEN } else { final_len };
        let (p, c) = seal_chunk(&keys, i, len, true, &mut no_random);
        hash.update(&p);
        z.write_all(&c).unwrap();
    }
    let mut m = Map::new();
    m.insert("key".into(), hexv(key.expose_secret()));
    m.insert("keyId".into(), hexv(key.id().as_bytes()));
    m.insert("ctx".into(), hexv(ctx));
    m.insert("ctCompressed".into(), hexv(&z.finish().unwrap()));
    m.insert("msgLength".into(), json!(full * CHUNK_LEN + final_len));
    m.insert("msgSha512".into(), hexv(&hash.finalize()));
    f.add(
        "65537 chunks (1 GiB + 100 bytes): the last index (65536) crosses 2^16",
        &["CounterRollover"],
        m,
        Ok(()),
    );
}
