//! Secret keys and the key IDs that name them.

use core::fmt;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::kdf;
use crate::Error;

/// Length of every input key, key-encryption key and wrapped secret: 32 bytes.
pub const KEY_LEN: usize = 32;
/// Length of a key ID.
pub const KEY_ID_LEN: usize = 16;

/// A 32-byte secret: a master key, a key-encryption key (KEK) or a repository secret.
///
/// Wiped on drop; no `Clone`, `Copy` or `Default`; `Debug` prints only the key ID;
/// equality is constant time.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps 32 bytes as a key. The caller should wipe its own copy.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// Takes a key from a slice.
    ///
    /// # Errors
    /// [`Error::InvalidKeyLength`] if the slice is not 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidKeyLength { len: bytes.len() })?;
        Ok(SecretKey(array))
    }

    /// Draws a fresh uniformly random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    /// The key's bytes, for wrapping or writing to a key file.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Mutable access for filling a key in place (unwrapping), so no copy is left behind.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }

    /// The key's ID: `HKDF-Expand-SHA-512(prk = key, info = "coffer/v1 key-id", 16)`.
    pub fn id(&self) -> KeyId {
        let mut id = [0u8; KEY_ID_LEN];
        // 16 bytes is far inside HKDF's 255-block limit: this cannot fail.
        let _ = kdf::expand_sha512(&self.0, &[kdf::KEY_ID_LABEL], &mut id);
        KeyId(id)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(id {}, redacted)", self.id())
    }
}

impl ConstantTimeEq for SecretKey {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SecretKey {}

/// A key's public name, derived from the key under its own HKDF label.
///
/// Knowing it reveals nothing about the key; it lets a reader pick the right key for
/// an object without trial decryption. Shown as 32 lowercase hex digits.
#[derive(Clone, Copy)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The ID's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl ConstantTimeEq for KeyId {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for KeyId {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for KeyId {}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::ToString;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SecretKey::from_bytes([0xAB; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains(&key.id().to_string()));
    }

    #[test]
    fn ids_differ_between_keys_and_are_stable() {
        let a = SecretKey::from_bytes([1; KEY_LEN]);
        let b = SecretKey::from_bytes([2; KEY_LEN]);
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), SecretKey::from_bytes([1; KEY_LEN]).id());
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert_eq!(
            SecretKey::try_from_slice(&[0; 31]).unwrap_err(),
            Error::InvalidKeyLength { len: 31 }
        );
        assert!(SecretKey::try_from_slice(&[0; 32]).is_ok());
    }
}
