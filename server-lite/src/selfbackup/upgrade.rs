//! `coffer-server upgrade --binary PATH`: a safe upgrade of a running server.
//!
//! 1. The new binary must run (`--version`); nothing changes otherwise.
//! 2. A pre-upgrade self-backup (sealed, in the destination), and the running version
//!    recorded (audit, and `DATA_DIR/upgrade/state.json`).
//! 3. The server is stopped (SIGTERM: it finishes requests in flight), and only then is
//!    the database copied beside it (`upgrade/database.before.sqlite`) with the old
//!    binary (`upgrade/coffer-server.previous`): what a rollback puts back holds every
//!    write the old server acknowledged.
//! 4. The new binary replaces the old one (copied beside it, renamed over it) and
//!    starts with the same arguments; it migrates the database as it opens it.
//! 5. Health: it answers `/healthz`; the database opens and passes
//!    `PRAGMA integrity_check`; the scheduler ticks (it writes `DATA_DIR/scheduler.tick`
//!    each pass).
//! 6. If a check fails: the new server is stopped, the old binary and database put
//!    back, the old server started and checked, and the rollback recorded (audit, and a
//!    `upgrade.rolled_back` alert to the server's notification channels) — the command
//!    says why and exits non-zero.
//!
//! A packaged install (deb, container image) does the same with its own tools: take a
//! self-backup, note the version, install, run the same three checks, and on failure
//! reinstall the previous package and `self-restore` the pre-upgrade backup.

use std::path::Path;
use std::time::{Duration, Instant};

use coffer_core::SecretKey;
use serde::Serialize;

use super::format::Reason;
use super::{process, Result, SelfBackupError, DATABASE_FILE};
use crate::db::notify::AlertKind;

/// The file the scheduler writes at each pass (Unix seconds).
pub const TICK_FILE: &str = "scheduler.tick";
/// The folder an upgrade keeps what a rollback needs in.
pub const UPGRADE_DIR: &str = "upgrade";

/// What an upgrade did.
#[derive(Debug, Clone, Serialize)]
pub struct Upgraded {
    /// The version that ran before.
    pub from_version: String,
    /// The new binary's version.
    pub to_version: String,
    /// The pre-upgrade self-backup.
    pub pre_upgrade_backup: String,
    /// The new server's process ID.
    pub pid: u32,
}

/// How long the checks wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the server to stop or start.
    pub process: Duration,
    /// For `/healthz` and a scheduler tick after the start.
    pub health: Duration,
}

/// The version a `coffer-server` binary reports (`coffer-server X.Y.Z`).
///
/// # Errors
/// It does not run or says something else.
pub fn version_of(binary: &Path) -> Result<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SelfBackupError::Usage(format!("--binary {}: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().strip_prefix("coffer-server ") {
        Some(v) if out.status.success() && !v.is_empty() => Ok(v.to_owned()),
        _ => Err(SelfBackupError::Usage(format!(
            "--binary {}: not a coffer-server binary (its --version said {:?})",
            binary.display(),
            text.trim()
        ))),
    }
}

/// The `--listen` address in a server's arguments (its default otherwise).
fn listen_of(args: &[String]) -> String {
    args.iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--listen=").map(str::to_owned))
        })
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
}

