//! `coffer backup`, `coffer restore`, `coffer verify`: the pipeline over a repository.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

use coffer_adapters::catalogue::{BackupSummary, NewBackup};
use coffer_adapters::pipeline::{self, BackupKind, BackupOptions, RestoreOptions, RestoreSummary};
use coffer_adapters::Error as AdaptersError;
use serde_json::json;

use crate::args::{BackupArgs, RestoreArgs, VerifyArgs};
use crate::calendar;
use crate::exit::{CliError, Result};
use crate::output::{emit, shown};
use crate::progress::{self, ProgressStorage};
use crate::repo::{is_stream, Repo};
use crate::repo_cmd::human_bytes;
use crate::seal::Output;

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `coffer backup`.
///
/// # Errors
/// [`CliError::Exists`] for a name in use; a failing command or unreadable path fails
/// the backup, and then no backup is left: not in the catalogue, not in storage.
pub(crate) fn backup(args: &BackupArgs, json: bool) -> Result<()> {
    let mut repo = Repo::open(&args.repo, false)?;
    let key = repo.unlock(&args.secret)?;
    let repository = repo.repository(&args.secret, Some(&key))?;
    let started = now();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| calendar::compact(started));
    let (archive_key, manifest_key) = pipeline::object_keys(&repo.prefix, &name)?;
    let data_key = if args.from_command.is_some() {
        pipeline::stream_key(&repo.prefix, &name)?
    } else {
        archive_key
    };
    if repo
        .catalogue
        .backup_by_name(repository.id, &name)?
        .is_some()
    {
        return Err(CliError::Exists(format!(
            "a backup named {name:?} exists in {}",
            repo.location
        )));
    }
    let options = BackupOptions {
        level: args.level,
        ..BackupOptions::default()
    };
    // Recorded as running first: a crash leaves a row naming what to clean up.
    let row = repo.catalogue.start_backup(&NewBackup {
        repository_id: repository.id,
        name: &name,
        archive_key: &data_key,
        manifest_key: &manifest_key,
        host: &options.host,
        created_at: started,
        key_id: key.id(),
    })?;
    let bar = progress::bar(None, &format!("backing up {name}"), !json);
    let store = ProgressStorage {
        inner: repo.store.as_ref(),
        bar: bar.clone(),
    };
    let provider = coffer_adapters::default_provider();
    let result = match &args.from_command {
        Some(command) => backup_command(command, |source| {
            pipeline::backup_stream(
                &provider,
                &store,
                &repo.prefix,
                &name,
                &key,
                source,
                &options,
            )
        }),
        None => pipeline::backup(
            &provider,
            &store,
            &repo.prefix,
            &name,
            &key,
            &args.paths,
            &options,
        )
        .map_err(CliError::from),
    };
    bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            // The pipeline stores nothing on failure (no manifest; no data object unless
            // the failure came after it); remove what may remain, then the row.
            if !matches!(e, CliError::Exists(_)) {
                let _ = repo.store.delete(&manifest_key);
                let _ = repo.store.delete(&data_key);
            }
            let _ = repo.catalogue.delete_backup(row.id);
            return Err(e.context(format!("backup {name:?} failed, nothing was kept")));
        }
    };
    let m = &summary.manifest;
    repo.catalogue.complete_backup(
        row.id,
        now(),
        &BackupSummary {
            entry_count: m.entries.len() as u64,
            content_bytes: m.content_bytes,
            archive_len: m.archive_len,
            compressed_len: m.compressed_len,
            stored_bytes: summary.stored_bytes,
        },
    )?;
    emit(
        json,
        json!({"name": name, "repository": repo.location, "entries": m.entries.len(),
               "content_bytes": m.content_bytes, "stored_bytes": summary.stored_bytes,
               "key_id": key.id().to_string()}),
        &format!(
            "backup {name}: {} entries, {} of content, {} stored",
            m.entries.len(),
            human_bytes(m.content_bytes),
            human_bytes(summary.stored_bytes)
        ),
    )
}

