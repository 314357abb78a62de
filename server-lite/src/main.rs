//! `coffer-server`: the lite control server's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coffer_server::config::Config;
use coffer_server::kek::{self, KekSource};
use coffer_server::server::{self, Server};

mod selfbackup_cmd;

/// Coffer's lite control server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the first start creates the database, the KEK file if none is
    /// configured, and prints the admin token once).
    Serve {
        /// Where the database, the embedded store and the default KEK file live.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The URL agents reach the server at (default: http://LISTEN).
        #[arg(long)]
        public_url: Option<String>,
        /// The KEK file (64 hex digits, mode 0600). Default: $COFFER_SERVER_KEK_FILE,
        /// then $COFFER_SERVER_KEK (the KEK itself), then DATA_DIR/kek.hex.
        #[arg(long)]
        kek_file: Option<PathBuf>,
        /// Behind a reverse proxy: rate-limit by the last X-Forwarded-For address
        /// instead of the proxy's.
        #[arg(long)]
        trust_forwarded_for: bool,
        /// Connections served at once (one per online agent, plus operators); more
        /// wait in the listen backlog. Lowered to what the open-files limit allows.
        #[arg(long, default_value_t = coffer_server::config::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Serve /metrics to a scraper presenting the token in this file (mode 0600;
        /// default: $COFFER_SERVER_METRICS_TOKEN holds the token itself; neither: off).
        #[arg(long, value_name = "FILE")]
        metrics_token_file: Option<PathBuf>,
        /// Let notification webhooks go to loopback, private and link-local addresses
        /// (off: a tenant's operator cannot make the server call its own network).
        #[arg(long)]
        notify_allow_private_webhooks: bool,
    },
    /// Replace the admin token (a lost or leaked one): every admin token stops working
    /// and a new one is printed once. Works with the server stopped or running.
    RotateAdminToken {
        /// The data directory.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
    },
    /// The server's own backups: its database, settings and KEK, sealed to a recovery
    /// key only the admin holds (FORMAT.md §26).
    SelfBackup {
        /// What to do.
        #[command(subcommand)]
        action: selfbackup_cmd::SelfBackupAction,
    },
    /// Replace the database with a self-backup's, after a preview of what would be lost
    /// or changed (`--preview` shows only that) and a confirmation. A pre-restore
    /// self-backup is made first; a running server is stopped and started again.
    SelfRestore(selfbackup_cmd::SelfRestoreArgs),
    /// Rebuild from a self-backup when the server will not start (a corrupt database, a
    /// bad upgrade, a new machine): offline, from the self-backups' folder or bucket and
    /// the recovery kit alone.
    EmergencyRestore(selfbackup_cmd::EmergencyArgs),
    /// Upgrade the running server to another binary: a pre-upgrade self-backup, the
    /// binary replaced, health checked (/healthz, the database's integrity, a scheduler
    /// tick), and everything rolled back if a check fails.
    Upgrade(selfbackup_cmd::UpgradeArgs),
    /// Create a new random KEK file (mode 0600; never overwrites).
    GenKek {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rewrap every repository key (and reseal stored S3 secrets) from the current KEK
    /// to a new one, in one transaction. Stop the server first; then point it at the
    /// new KEK.
    RotateKek {
        /// The data directory.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
        /// The current KEK file (default as for `serve`).
        #[arg(long)]
        kek_file: Option<PathBuf>,
        /// The new KEK file (create it with `gen-kek`).
        #[arg(long)]
        new_kek_file: PathBuf,
    },
}

pub(crate) fn kek_source(flag: Option<PathBuf>) -> Option<KekSource> {
    if let Some(path) = flag {
        return Some(KekSource::File(path));
    }
    if let Some(path) = std::env::var_os(kek::KEK_FILE_ENV) {
        return Some(KekSource::File(path.into()));
    }
    std::env::var_os(kek::KEK_ENV).map(|_| KekSource::Env)
}

