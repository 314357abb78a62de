//! The self-backup file (FORMAT.md §26): a fixed header naming the recovery key and its
//! public key, optionally a passphrase envelope of the recovery key, the backup key
//! sealed to the public key with HPKE, and a sealed stream of the payload — entries
//! `metadata.json`, `kek`, `config.json`, `database.sqlite`.

use std::collections::BTreeMap;

use coffer_adapters::repo::object::{open_bytes, seal_bytes};
use coffer_adapters::repo::recipient::{
    open_key, seal_key, RecipientPublic, RecipientSecret, SEALED_KEY_LEN,
};
use coffer_core::envelope::Purpose;
use coffer_core::passphrase::{self, Argon2Block, Argon2Params, PassphraseEnvelope};
use coffer_core::{KeyId, SecretKey, Suite};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file's magic.
pub const MAGIC: &[u8; 8] = b"COFFER/B";
/// The fixed header's length.
pub const HEADER_LEN: usize = 64;
/// A passphrase envelope's length.
const ENVELOPE_LEN: usize = coffer_core::passphrase::PASSPHRASE_ENVELOPE_LEN;
/// The label the recovery key pair is derived with.
pub const KEY_PAIR_LABEL: &[u8] = b"coffer-server/v1 self-backup x25519";
/// The caller context of the passphrase envelope of the recovery key.
pub const ENVELOPE_CONTEXT: &[u8] = b"coffer-server/v1 self-backup recovery-key";
const CONTEXT_LABEL: &[u8] = b"coffer-server/v1 self-backup";

/// What goes wrong reading or writing a self-backup.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not a self-backup, or one this version cannot read.
    #[error("not a readable self-backup: {0}")]
    Invalid(String),
    /// Made under another recovery key.
    #[error("this self-backup was made under recovery key {found}, not {given}")]
    OtherKey {
        /// The file's.
        found: String,
        /// The one given.
        given: String,
    },
    /// The passphrase does not open the file's envelope (or it has none).
    #[error("the passphrase does not open this self-backup's recovery key: {0}")]
    Passphrase(String),
    /// A byte changed: nothing released.
    #[error("the self-backup is damaged or altered: {0}")]
    Damaged(String),
}

/// How a reader unlocks a backup.
pub enum Unlock<'a> {
    /// The recovery key (from its kit).
    Key(&'a SecretKey),
    /// The passphrase set at set-up.
    Passphrase(&'a [u8]),
}

/// The recovery key's public half, as the server keeps it.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// `key_id(R)`.
    pub key_id: KeyId,
    /// The X25519 public key.
    pub public: RecipientPublic,
    /// The passphrase envelope of `R`, if the admin chose a passphrase.
    pub envelope: Option<Vec<u8>>,
}

impl Recipient {
    /// The public half of recovery key `r`, with a passphrase envelope of it when a
    /// passphrase is given (Argon2id at its default cost: seconds, once).
    ///
    /// # Errors
    /// The core's refusal of the passphrase parameters.
    pub fn of(r: &SecretKey, passphrase: Option<&[u8]>) -> Result<Self, FormatError> {
        let envelope = match passphrase {
            None => None,
            Some(p) => {
                let params = Argon2Params::DEFAULT;
                let mut memory = vec![Argon2Block::default(); params.blocks()];
                let env = passphrase::wrap_with_passphrase(
                    &coffer_adapters::default_provider(),
                    Suite::Aes256Gcm,
                    p,
                    r,
                    Purpose::MasterKey,
                    1,
                    params,
                    ENVELOPE_CONTEXT,
                    &mut rand_core::OsRng,
                    &mut memory,
                )
                .map_err(|e| FormatError::Invalid(format!("passphrase envelope: {e}")))?;
                Some(env.to_vec())
            }
        };
        Ok(Recipient {
            key_id: r.id(),
            public: RecipientSecret::derived(r, KEY_PAIR_LABEL).public(),
            envelope,
        })
    }
}

/// The metadata record (§26.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    /// 1.
    pub format: u32,
    /// The server version that made it.
    pub server_version: String,
    /// The database's schema version.
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Why it was made.
    pub reason: Reason,
    /// Rows, by table.
    pub counts: Counts,
    /// The database copy's size and SHA-256.
    pub database: Digest256,
    /// SHA-256 of `config.json`.
    pub config_sha256: String,
    /// The KEK's ID.
    pub kek_id: String,
}

