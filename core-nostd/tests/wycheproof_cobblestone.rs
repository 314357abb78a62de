//! Wycheproof's Cobblestone-256 vectors (c2sp_chunked_encryption_aes_256_gcm_test.json,
//! copied from Wycheproof into test-vectors/wycheproof/, Apache-2.0) through the
//! streaming opener and the random-access opener.

mod common;

use coffer_core::chunked::hazmat::{ChunkKeys, DerivedKeys};
use coffer_core::chunked::{self, RandomAccessOpener, StreamOpener};
use coffer_core::provider::AeadKey;
use coffer_core::{Error, RustCrypto, SecretKey, Suite};
use common::{compressed_hex_field, hex_field, load_json, sha512, Cursor};
use embedded_io::Read;

struct Vector {
    id: u64,
    key: Vec<u8>,
    ctx: Vec<u8>,
    ct: Vec<u8>,
    valid: bool,
    flags: Vec<String>,
    msg_len: Option<usize>,
    msg_sha512: Option<Vec<u8>>,
    aead_key: Option<Vec<u8>>,
    base_nonce: Option<Vec<u8>>,
}

fn vectors() -> Vec<Vector> {
    let file = load_json("wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json");
    let mut out = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        assert_eq!(group["aead"], "AEAD_AES_256_GCM");
        for t in group["tests"].as_array().unwrap() {
            out.push(Vector {
                id: t["tcId"].as_u64().unwrap(),
                key: hex_field(t, "key"),
                ctx: hex_field(t, "ctx"),
                ct: compressed_hex_field(t, "ct"),
                valid: t["result"] == "valid",
                flags: t["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect(),
                msg_len: t["msgLength"].as_u64().map(|n| n as usize),
                msg_sha512: t.get("msgSha512").map(|_| hex_field(t, "msgSha512")),
                aead_key: t.get("aeadKey").map(|_| hex_field(t, "aeadKey")),
                base_nonce: t.get("baseNonce").map(|_| hex_field(t, "baseNonce")),
            });
        }
    }
    assert_eq!(out.len(), file["numberOfTests"].as_u64().unwrap() as usize);
    assert_eq!(out.len(), 35);
    out
}

