//! The repository's configuration object and object names (FORMAT.md §20, §21).
//!
//! `config` is `"CCF2" ‖ repository ID (16, in the clear: key files and every object's
//! context need it before anything opens) ‖ a sealed stream` under the config key,
//! whose 76-byte plaintext repeats the magic and ID and holds the chunker parameters,
//! the public key and the creation time. The ID in the clear is authenticated: it is
//! part of the stream's context.

use coffer_core::SecretKey;

use super::object::{self, PlainKind, RepoId};
use super::recipient::RecipientPublic;
use crate::Error;

/// The configuration object's name.
pub const CONFIG_NAME: &str = "config";
/// Its first four bytes, and its plaintext's.
pub const CONFIG_MAGIC: &[u8; 4] = b"CCF2";
/// Plaintext length.
pub const CONFIG_LEN: usize = 76;

/// The chunker parameters a repository was created with (FORMAT.md §13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerSizes {
    /// Smallest chunk (but the last).
    pub min_size: u32,
    /// Cut probability 2^-mask_bits past the minimum.
    pub mask_bits: u32,
    /// Largest chunk.
    pub max_size: u32,
}

impl ChunkerSizes {
    /// Format v2's values.
    pub const V2: ChunkerSizes = ChunkerSizes {
        min_size: 512 << 10,
        mask_bits: 17,
        max_size: 4 << 20,
    };

    /// Checks §13.1's bounds.
    ///
    /// # Errors
    /// A reason naming the parameter and its bounds.
    pub fn check(&self) -> Result<(), String> {
        if !(64..=1 << 26).contains(&self.min_size) {
            return Err(format!("min_size {} outside 64..=2^26", self.min_size));
        }
        if !(1..=31).contains(&self.mask_bits) {
            return Err(format!("mask_bits {} outside 1..=31", self.mask_bits));
        }
        if self.max_size <= self.min_size || self.max_size > 1 << 26 {
            return Err(format!(
                "max_size {} not above min_size and at most 2^26",
                self.max_size
            ));
        }
        Ok(())
    }
}

/// A repository's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The repository ID.
    pub id: RepoId,
    /// Chunker parameters.
    pub chunker: ChunkerSizes,
    /// The public key packs and snapshots are sealed to.
    pub public: RecipientPublic,
    /// Creation time, Unix seconds.
    pub created: i64,
}

