//! The records of a backup manifest, encoded with postcard (its wire format is stable
//! and specified at postcard.jamesmunns.com/wire-format; FORMAT.md §11 lists the fields).
//!
//! A manifest is one sealed stream whose plaintext is a [`ManifestHeader`], then
//! `frame_count` [`FrameRecord`]s, then `entry_count` [`EntryRecord`]s, back to back
//! with no length prefixes. Decoding borrows paths and names from the input, so it
//! needs no allocation; every decoder returns the rest of the input.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Version of the manifest record layout.
pub const MANIFEST_VERSION: u8 = 1;

/// What a manifest describes as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHeader<'a> {
    /// [`MANIFEST_VERSION`].
    pub version: u8,
    /// The host the backup was made on.
    pub host: &'a str,
    /// When the backup started, Unix seconds.
    pub created: i64,
    /// ID of the key the archive and this manifest are sealed under.
    pub key_id: [u8; 16],
    /// Files, directories and links in the backup.
    pub entry_count: u64,
    /// Bytes of file content (before compression).
    pub content_bytes: u64,
    /// Length of the uncompressed archive (tar) stream.
    pub archive_len: u64,
    /// Length of the compressed stream that was sealed.
    pub compressed_len: u64,
    /// Independently decompressible frames the compressed stream is cut into.
    pub frame_count: u64,
}

/// Where a compressed frame starts, in the archive and in the compressed stream, so a
/// reader can decompress from there without what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Offset of the frame's first byte in the uncompressed archive.
    pub archive_offset: u64,
    /// Offset of the frame in the compressed stream (the sealed plaintext).
    pub compressed_offset: u64,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
}

/// One file, directory or link in a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord<'a> {
    /// The path inside the backup, as raw bytes (names need not be UTF-8).
    #[serde(borrow)]
    pub path: &'a [u8],
    /// File, directory or link.
    pub kind: EntryKind,
    /// Permission bits (Unix mode & 0o7777).
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Content length (0 for directories and links).
    pub size: u64,
    /// SHA-256 of the content (of nothing for directories and links).
    pub sha256: [u8; 32],
    /// A link's target, raw bytes; empty otherwise.
    #[serde(borrow)]
    pub link_target: &'a [u8],
    /// Offset of the entry's tar header in the uncompressed archive.
    pub archive_offset: u64,
}

macro_rules! codec {
    ($t:ty, $name:literal) => {
        impl<'a> $t {
            /// Decodes one record from the start of `bytes`; returns it and the rest.
            ///
            /// # Errors
            #[doc = concat!("[`Error::MalformedRecord`] naming `", $name, "`.")]
            pub fn decode(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), Error> {
                postcard::take_from_bytes(bytes)
                    .map_err(|_| Error::MalformedRecord { record: $name })
            }

            /// Encodes the record into the start of `buf`; returns the bytes written.
            ///
            /// # Errors
            /// [`Error::BufferTooSmall`] if it does not fit.
            pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], Error> {
                let provided = buf.len();
                let needed = postcard::experimental::serialized_size(self)
                    .map_err(|_| Error::MalformedRecord { record: $name })?;
                if needed > provided {
                    return Err(Error::BufferTooSmall { needed, provided });
                }
                postcard::to_slice(self, buf).map_err(|_| Error::MalformedRecord { record: $name })
            }
        }
    };
}

codec!(ManifestHeader<'a>, "manifest header");
codec!(FrameRecord, "frame");
codec!(EntryRecord<'a>, "entry");
