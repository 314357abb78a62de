//! Repository keys and sealed credentials under the server KEK.
//!
//! A repository's secret is 32 random bytes stored only as a `COFFER/K` key-wrap
//! envelope (coffer-core's [`envelope`]) under the KEK, with the tenant and repository
//! bound as context: an envelope copied to another repository's row does not open.
//! Storage credentials kept in the database (an S3 secret key) are sealed streams under
//! the KEK, with the backend bound as context. KEK rotation ([`rotate_kek`]) rewraps
//! every envelope in one transaction (the catalogue's `rewrap_kek`); the wrapped keys
//! stay the same, so everything sealed under them stays readable.

use std::io::Read;

use coffer_adapters::bridge::{OpenReader, SealReader};
use coffer_adapters::catalogue::{Catalogue, NewRepository, RepositoryId};
use coffer_adapters::default_provider;
use coffer_core::envelope::{self, Purpose};
use coffer_core::{SecretKey, Suite};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::db::backends;
use crate::error::{ApiError, ApiResult};

/// The suite new envelopes and repositories use.
pub const SUITE: Suite = Suite::Aes256Gcm;

/// The suite's name on the wire.
pub fn suite_name(suite: Suite) -> &'static str {
    match suite {
        Suite::ChaCha20Poly1305 => "chacha20-poly1305",
        _ => "aes-256-gcm",
    }
}

/// The context an envelope of repository `name` of `tenant` is bound to.
pub fn repository_context(tenant_id: i64, name: &str) -> Vec<u8> {
    format!("coffer-server/v1 repository tenant={tenant_id} name={name}").into_bytes()
}

/// The repository name a destination's repository gets.
pub fn repository_name(tenant_id: i64, prefix: &str) -> String {
    format!("t{tenant_id}:{prefix}")
}

/// Creates a repository with a fresh random secret wrapped under `kek`, and returns
/// its ID and the secret.
///
/// # Errors
/// Catalogue and core errors, as 500s.
pub fn create_repository(
    cat: &mut Catalogue,
    kek: &SecretKey,
    tenant_id: i64,
    name: &str,
    location: &str,
) -> ApiResult<(RepositoryId, SecretKey)> {
    let key = SecretKey::generate(&mut OsRng);
    let context = repository_context(tenant_id, name);
    let wrapped = envelope::wrap_key(
        &default_provider(),
        SUITE,
        kek,
        &key,
        Purpose::RepositoryKey,
        1,
        &context,
        &mut OsRng,
    )
    .map_err(ApiError::internal)?;
    let repo = cat.create_repository_with_id(
        RepositoryId(crate::db::new_id()),
        &NewRepository {
            name,
            location,
            suite: SUITE,
            key_id: key.id(),
        },
        &[&wrapped],
    )?;
    Ok((repo.id, key))
}

/// Unwraps repository `id`'s newest key (it belongs to `tenant_id`).
///
/// # Errors
/// 500 if the envelope is missing or does not open (wrong KEK, altered row).
pub fn repository_key(
    cat: &Catalogue,
    kek: &SecretKey,
    tenant_id: i64,
    id: RepositoryId,
) -> ApiResult<(SecretKey, coffer_adapters::catalogue::Repository)> {
    let repo = cat
        .repository(id)?
        .ok_or_else(|| ApiError::internal(format!("{id} is missing")))?;
    let stored = cat
        .latest_envelope(id, Purpose::RepositoryKey)?
        .ok_or_else(|| ApiError::internal(format!("{id} has no key envelope")))?;
    let context = repository_context(tenant_id, &repo.name);
    let (key, _) = envelope::unwrap_key(
        &default_provider(),
        kek,
        &stored.envelope,
        Purpose::RepositoryKey,
        &context,
    )
    .map_err(|e| ApiError::internal(format!("unwrapping the key of {id}: {e}")))?;
    Ok((key, repo))
}

/// The context a backend's sealed secret is bound to.
pub fn backend_context(name: &str) -> Vec<u8> {
    format!("coffer-server/v1 backend-secret name={name}").into_bytes()
}

/// Seals `secret` under `kek` with `context`.
///
/// # Errors
/// Core errors as 500s.
pub fn seal_secret(kek: &SecretKey, context: &[u8], secret: &[u8]) -> ApiResult<Vec<u8>> {
    let mut reader = SealReader::new(&default_provider(), SUITE, kek, context, secret, 1)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(ApiError::internal)?;
    Ok(out)
}

/// Opens what [`seal_secret`] sealed.
///
/// # Errors
/// 500 for a wrong KEK or altered bytes.
pub fn open_secret(
    kek: &SecretKey,
    context: &[u8],
    sealed: &[u8],
) -> ApiResult<Zeroizing<Vec<u8>>> {
    let mut reader = OpenReader::new(&default_provider(), kek, context, sealed)?;
    let mut out = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut out)
        .map_err(|e| ApiError::internal(format!("opening a sealed secret: {e}")))?;
    Ok(out)
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Repository key envelopes rewrapped.
    pub envelopes: usize,
    /// Backend secrets resealed.
    pub backend_secrets: usize,
    /// Notification channels' secrets resealed.
    pub notification_secrets: usize,
}

