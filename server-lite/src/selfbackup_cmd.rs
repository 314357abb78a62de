//! `coffer-server self-backup …`, `self-restore` and `emergency-restore`: the command
//! lines over `coffer_server::selfbackup`. Secrets (the recovery kit, a passphrase)
//! come from files or the environment, never from arguments.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use coffer_adapters::storage::{S3Config, S3Storage, Storage};
use coffer_core::SecretKey;
use coffer_server::selfbackup::format::{self, Unlock};
use coffer_server::selfbackup::{self, preview, restore, Destination, InitOptions};
use zeroize::Zeroizing;

/// Where a passphrase may come from instead of a file.
const PASSPHRASE_ENV: &str = "COFFER_SELF_BACKUP_PASSPHRASE";
/// Where an emergency restore from S3 reads the secret key.
const S3_SECRET_ENV: &str = "COFFER_S3_SECRET_ACCESS_KEY";
/// What a person types to confirm a restore.
const CONFIRM_WORD: &str = "RESTORE";

/// `self-backup` actions.
#[derive(Subcommand)]
pub(crate) enum SelfBackupAction {
    /// Set self-backups up (once; again to change them, with a new recovery key): where
    /// they go, how many are kept, when. Prints the recovery kit once: keep it apart
    /// from the server — it and a self-backup rebuild the server anywhere.
    Init {
        /// The data directory.
        #[arg(long, default_value = "./coffer-data")]
        data_dir: PathBuf,
        /// A local folder (absolute path; best another disk or a mounted share).
        #[arg(long, conflicts_with = "backend", required_unless_present = "backend")]
        to: Option<PathBuf>,
        /// A registered S3 backend's ID (`coffer server backend list`).
        #[arg(long)]
        backend: Option<i64>,
        /// The key prefix in the backend's bucket.
        #[arg(long, default_value = "coffer-server/self-backups")]
        prefix: String,
        /// Self-backups kept (the oldest go).
        #[arg(long, default_value_t = selfbackup::DEFAULT_KEEP)]
        keep: u32,
        /// When, as cron in UTC (default: Sundays 03:00).
        #[arg(long, default_value = selfbackup::DEFAULT_SCHEDULE)]
        schedule: String,
        /// A file holding a passphrase that opens the self-backups too (besides the
        /// kit); or $COFFER_SELF_BACKUP_PASSPHRASE.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Write the recovery kit to this new file (mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        kit_out: Option<PathBuf>,
    },
    /// Make a self-backup now (works while the server runs).
    Run {
        #[command(flatten)]
        server: ServerDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the self-backups in the destination, and those recorded (with failures).
    List {
        #[command(flatten)]
        server: ServerDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The data directory and the KEK, as `serve` takes them.
#[derive(Args)]
pub(crate) struct ServerDir {
    /// The data directory.
    #[arg(long, default_value = "./coffer-data")]
    pub(crate) data_dir: PathBuf,
    /// The KEK file (default as for `serve`).
    #[arg(long)]
    pub(crate) kek_file: Option<PathBuf>,
}

/// How a backup is unlocked.
#[derive(Args)]
pub(crate) struct UnlockArgs {
    /// The recovery kit (a text file).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    pub(crate) kit_file: Option<PathBuf>,
    /// A file holding the passphrase (or $COFFER_SELF_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// `self-restore`.
#[derive(Args)]
pub(crate) struct SelfRestoreArgs {
    #[command(flatten)]
    pub(crate) server: ServerDir,
    /// The self-backup: a file, or a name in the configured destination.
    pub(crate) backup: String,
    #[command(flatten)]
    pub(crate) unlock: UnlockArgs,
    /// Only show what the restore would change.
    #[arg(long)]
    pub(crate) preview: bool,
    /// Restore without asking (for scripts).
    #[arg(long)]
    pub(crate) yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `emergency-restore`.
#[derive(Args)]
pub(crate) struct EmergencyArgs {
    /// The data directory to restore into (created if missing).
    #[arg(long, default_value = "./coffer-data")]
    pub(crate) data_dir: PathBuf,
    /// The folder the self-backups are in (default: from DATA_DIR/self-backup.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) from: Option<PathBuf>,
    /// Or an S3 endpoint (the secret key from $COFFER_S3_SECRET_ACCESS_KEY).
    #[arg(long, requires_all = ["bucket", "access_key_id"], conflicts_with = "from")]
    pub s3_endpoint: Option<String>,
    /// The bucket.
    #[arg(long)]
    pub(crate) bucket: Option<String>,
    /// The key prefix in the bucket.
    #[arg(long, default_value = "coffer-server/self-backups")]
    pub(crate) prefix: String,
    /// The region.
    #[arg(long, default_value = "us-east-1")]
    pub(crate) region: String,
    /// The access key ID.
    #[arg(long)]
    pub(crate) access_key_id: Option<String>,
    /// Virtual-hosted-style addressing instead of path style.
    #[arg(long)]
    pub(crate) virtual_hosted: bool,
    /// Which self-backup (default: the newest).
    #[arg(long)]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) unlock: UnlockArgs,
    /// Only list what is there (and check the chosen one, with --name).
    #[arg(long)]
    pub(crate) list: bool,
    /// Restore without the typed confirmation (for scripts).
    #[arg(long)]
    pub(crate) yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `upgrade`.
#[derive(Args)]
pub(crate) struct UpgradeArgs {
    #[command(flatten)]
    pub(crate) server: ServerDir,
    /// The new coffer-server binary.
    #[arg(long)]
    pub(crate) binary: PathBuf,
    /// Seconds the new server has to answer /healthz and tick its scheduler.
    #[arg(long, default_value_t = 60)]
    pub(crate) health_timeout: u64,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

type Result<T> = std::result::Result<T, String>;

fn live_kek(data_dir: &Path, kek_file: Option<PathBuf>) -> Result<Option<SecretKey>> {
    match crate::kek_source(kek_file) {
        Some(source) => source.load().map(Some).map_err(|e| e.to_string()),
        None => {
            let path = data_dir.join(coffer_server::kek::DEFAULT_KEK_FILE);
            match coffer_server::kek::load_file(&path) {
                Ok(k) => Ok(Some(k)),
                Err(coffer_server::kek::KekError::Missing(_)) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

fn need_kek(data_dir: &Path, kek_file: Option<PathBuf>) -> Result<SecretKey> {
    live_kek(data_dir, kek_file)?.ok_or_else(|| {
        format!(
            "no KEK: give --kek-file, or ${}, or keep {} in the data directory",
            coffer_server::kek::KEK_FILE_ENV,
            coffer_server::kek::DEFAULT_KEK_FILE
        )
    })
}

fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut data =
        Zeroizing::new(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    if data.last() == Some(&b'\n') {
        data.pop();
    }
    Ok(data)
}

/// The key or passphrase the caller gave.
enum Secret {
    Key(SecretKey),
    Passphrase(Zeroizing<Vec<u8>>),
}

impl Secret {
    fn from(args: &UnlockArgs) -> Result<Self> {
        if let Some(path) = &args.kit_file {
            let text = read_secret_file(path)?;
            return coffer_adapters::kit::parse_recovery_kit(&text)
                .map(Secret::Key)
                .map_err(|e| format!("{}: {e}", path.display()));
        }
        if let Some(path) = &args.passphrase_file {
            return read_secret_file(path).map(Secret::Passphrase);
        }
        if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
            return Ok(Secret::Passphrase(Zeroizing::new(p.into_bytes())));
        }
        Err(format!(
            "give the recovery kit (--kit-file) or the passphrase (--passphrase-file or ${PASSPHRASE_ENV})"
        ))
    }

    fn unlock(&self) -> Unlock<'_> {
        match self {
            Secret::Key(k) => Unlock::Key(k),
            Secret::Passphrase(p) => Unlock::Passphrase(p),
        }
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Runs a `self-backup` action.
///
/// # Errors
/// What went wrong, for the person.
pub(crate) fn self_backup(action: SelfBackupAction) -> Result<()> {
    match action {
        SelfBackupAction::Init {
            data_dir,
            to,
            backend,
            prefix,
            keep,
            schedule,
            passphrase_file,
            kit_out,
        } => {
            let destination = match (to, backend) {
                (Some(path), _) => Destination::Local { path },
                (None, Some(backend_id)) => Destination::Backend { backend_id, prefix },
                (None, None) => return Err("give --to DIR or --backend ID".into()),
            };
            let passphrase = match passphrase_file {
                Some(path) => Some(Zeroizing::new(
                    String::from_utf8(read_secret_file(&path)?.to_vec())
                        .map_err(|_| format!("{}: not UTF-8 text", path.display()))?,
                )),
                None => std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new),
            };
            if passphrase.as_ref().is_some_and(|p| p.chars().count() < 12) {
                return Err("the passphrase is shorter than 12 characters".into());
            }
            let r = selfbackup::init(
                &data_dir,
                &InitOptions {
                    destination,
                    keep,
                    schedule,
                    passphrase,
                },
            )
            .map_err(|e| e.to_string())?;
            let kit = coffer_adapters::kit::recovery_kit(&r);
            match kit_out {
                Some(path) => {
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode_0600()
                        .open(&path)
                        .map_err(|e| format!("--kit-out {}: {e}", path.display()))?;
                    file.write_all(kit.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|e| format!("--kit-out {}: {e}", path.display()))?;
                    eprintln!(
                        "self-backups set up; the recovery kit (key {}) is in {} — move it off this machine",
                        r.id(),
                        path.display()
                    );
                }
                None => {
                    eprintln!(
                        "self-backups set up. The recovery kit below is shown once: print it or \
                         store it apart from this server. With it and a self-backup the server \
                         can be rebuilt anywhere; without it no self-backup opens."
                    );
                    print!("{}", kit.as_str());
                }
            }
            Ok(())
        }
        SelfBackupAction::Run { server, json } => {
            let kek = need_kek(&server.data_dir, server.kek_file)?;
            let made = selfbackup::make(&server.data_dir, &kek, format::Reason::Manual)
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&made);
            } else {
                let c = made.metadata.counts;
                println!(
                    "self-backup {} made: {} bytes; database {} bytes, sha256 {}; {} tenants, {} agents, {} jobs, {} runs, {} restore points{}",
                    made.name,
                    made.size,
                    made.metadata.database.size,
                    made.metadata.database.sha256,
                    c.tenants,
                    c.agents,
                    c.jobs,
                    c.runs,
                    c.restore_points,
                    if made.removed.is_empty() {
                        String::new()
                    } else {
                        format!("; removed {} older", made.removed.len())
                    }
                );
            }
            Ok(())
        }
        SelfBackupAction::List { server, json } => {
            let kek = need_kek(&server.data_dir, server.kek_file)?;
            let conn = selfbackup::open_live(&server.data_dir).map_err(|e| e.to_string())?;
            let settings = selfbackup::settings(&conn)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| selfbackup::SelfBackupError::NotSetUp.to_string())?;
            let (store, prefix) = selfbackup::storage(&conn, &kek, &settings.destination)
                .map_err(|e| e.to_string())?;
            let stored = selfbackup::list_in(store.as_ref(), &prefix).map_err(|e| e.to_string())?;
            let recorded = selfbackup::recorded(&conn, 50).map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::json!({"stored": stored, "recorded": recorded}));
            } else {
                println!("In the destination ({} kept at most):", settings.keep);
                for s in &stored {
                    println!("  {}  {} bytes", s.name, s.size);
                }
                println!("Recorded (newest first):");
                for r in &recorded {
                    println!(
                        "  {}  {}  {}  {}",
                        r["created_at"].as_str().unwrap_or_default(),
                        r["reason"].as_str().unwrap_or_default(),
                        r["status"].as_str().unwrap_or_default(),
                        r["error"]
                            .as_str()
                            .unwrap_or(r["name"].as_str().unwrap_or_default())
                    );
                }
            }
            Ok(())
        }
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600)
    }
}

/// Asks for the typed confirmation (unless `yes`); `Err` if it is not given.
fn confirm(yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    eprint!("Type {CONFIRM_WORD} to replace the server's database with this self-backup: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the confirmation: {e}"))?;
    if line.trim() == CONFIRM_WORD {
        Ok(())
    } else {
        Err(format!(
            "not confirmed (expected {CONFIRM_WORD}{}): nothing was changed",
            if std::io::stdin().is_terminal() {
                ""
            } else {
                " on stdin, or --yes"
            }
        ))
    }
}

/// Opens the live database read-only for a preview (`None` if it does not open).
fn live_for_preview(data_dir: &Path) -> Option<coffer_adapters::catalogue::rusqlite::Connection> {
    let path = data_dir.join(selfbackup::DATABASE_FILE);
    if !path.exists() {
        return None;
    }
    let conn = coffer_adapters::catalogue::rusqlite::Connection::open_with_flags(
        &path,
        coffer_adapters::catalogue::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    // A corrupt file opens but does not read.
    selfbackup::counts_of(&conn).ok()?;
    Some(conn)
}

/// Shows the preview of `contents` against the live database (as text; as JSON it is
/// returned for the caller to print with the outcome); returns whether the restore may
/// go on (the schema is not newer) and the preview as JSON.
fn show_preview(
    data_dir: &Path,
    name: &str,
    contents: &format::Contents,
    json: bool,
) -> Result<(bool, serde_json::Value)> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (image, _tmp) =
        selfbackup::open_image(&contents.database, scratch.path()).map_err(|e| e.to_string())?;
    let live = live_for_preview(data_dir);
    let mut p =
        preview::compare(&contents.metadata, &image, live.as_ref()).map_err(|e| e.to_string())?;
    p.live_absent = !data_dir.join(selfbackup::DATABASE_FILE).exists();
    if !json {
        print!("{}", p.text(name));
    }
    Ok((
        p.schema != "newer",
        serde_json::json!({ "name": name, "preview": p }),
    ))
}

/// `self-restore`.
///
/// # Errors
/// What went wrong; nothing is changed unless the restore itself started.
pub(crate) fn self_restore(args: SelfRestoreArgs) -> Result<()> {
    let data_dir = &args.server.data_dir;
    let secret = Secret::from(&args.unlock)?;
    let kek = live_kek(data_dir, args.server.kek_file)?;
    let (name, file) = if Path::new(&args.backup).is_file() {
        let path = Path::new(&args.backup);
        (
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )
    } else {
        let kek = kek
            .as_ref()
            .ok_or("no KEK to open the destination with: give --kek-file")?;
        let conn = selfbackup::open_live(data_dir).map_err(|e| e.to_string())?;
        let settings = selfbackup::settings(&conn)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| selfbackup::SelfBackupError::NotSetUp.to_string())?;
        let (store, prefix) =
            selfbackup::storage(&conn, kek, &settings.destination).map_err(|e| e.to_string())?;
        let file = selfbackup::fetch(store.as_ref(), &prefix, &args.backup).map_err(|e| {
            format!("{e} (a file path, or a name from `coffer-server self-backup list`)")
        })?;
        (args.backup.clone(), file)
    };
    let contents = format::open(&file, &secret.unlock()).map_err(|e| e.to_string())?;
    let (restorable, shown) = show_preview(data_dir, &name, &contents, args.json)?;
    if args.preview {
        if args.json {
            print_json(&shown);
        }
        return Ok(());
    }
    if !restorable {
        return Err("this coffer-server cannot restore a newer schema: nothing was changed".into());
    }
    confirm(args.yes)?;
    let done =
        restore::restore(data_dir, kek.as_ref(), &contents, &name).map_err(|e| e.to_string())?;
    report(&done, shown, args.json);
    Ok(())
}

fn report(done: &restore::Restored, mut shown: serde_json::Value, json: bool) {
    if json {
        shown["restored"] = serde_json::to_value(done).unwrap_or_default();
        print_json(&shown);
        return;
    }
    match (&done.pre_restore, &done.pre_restore_skipped) {
        (Some(made), _) => println!(
            "pre-restore self-backup {} made (restore it the same way to undo this)",
            made.name
        ),
        (None, Some(why)) => println!("no pre-restore self-backup: {why}"),
        (None, None) => {}
    }
    if done.kek_written {
        println!("the self-backup's KEK was written to the data directory (kek.hex, mode 0600)");
    }
    println!("database restored (schema {})", done.schema_version);
    println!(
        "restore points forgotten since the self-backup are listed again: \
         `coffer server reconcile` finds them, `--apply` removes them"
    );
    if let Some(pid) = done.restarted_server {
        println!("the server was stopped for the restore and is serving again (pid {pid})");
    }
}

/// A bucket's store, its secret key from the environment.
fn s3_store(b: &selfbackup::BackendLocation) -> Result<Arc<dyn Storage>> {
    let secret = Zeroizing::new(std::env::var(S3_SECRET_ENV).map_err(|_| {
        format!(
            "set ${S3_SECRET_ENV} to the secret key of {}",
            b.access_key_id
        )
    })?);
    let mut config = S3Config::new(
        b.endpoint.as_str(),
        b.region.as_str(),
        b.bucket.as_str(),
        b.access_key_id.as_str(),
        secret.as_str(),
    );
    config.path_style = b.path_style;
    Ok(Arc::new(
        S3Storage::new(&config).map_err(|e| format!("{}: {e}", b.endpoint))?,
    ))
}

/// `emergency-restore`: offline, with nothing but the backups and the kit.
///
/// # Errors
/// What went wrong; nothing is changed unless the restore itself started.
pub(crate) fn emergency_restore(args: EmergencyArgs) -> Result<()> {
    let data_dir = &args.data_dir;
    let (store, prefix): (Arc<dyn Storage>, String) = if let Some(dir) = &args.from {
        (
            Arc::new(
                coffer_adapters::storage::LocalStorage::open(dir)
                    .map_err(|e| format!("--from {}: {e}", dir.display()))?,
            ),
            String::new(),
        )
    } else if let Some(endpoint) = &args.s3_endpoint {
        let location = selfbackup::BackendLocation {
            endpoint: endpoint.clone(),
            region: args.region.clone(),
            bucket: args.bucket.clone().unwrap_or_default(),
            path_style: !args.virtual_hosted,
            access_key_id: args.access_key_id.clone().unwrap_or_default(),
        };
        (s3_store(&location)?, args.prefix.clone())
    } else {
        let path = data_dir.join(selfbackup::SETTINGS_FILE);
        let settings: selfbackup::SettingsFile =
            serde_json::from_slice(&std::fs::read(&path).map_err(|e| {
                format!(
                    "{}: {e}; give --from DIR or --s3-endpoint … to say where the self-backups are",
                    path.display()
                )
            })?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match (settings.destination, settings.backend) {
            (Destination::Local { path }, _) => (
                Arc::new(
                    coffer_adapters::storage::LocalStorage::open(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                ),
                String::new(),
            ),
            (Destination::Backend { prefix, .. }, Some(b)) => (s3_store(&b)?, prefix),
            (Destination::Backend { .. }, None) => {
                return Err(format!("{}: no backend location in it", path.display()))
            }
        }
    };
    let found = selfbackup::list_in(store.as_ref(), &prefix).map_err(|e| e.to_string())?;
    if found.is_empty() {
        return Err("no self-backups there".into());
    }
    if !args.json {
        println!("Self-backups found (oldest first):");
        for f in &found {
            println!("  {}  {} bytes", f.name, f.size);
        }
    }
    if args.list && args.name.is_none() {
        if args.json {
            print_json(&found);
        }
        return Ok(());
    }
    let name = match &args.name {
        Some(n) => found
            .iter()
            .find(|f| &f.name == n)
            .map(|f| f.name.clone())
            .ok_or_else(|| format!("no self-backup named {n} there"))?,
        None => found.last().map(|f| f.name.clone()).unwrap_or_default(),
    };
    let secret = Secret::from(&args.unlock)?;
    let file = selfbackup::fetch(store.as_ref(), &prefix, &name).map_err(|e| e.to_string())?;
    let contents = format::open(&file, &secret.unlock()).map_err(|e| e.to_string())?;
    if !args.json {
        println!(
            "{name}: seal verified, database SHA-256 {} matches its record",
            contents.metadata.database.sha256
        );
    }
    let (restorable, shown) = show_preview(data_dir, &name, &contents, args.json)?;
    if args.list {
        if args.json {
            print_json(&shown);
        }
        return Ok(());
    }
    if !restorable {
        return Err("this coffer-server cannot restore a newer schema: nothing was changed".into());
    }
    confirm(args.yes)?;
    let kek = live_kek(data_dir, None).unwrap_or(None);
    let done =
        restore::restore(data_dir, kek.as_ref(), &contents, &name).map_err(|e| e.to_string())?;
    report(&done, shown, args.json);
    Ok(())
}

/// `upgrade`.
///
/// # Errors
/// A refusal before anything changed, or the rollback and why.
pub(crate) fn upgrade(args: UpgradeArgs) -> Result<()> {
    let kek = need_kek(&args.server.data_dir, args.server.kek_file)?;
    let done = coffer_server::selfbackup::upgrade::upgrade(
        &args.server.data_dir,
        &kek,
        &args.binary,
        coffer_server::selfbackup::upgrade::Timeouts {
            process: std::time::Duration::from_secs(60),
            health: std::time::Duration::from_secs(args.health_timeout),
        },
    )
    .map_err(|e| e.to_string())?;
    if args.json {
        print_json(&done);
    } else {
        println!(
            "upgraded from {} to {} (pre-upgrade self-backup {}); serving, pid {}",
            done.from_version, done.to_version, done.pre_upgrade_backup, done.pid
        );
    }
    Ok(())
}
