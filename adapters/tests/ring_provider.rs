//! The `ring` provider against the core's RustCrypto one: for both suites, chunks sealed
//! by either are byte-identical and open with the other, whole sealed streams are
//! byte-identical, tampering fails with both, and every vector file passes with each.
//!
//! The random cases draw from a seed printed at the start of each test; set
//! `COFFER_TEST_SEED` to replay one.

use std::path::Path;

use coffer_adapters::vectors::verify_dir_with;
use coffer_adapters::Ring;
use coffer_core::chunked::{CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::provider::{AeadKey, ChunkCipher, CryptoProvider, Nonce, Tag, TAG_LEN};
use coffer_core::{stream, Error as CoreError, RustCrypto, SecretKey, Suite};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

const CONTEXT: &[u8] = b"ring provider differential test";

/// A deterministic RNG from `COFFER_TEST_SEED` or a fresh seed, printed for replay.
fn test_rng() -> ChaCha20Rng {
    let seed = std::env::var("COFFER_TEST_SEED")
        .ok()
        .map(|s| s.parse().expect("COFFER_TEST_SEED is a u64"))
        .unwrap_or_else(|| OsRng.next_u64());
    eprintln!("COFFER_TEST_SEED={seed}");
    ChaCha20Rng::seed_from_u64(seed)
}

fn random<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn random_vec(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// The fixed lengths around the AEAD's block and the chunk size, and some random ones.
fn chunk_lengths(rng: &mut ChaCha20Rng) -> Vec<usize> {
    let mut lengths = vec![0, 1, 15, 16, 17, CHUNK_LEN - 1, CHUNK_LEN];
    lengths.extend((0..16).map(|_| rng.next_u32() as usize % (CHUNK_LEN + 1)));
    lengths
}

fn cipher<P: CryptoProvider>(provider: &P, suite: Suite, key: &[u8; 32]) -> P::Cipher {
    provider
        .cipher(suite, &AeadKey::from_bytes(*key))
        .expect("keying the cipher")
}

fn seal_chunk<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &[u8; 32],
    nonce: &Nonce,
    plaintext: &[u8],
) -> (Vec<u8>, Tag) {
    let mut data = plaintext.to_vec();
    let tag = cipher(provider, suite, key)
        .seal_in_place(nonce, &mut data)
        .expect("sealing");
    (data, tag)
}

/// Opens a chunk; returns the outcome and what the buffer holds afterwards.
fn open_chunk<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &[u8; 32],
    nonce: &Nonce,
    ciphertext: &[u8],
    tag: &Tag,
) -> (Result<(), ()>, Vec<u8>) {
    let mut data = ciphertext.to_vec();
    let result = cipher(provider, suite, key).open_in_place(nonce, &mut data, tag);
    (result, data)
}

#[test]
fn chunks_are_identical_and_each_provider_opens_the_others() {
    let mut rng = test_rng();
    for suite in Suite::ALL {
        for len in chunk_lengths(&mut rng) {
            let key = random::<32>(&mut rng);
            let nonce = random::<12>(&mut rng);
            let plaintext = random_vec(&mut rng, len);
            let case = format!("{suite:?}, {len} bytes");

            let (ring_ct, ring_tag) = seal_chunk(&Ring, suite, &key, &nonce, &plaintext);
            let (rc_ct, rc_tag) = seal_chunk(&RustCrypto, suite, &key, &nonce, &plaintext);
            assert!(ring_ct == rc_ct, "{case}: ciphertexts differ");
            assert_eq!(ring_tag, rc_tag, "{case}: tags differ");

            let (result, opened) = open_chunk(&Ring, suite, &key, &nonce, &rc_ct, &rc_tag);
            assert!(
                result.is_ok() && opened == plaintext,
                "{case}: ring opening RustCrypto"
            );
            let (result, opened) =
                open_chunk(&RustCrypto, suite, &key, &nonce, &ring_ct, &ring_tag);
            assert!(
                result.is_ok() && opened == plaintext,
                "{case}: RustCrypto opening ring"
            );
        }
    }
}

/// A tampered tag, ciphertext byte or nonce fails with both providers, and the buffer
/// is left without plaintext: the ciphertext untouched (RustCrypto checks first) or
/// zeroed (ring decrypts and authenticates in one pass, then wipes).
#[test]
fn tampering_fails_with_both_providers() {
    let mut rng = test_rng();
    for suite in Suite::ALL {
        for len in chunk_lengths(&mut rng) {
            let key = random::<32>(&mut rng);
            let nonce = random::<12>(&mut rng);
            // Nonzero plaintext, so that a zeroed buffer is never the plaintext.
            let plaintext: Vec<u8> = random_vec(&mut rng, len).iter().map(|b| b | 1).collect();
            let (ct, tag) = seal_chunk(&RustCrypto, suite, &key, &nonce, &plaintext);

            let mut bad_tag = tag;
            bad_tag[rng.next_u32() as usize % TAG_LEN] ^= 1 << (rng.next_u32() % 8);
            let mut bad_nonce = nonce;
            bad_nonce[rng.next_u32() as usize % bad_nonce.len()] ^= 1 << (rng.next_u32() % 8);
            let mut cases = vec![
                ("tag", ct.clone(), nonce, bad_tag),
                ("nonce", ct.clone(), bad_nonce, tag),
            ];
            if len > 0 {
                let mut bad_ct = ct.clone();
                bad_ct[rng.next_u32() as usize % len] ^= 1 << (rng.next_u32() % 8);
                cases.push(("ciphertext", bad_ct, nonce, tag));
            }
            for (what, ct, nonce, tag) in cases {
                for (name, (result, left)) in [
                    ("ring", open_chunk(&Ring, suite, &key, &nonce, &ct, &tag)),
                    (
                        "RustCrypto",
                        open_chunk(&RustCrypto, suite, &key, &nonce, &ct, &tag),
                    ),
                ] {
                    let case = format!("{name}, {suite:?}, {len} bytes, tampered {what}");
                    assert_eq!(result, Err(()), "{case}: opened");
                    assert!(
                        left == ct || left.iter().all(|&b| b == 0),
                        "{case}: the buffer holds neither the ciphertext nor zeroes"
                    );
                }
            }
        }
    }
}

