//! What restoring a self-backup would do, compared with the live database: the rows of
//! each table people care about created since the backup (lost), deleted since (they
//! come back) and changed since (they go back), settings and backends changed, and a
//! schema or version downgrade. In numbers and names, and as JSON.

use std::collections::BTreeMap;

use coffer_adapters::catalogue::rusqlite::Connection;
use serde::Serialize;

use super::format::{Counts, Metadata};
use super::Result;

/// One row, named for a person.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Item {
    /// Its ID.
    pub id: i64,
    /// What it is called (or what it was).
    pub name: String,
}

/// One table's differences.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TableDiff {
    /// Rows in the live database that are not in the backup: lost by the restore.
    pub created_since: Vec<Item>,
    /// Rows in the backup no longer in the live database: back after the restore.
    pub deleted_since: Vec<Item>,
    /// Rows in both that differ: they go back to the backup's version.
    pub changed_since: Vec<Item>,
}

impl TableDiff {
    fn is_empty(&self) -> bool {
        self.created_since.is_empty()
            && self.deleted_since.is_empty()
            && self.changed_since.is_empty()
    }
}

/// What a restore would do.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The backup's metadata.
    pub backup: Metadata,
    /// The live database's schema version (`None`: it does not open).
    pub live_schema_version: Option<u32>,
    /// The live database's counts.
    pub live_counts: Option<Counts>,
    /// This binary's schema version.
    pub binary_schema_version: u32,
    /// This binary's version.
    pub binary_version: String,
    /// `same`, `older` (migrations run after the restore) or `newer` (refused).
    pub schema: &'static str,
    /// Whether the running version is older than the backup's (a downgrade of data).
    pub version_downgrade: bool,
    /// By table: tenants, agents, jobs, runs, restore_points, backends, destinations,
    /// notification_channels, tokens.
    pub tables: BTreeMap<&'static str, TableDiff>,
    /// Settings that differ: alert settings, the self-backup settings.
    pub settings_changed: Vec<String>,
    /// There is no live database at all (a new machine), rather than one that does not
    /// open. Set by the caller, which knows.
    pub live_absent: bool,
}

/// For each table: the query giving (id, name, a fingerprint of what people change).
const TABLES: &[(&str, &str)] = &[
    ("tenants", "SELECT id, name, coalesce(deleted_at, '') || '|' || coalesce(backend_id, '') FROM tenants"),
    ("agents", "SELECT id, coalesce(name, hostname), coalesce(revoked_at, '') || '|' || coalesce(deleted_at, '') || '|' || labels || '|' || coalesce(upload_limit, '') FROM agents"),
    ("jobs", "SELECT id, name, sources || '|' || excludes || '|' || coalesce(schedule, '') || '|' || time_zone || '|' || keep_last || '/' || keep_daily || '/' || keep_weekly || '/' || keep_monthly || '|' || level || '|' || coalesce(upload_limit, '') FROM jobs"),
    ("runs", "SELECT id, kind || ' run ' || id, status FROM runs"),
    ("restore_points", "SELECT id, name, '' FROM restore_points"),
    ("backends", "SELECT id, name, endpoint || '|' || region || '|' || bucket || '|' || access_key_id || '|' || hex(secret_sealed) FROM backends"),
    ("destinations", "SELECT id, bucket || '/' || prefix, coalesce(deleted_at, '') FROM destinations"),
    ("notification_channels", "SELECT id, name, config || '|' || events || '|' || enabled FROM notification_channels"),
    ("tokens", "SELECT id, kind || ' token ' || id || CASE WHEN label = '' THEN '' ELSE ' (' || label || ')' END, coalesce(revoked_at, '') FROM tokens WHERE kind != 'agent'"),
];

