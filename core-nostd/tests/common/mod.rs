//! Helpers shared by the core's integration tests: an in-memory reader with seeking,
//! vector file loading, and a deterministic RNG; and a plain transcription of FORMAT.md
//! §12–§14 (`chunker_reference`) to hold the chunker to.
#![allow(dead_code, missing_docs, unreachable_pub)]

pub mod chunker_reference;

use std::io::Read as _;
use std::path::PathBuf;

use embedded_io::{ErrorType, Read, Seek, SeekFrom};

/// An embedded-io reader over a byte slice that can also seek, and that can be told to
/// hand out at most `step` bytes per read (to exercise short reads).
pub struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub step: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor {
            data,
            pos: 0,
            step: usize::MAX,
        }
    }
    pub fn with_step(data: &'a [u8], step: usize) -> Self {
        Cursor { data, pos: 0, step }
    }
}

impl ErrorType for Cursor<'_> {
    type Error = embedded_io::ErrorKind;
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let n = rest.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, Self::Error> {
        let new = match pos {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::End(d) => self.data.len() as i64 + d,
            SeekFrom::Current(d) => self.pos as i64 + d,
        };
        if new < 0 {
            return Err(embedded_io::ErrorKind::InvalidInput);
        }
        self.pos = new as usize;
        Ok(new as u64)
    }
}

/// The repository's `test-vectors/` folder.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

pub fn load_json(relative: &str) -> serde_json::Value {
    let path = vectors_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn hex_field(v: &serde_json::Value, name: &str) -> Vec<u8> {
    hex::decode(
        v[name]
            .as_str()
            .unwrap_or_else(|| panic!("no field {name}")),
    )
    .unwrap()
}

/// Decodes Wycheproof's CompressedHexBytes: hex of zlib-compressed bytes.
pub fn compressed_hex_field(v: &serde_json::Value, name: &str) -> Vec<u8> {
    let compressed = hex_field(v, name);
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

pub fn sha512(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha512::digest(data).to_vec()
}

/// Deterministic, non-repeating test plaintext.
pub fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ seed ^ (i >> 14) as u8)
        .collect()
}

use coffer_core::chunked::{OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::{stream, Error, RustCrypto, SecretKey, Suite};

/// Seals `data` as a Coffer stream, pushing it in slices of `slice` bytes.
pub fn seal_stream(
    suite: Suite,
    key: &SecretKey,
    ctx: &[u8],
    data: &[u8],
    slice: usize,
    seed: u64,
) -> Vec<u8> {
    let mut buf = vec![0u8; SEAL_BUFFER_LEN];
    let (mut sealer, prefix) =
        stream::seal(&RustCrypto, suite, key, ctx, &mut rng(seed), &mut buf[..]).unwrap();
    let mut out = prefix.to_vec();
    for piece in data.chunks(slice.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (n, sealed) = sealer.push(rest).unwrap();
            if let Some(ct) = sealed {
                out.extend_from_slice(ct);
            }
            rest = &rest[n..];
        }
    }
    let sealed = sealer.finish().unwrap();
    out.extend_from_slice(sealed.ciphertext());
    out
}

/// Opens a Coffer stream in reads of `step` bytes; returns what was released and how it ended.
pub fn open_stream(
    key: &SecretKey,
    ctx: &[u8],
    sealed: &[u8],
    step: usize,
) -> (Vec<u8>, Result<(), Error>) {
    use embedded_io::Read as _;
    let mut buf = vec![0u8; OPEN_BUFFER_LEN];
    let mut released = Vec::new();
    let (_, mut opener) =
        match stream::open(&RustCrypto, key, ctx, Cursor::new(sealed), &mut buf[..]) {
            Ok(o) => o,
            Err(e) => return (released, Err(e)),
        };
    let mut out = vec![0u8; step];
    loop {
        match opener.read(&mut out) {
            Ok(0) => return (released, Ok(())),
            Ok(n) => released.extend_from_slice(&out[..n]),
            Err(e) => {
                assert_eq!(
                    opener.read(&mut out),
                    Err(e),
                    "a failed opener must keep failing"
                );
                return (released, Err(e));
            }
        }
    }
}

/// Opens a Coffer stream fully, returning the plaintext or the error.
pub fn open_all(key: &SecretKey, ctx: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let (released, result) = open_stream(key, ctx, sealed, 1 << 16);
    result.map(|()| released)
}
