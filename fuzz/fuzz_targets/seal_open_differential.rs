//! `seal_open_differential`: seal an arbitrary plaintext with `Sealer::push` in
//! fuzz-chosen slices (or through `spare`/`advance`/`flush_full`, or both in turn), with
//! a fuzz-chosen suite, then open it with the streaming and the random-access opener.
//!
//! Input layout (little-endian; missing bytes read as 0):
//! ```text
//! 0      flags: bits 0-1 how to feed the sealer (0, 3 push; 1 spare/advance/flush_full;
//!        2 both in turn), bit 2 the plaintext length comes from bytes 1..5, bit 3 the
//!        suite (0 AES-256-GCM, 1 ChaCha20-Poly1305)
//! 1..5   u32 plaintext length (n % (MAX_LEN + 1)), if bit 2; the plaintext is then the
//!        rest of the input repeated to that length
//! 5..13  u64 seed of the key, the salt and the read ranges
//! 13     context length (n % 40), then the context
//! then   slice count (n % 16 + 1), then one u16 slice size each (0: an empty push)
//! rest   the plaintext (or its pattern, see bit 2)
//! ```
//! Plaintexts go up to two chunks and a bit (MAX_LEN): every boundary case (empty, a
//! partial chunk, exactly one or two chunks, so a full final chunk plus the empty one,
//! and a partial chunk after full ones) fits, and each input stays cheap enough for
//! millions of runs; longer streams (counter rollover) are in the vector files.
//!
//! Checks:
//! - the sealer takes every slice (no `push` that neither takes input nor emits a
//!   chunk), emits only whole 16400-byte chunks, ends with the final chunk (plus the
//!   last full chunk when the length is a multiple of 16384), and `plaintext_len`
//!   follows the input;
//! - the sealed length is FORMAT.md §5.1's `88 + L + 16·(⌊L/16384⌋ + 1)`;
//! - the bytes are exactly what an independent implementation of FORMAT.md §4–§5
//!   (`spec.rs`: HKDF, AES-GCM / ChaCha20-Poly1305 driven directly) makes from the same
//!   key, context and salt, so they do not depend on the slicing;
//! - the streaming opener returns the plaintext and ends cleanly; the random-access
//!   opener verifies the length and returns each range read; another context fails
//!   the commitment.
#![no_main]

use coffer_core::chunked::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::{stream, Error, RustCrypto, SecretKey, Suite};
use coffer_fuzz::*;
use embedded_io::Read;
use libfuzzer_sys::fuzz_target;

const MAX_LEN: usize = 2 * CHUNK_LEN + 64;

