//! The running server, seen from another `coffer-server` process (a restore, an
//! upgrade): `serve` holds an exclusive lock on `DATA_DIR/server.lock` for as long as it
//! runs and records its process ID, program and arguments in `DATA_DIR/server.pid.json`;
//! a restore or an upgrade stops it (SIGTERM: it stops accepting connections and
//! finishes those in flight) and starts it again with the same arguments, detached,
//! its output appended to `DATA_DIR/server.log`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Result, SelfBackupError};

/// The lock file's name.
pub const LOCK_FILE: &str = "server.lock";
/// The record of the serving process.
pub const PID_FILE: &str = "server.pid.json";
/// Where a server started again writes its output.
pub const LOG_FILE: &str = "server.log";

/// The serving process, as it recorded itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Running {
    /// Its process ID.
    pub pid: u32,
    /// Its program.
    pub exe: PathBuf,
    /// Its arguments (no secret is ever an argument).
    pub args: Vec<String>,
    /// Its version.
    pub version: String,
}

fn lock_file(data_dir: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))
        .map_err(|e| SelfBackupError::Io(format!("{}: {e}", data_dir.join(LOCK_FILE).display())))
}

/// Takes the data directory for this serving process, or says who holds it. The lock
/// lasts as long as the returned file is open.
///
/// # Errors
/// Another server serves this data directory; I/O.
pub fn hold(data_dir: &Path) -> Result<File> {
    let file = lock_file(data_dir)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = read_pid(data_dir).map_or_else(String::new, |r| format!(" (pid {})", r.pid));
            return Err(SelfBackupError::Usage(format!(
                "another coffer-server serves {}{who}",
                data_dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(SelfBackupError::Io(format!(
                "locking the data directory: {e}"
            )))
        }
    }
    let me = Running {
        pid: std::process::id(),
        exe: std::env::current_exe().unwrap_or_default(),
        args: std::env::args().skip(1).collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    super::write_file(
        &data_dir.join(PID_FILE),
        &serde_json::to_vec_pretty(&me).unwrap_or_default(),
    )?;
    Ok(file)
}

fn read_pid(data_dir: &Path) -> Option<Running> {
    serde_json::from_slice(&std::fs::read(data_dir.join(PID_FILE)).ok()?).ok()
}

/// The server serving `data_dir`, if one does.
///
/// # Errors
/// I/O.
pub fn running(data_dir: &Path) -> Result<Option<Running>> {
    if !data_dir.join(LOCK_FILE).exists() {
        return Ok(None);
    }
    let file = lock_file(data_dir)?;
    match file.try_lock() {
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => {
            Ok(Some(read_pid(data_dir).ok_or_else(|| {
                SelfBackupError::Io(format!(
                    "a server holds {} but left no {PID_FILE}",
                    data_dir.display()
                ))
            })?))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(SelfBackupError::Io(format!(
            "checking the data directory's lock: {e}"
        ))),
    }
}

/// Asks the server to stop (SIGTERM) and waits until it has let go of the data
/// directory.
///
/// # Errors
/// It did not stop within `timeout`.
pub fn stop(data_dir: &Path, server: &Running, timeout: Duration) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid.to_string()])
        .status()
        .map_err(|e| SelfBackupError::Io(format!("running kill: {e}")))?;
    if !status.success() {
        return Err(SelfBackupError::Io(format!(
            "could not signal the server (pid {})",
            server.pid
        )));
    }
    let deadline = Instant::now() + timeout;
    while running(data_dir)?.is_some() {
        if Instant::now() > deadline {
            return Err(SelfBackupError::Io(format!(
                "the server (pid {}) did not stop within {} s",
                server.pid,
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Starts `program` with the server's recorded arguments, detached (its own process
/// group, output appended to `DATA_DIR/server.log`), and waits until it holds the data
/// directory.
///
/// # Errors
/// It could not start, or exited, or did not take the lock within `timeout`.
pub fn start(data_dir: &Path, program: &Path, args: &[String], timeout: Duration) -> Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join(LOG_FILE))
        .map_err(|e| SelfBackupError::Io(format!("{}: {e}", data_dir.join(LOG_FILE).display())))?;
    let err = log
        .try_clone()
        .map_err(|e| SelfBackupError::Io(e.to_string()))?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| SelfBackupError::Io(format!("starting {}: {e}", program.display())))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| SelfBackupError::Io(e.to_string()))?
        {
            return Err(SelfBackupError::Io(format!(
                "{} exited at start ({status}); see {}",
                program.display(),
                data_dir.join(LOG_FILE).display()
            )));
        }
        if running(data_dir)?.is_some_and(|r| r.pid == child.id()) {
            return Ok(child.id());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(SelfBackupError::Io(format!(
                "{} did not start serving within {} s; see {}",
                program.display(),
                timeout.as_secs(),
                data_dir.join(LOG_FILE).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