fn seal_stream<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    rng_seed: u64,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
    let mut buf = vec![0u8; SEAL_BUFFER_LEN];
    let (mut sealer, prefix) =
        stream::seal(provider, suite, key, CONTEXT, &mut rng, &mut buf[..]).expect("seal");
    let mut out = prefix.to_vec();
    let mut rest = plaintext;
    while !rest.is_empty() {
        let (n, ct) = sealer.push(rest).expect("push");
        out.extend_from_slice(ct.unwrap_or_default());
        rest = &rest[n..];
    }
    out.extend_from_slice(sealer.finish().expect("finish").ciphertext());
    out
}

/// Opens a sealed stream; returns what was released and how it ended.
fn open_stream<P: CryptoProvider>(
    provider: &P,
    key: &SecretKey,
    sealed: &[u8],
) -> (Vec<u8>, Result<(), CoreError>) {
    let mut buf = vec![0u8; OPEN_BUFFER_LEN];
    let mut released = Vec::new();
    let result =
        stream::open(provider, key, CONTEXT, sealed, &mut buf[..]).and_then(|(_, mut opener)| {
            while let Some(chunk) = opener.next_chunk()? {
                released.extend_from_slice(chunk);
            }
            Ok(())
        });
    (released, result)
}

#[test]
fn sealed_streams_are_identical_and_each_provider_opens_the_others() {
    let mut rng = test_rng();
    let lengths = (0..=3usize)
        .flat_map(|k| [k * CHUNK_LEN, k * CHUNK_LEN + 1, (k + 1) * CHUNK_LEN - 1])
        .chain([CHUNK_LEN + 17, 2 * CHUNK_LEN + 4096]);
    for suite in Suite::ALL {
        for len in lengths.clone() {
            let key = SecretKey::from_bytes(random::<32>(&mut rng));
            let plaintext = random_vec(&mut rng, len);
            let seed = rng.next_u64();
            let case = format!("{suite:?}, {len} bytes");

            let by_ring = seal_stream(&Ring, suite, &key, seed, &plaintext);
            let by_rc = seal_stream(&RustCrypto, suite, &key, seed, &plaintext);
            assert!(by_ring == by_rc, "{case}: sealed streams differ");

            let (released, result) = open_stream(&Ring, &key, &by_rc);
            assert!(
                result.is_ok() && released == plaintext,
                "{case}: ring opening"
            );
            let (released, result) = open_stream(&RustCrypto, &key, &by_ring);
            assert!(
                result.is_ok() && released == plaintext,
                "{case}: RustCrypto opening"
            );

            // The last tag altered: both release the same full chunks, then fail alike.
            let mut tampered = by_ring;
            *tampered.last_mut().expect("a stream has a final tag") ^= 0x80;
            let ring_open = open_stream(&Ring, &key, &tampered);
            let rc_open = open_stream(&RustCrypto, &key, &tampered);
            let full_chunks = len / CHUNK_LEN;
            assert_eq!(
                ring_open.1,
                Err(CoreError::CorruptedChunk {
                    index: full_chunks as u64
                }),
                "{case}: ring opening a tampered stream"
            );
            assert!(
                ring_open == rc_open,
                "{case}: the providers fail differently"
            );
            assert_eq!(ring_open.0.len(), full_chunks * CHUNK_LEN, "{case}");
        }
    }
}

/// Every vector file in `test-vectors/` passes with `provider`, and the files this
/// checker applies are among them.
fn every_vector_file_passes<P: CryptoProvider>(provider: &P) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors");
    let reports = verify_dir_with(provider, &dir).expect("reading the vector files");
    let mut applied = Vec::new();
    for r in &reports {
        assert!(
            r.failures.is_empty(),
            "{}: {} of {} tests failed: {:#?}",
            r.path.display(),
            r.failures.len(),
            r.tests,
            r.failures
        );
        if r.not_applicable.is_empty() {
            assert!(r.tests > 0, "{}: no tests", r.path.display());
            applied.push(r.path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    applied.sort();
    assert_eq!(
        applied,
        [
            "c2sp_chunked_encryption_aes_256_gcm_test.json",
            "coffer_chunker_test.json",
            "coffer_key_envelope_test.json",
            "coffer_passphrase_envelope_test.json",
            "coffer_repository_test.json",
            "coffer_stream_aes_256_gcm_test.json",
            "coffer_stream_chacha20_poly1305_test.json",
        ]
    );
}

#[test]
fn every_vector_file_passes_with_ring() {
    every_vector_file_passes(&Ring);
}

/// `verify_dir` (coffer_vectors.rs) uses the default provider, ring; this keeps the
/// portable provider held to the same files.
#[test]
fn every_vector_file_passes_with_rustcrypto() {
    every_vector_file_passes(&RustCrypto);
}
