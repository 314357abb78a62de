//! `random_open`: the random-access opener (`stream::open_random_access` over an
//! `embedded_io::{Read, Seek}` cursor with short reads), then fuzz-chosen `read_at`
//! ranges, `open_chunk` indices and `verify_length`.
//!
//! Input layout (little-endian; missing bytes read as 0):
//! ```text
//! 0      mode % 3: 0 raw bytes, 1 valid prefix + raw chunk bytes, 2 valid stream + mutation
//! 1      flags: bit 0 suite, bit 1 the file loses bytes after it was measured,
//!        bit 2 the stream starts after some garbage, bit 5 donor of the other suite
//! 2..10  seed of the cursor's short reads
//! 10..12 how many bytes the file loses (1 + n % 20000)
//! 12     garbage before the stream (n % 32 bytes, if bit 2)
//! 13     number of operations (n % 9), then 7 bytes each: kind, u32 offset, u16 length
//! then as `stream_open` modes 0, 1, 2
//! ```
//! Checks:
//! - no panic, whatever the input, offsets (up to u64::MAX) and lengths;
//! - mode 0: construction fails with exactly FORMAT.md §5.3's error (the commitment never
//!   matches);
//! - mode 1: construction succeeds or fails as §4.4's length arithmetic says, and no
//!   chunk ever opens: every `read_at` that returns data fails instead;
//! - mode 2: every `read_at` that succeeds returns exactly the plaintext slice at that
//!   offset, `verify_length` returns only the true length; on the unmodified stream,
//!   every range read returns the whole clamped slice, `len`/`chunk_count` are right and
//!   every chunk opens; on a modified one, not every chunk opens; a file cut short after
//!   it was measured gives `Truncated`, never other data.
#![no_main]

use coffer_core::chunked::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, OPEN_BUFFER_LEN};
use coffer_core::stream::{self, STREAM_PREFIX_LEN};
use coffer_core::{Error, RustCrypto};
use coffer_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: u8,
    offset: u32,
    len: u16,
}

/// What the stream really is, when the harness knows it (mode 2).
struct Truth<'a> {
    plaintext: &'a [u8],
    /// The bytes are the sealed stream (or the donor), unmodified.
    valid: bool,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.u8() % 3;
    let flags = input.u8();
    let sizes_seed = input.u64();
    let shrink_raw = usize::from(input.u16());
    let garbage_raw = usize::from(input.u8());
    let shrink = if flags & 2 != 0 {
        1 + shrink_raw % 20000
    } else {
        0
    };
    let garbage = if flags & 4 != 0 { garbage_raw % 32 } else { 0 };
    let ops: Vec<Op> = (0..input.u8() % 9)
        .map(|_| Op {
            kind: input.u8(),
            offset: input.u32(),
            len: input.u16(),
        })
        .collect();
    let suite = suite_from(flags);
    let key = fuzz_key();

    // The stream's bytes, and what is known about them.
    let original;
    let pt;
    let (stream_bytes, truth, chunk_bytes): (Vec<u8>, Option<Truth<'_>>, usize) = match mode {
        0 => (input.rest().to_vec(), None, 0),
        1 => {
            let mut bytes = stream_prefix(suite, &key, FUZZ_CONTEXT, input.u64()).to_vec();
            let chunks = input.rest();
            bytes.extend_from_slice(chunks);
            (bytes, None, chunks.len())
        }
        _ => {
            let selector = input.u8();
            let len = plaintext_len(selector, input.u32());
            let seed = input.u64();
            let mutation = Mutation::parse(&mut input);
            pt = plaintext(input.rest(), len);
            original = seal_stream(suite, &key, FUZZ_CONTEXT, seed, &pt);
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
            (
                bytes,
                Some(Truth {
                    plaintext: &pt,
                    valid,
                }),
                0,
            )
        }
    };
    let mut file = vec![0xA5u8; garbage];
    file.extend_from_slice(&stream_bytes);
    let measured = file.len();
    let visible = measured.saturating_sub(shrink);
    let start = garbage as u64;

    let cursor = Cursor::new(&file, Sizes::new(sizes_seed), shrink);
    let opened = stream::open_random_access(
        &RustCrypto,
        &key,
        FUZZ_CONTEXT,
        cursor,
        start,
        vec![0u8; OPEN_BUFFER_LEN],
    );

    // Construction.
    let seen = &file[garbage.min(visible)..visible];
    let seen = &seen[..seen.len().min(STREAM_PREFIX_LEN)];
    let layout_ok = (measured - garbage)
        .checked_sub(STREAM_PREFIX_LEN)
        .is_some_and(|body| body % ENCRYPTED_CHUNK_LEN >= 16);
    let mut opener = match (mode, opened) {
        (0, Ok(_)) => panic!("raw stream accepted"),
        (0, Err(e)) => {
            assert_eq!(e, spec::stream_open_failure(seen, key.id().as_bytes()));
            return;
        }
        (1, Ok((_, opener))) => {
            assert!(
                seen.len() == STREAM_PREFIX_LEN && layout_ok,
                "accepted a bad layout"
            );
            opener
        }
        (1, Err(e)) => {
            assert_eq!(
                e,
                Error::Truncated,
                "valid prefix, {chunk_bytes} chunk bytes"
            );
            assert!(
                seen.len() < STREAM_PREFIX_LEN || !layout_ok,
                "refused a good layout"
            );
            return;
        }
        (_, Ok((header, opener))) => {
            assert_eq!(header.key_id, key.id());
            opener
        }
        (_, Err(e)) => {
            let truth = truth.as_ref().expect("mode 2");
            if truth.valid {
                // Only a file cut short inside the prefix or the final chunk's tag.
                assert_eq!(e, Error::Truncated, "valid stream refused");
                assert!(shrink > 0);
            }
            return;
        }
    };

    let len = opener.len();
    let count = opener.chunk_count();
    if let Some(t) = &truth {
        if t.valid {
            assert_eq!(len, t.plaintext.len() as u64, "len() of a valid stream");
            assert_eq!(count, t.plaintext.len() as u64 / CHUNK_LEN as u64 + 1);
        }
    }

    // Checks one operation's result against what is known.
    let check_read = |offset: u64, out: &[u8], got: Result<usize, Error>, asked: usize| match &truth
    {
        None => match got {
            Ok(n) => assert_eq!(n, 0, "data read from forged chunks"),
            Err(e) => assert!(!matches!(e, Error::Provider), "{e:?}"),
        },
        Some(t) => match got {
            Ok(n) => {
                assert!(n <= asked);
                if n > 0 {
                    let at = usize::try_from(offset).expect("offset inside the plaintext");
                    assert!(at + n <= t.plaintext.len(), "read past the plaintext");
                    assert_eq!(
                        out[..n],
                        t.plaintext[at..at + n],
                        "read_at returned other bytes"
                    );
                }
                if t.valid && shrink == 0 {
                    let want = (t.plaintext.len() as u64)
                        .saturating_sub(offset)
                        .min(asked as u64);
                    assert_eq!(n as u64, want, "short read_at on a valid stream");
                }
            }
            Err(e) => {
                if t.valid {
                    assert_eq!(
                        e,
                        Error::Truncated,
                        "valid stream: read_at({offset}) failed"
                    );
                    assert!(shrink > 0);
                }
            }
        },
    };

    for op in &ops {
        match op.kind % 5 {
            kind @ (0 | 1) => {
                let offset = if kind == 0 {
                    u64::from(op.offset) % (len + 64)
                } else {
                    u64::MAX - u64::from(op.offset)
                };
                let asked = usize::from(op.len) % 40_001;
                let mut out = vec![0u8; asked];
                let got = opener.read_at(offset, &mut out);
                check_read(offset, &out, got, asked);
            }
            2 => check_length(&mut opener, &truth, shrink),
            kind => {
                let index = if kind == 3 {
                    u64::from(op.offset) % (count + 2)
                } else {
                    u64::MAX - u64::from(op.offset)
                };
                check_chunk(&mut opener, index, count, &truth, shrink);
            }
        }
    }

    check_length(&mut opener, &truth, shrink);
    // Open every chunk: all of them open only if the stream is the sealed one.
    let mut all_open = true;
    for index in 0..count.min(8) {
        all_open &= check_chunk(&mut opener, index, count, &truth, shrink);
    }
    if let Some(t) = &truth {
        if count <= 8 && shrink == 0 {
            assert_eq!(
                all_open,
                t.valid,
                "every chunk of a {} stream opened",
                if t.valid { "valid" } else { "modified" }
            );
        }
        // A whole read of a valid, intact stream.
        if t.valid && shrink == 0 {
            let mut out = vec![0u8; t.plaintext.len() + 1];
            assert_eq!(opener.read_at(0, &mut out), Ok(t.plaintext.len()));
            assert_eq!(out[..t.plaintext.len()], *t.plaintext);
        }
    }
    assert!(visible <= measured);
});

