//! Sealed-stream throughput against the raw AEAD over the same 16 KiB chunks, in the
//! same run: `cargo bench -p coffer-core --bench stream`.
//!
//! For each suite, 64 MiB are sealed and opened four ways:
//! - `stream/seal`: `chunked::Sealer::push` from the input slice (copies into the
//!   sealer's buffer, as reading a file into it would), ciphertext discarded;
//! - `stream/open`: `StreamOpener::next_chunk` over an in-memory reader (copies each
//!   chunk into the opener's buffer, as reading it from a file would);
//! - `raw/seal`, `raw/open`: the provider's AEAD in place over a ready buffer of the
//!   same chunks, with the same nonces and nothing else: the ceiling;
//! - `raw-copy/seal`, `raw-copy/open`: the same AEAD calls, each chunk first copied from
//!   the read-only input into a 16 KiB buffer, as any reader of a file must.
#![allow(missing_docs)]

use coffer_core::chunked::hazmat::ChunkKeys;
use coffer_core::chunked::{self, CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::provider::{AeadKey, RustCryptoCipher, TAG_LEN};
use coffer_core::{RustCrypto, SecretKey, Suite};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use embedded_io::{ErrorType, Read};
use rand_core::SeedableRng;

const LEN: usize = 64 << 20;

struct SliceReader<'a>(&'a [u8]);
impl ErrorType for SliceReader<'_> {
    type Error = core::convert::Infallible;
}
impl Read for SliceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.0.len().min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn seal_all(suite: Suite, key: &SecretKey, data: &[u8], buf: &mut [u8]) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let (mut sealer, pre) =
        chunked::Sealer::new(&RustCrypto, suite, key, &[], &mut rng, buf).unwrap();
    let mut out = pre.to_vec();
    let mut rest = data;
    while !rest.is_empty() {
        let (n, ct) = sealer.push(rest).unwrap();
        if let Some(ct) = ct {
            out.extend_from_slice(ct);
        }
        rest = &rest[n..];
    }
    out.extend_from_slice(sealer.finish().unwrap().ciphertext());
    out
}

fn raw_keys(suite: Suite) -> ChunkKeys<RustCryptoCipher> {
    ChunkKeys::from_raw(&RustCrypto, suite, &AeadKey::from_bytes([7; 32]), [9; 12]).unwrap()
}

fn bench(c: &mut Criterion) {
    let key = SecretKey::from_bytes([42; 32]);
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    for suite in Suite::ALL {
        let mut group = c.benchmark_group(suite.aead_name().to_string());
        group.throughput(Throughput::Bytes(LEN as u64));
        group.sample_size(10);
        let mut buf = vec![0u8; SEAL_BUFFER_LEN];

        group.bench_function("stream/seal", |b| {
            b.iter(|| {
                let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
                let (mut sealer, _) =
                    chunked::Sealer::new(&RustCrypto, suite, &key, &[], &mut rng, &mut buf[..])
                        .unwrap();
                let mut rest = &data[..];
                let mut emitted = 0usize;
                while !rest.is_empty() {
                    let (n, ct) = sealer.push(rest).unwrap();
                    emitted += ct.map_or(0, <[u8]>::len);
                    rest = &rest[n..];
                }
                emitted + sealer.finish().unwrap().ciphertext().len()
            })
        });

        let keys = raw_keys(suite);
        group.bench_function("raw/seal", |b| {
            b.iter_batched_ref(
                || data.clone(),
                |plain| {
                    for (i, chunk) in plain.chunks_mut(CHUNK_LEN).enumerate() {
                        criterion::black_box(keys.seal_chunk(i as u64, chunk).unwrap());
                    }
                },
                BatchSize::LargeInput,
            )
        });

        // The same AEAD calls, each chunk first copied from the immutable input into a
        // 16 KiB buffer: the data movement any sealer of a read-only input makes.
        group.bench_function("raw-copy/seal", |b| {
            let mut chunk_buf = vec![0u8; CHUNK_LEN];
            b.iter(|| {
                for (i, chunk) in data.chunks(CHUNK_LEN).enumerate() {
                    let dst = &mut chunk_buf[..chunk.len()];
                    dst.copy_from_slice(chunk);
                    criterion::black_box(keys.seal_chunk(i as u64, dst).unwrap());
                }
            })
        });

        let sealed = seal_all(suite, &key, &data, &mut buf);
        let mut open_buf = vec![0u8; OPEN_BUFFER_LEN];
        group.bench_function("stream/open", |b| {
            b.iter(|| {
                let mut opener = chunked::StreamOpener::new(
                    &RustCrypto,
                    suite,
                    &key,
                    &[],
                    SliceReader(&sealed),
                    &mut open_buf[..],
                )
                .unwrap();
                let mut total = 0usize;
                while let Some(chunk) = opener.next_chunk().unwrap() {
                    total += chunk.len();
                }
                assert_eq!(total, LEN);
            })
        });

        // Raw open: the same chunks sealed under the raw keys, opened in place.
        let mut raw_sealed = data.clone();
        let tags: Vec<[u8; TAG_LEN]> = raw_sealed
            .chunks_mut(CHUNK_LEN)
            .enumerate()
            .map(|(i, c)| keys.seal_chunk(i as u64, c).unwrap())
            .collect();
        group.bench_function("raw/open", |b| {
            b.iter_batched_ref(
                || raw_sealed.clone(),
                |ct| {
                    for (i, chunk) in ct.chunks_mut(CHUNK_LEN).enumerate() {
                        keys.open_chunk(i as u64, chunk, &tags[i]).unwrap();
                    }
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_function("raw-copy/open", |b| {
            let mut chunk_buf = vec![0u8; CHUNK_LEN];
            b.iter(|| {
                for (i, chunk) in raw_sealed.chunks(CHUNK_LEN).enumerate() {
                    let dst = &mut chunk_buf[..chunk.len()];
                    dst.copy_from_slice(chunk);
                    keys.open_chunk(i as u64, dst, &tags[i]).unwrap();
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