fn rows(conn: &Connection, sql: &str) -> Result<BTreeMap<i64, (String, String)>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            (row.get::<_, String>(1)?, row.get::<_, String>(2)?),
        ))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn setting(conn: &Connection, sql: &str) -> Vec<String> {
    conn.prepare(sql)
        .and_then(|mut st| {
            st.query_map([], |row| row.get::<_, String>(0))?
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .unwrap_or_default()
}

/// Compares the backup's database (`backup`, opened) with the live one (`live`, `None`
/// when it does not open).
///
/// # Errors
/// SQLite's, reading the backup's database.
pub fn compare(
    metadata: &Metadata,
    backup: &Connection,
    live: Option<&Connection>,
) -> Result<Preview> {
    let binary_schema_version = crate::db::schema_version_supported();
    let schema = match metadata.schema_version.cmp(&binary_schema_version) {
        std::cmp::Ordering::Equal => "same",
        std::cmp::Ordering::Less => "older",
        std::cmp::Ordering::Greater => "newer",
    };
    let mut tables = BTreeMap::new();
    let mut settings_changed = Vec::new();
    let (live_schema_version, live_counts) = match live {
        Some(live) => {
            let (counts, version) = super::counts_of(live)?;
            (Some(version), Some(counts))
        }
        None => (None, None),
    };
    if let Some(live) = live {
        for (table, sql) in TABLES {
            let now = rows(live, sql)?;
            // An older backup's table may lack a column (or the table): compare by ID
            // alone then, or not at all.
            let then = rows(backup, sql)
                .or_else(|_| {
                    rows(
                        backup,
                        &format!("SELECT id, CAST(id AS TEXT), '' FROM {table}"),
                    )
                })
                .unwrap_or_default();
            let mut diff = TableDiff::default();
            for (id, (name, print)) in &now {
                match then.get(id) {
                    None => diff.created_since.push(Item {
                        id: *id,
                        name: name.clone(),
                    }),
                    Some((old_name, old_print)) if old_name != name || old_print != print => {
                        diff.changed_since.push(Item {
                            id: *id,
                            name: if old_name == name {
                                name.clone()
                            } else {
                                format!("{name} (was {old_name})")
                            },
                        });
                    }
                    Some(_) => {}
                }
            }
            for (id, (name, _)) in &then {
                if !now.contains_key(id) {
                    diff.deleted_since.push(Item {
                        id: *id,
                        name: name.clone(),
                    });
                }
            }
            tables.insert(*table, diff);
        }
        for (what, sql) in [
            (
                "alert settings",
                "SELECT tenant_id || ':' || missed_grace_secs || '/' || offline_after_secs || '/' || repeat_secs FROM alert_settings ORDER BY tenant_id",
            ),
            (
                "self-backup settings",
                "SELECT destination || '|' || keep || '|' || schedule || '|' || hex(key_id) FROM self_backup_settings",
            ),
        ] {
            if setting(backup, sql) != setting(live, sql) {
                settings_changed.push(what.to_owned());
            }
        }
    }
    Ok(Preview {
        version_downgrade: version_older(env!("CARGO_PKG_VERSION"), &metadata.server_version),
        backup: metadata.clone(),
        live_schema_version,
        live_counts,
        binary_schema_version,
        binary_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema,
        tables,
        settings_changed,
        live_absent: false,
    })
}

/// Whether version `a` is older than `b` (dotted numbers; anything else compares equal).
fn version_older(a: &str, b: &str) -> bool {
    let parse =
        |v: &str| -> Vec<u64> { v.split(['.', '-']).map_while(|p| p.parse().ok()).collect() };
    parse(a) < parse(b)
}

fn list(items: &[Item]) -> String {
    const SHOWN: usize = 8;
    let mut names: Vec<String> = items
        .iter()
        .take(SHOWN)
        .map(|i| format!("{} ({})", i.name, i.id))
        .collect();
    if items.len() > SHOWN {
        names.push(format!("and {} more", items.len() - SHOWN));
    }
    names.join(", ")
}

impl Preview {
    /// The preview for a person.
    pub fn text(&self, name: &str) -> String {
        let b = &self.backup;
        let mut out = format!(
            "Self-backup {name}\n  made {} ({}) by coffer-server {}, schema {}\n  holds {} tenants, {} agents, {} jobs, {} runs, {} restore points\n",
            b.created_at,
            b.reason.as_str(),
            b.server_version,
            b.schema_version,
            b.counts.tenants,
            b.counts.agents,
            b.counts.jobs,
            b.counts.runs,
            b.counts.restore_points
        );
        match self.schema {
            "older" => out.push_str(&format!(
                "  its schema ({}) is older than this server's ({}): migrations run after the restore\n",
                b.schema_version, self.binary_schema_version
            )),
            "newer" => out.push_str(&format!(
                "  its schema ({}) is NEWER than this server's ({}): this version cannot restore it; use coffer-server {} or later\n",
                b.schema_version, self.binary_schema_version, b.server_version
            )),
            _ => {}
        }
        if self.version_downgrade {
            out.push_str(&format!(
                "  it was made by a newer coffer-server ({}) than this one ({})\n",
                b.server_version, self.binary_version
            ));
        }
        let Some(live) = self.live_counts else {
            out.push_str(if self.live_absent {
                "\nThere is no live database here: the restore creates it.\n"
            } else {
                "\nThe live database does not open: the restore replaces it whole (the \
                 unreadable file is kept aside).\n"
            });
            return out;
        };
        out.push_str(&format!(
            "Live database: schema {}, {} tenants, {} agents, {} jobs, {} runs, {} restore points\n\nRestoring it would:\n",
            self.live_schema_version.unwrap_or(0),
            live.tenants,
            live.agents,
            live.jobs,
            live.runs,
            live.restore_points
        ));
        let mut any = false;
        for (table, diff) in &self.tables {
            if diff.is_empty() {
                continue;
            }
            any = true;
            let what = table.replace('_', " ");
            if !diff.created_since.is_empty() {
                out.push_str(&format!(
                    "  lose {} {what} created since: {}\n",
                    diff.created_since.len(),
                    list(&diff.created_since)
                ));
            }
            if !diff.deleted_since.is_empty() {
                out.push_str(&format!(
                    "  bring back {} {what} deleted since: {}\n",
                    diff.deleted_since.len(),
                    list(&diff.deleted_since)
                ));
            }
            if !diff.changed_since.is_empty() {
                out.push_str(&format!(
                    "  undo changes to {} {what}: {}\n",
                    diff.changed_since.len(),
                    list(&diff.changed_since)
                ));
            }
        }
        for s in &self.settings_changed {
            any = true;
            out.push_str(&format!("  put back the {s} as they were\n"));
        }
        if !any {
            out.push_str("  change nothing: the live database holds the same rows\n");
        }
        out
    }
}