/// Runs `command` under `sh -c` and hands its stdout to `store`; the stream ends
/// cleanly only if the command exits 0.
pub(crate) fn backup_command<T>(
    command: &str,
    store: impl FnOnce(&mut (dyn Read + Send)) -> Result<T, AdaptersError>,
) -> Result<T> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::io("starting sh", e))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(CliError::Other(
            "the command's stdout was not captured".into(),
        ));
    };
    let mut source = CommandOutput {
        stdout,
        child: Some(child),
        failed: None,
    };
    let result = store(&mut source);
    if let Some(status) = source.failed {
        return Err(CliError::Other(format!("the command failed ({status})")));
    }
    if let Some(mut child) = source.child.take() {
        // The store failed before the end of the output: stop the command.
        let _ = child.kill();
        let _ = child.wait();
    }
    result.map_err(CliError::from)
}

/// A command's stdout that ends with an error, not a clean end, unless the command
/// exited 0: so a failed dump is never stored as a complete backup.
struct CommandOutput {
    stdout: ChildStdout,
    child: Option<Child>,
    failed: Option<ExitStatus>,
}

impl Read for CommandOutput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        if let Some(mut child) = self.child.take() {
            let status = child.wait()?;
            if !status.success() {
                self.failed = Some(status);
            }
        }
        match self.failed {
            Some(status) => Err(io::Error::other(format!("the command failed ({status})"))),
            None => Ok(0),
        }
    }
}

/// `coffer restore`.
///
/// # Errors
/// Wrong key, damaged data, hostile paths, existing destinations, I/O; nothing is
/// moved into the folder or file named until the whole backup verified.
pub(crate) fn restore(args: &RestoreArgs, json: bool) -> Result<()> {
    let mut repo = Repo::open(&args.repo, false)?;
    let key = repo.unlock(&args.secret)?;
    let backup = repo.backup(&args.secret, Some(&key), &args.name)?;
    let total = backup.summary.map(|s| s.stored_bytes);
    let bar = progress::bar(total, &format!("restoring {}", args.name), !json);
    let store = ProgressStorage {
        inner: repo.store.as_ref(),
        bar: bar.clone(),
    };
    let provider = coffer_adapters::default_provider();
    let name = &args.name;
    let stream = is_stream(&backup);
    let value = if let Some(dir) = &args.to {
        if stream {
            return Err(CliError::Usage(format!(
                "{name:?} is a command's output: restore it with --to-file or --to-command"
            )));
        }
        let options = RestoreOptions {
            paths: args.paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
        };
        let s = restore_tree(dir, |staging| {
            pipeline::restore(
                &provider,
                &store,
                &repo.prefix,
                name,
                &key,
                staging,
                &options,
            )
        })?;
        json!({"name": name, "to": shown(dir), "files": s.files, "directories": s.directories,
               "links": s.links, "bytes": s.bytes})
    } else {
        if !stream {
            return Err(CliError::Usage(format!(
                "{name:?} is a backup of files: restore it with --to DIR"
            )));
        }
        if !args.paths.is_empty() {
            return Err(CliError::Usage(
                "a command's output is one stream: paths do not apply".into(),
            ));
        }
        if let Some(file) = &args.to_file {
            let mut out = Output::create(file)?;
            let n =
                pipeline::restore_stream(&provider, &store, &repo.prefix, name, &key, &mut out)?;
            out.commit()?;
            json!({"name": name, "to_file": shown(file), "bytes": n})
        } else {
            let command = args.to_command.as_deref().unwrap_or_default();
            let n = restore_to_command(command, |out| {
                pipeline::restore_stream(&provider, &store, &repo.prefix, name, &key, out)
            })?;
            json!({"name": name, "to_command": command, "bytes": n})
        }
    };
    bar.finish_and_clear();
    let to_stdout = args.to_file.as_deref().is_some_and(crate::output::is_dash);
    crate::output::emit_beside(json, value, to_stdout)
}

