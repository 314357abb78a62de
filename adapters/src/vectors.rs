//! Applies test-vector files to the core, as `test-vectors/README.md` tells an
//! integrator to: every test through the streaming opener (checking what it releases
//! before failing) and, for streams, the random-access opener (checking when the
//! length authenticates), with the exact error each invalid test names; the chunker's
//! key derivations, cut points (whole and in slices) and chunk IDs; and the repository
//! objects of format v2 (`repository`: keys, sealed objects, packs, indexes, trees,
//! snapshots, the configuration and key files) through the engine's own readers.
//!
//! Files whose groups are of a type this module does not know (Wycheproof's primitive
//! vectors, which the core's own tests apply) are reported as not applicable.
//!
//! [`verify_dir`] and [`verify_file`] use [`crate::default_provider`];
//! [`verify_dir_with`] and [`verify_file_with`] take any [`CryptoProvider`], so every
//! provider can be held to the same files.

use std::io::{Cursor, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use coffer_core::chunked::hazmat::DerivedKeys;
use coffer_core::chunked::{self, RandomAccessOpener, StreamOpener, OPEN_BUFFER_LEN};
use coffer_core::chunker::{
    chunk_id, ChunkIdHasher, Chunker, ChunkerParams, WriterSecret, WINDOW_LEN,
};
use coffer_core::envelope::{self, Purpose};
use coffer_core::passphrase::{self, Argon2Block, PassphraseEnvelope};
use coffer_core::provider::{ChunkCipher, CryptoProvider};
use coffer_core::stream;
use coffer_core::{Error as CoreError, SecretKey, Suite};
use embedded_io_adapters::std::FromStd;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

use crate::Error;

mod repository;

/// Ciphertexts larger than this are spooled to a temporary file for random access
/// instead of being held in memory.
const IN_MEMORY_LIMIT: usize = 64 << 20;

/// The outcome of one vector file.
#[derive(Debug)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Tests applied.
    pub tests: usize,
    /// Tests that did not behave as the file says, with why.
    pub failures: Vec<Failure>,
    /// Group types in the file that this module does not apply.
    pub not_applicable: Vec<String>,
}

/// One test that failed.
#[derive(Debug)]
pub struct Failure {
    /// The test's `tcId`.
    pub tc_id: u64,
    /// What differed.
    pub message: String,
}

/// Applies every `*_test.json` file under `dir` (recursively), in name order, with the
/// default provider.
///
/// # Errors
/// [`Error::Io`] if a file cannot be read; [`Error::MalformedVectors`] if one is not a
/// vector file.
pub fn verify_dir(dir: &Path) -> Result<Vec<FileReport>, Error> {
    verify_dir_with(&crate::default_provider(), dir)
}

