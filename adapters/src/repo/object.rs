//! Repository objects as sealed streams (FORMAT.md §15): symmetric ones (index and
//! configuration, under keys derived from the writer secret) and recipient-sealed ones
//! (packs and snapshots: a fresh key per object, sealed to the repository's public
//! key, so a write-only key cannot open them). Every object's context binds the
//! repository ID, its kind and its name, so no object can stand in for another.

use std::io::{self, Read, Seek, SeekFrom};

use coffer_core::chunked::{ENCRYPTED_CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::stream::{self, STREAM_PREFIX_LEN};
use coffer_core::{SecretKey, Suite};
use rand_core::CryptoRngCore;

use super::recipient::{self, RecipientPublic, RecipientSecret, SEALED_KEY_LEN};
use crate::bridge::OpenReader;
use crate::storage::{ObjectKey, Storage};
use crate::{default_provider, Error};

/// The magic of a recipient-sealed object.
pub const OBJECT_MAGIC: &[u8; 8] = b"COFFER/H";
/// The header in front of a recipient-sealed object's stream.
pub const OBJECT_HEADER_LEN: usize = 16 + SEALED_KEY_LEN;
/// The suite every v2 object is sealed with.
pub const SUITE: Suite = Suite::Aes256Gcm;
/// A repository's ID: 16 random bytes, in the clear in its configuration object.
pub type RepoId = [u8; 16];

/// What a recipient-sealed object is (byte 9 of its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    /// A pack of blobs (§16).
    Pack = 1,
    /// A snapshot (§19).
    Snapshot = 2,
}

/// What a symmetric object is (it selects the context label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainKind {
    /// An index object (§17).
    Index,
    /// The configuration (§20).
    Config,
    /// A writer's local cache (§22).
    Cache,
    /// A lock (§23).
    Lock,
}

impl PlainKind {
    fn label(self) -> &'static [u8] {
        match self {
            PlainKind::Index => b"coffer/v2 index",
            PlainKind::Config => b"coffer/v2 config",
            PlainKind::Cache => b"coffer/v2 cache",
            PlainKind::Lock => b"coffer/v2 lock",
        }
    }
}

/// The context of a symmetric object: label ‖ repository ID ‖ name.
pub fn plain_context(kind: PlainKind, repo: &RepoId, name: &str) -> Vec<u8> {
    [kind.label(), &repo[..], name.as_bytes()].concat()
}

/// The context of a recipient-sealed object: `"coffer/v2 object"` ‖ its header's first
/// 16 bytes ‖ repository ID ‖ name. It is both the HPKE `info` and the stream's context.
pub fn sealed_context(header16: &[u8], repo: &RepoId, name: &str) -> Vec<u8> {
    [
        b"coffer/v2 object".as_slice(),
        header16,
        &repo[..],
        name.as_bytes(),
    ]
    .concat()
}

fn header16(kind: SealedKind) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(OBJECT_MAGIC);
    h[8] = 2;
    h[9] = kind as u8;
    h
}

/// Seals `plaintext` as one stream under `key` with `context`.
///
/// # Errors
/// Core errors (none for valid keys).
pub fn seal_bytes(key: &SecretKey, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    seal_bytes_with(&mut rand_core::OsRng, key, context, plaintext)
}

/// [`seal_bytes`] with the stream's salt drawn from `rng`: the OS's generator in every
/// real use; a seeded one only where test vectors must come out the same.
///
/// # Errors
/// As [`seal_bytes`].
#[doc(hidden)]
pub fn seal_bytes_with(
    rng: &mut impl CryptoRngCore,
    key: &SecretKey,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let chunks = plaintext.len() / coffer_core::chunked::CHUNK_LEN + 1;
    let mut out = Vec::with_capacity(STREAM_PREFIX_LEN + plaintext.len() + 16 * chunks);
    let mut buf = vec![0u8; SEAL_BUFFER_LEN];
    let (mut sealer, prefix) =
        stream::seal(&default_provider(), SUITE, key, context, rng, &mut buf[..])?;
    out.extend_from_slice(&prefix);
    let mut rest = plaintext;
    while !rest.is_empty() {
        let (taken, sealed) = sealer.push(rest)?;
        if let Some(chunk) = sealed {
            out.extend_from_slice(chunk);
        }
        rest = &rest[taken..];
    }
    out.extend_from_slice(sealer.finish()?.ciphertext());
    Ok(out)
}

