//! A write-only writer's local cache (FORMAT.md §22): the trees of its last snapshot of
//! one host and set of paths, sealed under the cache key (derived from the writer
//! secret), so the next backup can skip unchanged files without reading packs it cannot
//! open — as Tarsnap keeps its cache. Losing the cache costs one full read, nothing else.
//!
//! File: `<cache dir>/<repository ID hex>/<hex of SHA-256(host ‖ 0x00 ‖ paths joined by
//! 0x00)>` holding a sealed stream (context: `"coffer/v2 cache"` ‖ repository ID ‖ that
//! file name) of the postcard [`WriterCache`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::object::{self, PlainKind};
use super::Repository;
use crate::Error;

/// The largest cache a writer loads.
pub const MAX_CACHE_LEN: u64 = 1 << 30;

/// What the cache holds. Field order is the wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterCache {
    /// The snapshot it describes.
    pub snapshot: [u8; 16],
    /// Its root tree.
    pub root: [u8; 32],
    /// Every tree of it, by ID.
    pub trees: BTreeMap<[u8; 32], Vec<u8>>,
}

fn file_name(host: &str, paths: &[Vec<u8>]) -> String {
    let mut h = Sha256::new();
    h.update(host.as_bytes());
    for p in paths {
        h.update([0]);
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The cache of `host` and `paths`, if there is one that opens. A cache that does not
/// open or decode is ignored (with the next backup reading every file), never trusted.
///
/// # Errors
/// I/O errors other than a missing file.
pub fn load(
    repo: &Repository,
    dir: &Path,
    host: &str,
    paths: &[Vec<u8>],
) -> Result<Option<WriterCache>, Error> {
    let name = file_name(host, paths);
    let path = dir.join(hex::encode(repo.id())).join(&name);
    let sealed = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if sealed.len() as u64 > MAX_CACHE_LEN {
        return Ok(None);
    }
    let context = object::plain_context(PlainKind::Cache, repo.id(), &name);
    let Ok(plain) = object::open_bytes(repo.keys().cache_key(), &context, &sealed) else {
        return Ok(None);
    };
    match postcard::take_from_bytes::<WriterCache>(&plain) {
        Ok((cache, [])) => Ok(Some(cache)),
        _ => Ok(None),
    }
}

/// Replaces the cache of `host` and `paths` (temporary file, sync, rename).
///
/// # Errors
/// I/O and core errors.
pub fn save(
    repo: &Repository,
    dir: &Path,
    host: &str,
    paths: &[Vec<u8>],
    cache: &WriterCache,
) -> Result<(), Error> {
    let name = file_name(host, paths);
    let folder = dir.join(hex::encode(repo.id()));
    std::fs::create_dir_all(&folder)
        .map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
    let plain = postcard::to_allocvec(cache).map_err(|e| Error::RepoFormat {
        object: "cache".to_owned(),
        reason: e.to_string(),
    })?;
    let context = object::plain_context(PlainKind::Cache, repo.id(), &name);
    let sealed = object::seal_bytes(repo.keys().cache_key(), &context, &plain)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&folder)
        .map_err(|e| Error::io(format!("writing in {}", folder.display()), e))?;
    std::io::Write::write_all(&mut tmp, &sealed)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(format!("writing in {}", folder.display()), e))?;
    tmp.persist(folder.join(&name))
        .map_err(|e| Error::io(format!("writing in {}", folder.display()), e.error))?;
    Ok(())
}
