//! An operator's restore points, restores (one or many) and verifies.

use serde_json::{json, Value};

use super::args::{BulkRestore, RestorePointVerb};
use super::client::ServerClient;
use super::operator::filter_query;
use super::table::{bytes, col, details, render, rows, text, time, Col};
use super::{id, maybe_wait, show, wait};
use crate::exit::{CliError, Result};

fn restore_point_cols() -> [Col; 9] {
    [
        col!("ID", "id"),
        col!("NAME", "name"),
        col!("JOB", "job_id"),
        col!("AGENT", "agent_id"),
        col!("RUN", "run_id"),
        col!("FILES", "files"),
        col!("SIZE", |p| bytes(&p["content_bytes"])),
        col!("STORED", |p| bytes(&p["stored_bytes"])),
        col!("CREATED", |p| time(&p["created_at"])),
    ]
}

/// `coffer server restore-point …`.
pub(crate) fn restore_point(c: &ServerClient, verb: &RestorePointVerb, json: bool) -> Result<()> {
    match verb {
        RestorePointVerb::List { filter } => {
            let v = c.get("/v1/restore-points", &filter_query(filter)?)?;
            show(
                json,
                &v,
                &render(rows(&v, "restore_points"), &restore_point_cols()),
            )
        }
        RestorePointVerb::Get { id: p } => {
            let v = c.get(&format!("/v1/restore-points/{}", id(p)?), &[])?;
            let r = &v["restore_point"];
            let out = details(&[
                ("id", text(&r["id"])),
                ("name", text(&r["name"])),
                ("job", text(&r["job_id"])),
                ("agent", text(&r["agent_id"])),
                ("run", text(&r["run_id"])),
                ("repository", text(&r["repository_id"])),
                ("snapshot", text(&r["snapshot_id"])),
                ("key id", text(&r["key_id"])),
                ("files", text(&r["files"])),
                ("size", bytes(&r["content_bytes"])),
                ("stored", bytes(&r["stored_bytes"])),
                ("created", time(&r["created_at"])),
                ("recorded", time(&r["recorded_at"])),
            ]);
            show(json, &v, &out)
        }
        RestorePointVerb::Restore {
            id: p,
            target,
            paths,
            agent_id,
            wait,
        } => {
            let mut body = json!({"target": target, "paths": paths});
            // Only when given, so an older server (which refuses unknown fields) still
            // takes the rest.
            if let Some(a) = agent_id {
                body["agent_id"] = json!(id(a)?);
            }
            let v = c.post(
                &format!("/v1/restore-points/{}/restore", id(p)?),
                Some(&body),
            )?;
            let queued = format!(
                "restore of {p} into {target} queued as run {} on agent {}",
                text(&v["run"]["id"]),
                text(&v["run"]["agent_id"])
            );
            maybe_wait(c, &v, *wait, json, &queued)
        }
        RestorePointVerb::Verify { id: p, wait } => {
            let v = c.post(&format!("/v1/restore-points/{}/verify", id(p)?), None)?;
            let queued = format!("verify of {p} queued as run {}", text(&v["run"]["id"]));
            maybe_wait(c, &v, *wait, json, &queued)
        }
        RestorePointVerb::Files { id: p, path } => {
            let v = c.get(
                &format!("/v1/restore-points/{}/files", id(p)?),
                &[("path", path.clone())],
            )?;
            let cols = [
                col!("TYPE", "type"),
                col!("MODE", |e| e["mode"]
                    .as_u64()
                    .map_or_else(String::new, |m| format!("{:o}", m & 0o7777))),
                col!("SIZE", |e| bytes(&e["size"])),
                col!("MODIFIED", |e| time(&e["mtime"])),
                col!("PATH", "path"),
            ];
            show(json, &v, &render(rows(&v, "entries"), &cols))
        }
        RestorePointVerb::Diff { id: p, to } => {
            let v = c.get(
                &format!("/v1/restore-points/{}/diff", id(p)?),
                &[("to", Some(id(to)?.to_owned()))],
            )?;
            let cols = [col!("CHANGE", "change"), col!("PATH", "path")];
            let counts = text(&v["counts"]);
            let out = format!("{}\n\n{}", render(rows(&v, "changes"), &cols), counts);
            show(json, &v, &out)
        }
        RestorePointVerb::Delete { id: p } => {
            let v = c.delete(&format!("/v1/restore-points/{}", id(p)?), &[])?;
            show(json, &v, &format!("restore point {p} deleted"))
        }
    }
}

/// `coffer server restore --item ID=TARGET …`: one request, each item queued on its
/// own; with `--wait`, each queued run followed in turn.
pub(crate) fn bulk(c: &ServerClient, b: &BulkRestore, json: bool) -> Result<()> {
    let mut items = Vec::with_capacity(b.items.len());
    for item in &b.items {
        let (point, target) = item.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("--item {item:?}: give RESTORE_POINT_ID=TARGET"))
        })?;
        items.push(json!({"restore_point_id": id(point)?, "target": target}));
    }
    let v = c.post("/v1/restores", Some(&json!({ "items": items })))?;
    let cols = [
        col!("RESTORE POINT", "restore_point_id"),
        col!("STATUS", "status"),
        col!("RUN", "run_id"),
        col!("AGENT", "agent_id"),
        col!("ERROR", |r| {
            let e = &r["error"];
            if e.is_object() {
                format!("{}: {}", text(&e["code"]), text(&e["message"]))
            } else {
                String::new()
            }
        }),
    ];
    let t = &v["totals"];
    let mut out = format!(
        "{}\n\n{} requested, {} queued, {} failed",
        render(rows(&v, "results"), &cols),
        text(&t["requested"]),
        text(&t["queued"]),
        text(&t["failed"])
    );
    let refused = t["failed"].as_u64().unwrap_or(0);
    if !b.wait {
        show(json, &v, &out)?;
    } else {
        let mut ends = Vec::new();
        let mut failed = Vec::new();
        for r in rows(&v, "results") {
            let run = text(&r["run_id"]);
            if run.is_empty() {
                continue;
            }
            match wait::follow(c, id(&run)?, !json) {
                Ok(end) => {
                    out.push_str(&format!("\n{}", wait::summary(&end["run"])));
                    ends.push(end["run"].clone());
                }
                Err(CliError::RunFailed(m)) => {
                    out.push_str(&format!("\n{m}"));
                    failed.push(m);
                }
                Err(e) => return Err(e),
            }
        }
        let mut all = v.clone();
        all["runs"] = Value::Array(ends);
        show(json, &all, &out)?;
        if !failed.is_empty() {
            return Err(CliError::RunFailed(format!(
                "{} of the restores failed",
                failed.len()
            )));
        }
    }
    if refused > 0 {
        return Err(CliError::Refused(format!(
            "the server refused {refused} of the {} restores",
            b.items.len()
        )));
    }
    Ok(())
}
