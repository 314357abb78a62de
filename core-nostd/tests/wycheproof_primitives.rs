//! Wycheproof's AES-GCM, ChaCha20-Poly1305 and HKDF-SHA-512 vectors (copied into
//! test-vectors/wycheproof/, Apache-2.0) against the primitives as the core uses them:
//! the AEADs through the provider's `ChunkCipher` (empty AAD, 96-bit nonce, 128-bit tag,
//! 256-bit key) and HKDF-Expand through `kdf::expand_sha512`.

mod common;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use coffer_core::provider::{AeadKey, ChunkCipher, CryptoProvider};
use coffer_core::{kdf, RustCrypto, Suite};
use common::{hex_field, load_json};
use hmac::{Hmac, Mac};

/// Runs every vector of an AEAD file whose sizes Coffer uses. Vectors with empty AAD go
/// through the provider trait; the others through the same crate with their AAD, so the
/// primitive is covered whole. Returns how many went through the provider.
fn check_aead(file: &str, suite: Suite) -> usize {
    let data = load_json(file);
    let mut through_provider = 0;
    let mut total = 0;
    for group in data["testGroups"].as_array().unwrap() {
        if group["keySize"] != 256 || group["ivSize"] != 96 || group["tagSize"] != 128 {
            continue;
        }
        for t in group["tests"].as_array().unwrap() {
            total += 1;
            let (key, iv, aad, msg, ct, tag) = (
                hex_field(t, "key"),
                hex_field(t, "iv"),
                hex_field(t, "aad"),
                hex_field(t, "msg"),
                hex_field(t, "ct"),
                hex_field(t, "tag"),
            );
            let valid = t["result"] != "invalid";
            let id = t["tcId"].as_u64().unwrap();
            let key32: [u8; 32] = key.try_into().unwrap();
            let nonce: [u8; 12] = iv.try_into().unwrap();
            let tag16: [u8; 16] = tag.try_into().unwrap();
            if aad.is_empty() {
                through_provider += 1;
                let cipher = RustCrypto
                    .cipher(suite, &AeadKey::from_bytes(key32))
                    .unwrap();
                let mut buf = ct.clone();
                let opened = cipher.open_in_place(&nonce, &mut buf, &tag16);
                assert_eq!(opened.is_ok(), valid, "{file} tcId {id}");
                if valid {
                    assert_eq!(buf, msg, "{file} tcId {id}");
                    let mut sealed = msg.clone();
                    let got_tag = cipher.seal_in_place(&nonce, &mut sealed).unwrap();
                    assert_eq!((sealed, got_tag), (ct, tag16), "{file} tcId {id}");
                } else {
                    assert!(
                        buf.iter().all(|&b| b == 0) || buf == ct,
                        "{file} tcId {id}: plaintext left after failure"
                    );
                }
            } else {
                let mut buf = ct.clone();
                let opened = match suite {
                    Suite::Aes256Gcm => aes_gcm::Aes256Gcm::new(&key32.into())
                        .decrypt_in_place_detached(&nonce.into(), &aad, &mut buf, &tag16.into()),
                    _ => chacha20poly1305::ChaCha20Poly1305::new(&key32.into())
                        .decrypt_in_place_detached(&nonce.into(), &aad, &mut buf, &tag16.into()),
                };
                assert_eq!(opened.is_ok(), valid, "{file} tcId {id}");
                if valid {
                    assert_eq!(buf, msg, "{file} tcId {id}");
                }
            }
        }
    }
    assert!(
        total > 0 && through_provider > 0,
        "{file}: {total} vectors, {through_provider} via provider"
    );
    through_provider
}

#[test]
fn aes_256_gcm_vectors() {
    check_aead("wycheproof/aes_gcm_test.json", Suite::Aes256Gcm);
}

#[test]
fn chacha20_poly1305_vectors() {
    check_aead(
        "wycheproof/chacha20_poly1305_test.json",
        Suite::ChaCha20Poly1305,
    );
}

/// HKDF-SHA-512 = Extract (HMAC-SHA-512(salt, ikm)) then the core's Expand.
#[test]
fn hkdf_sha512_vectors() {
    let data = load_json("wycheproof/hkdf_sha512_test.json");
    let mut checked = 0;
    let mut invalid = 0;
    for group in data["testGroups"].as_array().unwrap() {
        for t in group["tests"].as_array().unwrap() {
            let (ikm, salt, info, okm) = (
                hex_field(t, "ikm"),
                hex_field(t, "salt"),
                hex_field(t, "info"),
                hex_field(t, "okm"),
            );
            let size = t["size"].as_u64().unwrap() as usize;
            let id = t["tcId"].as_u64().unwrap();
            let salt = if salt.is_empty() { vec![0u8; 64] } else { salt };
            let mut mac = <Hmac<sha2::Sha512> as Mac>::new_from_slice(&salt).unwrap();
            mac.update(&ikm);
            let prk = mac.finalize().into_bytes();
            let mut out = vec![0u8; size];
            let result = kdf::expand_sha512(&prk, &[&info], &mut out);
            if t["result"] == "invalid" {
                // The invalid HKDF vectors ask for more than 255 blocks of output.
                assert!(
                    matches!(result, Err(coffer_core::Error::ParameterOutOfBounds { .. })),
                    "tcId {id}: {result:?}"
                );
                invalid += 1;
                continue;
            }
            result.unwrap();
            assert_eq!(out, okm, "tcId {id}");
            // Info split into parts gives the same bytes: the core passes info in pieces.
            let (a, b) = info.split_at(info.len() / 2);
            let mut split = vec![0u8; size];
            kdf::expand_sha512(&prk, &[a, b], &mut split).unwrap();
            assert_eq!(split, okm, "tcId {id} (split info)");
            // And the hkdf crate agrees for PRKs it accepts.
            let mut reference = vec![0u8; size];
            hkdf::Hkdf::<sha2::Sha512>::from_prk(&prk)
                .unwrap()
                .expand(&info, &mut reference)
                .unwrap();
            assert_eq!(reference, okm);
            checked += 1;
        }
    }
    assert!(checked >= 70, "{checked}");
    assert!(invalid >= 1, "{invalid}");
}
