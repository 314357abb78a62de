//! Objects as files under a root folder.
//!
//! A put writes to a temporary file in the destination's own folder, fsyncs it, renames
//! it over the destination (or hard-links it, for create-only puts, which fails if the
//! name exists), and fsyncs the folder: after a crash at any point the name holds the
//! old object or the whole new one. Temporaries a crash leaves behind are removed when
//! the store is opened.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{ObjectKey, ObjectMeta, PutMode, Storage};
use crate::Error;

/// Names starting with this are temporaries; object keys cannot use it.
pub(crate) const TEMP_PREFIX: &str = ".coffer-tmp-";

/// A folder of objects.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Opens (creating if needed) the store at `root` and removes leftover temporaries:
    /// those not written to for [`STALE_TEMPORARY`], since a younger one may belong to
    /// another process writing into the same folder right now.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        remove_temporaries(&root)?;
        Ok(LocalStorage { root })
    }

    /// The folder objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        // Validated keys have only normal segments, so this stays under the root.
        self.root.join(key.as_str())
    }
}

/// A temporary untouched for this long belongs to a writer that died.
pub const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

fn remove_temporaries(dir: &Path) -> Result<(), Error> {
    let what = || format!("cleaning temporaries in {}", dir.display());
    for entry in fs::read_dir(dir).map_err(|e| Error::io(what(), e))? {
        let entry = entry.map_err(|e| Error::io(what(), e))?;
        let kind = entry.file_type().map_err(|e| Error::io(what(), e))?;
        if kind.is_dir() {
            remove_temporaries(&entry.path())?;
        } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_TEMPORARY);
            if stale {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    // Another process's clean-up got there first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(what(), e)),
                }
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A temporary file that removes itself unless it was moved into place.
struct Temporary {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Temporary {
    fn create(dir: &Path) -> io::Result<Self> {
        loop {
            let name = format!("{TEMP_PREFIX}{:016x}", rand_suffix());
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Temporary {
                        path,
                        file,
                        keep: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A random name suffix: uniqueness, not secrecy, is what matters here.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Storage for LocalStorage {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error> {
        let dest = self.path(key);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        let what = |step: &str| format!("{step} {}", dest.display());
        let conflict = |reason| Error::KeyConflict {
            key: key.clone(),
            reason,
        };
        const UNDER_OBJECT: &str = "an object exists where the key needs a folder";
        const IS_FOLDER: &str = "other objects are stored under this key";
        // Keys map to paths: "a/b" and "a/b/c" cannot both be objects here.
        fs::create_dir_all(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => conflict(UNDER_OBJECT),
            _ => Error::io(what("creating the folder of"), e),
        })?;
        if dest.is_dir() {
            return Err(conflict(IS_FOLDER));
        }
        if mode == PutMode::CreateOnly && dest.exists() {
            return Err(Error::AlreadyExists { key: key.clone() });
        }
        let mut tmp = Temporary::create(&dir).map_err(|e| Error::io(what("writing"), e))?;
        let written = io::copy(data, &mut tmp.file).map_err(|e| Error::io(what("writing"), e))?;
        tmp.file
            .sync_all()
            .map_err(|e| Error::io(what("syncing"), e))?;
        match mode {
            PutMode::Overwrite => {
                fs::rename(&tmp.path, &dest).map_err(|e| match e.kind() {
                    io::ErrorKind::IsADirectory => conflict(IS_FOLDER),
                    _ => Error::io(what("renaming into"), e),
                })?;
                tmp.keep = true;
            }
            PutMode::CreateOnly => match fs::hard_link(&tmp.path, &dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::AlreadyExists { key: key.clone() })
                }
                Err(e) => return Err(Error::io(what("linking into"), e)),
            },
        }
        drop(tmp);
        sync_dir(&dir).map_err(|e| Error::io(what("syncing the folder of"), e))?;
        Ok(written)
    }

    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        Ok(Box::new(self.open_file(key)?))
    }

    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        let mut file = self.open_file(key)?;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(format!("seeking in {key}"), e))?;
        Ok(Box::new(file.take(len)))
    }

    fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error> {
        match fs::metadata(self.path(key)) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                key: key.clone(),
                size: m.len(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading the size of {key}"), e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out)?;
        out.retain(|m| m.key.as_str().starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("deleting {key}"), e)),
        }
        let dir = path.parent().unwrap_or(&self.root);
        sync_dir(dir).map_err(|e| Error::io(format!("syncing the folder of {key}"), e))
    }
}

impl LocalStorage {
    fn open_file(&self, key: &ObjectKey) -> Result<File, Error> {
        File::open(self.path(key)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound { key: key.clone() },
            _ => Error::io(format!("opening {key}"), e),
        })
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<(), Error> {
    let what = || format!("listing {}", dir.display());
    for entry in fs::read_dir(dir).map_err(|e| Error::io(what(), e))? {
        let entry = entry.map_err(|e| Error::io(what(), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // not a name Coffer writes
        };
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let meta = entry.metadata().map_err(|e| Error::io(what(), e))?;
        if meta.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if let Ok(key) = ObjectKey::new(key) {
            out.push(ObjectMeta {
                key,
                size: meta.len(),
            });
        }
    }
    Ok(())
}
