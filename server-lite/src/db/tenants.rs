//! Tenants.

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension, Row};
use coffer_protocol::TenantId;
use serde::Serialize;

use super::DbResult;
use super::{now, rfc3339};

/// A tenant, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// ID.
    pub id: TenantId,
    /// Unique name.
    pub name: String,
    /// The S3 backend its destinations use; `null` for the embedded store.
    pub backend_id: Option<String>,
    /// When it was created.
    pub created_at: String,
}

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: super::typed_id(0, row.get(0)?)?,
        name: row.get(1)?,
        backend_id: row.get::<_, Option<i64>>(2)?.map(|b| b.to_string()),
        created_at: rfc3339(row.get(3)?),
    })
}

/// Creates a tenant.
///
/// # Errors
/// SQLite's (a taken name is a constraint error).
pub fn create_tenant(
    conn: &Connection,
    name: &str,
    backend_id: Option<i64>,
) -> rusqlite::Result<Tenant> {
    let at = now();
    conn.execute(
        "INSERT INTO tenants (id, name, backend_id, created_at) VALUES (?4, ?1, ?2, ?3)",
        params![name, backend_id, at, super::new_id()],
    )?;
    Ok(Tenant {
        id: super::typed_id(0, conn.last_insert_rowid())?,
        name: name.to_owned(),
        backend_id: backend_id.map(|b| b.to_string()),
        created_at: rfc3339(at),
    })
}

/// Every tenant.
///
/// # Errors
/// SQLite's.
pub fn tenants(conn: &Connection) -> DbResult<Vec<Tenant>> {
    let mut st =
        conn.prepare("SELECT id, name, backend_id, created_at FROM tenants ORDER BY id")?;
    let rows = st.query_map([], tenant_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The tenant `id`, if any.
///
/// # Errors
/// SQLite's.
pub fn tenant(conn: &Connection, id: i64) -> DbResult<Option<Tenant>> {
    Ok(conn
        .query_row(
            "SELECT id, name, backend_id, created_at FROM tenants WHERE id = ?1",
            [id],
            tenant_from_row,
        )
        .optional()?)
}
