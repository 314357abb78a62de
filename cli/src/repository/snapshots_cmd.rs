//! `coffer init` and `coffer snapshots`.

use serde_json::json;

use super::args::{InitCmd, SnapshotsCmd};
use super::{local_time, open, rfc3339, short, shown, size};
use crate::exit::Result;
use crate::output::emit;

/// `coffer init`.
pub(crate) fn init(cmd: &InitCmd, json: bool) -> Result<()> {
    let repo = super::init(&cmd.repo)?;
    let id = hex::encode(repo.id());
    emit(
        json,
        json!({"message_type": "initialized", "id": id, "repository": cmd.repo.repo}),
        &format!(
            "created repository {} at {}\n\
             Keep what unlocks it safe: without a key or passphrase that opens it, its \
             data cannot be read.",
            &id[..8],
            cmd.repo.repo
        ),
    )
}

/// `coffer snapshots`.
pub(crate) fn list(cmd: &SnapshotsCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let all: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| cmd.host.as_ref().is_none_or(|h| &s.host == h))
        .filter(|(_, s)| cmd.tags.is_empty() || s.tags.iter().any(|t| cmd.tags.contains(t)))
        .collect();
    if json {
        let list: Vec<_> = all
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": hex::encode(id),
                    "short_id": short(id),
                    "time": rfc3339(s.time, s.time_ns),
                    "host": s.host,
                    "username": s.user,
                    "paths": s.paths.iter().map(|p| shown(p)).collect::<Vec<_>>(),
                    "tags": s.tags,
                    "parent": s.parent.map(hex::encode),
                    "tree": hex::encode(s.tree),
                    "program_version": s.program,
                    "command": s.command,
                    "summary": {
                        "total_files_processed": s.summary.files,
                        "total_bytes_processed": s.summary.bytes,
                        "data_added": s.summary.new_raw_bytes,
                        "data_added_packed": s.summary.new_stored_bytes,
                        "duration_ms": s.summary.duration_ms,
                    },
                })
            })
            .collect();
        return emit(true, serde_json::Value::Array(list), "");
    }
    let mut text = format!(
        "{:<8}  {:<19}  {:<12}  {:<12}  {:>10}  {}\n",
        "ID", "Time", "Host", "Tags", "Size", "Paths"
    );
    for (id, s) in &all {
        let paths: Vec<String> = match &s.command {
            Some(c) => vec![format!("(output of {c})")],
            None => s.paths.iter().map(|p| shown(p)).collect(),
        };
        text.push_str(&format!(
            "{:<8}  {:<19}  {:<12}  {:<12}  {:>10}  {}\n",
            short(id),
            local_time(s.time),
            s.host,
            s.tags.join(","),
            size(s.summary.bytes),
            paths.join(" ")
        ));
    }
    text.push_str(&format!("{} snapshots", all.len()));
    emit(false, serde_json::Value::Null, &text)
}
