//! Opening a server on a data directory (database, embedded store, KEK, first admin
//! token) and serving it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;

use coffer_core::SecretKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::{self as dbm, tokens, Db};
use crate::kek::{self, KekSource};
use crate::keys;
use crate::state::AppState;
use crate::stores::Stores;
use crate::token::{NewToken, TokenKind};

/// A server ready to serve. `Debug` leaves the admin token out.
pub struct Started {
    /// The shared state (for `app` and tests).
    pub state: AppState,
    /// The admin token, on the very first start only: print it once.
    pub admin_token: Option<Zeroizing<String>>,
    /// The KEK file this start created, if it did.
    pub kek_created: Option<PathBuf>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("state", &self.state)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("kek_created", &self.kek_created)
            .finish()
    }
}

/// Opens data directories.
#[derive(Debug)]
pub struct Server;

/// Why the server cannot start. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The KEK is missing, malformed or unreadable.
    #[error("server KEK: {0}")]
    Kek(#[from] kek::KekError),
    /// The KEK opens none of the database's keys.
    #[error(
        "server KEK: the configured KEK (ID {configured}) is not the one the database's keys \
         are wrapped under ({in_use}); configure that KEK, or rotate with `coffer-server \
         rotate-kek`"
    )]
    WrongKek {
        /// The configured KEK's ID.
        configured: String,
        /// The IDs in use.
        in_use: String,
    },
    /// No KEK configured and the database already has keys.
    #[error(
        "server KEK: none configured and {0} does not exist, but the database already holds \
         keys; set --kek-file or ${env} to the KEK they were wrapped under",
        env = kek::KEK_FILE_ENV
    )]
    KekLost(PathBuf),
    /// Anything else (database, folders, settings).
    #[error("{0}")]
    Other(String),
}

impl Server {
    /// Opens (creating on first start) the server in `config.data_dir`.
    ///
    /// The KEK comes from `kek_source`; with none, from `kek.hex` in the data
    /// directory, which the first start creates (mode 0600). A later start without it
    /// is refused, as is a KEK that opens none of the stored keys.
    ///
    /// # Errors
    /// [`StartError`] saying what to fix.
    pub fn open(config: Config, kek_source: Option<KekSource>) -> Result<Started, StartError> {
        let fresh = !config.data_dir.exists();
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::Other(format!("{}: {e}", config.data_dir.display())))?;
        // A data directory this start creates is the server's alone: the database
        // holds token hashes and wrapped keys, which other users have no reason to read.
        #[cfg(unix)]
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StartError::Other(format!("{}: {e}", config.data_dir.display())))?;
        }
        #[cfg(not(unix))]
        let _ = fresh;
        let db = Db::open(&config.database_path())
            .map_err(|e| StartError::Other(format!("database: {e}")))?;
        let (kek, kek_created) = resolve_kek(&db, &config.data_dir, kek_source)?;
        let admin_token = db
            .blocking(|cat| -> Result<_, crate::error::ApiError> {
                let conn = cat.connection_mut();
                dbm::immediate(conn, |tx| {
                    if tokens::has_admin_token(tx)? {
                        return Ok(None);
                    }
                    let token = NewToken::generate(TokenKind::Admin);
                    let id = tokens::insert_token(
                        tx,
                        TokenKind::Admin,
                        &token.hash,
                        None,
                        None,
                        "first start",
                        None,
                    )?;
                    audit::record(
                        tx,
                        &AuditEntry {
                            tenant_id: None,
                            actor: "system".to_owned(),
                            action: "admin_token.create",
                            target: format!("admin:{id}"),
                            outcome: AuditOutcome::Ok,
                            detail: "first start".to_owned(),
                        },
                    )?;
                    Ok(Some(token.secret))
                })
            })
            .map_err(|e| StartError::Other(format!("database: {e:?}")))?;
        let stores =
            Stores::open(&config.data_dir, &config.public_url).map_err(StartError::Other)?;
        Ok(Started {
            state: AppState::new(db, kek, config, stores),
            admin_token,
            kek_created,
        })
    }
}

