//! The chunk AEAD behind a small trait, so that a faster provider (the std side's `ring`)
//! drives the same state machines as the portable RustCrypto one.
//!
//! A provider turns a suite and a derived AEAD key into a [`ChunkCipher`], which seals
//! or opens one chunk in place with a given nonce and a detached tag. Everything else —
//! key derivation, nonces, chunk boundaries, the order of checks — lives in the core and
//! is the same whichever provider runs.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// AEAD key length of both suites.
pub const AEAD_KEY_LEN: usize = 32;
/// AEAD nonce length of both suites.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length of both suites.
pub const TAG_LEN: usize = 16;

/// A chunk nonce.
pub type Nonce = [u8; NONCE_LEN];
/// A detached authentication tag.
pub type Tag = [u8; TAG_LEN];

/// The AEAD a sealed stream uses for its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// Cobblestone-256: HKDF-SHA-512 and AES-256-GCM. Suite byte 1.
    Aes256Gcm,
    /// The same construction over ChaCha20-Poly1305, for CPUs without AES
    /// instructions. Suite byte 2.
    ChaCha20Poly1305,
}

impl Suite {
    /// Every suite, in suite-byte order.
    pub const ALL: [Suite; 2] = [Suite::Aes256Gcm, Suite::ChaCha20Poly1305];

    /// The suite's byte in Coffer headers.
    pub fn to_byte(self) -> u8 {
        match self {
            Suite::Aes256Gcm => 1,
            Suite::ChaCha20Poly1305 => 2,
        }
    }

    /// Reads a suite byte.
    ///
    /// # Errors
    /// [`Error::UnsupportedSuite`] for any byte but 1 and 2.
    pub fn from_byte(byte: u8) -> Result<Self, Error> {
        match byte {
            1 => Ok(Suite::Aes256Gcm),
            2 => Ok(Suite::ChaCha20Poly1305),
            suite => Err(Error::UnsupportedSuite { suite }),
        }
    }

    /// The AEAD's name in the IANA AEAD registry, as the scheme's HKDF info uses it.
    pub fn aead_name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "AEAD_AES_256_GCM",
            Suite::ChaCha20Poly1305 => "AEAD_CHACHA20_POLY1305",
        }
    }
}

/// A per-message AEAD key derived by the scheme. Wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AeadKey(pub(crate) [u8; AEAD_KEY_LEN]);

impl AeadKey {
    /// Wraps raw key bytes (the scheme's "raw mode", for testing a layer on its own).
    pub fn from_bytes(bytes: [u8; AEAD_KEY_LEN]) -> Self {
        AeadKey(bytes)
    }

    /// The key's bytes, for providers.
    pub fn expose_secret(&self) -> &[u8; AEAD_KEY_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AeadKey(redacted)")
    }
}

/// Makes chunk ciphers. Implement it to bring another AEAD implementation.
pub trait CryptoProvider {
    /// The keyed cipher this provider makes.
    type Cipher: ChunkCipher;

    /// Keys a cipher for `suite`.
    ///
    /// # Errors
    /// [`Error::Provider`] if the implementation cannot key the cipher.
    fn cipher(&self, suite: Suite, key: &AeadKey) -> Result<Self::Cipher, Error>;
}

/// One keyed AEAD that seals and opens chunks in place, with empty AAD.
pub trait ChunkCipher {
    /// Encrypts `data` in place and returns its tag.
    ///
    /// # Errors
    /// [`Error::Provider`] if the implementation fails.
    fn seal_in_place(&self, nonce: &Nonce, data: &mut [u8]) -> Result<Tag, Error>;

    /// Verifies `tag` over `data` and, only if it verifies, decrypts `data` in place.
    ///
    /// # Errors
    /// `Err(())` if the tag does not verify; `data` must then hold no plaintext.
    #[allow(clippy::result_unit_err)]
    fn open_in_place(&self, nonce: &Nonce, data: &mut [u8], tag: &Tag) -> Result<(), ()>;
}

/// The portable provider on RustCrypto's `aes-gcm` and `chacha20poly1305`: `no_std`,
/// constant time, the one a microcontroller uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

/// A chunk cipher of the [`RustCrypto`] provider. Its key schedule is wiped on drop.
// Boxing the AES variant would need alloc; the size is documented in MAX_STATE_LEN.
#[allow(clippy::large_enum_variant)]
pub enum RustCryptoCipher {
    /// AES-256-GCM.
    Aes256Gcm(Aes256Gcm),
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305(ChaCha20Poly1305),
}

impl CryptoProvider for RustCrypto {
    type Cipher = RustCryptoCipher;

    fn cipher(&self, suite: Suite, key: &AeadKey) -> Result<RustCryptoCipher, Error> {
        Ok(match suite {
            Suite::Aes256Gcm => RustCryptoCipher::Aes256Gcm(Aes256Gcm::new(&key.0.into())),
            Suite::ChaCha20Poly1305 => {
                RustCryptoCipher::ChaCha20Poly1305(ChaCha20Poly1305::new(&key.0.into()))
            }
        })
    }
}

impl ChunkCipher for RustCryptoCipher {
    fn seal_in_place(&self, nonce: &Nonce, data: &mut [u8]) -> Result<Tag, Error> {
        let tag = match self {
            RustCryptoCipher::Aes256Gcm(c) => c.encrypt_in_place_detached(nonce.into(), &[], data),
            RustCryptoCipher::ChaCha20Poly1305(c) => {
                c.encrypt_in_place_detached(nonce.into(), &[], data)
            }
        }
        .map_err(|_| Error::Provider)?;
        Ok(tag.into())
    }

    fn open_in_place(&self, nonce: &Nonce, data: &mut [u8], tag: &Tag) -> Result<(), ()> {
        // Both crates check the tag over the ciphertext before they decrypt.
        match self {
            RustCryptoCipher::Aes256Gcm(c) => {
                c.decrypt_in_place_detached(nonce.into(), &[], data, tag.into())
            }
            RustCryptoCipher::ChaCha20Poly1305(c) => {
                c.decrypt_in_place_detached(nonce.into(), &[], data, tag.into())
            }
        }
        .map_err(|_| ())
    }
}
