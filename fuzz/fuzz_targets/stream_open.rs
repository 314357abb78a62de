//! `stream_open`: the streaming opener (`stream::open`, then `next_chunk` and
//! `embedded_io::Read::read` with reads of varying sizes) with the fixed key and
//! context, over a reader that returns short reads and can fail with an I/O error.
//!
//! Input layout (little-endian; missing bytes read as 0):
//! ```text
//! 0      mode % 3: 0 raw bytes, 1 valid prefix + raw chunk bytes, 2 valid stream + mutation
//! 1      flags: bit 0 suite (modes 1, 2), bits 1-2 how to read (0 next_chunk, 1 read,
//!        2 both alternately, 3 read), bit 3 short reads from the reader, bit 4 an I/O
//!        error at some offset, bit 5 the splice donor uses the other suite
//! 2..10  seed of the read sizes
//! 10..14 offset of the I/O error (mod input length + 1)
//! mode 0: the stream's bytes
//! mode 1: u64 salt seed, then the bytes after the valid 88-byte prefix
//! mode 2: u8 length selector, u32 length, u64 salt seed, 10-byte mutation, plaintext seed
//! ```
//! Checks:
//! - mode 0: opening fails with exactly the error FORMAT.md §5.3 gives (rows 1–9, the
//!   commitment never matches), or the reader's I/O error if it comes first;
//! - mode 1: the prefix is accepted, then the first chunk fails (`CorruptedChunk{0}`,
//!   `Truncated`, or the I/O error) and nothing is released;
//! - mode 2: a stream whose bytes differ from the sealed one (and from a donor stream of
//!   the same plaintext) never opens; the unmodified stream opens to its plaintext and
//!   ends cleanly (unless the reader fails); released plaintext is always a prefix of
//!   the plaintext, and on failure a whole number of chunks;
//! - always: `released()` counts exactly what was handed out; after an error every later
//!   `next_chunk`/`read` returns the same error (never `Ok(0)`/`None`), and after a
//!   clean end every later call reports the end again.
#![no_main]

use coffer_core::chunked::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, OPEN_BUFFER_LEN};
use coffer_core::stream::{self, STREAM_PREFIX_LEN};
use coffer_core::{Error, RustCrypto};
use coffer_fuzz::*;
use embedded_io::{ErrorKind, Read};
use libfuzzer_sys::fuzz_target;

/// What opening a stream did.
enum Outcome {
    /// `stream::open` refused the stream.
    Refused(Error),
    /// Opened; the plaintext handed out, and how reading ended (Ok = clean end).
    Read(Vec<u8>, Result<(), Error>),
}