/// Rewraps every envelope under `old` so that `new` opens it, in one transaction, then
/// reseals the stored backend secrets (a second transaction; rerunning the rotation
/// with the same two KEKs finishes an interrupted one, since each step only touches
/// what is still under `old`).
///
/// # Errors
/// Anything that fails rolls its transaction back: an envelope that `old` does not
/// open (so the wrong old KEK changes nothing), SQLite errors.
pub fn rotate_kek(cat: &mut Catalogue, old: &SecretKey, new: &SecretKey) -> ApiResult<Rotation> {
    // Each envelope's context needs its repository's tenant and name: read them first,
    // since the rewrap runs inside the catalogue's own transaction.
    let mut contexts = std::collections::HashMap::new();
    {
        let conn = cat.connection();
        let mut st = conn.prepare(
            "SELECT r.id, d.tenant_id, r.name FROM repositories r
             JOIN destinations d ON d.repository_id = r.id",
        )?;
        let rows = st.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (id, tenant, name) = row?;
            contexts.insert(id, repository_context(tenant, &name));
        }
    }
    let provider = default_provider();
    let envelopes = cat.rewrap_kek(&old.id(), |stored| {
        let context = contexts.get(&stored.repository_id.0).ok_or_else(|| {
            coffer_adapters::Error::CatalogueMisuse {
                what: format!("rewrapping {}", stored.id),
                reason: "the repository has no destination".to_owned(),
            }
        })?;
        envelope::rewrap_key(
            &provider,
            old,
            new,
            &stored.envelope,
            Purpose::RepositoryKey,
            context,
            stored.suite,
            &mut OsRng,
        )
        .map_err(coffer_adapters::Error::Core)
    })?;

    let old_hex = hex::encode(old.id().as_bytes());
    let new_hex = hex::encode(new.id().as_bytes());
    let conn = cat.connection_mut();
    let backend_secrets = crate::db::immediate(conn, |tx| {
        let mut count = 0;
        for b in backends::backends(tx)? {
            let kek_id: String =
                tx.query_row("SELECT kek_id FROM backends WHERE id = ?1", [b.id], |r| {
                    r.get(0)
                })?;
            if kek_id != old_hex {
                continue;
            }
            let context = backend_context(&b.name);
            let secret = open_secret(old, &context, &b.secret_sealed)?;
            let sealed = seal_secret(new, &context, &secret)?;
            backends::reseal_backend(tx, b.id, &sealed, &new_hex)?;
            count += 1;
        }
        Ok::<_, ApiError>(count)
    })?;
    // Notification secrets are bound to their channel: resealed in one transaction. A
    // secret that already opens under the new KEK (a rotation re-run) is left as is.
    let notification_secrets = crate::db::immediate(conn, |tx| {
        let mut st =
            tx.prepare("SELECT id, secret FROM notification_channels WHERE secret IS NOT NULL")?;
        let rows: Vec<(i64, Vec<u8>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        drop(st);
        let mut count = 0;
        for (id, sealed) in rows {
            let context = crate::notify::secret_context(id);
            let Ok(secret) = open_secret(old, &context, &sealed) else {
                open_secret(new, &context, &sealed)?;
                continue;
            };
            let resealed = seal_secret(new, &context, &secret)?;
            tx.execute(
                "UPDATE notification_channels SET secret = ?2 WHERE id = ?1",
                coffer_adapters::catalogue::rusqlite::params![id, resealed],
            )?;
            count += 1;
        }
        Ok::<_, ApiError>(count)
    })?;
    Ok(Rotation {
        envelopes,
        backend_secrets,
        notification_secrets,
    })
}

/// The KEK IDs the database's envelopes and secrets are under (to refuse starting with
/// a KEK that opens none of them).
///
/// # Errors
/// SQLite's.
pub fn kek_ids_in_use(cat: &Catalogue) -> ApiResult<Vec<String>> {
    let conn = cat.connection();
    let mut st = conn.prepare(
        "SELECT kek_id FROM key_envelopes WHERE kek_id IS NOT NULL
         UNION SELECT kek_id FROM backends",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The `rotate-kek` command: rotates the database in `data_dir` from the KEK at
/// `old` to the one in `new_file`, and audits it. Returns what was done and the new
/// KEK's ID.
///
/// # Errors
/// A message saying what is wrong (KEKs, database); nothing changes on error.
pub fn rotate_data_dir(
    data_dir: &std::path::Path,
    old: &crate::kek::KekSource,
    new_file: &std::path::Path,
) -> Result<(Rotation, String), String> {
    let config = crate::config::Config::new(
        data_dir.to_owned(),
        url::Url::parse("http://127.0.0.1/").map_err(|e| e.to_string())?,
    );
    let db = crate::db::Db::open(&config.database_path()).map_err(|e| format!("database: {e}"))?;
    let old = old.load().map_err(|e| format!("current KEK: {e}"))?;
    let new = crate::kek::load_file(new_file).map_err(|e| format!("new KEK: {e}"))?;
    if old.id() == new.id() {
        return Err("the new KEK is the current one".to_owned());
    }
    let new_id = hex::encode(new.id().as_bytes());
    db.blocking(|cat| {
        let in_use = kek_ids_in_use(cat)?;
        let old_id = hex::encode(old.id().as_bytes());
        if !in_use.is_empty() && !in_use.contains(&old_id) && !in_use.contains(&new_id) {
            return Err(ApiError::Conflict {
                code: "wrong_kek",
                message: format!(
                    "the current KEK (ID {old_id}) wraps none of the database's keys ({})",
                    in_use.join(", ")
                ),
            });
        }
        let report = rotate_kek(cat, &old, &new)?;
        crate::db::audit::record(
            cat.connection(),
            &crate::db::audit::AuditEntry {
                tenant_id: None,
                actor: "system".to_owned(),
                action: "kek.rotate",
                target: format!("kek:{new_id}"),
                outcome: crate::db::audit::AuditOutcome::Ok,
                detail: format!(
                    "from {old_id}: {} envelopes, {} backend secrets, {} notification secrets",
                    report.envelopes, report.backend_secrets, report.notification_secrets
                ),
            },
        )?;
        Ok(report)
    })
    .map(|r| (r, new_id))
    .map_err(|e| match e {
        ApiError::Internal(detail) => detail,
        other => other.to_string(),
    })
}
