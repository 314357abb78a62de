//! Packs (FORMAT.md §16): many blobs in one recipient-sealed object, with the table of
//! contents inside the encryption and the plaintext padded to a Padmé length, so
//! storage learns neither how many blobs a pack holds nor how long any of them is.
//!
//! Plaintext: `blob ‖ … ‖ toc ‖ zero padding ‖ trailer`, where `toc` is `u32le(count)`
//! then `count` 48-byte entries, and the 16-byte trailer is `u64le(toc_offset) ‖
//! u32le(toc_len) ‖ "CPK2"`.

use super::Error;

/// A pack is closed once its blobs pass this many bytes (8 MiB; a backup fills three
/// at once, sealing them into temporary files as they fill: `spill`).
pub const PACK_TARGET: usize = 8 << 20;
/// The largest pack plaintext a reader accepts (a pack holds at least one blob, and a
/// tree blob may be large).
pub const MAX_PACK_LEN: u64 = 1 << 30;
/// Length of one table-of-contents entry.
pub const TOC_ENTRY_LEN: usize = 48;
/// Length of the trailer.
pub const TRAILER_LEN: usize = 16;
/// The trailer's last four bytes.
pub const TRAILER_MAGIC: &[u8; 4] = b"CPK2";
/// The largest blob: what a 32-bit length holds, less room for the rest of a pack.
pub const MAX_BLOB_LEN: usize = (1 << 30) - (1 << 20);

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// File content (one chunk).
    Data = 0,
    /// A directory listing (§18).
    Tree = 1,
}

/// How a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As it is.
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

/// Where a blob sits in its pack and how to read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TocEntry {
    /// The blob's ID (its chunk ID, §14).
    pub id: [u8; 32],
    /// Data or tree.
    pub kind: BlobKind,
    /// Raw or zstd.
    pub compression: Compression,
    /// Offset of its stored bytes in the pack's plaintext.
    pub offset: u32,
    /// Stored (possibly compressed) length.
    pub stored_len: u32,
    /// Length once decompressed.
    pub raw_len: u32,
}

