//! Repositories: where a set of backups lives and which key seals them.

use coffer_core::{KeyId, Suite};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::envelopes::insert_envelope;
use super::{
    key_id_from_hex, key_id_hex, now, suite_from_name, suite_name, Catalogue, OrCatalogue,
    RepositoryId,
};
use crate::Error;

/// A repository to create.
#[derive(Debug, Clone, Copy)]
pub struct NewRepository<'a> {
    /// Unique name, 1 to 255 bytes.
    pub name: &'a str,
    /// Where its objects live, e.g. `local:/srv/backups` or `s3://bucket/prefix`.
    pub location: &'a str,
    /// The suite its streams are sealed with.
    pub suite: Suite,
    /// ID of the repository key.
    pub key_id: KeyId,
}

/// A repository's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Row ID.
    pub id: RepositoryId,
    /// Unique name.
    pub name: String,
    /// Where its objects live.
    pub location: String,
    /// The suite its streams are sealed with.
    pub suite: Suite,
    /// ID of the repository key.
    pub key_id: KeyId,
    /// When it was created, Unix seconds.
    pub created_at: i64,
}

impl Catalogue {
    /// Creates a repository together with its key envelopes, in one transaction: a
    /// repository is never recorded without the envelopes that open it.
    ///
    /// # Errors
    /// [`Error::CatalogueConstraint`] if the name is taken or a value is out of range,
    /// or two envelopes share a purpose and key version; [`Error::Core`] for an
    /// envelope that does not decode; [`Error::Catalogue`].
    pub fn create_repository(
        &mut self,
        new: &NewRepository<'_>,
        envelopes: &[&[u8]],
    ) -> Result<Repository, Error> {
        self.insert_repository(None, new, envelopes)
    }

    /// As [`Catalogue::create_repository`], under a row ID the caller chose (a server
    /// whose IDs must not count how many repositories exist).
    ///
    /// # Errors
    /// As [`Catalogue::create_repository`]; a taken ID is a constraint error.
    pub fn create_repository_with_id(
        &mut self,
        id: RepositoryId,
        new: &NewRepository<'_>,
        envelopes: &[&[u8]],
    ) -> Result<Repository, Error> {
        self.insert_repository(Some(id), new, envelopes)
    }

    fn insert_repository(
        &mut self,
        id: Option<RepositoryId>,
        new: &NewRepository<'_>,
        envelopes: &[&[u8]],
    ) -> Result<Repository, Error> {
        let what = || format!("creating repository {:?}", new.name);
        let suite = suite_name(new.suite)?;
        let created_at = now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        tx.execute(
            "INSERT INTO repositories (id, name, location, suite, key_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                id.map(|i| i.0),
                new.name,
                new.location,
                suite,
                key_id_hex(&new.key_id),
                created_at,
            ),
        )
        .or_catalogue(what)?;
        let id = RepositoryId(tx.last_insert_rowid());
        for envelope in envelopes {
            insert_envelope(&tx, id, envelope, created_at)?;
        }
        tx.commit().or_catalogue(what)?;
        Ok(Repository {
            id,
            name: new.name.to_owned(),
            location: new.location.to_owned(),
            suite: new.suite,
            key_id: new.key_id,
            created_at,
        })
    }

    /// The repository with row ID `id`, if any.
    ///
    /// # Errors
    /// [`Error::Catalogue`]; [`Error::CatalogueInvalid`] for a row that does not read.
    pub fn repository(&self, id: RepositoryId) -> Result<Option<Repository>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM repositories WHERE id = ?1"),
                [id.0],
                from_row,
            )
            .optional()
            .or_catalogue(|| format!("reading {id}"))
    }

    /// The repository named `name`, if any.
    ///
    /// # Errors
    /// As [`Catalogue::repository`].
    pub fn repository_by_name(&self, name: &str) -> Result<Option<Repository>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM repositories WHERE name = ?1"),
                [name],
                from_row,
            )
            .optional()
            .or_catalogue(|| format!("reading repository {name:?}"))
    }

    /// Every repository, by name.
    ///
    /// # Errors
    /// As [`Catalogue::repository`].
    pub fn repositories(&self) -> Result<Vec<Repository>, Error> {
        let what = || "listing repositories".to_owned();
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM repositories ORDER BY name"))
            .or_catalogue(what)?;
        let rows = statement.query_map([], from_row).or_catalogue(what)?;
        rows.collect::<Result<_, _>>().or_catalogue(what)
    }

    /// Deletes a repository and its key envelopes. Refused while any backup refers to
    /// it: delete (prune) those first.
    ///
    /// # Errors
    /// [`Error::CatalogueNotFound`]; [`Error::CatalogueConstraint`] while backups refer
    /// to it; [`Error::Catalogue`].
    pub fn delete_repository(&mut self, id: RepositoryId) -> Result<(), Error> {
        let what = || format!("deleting {id} (its backups must be deleted first)");
        let deleted = self
            .conn
            .execute("DELETE FROM repositories WHERE id = ?1", [id.0])
            .or_catalogue(what)?;
        if deleted == 0 {
            return Err(Error::CatalogueNotFound {
                what: id.to_string(),
            });
        }
        Ok(())
    }
}

/// Fails with [`Error::CatalogueNotFound`] unless repository `id` exists.
pub(super) fn require_repository(conn: &Connection, id: RepositoryId) -> Result<(), Error> {
    let found = conn
        .query_row("SELECT 1 FROM repositories WHERE id = ?1", [id.0], |_| {
            Ok(())
        })
        .optional()
        .or_catalogue(|| format!("reading {id}"))?;
    found.ok_or_else(|| Error::CatalogueNotFound {
        what: id.to_string(),
    })
}

const COLUMNS: &str = "id, name, location, suite, key_id, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Repository> {
    Ok(Repository {
        id: RepositoryId(row.get(0)?),
        name: row.get(1)?,
        location: row.get(2)?,
        suite: suite_from_name(&row.get::<_, String>(3)?, 3)?,
        key_id: key_id_from_hex(&row.get::<_, String>(4)?, 4)?,
        created_at: row.get(5)?,
    })
}