/// Replaces the admin token of the data directory in `config` without a running server
/// (for a lost or leaked token): every admin token is revoked and a new one made, in
/// one transaction, audited. Returns the new token, to show once.
///
/// # Errors
/// A message naming what failed (no database there, SQLite).
pub fn rotate_admin_token(data_dir: &Path) -> Result<Zeroizing<String>, String> {
    let path = Config::new(
        data_dir.to_owned(),
        "http://127.0.0.1/".parse().map_err(|e| format!("{e}"))?,
    )
    .database_path();
    if !path.exists() {
        return Err(format!("{}: no server database here", path.display()));
    }
    let db = Db::open(&path).map_err(|e| format!("database: {e}"))?;
    db.blocking(|cat| -> Result<_, crate::error::ApiError> {
        dbm::immediate(cat.connection_mut(), |tx| {
            let revoked = tokens::revoke_admin_tokens(tx)?;
            let token = NewToken::generate(TokenKind::Admin);
            let id = tokens::insert_token(
                tx,
                TokenKind::Admin,
                &token.hash,
                None,
                None,
                "rotated offline",
                None,
            )?;
            audit::record(
                tx,
                &AuditEntry {
                    tenant_id: None,
                    actor: "system".to_owned(),
                    action: "admin_token.rotate",
                    target: format!("admin:{id}"),
                    outcome: AuditOutcome::Ok,
                    detail: format!("offline, from the command line; {revoked} revoked"),
                },
            )?;
            Ok(token.secret)
        })
    })
    .map_err(|e| format!("database: {e:?}"))
}

fn resolve_kek(
    db: &Db,
    data_dir: &Path,
    source: Option<KekSource>,
) -> Result<(SecretKey, Option<PathBuf>), StartError> {
    let in_use = db
        .blocking(|cat| keys::kek_ids_in_use(cat))
        .map_err(|e| StartError::Other(format!("database: {e:?}")))?;
    let (kek, created) = match source {
        Some(source) => (source.load()?, None),
        None => {
            let path = data_dir.join(kek::DEFAULT_KEK_FILE);
            match kek::load_file(&path) {
                Ok(k) => (k, None),
                Err(kek::KekError::Missing(_)) if in_use.is_empty() => {
                    (kek::generate_file(&path)?, Some(path))
                }
                Err(kek::KekError::Missing(_)) => return Err(StartError::KekLost(path)),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let id = hex::encode(kek.id().as_bytes());
    if !in_use.is_empty() && !in_use.contains(&id) {
        return Err(StartError::WrongKek {
            configured: id,
            in_use: in_use.join(", "),
        });
    }
    Ok((kek, created))
}

/// Descriptors kept for the database, the embedded store's files and the listener.
const SPARE_DESCRIPTORS: u64 = 256;

/// How many connections to serve at once: `wanted`, or fewer if the open-files limit
/// (raised to its hard limit first) leaves no room for them. Past that limit accept
/// would fail with EMFILE, and clients would see resets instead of waiting in the
/// backlog.
fn connection_limit(wanted: usize) -> usize {
    let wanted = wanted.max(1);
    let Ok(files) = rlimit::increase_nofile_limit(u64::MAX) else {
        return wanted;
    };
    let room = usize::try_from(files.saturating_sub(SPARE_DESCRIPTORS))
        .unwrap_or(usize::MAX)
        .max(1);
    if room < wanted {
        tracing::warn!(
            "the open-files limit ({files}) allows {room} connections at once, not {wanted}: \
             raise it (ulimit -n, LimitNOFILE=) for more agents"
        );
    }
    wanted.min(room)
}

/// Serves `started` on `listener` (with the scheduler) until `shutdown` resolves.
///
/// Each connection is served by hyper with a header read timeout (a client that
/// trickles its headers, or idles between requests, is dropped); at most
/// `max_connections` are served at once, and the rest wait in the listen backlog. At
/// shutdown, requests in flight get up to [`SHUTDOWN_GRACE`] to finish.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let scheduler = tokio::spawn(crate::scheduler::run(state.clone()));
    let notifier = tokio::spawn(crate::notify::run(state.clone()));
    let app = crate::app(state.clone());
    let permits = Arc::new(Semaphore::new(connection_limit(
        state.config.max_connections,
    )));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        );
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    scheduler.abort();
    notifier.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}: stopping anyway");
    }
    state.background.idle().await;
    if let Err(e) = crate::scheduler::flush_presence(&state).await {
        tracing::error!("writing heartbeats at shutdown failed: {e:?}");
    }
    Ok(())
}

/// How long requests in flight (long polls included) get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(40);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_in_the_open_files_limit() {
        let served = connection_limit(usize::MAX);
        let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
        assert!(served as u64 + SPARE_DESCRIPTORS <= soft.max(SPARE_DESCRIPTORS + 1));
        // A modest request is granted as asked.
        assert_eq!(connection_limit(16), 16);
        assert_eq!(connection_limit(0), 1);
    }
}