impl Config {
    /// The plaintext: `"CCF2" ‖ 0x02 ‖ 0x000000 ‖ id(16) ‖ u32le(min_size) ‖
    /// u32le(mask_bits) ‖ u32le(max_size) ‖ public key (32) ‖ i64le(created)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CONFIG_LEN);
        out.extend_from_slice(CONFIG_MAGIC);
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.chunker.min_size.to_le_bytes());
        out.extend_from_slice(&self.chunker.mask_bits.to_le_bytes());
        out.extend_from_slice(&self.chunker.max_size.to_le_bytes());
        out.extend_from_slice(self.public.as_bytes());
        out.extend_from_slice(&self.created.to_le_bytes());
        out
    }

    /// Reads a plaintext.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] for a wrong length, magic, version or parameters.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::RepoFormat {
            object: CONFIG_NAME.to_owned(),
            reason,
        };
        if b.len() != CONFIG_LEN {
            return Err(bad(format!("{} bytes, not {CONFIG_LEN}", b.len())));
        }
        if &b[..4] != CONFIG_MAGIC || b[4..8] != [2, 0, 0, 0] {
            return Err(bad("not a version 2 configuration".to_owned()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[8..24]);
        let chunker = ChunkerSizes {
            min_size: u32_at(24),
            mask_bits: u32_at(28),
            max_size: u32_at(32),
        };
        chunker.check().map_err(bad)?;
        let mut public = [0u8; 32];
        public.copy_from_slice(&b[36..68]);
        let mut created = [0u8; 8];
        created.copy_from_slice(&b[68..76]);
        Ok(Config {
            id,
            chunker,
            public: RecipientPublic::from_bytes(public),
            created: i64::from_le_bytes(created),
        })
    }

    /// The stored object: `"CCF2" ‖ id ‖ stream`.
    ///
    /// # Errors
    /// Core errors.
    pub fn seal(&self, config_key: &SecretKey) -> Result<Vec<u8>, Error> {
        self.seal_with(&mut rand_core::OsRng, config_key)
    }

    /// [`Config::seal`] with the stream's salt drawn from `rng`: the OS's generator in
    /// every real use; a seeded one only where test vectors must come out the same.
    ///
    /// # Errors
    /// Core errors.
    #[doc(hidden)]
    pub fn seal_with(
        &self,
        rng: &mut impl rand_core::CryptoRngCore,
        config_key: &SecretKey,
    ) -> Result<Vec<u8>, Error> {
        let context = object::plain_context(PlainKind::Config, &self.id, CONFIG_NAME);
        let mut out = Vec::new();
        out.extend_from_slice(CONFIG_MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&object::seal_bytes_with(
            rng,
            config_key,
            &context,
            &self.encode(),
        )?);
        Ok(out)
    }

    /// The repository ID of a stored configuration, before anything is opened.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] if it is not a configuration object.
    pub fn peek_id(stored: &[u8]) -> Result<RepoId, Error> {
        if stored.len() < 20 || &stored[..4] != CONFIG_MAGIC {
            return Err(Error::RepoFormat {
                object: CONFIG_NAME.to_owned(),
                reason: "not a repository configuration (is this a Coffer v2 repository?)"
                    .to_owned(),
            });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&stored[4..20]);
        Ok(id)
    }

    /// Opens a stored configuration.
    ///
    /// # Errors
    /// Core errors (wrong key: this key file is not of this repository), or a malformed
    /// plaintext; an ID inside that differs from the one outside.
    pub fn open(stored: &[u8], config_key: &SecretKey) -> Result<Self, Error> {
        let id = Self::peek_id(stored)?;
        let context = object::plain_context(PlainKind::Config, &id, CONFIG_NAME);
        let config = Self::decode(&object::open_bytes(config_key, &context, &stored[20..])?)?;
        if config.id != id {
            return Err(Error::RepoFormat {
                object: CONFIG_NAME.to_owned(),
                reason: "the repository ID inside differs from the one outside".to_owned(),
            });
        }
        Ok(config)
    }
}

/// Object names (FORMAT.md §21): everything under the repository's prefix.
pub mod names {
    /// A pack: `data/<first two hex digits>/<32 hex digits>`.
    pub fn pack(id: &[u8; 16]) -> String {
        let h = hex::encode(id);
        format!("data/{}/{h}", &h[..2])
    }

    /// An index object.
    pub fn index(id: &[u8; 16]) -> String {
        format!("index/{}", hex::encode(id))
    }

    /// A snapshot.
    pub fn snapshot(id: &[u8; 16]) -> String {
        format!("snapshots/{}", hex::encode(id))
    }

    /// A key file.
    pub fn key(id: &[u8; 16]) -> String {
        format!("keys/{}", hex::encode(id))
    }

    /// A lock.
    pub fn lock(id: &[u8; 16]) -> String {
        format!("locks/{}", hex::encode(id))
    }

    /// The 16-byte ID at the end of a name like those above (32 hex digits).
    pub fn id_of(name: &str) -> Option<[u8; 16]> {
        let last = name.rsplit('/').next()?;
        let mut id = [0u8; 16];
        hex::decode_to_slice(last, &mut id).ok()?;
        Some(id)
    }

    /// A fresh random ID.
    pub fn random_id() -> [u8; 16] {
        use rand_core::RngCore;
        let mut id = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_round_trip_and_bind_their_id() {
        let key = SecretKey::from_bytes([4; 32]);
        let c = Config {
            id: [8; 16],
            chunker: ChunkerSizes::V2,
            public: RecipientPublic::from_bytes([1; 32]),
            created: 1_790_000_000,
        };
        let stored = c.seal(&key).unwrap();
        assert_eq!(Config::open(&stored, &key).unwrap(), c);
        let mut moved = stored.clone();
        moved[4] ^= 1;
        assert!(Config::open(&moved, &key).is_err());
        assert!(Config::open(&stored, &SecretKey::from_bytes([5; 32])).is_err());
        let mut bad = c.clone();
        bad.chunker.mask_bits = 40;
        assert!(Config::decode(&bad.encode()).is_err());
        assert_eq!(names::id_of(&names::pack(&[0xab; 16])), Some([0xab; 16]));
        assert_eq!(names::pack(&[0xab; 16]).len(), "data/ab/".len() + 32);
    }
}
