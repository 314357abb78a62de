//! Repository vectors (`coffer_repository_test.json`, FORMAT.md Part II) applied to the
//! engine in [`crate::repo`]: each group through the function a repository reads that
//! kind of object with, valid tests compared field by field with what it decodes,
//! invalid ones refused with the condition they name.
//!
//! The `error` of a Part II test is the reference's condition: a name of FORMAT.md's
//! error table when the sealed-stream layer refuses (checked with its `errorChunk` or
//! `expectedKeyId` as in Part I's files), `RepoFormat`, `Recipient`, or the tree rule
//! ([`TreeError`]'s variant). `acceptable` tests may go either way.

use std::io::Read as _;

use coffer_core::envelope::KeyEnvelope;
use coffer_core::SecretKey;
use hpke::Serializable as _;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{array_of, check_error, error_name, hex_of, opt_hex};
use crate::repo::check::read_pack_plaintext;
use crate::repo::config::Config;
use crate::repo::index::IndexFile;
use crate::repo::keyfile::{self, Unlock};
use crate::repo::keys::{self, Access, RepoKeys};
use crate::repo::object::{self, PlainKind, SealedKind};
use crate::repo::pack::{self, TocEntry, TRAILER_LEN};
use crate::repo::recipient::{RecipientPublic, RecipientSecret};
use crate::repo::snapshot::Snapshot;
use crate::repo::tree::{ContentRef, Node, NodeKind, Tree, TreeError};
use crate::Error;

/// What a test expects.
enum Want {
    Valid,
    Acceptable,
    Invalid,
}

fn want(t: &Value) -> Result<Want, String> {
    match t["result"].as_str() {
        Some("valid") => Ok(Want::Valid),
        Some("acceptable") => Ok(Want::Acceptable),
        Some("invalid") => Ok(Want::Invalid),
        other => Err(format!("result is {other:?}")),
    }
}

/// The condition's name, as Part II's tests spell it.
fn name_of(e: &Error) -> String {
    let first_word = |debug: String| {
        debug
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    match e {
        Error::Core(core) => error_name(core),
        Error::Tree { source, .. } => first_word(format!("{source:?}")),
        other => first_word(format!("{other:?}")),
    }
}

/// Checks an outcome against the test: `valid` compares a valid test's values.
fn outcome<T>(
    t: &Value,
    result: Result<T, Error>,
    valid: impl FnOnce(T) -> Result<(), String>,
) -> Result<(), String> {
    match (want(t)?, result) {
        (Want::Valid, Ok(v)) => valid(v),
        (Want::Valid, Err(e)) => Err(format!("a valid test was refused: {e}")),
        (Want::Acceptable, _) => Ok(()),
        (Want::Invalid, Ok(_)) => Err("an invalid test was accepted".into()),
        (Want::Invalid, Err(e)) => {
            let want = t["error"].as_str().unwrap_or_default();
            if name_of(&e) != want {
                return Err(format!("expected {want}, got {e:?}"));
            }
            match &e {
                Error::Core(core) => check_error(t, core),
                _ => Ok(()),
            }
        }
    }
}

fn same(name: &str, got: &[u8], t: &Value) -> Result<(), String> {
    if got == hex_of(t, name)?.as_slice() {
        Ok(())
    } else {
        Err(format!("{name} differs"))
    }
}

fn str_of<'a>(t: &'a Value, name: &str) -> Result<&'a str, String> {
    t[name]
        .as_str()
        .ok_or_else(|| format!("missing field {name}"))
}

fn key_of(t: &Value, name: &str) -> Result<SecretKey, String> {
    Ok(SecretKey::from_bytes(array_of(t, name)?))
}

/// `hex` or the zlib-compressed `compressed` field.
fn maybe_compressed(t: &Value, hex: &str, compressed: &str) -> Result<Vec<u8>, String> {
    if let Some(z) = opt_hex(t, compressed)? {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{compressed}: {e}"))?;
        return Ok(out);
    }
    hex_of(t, hex)
}

// ---------------------------------------------------------------------------------------
// Keys and objects

