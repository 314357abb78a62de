//! Key files (FORMAT.md §21): `keys/<id>` objects, each wrapping either the master key
//! (a full key) or the writer secret (a write-only key) under a passphrase (a §7
//! passphrase envelope) or a key-encryption key (a §6 key-wrap envelope). A repository
//! can have many; any one opens it, and removing one revokes only that way in.
//!
//! Layout: `"CKF2" ‖ access (1 full, 2 write-only) ‖ wrapping (1 passphrase, 2 KEK) ‖
//! 0x0000 ‖ repository ID (16) ‖ envelope`. The envelope's context is
//! `"coffer/v2 key-file" ‖ the first 8 bytes ‖ repository ID`, so a file cannot be
//! moved to another repository or have its access byte changed.

use coffer_core::envelope::{self, Purpose, KEY_ENVELOPE_LEN};
use coffer_core::passphrase::{
    self, Argon2Block, Argon2Params, PassphraseEnvelope, PASSPHRASE_ENVELOPE_LEN,
};
use coffer_core::SecretKey;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::keys::Access;
use super::object::{RepoId, SUITE};
use crate::{default_provider, Error};

/// The magic of a key file.
pub const KEYFILE_MAGIC: &[u8; 4] = b"CKF2";
const HEAD_LEN: usize = 24;

/// What unlocks a key file.
pub enum Unlock {
    /// A passphrase (Argon2id, §7).
    Passphrase(Zeroizing<Vec<u8>>),
    /// A 32-byte key-encryption key (a key file on disk, §6).
    Kek(SecretKey),
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlock::Passphrase(_) => f.write_str("Unlock::Passphrase(<redacted>)"),
            Unlock::Kek(k) => write!(f, "Unlock::Kek({:?})", k.id()),
        }
    }
}

fn context(head: &[u8], repo: &RepoId) -> Vec<u8> {
    [b"coffer/v2 key-file".as_slice(), &head[..8], &repo[..]].concat()
}

/// Makes a key file wrapping `secret` (the master key for [`Access::Full`], the writer
/// secret for [`Access::WriteOnly`]).
///
/// # Errors
/// Core errors (Argon2 memory, parameters).
pub fn make(
    repo: &RepoId,
    access: Access,
    secret: &SecretKey,
    unlock: &Unlock,
    params: Argon2Params,
) -> Result<Vec<u8>, Error> {
    make_with(&mut rand_core::OsRng, repo, access, secret, unlock, params)
}

/// [`make`] with the envelope's salts drawn from `rng`: the OS's generator in every
/// real use; a seeded one only where test vectors must come out the same.
///
/// # Errors
/// As [`make`].
#[doc(hidden)]
pub fn make_with(
    rng: &mut impl CryptoRngCore,
    repo: &RepoId,
    access: Access,
    secret: &SecretKey,
    unlock: &Unlock,
    params: Argon2Params,
) -> Result<Vec<u8>, Error> {
    let mut head = Vec::with_capacity(HEAD_LEN);
    head.extend_from_slice(KEYFILE_MAGIC);
    head.push(match access {
        Access::Full => 1,
        Access::WriteOnly => 2,
    });
    head.push(match unlock {
        Unlock::Passphrase(_) => 1,
        Unlock::Kek(_) => 2,
    });
    head.extend_from_slice(&[0, 0]);
    head.extend_from_slice(repo);
    let ctx = context(&head, repo);
    let provider = default_provider();
    match unlock {
        Unlock::Passphrase(p) => {
            let mut memory = vec![Argon2Block::default(); params.blocks()];
            let env = passphrase::wrap_with_passphrase(
                &provider,
                SUITE,
                p,
                secret,
                Purpose::RepositoryKey,
                1,
                params,
                &ctx,
                rng,
                &mut memory,
            )?;
            head.extend_from_slice(&env);
        }
        Unlock::Kek(kek) => {
            let env = envelope::wrap_key(
                &provider,
                SUITE,
                kek,
                secret,
                Purpose::RepositoryKey,
                1,
                &ctx,
                rng,
            )?;
            head.extend_from_slice(&env);
        }
    }
    Ok(head)
}

/// What a key file says about itself before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFileInfo {
    /// Full or write-only.
    pub access: Access,
    /// Passphrase or KEK.
    pub passphrase: bool,
    /// The repository it belongs to.
    pub repo: RepoId,
}