fn main() -> ExitCode {
    // Colours only on a terminal: a log file or journal gets plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("coffer-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::SelfBackup { action } => selfbackup_cmd::self_backup(action),
        Command::SelfRestore(args) => selfbackup_cmd::self_restore(args),
        Command::EmergencyRestore(args) => selfbackup_cmd::emergency_restore(args),
        Command::Upgrade(args) => selfbackup_cmd::upgrade(args),
        Command::GenKek { out } => {
            let key = kek::generate_file(&out).map_err(|e| e.to_string())?;
            println!(
                "created {} (KEK ID {}), mode 0600",
                out.display(),
                hex::encode(key.id().as_bytes())
            );
            Ok(())
        }
        Command::RotateAdminToken { data_dir } => {
            let token = server::rotate_admin_token(&data_dir)?;
            eprintln!("every earlier admin token is revoked");
            println!(
                "admin token (shown once, stored only as a hash): {}",
                token.as_str()
            );
            Ok(())
        }
        Command::RotateKek {
            data_dir,
            kek_file,
            new_kek_file,
        } => {
            let source = kek_source(kek_file)
                .unwrap_or_else(|| KekSource::File(data_dir.join(kek::DEFAULT_KEK_FILE)));
            let report = coffer_server::keys::rotate_data_dir(&data_dir, &source, &new_kek_file)?;
            println!(
                "rewrapped {} repository key envelopes and resealed {} backend secrets and {} \
                 notification secrets under KEK {}.\n\
                 Now point the server at {} (or replace the old KEK file with it) and keep \
                 the old KEK until you have checked a restore.",
                report.0.envelopes,
                report.0.backend_secrets,
                report.0.notification_secrets,
                report.1,
                new_kek_file.display()
            );
            Ok(())
        }
        Command::Serve {
            data_dir,
            listen,
            public_url,
            kek_file,
            trust_forwarded_for,
            max_connections,
            metrics_token_file,
            notify_allow_private_webhooks,
        } => {
            let public = public_url.unwrap_or_else(|| format!("http://{listen}"));
            let public = url::Url::parse(&public).map_err(|e| format!("--public-url: {e}"))?;
            let mut config = Config::new(data_dir, public);
            config.trust_forwarded_for = trust_forwarded_for;
            config.max_connections = max_connections;
            config.metrics_token_hash = metrics_token(metrics_token_file.as_deref())?;
            config.notify.allow_private_webhooks = notify_allow_private_webhooks;
            if !config.data_dir.exists() {
                // The server's alone: the database holds token hashes and wrapped keys.
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&config.data_dir)
                    .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
            }
            // Held while serving: a restore or an upgrade finds (and stops) this process.
            let _lock = coffer_server::selfbackup::process::hold(&config.data_dir)
                .map_err(|e| e.to_string())?;
            let settings = config.record();
            let started = Server::open(config, kek_source(kek_file)).map_err(|e| e.to_string())?;
            coffer_server::selfbackup::write_file(
                &started
                    .state
                    .config
                    .data_dir
                    .join(coffer_server::selfbackup::CONFIG_FILE),
                &serde_json::to_vec_pretty(&settings).unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
            if let Some(path) = &started.kek_created {
                eprintln!(
                    "created a new server KEK in {} (mode 0600). Back it up apart from the \
                     data directory: without it no repository key can be recovered.",
                    path.display()
                );
            }
            if let Some(token) = &started.admin_token {
                // The one time this token is shown; the server keeps only its hash.
                println!(
                    "admin token (shown once, stored only as a hash): {}",
                    token.as_str()
                );
            }
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("listening on {listen}: {e}"))?;
                tracing::info!("coffer-server listening on {listen}");
                server::serve(listener, started.state, shutdown_signal())
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    }
}

/// Ctrl-C or SIGTERM (what service managers send) ends the server gracefully.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The metrics token's hash, from `--metrics-token-file` (refused if others may read
/// it) or `$COFFER_SERVER_METRICS_TOKEN`; `None` if neither is given.
fn metrics_token(file: Option<&std::path::Path>) -> Result<Option<[u8; 32]>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let token = match file {
        Some(path) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("--metrics-token-file {}: {e}", path.display()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "--metrics-token-file {}: others may read it: chmod 600 it",
                    path.display()
                ));
            }
            zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--metrics-token-file {}: {e}", path.display()))?,
            )
        }
        None => match std::env::var(METRICS_TOKEN_ENV) {
            Ok(t) => zeroize::Zeroizing::new(t),
            Err(_) => return Ok(None),
        },
    };
    if token.trim().len() < 16 {
        return Err("the metrics token is shorter than 16 characters".to_owned());
    }
    Ok(Some(coffer_server::metrics::token_hash(&token)))
}

/// The environment variable that may hold the metrics token.
const METRICS_TOKEN_ENV: &str = "COFFER_SERVER_METRICS_TOKEN";