/// Opens a whole stream sealed by [`seal_bytes`]: nothing is returned unless every
/// chunk verified and the stream ended where it should.
///
/// # Errors
/// [`Error::Core`] (wrong key or context, damage, truncation).
pub fn open_bytes(key: &SecretKey, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let mut opener = OpenReader::new(&default_provider(), key, context, sealed)?;
    let mut out = Vec::with_capacity(sealed.len());
    opener.read_to_end(&mut out).map_err(|e| {
        crate::bridge::core_error(&e).map_or_else(|| Error::io("opening an object", e), Error::Core)
    })?;
    Ok(out)
}

/// Seals `plaintext` as a recipient-sealed object named `name`: header (magic, version
/// 2, kind, zeros, the sealed object key) ‖ the stream under the fresh object key.
///
/// # Errors
/// As [`seal_bytes`]; [`Error::Recipient`] for an invalid public key.
pub fn seal_to(
    public: &RecipientPublic,
    kind: SealedKind,
    repo: &RepoId,
    name: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    seal_to_with(&mut rand_core::OsRng, public, kind, repo, name, plaintext)
}

/// [`seal_to`] with the object key, the HPKE ephemeral key and the stream's salt drawn
/// from `rng`: the OS's generator in every real use; a seeded one only where test
/// vectors must come out the same.
///
/// # Errors
/// As [`seal_to`].
#[doc(hidden)]
pub fn seal_to_with(
    rng: &mut impl CryptoRngCore,
    public: &RecipientPublic,
    kind: SealedKind,
    repo: &RepoId,
    name: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let (header, key, context) = start_sealed(rng, public, kind, repo, name)?;
    let mut out = Vec::with_capacity(OBJECT_HEADER_LEN + plaintext.len() + 4096);
    out.extend_from_slice(&header);
    out.extend_from_slice(&seal_bytes_with(rng, &key, &context, plaintext)?);
    Ok(out)
}

/// Begins a recipient-sealed object named `name`: a fresh object key sealed to
/// `public`; returns the object's header (magic, version, kind, zeros, the sealed key),
/// the key and the context its stream is sealed with. The stream's salt is drawn from
/// `rng` after these, by whoever seals the stream.
///
/// # Errors
/// [`Error::Recipient`] if the key cannot be sealed.
pub(crate) fn start_sealed(
    rng: &mut impl CryptoRngCore,
    public: &RecipientPublic,
    kind: SealedKind,
    repo: &RepoId,
    name: &str,
) -> Result<([u8; OBJECT_HEADER_LEN], SecretKey, Vec<u8>), Error> {
    let h16 = header16(kind);
    let context = sealed_context(&h16, repo, name);
    let key = SecretKey::generate(rng);
    let sealed_key = recipient::seal_key_with(rng, public, &key, &context)?;
    let mut header = [0u8; OBJECT_HEADER_LEN];
    header[..16].copy_from_slice(&h16);
    header[16..].copy_from_slice(&sealed_key);
    Ok((header, key, context))
}

/// The object key and context of a recipient-sealed object, from its header.
///
/// # Errors
/// [`Error::RepoFormat`] for a header of another kind or version; [`Error::Recipient`]
/// if the key does not open.
pub fn object_key(
    secret: &RecipientSecret,
    kind: SealedKind,
    repo: &RepoId,
    name: &str,
    header: &[u8],
) -> Result<(SecretKey, Vec<u8>), Error> {
    let bad = |reason: &str| Error::RepoFormat {
        object: name.to_owned(),
        reason: reason.to_owned(),
    };
    if header.len() < OBJECT_HEADER_LEN {
        return Err(bad("shorter than an object header"));
    }
    let h16 = header16(kind);
    if header[..8] != OBJECT_MAGIC[..] {
        return Err(bad("not a recipient-sealed object (magic)"));
    }
    if header[..16] != h16 {
        return Err(bad(
            "unsupported version, another kind, or reserved bytes set",
        ));
    }
    let context = sealed_context(&h16, repo, name);
    let mut sealed = [0u8; SEALED_KEY_LEN];
    sealed.copy_from_slice(&header[16..OBJECT_HEADER_LEN]);
    let key = recipient::open_key(secret, &sealed, &context)?;
    Ok((key, context))
}