/// `CofferRepositoryKeys`: §12's derivations, from the master key or the writer secret.
pub(super) fn keys_test(t: &Value) -> Result<(), String> {
    let check = |keys: &RepoKeys| -> Result<(), String> {
        same("chunkIdKey", keys.chunk_id_key().expose_secret(), t)?;
        same("indexKey", keys.index_key().expose_secret(), t)?;
        same("configKey", keys.config_key().expose_secret(), t)?;
        same("cacheKey", keys.cache_key().expose_secret(), t)
    };
    let Some(master) = opt_hex(t, "masterKey")? else {
        let writer = key_of(t, "writerSecret")?;
        let keys = RepoKeys::write_only(writer, RecipientPublic::from_bytes([9; 32]));
        if keys.recipient().is_ok() {
            return Err("a write-only key holds a recipient secret".into());
        }
        return outcome(t, Ok::<_, Error>(()), |()| check(&keys));
    };
    let result = SecretKey::try_from_slice(&master).map_err(Error::Core);
    outcome(t, result, |master| {
        let keys = RepoKeys::full(&master);
        same("writerSecret", keys.writer().expose_secret(), t)?;
        check(&keys)?;
        let ikm = keys::derive(&master, keys::RECIPIENT_LABEL);
        same("recipientIkm", ikm.expose_secret(), t)?;
        type Kem = hpke::kem::X25519HkdfSha256;
        let (sk, _) = <Kem as hpke::Kem>::derive_keypair(ikm.expose_secret());
        same("recipientPrivateKey", &sk.to_bytes(), t)?;
        same("recipientPublicKey", keys.public().as_bytes(), t)?;
        same(
            "recipientPublicKey",
            RecipientSecret::from_master(&master).public().as_bytes(),
            t,
        )
    })
}

/// `CofferRecipientObject`: a pack or snapshot object opened whole, and its object key.
pub(super) fn recipient_test(t: &Value) -> Result<(), String> {
    let secret = RecipientSecret::from_master(&key_of(t, "masterKey")?);
    let repo: [u8; 16] = array_of(t, "repositoryId")?;
    let name = str_of(t, "name")?;
    let kind = match t["kind"].as_u64() {
        Some(1) => SealedKind::Pack,
        Some(2) => SealedKind::Snapshot,
        other => return Err(format!("kind {other:?}")),
    };
    let bytes = hex_of(t, "object")?;
    let result = object::open_from(&secret, kind, &repo, name, &bytes);
    outcome(t, result, |plain| {
        same("msg", &plain, t)?;
        let (key, _) =
            object::object_key(&secret, kind, &repo, name, &bytes).map_err(|e| e.to_string())?;
        same("objectKey", key.expose_secret(), t)
    })
}

/// `CofferSymmetricObject`: a sealed stream under its key, label, repository and name.
pub(super) fn symmetric_test(t: &Value) -> Result<(), String> {
    let kind = match str_of(t, "label")? {
        "coffer/v2 index" => PlainKind::Index,
        "coffer/v2 config" => PlainKind::Config,
        "coffer/v2 cache" => PlainKind::Cache,
        "coffer/v2 lock" => PlainKind::Lock,
        other => return Err(format!("unknown label {other}")),
    };
    let repo: [u8; 16] = array_of(t, "repositoryId")?;
    let context = object::plain_context(kind, &repo, str_of(t, "name")?);
    let result = object::open_bytes(&key_of(t, "key")?, &context, &hex_of(t, "object")?);
    outcome(t, result, |plain| same("msg", &plain, t))
}

// ---------------------------------------------------------------------------------------
// Packs and indexes

fn entry_matches(e: &TocEntry, want: &Value) -> Result<(), String> {
    let got = json!({
        "id": hex::encode(e.id),
        "kind": e.kind as u8,
        "compression": e.compression as u8,
        "offset": e.offset,
        "storedLen": e.stored_len,
        "rawLen": e.raw_len,
    });
    for (k, v) in got.as_object().into_iter().flatten() {
        if &want[k] != v {
            return Err(format!(
                "entry {}: {k} is {v}, the test says {}",
                got["id"], want[k]
            ));
        }
    }
    Ok(())
}

