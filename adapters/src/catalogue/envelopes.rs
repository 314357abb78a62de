//! Key envelopes: a repository's wrapped keys, stored whole.

use coffer_core::envelope::{KeyEnvelope, Purpose};
use coffer_core::passphrase::{PassphraseEnvelope, PASSPHRASE_ENVELOPE_MAGIC};
use coffer_core::{KeyId, Suite};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::repositories::require_repository;
use super::{
    conversion, key_id_from_hex, key_id_hex, now, suite_from_name, suite_name, Catalogue,
    EnvelopeId, OrCatalogue, RepositoryId,
};
use crate::Error;

/// Which envelope format a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeKind {
    /// A key-wrap envelope (`COFFER/K`, 152 bytes), opened by a KEK it names by ID.
    Key,
    /// A passphrase envelope (`COFFER/P`, 168 bytes), opened by a passphrase.
    Passphrase,
}

/// A stored key envelope and what its header says. The header fields are read from
/// the envelope, not authenticated: only unwrapping it proves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Row ID.
    pub id: EnvelopeId,
    /// The repository it belongs to.
    pub repository_id: RepositoryId,
    /// Key-wrap or passphrase envelope.
    pub kind: EnvelopeKind,
    /// What the wrapped key is for.
    pub purpose: Purpose,
    /// The wrapped key's version.
    pub key_version: u32,
    /// The suite the envelope is sealed with.
    pub suite: Suite,
    /// ID of the KEK that opens it; `None` for passphrase envelopes.
    pub kek_id: Option<KeyId>,
    /// ID of the wrapped key.
    pub key_id: KeyId,
    /// The envelope's bytes.
    pub envelope: Vec<u8>,
    /// When this key version was first stored, Unix seconds.
    pub created_at: i64,
    /// When these bytes were written (rewrapping changes it), Unix seconds.
    pub wrapped_at: i64,
}