/// Reads a key file's head.
///
/// # Errors
/// [`Error::RepoFormat`] for anything else than a key file of the expected length.
pub fn inspect(name: &str, file: &[u8]) -> Result<KeyFileInfo, Error> {
    let bad = |reason: &str| Error::RepoFormat {
        object: name.to_owned(),
        reason: reason.to_owned(),
    };
    if file.len() < HEAD_LEN || &file[..4] != KEYFILE_MAGIC || file[6..8] != [0, 0] {
        return Err(bad("not a key file"));
    }
    let access = match file[4] {
        1 => Access::Full,
        2 => Access::WriteOnly,
        _ => return Err(bad("unknown access byte")),
    };
    let passphrase = match file[5] {
        1 => true,
        2 => false,
        _ => return Err(bad("unknown wrapping byte")),
    };
    let want = HEAD_LEN
        + if passphrase {
            PASSPHRASE_ENVELOPE_LEN
        } else {
            KEY_ENVELOPE_LEN
        };
    if file.len() != want {
        return Err(bad("a key file of the wrong length"));
    }
    let mut repo = [0u8; 16];
    repo.copy_from_slice(&file[8..24]);
    Ok(KeyFileInfo {
        access,
        passphrase,
        repo,
    })
}

/// Opens a key file with `unlock`. `Ok(None)` when it is not this unlock's kind of
/// file (a passphrase for a KEK file, or a KEK of another ID), so the caller tries the
/// next file without spending an Argon2 run on it.
///
/// # Errors
/// [`Error::Core`]: `WrongPassphrase` (or a KEK that does not open it), damage.
pub fn open(
    name: &str,
    file: &[u8],
    repo: &RepoId,
    unlock: &Unlock,
) -> Result<Option<(Access, SecretKey)>, Error> {
    let info = inspect(name, file)?;
    if &info.repo != repo {
        return Err(Error::RepoFormat {
            object: name.to_owned(),
            reason: "a key file of another repository".to_owned(),
        });
    }
    let ctx = context(&file[..HEAD_LEN], repo);
    let env = &file[HEAD_LEN..];
    let provider = default_provider();
    let secret = match (unlock, info.passphrase) {
        (Unlock::Passphrase(p), true) => {
            let params = PassphraseEnvelope::decode(env)?.params;
            let mut memory = vec![Argon2Block::default(); params.blocks()];
            passphrase::unwrap_with_passphrase(
                &provider,
                p,
                env,
                Purpose::RepositoryKey,
                &ctx,
                &mut memory,
            )?
            .0
        }
        (Unlock::Kek(kek), false) => {
            let info = envelope::KeyEnvelope::decode(env)?;
            if info.kek_id != kek.id() {
                return Ok(None);
            }
            envelope::unwrap_key(&provider, kek, env, Purpose::RepositoryKey, &ctx)?.0
        }
        _ => return Ok(None),
    };
    Ok(Some((info.access, secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_open_with_their_unlock_only_and_keep_their_access() {
        let repo = [1u8; 16];
        let secret = SecretKey::from_bytes([2; 32]);
        let kek = SecretKey::from_bytes([3; 32]);
        let file = make(
            &repo,
            Access::WriteOnly,
            &secret,
            &Unlock::Kek(SecretKey::from_bytes([3; 32])),
            Argon2Params::MIN,
        )
        .unwrap();
        let (access, got) = open("k", &file, &repo, &Unlock::Kek(kek)).unwrap().unwrap();
        assert_eq!((access, got), (Access::WriteOnly, secret));
        assert!(open(
            "k",
            &file,
            &repo,
            &Unlock::Kek(SecretKey::from_bytes([4; 32]))
        )
        .unwrap()
        .is_none());
        assert!(open(
            "k",
            &file,
            &[9; 16],
            &Unlock::Kek(SecretKey::from_bytes([3; 32]))
        )
        .is_err());
        // Claiming full access breaks the context.
        let mut promoted = file.clone();
        promoted[4] = 1;
        assert!(open(
            "k",
            &promoted,
            &repo,
            &Unlock::Kek(SecretKey::from_bytes([3; 32]))
        )
        .is_err());

        let pass = Unlock::Passphrase(Zeroizing::new(b"correct horse".to_vec()));
        let file = make(
            &repo,
            Access::Full,
            &SecretKey::from_bytes([5; 32]),
            &pass,
            Argon2Params::MIN,
        )
        .unwrap();
        let (access, _) = open("k", &file, &repo, &pass).unwrap().unwrap();
        assert_eq!(access, Access::Full);
        let wrong = Unlock::Passphrase(Zeroizing::new(b"wrong".to_vec()));
        assert!(matches!(
            open("k", &file, &repo, &wrong),
            Err(Error::Core(coffer_core::Error::WrongPassphrase))
        ));
    }
}
