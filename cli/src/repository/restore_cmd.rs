//! `coffer restore`: a snapshot, or chosen paths of it, into a folder, or one file into
//! a command's stdin.

use std::io::IsTerminal;
use std::sync::Arc;

use coffer_adapters::repo::filter::Filter;
use coffer_adapters::repo::restore::{
    self, Overwrite, RestoreOptions, RestoreProgress, RestoreProgressFn,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::args::{OverwriteArg, RestoreCmd};
use super::browse::{find_node, write_content};
use super::{open, select, short, size};
use crate::exit::{CliError, Result};
use crate::output::emit;

/// `coffer restore`.
pub(crate) fn run(cmd: &RestoreCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let (id, snapshot) = select(&repo, &cmd.snapshot, cmd.host.as_deref())?;
    if let Some(command) = &cmd.to_command {
        return to_command(&repo, &snapshot, cmd, command, json);
    }
    let Some(target) = &cmd.target else {
        return Err(CliError::Usage("give --target DIR or --to-command".into()));
    };
    let options = RestoreOptions {
        include: cmd.includes.iter().map(|p| p.as_bytes().to_vec()).collect(),
        threads: 0,
        overwrite: match cmd.overwrite {
            OverwriteArg::Never => Overwrite::Never,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Always => Overwrite::Always,
        },
        progress: None,
        exclude: cmd
            .excludes
            .iter()
            .try_fold(Filter::new(), |f, p| f.exclude(p))?,
    };
    // A bar with bytes, rate and ETA on a terminal; nothing when piped or with --json.
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "[{elapsed}] {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    });
    let options = RestoreOptions {
        progress: bar.clone().map(|bar| {
            RestoreProgressFn(Arc::new(move |p: &RestoreProgress| {
                bar.set_length(p.total_bytes);
                bar.set_position(p.bytes);
                bar.set_message(format!("{}/{} files", p.files, p.total_files));
            }))
        }),
        ..options
    };
    let report = restore::restore(&repo, &id, target, &options);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    for (path, why) in &report.skipped {
        eprintln!("warning: {} not restored: {why}", path.display());
    }
    let mut value = json!({
        "message_type": "summary",
        "snapshot_id": hex::encode(id),
        "files_restored": report.files,
        "dirs": report.dirs,
        "others": report.others,
        "bytes_restored": report.bytes,
        "skipped": report.skipped.len(),
        "kept": report.kept,
    });
    let mut text = format!(
        "restored snapshot {} to {}: {} files, {} folders, {} others, {}",
        short(&id),
        target.display(),
        report.files,
        report.dirs,
        report.others,
        size(report.bytes)
    );
    if report.kept > 0 {
        text.push_str(&format!(
            "; {} existing entries kept (--overwrite {})",
            report.kept,
            match cmd.overwrite {
                OverwriteArg::Never => "never",
                OverwriteArg::IfChanged => "if-changed",
                OverwriteArg::Always => "always",
            }
        ));
    }
    if cmd.verify {
        let checked = restore::verify(&repo, &id, target, &options)?;
        value["files_verified"] = checked.files.into();
        value["verify_errors"] = checked.mismatches.len().into();
        text.push_str(&format!(
            "\nverified {} files ({}): {} differ",
            checked.files,
            size(checked.bytes),
            checked.mismatches.len()
        ));
        if let Some((path, why)) = checked.mismatches.first() {
            emit(json, value, &text)?;
            return Err(CliError::Corrupt(format!(
                "{} of the restored files differ from the snapshot; first: {}: {why}",
                checked.mismatches.len(),
                path.display()
            )));
        }
    }
    emit(json, value, &text)
}

/// Pipes one file of the snapshot into `command`'s stdin: the snapshot's only file
/// (a `--from-command` backup), or the one `--include` names.
fn to_command(
    repo: &coffer_adapters::repo::Repository,
    snapshot: &coffer_adapters::repo::snapshot::Snapshot,
    cmd: &RestoreCmd,
    command: &str,
    json: bool,
) -> Result<()> {
    let path = match cmd.includes.as_slice() {
        [one] => one.clone(),
        [] if snapshot.paths.len() == 1 => super::shown(&snapshot.paths[0]),
        _ => {
            return Err(CliError::Usage(
                "--to-command takes one file: name it with --include".into(),
            ))
        }
    };
    let node = find_node(repo, snapshot, &path)?;
    let bytes =
        crate::backup::restore_to_command(command, |stdin| write_content(repo, &node, stdin))?;
    emit(
        json,
        json!({"message_type": "summary", "file": path, "bytes_restored": bytes}),
        "",
    )
}