fn healthz(listen: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(listen) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn tick_after(data_dir: &Path, since: i64) -> bool {
    std::fs::read_to_string(data_dir.join(TICK_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .is_some_and(|t| t >= since)
}

fn integrity(data_dir: &Path) -> std::result::Result<(), String> {
    let conn = coffer_adapters::catalogue::rusqlite::Connection::open_with_flags(
        data_dir.join(DATABASE_FILE),
        coffer_adapters::catalogue::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| format!("the database does not open: {e}"))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("PRAGMA integrity_check: {e}"))?;
    if check == "ok" {
        Ok(())
    } else {
        Err(format!("PRAGMA integrity_check: {check}"))
    }
}

/// Runs the three checks on the server just started (pid `pid`), within `timeout`.
fn check_health(
    data_dir: &Path,
    listen: &str,
    started_at: i64,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !healthz(listen) {
        if Instant::now() > deadline {
            return Err(format!(
                "it did not answer /healthz on {listen} within {} s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    integrity(data_dir)?;
    while !tick_after(data_dir, started_at) {
        if Instant::now() > deadline {
            return Err(format!(
                "its scheduler did not tick within {} s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn copy_into_place(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.new",
        to.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, to))
        .map_err(|e| {
            SelfBackupError::Io(format!(
                "putting {} in place of {}: {e}",
                from.display(),
                to.display()
            ))
        })
}

fn put_database_back(data_dir: &Path, copy: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let side = data_dir.join(format!("{DATABASE_FILE}{suffix}"));
        if let Err(e) = std::fs::remove_file(&side) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(SelfBackupError::Io(format!("{}: {e}", side.display())));
            }
        }
    }
    copy_into_place(copy, &data_dir.join(DATABASE_FILE))
}

/// Upgrades the server serving `data_dir` to `binary`; rolls back if the new one fails
/// its checks.
///
/// # Errors
/// Refusals before anything changed; a rollback (the error says why, and whether the
/// old server serves again).
pub fn upgrade(data_dir: &Path, kek: &SecretKey, binary: &Path, t: Timeouts) -> Result<Upgraded> {
    let server = process::running(data_dir)?.ok_or_else(|| {
        SelfBackupError::Usage(format!(
            "no server serves {}: replace the binary and start it (the database migrates as it opens)",
            data_dir.display()
        ))
    })?;
    let to_version = version_of(binary)?;
    let from_version = server.version.clone();
    let made = super::make(data_dir, kek, Reason::PreUpgrade).map_err(|e| match e {
        SelfBackupError::NotSetUp => SelfBackupError::Usage(
            "an upgrade takes a self-backup first: set them up with `coffer-server self-backup init`"
                .into(),
        ),
        e => SelfBackupError::Io(format!("the pre-upgrade self-backup failed, so nothing changed: {e}")),
    })?;
    let keep = data_dir.join(UPGRADE_DIR);
    std::fs::create_dir_all(&keep)
        .map_err(|e| SelfBackupError::Io(format!("{}: {e}", keep.display())))?;
    super::write_file(
        &keep.join("state.json"),
        &serde_json::to_vec_pretty(&serde_json::json!({
            "from_version": from_version, "to_version": to_version,
            "previous_binary": server.exe, "pre_upgrade_backup": made.name,
            "started_at": crate::db::rfc3339(crate::db::now()),
        }))
        .unwrap_or_default(),
    )?;
    record(
        data_dir,
        "upgrade.start",
        &format!(
            "from {from_version} to {to_version}; pre-upgrade self-backup {}",
            made.name
        ),
        true,
    )?;

    process::stop(data_dir, &server, t.process)?;
    // Stopped: nothing writes now, and the copy holds every acknowledged write.
    let before = keep.join("database.before.sqlite");
    let _ = std::fs::remove_file(&before);
    super::open_live(data_dir)?.backup(
        coffer_adapters::catalogue::rusqlite::MAIN_DB,
        &before,
        None,
    )?;
    let previous = keep.join("coffer-server.previous");
    std::fs::copy(&server.exe, &previous)
        .map_err(|e| SelfBackupError::Io(format!("keeping {}: {e}", server.exe.display())))?;
    copy_into_place(binary, &server.exe)?;

    let listen = listen_of(&server.args);
    let started_at = crate::db::now();
    let outcome = process::start(data_dir, &server.exe, &server.args, t.process)
        .map_err(|e| e.to_string())
        .and_then(|pid| check_health(data_dir, &listen, started_at, t.health).map(|()| pid));
    match outcome {
        Ok(pid) => {
            record(
                data_dir,
                "upgrade.success",
                &format!("from {from_version} to {to_version}"),
                true,
            )?;
            Ok(Upgraded {
                from_version,
                to_version,
                pre_upgrade_backup: made.name,
                pid,
            })
        }
        Err(why) => Err(roll_back(
            data_dir,
            &server,
            &previous,
            &before,
            &listen,
            &why,
            &to_version,
            t,
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn roll_back(
    data_dir: &Path,
    server: &process::Running,
    previous: &Path,
    before: &Path,
    listen: &str,
    why: &str,
    to_version: &str,
    t: Timeouts,
) -> SelfBackupError {
    let steps = (|| -> Result<u32> {
        if let Some(new) = process::running(data_dir)? {
            process::stop(data_dir, &new, t.process)?;
        }
        copy_into_place(previous, &server.exe)?;
        put_database_back(data_dir, before)?;
        let started_at = crate::db::now();
        let pid = process::start(data_dir, &server.exe, &server.args, t.process)?;
        check_health(data_dir, listen, started_at, t.health).map_err(SelfBackupError::Io)?;
        Ok(pid)
    })();
    let detail = format!(
        "the upgrade to {to_version} failed its health check ({why}); rolled back to {}",
        server.version
    );
    match steps {
        Ok(pid) => {
            let _ = record(data_dir, "upgrade.rolled_back", &detail, false);
            SelfBackupError::Io(format!(
                "{detail}: the previous binary and database are back and serving (pid {pid})"
            ))
        }
        Err(e) => SelfBackupError::Io(format!(
            "{detail}, but the rollback failed too: {e}. The previous binary is {}, the \
             database from before the upgrade {}; the pre-upgrade self-backup restores with \
             `coffer-server emergency-restore`",
            previous.display(),
            before.display()
        )),
    }
}

/// Records an upgrade step in the audit log; a rollback also as the server's alert.
fn record(data_dir: &Path, action: &'static str, detail: &str, ok: bool) -> Result<()> {
    let conn = super::open_live(data_dir)?;
    if action == "upgrade.rolled_back" {
        crate::notify::server_alert(
            &conn,
            AlertKind::UpgradeRolledBack,
            "upgrade",
            "An upgrade was rolled back",
            detail,
            crate::db::now(),
        )
        .map_err(|e| SelfBackupError::Database(e.to_string()))?;
        return Ok(());
    }
    crate::db::audit::record(
        &conn,
        &crate::db::audit::AuditEntry {
            tenant_id: None,
            actor: "system".to_owned(),
            action,
            target: "server".to_owned(),
            outcome: if ok {
                crate::db::audit::AuditOutcome::Ok
            } else {
                crate::db::audit::AuditOutcome::Failed
            },
            detail: detail.to_owned(),
        },
    )
    .map_err(|e| SelfBackupError::Database(e.to_string()))
}
