//! A backup's manifest: its summary, frame table and entries, as the core's postcard
//! records (FORMAT.md §11).

use coffer_core::record::{EntryRecord, FrameRecord, ManifestHeader, MANIFEST_VERSION};

use super::archive::Entry;
use crate::Error;

/// Everything a backup's manifest holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Host the backup was made on.
    pub host: String,
    /// When it started, Unix seconds.
    pub created: i64,
    /// The key the archive and manifest are sealed under.
    pub key_id: [u8; 16],
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Length of the tar stream.
    pub archive_len: u64,
    /// Length of the compressed stream that was sealed.
    pub compressed_len: u64,
    /// Where each compressed frame starts.
    pub frames: Vec<FrameRecord>,
    /// Files, directories and links, in archive order.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// The manifest as back-to-back records.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = vec![0u8; 256];
        let mut put = |encode: &dyn Fn(&mut [u8]) -> Result<usize, coffer_core::Error>| loop {
            match encode(&mut scratch) {
                Ok(n) => {
                    out.extend_from_slice(&scratch[..n]);
                    return;
                }
                Err(coffer_core::Error::BufferTooSmall { needed, .. }) => {
                    scratch.resize(needed, 0);
                }
                Err(e) => unreachable!("encoding into a large enough buffer: {e}"),
            }
        };
        let header = ManifestHeader {
            version: MANIFEST_VERSION,
            host: &self.host,
            created: self.created,
            key_id: self.key_id,
            entry_count: self.entries.len() as u64,
            content_bytes: self.content_bytes,
            archive_len: self.archive_len,
            compressed_len: self.compressed_len,
            frame_count: self.frames.len() as u64,
        };
        put(&|buf| header.encode(buf).map(|b| b.len()));
        for frame in &self.frames {
            put(&|buf| frame.encode(buf).map(|b| b.len()));
        }
        for e in &self.entries {
            let record = EntryRecord {
                path: &e.path,
                kind: e.kind,
                mode: e.mode,
                mtime: e.mtime,
                size: e.size,
                sha256: e.sha256,
                link_target: &e.link_target,
                archive_offset: e.archive_offset,
            };
            put(&|buf| record.encode(buf).map(|b| b.len()));
        }
        out
    }

    /// Decodes a manifest, checking that its counts and offsets are consistent.
    ///
    /// # Errors
    /// [`Error::Core`] with `MalformedRecord`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let malformed = |record| Error::Core(coffer_core::Error::MalformedRecord { record });
        let (header, mut rest) = ManifestHeader::decode(bytes)?;
        if header.version != MANIFEST_VERSION {
            return Err(malformed("manifest header (version)"));
        }
        // Each record takes at least two bytes, so the counts are bounded by the input
        // before anything is allocated for them.
        let limit = bytes.len() as u64 / 2;
        if header.frame_count > limit || header.entry_count > limit {
            return Err(malformed("manifest header (counts)"));
        }
        let mut frames = Vec::with_capacity(header.frame_count as usize);
        for _ in 0..header.frame_count {
            let (frame, r) = FrameRecord::decode(rest)?;
            frames.push(frame);
            rest = r;
        }
        let mut entries = Vec::with_capacity(header.entry_count as usize);
        for _ in 0..header.entry_count {
            let (e, r) = EntryRecord::decode(rest)?;
            entries.push(Entry {
                path: e.path.to_vec(),
                kind: e.kind,
                mode: e.mode,
                mtime: e.mtime,
                size: e.size,
                sha256: e.sha256,
                link_target: e.link_target.to_vec(),
                archive_offset: e.archive_offset,
            });
            rest = r;
        }
        if !rest.is_empty() {
            return Err(malformed("manifest (trailing bytes)"));
        }
        let ordered = |a: u64, b: u64| a <= b;
        if !frames.windows(2).all(|w| {
            ordered(w[0].archive_offset, w[1].archive_offset)
                && ordered(w[0].compressed_offset, w[1].compressed_offset)
        }) || !entries
            .windows(2)
            .all(|w| ordered(w[0].archive_offset, w[1].archive_offset))
        {
            return Err(malformed("manifest (offsets out of order)"));
        }
        Ok(Manifest {
            host: header.host.to_owned(),
            created: header.created,
            key_id: header.key_id,
            content_bytes: header.content_bytes,
            archive_len: header.archive_len,
            compressed_len: header.compressed_len,
            frames,
            entries,
        })
    }
}