impl TocEntry {
    /// `id ‖ kind ‖ compression ‖ 0x0000 ‖ u32le(offset) ‖ u32le(stored_len) ‖
    /// u32le(raw_len)`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.push(self.kind as u8);
        out.push(self.compression as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    /// Reads one entry (exactly [`TOC_ENTRY_LEN`] bytes).
    ///
    /// # Errors
    /// A reason for an unknown kind or compression, or reserved bytes set.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != TOC_ENTRY_LEN {
            return Err(format!("an entry is {TOC_ENTRY_LEN} bytes"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        let kind = match b[32] {
            0 => BlobKind::Data,
            1 => BlobKind::Tree,
            k => return Err(format!("unknown blob kind {k}")),
        };
        let compression = match b[33] {
            0 => Compression::None,
            1 => Compression::Zstd,
            c => return Err(format!("unknown compression {c}")),
        };
        if b[34] != 0 || b[35] != 0 {
            return Err("reserved bytes of an entry are not zero".to_owned());
        }
        let entry = TocEntry {
            id,
            kind,
            compression,
            offset: u32_at(36),
            stored_len: u32_at(40),
            raw_len: u32_at(44),
        };
        if entry.compression == Compression::None && entry.stored_len != entry.raw_len {
            return Err("an uncompressed blob's stored and raw lengths differ".to_owned());
        }
        // Both lengths: an index (which a write-only key can write) must not make a
        // reader allocate gigabytes for one blob.
        if entry.raw_len as usize > MAX_BLOB_LEN || entry.stored_len as usize > MAX_BLOB_LEN {
            return Err(format!("a blob is longer than {MAX_BLOB_LEN} bytes"));
        }
        Ok(entry)
    }
}

/// Padmé (Nikitin et al., "Reducing metadata leakage from encrypted files and
/// communication with PURBs", 2019): rounds `len` up so that only the top
/// ⌊log2 ⌊log2 len⌋⌋ + 1 bits of the length are free, at most 12% more bytes.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // ⌊log2 len⌋
    let s = 64 - u64::from(e.leading_zeros()); // ⌊log2 e⌋ + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

/// Collects blobs into one pack's plaintext.
#[derive(Debug, Default)]
pub struct PackBuilder {
    body: Vec<u8>,
    entries: Vec<TocEntry>,
}

impl PackBuilder {
    /// An empty pack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a blob's stored bytes.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] for a blob over [`MAX_BLOB_LEN`].
    pub fn add(
        &mut self,
        id: [u8; 32],
        kind: BlobKind,
        compression: Compression,
        stored: &[u8],
        raw_len: usize,
    ) -> Result<(), Error> {
        let entry = TocEntry::placed(
            self.body.len(),
            id,
            kind,
            compression,
            stored.len(),
            raw_len,
        )?;
        self.entries.push(entry);
        self.body.extend_from_slice(stored);
        Ok(())
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The blobs added, in order.
    pub fn entries(&self) -> &[TocEntry] {
        &self.entries
    }

    /// The padded plaintext and the entries.
    pub fn finish(self) -> (Vec<u8>, Vec<TocEntry>) {
        let PackBuilder { mut body, entries } = self;
        let tail = tail(body.len(), &entries);
        body.reserve_exact(tail.len());
        body.extend_from_slice(&tail);
        (body, entries)
    }
}

impl TocEntry {
    /// The entry of a blob whose stored bytes start `offset` bytes into a pack.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] for a blob over [`MAX_BLOB_LEN`], or an offset past 4 GiB.
    pub fn placed(
        offset: usize,
        id: [u8; 32],
        kind: BlobKind,
        compression: Compression,
        stored_len: usize,
        raw_len: usize,
    ) -> Result<TocEntry, Error> {
        let too_long = |what| Error::RepoFormat {
            object: "pack being written".to_owned(),
            reason: format!("{what} is longer than {MAX_BLOB_LEN} bytes"),
        };
        if stored_len > MAX_BLOB_LEN || raw_len > MAX_BLOB_LEN {
            return Err(too_long("a blob"));
        }
        let offset = u32::try_from(offset).map_err(|_| too_long("a pack"))?;
        Ok(TocEntry {
            id,
            kind,
            compression,
            offset,
            stored_len: stored_len as u32,
            raw_len: raw_len as u32,
        })
    }
}

/// What follows a pack's blobs (`body_len` bytes of them): the table of contents, the
/// zero padding to the Padmé length and the trailer.
pub fn tail(body_len: usize, entries: &[TocEntry]) -> Vec<u8> {
    let mut tail = Vec::with_capacity(4 + entries.len() * TOC_ENTRY_LEN + TRAILER_LEN);
    tail.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.encode(&mut tail);
    }
    let toc_offset = body_len as u64;
    let toc_len = tail.len() as u64;
    let total = padme(toc_offset + toc_len + TRAILER_LEN as u64);
    tail.resize((total - toc_offset - TRAILER_LEN as u64) as usize, 0);
    tail.extend_from_slice(&toc_offset.to_le_bytes());
    tail.extend_from_slice(&(toc_len as u32).to_le_bytes());
    tail.extend_from_slice(TRAILER_MAGIC);
    tail
}

/// The table of contents' place, from the trailer (the last 16 plaintext bytes of a
/// pack of `pack_len` bytes).
///
/// # Errors
/// A reason if the trailer is malformed or points outside the pack.
pub fn parse_trailer(trailer: &[u8], pack_len: u64) -> Result<(u64, u64), String> {
    if trailer.len() != TRAILER_LEN || &trailer[12..] != TRAILER_MAGIC {
        return Err("no pack trailer".to_owned());
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&trailer[..8]);
    let toc_offset = u64::from_le_bytes(off);
    let toc_len = u64::from(u32::from_le_bytes([
        trailer[8],
        trailer[9],
        trailer[10],
        trailer[11],
    ]));
    let end = toc_offset.checked_add(toc_len).ok_or("toc overflows")?;
    if end > pack_len.saturating_sub(TRAILER_LEN as u64) || toc_len < 4 {
        return Err("the table of contents lies outside the pack".to_owned());
    }
    Ok((toc_offset, toc_len))
}

/// Reads a table of contents and checks every blob lies before it, without overlaps.
///
/// # Errors
/// A reason naming what is wrong.
pub fn parse_toc(toc: &[u8], toc_offset: u64) -> Result<Vec<TocEntry>, String> {
    let count = toc
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("no entry count")?;
    if toc.len() != 4 + count.saturating_mul(TOC_ENTRY_LEN) {
        return Err(format!(
            "{count} entries do not fit a table of {} bytes",
            toc.len()
        ));
    }
    let mut entries: Vec<TocEntry> = toc[4..]
        .chunks_exact(TOC_ENTRY_LEN)
        .map(TocEntry::decode)
        .collect::<Result<_, _>>()?;
    let mut sorted: Vec<&TocEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    let mut end = 0u64;
    for e in sorted {
        if u64::from(e.offset) < end {
            return Err("blobs overlap".to_owned());
        }
        end = u64::from(e.offset) + u64::from(e.stored_len);
    }
    if end > toc_offset {
        return Err("a blob runs into the table of contents".to_owned());
    }
    entries.shrink_to_fit();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_rounds_up_by_at_most_an_eighth_and_keeps_few_sizes() {
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(1000), 1024);
        for len in [
            3u64,
            100,
            1_000,
            65_537,
            1 << 20,
            15_900_000,
            16 << 20,
            (16 << 20) + 1,
        ] {
            let p = padme(len);
            assert!(p >= len && p - len <= len / 8 + 1, "{len} -> {p}");
        }
        // Just under 16 MiB, multiples of 256 KiB: 2^(23 − 5) for a 24-bit length.
        assert_eq!(padme(15_900_000) % (256 << 10), 0);
        assert_eq!(padme(15_900_000), 61 * (256 << 10));
    }

    #[test]
    fn packs_round_trip_and_refuse_bad_tables() {
        let mut b = PackBuilder::new();
        b.add([1; 32], BlobKind::Data, Compression::None, b"hello", 5)
            .unwrap();
        b.add([2; 32], BlobKind::Tree, Compression::Zstd, b"xyz", 40)
            .unwrap();
        let (plain, entries) = b.finish();
        assert_eq!(plain.len() as u64, padme(plain.len() as u64));
        let (off, len) = parse_trailer(&plain[plain.len() - 16..], plain.len() as u64).unwrap();
        let toc = parse_toc(&plain[off as usize..(off + len) as usize], off).unwrap();
        assert_eq!(toc, entries);
        assert_eq!(&plain[toc[1].offset as usize..][..3], b"xyz");

        // Overlaps, bad counts, reserved bytes, lengths.
        let mut bad = plain[off as usize..(off + len) as usize].to_vec();
        bad[4 + 48 + 36] = 2; // second blob's offset inside the first
        assert!(parse_toc(&bad, off).is_err());
        let mut bad = plain[off as usize..(off + len) as usize].to_vec();
        bad[0] = 3;
        assert!(parse_toc(&bad, off).is_err());
        let mut bad = plain[off as usize..(off + len) as usize].to_vec();
        bad[4 + 34] = 1;
        assert!(parse_toc(&bad, off).is_err());
        assert!(parse_trailer(&[0; 16], 100).is_err());
    }
}
