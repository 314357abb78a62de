//! `ListObjectsV2` on the embedded store: the objects under a prefix, in key order,
//! a page at a time.
//!
//! The prefix is the scope: it must lie under a destination (`{tenant}/{name}/...`) whose
//! agent is not revoked, as a key must, and the server signs it into the listing URL.
//! Keys are read from the folder tree in S3's order (bytewise) without sorting the
//! whole listing: in each folder, entries are visited sorted by their name with `/`
//! after folder names, which is the order of the keys beneath them. A page resumes
//! after the last key of the one before (the continuation token is that key, in
//! base64), skipping whole folders that sort before it, and stops after `max-keys`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use coffer_adapters::storage::ObjectKey;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::{
    ETag, EncodingType, ListObjectsV2Input, ListObjectsV2Output, Object, ObjectStorageClass,
    Timestamp,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::internal_error;
use super::store::{caller, check_bucket, check_destination, file_etag};

/// The most keys a page holds (S3's limit and default).
pub const MAX_KEYS: usize = 1000;

/// What `encoding-type=url` leaves as it is: S3's unreserved characters and `/`.
const KEY_ENCODING: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `ListObjectsV2`.
pub(crate) async fn list_objects_v2(
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let caller = caller(&req)?;
    let input = req.input;
    check_bucket(&caller, &input.bucket)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    check_destination(&caller, &input.bucket, &prefix, &req.method).await?;
    if input.delimiter.as_deref().is_some_and(|d| !d.is_empty()) {
        return Err(invalid("delimiter is not supported: keys are listed whole"));
    }
    let url_encoded = match &input.encoding_type {
        None => false,
        Some(e) if e.as_str() == EncodingType::URL => true,
        Some(_) => return Err(invalid("encoding-type must be url")),
    };
    let max_keys = match input.max_keys {
        None => MAX_KEYS,
        Some(n) => usize::try_from(n)
            .map_err(|_| invalid("max-keys must not be negative"))?
            .min(MAX_KEYS),
    };
    let after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone(),
    };
    // The folder the prefix names (up to its last `/`), checked like a key, so the walk
    // cannot leave the store.
    let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", ""));
    ObjectKey::new(folder).map_err(|_| invalid("the prefix is not under a valid folder"))?;

    let root = caller.state.stores.local.root().to_owned();
    let (p, a) = (prefix.clone(), after.clone());
    let page = tokio::task::spawn_blocking(move || list(&root, &p, a.as_deref(), max_keys))
        .await
        .map_err(internal_error)?
        .map_err(internal_error)?;

    let recorded = recorded_etags(&caller, &page.entries).await?;
    let encode = |s: &str| {
        if url_encoded {
            utf8_percent_encode(s, KEY_ENCODING).to_string()
        } else {
            s.to_owned()
        }
    };
    let contents: Vec<Object> = page
        .entries
        .iter()
        .map(|e| Object {
            key: Some(encode(&e.key)),
            size: Some(i64::try_from(e.size).unwrap_or(i64::MAX)),
            e_tag: Some(ETag::Strong(
                recorded
                    .iter()
                    .find(|(k, size, _)| *k == e.key && *size == e.size)
                    .map_or_else(|| e.etag.clone(), |(_, _, etag)| etag.clone()),
            )),
            last_modified: Some(Timestamp::from(e.modified)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let next = page
        .truncated
        .then(|| page.entries.last().map(|e| encode_token(&e.key)))
        .flatten();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode(&prefix)),
        max_keys: Some(i32::try_from(max_keys).unwrap_or(i32::MAX)),
        key_count: Some(i32::try_from(contents.len()).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token,
        start_after: input.start_after.as_deref().map(encode),
        is_truncated: Some(page.truncated),
        next_continuation_token: next,
        encoding_type: input.encoding_type,
        contents: Some(contents),
        ..Default::default()
    }))
}

fn invalid(message: &'static str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message)
}

fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid("the continuation token is not one this store gave"))
}

/// The ETags the database holds for a page's keys: (key, size when recorded, ETag).
async fn recorded_etags(
    caller: &super::Caller,
    entries: &[Entry],
) -> S3Result<Vec<(String, u64, String)>> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(Vec::new());
    };
    let bucket = caller.state.stores.bucket.clone();
    let (first, last) = (first.key.clone(), last.key.clone());
    caller
        .state
        .db
        .read(move |conn| {
            let mut st = conn.prepare(
                "SELECT key, size, etag FROM object_meta
                 WHERE bucket = ?1 AND key >= ?2 AND key <= ?3",
            )?;
            let rows = st.query_map((bucket, first, last), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .map_err(|e| internal_error(format!("{e:?}")))
}

/// One object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
    /// An ETag from its size and time, for objects the database has none for.
    pub etag: String,
}

/// A page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    /// At most the page size, in key order.
    pub entries: Vec<Entry>,
    /// Whether more keys follow.
    pub truncated: bool,
}