fn seal_sliced(
    suite: Suite,
    key: &SecretKey,
    ctx: &[u8],
    seed: u64,
    pt: &[u8],
    feed: u8,
    slices: &[u16],
) -> Vec<u8> {
    let (mut sealer, prefix) = stream::seal(
        &RustCrypto,
        suite,
        key,
        ctx,
        &mut rng(seed),
        vec![0u8; SEAL_BUFFER_LEN],
    )
    .expect("seal");
    let mut out = prefix.to_vec();
    let mut pos = 0usize;
    let mut step = 0usize;
    while pos < pt.len() {
        let raw = usize::from(slices[step % slices.len()]);
        step += 1;
        let end = (pos + raw.max(1)).min(pt.len());
        let spare_mode = match feed {
            1 => true,
            2 => step % 2 == 0,
            _ => false,
        };
        if spare_mode {
            if let Some(chunk) = sealer.flush_full().expect("flush_full") {
                assert_eq!(
                    chunk.len(),
                    ENCRYPTED_CHUNK_LEN,
                    "flush_full emitted a partial chunk"
                );
                out.extend_from_slice(chunk);
            }
            if raw == 0 {
                sealer.advance(0);
            }
            let spare = sealer.spare();
            assert!(!spare.is_empty(), "no spare room after flush_full");
            let n = spare.len().min(end - pos);
            spare[..n].copy_from_slice(&pt[pos..pos + n]);
            sealer.advance(n);
            pos += n;
        } else {
            if raw == 0 {
                let (taken, chunk) = sealer.push(&[]).expect("push");
                assert_eq!((taken, chunk.is_none()), (0, true), "empty push");
            }
            let mut slice = &pt[pos..end];
            while !slice.is_empty() {
                let (taken, chunk) = sealer.push(slice).expect("push");
                assert!(taken <= slice.len());
                match chunk {
                    Some(chunk) => {
                        assert_eq!(
                            chunk.len(),
                            ENCRYPTED_CHUNK_LEN,
                            "push emitted a partial chunk"
                        );
                        out.extend_from_slice(chunk);
                    }
                    None => assert!(taken > 0, "push took nothing and emitted nothing"),
                }
                slice = &slice[taken..];
                pos += taken;
            }
        }
        assert_eq!(sealer.plaintext_len(), pos as u64, "plaintext_len");
    }
    let sealed = sealer.finish().expect("finish");
    let tail = sealed.ciphertext();
    let len = pt.len();
    let want_tail = if len > 0 && len % CHUNK_LEN == 0 {
        ENCRYPTED_CHUNK_LEN + 16
    } else {
        len % CHUNK_LEN + 16
    };
    assert_eq!(tail.len(), want_tail, "final ciphertext length");
    out.extend_from_slice(tail);
    out
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.u8();
    let len_raw = input.u32() as usize;
    let seed = input.u64();
    let ctx_len = usize::from(input.u8() % 40);
    let ctx = input.bytes(ctx_len).to_vec();
    let slices: Vec<u16> = (0..input.u8() % 16 + 1).map(|_| input.u16()).collect();
    let rest = input.rest();
    let pt = if flags & 4 != 0 {
        plaintext(rest, len_raw % (MAX_LEN + 1))
    } else {
        rest[..rest.len().min(MAX_LEN)].to_vec()
    };
    let feed = flags & 3;
    let key = SecretKey::generate(&mut rng(seed ^ 0x6B_6579));
    let len = pt.len();

    {
        let suite = Suite::ALL[usize::from((flags >> 3) & 1)];
        let sealed = seal_sliced(suite, &key, &ctx, seed, &pt, feed, &slices);
        assert_eq!(
            sealed.len(),
            sealed_stream_len(len),
            "sealed length formula"
        );
        let mut salt = [0u8; 24];
        salt.copy_from_slice(&sealed[32..56]);
        let reference = spec::seal_stream(suite.to_byte(), key.expose_secret(), &ctx, &salt, &pt);
        assert!(
            sealed == reference,
            "differs from the reference implementation of FORMAT.md"
        );

        // Streaming opener.
        let (header, mut opener) = stream::open(
            &RustCrypto,
            &key,
            &ctx,
            &sealed[..],
            vec![0u8; OPEN_BUFFER_LEN],
        )
        .expect("open");
        assert_eq!((header.suite, header.key_id), (suite, key.id()));
        let mut out = Vec::with_capacity(len);
        while let Some(chunk) = opener.next_chunk().expect("next_chunk") {
            out.extend_from_slice(chunk);
        }
        assert!(out == pt, "streaming opener returned other bytes");
        assert_eq!(opener.read(&mut [0u8; 8]), Ok(0));
        assert_eq!(opener.released(), len as u64);

        // Random-access opener.
        let (_, mut ra) = stream::open_random_access(
            &RustCrypto,
            &key,
            &ctx,
            Cursor::new(&sealed, Sizes::new(seed), 0),
            0,
            vec![0u8; OPEN_BUFFER_LEN],
        )
        .expect("open_random_access");
        assert_eq!(ra.len(), len as u64);
        assert_eq!(ra.chunk_count(), (len / CHUNK_LEN + 1) as u64);
        assert_eq!(ra.verify_length(), Ok(len as u64));
        let mut sizes = Sizes::new(seed.rotate_left(9));
        for _ in 0..4 {
            let offset = sizes.below(len as u64 + 1) as usize;
            let mut buf = vec![0u8; sizes.read_len()];
            let n = ra.read_at(offset as u64, &mut buf).expect("read_at");
            assert_eq!(n, buf.len().min(len - offset));
            assert!(
                buf[..n] == pt[offset..offset + n],
                "read_at returned other bytes"
            );
        }

        // Another context: refused at the commitment, before any chunk.
        let mut other_ctx = ctx.clone();
        other_ctx.push(0);
        assert_eq!(
            stream::open(
                &RustCrypto,
                &key,
                &other_ctx,
                &sealed[..],
                vec![0u8; OPEN_BUFFER_LEN]
            )
            .err(),
            Some(Error::CommitmentMismatch)
        );
    }
});
