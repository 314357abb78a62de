//! Sealing an object's 32-byte key to the repository's public key (FORMAT.md §15): HPKE
//! (RFC 9180) in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
//! ChaCha20-Poly1305, single shot, by the `hpke` crate.
//!
//! This lives on the std side: the `hpke` crate's X25519 brings `alloc`, and only
//! machines that write repositories need it, not the microcontroller the core also
//! runs on. The key pair is derived from the master key with HPKE's own `DeriveKeyPair`
//! (RFC 9180 §7.1.3), so a full key needs nothing stored besides the master key.

use coffer_core::SecretKey;
use hpke::aead::{AeadTag, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::keys::{derive, RECIPIENT_LABEL};
use crate::Error;

type Kem = X25519HkdfSha256;

/// Length of a sealed object key: the encapsulated key (32), the wrapped key (32) and
/// the AEAD tag (16).
pub const SEALED_KEY_LEN: usize = 80;

/// The repository's X25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientPublic([u8; 32]);

impl std::fmt::Debug for RecipientPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecipientPublic({})", hex::encode(self.0))
    }
}

impl RecipientPublic {
    /// From its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecipientPublic(bytes)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The repository's X25519 private key (held only by full keys).
pub struct RecipientSecret(<Kem as hpke::Kem>::PrivateKey, RecipientPublic);

impl RecipientSecret {
    /// `DeriveKeyPair(HKDF-Expand-SHA-512(K, "coffer/v2 x25519", 32))`.
    pub fn from_master(master: &SecretKey) -> Self {
        Self::derived(master, RECIPIENT_LABEL)
    }

    /// `DeriveKeyPair(HKDF-Expand-SHA-512(key, label, 32))`: a key pair of another
    /// purpose (the server's self-backups, FORMAT.md §26.1).
    pub fn derived(key: &SecretKey, label: &[u8]) -> Self {
        let ikm = derive(key, label);
        let (secret, public) = Kem::derive_keypair(ikm.expose_secret());
        let mut bytes = [0u8; 32];
        public.write_exact(&mut bytes);
        RecipientSecret(secret, RecipientPublic(bytes))
    }

    /// The matching public key.
    pub fn public(&self) -> RecipientPublic {
        self.1.clone()
    }
}

/// Seals `key` to `public`, bound to `info` (the object's context).
///
/// # Errors
/// [`Error::Recipient`] if HPKE refuses (an invalid public key).
pub fn seal_key(
    public: &RecipientPublic,
    key: &SecretKey,
    info: &[u8],
) -> Result<[u8; SEALED_KEY_LEN], Error> {
    seal_key_with(&mut rand_core::OsRng, public, key, info)
}

/// [`seal_key`] with the HPKE ephemeral key drawn from `rng`: the OS's generator in
/// every real use; a seeded one only where test vectors must come out the same.
///
/// # Errors
/// As [`seal_key`].
#[doc(hidden)]
pub fn seal_key_with(
    rng: &mut impl CryptoRngCore,
    public: &RecipientPublic,
    key: &SecretKey,
    info: &[u8],
) -> Result<[u8; SEALED_KEY_LEN], Error> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&public.0)
        .map_err(|_| Error::Recipient("the repository's public key is invalid"))?;
    let mut wrapped = Zeroizing::new(*key.expose_secret());
    let (encapped, tag) = hpke::single_shot_seal_in_place_detached::<
        ChaCha20Poly1305,
        HkdfSha256,
        Kem,
        _,
    >(&OpModeS::Base, &pk, info, &mut wrapped[..], &[], rng)
    .map_err(|_| Error::Recipient("sealing the object key failed"))?;
    let mut out = [0u8; SEALED_KEY_LEN];
    encapped.write_exact(&mut out[..32]);
    out[32..64].copy_from_slice(&wrapped[..]);
    tag.write_exact(&mut out[64..]);
    Ok(out)
}

/// Opens a sealed object key.
///
/// # Errors
/// [`Error::Recipient`] if it does not open (another repository, another object, or
/// damaged): nothing is released then.
pub fn open_key(
    secret: &RecipientSecret,
    sealed: &[u8; SEALED_KEY_LEN],
    info: &[u8],
) -> Result<SecretKey, Error> {
    let refused =
        || Error::Recipient("the object key does not open: wrong repository, object or key");
    let encapped =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[..32]).map_err(|_| refused())?;
    let tag = AeadTag::<ChaCha20Poly1305>::from_bytes(&sealed[64..]).map_err(|_| refused())?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&sealed[32..64]);
    hpke::single_shot_open_in_place_detached::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret.0,
        &encapped,
        info,
        &mut key[..],
        &[],
        &tag,
    )
    .map_err(|_| refused())?;
    Ok(SecretKey::from_bytes(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_secret_and_info() {
        let secret = RecipientSecret::from_master(&SecretKey::from_bytes([1; 32]));
        let other = RecipientSecret::from_master(&SecretKey::from_bytes([2; 32]));
        let key = SecretKey::from_bytes([7; 32]);
        let sealed = seal_key(&secret.public(), &key, b"pack 1").unwrap();
        assert_eq!(open_key(&secret, &sealed, b"pack 1").unwrap(), key);
        assert!(open_key(&secret, &sealed, b"pack 2").is_err());
        assert!(open_key(&other, &sealed, b"pack 1").is_err());
        for i in 0..SEALED_KEY_LEN {
            let mut bad = sealed;
            bad[i] ^= 1;
            assert!(open_key(&secret, &bad, b"pack 1").is_err(), "byte {i}");
        }
        // Fresh randomness each time.
        assert_ne!(sealed, seal_key(&secret.public(), &key, b"pack 1").unwrap());
    }
}