/// The objects under `root` whose keys start with `prefix` and sort after `after`, at
/// most `max` of them. Files that are not valid keys (temporaries) and anything that
/// is not a regular file are left out.
///
/// # Errors
/// I/O errors reading the folders.
pub fn list(root: &Path, prefix: &str, after: Option<&str>, max: usize) -> io::Result<Page> {
    let (folder, name_start) = match prefix.rsplit_once('/') {
        Some((folder, name)) => (format!("{folder}/"), name),
        None => (String::new(), prefix),
    };
    let mut walk = Walk {
        after,
        limit: max.saturating_add(1),
        found: Vec::new(),
    };
    walk.folder(&root.join(&folder), &folder, name_start)?;
    let truncated = walk.found.len() > max;
    walk.found.truncate(max);
    Ok(Page {
        entries: walk.found,
        truncated,
    })
}

struct Walk<'a> {
    after: Option<&'a str>,
    limit: usize,
    found: Vec<Entry>,
}

impl Walk<'_> {
    /// Visits the folder at `path` (key prefix `key_prefix`, ending in `/` or empty),
    /// only the entries whose names start with `name_start`.
    fn folder(&mut self, path: &Path, key_prefix: &str, name_start: &str) -> io::Result<()> {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no key names it
            };
            if !name.starts_with(name_start) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                children.push((format!("{key_prefix}{name}/"), true));
            } else if kind.is_file() {
                children.push((format!("{key_prefix}{name}"), false));
            }
        }
        // A folder's keys all start with "name/": sorting it as that puts them where
        // they belong among its siblings.
        children.sort_unstable();
        for (key, is_dir) in children {
            if self.found.len() >= self.limit {
                break;
            }
            if is_dir {
                // Everything under it sorts before `after` unless `after` is inside it.
                if self
                    .after
                    .is_some_and(|a| key.as_str() < a && !a.starts_with(&key))
                {
                    continue;
                }
                let name = key.get(key_prefix.len()..).unwrap_or_default();
                self.folder(&path.join(name.trim_end_matches('/')), &key, "")?;
            } else {
                if self.after.is_some_and(|a| key.as_str() <= a) || ObjectKey::new(&*key).is_err() {
                    continue;
                }
                let name = key.get(key_prefix.len()..).unwrap_or_default();
                let meta = match fs::metadata(path.join(name)) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => continue,
                    // Deleted since the folder was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                self.found.push(Entry {
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    etag: file_etag(&meta),
                    key,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(page: &Page) -> Vec<&str> {
        page.entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn keys_come_in_bytewise_order_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let all = [
            "t/a/x", "t/a/x-1", "t/a/x/y", "t/a/x/y0", "t/a/x0", "t/a/z", "t/ab/q", "t/b/r",
        ];
        // "t/a/x" and "t/a/x/y" cannot both be files: put them in two trees.
        let files: Vec<&str> = all.iter().copied().filter(|k| *k != "t/a/x").collect();
        for key in &files {
            let path = dir.path().join(key);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, key.as_bytes()).unwrap();
        }
        fs::write(dir.path().join("t/a/.coffer-tmp-1"), b"temp").unwrap();
        let mut sorted = files.clone();
        sorted.sort_unstable();

        let page = list(dir.path(), "t/", None, 100).unwrap();
        assert_eq!(keys(&page), sorted);
        assert!(!page.truncated);
        // The prefix is a string prefix, not a folder: "t/a" also matches "t/ab/".
        let page = list(dir.path(), "t/a", None, 100).unwrap();
        assert_eq!(keys(&page).len(), sorted.len() - 1);
        let page = list(dir.path(), "t/a/", None, 100).unwrap();
        assert_eq!(
            keys(&page),
            ["t/a/x-1", "t/a/x/y", "t/a/x/y0", "t/a/x0", "t/a/z"]
        );
        // Pages of two, each after the last key of the one before.
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page = list(dir.path(), "t/", after.as_deref(), 2).unwrap();
            seen.extend(keys(&page).iter().map(|k| k.to_string()));
            if !page.truncated {
                break;
            }
            after = page.entries.last().map(|e| e.key.clone());
        }
        assert_eq!(seen, sorted);
        assert!(list(dir.path(), "nothing/", None, 10)
            .unwrap()
            .entries
            .is_empty());
    }
}
