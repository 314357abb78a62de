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
    let mut st = conn.prepare(
        "SELECT id, name, backend_id, created_at FROM tenants WHERE deleted_at IS NULL ORDER BY id",
    )?;
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
            "SELECT id, name, backend_id, created_at FROM tenants WHERE id = ?1 AND deleted_at IS NULL",
            [id],
            tenant_from_row,
        )
        .optional()?)
}

/// What keeps a tenant from being deleted: its live agents, jobs and restore points.
///
/// # Errors
/// SQLite's.
pub fn contents(conn: &Connection, id: i64) -> DbResult<(u64, u64, u64)> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM agents WHERE tenant_id = ?1 AND deleted_at IS NULL),
                (SELECT count(*) FROM jobs WHERE tenant_id = ?1),
                (SELECT count(*) FROM restore_points WHERE tenant_id = ?1)",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

/// Deletes empty tenant `id`: it leaves the lists, its tokens stop working and its
/// name is free again (the row stays for the audit log). False if there is none.
///
/// # Errors
/// SQLite's.
pub fn delete_empty(conn: &Connection, id: i64) -> DbResult<bool> {
    let at = super::now();
    let changed = conn.execute(
        "UPDATE tenants SET deleted_at = ?2, name = name || ' (deleted ' || ?2 || ')'
         WHERE id = ?1 AND deleted_at IS NULL",
        params![id, at],
    )?;
    if changed == 1 {
        conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE tenant_id = ?1 AND revoked_at IS NULL",
            params![id, at],
        )?;
    }
    Ok(changed == 1)
}

/// Removes what a purged tenant `id` had from the lists (its storage already emptied):
/// restore points go, jobs go (runs keep their history without them), destinations
/// and agents are marked deleted, agent log lines go.
///
/// # Errors
/// SQLite's.
pub fn purge_rows(conn: &Connection, id: i64) -> DbResult<()> {
    let at = super::now();
    conn.execute(
        "UPDATE runs SET restore_point_id = NULL WHERE tenant_id = ?1",
        [id],
    )?;
    conn.execute("DELETE FROM restore_points WHERE tenant_id = ?1", [id])?;
    conn.execute("DELETE FROM jobs WHERE tenant_id = ?1", [id])?;
    conn.execute(
        "UPDATE destinations SET deleted_at = ?2 WHERE tenant_id = ?1 AND deleted_at IS NULL",
        params![id, at],
    )?;
    conn.execute(
        "UPDATE agents SET deleted_at = ?2 WHERE tenant_id = ?1 AND deleted_at IS NULL",
        params![id, at],
    )?;
    conn.execute("DELETE FROM agent_logs WHERE tenant_id = ?1", [id])?;
    Ok(())
}