/// `CofferPack`: a pack's plaintext read whole, every blob checked against its ID.
pub(super) fn pack_test(t: &Value) -> Result<(), String> {
    let key = key_of(t, "chunkIdKey")?;
    let plain = hex_of(t, "pack")?;
    let mut blobs = Vec::new();
    let result = read_pack_plaintext("pack", &plain, &key, |_, raw| blobs.push(raw));
    outcome(t, result, |toc| {
        let want = t["entries"].as_array().ok_or("missing field entries")?;
        if want.len() != toc.len() {
            return Err(format!(
                "{} entries, the test says {}",
                toc.len(),
                want.len()
            ));
        }
        for ((e, raw), w) in toc.iter().zip(&blobs).zip(want) {
            entry_matches(e, w)?;
            same("msg", raw, w)?;
        }
        let len = plain.len() as u64;
        let (toc_offset, toc_len) = pack::parse_trailer(&plain[plain.len() - TRAILER_LEN..], len)?;
        let unpadded = toc_offset + toc_len + TRAILER_LEN as u64;
        if Some(toc_offset) != t["tocOffset"].as_u64()
            || Some(toc_len) != t["tocLength"].as_u64()
            || Some(unpadded) != t["unpaddedLength"].as_u64()
            || pack::padme(unpadded) != len
        {
            return Err("the table's place or the padded length differs".into());
        }
        Ok(())
    })
}