/// Why a self-backup was made.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// An admin ran `self-backup run`.
    Manual,
    /// The schedule.
    Scheduled,
    /// Before a restore replaced the database.
    PreRestore,
    /// Before an upgrade.
    PreUpgrade,
}

impl Reason {
    /// As in file names and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Scheduled => "scheduled",
            Reason::PreRestore => "pre-restore",
            Reason::PreUpgrade => "pre-upgrade",
        }
    }
}

/// Row counts of the tables people ask about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Counts {
    /// Tenants.
    pub tenants: u64,
    /// Agents.
    pub agents: u64,
    /// Jobs.
    pub jobs: u64,
    /// Runs.
    pub runs: u64,
    /// Restore points.
    pub restore_points: u64,
}

/// A size and SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Digest256 {
    /// Bytes.
    pub size: u64,
    /// 64 hex digits.
    pub sha256: String,
}

/// SHA-256 in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What a self-backup holds, opened.
pub struct Contents {
    /// The metadata record.
    pub metadata: Metadata,
    /// The KEK.
    pub kek: SecretKey,
    /// The settings (JSON).
    pub config: Vec<u8>,
    /// The database file.
    pub database: Vec<u8>,
}

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contents")
            .field("metadata", &self.metadata)
            .field("kek", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn context(header: &[u8]) -> Vec<u8> {
    let mut ctx = CONTEXT_LABEL.to_vec();
    ctx.extend_from_slice(header);
    ctx
}

fn entry(out: &mut Vec<u8>, name: &str, content: &[u8]) {
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    out.extend_from_slice(content);
}

/// Seals `contents` to `recipient`: the whole file.
///
/// # Errors
/// HPKE or the core refusing (an invalid public key).
pub fn seal(recipient: &Recipient, contents: &Contents) -> Result<Vec<u8>, FormatError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(1);
    header.push(u8::from(recipient.envelope.is_some()));
    header.extend_from_slice(&[0; 6]);
    header.extend_from_slice(recipient.key_id.as_bytes());
    header.extend_from_slice(recipient.public.as_bytes());
    let ctx = context(&header);
    let mut payload = Vec::with_capacity(contents.database.len() + 4096);
    let metadata = serde_json::to_vec(&contents.metadata)
        .map_err(|e| FormatError::Invalid(format!("metadata: {e}")))?;
    entry(&mut payload, "metadata.json", &metadata);
    entry(&mut payload, "kek", contents.kek.expose_secret());
    entry(&mut payload, "config.json", &contents.config);
    entry(&mut payload, "database.sqlite", &contents.database);
    let key = SecretKey::generate(&mut rand_core::OsRng);
    let sealed_key = seal_key(&recipient.public, &key, &ctx)
        .map_err(|e| FormatError::Invalid(format!("sealing the backup key: {e}")))?;
    let stream = seal_bytes(&key, &ctx, &payload)
        .map_err(|e| FormatError::Invalid(format!("sealing the payload: {e}")))?;
    // The payload held the KEK: wipe it.
    zeroize::Zeroize::zeroize(&mut payload);
    let mut file = header;
    if let Some(env) = &recipient.envelope {
        file.extend_from_slice(env);
    }
    file.extend_from_slice(&sealed_key);
    file.extend_from_slice(&stream);
    Ok(file)
}

/// The recovery key ID a file was made under (bytes 16..32), after checking its header.
///
/// # Errors
/// [`FormatError::Invalid`] for anything but a version-1 self-backup header.
pub fn key_id_of(file: &[u8]) -> Result<KeyId, FormatError> {
    let bad = |why: &str| FormatError::Invalid(why.to_owned());
    if file.len() < HEADER_LEN {
        return Err(bad("shorter than its header"));
    }
    if &file[..8] != MAGIC {
        return Err(bad("no COFFER/B magic"));
    }
    if file[8] != 1 {
        return Err(bad(&format!("version {} (this server reads 1)", file[8])));
    }
    if file[9] & !1 != 0 || file[10..16].iter().any(|b| *b != 0) {
        return Err(bad("reserved bits set"));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&file[16..32]);
    Ok(KeyId(id))
}