/// `verify_length`: only ever the true length; `Truncated` for a file cut short.
fn check_length<R, C, B>(
    opener: &mut coffer_core::chunked::RandomAccessOpener<R, C, B>,
    truth: &Option<Truth<'_>>,
    shrink: usize,
) where
    R: embedded_io::Read + embedded_io::Seek,
    C: coffer_core::provider::ChunkCipher,
    B: AsMut<[u8]>,
{
    let got = opener.verify_length();
    match truth {
        None => assert!(got.is_err(), "forged stream's length verified"),
        Some(t) => {
            if let Ok(v) = got {
                assert_eq!(
                    v,
                    t.plaintext.len() as u64,
                    "verify_length returned another length"
                );
                assert_eq!(shrink, 0, "length verified on a file cut short");
            }
            if shrink > 0 {
                assert_eq!(got, Err(Error::Truncated), "file cut short");
            } else if t.valid {
                assert_eq!(got, Ok(t.plaintext.len() as u64));
            }
        }
    }
}

/// `open_chunk(index)`; returns whether it opened.
fn check_chunk<R, C, B>(
    opener: &mut coffer_core::chunked::RandomAccessOpener<R, C, B>,
    index: u64,
    count: u64,
    truth: &Option<Truth<'_>>,
    shrink: usize,
) -> bool
where
    R: embedded_io::Read + embedded_io::Seek,
    C: coffer_core::provider::ChunkCipher,
    B: AsMut<[u8]>,
{
    let got = opener.open_chunk(index);
    if index >= count {
        assert!(
            matches!(got, Err(Error::ParameterOutOfBounds { .. })),
            "chunk {index} of {count}: {got:?}"
        );
        return false;
    }
    match (truth, got) {
        (None, got) => {
            assert!(got.is_err(), "forged chunk {index} opened");
            false
        }
        (Some(t), Ok(plain)) => {
            let at = index as usize * CHUNK_LEN;
            let want =
                &t.plaintext[at.min(t.plaintext.len())..(at + CHUNK_LEN).min(t.plaintext.len())];
            assert_eq!(plain, want, "chunk {index} opened to other bytes");
            true
        }
        (Some(t), Err(e)) => {
            if t.valid {
                assert_eq!(e, Error::Truncated, "valid stream: chunk {index} failed");
                assert!(shrink > 0);
            }
            false
        }
    }
}