/// Opens a whole recipient-sealed object.
///
/// # Errors
/// As [`object_key`] and [`open_bytes`].
pub fn open_from(
    secret: &RecipientSecret,
    kind: SealedKind,
    repo: &RepoId,
    name: &str,
    object: &[u8],
) -> Result<Vec<u8>, Error> {
    let (key, context) = object_key(secret, kind, repo, name, object)?;
    open_bytes(&key, &context, &object[OBJECT_HEADER_LEN..])
}

/// Reads plaintext bytes `offset .. offset + len` of the stream that starts at
/// `stream_start` in `object` (`object_len` bytes long), fetching from storage only the
/// stream's prefix and the sealed chunks that cover the range (two ranged reads). Each
/// chunk is verified before any of its bytes is returned.
///
/// # Errors
/// Storage errors; [`Error::Core`] for a chunk that does not verify.
#[allow(clippy::too_many_arguments)]
pub fn read_range(
    store: &dyn Storage,
    object: &ObjectKey,
    object_len: u64,
    stream_start: u64,
    key: &SecretKey,
    context: &[u8],
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, Error> {
    let range = StreamRange {
        object_len,
        stream_start,
        offset,
        len,
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let sealed = fetch_range(store, object, &range)?;
    open_range(key, context, &range, &sealed.prefix, &sealed.body)
}

/// Plaintext bytes `offset .. offset + len` of the stream that starts at `stream_start`
/// in an object of `object_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRange {
    /// The object's length.
    pub object_len: u64,
    /// Where the stream starts in it.
    pub stream_start: u64,
    /// The first plaintext byte wanted.
    pub offset: u64,
    /// How many.
    pub len: u64,
}

/// The stored (sealed) bytes a [`StreamRange`] is read from: the stream's prefix and the
/// run of sealed chunks that cover the range, exactly as storage holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRange {
    /// The stream prefix.
    pub prefix: Vec<u8>,
    /// The sealed chunks.
    pub body: Vec<u8>,
}

impl StreamRange {
    /// Where the prefix and the chunks lie in the object (start, length), or `None`
    /// for an empty range or one past the object's end.
    pub fn pieces(&self) -> Option<((u64, u64), (u64, u64))> {
        if self.len == 0 {
            return None;
        }
        let chunk = coffer_core::chunked::CHUNK_LEN as u64;
        let sealed = ENCRYPTED_CHUNK_LEN as u64;
        let chunks_at = self.stream_start.checked_add(STREAM_PREFIX_LEN as u64)?;
        let first = self.offset / chunk;
        let last = self.offset.checked_add(self.len - 1)? / chunk;
        let body_start = chunks_at.checked_add(first.checked_mul(sealed)?)?;
        let body_end = chunks_at
            .checked_add((last.checked_add(1)?).checked_mul(sealed)?)?
            .min(self.object_len);
        if body_start >= body_end {
            return None;
        }
        Some((
            (self.stream_start, STREAM_PREFIX_LEN as u64),
            (body_start, body_end - body_start),
        ))
    }
}

/// Fetches the stored bytes of `range` (two ranged reads), unverified: [`open_range`]
/// verifies them.
///
/// # Errors
/// Storage errors; [`Error::RepoFormat`] for a range past the object's end.
pub fn fetch_range(
    store: &dyn Storage,
    object: &ObjectKey,
    range: &StreamRange,
) -> Result<SealedRange, Error> {
    let ((prefix_at, prefix_len), (body_at, body_len)) =
        range.pieces().ok_or_else(|| Error::RepoFormat {
            object: object.to_string(),
            reason: format!(
                "range {}+{} lies past the object's end",
                range.offset, range.len
            ),
        })?;
    let fetch = |start: u64, n: u64| -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        store
            .get_range(object, start, n)?
            .read_to_end(&mut out)
            .map_err(|e| Error::io(format!("reading {object}"), e))?;
        Ok(out)
    };
    Ok(SealedRange {
        prefix: fetch(prefix_at, prefix_len)?,
        body: fetch(body_at, body_len)?,
    })
}