/// Opens a whole self-backup; nothing is returned unless every check passed and the
/// database's SHA-256 is the one its metadata names.
///
/// # Errors
/// [`FormatError`] saying which check failed.
pub fn open(file: &[u8], unlock: &Unlock<'_>) -> Result<Contents, FormatError> {
    let file_key = key_id_of(file)?;
    let has_envelope = file[9] & 1 == 1;
    let mut at = HEADER_LEN;
    let envelope = if has_envelope {
        let env = file
            .get(at..at + ENVELOPE_LEN)
            .ok_or_else(|| FormatError::Invalid("shorter than its passphrase envelope".into()))?;
        at += ENVELOPE_LEN;
        Some(env)
    } else {
        None
    };
    let unwrapped;
    let r: &SecretKey = match unlock {
        Unlock::Key(k) => k,
        Unlock::Passphrase(p) => {
            let env = envelope.ok_or_else(|| {
                FormatError::Passphrase("it was made without a passphrase: use the kit".into())
            })?;
            let info = PassphraseEnvelope::decode(env)
                .map_err(|e| FormatError::Invalid(format!("passphrase envelope: {e}")))?;
            let mut memory = vec![Argon2Block::default(); info.params.blocks()];
            unwrapped = passphrase::unwrap_with_passphrase(
                &coffer_adapters::default_provider(),
                p,
                env,
                Purpose::MasterKey,
                ENVELOPE_CONTEXT,
                &mut memory,
            )
            .map_err(|e| FormatError::Passphrase(e.to_string()))?
            .0;
            &unwrapped
        }
    };
    if r.id() != file_key {
        return Err(FormatError::OtherKey {
            found: file_key.to_string(),
            given: r.id().to_string(),
        });
    }
    let secret = RecipientSecret::derived(r, KEY_PAIR_LABEL);
    if secret.public().as_bytes()[..] != file[32..64] {
        return Err(FormatError::Invalid(
            "its public key is not the recovery key's".into(),
        ));
    }
    let ctx = context(&file[..HEADER_LEN]);
    let sealed: &[u8; SEALED_KEY_LEN] = file
        .get(at..at + SEALED_KEY_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| FormatError::Invalid("shorter than its sealed key".into()))?;
    at += SEALED_KEY_LEN;
    let key = open_key(&secret, sealed, &ctx).map_err(|e| FormatError::Damaged(e.to_string()))?;
    let mut payload = zeroize::Zeroizing::new(
        open_bytes(&key, &ctx, &file[at..]).map_err(|e| FormatError::Damaged(e.to_string()))?,
    );
    let entries = entries(&payload)?;
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    if names != ENTRIES {
        return Err(FormatError::Invalid(format!(
            "the payload holds {names:?}, not {ENTRIES:?} in that order"
        )));
    }
    let entries: BTreeMap<&str, &[u8]> = entries.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let get = |name: &str| {
        entries
            .get(name)
            .copied()
            .ok_or_else(|| FormatError::Invalid(format!("no {name} in the payload")))
    };
    let metadata: Metadata = serde_json::from_slice(get("metadata.json")?)
        .map_err(|e| FormatError::Invalid(format!("metadata.json: {e}")))?;
    let kek = SecretKey::try_from_slice(get("kek")?)
        .map_err(|_| FormatError::Invalid("kek is not 32 bytes".into()))?;
    if kek.id().to_string() != metadata.kek_id {
        return Err(FormatError::Damaged(
            "the KEK's ID is not the one its metadata names".into(),
        ));
    }
    if metadata.format != 1 {
        return Err(FormatError::Invalid(format!(
            "metadata format {} (this server reads 1)",
            metadata.format
        )));
    }
    let config = get("config.json")?.to_vec();
    let database = get("database.sqlite")?.to_vec();
    if database.len() as u64 != metadata.database.size
        || sha256_hex(&database) != metadata.database.sha256
    {
        return Err(FormatError::Damaged(
            "database.sqlite is not the size and SHA-256 its metadata names".into(),
        ));
    }
    if sha256_hex(&config) != metadata.config_sha256 {
        return Err(FormatError::Damaged(
            "config.json is not the SHA-256 its metadata names".into(),
        ));
    }
    zeroize::Zeroize::zeroize(&mut *payload);
    Ok(Contents {
        metadata,
        kek,
        config,
        database,
    })
}