impl Catalogue {
    /// Stores an envelope for `repository`. Its kind, purpose, key version, suite, KEK
    /// ID and key ID are read from its header, so the columns cannot disagree with
    /// the bytes.
    ///
    /// # Errors
    /// [`Error::Core`] if the envelope does not decode (bad magic, length, version,
    /// suite, purpose); [`Error::CatalogueNotFound`] for a missing repository;
    /// [`Error::CatalogueConstraint`] if the repository already has this purpose and
    /// key version; [`Error::Catalogue`].
    pub fn put_envelope(
        &mut self,
        repository: RepositoryId,
        envelope: &[u8],
    ) -> Result<StoredEnvelope, Error> {
        let what = || format!("storing a key envelope for {repository}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        require_repository(&tx, repository)?;
        let stored = insert_envelope(&tx, repository, envelope, now())?;
        tx.commit().or_catalogue(what)?;
        Ok(stored)
    }

    /// The envelope of `repository` for `purpose` with the highest key version.
    ///
    /// # Errors
    /// [`Error::Catalogue`]; [`Error::CatalogueInvalid`] for a row that does not read.
    pub fn latest_envelope(
        &self,
        repository: RepositoryId,
        purpose: Purpose,
    ) -> Result<Option<StoredEnvelope>, Error> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM key_envelopes WHERE repository_id = ?1 AND purpose = ?2
                     ORDER BY key_version DESC LIMIT 1"
                ),
                (repository.0, purpose_name(purpose)?),
                from_row,
            )
            .optional()
            .or_catalogue(|| format!("reading the latest {purpose} key envelope of {repository}"))
    }

    /// The envelope of `repository` for `purpose` and `key_version`.
    ///
    /// # Errors
    /// As [`Catalogue::latest_envelope`].
    pub fn envelope(
        &self,
        repository: RepositoryId,
        purpose: Purpose,
        key_version: u32,
    ) -> Result<Option<StoredEnvelope>, Error> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM key_envelopes
                     WHERE repository_id = ?1 AND purpose = ?2 AND key_version = ?3"
                ),
                (repository.0, purpose_name(purpose)?, key_version),
                from_row,
            )
            .optional()
            .or_catalogue(|| {
                format!("reading the {purpose} key envelope version {key_version} of {repository}")
            })
    }

    /// Every envelope of `repository`, by purpose and key version.
    ///
    /// # Errors
    /// As [`Catalogue::latest_envelope`].
    pub fn envelopes(&self, repository: RepositoryId) -> Result<Vec<StoredEnvelope>, Error> {
        select_envelopes(&self.conn, "repository_id = ?1", repository.0, &|| {
            format!("listing the key envelopes of {repository}")
        })
    }

    /// Replaces every envelope of `repository` with what `rewrap` makes of it, in one
    /// transaction: after a failure, no row has changed. For KEK rotation (rewrap each
    /// under the new KEK) or a passphrase change.
    ///
    /// `rewrap` runs inside the transaction, which holds the write lock, so it should
    /// do the cryptography and nothing slow besides. A new envelope must wrap the same
    /// key for the same purpose and key version (the suite, KEK and kind may change).
    /// Returns how many envelopes were replaced.
    ///
    /// # Errors
    /// The first error `rewrap` returns; [`Error::Core`] for a new envelope that does
    /// not decode; [`Error::CatalogueMisuse`] if it changed the purpose, key version or
    /// key ID; [`Error::CatalogueNotFound`] for a missing repository; SQLite errors.
    pub fn rewrap_all<F, E>(&mut self, repository: RepositoryId, rewrap: F) -> Result<usize, Error>
    where
        F: FnMut(&StoredEnvelope) -> Result<E, Error>,
        E: AsRef<[u8]>,
    {
        let what = || format!("rewrapping the key envelopes of {repository}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        require_repository(&tx, repository)?;
        let old = select_envelopes(&tx, "repository_id = ?1", repository.0, &what)?;
        let count = replace_all(&tx, &old, rewrap)?;
        tx.commit().or_catalogue(what)?;
        Ok(count)
    }

    /// Replaces every envelope wrapped under the KEK `kek_id`, in every repository, in
    /// one transaction: rotating a KEK retires it everywhere at once or nowhere.
    ///
    /// # Errors
    /// As [`Catalogue::rewrap_all`], without the missing repository.
    pub fn rewrap_kek<F, E>(&mut self, kek_id: &KeyId, rewrap: F) -> Result<usize, Error>
    where
        F: FnMut(&StoredEnvelope) -> Result<E, Error>,
        E: AsRef<[u8]>,
    {
        let what = || format!("rewrapping the key envelopes under KEK {kek_id}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        let old = select_envelopes(&tx, "kek_id = ?1", key_id_hex(kek_id), &what)?;
        let count = replace_all(&tx, &old, rewrap)?;
        tx.commit().or_catalogue(what)?;
        Ok(count)
    }
}

/// What an envelope's header says (unauthenticated).
struct Header {
    kind: EnvelopeKind,
    purpose: Purpose,
    key_version: u32,
    suite: Suite,
    kek_id: Option<KeyId>,
    key_id: KeyId,
}

fn decode_header(envelope: &[u8]) -> Result<Header, Error> {
    if envelope.starts_with(PASSPHRASE_ENVELOPE_MAGIC) {
        let header = PassphraseEnvelope::decode(envelope)?;
        Ok(Header {
            kind: EnvelopeKind::Passphrase,
            purpose: header.purpose,
            key_version: header.key_version,
            suite: header.suite,
            kek_id: None,
            key_id: header.key_id,
        })
    } else {
        // Anything else is held to COFFER/K, whose decoder names what is wrong.
        let header = KeyEnvelope::decode(envelope)?;
        Ok(Header {
            kind: EnvelopeKind::Key,
            purpose: header.purpose,
            key_version: header.key_version,
            suite: header.suite,
            kek_id: Some(header.kek_id),
            key_id: header.key_id,
        })
    }
}

/// Inserts an envelope row inside the caller's transaction.
pub(super) fn insert_envelope(
    conn: &Connection,
    repository: RepositoryId,
    envelope: &[u8],
    created_at: i64,
) -> Result<StoredEnvelope, Error> {
    let header = decode_header(envelope)?;
    let what = || {
        format!(
            "storing the {} key envelope version {} of {repository}",
            header.purpose, header.key_version
        )
    };
    conn.execute(
        "INSERT INTO key_envelopes (repository_id, kind, purpose, key_version, suite, kek_id,
                                    key_id, envelope, created_at, wrapped_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        (
            repository.0,
            kind_name(header.kind),
            purpose_name(header.purpose)?,
            header.key_version,
            suite_name(header.suite)?,
            header.kek_id.as_ref().map(key_id_hex),
            key_id_hex(&header.key_id),
            envelope,
            created_at,
        ),
    )
    .or_catalogue(what)?;
    Ok(StoredEnvelope {
        id: EnvelopeId(conn.last_insert_rowid()),
        repository_id: repository,
        kind: header.kind,
        purpose: header.purpose,
        key_version: header.key_version,
        suite: header.suite,
        kek_id: header.kek_id,
        key_id: header.key_id,
        envelope: envelope.to_vec(),
        created_at,
        wrapped_at: created_at,
    })
}

/// Rewraps `old` envelope by envelope inside the caller's transaction.
fn replace_all<F, E>(
    conn: &Connection,
    old: &[StoredEnvelope],
    mut rewrap: F,
) -> Result<usize, Error>
where
    F: FnMut(&StoredEnvelope) -> Result<E, Error>,
    E: AsRef<[u8]>,
{
    let wrapped_at = now();
    for envelope in old {
        let new = rewrap(envelope)?;
        let new = new.as_ref();
        let header = decode_header(new)?;
        let what = || format!("rewrapping {}", envelope.id);
        if header.purpose != envelope.purpose
            || header.key_version != envelope.key_version
            || header.key_id != envelope.key_id
        {
            return Err(Error::CatalogueMisuse {
                what: what(),
                reason: "the new envelope must wrap the same key for the same purpose and \
                         key version"
                    .to_owned(),
            });
        }
        conn.execute(
            "UPDATE key_envelopes
             SET kind = ?2, suite = ?3, kek_id = ?4, envelope = ?5, wrapped_at = ?6
             WHERE id = ?1",
            (
                envelope.id.0,
                kind_name(header.kind),
                suite_name(header.suite)?,
                header.kek_id.as_ref().map(key_id_hex),
                new,
                wrapped_at,
            ),
        )
        .or_catalogue(what)?;
    }
    Ok(old.len())
}

fn select_envelopes(
    conn: &Connection,
    condition: &str,
    value: impl rusqlite::ToSql,
    what: &dyn Fn() -> String,
) -> Result<Vec<StoredEnvelope>, Error> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM key_envelopes WHERE {condition}
             ORDER BY repository_id, purpose, key_version"
        ))
        .or_catalogue(what)?;
    let rows = statement.query_map([value], from_row).or_catalogue(what)?;
    rows.collect::<Result<_, _>>().or_catalogue(what)
}