/// [`verify_dir`] with the given provider.
///
/// # Errors
/// As [`verify_dir`].
pub fn verify_dir_with<P: CryptoProvider>(
    provider: &P,
    dir: &Path,
) -> Result<Vec<FileReport>, Error> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    files
        .iter()
        .map(|f| verify_file_with(provider, f))
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
            .path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.to_string_lossy().ends_with("_test.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Applies one vector file with the default provider.
///
/// # Errors
/// As [`verify_dir`].
pub fn verify_file(path: &Path) -> Result<FileReport, Error> {
    verify_file_with(&crate::default_provider(), path)
}

/// [`verify_file`] with the given provider.
///
/// # Errors
/// As [`verify_dir`].
pub fn verify_file_with<P: CryptoProvider>(provider: &P, path: &Path) -> Result<FileReport, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let malformed = |reason: String| Error::MalformedVectors {
        path: path.to_owned(),
        reason,
    };
    let file: Value = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    let groups = file["testGroups"]
        .as_array()
        .ok_or_else(|| malformed("no testGroups array".into()))?;
    let mut report = FileReport {
        path: path.to_owned(),
        tests: 0,
        failures: Vec::new(),
        not_applicable: Vec::new(),
    };
    for group in groups {
        let kind = group["type"].as_str().unwrap_or("").to_owned();
        let tests = group["tests"]
            .as_array()
            .ok_or_else(|| malformed(format!("a {kind} group has no tests array")))?;
        let apply: fn(&P, &Value, &Value) -> Result<(), String> = match kind.as_str() {
            "ChunkedEncryption" => chunked_test,
            "CofferStream" => stream_test,
            "CofferKeyEnvelope" => key_envelope_test,
            "CofferPassphraseEnvelope" => passphrase_envelope_test,
            "CofferChunkerKeys" => chunker_keys_test,
            "CofferChunker" => chunker_test,
            "CofferRepositoryKeys" => |_, _, t| repository::keys_test(t),
            "CofferRecipientObject" => |_, _, t| repository::recipient_test(t),
            "CofferSymmetricObject" => |_, _, t| repository::symmetric_test(t),
            "CofferPack" => |_, _, t| repository::pack_test(t),
            "CofferIndex" => |_, _, t| repository::index_test(t),
            "CofferTree" => |_, _, t| repository::tree_test(t),
            "CofferSnapshot" => |_, _, t| repository::snapshot_test(t),
            "CofferConfig" => |_, _, t| repository::config_test(t),
            "CofferKeyFile" => |_, _, t| repository::key_file_test(t),
            _ => {
                if !report.not_applicable.contains(&kind) {
                    report.not_applicable.push(kind);
                }
                continue;
            }
        };
        for test in tests {
            report.tests += 1;
            if let Err(message) = apply(provider, group, test) {
                report.failures.push(Failure {
                    tc_id: test["tcId"].as_u64().unwrap_or(0),
                    message,
                });
            }
        }
    }
    let declared = file["numberOfTests"].as_u64().unwrap_or(0);
    if report.not_applicable.is_empty() && declared != report.tests as u64 {
        return Err(malformed(format!(
            "numberOfTests says {declared}, the groups hold {}",
            report.tests
        )));
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// Reading a test's fields

fn hex_of(t: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = t[name]
        .as_str()
        .ok_or_else(|| format!("missing field {name}"))?;
    hex::decode(text).map_err(|e| format!("field {name}: {e}"))
}

fn opt_hex(t: &Value, name: &str) -> Result<Option<Vec<u8>>, String> {
    match t.get(name) {
        None => Ok(None),
        Some(_) => hex_of(t, name).map(Some),
    }
}

fn has_flag(t: &Value, flag: &str) -> bool {
    t["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == flag))
}

fn is_valid(t: &Value) -> Result<bool, String> {
    match t["result"].as_str() {
        Some("valid") => Ok(true),
        Some("invalid") => Ok(false),
        other => Err(format!("result is {other:?}")),
    }
}

/// The error's name as FORMAT.md's table and the vector files spell it.
fn error_name(e: &CoreError) -> String {
    let debug = format!("{e:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Checks `got` against the test's `error` (and `errorChunk` / `expectedKeyId`). Tests
/// without an `error` field (Wycheproof's) accept any error.
fn check_error(t: &Value, got: &CoreError) -> Result<(), String> {
    let Some(want) = t["error"].as_str() else {
        return Ok(());
    };
    let name = error_name(got);
    if name != want {
        return Err(format!("expected {want}, got {got:?}"));
    }
    match got {
        CoreError::CorruptedChunk { index } => {
            let chunk = t["errorChunk"].as_u64();
            if chunk != Some(*index) {
                return Err(format!("expected errorChunk {chunk:?}, got {got:?}"));
            }
        }
        CoreError::WrongKey { expected } => {
            let id = hex_of(t, "expectedKeyId")?;
            if id != expected.as_bytes() {
                return Err(format!("expected key ID {}, got {got:?}", hex::encode(&id)));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Makes the test's key, or checks that its bad length is the expected failure.
fn key_of(t: &Value, name: &str) -> Result<Option<SecretKey>, String> {
    let bytes = hex_of(t, name)?;
    match SecretKey::try_from_slice(&bytes) {
        Ok(key) => Ok(Some(key)),
        Err(e) => {
            if is_valid(t)? {
                return Err(format!("a valid test's {name} was refused: {e}"));
            }
            check_error(t, &e)?;
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Streams: Wycheproof's raw chunked-encryption layer and Coffer's sealed streams

/// A ciphertext from `ct` (hex, or Wycheproof's hex of zlib data) or `ctCompressed`.
struct Ciphertext {
    bytes: Vec<u8>,
    compressed: bool,
}

impl Ciphertext {
    fn of(t: &Value, ct_is_compressed: bool) -> Result<Self, String> {
        if let Some(bytes) = opt_hex(t, "ctCompressed")? {
            return Ok(Ciphertext {
                bytes,
                compressed: true,
            });
        }
        Ok(Ciphertext {
            bytes: hex_of(t, "ct")?,
            compressed: ct_is_compressed,
        })
    }

    /// A streaming reader: decompresses as it goes, never holding the whole message.
    fn reader(&self) -> Box<dyn std::io::Read + '_> {
        if self.compressed {
            Box::new(flate2::read::ZlibDecoder::new(&self.bytes[..]))
        } else {
            Box::new(&self.bytes[..])
        }
    }

    /// A seekable copy: in memory when small, a temporary file when large.
    fn seekable(&self) -> Result<Box<dyn ReadSeek>, String> {
        if !self.compressed {
            return Ok(Box::new(Cursor::new(self.bytes.clone())));
        }
        let mut decoder = flate2::read::ZlibDecoder::new(&self.bytes[..]);
        let mut head = Vec::new();
        (&mut decoder)
            .take(IN_MEMORY_LIMIT as u64 + 1)
            .read_to_end(&mut head)
            .map_err(|e| format!("decompressing: {e}"))?;
        if head.len() <= IN_MEMORY_LIMIT {
            return Ok(Box::new(Cursor::new(head)));
        }
        let mut file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        file.write_all(&head)
            .and_then(|()| std::io::copy(&mut decoder, &mut file).map(drop))
            .and_then(|()| file.rewind())
            .map_err(|e| format!("spooling the ciphertext: {e}"))?;
        Ok(Box::new(file))
    }
}

trait ReadSeek: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> ReadSeek for T {}

/// What a stream test expects the readers to produce.
struct Expected {
    valid: bool,
    /// Length and SHA-512 of the message (valid) or of the released prefix
    /// (PartialPlaintext); none means nothing may be released.
    released: Option<(u64, Vec<u8>)>,
    valid_final_chunk: bool,
}

impl Expected {
    fn of(t: &Value) -> Result<Self, String> {
        let valid = is_valid(t)?;
        let released = if valid || has_flag(t, "PartialPlaintext") {
            let len = t["msgLength"].as_u64().ok_or("missing field msgLength")?;
            Some((len, hex_of(t, "msgSha512")?))
        } else {
            None
        };
        Ok(Expected {
            valid,
            released,
            valid_final_chunk: has_flag(t, "ValidFinalChunk"),
        })
    }

    /// Checks what a streaming opener released before it ended with `result`.
    fn check_stream(
        &self,
        t: &Value,
        released: u64,
        digest: Vec<u8>,
        result: Result<(), CoreError>,
    ) -> Result<(), String> {
        match (&result, self.valid) {
            (Ok(()), false) => return Err("an invalid stream opened".into()),
            (Err(e), true) => return Err(format!("a valid stream failed: {e:?}")),
            (Err(e), false) => check_error(t, e)?,
            (Ok(()), true) => {}
        }
        match &self.released {
            Some((len, sha)) if released != *len || digest != *sha => Err(format!(
                "released {released} bytes, expected {len} with the given SHA-512"
            )),
            None if released != 0 => Err(format!(
                "released {released} bytes of an invalid stream that releases none"
            )),
            _ => Ok(()),
        }
    }
}

/// Drains a streaming opener: bytes released, their SHA-512, and how it ended. A
/// failed opener must keep failing with the same error (else the `Err(String)`).
#[allow(clippy::type_complexity)]
fn drain<R, C, B>(
    opener: &mut StreamOpener<R, C, B>,
) -> Result<(u64, Vec<u8>, Result<(), CoreError>), String>
where
    R: embedded_io::Read,
    C: ChunkCipher,
    B: AsMut<[u8]>,
{
    let mut hash = Sha512::new();
    let mut released = 0u64;
    loop {
        match opener.next_chunk() {
            Ok(Some(chunk)) => {
                hash.update(chunk);
                released += chunk.len() as u64;
            }
            Ok(None) => return Ok((released, hash.finalize().to_vec(), Ok(()))),
            Err(e) => {
                let again = opener.next_chunk().map(|c| c.map(<[u8]>::len));
                if again != Err(e) {
                    return Err(format!("after {e:?} the opener went on with {again:?}"));
                }
                return Ok((released, hash.finalize().to_vec(), Err(e)));
            }
        }
    }
}

/// Random access: the length authenticates exactly for valid and ValidFinalChunk
/// tests, and a valid message reads back whole.
fn check_random_access<R, C, B>(
    expected: &Expected,
    opened: Result<RandomAccessOpener<R, C, B>, CoreError>,
) -> Result<(), String>
where
    R: embedded_io::Read + embedded_io::Seek,
    C: ChunkCipher,
    B: AsMut<[u8]>,
{
    let mut opener = match opened {
        Ok(o) => o,
        Err(_) if !expected.valid && !expected.valid_final_chunk => return Ok(()),
        Err(e) => return Err(format!("random access: refused at open: {e:?}")),
    };
    let length = opener.verify_length();
    if expected.valid || expected.valid_final_chunk {
        length.map_err(|e| format!("random access: the length did not authenticate: {e:?}"))?;
    } else if length.is_ok() {
        return Err("random access: the length of an invalid stream authenticated".into());
    }
    let mut hash = Sha512::new();
    let mut all = Ok(());
    for index in 0..opener.chunk_count() {
        match opener.open_chunk(index) {
            Ok(chunk) => hash.update(chunk),
            Err(e) => {
                all = Err(e);
                break;
            }
        }
    }
    match (all, expected.valid) {
        (Ok(()), true) => {
            let digest = hash.finalize().to_vec();
            match &expected.released {
                Some((_, sha)) if *sha == digest => Ok(()),
                _ => Err("random access: the chunks do not hash to msgSha512".into()),
            }
        }
        (Err(e), true) => Err(format!("random access: a valid chunk failed: {e:?}")),
        (Ok(()), false) => Err("random access: every chunk of an invalid stream opened".into()),
        (Err(_), false) => Ok(()),
    }
}

fn suite_of_aead(name: &str) -> Result<Suite, String> {
    Suite::ALL
        .into_iter()
        .find(|s| s.aead_name() == name)
        .ok_or_else(|| format!("unknown aead {name}"))
}

/// Wycheproof's `ChunkedEncryption` tests: the chunked layer alone, key + context.
fn chunked_test<P: CryptoProvider>(provider: &P, group: &Value, t: &Value) -> Result<(), String> {
    let suite = suite_of_aead(group["aead"].as_str().unwrap_or(""))?;
    let Some(key) = key_of(t, "key")? else {
        return Ok(());
    };
    let ctx = hex_of(t, "ctx")?;
    let ct = Ciphertext::of(t, true)?;
    let expected = Expected::of(t)?;
    let mut buf = vec![0u8; OPEN_BUFFER_LEN];

    if let (Some(aead_key), Some(base_nonce)) = (opt_hex(t, "aeadKey")?, opt_hex(t, "baseNonce")?) {
        let mut salt = [0u8; chunked::SALT_LEN];
        let mut reader = ct.reader();
        reader
            .read_exact(&mut salt)
            .map_err(|e| format!("reading the salt: {e}"))?;
        let derived =
            DerivedKeys::derive(suite, &key, &salt, &[&ctx]).map_err(|e| e.to_string())?;
        if derived.aead_key.expose_secret()[..] != aead_key[..]
            || derived.base_nonce[..] != base_nonce[..]
        {
            return Err("derived aeadKey or baseNonce differ".into());
        }
    }

    let opener = StreamOpener::new(
        provider,
        suite,
        &key,
        &[&ctx],
        FromStd::new(ct.reader()),
        &mut buf[..],
    );
    let (released, digest, result) = match opener {
        Ok(mut o) => drain(&mut o)?,
        Err(e) => (0, Vec::new(), Err(e)),
    };
    expected.check_stream(t, released, digest, result)?;

    let seekable = ct.seekable()?;
    let opened = RandomAccessOpener::new(
        provider,
        suite,
        &key,
        &[&ctx],
        FromStd::new(seekable),
        0,
        &mut buf[..],
    );
    check_random_access(&expected, opened)
}

/// Coffer's `CofferStream` tests: header + message.
fn stream_test<P: CryptoProvider>(provider: &P, group: &Value, t: &Value) -> Result<(), String> {
    let suite = Suite::from_byte(group["suite"].as_u64().unwrap_or(0) as u8)
        .map_err(|e| format!("group suite: {e}"))?;
    let Some(key) = key_of(t, "key")? else {
        return Ok(());
    };
    if let Some(id) = opt_hex(t, "keyId")? {
        if id != key.id().as_bytes() {
            return Err(format!(
                "key ID is {}, the file says {}",
                key.id(),
                hex::encode(id)
            ));
        }
    }
    let ctx = hex_of(t, "ctx")?;
    let ct = Ciphertext::of(t, false)?;
    let expected = Expected::of(t)?;
    let mut buf = vec![0u8; OPEN_BUFFER_LEN];

    let (released, digest, result) = match stream::open(
        provider,
        &key,
        &ctx,
        FromStd::new(ct.reader()),
        &mut buf[..],
    ) {
        Ok((header, mut opener)) => {
            if expected.valid && (header.suite != suite || header.key_id != key.id()) {
                return Err(format!("header {header:?} names another suite or key"));
            }
            drain(&mut opener)?
        }
        Err(e) => (0, Vec::new(), Err(e)),
    };
    expected.check_stream(t, released, digest, result)?;

    let seekable = ct.seekable()?;
    let opened = stream::open_random_access(
        provider,
        &key,
        &ctx,
        FromStd::new(seekable),
        0,
        &mut buf[..],
    )
    .map(|(_, opener)| opener);
    check_random_access(&expected, opened)
}

// ---------------------------------------------------------------------------------------
// Envelopes

fn purpose_of(t: &Value) -> Result<Purpose, String> {
    match t["purpose"].as_str() {
        Some("RepositoryKey") => Ok(Purpose::RepositoryKey),
        Some("ProfileKey") => Ok(Purpose::ProfileKey),
        Some("MasterKey") => Ok(Purpose::MasterKey),
        other => Err(format!("unknown purpose {other:?}")),
    }
}

/// Checks an unwrap's outcome against the test: the key and the envelope's fields when
/// valid, the error when not.
fn check_unwrap(
    t: &Value,
    result: Result<(SecretKey, Suite, u32), CoreError>,
) -> Result<(), String> {
    match (result, is_valid(t)?) {
        (Err(e), false) => check_error(t, &e),
        (Err(e), true) => Err(format!("a valid envelope failed: {e:?}")),
        (Ok(_), false) => Err("an invalid envelope opened".into()),
        (Ok((key, suite, version)), true) => {
            if key.expose_secret()[..] != hex_of(t, "wrappedKey")?[..] {
                return Err("unwrapped another key".into());
            }
            if key.id().as_bytes()[..] != hex_of(t, "wrappedKeyId")?[..] {
                return Err("wrappedKeyId is not the wrapped key's ID".into());
            }
            if Some(u64::from(suite.to_byte())) != t["suite"].as_u64()
                || Some(u64::from(version)) != t["keyVersion"].as_u64()
            {
                return Err(format!("suite {suite:?} / key version {version} differ"));
            }
            Ok(())
        }
    }
}

fn key_envelope_test<P: CryptoProvider>(
    provider: &P,
    _group: &Value,
    t: &Value,
) -> Result<(), String> {
    let Some(kek) = key_of(t, "kek")? else {
        return Ok(());
    };
    let bytes = hex_of(t, "envelope")?;
    let result = envelope::unwrap_key(provider, &kek, &bytes, purpose_of(t)?, &hex_of(t, "ctx")?);
    if let (Ok((_, info)), Some(kek_id)) = (&result, opt_hex(t, "kekId")?) {
        if info.kek_id.as_bytes()[..] != kek_id[..] {
            return Err("kekId differs".into());
        }
    }
    check_unwrap(t, result.map(|(k, info)| (k, info.suite, info.key_version)))
}

fn passphrase_envelope_test<P: CryptoProvider>(
    provider: &P,
    _group: &Value,
    t: &Value,
) -> Result<(), String> {
    let bytes = hex_of(t, "envelope")?;
    // Memory for the parameters the envelope states, which decoding bounds; an envelope
    // that does not decode fails before any is needed.
    let blocks = PassphraseEnvelope::decode(&bytes).map_or(0, |info| info.params.blocks());
    let mut memory = vec![Argon2Block::default(); blocks];
    let result = passphrase::unwrap_with_passphrase(
        provider,
        &hex_of(t, "passphrase")?,
        &bytes,
        purpose_of(t)?,
        &hex_of(t, "ctx")?,
        &mut memory,
    );
    check_unwrap(t, result.map(|(k, info)| (k, info.suite, info.key_version)))
}

// ---------------------------------------------------------------------------------------
// The keyed chunker and chunk IDs

fn u32_of(t: &Value, name: &str) -> Result<u32, String> {
    t[name]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("missing or too large field {name}"))
}

fn array_of<const N: usize>(t: &Value, name: &str) -> Result<[u8; N], String> {
    hex_of(t, name)?
        .try_into()
        .map_err(|_| format!("field {name} is not {N} bytes"))
}

/// `CofferChunkerKeys`: the §12 derivations, the table, and the decision on a few windows.
fn chunker_keys_test<P: CryptoProvider>(_: &P, _group: &Value, t: &Value) -> Result<(), String> {
    let master = SecretKey::from_bytes(array_of(t, "masterKey")?);
    let writer = WriterSecret::from_master(&master);
    let keys = writer.chunker_keys();
    for (name, got) in [
        ("writerSecret", &writer.expose_secret()[..]),
        ("chunkerCipherKey", &keys.cipher_key()[..]),
        ("chunkerTableKey", &keys.table_key()[..]),
        ("chunkIdKey", &writer.chunk_id_key().expose_secret()[..]),
    ] {
        if got != hex_of(t, name)? {
            return Err(format!("{name} differs"));
        }
    }
    let chunker = Chunker::new(&keys, ChunkerParams::V2);
    let table: Vec<u8> = (0..=u8::MAX)
        .flat_map(|b| chunker.expose_table_entry(b).to_le_bytes())
        .collect();
    let head = t["tableHead"].as_array().ok_or("missing field tableHead")?;
    for (entry, want) in table.chunks(16).zip(head) {
        if Some(hex::encode(entry).as_str()) != want.as_str() {
            return Err("tableHead differs".into());
        }
    }
    if Sha256::digest(&table)[..] != hex_of(t, "tableSha256")? {
        return Err("tableSha256 differs".into());
    }
    // The core shows the decision, not H or D: check it under every mask.
    let windows = t["windows"].as_array().ok_or("missing field windows")?;
    for w in windows {
        let window: [u8; WINDOW_LEN] = array_of(w, "window")?;
        let o: [u8; 16] = array_of(w, "cipherBlock")?;
        let word = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
        for mask_bits in 1..=ChunkerParams::MASK_BITS_BOUND {
            let params = ChunkerParams::new(64, mask_bits, 65).map_err(|e| e.to_string())?;
            let cuts = Chunker::new(&keys, params).is_cut_point(&window);
            if cuts != (word & ((1 << mask_bits) - 1) == 0) {
                return Err(format!(
                    "decision on a window under mask_bits {mask_bits} differs"
                ));
            }
        }
    }
    Ok(())
}

/// `msgSeed`'s generator (test-vectors/README.md): SHA-256(seed ‖ u64le(i)) for
/// i = 0, 1, …, concatenated and cut to `len` bytes.
fn counter_bytes(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            &Sha256::new()
                .chain_update(seed)
                .chain_update(i.to_le_bytes())
                .finalize(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// A chunker test's input: `msg`, or `msgLength` bytes from `msgSeed` or `msgFill`.
fn chunker_input(t: &Value) -> Result<Vec<u8>, String> {
    if let Some(msg) = opt_hex(t, "msg")? {
        return Ok(msg);
    }
    let len = t["msgLength"].as_u64().ok_or("missing field msgLength")?;
    let len = usize::try_from(len).map_err(|e| e.to_string())?;
    if let Some(seed) = opt_hex(t, "msgSeed")? {
        return Ok(counter_bytes(&seed, len));
    }
    let fill = t["msgFill"].as_u64().and_then(|b| u8::try_from(b).ok());
    Ok(vec![fill.ok_or("no msg, msgSeed or msgFill")?; len])
}

/// `CofferChunker`: parameters checked, then the cuts whole and in slices, and the IDs.
fn chunker_test<P: CryptoProvider>(_: &P, _group: &Value, t: &Value) -> Result<(), String> {
    let params = ChunkerParams::new(
        u32_of(t, "minSize")?,
        u32_of(t, "maskBits")?,
        u32_of(t, "maxSize")?,
    );
    let params = match (params, is_valid(t)?) {
        (Ok(p), true) => p,
        (Ok(_), false) => return Err("parameters out of bounds were accepted".into()),
        (Err(e), true) => return Err(format!("a valid test's parameters were refused: {e}")),
        (Err(e), false) => {
            check_error(t, &e)?;
            let want = t["errorParameter"].as_str().unwrap_or_default();
            return match e {
                CoreError::ParameterOutOfBounds { parameter, .. }
                    if parameter == format!("chunker {want}") =>
                {
                    Ok(())
                }
                _ => Err(format!("expected {want} to be named, got {e:?}")),
            };
        }
    };
    let writer = WriterSecret::from_bytes(array_of(t, "writerSecret")?);
    let chunker = Chunker::from_writer_secret(&writer, params);
    let id_key = writer.chunk_id_key();
    let data = chunker_input(t)?;
    let want: Vec<usize> = t["cuts"]
        .as_array()
        .ok_or("missing field cuts")?
        .iter()
        .map(|c| {
            c.as_u64()
                .map(|c| c as usize)
                .ok_or("a cut is not a number")
        })
        .collect::<Result<_, _>>()?;

    let whole: Vec<usize> = chunker.cuts(&data).collect();
    if whole != want {
        return Err(format!("cuts {whole:?}, expected {want:?}"));
    }
    for slice in [1, 63, 64, 65, 4093, 1 << 20] {
        if slice == 1 && data.len() > 1 << 16 {
            continue;
        }
        let mut stream = chunker.stream();
        let mut got = Vec::new();
        let mut at = 0;
        for mut piece in data.chunks(slice) {
            while let Some(k) = stream.next_cut(piece) {
                at += k;
                got.push(at);
                piece = &piece[k..];
            }
            at += piece.len();
        }
        if stream.finish().is_some() {
            got.push(at);
        }
        if got != want {
            return Err(format!(
                "cuts in {slice}-byte slices: {got:?}, expected {want:?}"
            ));
        }
    }

    let ids = t["chunkIds"].as_array().ok_or("missing field chunkIds")?;
    if ids.len() != want.len() {
        return Err(format!("{} chunk IDs for {} chunks", ids.len(), want.len()));
    }
    let mut start = 0;
    for (i, (&end, id)) in want.iter().zip(ids).enumerate() {
        let chunk = &data[start..end];
        let whole = chunk_id(&id_key, chunk);
        let mut hasher = ChunkIdHasher::new(&id_key);
        for piece in chunk.chunks(1000) {
            hasher.update(piece);
        }
        if hasher.finalize() != whole {
            return Err(format!("chunk {i}: the incremental ID differs"));
        }
        if Some(hex::encode(whole).as_str()) != id.as_str() {
            return Err(format!("chunk {i}: ID differs"));
        }
        start = end;
    }
    Ok(())
}