/// `CofferIndex`: an index plaintext decoded.
pub(super) fn index_test(t: &Value) -> Result<(), String> {
    let result = IndexFile::decode("index", &hex_of(t, "plaintext")?);
    outcome(t, result, |file| {
        let want = t["packs"].as_array().ok_or("missing field packs")?;
        if want.len() != file.packs.len() {
            return Err(format!(
                "{} packs, the test says {}",
                file.packs.len(),
                want.len()
            ));
        }
        for (p, w) in file.packs.iter().zip(want) {
            same("id", &p.id, w)?;
            let entries = w["entries"].as_array().ok_or("missing field entries")?;
            if Some(p.object_len) != w["objectLength"].as_u64() || entries.len() != p.entries.len()
            {
                return Err("a pack's length or entry count differs".into());
            }
            for (e, we) in p.entries.iter().zip(entries) {
                entry_matches(e, we)?;
            }
        }
        let supersedes: Vec<String> = file.supersedes.iter().map(hex::encode).collect();
        if json!(supersedes) != t["supersedes"] {
            return Err("supersedes differs".into());
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Trees and snapshots

fn node_json(n: &Node) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(hex::encode(&n.name)));
    let kind = match &n.kind {
        NodeKind::File { content } => {
            let pieces: Vec<Value> = content
                .iter()
                .map(|c| match c {
                    ContentRef::Data { id, len } => {
                        json!({"type": "data", "id": hex::encode(id), "len": len})
                    }
                    ContentRef::Hole { len } => json!({"type": "hole", "len": len}),
                })
                .collect();
            m.insert("content".into(), json!(pieces));
            "file"
        }
        NodeKind::Dir { subtree } => {
            m.insert("subtree".into(), json!(hex::encode(subtree)));
            "dir"
        }
        NodeKind::Symlink { target } => {
            m.insert("target".into(), json!(hex::encode(target)));
            "symlink"
        }
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice { rdev } => {
            m.insert("rdev".into(), json!(rdev));
            "charDevice"
        }
        NodeKind::BlockDevice { rdev } => {
            m.insert("rdev".into(), json!(rdev));
            "blockDevice"
        }
        NodeKind::Socket => "socket",
    };
    m.insert("kind".into(), json!(kind));
    for (k, v) in [
        ("mode", json!(n.mode)),
        ("uid", json!(n.uid)),
        ("gid", json!(n.gid)),
        ("user", json!(n.user)),
        ("group", json!(n.group)),
        ("mtime", json!(n.mtime)),
        ("mtimeNs", json!(n.mtime_ns)),
        ("ctime", json!(n.ctime)),
        ("ctimeNs", json!(n.ctime_ns)),
        ("inode", json!(n.inode)),
        ("dev", json!(n.dev)),
        ("nlink", json!(n.nlink)),
        ("size", json!(n.size)),
    ] {
        m.insert(k.into(), v);
    }
    let xattrs: Vec<Value> = n
        .xattrs
        .iter()
        .map(|x| json!({"name": hex::encode(&x.name), "value": hex::encode(&x.value)}))
        .collect();
    m.insert("xattrs".into(), json!(xattrs));
    Value::Object(m)
}

/// `CofferTree`: a tree blob decoded under every rule of §18.3.
pub(super) fn tree_test(t: &Value) -> Result<(), String> {
    let blob = maybe_compressed(t, "blob", "blobCompressed")?;
    let result =
        Tree::decode(&blob).map_err(|source: TreeError| Error::Tree { path: None, source });
    outcome(t, result, |tree| {
        let got: Vec<Value> = tree.nodes.iter().map(node_json).collect();
        if json!(got) != t["nodes"] {
            return Err("the decoded nodes differ".into());
        }
        Ok(())
    })
}

/// `CofferSnapshot`: a snapshot plaintext decoded.
pub(super) fn snapshot_test(t: &Value) -> Result<(), String> {
    let plain = maybe_compressed(t, "plaintext", "plaintextCompressed")?;
    let result = Snapshot::decode("snapshot", &plain);
    outcome(t, result, |s| {
        let u = &s.summary;
        let got = json!({
            "version": s.version,
            "time": s.time,
            "timeNs": s.time_ns,
            "host": s.host,
            "user": s.user,
            "paths": s.paths.iter().map(hex::encode).collect::<Vec<_>>(),
            "tags": s.tags,
            "parent": s.parent.map(hex::encode),
            "tree": hex::encode(s.tree),
            "program": s.program,
            "command": s.command,
            "summary": {
                "files": u.files, "dirs": u.dirs, "others": u.others, "bytes": u.bytes,
                "filesRead": u.files_read, "bytesRead": u.bytes_read, "newBlobs": u.new_blobs,
                "newTrees": u.new_trees, "newRawBytes": u.new_raw_bytes,
                "newStoredBytes": u.new_stored_bytes, "packs": u.packs,
                "durationMs": u.duration_ms,
            },
        });
        if got != t["snapshot"] {
            return Err(format!("decoded {got}, the test says {}", t["snapshot"]));
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Configuration and key files

/// `CofferConfig`: the configuration opened with the config key; given the master key,
/// its public key is checked as a full key checks it when it opens a repository.
pub(super) fn config_test(t: &Value) -> Result<(), String> {
    let stored = hex_of(t, "config")?;
    let mut result = Config::open(&stored, &key_of(t, "configKey")?);
    if let (Ok(config), Some(master)) = (&result, opt_hex(t, "masterKey")?) {
        let master = SecretKey::try_from_slice(&master).map_err(|e| e.to_string())?;
        if &config.public != RepoKeys::full(&master).public() {
            result = Err(Error::RepoFormat {
                object: "config".into(),
                reason: "its public key is not the master key's".into(),
            });
        }
    }
    outcome(t, result, |c| {
        same("repositoryId", &c.id, t)?;
        same("publicKey", c.public.as_bytes(), t)?;
        let got = [
            u64::from(c.chunker.min_size),
            u64::from(c.chunker.mask_bits),
            u64::from(c.chunker.max_size),
        ];
        let want = ["minSize", "maskBits", "maxSize"].map(|k| t[k].as_u64());
        if got.map(Some) != want || Some(c.created) != t["created"].as_i64() {
            return Err("the chunker parameters or the creation time differ".into());
        }
        Ok(())
    })
}

/// `CofferKeyFile`: a key file opened with its KEK or passphrase. A KEK file that names
/// another KEK is skipped by the engine (it tries the next file); here that is the
/// `WrongKey` its envelope's header gives.
pub(super) fn key_file_test(t: &Value) -> Result<(), String> {
    let file = hex_of(t, "keyFile")?;
    let repo: [u8; 16] = array_of(t, "repositoryId")?;
    let unlock = match opt_hex(t, "kek")? {
        Some(kek) => Unlock::Kek(SecretKey::try_from_slice(&kek).map_err(|e| e.to_string())?),
        None => Unlock::Passphrase(Zeroizing::new(hex_of(t, "passphrase")?)),
    };
    let result = match keyfile::open("keys/vector", &file, &repo, &unlock) {
        Ok(Some(opened)) => Ok(opened),
        Ok(None) => {
            let envelope = KeyEnvelope::decode(&file[24..]).map_err(|e| e.to_string())?;
            Err(Error::Core(coffer_core::Error::WrongKey {
                expected: envelope.kek_id,
            }))
        }
        Err(e) => Err(e),
    };
    outcome(t, result, |(access, secret)| {
        let name = match access {
            Access::Full => "full",
            Access::WriteOnly => "writeOnly",
        };
        if t["access"] != name {
            return Err(format!("access {name}, the test says {}", t["access"]));
        }
        same("wrappedKey", secret.expose_secret(), t)
    })
}