const COLUMNS: &str = "id, repository_id, kind, purpose, key_version, suite, kek_id, key_id, \
                       envelope, created_at, wrapped_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredEnvelope> {
    let kind = match row.get::<_, String>(2)?.as_str() {
        "key" => EnvelopeKind::Key,
        "passphrase" => EnvelopeKind::Passphrase,
        other => return Err(conversion(2, format!("unknown envelope kind {other:?}"))),
    };
    let purpose = match row.get::<_, String>(3)?.as_str() {
        "repository" => Purpose::RepositoryKey,
        "profile" => Purpose::ProfileKey,
        "master" => Purpose::MasterKey,
        other => return Err(conversion(3, format!("unknown purpose {other:?}"))),
    };
    let kek_id = match row.get::<_, Option<String>>(6)? {
        Some(hex_id) => Some(key_id_from_hex(&hex_id, 6)?),
        None => None,
    };
    Ok(StoredEnvelope {
        id: EnvelopeId(row.get(0)?),
        repository_id: RepositoryId(row.get(1)?),
        kind,
        purpose,
        key_version: row.get(4)?,
        suite: suite_from_name(&row.get::<_, String>(5)?, 5)?,
        kek_id,
        key_id: key_id_from_hex(&row.get::<_, String>(7)?, 7)?,
        envelope: row.get(8)?,
        created_at: row.get(9)?,
        wrapped_at: row.get(10)?,
    })
}

fn kind_name(kind: EnvelopeKind) -> &'static str {
    match kind {
        EnvelopeKind::Key => "key",
        EnvelopeKind::Passphrase => "passphrase",
    }
}

fn purpose_name(purpose: Purpose) -> Result<&'static str, Error> {
    match purpose {
        Purpose::RepositoryKey => Ok("repository"),
        Purpose::ProfileKey => Ok("profile"),
        Purpose::MasterKey => Ok("master"),
        other => Err(Error::CatalogueMisuse {
            what: "storing a key envelope".to_owned(),
            reason: format!("the catalogue has no name for purpose {other:?}"),
        }),
    }
}