/// Restores into a staging folder inside `dir`, and moves what it holds into `dir`
/// only once the whole restore verified: a wrong key, damaged data, a hostile path or a
/// full disk leaves nothing behind (and `dir` itself is removed if this created it).
/// Nothing in `dir` is replaced: a name that exists there stops the move before it
/// starts, unless both are folders, whose contents are merged.
pub(crate) fn restore_tree(
    dir: &Path,
    restore: impl FnOnce(&Path) -> Result<RestoreSummary, AdaptersError>,
) -> Result<RestoreSummary> {
    let created = fs::symlink_metadata(dir).is_err();
    fs::create_dir_all(dir).map_err(|e| CliError::io(format!("creating {}", shown(dir)), e))?;
    let cleanup = |created: bool| {
        if created {
            let _ = fs::remove_dir(dir);
        }
    };
    let staging = match tempfile::Builder::new()
        .prefix(".coffer-restore-")
        .tempdir_in(dir)
    {
        Ok(s) => s,
        Err(e) => {
            cleanup(created);
            return Err(CliError::io(
                format!("creating a folder in {}", shown(dir)),
                e,
            ));
        }
    };
    let result = restore(staging.path())
        .map_err(CliError::from)
        .and_then(|summary| {
            check_conflicts(staging.path(), dir)?;
            move_into(staging.path(), dir)?;
            Ok(summary)
        });
    if let Err(e) = staging.close() {
        eprintln!("coffer: removing the staging folder: {e}");
    }
    if result.is_err() {
        cleanup(created);
    }
    result
}

/// Fails naming the first entry of `from` that exists in `to` (folders in both merge).
fn check_conflicts(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| CliError::io(shown(from), e))? {
        let entry = entry.map_err(|e| CliError::io(shown(from), e))?;
        let dest = to.join(entry.file_name());
        let Ok(existing) = fs::symlink_metadata(&dest) else {
            continue;
        };
        let source_is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if existing.is_dir() && source_is_dir {
            check_conflicts(&entry.path(), &dest)?;
        } else {
            return Err(CliError::Exists(format!(
                "{} already exists; not overwriting it",
                shown(&dest)
            )));
        }
    }
    Ok(())
}

/// Moves every entry of `from` into `to`, merging folders that exist in both.
fn move_into(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| CliError::io(shown(from), e))? {
        let entry = entry.map_err(|e| CliError::io(shown(from), e))?;
        let dest = to.join(entry.file_name());
        if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
            move_into(&entry.path(), &dest)?;
        } else {
            fs::rename(entry.path(), &dest)
                .map_err(|e| CliError::io(format!("moving into {}", shown(&dest)), e))?;
        }
    }
    Ok(())
}

/// Runs `command` under `sh -c` with the restored stream as its stdin. If the stream
/// fails to verify, the command is killed rather than shown a clean end of input.
pub(crate) fn restore_to_command<E: Into<CliError>>(
    command: &str,
    restore: impl FnOnce(&mut dyn io::Write) -> Result<u64, E>,
) -> Result<u64> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::io("starting sh", e))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(CliError::Other(
            "the command's stdin was not captured".into(),
        ));
    };
    let result = restore(&mut stdin);
    match result {
        Ok(n) => {
            drop(stdin);
            let status = child
                .wait()
                .map_err(|e| CliError::io("waiting for the command", e))?;
            if !status.success() {
                return Err(CliError::Other(format!("the command failed ({status})")));
            }
            Ok(n)
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e.into())
        }
    }
}

/// `coffer verify`.
///
/// # Errors
/// [`CliError::Corrupt`] (and the backup is marked failed in the catalogue) or
/// [`CliError::WrongKey`], as the data says.
pub(crate) fn verify(args: &VerifyArgs, json: bool) -> Result<()> {
    let mut repo = Repo::open(&args.repo, false)?;
    let key = repo.unlock(&args.secret)?;
    let backup = repo.backup(&args.secret, Some(&key), &args.name)?;
    let bar = progress::bar(
        backup.summary.map(|s| s.stored_bytes),
        &format!("verifying {}", args.name),
        !json,
    );
    let store = ProgressStorage {
        inner: repo.store.as_ref(),
        bar: bar.clone(),
    };
    let result = pipeline::verify(
        &coffer_adapters::default_provider(),
        &store,
        &repo.prefix,
        &args.name,
        &key,
    );
    bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let e = CliError::from(e);
            if matches!(e, CliError::Corrupt(_)) {
                let _ = repo.catalogue.mark_failed(backup.id, now());
            }
            return Err(e.context(format!("backup {:?}", args.name)));
        }
    };
    let kind = match summary.kind {
        BackupKind::Archive => "files",
        BackupKind::Stream => "command",
    };
    emit(
        json,
        json!({"name": args.name, "ok": true, "kind": kind, "entries": summary.entries,
               "bytes": summary.bytes}),
        &format!(
            "backup {} is intact: {} entries, {} of content verified",
            args.name,
            summary.entries,
            human_bytes(summary.bytes)
        ),
    )
}
