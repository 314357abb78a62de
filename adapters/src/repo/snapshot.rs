//! Snapshots (FORMAT.md §19): recipient-sealed objects naming a root tree, with what a
//! person looks a backup up by (time, host, paths, tags) and a summary. Encoded with
//! postcard, like trees (§18).

use serde::{Deserialize, Serialize};

use crate::Error;

/// A snapshot's version byte.
pub const SNAPSHOT_VERSION: u8 = 2;
/// The largest snapshot plaintext a reader accepts.
pub const MAX_SNAPSHOT_LEN: usize = 16 << 20;

/// What one backup made. Field order is the wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_VERSION`].
    pub version: u8,
    /// When the backup started: Unix seconds.
    pub time: i64,
    /// And nanoseconds.
    pub time_ns: u32,
    /// The host it ran on.
    pub host: String,
    /// The user it ran as.
    pub user: String,
    /// The paths given (absolute; raw bytes).
    pub paths: Vec<Vec<u8>>,
    /// Tags.
    pub tags: Vec<String>,
    /// The snapshot whose trees unchanged files were taken from, if any.
    pub parent: Option<[u8; 16]>,
    /// The root tree's blob ID.
    pub tree: [u8; 32],
    /// The program that wrote it, e.g. `coffer 0.1.0`.
    pub program: String,
    /// For a backup of a command's output: the command line.
    pub command: Option<String>,
    /// Totals.
    pub summary: Summary,
}

/// Totals of one backup. Field order is the wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Other entries (links, devices, FIFOs, sockets).
    pub others: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Files read (changed or new, or all with a forced full read).
    pub files_read: u64,
    /// Bytes read from files.
    pub bytes_read: u64,
    /// New data blobs stored.
    pub new_blobs: u64,
    /// New tree blobs stored.
    pub new_trees: u64,
    /// Raw bytes of the new blobs.
    pub new_raw_bytes: u64,
    /// Bytes they took in packs (compressed).
    pub new_stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
    /// Milliseconds the backup took.
    pub duration_ms: u64,
}

impl Snapshot {
    /// The postcard bytes.
    ///
    /// # Errors
    /// postcard's (none for these types).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        postcard::to_allocvec(self).map_err(|e| Error::RepoFormat {
            object: "snapshot".to_owned(),
            reason: e.to_string(),
        })
    }

    /// Reads a snapshot, refusing trailing bytes and another version.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] naming `name`.
    pub fn decode(name: &str, b: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::RepoFormat {
            object: name.to_owned(),
            reason,
        };
        if b.len() > MAX_SNAPSHOT_LEN {
            return Err(bad(format!("longer than {MAX_SNAPSHOT_LEN} bytes")));
        }
        let (s, rest): (Snapshot, _) =
            postcard::take_from_bytes(b).map_err(|e| bad(format!("does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("bytes after the snapshot".to_owned()));
        }
        if s.version != SNAPSHOT_VERSION {
            return Err(bad(format!(
                "version {}, not {SNAPSHOT_VERSION}",
                s.version
            )));
        }
        if s.time_ns >= 1_000_000_000 {
            return Err(bad("nanoseconds out of range".to_owned()));
        }
        // postcard accepts overlong varints; only the shortest form is valid (the wire
        // rules of FORMAT.md §18.1), so a snapshot has one encoding.
        if s.encode()? != b {
            return Err(bad("not in its canonical encoding".to_owned()));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_refuse_leftovers() {
        let s = Snapshot {
            version: 2,
            time: 1_790_000_000,
            time_ns: 5,
            host: "nas".into(),
            user: "root".into(),
            paths: vec![b"/srv".to_vec()],
            tags: vec!["daily".into()],
            parent: Some([1; 16]),
            tree: [2; 32],
            program: "coffer test".into(),
            command: None,
            summary: Summary {
                files: 3,
                ..Summary::default()
            },
        };
        let b = s.encode().unwrap();
        assert_eq!(Snapshot::decode("s", &b).unwrap(), s);
        let mut extra = b.clone();
        extra.push(0);
        assert!(Snapshot::decode("s", &extra).is_err());
        let mut v3 = b.clone();
        v3[0] = 3;
        assert!(Snapshot::decode("s", &v3).is_err());
    }

    #[test]
    fn overlong_varints_are_refused() {
        // Found by fuzz/fuzz_targets/repo_snapshot.rs: the summary's `9f 00` and `e4 00`
        // are 31 and 100 in two bytes each, which postcard reads and §18.1 forbids.
        let overlong = hex::decode(
            "0200000000000000000000000000003400000000000000003400000000000000\
             000000009f0000000000000000000000009f00000000e400",
        )
        .unwrap();
        assert!(Snapshot::decode("s", &overlong).is_err());
        let (s, _) = postcard::take_from_bytes::<Snapshot>(&overlong).unwrap();
        let canonical = s.encode().unwrap();
        assert_eq!(canonical.len(), overlong.len() - 2);
        assert_eq!(Snapshot::decode("s", &canonical).unwrap(), s);
    }
}