impl Vector {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Streams the whole message through the streaming opener in `step`-byte reads.
/// Returns what it released and the final result.
fn stream_open(v: &Vector, key: &SecretKey, read_step: usize) -> (Vec<u8>, Result<(), Error>) {
    let mut released = Vec::new();
    let mut buf = vec![0u8; chunked::OPEN_BUFFER_LEN];
    let opener = StreamOpener::new(
        &RustCrypto,
        Suite::Aes256Gcm,
        key,
        &[&v.ctx],
        Cursor::new(&v.ct),
        &mut buf[..],
    );
    let mut opener = match opener {
        Ok(o) => o,
        Err(e) => return (released, Err(e)),
    };
    let mut out = vec![0u8; read_step];
    loop {
        match opener.read(&mut out) {
            Ok(0) => return (released, Ok(())),
            Ok(n) => released.extend_from_slice(&out[..n]),
            Err(e) => {
                // A failed reader keeps failing, with the same error, and never ends cleanly.
                for _ in 0..3 {
                    assert_eq!(opener.read(&mut out), Err(e), "tcId {}", v.id);
                }
                return (released, Err(e));
            }
        }
    }
}

#[test]
fn streaming_opener_passes_every_vector() {
    for v in vectors() {
        let key = match SecretKey::try_from_slice(&v.key) {
            Ok(k) => k,
            Err(e) => {
                assert!(v.has("InvalidKeySize") && !v.valid, "tcId {}: {e}", v.id);
                assert_eq!(e, Error::InvalidKeyLength { len: v.key.len() });
                continue;
            }
        };
        for step in [1usize, 7, 4096, 16400, 1 << 20] {
            if step < 4096 && v.ct.len() > 100_000 {
                continue; // the 4 MiB vectors byte by byte add time, not coverage
            }
            let (released, result) = stream_open(&v, &key, step);
            if v.valid {
                assert!(result.is_ok(), "tcId {} ({}): {result:?}", v.id, step);
                assert_eq!(released.len(), v.msg_len.unwrap(), "tcId {}", v.id);
                assert_eq!(
                    sha512(&released),
                    v.msg_sha512.clone().unwrap(),
                    "tcId {}",
                    v.id
                );
                continue;
            }
            assert!(result.is_err(), "tcId {} must fail (step {step})", v.id);
            if v.has("HeaderFailure") {
                assert!(
                    released.is_empty(),
                    "tcId {}: released before the header check",
                    v.id
                );
            }
            if v.has("PartialPlaintext") {
                // Whatever was released is a prefix of the longest valid prefix.
                let max = v.msg_len.unwrap();
                assert!(released.len() <= max, "tcId {}", v.id);
                if released.len() == max {
                    assert_eq!(
                        sha512(&released),
                        v.msg_sha512.clone().unwrap(),
                        "tcId {}",
                        v.id
                    );
                }
            } else {
                assert!(
                    released.is_empty(),
                    "tcId {}: released {} bytes",
                    v.id,
                    released.len()
                );
            }
            if v.has("WrongKey") || v.has("WrongContext") {
                assert_eq!(result, Err(Error::CommitmentMismatch), "tcId {}", v.id);
            }
        }
    }
}

#[test]
fn random_access_opener_passes_every_vector() {
    for v in vectors() {
        let Ok(key) = SecretKey::try_from_slice(&v.key) else {
            assert!(v.has("InvalidKeySize"));
            continue;
        };
        let mut buf = vec![0u8; chunked::OPEN_BUFFER_LEN];
        let opener = RandomAccessOpener::new(
            &RustCrypto,
            Suite::Aes256Gcm,
            &key,
            &[&v.ctx],
            Cursor::new(&v.ct),
            0,
            &mut buf[..],
        );
        let mut opener = match opener {
            Ok(o) => o,
            Err(e) => {
                assert!(!v.valid, "tcId {} valid but: {e}", v.id);
                assert!(!v.has("ValidFinalChunk"), "tcId {}", v.id);
                continue;
            }
        };
        // Authenticating the length succeeds exactly for valid and ValidFinalChunk vectors.
        let length = opener.verify_length();
        assert_eq!(
            length.is_ok(),
            v.valid || v.has("ValidFinalChunk"),
            "tcId {}: {length:?}",
            v.id
        );
        // Reading everything, in ranges that straddle chunks, succeeds only when valid.
        let mut whole = Vec::new();
        let mut failed = length.is_err();
        let total = opener.len();
        let mut at = 0u64;
        while at < total {
            let mut piece = vec![0u8; 10_000];
            match opener.read_at(at, &mut piece) {
                Ok(n) => {
                    whole.extend_from_slice(&piece[..n]);
                    at += n as u64;
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if v.valid {
            assert!(!failed, "tcId {}", v.id);
            assert_eq!(
                sha512(&whole),
                v.msg_sha512.clone().unwrap(),
                "tcId {}",
                v.id
            );
            // And a range in the middle alone, straddling a chunk boundary.
            if total > 20_000 {
                let mut mid = vec![0u8; 3000];
                assert_eq!(opener.read_at(15_000, &mut mid).unwrap(), 3000);
                assert_eq!(&mid[..], &whole[15_000..18_000]);
            }
        } else {
            assert!(failed, "tcId {} must fail under random access", v.id);
        }
    }
}

/// Raw mode: the derived AEAD key and base nonce match the vectors' intermediate values,
/// and the chunks open with them directly.
#[test]
fn derived_keys_match_raw_mode_values() {
    let mut checked = 0;
    for v in vectors() {
        let (Some(aead_key), Some(base_nonce)) = (&v.aead_key, &v.base_nonce) else {
            continue;
        };
        let key = SecretKey::try_from_slice(&v.key).unwrap();
        let salt: [u8; chunked::SALT_LEN] = v.ct[..24].try_into().unwrap();
        let derived = DerivedKeys::derive(Suite::Aes256Gcm, &key, &salt, &[&v.ctx]).unwrap();
        assert_eq!(
            &derived.aead_key.expose_secret()[..],
            &aead_key[..],
            "tcId {}",
            v.id
        );
        assert_eq!(&derived.base_nonce[..], &base_nonce[..], "tcId {}", v.id);
        if v.valid {
            let keys = ChunkKeys::from_raw(
                &RustCrypto,
                Suite::Aes256Gcm,
                &AeadKey::from_bytes(aead_key[..].try_into().unwrap()),
                base_nonce[..].try_into().unwrap(),
            )
            .unwrap();
            let body = &v.ct[chunked::PREAMBLE_LEN..];
            let mut plain = Vec::new();
            for (i, chunk) in body.chunks(chunked::ENCRYPTED_CHUNK_LEN).enumerate() {
                let (data, tag) = chunk.split_at(chunk.len() - 16);
                let mut data = data.to_vec();
                keys.open_chunk(i as u64, &mut data, tag.try_into().unwrap())
                    .unwrap();
                plain.extend_from_slice(&data);
            }
            assert_eq!(sha512(&plain), v.msg_sha512.clone().unwrap());
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} vectors carry raw-mode values"
    );
}