/// The payload's entries, in their order.
const ENTRIES: [&str; 4] = ["metadata.json", "kek", "config.json", "database.sqlite"];

fn entries(payload: &[u8]) -> Result<Vec<(String, &[u8])>, FormatError> {
    let bad = |why: String| FormatError::Invalid(why);
    let mut out: Vec<(String, &[u8])> = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| bad("the payload ends inside an entry".into()))?;
        let name_len = usize::from(u16::from_be_bytes(*len));
        let (name, tail) = tail
            .split_at_checked(name_len)
            .ok_or_else(|| bad("the payload ends inside an entry's name".into()))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| bad("an entry's name is not UTF-8".into()))?
            .to_owned();
        let (len, tail) = tail
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("the payload ends inside an entry".into()))?;
        let len = usize::try_from(u64::from_be_bytes(*len))
            .map_err(|_| bad("an entry is too long".into()))?;
        let (content, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| bad(format!("the payload ends inside {name}")))?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(bad(format!("{name} is given twice")));
        }
        out.push((name, content));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> Contents {
        let database = b"SQLite format 3\0 not really".to_vec();
        let config = b"{}".to_vec();
        Contents {
            metadata: Metadata {
                format: 1,
                server_version: "0.1.0".into(),
                schema_version: 6,
                created_at: "2026-12-01T00:00:00Z".into(),
                reason: Reason::Manual,
                counts: Counts::default(),
                database: Digest256 {
                    size: database.len() as u64,
                    sha256: sha256_hex(&database),
                },
                config_sha256: sha256_hex(&config),
                kek_id: SecretKey::from_bytes([7; 32]).id().to_string(),
            },
            kek: SecretKey::from_bytes([7; 32]),
            config,
            database,
        }
    }

    #[test]
    fn a_backup_opens_with_its_key_or_passphrase_and_nothing_else() {
        let r = SecretKey::generate(&mut rand_core::OsRng);
        let recipient = Recipient::of(&r, Some(b"correct horse")).unwrap();
        let file = seal(&recipient, &contents()).unwrap();
        let opened = open(&file, &Unlock::Key(&r)).unwrap();
        assert_eq!(opened.database, contents().database);
        assert_eq!(opened.kek.expose_secret(), &[7; 32]);
        let opened = open(&file, &Unlock::Passphrase(b"correct horse")).unwrap();
        assert_eq!(opened.metadata, contents().metadata);
        assert!(matches!(
            open(&file, &Unlock::Passphrase(b"wrong")),
            Err(FormatError::Passphrase(_))
        ));
        let other = SecretKey::generate(&mut rand_core::OsRng);
        assert!(matches!(
            open(&file, &Unlock::Key(&other)),
            Err(FormatError::OtherKey { .. })
        ));
        // Every byte after the header and envelope is authenticated.
        for at in [HEADER_LEN + ENVELOPE_LEN + 5, file.len() - 3] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(matches!(
                open(&bad, &Unlock::Key(&r)),
                Err(FormatError::Damaged(_))
            ));
        }
        let mut bad = file.clone();
        bad[40] ^= 1;
        assert!(matches!(
            open(&bad, &Unlock::Key(&r)),
            Err(FormatError::Invalid(_))
        ));
        let mut bad = file;
        bad[12] = 1;
        assert!(matches!(
            open(&bad, &Unlock::Key(&r)),
            Err(FormatError::Invalid(_))
        ));
    }

    #[test]
    fn payload_entries_are_checked() {
        let mut p = Vec::new();
        entry(&mut p, "a", b"1");
        entry(&mut p, "a", b"2");
        assert!(entries(&p).unwrap_err().to_string().contains("twice"));
        let mut p = Vec::new();
        entry(&mut p, "a", b"123");
        p.pop();
        assert!(entries(&p)
            .unwrap_err()
            .to_string()
            .contains("ends inside a"));
    }
}