/// Opens the stored bytes of `range` (its stream prefix and sealed chunks, as
/// [`fetch_range`] fetched them or a local cache kept them) under the stream's key and
/// context: each chunk is verified before any of its bytes is returned.
///
/// # Errors
/// [`Error::Core`] for a chunk that does not verify or pieces of the wrong length.
pub fn open_range(
    key: &SecretKey,
    context: &[u8],
    range: &StreamRange,
    prefix: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, Error> {
    if range.len == 0 {
        return Ok(Vec::new());
    }
    let Some(((prefix_at, prefix_len), (body_at, body_len))) = range.pieces() else {
        return Err(Error::Core(coffer_core::Error::Truncated));
    };
    if prefix.len() as u64 != prefix_len || body.len() as u64 != body_len {
        return Err(Error::Core(coffer_core::Error::Truncated));
    }
    let sparse = Sparse {
        pieces: [(prefix_at, prefix), (body_at, body)],
        len: range.object_len,
        pos: 0,
    };
    let (_, mut opener) = stream::open_random_access(
        &default_provider(),
        key,
        context,
        embedded_io_adapters::std::FromStd::new(sparse),
        range.stream_start,
        vec![0u8; OPEN_BUFFER_LEN],
    )?;
    let mut out = vec![0u8; usize::try_from(range.len).unwrap_or(0)];
    let mut done = 0usize;
    while done < out.len() {
        let n = opener.read_at(range.offset + done as u64, &mut out[done..])?;
        if n == 0 {
            return Err(Error::Core(coffer_core::Error::Truncated));
        }
        done += n;
    }
    Ok(out)
}

/// An object of `len` bytes of which only some pieces were fetched; reading anywhere
/// else is an error (it never happens when the range arithmetic is right).
struct Sparse<'a> {
    pieces: [(u64, &'a [u8]); 2],
    len: u64,
    pos: u64,
}

impl Read for Sparse<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        for (start, bytes) in &self.pieces {
            let end = start + bytes.len() as u64;
            if (*start..end).contains(&self.pos) {
                let from = usize::try_from(self.pos - start).unwrap_or(usize::MAX);
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                self.pos += n as u64;
                return Ok(n);
            }
        }
        Err(io::Error::other("read outside the fetched ranges"))
    }
}

impl Seek for Sparse<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{LocalStorage, PutMode};

    #[test]
    fn recipient_sealed_objects_open_whole_and_by_range() {
        let master = SecretKey::from_bytes([3; 32]);
        let secret = RecipientSecret::from_master(&master);
        let repo = [5u8; 16];
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let object = seal_to(&secret.public(), SealedKind::Pack, &repo, "p1", &data).unwrap();
        assert_eq!(
            open_from(&secret, SealedKind::Pack, &repo, "p1", &object).unwrap(),
            data
        );
        // Another name, kind or repository does not open.
        assert!(open_from(&secret, SealedKind::Pack, &repo, "p2", &object).is_err());
        assert!(open_from(&secret, SealedKind::Snapshot, &repo, "p1", &object).is_err());
        assert!(open_from(&secret, SealedKind::Pack, &[6; 16], "p1", &object).is_err());

        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open(dir.path()).unwrap();
        let name = ObjectKey::new("data/p1").unwrap();
        store
            .put(&name, &mut object.as_slice(), PutMode::CreateOnly)
            .unwrap();
        let (key, context) = object_key(&secret, SealedKind::Pack, &repo, "p1", &object).unwrap();
        for (off, len) in [(0u64, 10u64), (16_380, 10), (99_990, 10), (40_000, 30_000)] {
            let got = read_range(
                &store,
                &name,
                object.len() as u64,
                OBJECT_HEADER_LEN as u64,
                &key,
                &context,
                off,
                len,
            )
            .unwrap();
            assert_eq!(
                got,
                &data[off as usize..(off + len) as usize],
                "{off}+{len}"
            );
        }
        // A damaged chunk in the range is refused; one outside it is not read at all.
        let mut damaged = object.clone();
        damaged[OBJECT_HEADER_LEN + STREAM_PREFIX_LEN + 5] ^= 1;
        let name2 = ObjectKey::new("data/p2").unwrap();
        store
            .put(&name2, &mut damaged.as_slice(), PutMode::CreateOnly)
            .unwrap();
        let read = |off| {
            read_range(
                &store,
                &name2,
                damaged.len() as u64,
                OBJECT_HEADER_LEN as u64,
                &key,
                &context,
                off,
                10,
            )
        };
        assert!(read(0).is_err());
        assert_eq!(read(50_000).unwrap(), &data[50_000..50_010]);
    }
}
