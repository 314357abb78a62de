//! Repository vectors (FORMAT.md Part II, §12–§21): the key hierarchy, recipient-sealed
//! and symmetric objects, packs, indexes, trees, snapshots, the configuration and key
//! files, each with the inputs that must be refused; and, in `whole`, a small
//! repository written by the engine (`test-vectors/repository/`).
//!
//! Objects are sealed by the engine's own writers, fed this file's seeded generator
//! where they draw randomness (`seal_to_with`, `seal_bytes_with`, `make_with`), so the
//! file is the same on every run. Expected values come from the inputs the generator
//! chose (the plaintext it sealed, the fields it encoded); key derivations are
//! transcribed here from FORMAT.md §12 and RFC 9180, not taken from the engine.
//! Invalid tests name the rule they break by construction; the `error` is the
//! reference's condition (a name from FORMAT.md's error table when the sealed-stream
//! layer refuses, `RepoFormat`, `Recipient`, or a tree rule).

pub mod config;
pub mod objects;
pub mod packs;
pub mod trees;
pub mod whole;

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Sha256, Sha512};

use super::{hexv, File};

/// Builds a test's fields from name and value pairs.
pub fn fields(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// `bytes` with byte `i` XORed with `mask`.
pub fn flip(bytes: &[u8], i: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[i] ^= mask;
    out
}

/// `bytes` with byte `i` set to `value`.
pub fn set(bytes: &[u8], i: usize, value: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[i] = value;
    out
}

/// `bytes` with `new` written at `i`.
pub fn put(bytes: &[u8], i: usize, new: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[i..i + new.len()].copy_from_slice(new);
    out
}

/// HKDF-Expand-SHA-512 with a 32-byte PRK (FORMAT.md §1), transcribed.
pub fn expand512(prk: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t = Vec::new();
    let mut n = 1u8;
    while out.len() < len {
        let mut mac = Hmac::<Sha512>::new_from_slice(prk).unwrap();
        mac.update(&t);
        mac.update(info);
        mac.update(&[n]);
        t = mac.finalize().into_bytes().to_vec();
        out.extend_from_slice(&t);
        n += 1;
    }
    out.truncate(len);
    out
}

pub fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// RFC 9180 §7.1.3 DeriveKeyPair's private key for DHKEM(X25519, HKDF-SHA256),
/// transcribed: `LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", 32)`.
pub fn derive_private_key(ikm: &[u8]) -> [u8; 32] {
    let suite = b"KEM\x00\x20";
    let prk = hmac256(&[], &[b"HPKE-v1", suite, b"dkp_prk", ikm]);
    // Expand with L = 32: one block, T(1) = HMAC(prk, info ‖ 0x01).
    let okm = hmac256(
        &prk,
        &[&32u16.to_be_bytes(), b"HPKE-v1", suite, b"sk", &[1]],
    );
    okm.try_into().unwrap()
}

/// Every repository vector, in one file.
pub fn repository_file() -> File {
    let mut f = File::new(
        "coffer_repository_test.json",
        "Coffer repository v2",
        0xC0FF_EE06,
        &[
            "The objects of Coffer's deduplicated repositories (FORMAT.md Part II, §12-§21): the key hierarchy, recipient-sealed and symmetric objects, packs, indexes, trees, snapshots, the configuration and key files.",
            "Each group's type says what a test holds and how to apply it; see test-vectors/README.md. Invalid tests name the reference's condition in error; a reader need only refuse them (with the same name where FORMAT.md's error table has one).",
        ],
    );
    notes(&mut f);
    objects::keys_group(&mut f);
    f.next_group();
    objects::recipient_group(&mut f);
    f.next_group();
    objects::symmetric_group(&mut f);
    f.next_group();
    packs::pack_group(&mut f);
    f.next_group();
    packs::index_group(&mut f);
    f.next_group();
    trees::tree_group(&mut f);
    f.next_group();
    trees::snapshot_group(&mut f);
    f.next_group();
    config::config_group(&mut f);
    f.next_group();
    config::key_file_group(&mut f);
    f
}

fn notes(f: &mut File) {
    let mut n = |flag: &str, bug: &str, d: &str| f.note(flag, bug, d);
    // Keys.
    n("Derivation", "BASIC", "FORMAT.md §12's keys from the master key, step by step: the writer secret, the chunk ID, index, config and cache keys, the recipient IKM, and the X25519 key pair by RFC 9180 DeriveKeyPair.");
    n("WriteOnlyKey", "FUNCTIONALITY", "A write-only key holds only the writer secret: it derives the same chunk ID, index, config and cache keys, and no X25519 key pair.");
    n("InvalidKeySize", "MISSING_STEP", "A master key that is not 32 bytes must be refused (InvalidKeyLength) before anything is derived.");
    // Objects.
    n("EdgeLength", "EDGE_CASE", "A plaintext or field at an edge: empty, exactly one chunk (16384 bytes, whose empty final chunk follows), an empty tree, the longest names and values allowed.");
    n(
        "OtherKind",
        "FUNCTIONALITY",
        "A snapshot (kind 2) rather than a pack, with its own name.",
    );
    n(
        "ModifiedMagic",
        "MISSING_STEP",
        "A magic is not the one the object's section gives: refused before anything is opened.",
    );
    n("UnsupportedVersion", "MISSING_STEP", "A version byte other than the section's, also when the object was sealed with it, so the cryptography alone would accept it.");
    n("ReservedBitsSet", "MISSING_STEP", "A byte the format reserves as zero is not, also when the object was sealed with it: bytes 10..16 of a recipient-sealed object's header, bytes 34..36 of a table-of-contents entry, bytes 6..8 of a key file.");
    n("WrongKind", "AUTH_BYPASS", "A pack opened as a snapshot, or the kind byte changed: the header check or the HPKE context (which holds the header) must refuse it.");
    n("WrongName", "AUTH_BYPASS", "The object is opened under another name than it was sealed for (moved or renamed by storage): the name is in the context, so it does not open.");
    n("WrongRepository", "AUTH_BYPASS", "The object is opened for another repository ID than it was sealed for (copied from another repository): the ID is in the context, so it does not open.");
    n(
        "WrongKey",
        "AUTH_BYPASS",
        "The right bytes opened with another repository's keys.",
    );
    n("WrongLabel", "AUTH_BYPASS", "A symmetric object opened as another kind (an index as a lock): the label is in the context.");
    n("ModifiedCiphertext", "AUTH_BYPASS", "A bit flipped in HPKE's encapsulated key, the encrypted object key, its tag, or the sealed stream's header, salt, commitment, body or tag.");
    n("LowOrderPoint", "CAN_OF_WORMS", "The encapsulated key is the X25519 point 0, whose shared secret is all zero bytes: RFC 9180 §7.1.4 requires Decap to fail.");
    n(
        "Truncation",
        "MISSING_STEP",
        "Cut short: inside a header, the encapsulated key, the sealed stream, a table or a record.",
    );
    n("TrailingData", "MISSING_STEP", "Bytes after the end: after a sealed stream's final chunk (it fails authentication), after an index, a tree or a snapshot.");
    n("OtherSuite", "FUNCTIONALITY", "The inner sealed stream uses ChaCha20-Poly1305: FORMAT.md §12 has writers use AES-256-GCM and lets a reader accept either suite, as the stream's header names it, so the result is acceptable.");
    // Packs and indexes.
    n("Compressed", "FUNCTIONALITY", "A pack holding zstd-compressed blobs (compression 1) next to stored ones, and a tree blob (kind 1).");
    n("TocOutOfBounds", "CAN_OF_WORMS", "The trailer places the table of contents outside the plaintext (toc_offset + toc_len > length - 16, or an offset that overflows), or makes it shorter than its count.");
    n(
        "TocLength",
        "MISSING_STEP",
        "toc_len is not 4 + 48 x the table's count.",
    );
    n(
        "UnknownKind",
        "MISSING_STEP",
        "A blob kind other than 0 (data) and 1 (tree).",
    );
    n(
        "UnknownCompression",
        "MISSING_STEP",
        "A compression other than 0 (stored) and 1 (zstd).",
    );
    n(
        "StoredLength",
        "MISSING_STEP",
        "A stored (uncompressed) blob whose stored_len is not its raw_len.",
    );
    n(
        "BlobTooLong",
        "CAN_OF_WORMS",
        "A raw_len above 2^30 - 2^20: refused before anything is sized by it.",
    );
    n(
        "Overlap",
        "MISSING_STEP",
        "Two blobs' stored bytes overlap.",
    );
    n(
        "BlobIntoToc",
        "MISSING_STEP",
        "A blob's stored bytes run into the table of contents.",
    );
    n("WrongBlobId", "AUTH_BYPASS", "A blob whose bytes are not what its ID (its chunk ID, FORMAT.md §14) says: it must not be released.");
    n(
        "BadZstd",
        "MISSING_STEP",
        "A compressed blob that does not decompress, or not to exactly raw_len bytes.",
    );
    n("Padding", "FUNCTIONALITY", "The plaintext is not Padme(U) long, or its padding is not zeros: FORMAT.md §16 says a reader MAY check this (a writer MUST make it true), so the result is acceptable.");
    n("ExtraZstdFrames", "FUNCTIONALITY", "A compressed blob that is two zstd frames, or a skippable frame and a frame, whose bytes are still exactly raw_len bytes of the right ID. FORMAT.md §16 says a compressed blob is exactly one zstd frame, but does not say a reader must refuse other blobs: acceptable.");
    n("CountTooLarge", "CAN_OF_WORMS", "An index count (packs, entries or superseded indexes) whose items cannot fit in the bytes left: refused before anything is sized by it.");
    n(
        "Supersedes",
        "FUNCTIONALITY",
        "An index that names the indexes it replaces.",
    );
    // Trees and snapshots.
    n(
        "FormatExample",
        "BASIC",
        "FORMAT.md's worked example of a tree (§18.5).",
    );
    n("NodeKinds", "FUNCTIONALITY", "Every kind of node: file, directory, symbolic link, FIFO, character and block devices, socket.");
    n(
        "Hole",
        "FUNCTIONALITY",
        "A file whose content has Hole pieces (runs of zeros left unwritten).",
    );
    n(
        "Xattrs",
        "FUNCTIONALITY",
        "Nodes with extended attributes, sorted by name bytes (a proper prefix first).",
    );
    n("NonUtf8", "FUNCTIONALITY", "Names, link targets, extended attributes and snapshot paths that are not UTF-8: they are byte strings.");
    n("EdgeValue", "EDGE_CASE", "Field values at their edges: negative times, u64 maxima, a mode of 0o7777, nanoseconds of 999999999, a file of size 2^64 - 1 made of holes.");
    n("Oversized", "CAN_OF_WORMS", "A tree blob over 64 MiB or a snapshot plaintext over 16 MiB (given zlib-compressed): refused before it is decoded.");
    n(
        "TooManyNodes",
        "CAN_OF_WORMS",
        "A node count over 4194304: refused before anything is sized by it (§18.3 rule 3).",
    );
    n("Malformed", "MISSING_STEP", "Bytes that do not decode (§18.3 rule 4): an unknown NodeKind or ContentRef variant, a string that is not UTF-8, a bool or option byte other than 0 and 1, a varint too long or too large for its type.");
    n("InvalidName", "MISSING_STEP", "A node name that is empty, longer than 4096 bytes, holds 2f ('/') or 00, or is '.' or '..'.");
    n("ModeOutOfRange", "MISSING_STEP", "A mode above 0o7777.");
    n(
        "NanosOutOfRange",
        "MISSING_STEP",
        "A nanoseconds field of 10^9 or more.",
    );
    n("ContentMismatch", "MISSING_STEP", "A file whose pieces do not add up to its size, including pieces whose sum wraps around 2^64 to exactly the size.");
    n(
        "EmptyPiece",
        "MISSING_STEP",
        "A file piece (Data or Hole) of length 0.",
    );
    n(
        "SizeNotZero",
        "MISSING_STEP",
        "A node other than a file with a size other than 0.",
    );
    n(
        "InvalidSymlinkTarget",
        "MISSING_STEP",
        "A symbolic link target that is empty, holds 00 or is longer than 4096 bytes.",
    );
    n("InvalidXattr", "MISSING_STEP", "An extended attribute whose name is empty, holds 00 or is longer than 255 bytes, or whose value is longer than 65536 bytes.");
    n("Unsorted", "MISSING_STEP", "Node names or extended attribute names not in strictly increasing byte order (a proper prefix first).");
    n(
        "Duplicate",
        "MISSING_STEP",
        "Two nodes, or two extended attributes of one node, with the same name.",
    );
    n("NonCanonical", "MISSING_STEP", "A varint in a longer form than needed. Trees: §18.3 rule 7 refuses them (re-encoding must give the blob), since a tree's ID is the hash of its bytes. Snapshots: §18.1's wire rules say only the shortest form is valid, but §19's list of what makes a snapshot invalid does not name it: acceptable.");
    // Configuration and key files.
    n("IdMismatch", "AUTH_BYPASS", "The repository ID inside the configuration differs from the one outside, sealed consistently.");
    n("WrongLength", "MISSING_STEP", "A configuration plaintext that is not 76 bytes, or a key file that is not 176 (KEK) or 192 (passphrase) bytes.");
    n(
        "ParameterOutOfBounds",
        "MISSING_STEP",
        "A configuration's chunker parameters outside §13.1's bounds.",
    );
    n("WrongPublicKey", "AUTH_BYPASS", "A configuration whose public key is not the one the master key derives: a full key refuses it (§20), since a holder of the writer secret could have rewritten it.");
    n("ModifiedAccess", "AUTH_BYPASS", "A key file's access or wrapping byte changed to another known value: the first 8 bytes are in the envelope's context, so it does not open (or no longer has the right length).");
    n(
        "UnknownValue",
        "MISSING_STEP",
        "A key file's access or wrapping byte that is neither 1 nor 2.",
    );
    n("WrongKek", "AUTH_BYPASS", "A key file opened with another KEK: its envelope names its KEK's ID (WrongKey, or the file is skipped).");
    n(
        "WrongPassphrase",
        "AUTH_BYPASS",
        "A passphrase key file opened with another passphrase.",
    );
    n("Passphrase", "FUNCTIONALITY", "A key file wrapped under a passphrase, with Argon2id's minimum parameters (8192 KiB, 1 pass, 1 lane).");
}

/// Lowercase hex of a JSON array of byte strings.
pub fn hex_list(items: &[Vec<u8>]) -> Value {
    json!(items.iter().map(hex::encode).collect::<Vec<_>>())
}

/// Hex of a 32-byte array, for JSON.
pub fn h(bytes: &[u8]) -> Value {
    hexv(bytes)
}