fn open_and_read(
    bytes: &[u8],
    style: u8,
    sizes_seed: u64,
    short: bool,
    fail_at: Option<usize>,
) -> Outcome {
    let key = fuzz_key();
    let caps = short.then(|| Sizes::new(sizes_seed.rotate_left(17)));
    let reader = TrickleReader::new(bytes, caps, fail_at);
    let (header, mut opener) = match stream::open(
        &RustCrypto,
        &key,
        FUZZ_CONTEXT,
        reader,
        vec![0u8; OPEN_BUFFER_LEN],
    ) {
        Ok(opened) => opened,
        Err(e) => return Outcome::Refused(e),
    };
    assert_eq!(header.key_id, key.id());
    assert_eq!(header.encode()[..], bytes[..32]);

    let mut sizes = Sizes::new(sizes_seed);
    let mut out = Vec::new();
    // Each call makes progress or ends: bound the calls to catch a hang.
    let mut budget = 4 * (bytes.len() + 64);
    let end = loop {
        budget = budget.checked_sub(1).expect("no progress: too many calls");
        let by_chunk = match style {
            0 => true,
            2 => sizes.below(2) == 0,
            _ => false,
        };
        if by_chunk {
            match opener.next_chunk() {
                Ok(Some(chunk)) => out.extend_from_slice(chunk),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        } else {
            let mut buf = vec![0u8; sizes.read_len()];
            match opener.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    assert!(n <= buf.len());
                    out.extend_from_slice(&buf[..n]);
                }
                Err(e) => break Err(e),
            }
        }
        assert_eq!(
            opener.released(),
            out.len() as u64,
            "released() while reading"
        );
    };
    assert_eq!(opener.released(), out.len() as u64, "released() at the end");

    // Sticky end: the same answer on every later call, whichever way it is asked.
    for _ in 0..3 {
        let mut one = [0u8; 1];
        let mut many = vec![0u8; 1 + sizes.read_len()];
        match end {
            Err(e) => {
                assert_eq!(
                    opener.next_chunk().err(),
                    Some(e),
                    "next_chunk after an error"
                );
                assert_eq!(opener.read(&mut one), Err(e), "read after an error");
                assert_eq!(opener.read(&mut many), Err(e), "read after an error");
            }
            Ok(()) => {
                assert_eq!(opener.next_chunk(), Ok(None), "next_chunk after the end");
                assert_eq!(opener.read(&mut one), Ok(0), "read after the end");
                assert_eq!(opener.read(&mut many), Ok(0), "read after the end");
            }
        }
    }
    assert_eq!(opener.released(), out.len() as u64);
    Outcome::Read(out, end)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.u8() % 3;
    let flags = input.u8();
    let sizes_seed = input.u64();
    let fail_raw = input.u32() as usize;
    let suite = suite_from(flags);
    let style = (flags >> 1) & 3;
    let short = flags & 8 != 0;
    let inject = flags & 16 != 0;
    let key = fuzz_key();

    match mode {
        0 => {
            let bytes = input.rest();
            let fail_at = inject.then_some(fail_raw % (bytes.len() + 1));
            let fail_at = fail_at.filter(|&at| at < bytes.len());
            let seen = bytes.len().min(STREAM_PREFIX_LEN);
            let expected = match fail_at {
                Some(at) if at < seen => Error::Io(ErrorKind::Other),
                _ => spec::stream_open_failure(&bytes[..seen], key.id().as_bytes()),
            };
            match open_and_read(bytes, style, sizes_seed, short, fail_at) {
                Outcome::Refused(e) => {
                    assert_eq!(e, expected, "raw stream refused with another error")
                }
                Outcome::Read(out, end) => {
                    panic!("raw stream accepted: released {}, end {end:?}", out.len())
                }
            }
        }
        1 => {
            let prefix = stream_prefix(suite, &key, FUZZ_CONTEXT, input.u64());
            let chunks = input.rest();
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(chunks);
            let fail_at = inject.then_some(fail_raw % (bytes.len() + 1));
            let fail_at = fail_at.filter(|&at| at < bytes.len());
            let first_chunk_end = bytes.len().min(STREAM_PREFIX_LEN + ENCRYPTED_CHUNK_LEN);
            match open_and_read(&bytes, style, sizes_seed, short, fail_at) {
                Outcome::Refused(e) => {
                    assert_eq!(e, Error::Io(ErrorKind::Other), "valid prefix refused");
                    assert!(fail_at.is_some_and(|at| at < STREAM_PREFIX_LEN));
                }
                Outcome::Read(out, end) => {
                    assert!(out.is_empty(), "released plaintext from forged chunks");
                    let expected = match fail_at {
                        Some(at) if at < first_chunk_end => Error::Io(ErrorKind::Other),
                        _ if chunks.len() < 16 => Error::Truncated,
                        _ => Error::CorruptedChunk { index: 0 },
                    };
                    assert_eq!(end, Err(expected), "forged first chunk");
                }
            }
        }
        _ => {
            let selector = input.u8();
            let len = plaintext_len(selector, input.u32());
            let seed = input.u64();
            let mutation = Mutation::parse(&mut input);
            let pt = plaintext(input.rest(), len);
            let original = seal_stream(suite, &key, FUZZ_CONTEXT, seed, &pt);
            assert_eq!(original.len(), sealed_stream_len(len));
            let donor_suite = if flags & 32 != 0 {
                suite_from(flags ^ 1)
            } else {
                suite
            };
            // Sealing a donor costs as much as the original: only for splices.
            let donor = if mutation.needs_donor() {
                seal_stream(donor_suite, &key, FUZZ_CONTEXT, seed ^ 0x5EED, &pt)
            } else {
                Vec::new()
            };
            let bytes = mutation.apply(&original, &donor, STREAM_PREFIX_LEN, ENCRYPTED_CHUNK_LEN);
            let valid = bytes == original || (!donor.is_empty() && bytes == donor);
            let fail_at = inject.then_some(fail_raw % (bytes.len() + 1));
            let fail_at = fail_at.filter(|&at| at < bytes.len());
            match open_and_read(&bytes, style, sizes_seed, short, fail_at) {
                Outcome::Refused(e) => {
                    assert!(
                        !valid || (fail_at.is_some() && e == Error::Io(ErrorKind::Other)),
                        "valid stream refused: {e:?}"
                    );
                }
                Outcome::Read(out, end) => {
                    assert!(
                        pt.starts_with(&out),
                        "released bytes that are not the plaintext's prefix"
                    );
                    match end {
                        Ok(()) => {
                            assert!(valid, "a modified stream ({mutation:?}) opened");
                            assert!(fail_at.is_none(), "clean end despite an I/O error");
                            assert_eq!(out.len(), pt.len(), "clean end before the whole plaintext");
                        }
                        Err(e) => {
                            assert!(
                                !valid || (fail_at.is_some() && e == Error::Io(ErrorKind::Other)),
                                "valid stream failed: {e:?}"
                            );
                            assert_eq!(
                                out.len() % CHUNK_LEN,
                                0,
                                "partial chunk released before {e:?}"
                            );
                        }
                    }
                }
            }
        }
    }
});
