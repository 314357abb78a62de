//! Schema migrations, for the adapters' tables and for any other component sharing the
//! database (the server's).
//!
//! A component is a name and an ordered list of [`Migration`]s. Its schema version is
//! the number of steps applied, kept in one row of one table:
//!
//! ```sql
//! CREATE TABLE schema_version (
//!     component   TEXT PRIMARY KEY,   -- "adapters", "server"
//!     version     INTEGER NOT NULL,   -- steps applied
//!     migrated_at INTEGER NOT NULL    -- Unix seconds of the last step
//! ) STRICT;
//! ```
//!
//! A table rather than `PRAGMA user_version`, because several components share the
//! file and `user_version` is one integer.
//!
//! Rules for writing steps:
//! - Lists are append-only. A released step is never edited, reordered or removed; a
//!   change is a new step.
//! - A step is plain SQL without `BEGIN`/`COMMIT`: [`migrate`] runs each step in its own
//!   `BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves
//!   the database at a step boundary, and two processes opening at once take turns (the
//!   second finds the version the first wrote and does nothing).
//! - `PRAGMA foreign_keys` cannot change inside a transaction. A step that rebuilds a
//!   table (SQLite's 12-step `ALTER` procedure) uses `PRAGMA defer_foreign_keys = ON`;
//!   [`migrate`] runs `PRAGMA foreign_key_check` after every step and rolls the step
//!   back if any row is left dangling.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{now, OrCatalogue};
use crate::Error;

/// One step of a component's schema: plain SQL, run in a transaction of its own.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// What the step does, for error messages.
    pub description: &'static str,
    /// The statements (no `BEGIN` or `COMMIT`).
    pub sql: &'static str,
}

/// Brings `component`'s schema up to `migrations.len()` and returns that version.
///
/// Reads the version first without taking the write lock, so opening an up-to-date
/// database never waits for a writer; only missing steps take it.
///
/// # Errors
/// [`Error::CatalogueMisuse`] for an empty component name;
/// [`Error::CatalogueTooNew`] if the database is at a later version than the list
/// (nothing is changed); [`Error::Catalogue`] or [`Error::CatalogueConstraint`] naming
/// the step that failed, which is rolled back (earlier steps stay);
/// [`Error::CatalogueInvalid`] if a step leaves foreign keys dangling.
pub fn migrate(
    conn: &mut Connection,
    component: &str,
    migrations: &[Migration],
) -> Result<u32, Error> {
    if component.is_empty() {
        return Err(Error::CatalogueMisuse {
            what: "migrating the catalogue".to_owned(),
            reason: "the component name is empty".to_owned(),
        });
    }
    let supported = u32::try_from(migrations.len()).map_err(|_| Error::CatalogueMisuse {
        what: format!("migrating {component:?}"),
        reason: "more than 2^32 migrations".to_owned(),
    })?;
    let current = current_version(conn, component)?.unwrap_or(0);
    check_not_newer(component, current, supported)?;
    if current == supported {
        return Ok(current);
    }
    loop {
        let reading = || format!("migrating {component:?}: reading its version");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(reading)?;
        tx.execute_batch(CREATE_VERSION_TABLE)
            .or_catalogue(reading)?;
        // Again under the write lock: another process may have migrated meanwhile.
        let version = current_version(&tx, component)?.unwrap_or(0);
        check_not_newer(component, version, supported)?;
        let Some(step) = usize::try_from(version)
            .ok()
            .and_then(|index| migrations.get(index))
        else {
            return Ok(version);
        };
        let next = version.saturating_add(1);
        let doing = || {
            format!(
                "migrating {component:?} to version {next} ({})",
                step.description
            )
        };
        tx.execute_batch(step.sql).or_catalogue(doing)?;
        check_foreign_keys(&tx, &doing)?;
        tx.execute(
            "INSERT INTO schema_version (component, version, migrated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (component) DO UPDATE
             SET version = excluded.version, migrated_at = excluded.migrated_at",
            (component, next, now()),
        )
        .or_catalogue(doing)?;
        tx.commit().or_catalogue(doing)?;
    }
}

/// `component`'s schema version, or `None` if it was never migrated.
///
/// # Errors
/// [`Error::Catalogue`].
pub fn current_version(conn: &Connection, component: &str) -> Result<Option<u32>, Error> {
    let what = || format!("reading the schema version of {component:?}");
    let has_table = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(()),
        )
        .optional()
        .or_catalogue(what)?
        .is_some();
    if !has_table {
        return Ok(None);
    }
    conn.query_row(
        "SELECT version FROM schema_version WHERE component = ?1",
        [component],
        |row| row.get(0),
    )
    .optional()
    .or_catalogue(what)
}

const CREATE_VERSION_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS schema_version (
        component   TEXT    PRIMARY KEY NOT NULL CHECK (length(component) > 0),
        version     INTEGER NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
        migrated_at INTEGER NOT NULL
    ) STRICT;
";

fn check_not_newer(component: &str, found: u32, supported: u32) -> Result<(), Error> {
    if found > supported {
        return Err(Error::CatalogueTooNew {
            component: component.to_owned(),
            found,
            supported,
        });
    }
    Ok(())
}

fn check_foreign_keys(conn: &Connection, doing: &dyn Fn() -> String) -> Result<(), Error> {
    let dangling: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
        .optional()
        .or_catalogue(doing)?;
    match dangling {
        None => Ok(()),
        Some(table) => Err(Error::CatalogueInvalid {
            what: doing(),
            reason: format!("rows of table {table} refer to missing rows"),
        }),
    }
}
