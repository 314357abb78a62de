//! An operator's commands over the tenant's enrolment tokens, agents, destinations,
//! jobs and runs.

use serde_json::{json, Map, Value};

use super::args::{
    AgentVerb, DestinationVerb, JobUpdate, JobVerb, KeepOrDelete, ListFilter, RetentionArgs,
    RunVerb, TokenVerb,
};
use super::client::ServerClient;
use super::table::{bytes, col, details, render, rows, text, time, Col};
use super::{id, maybe_wait, show, wait};
use crate::exit::{CliError, Result};

/// `coffer server token …`.
pub(crate) fn token(c: &ServerClient, verb: &TokenVerb, json: bool) -> Result<()> {
    match verb {
        TokenVerb::Create { ttl, label } => {
            let mut body = json!({"label": label});
            if let Some(t) = ttl {
                body["ttl_secs"] = json!(t);
            }
            let v = c.post("/v1/enrolment-tokens", Some(&body))?;
            show(
                json,
                &v,
                &format!(
                    "enrolment token {} (one use, expires {}):\n{}",
                    text(&v["id"]),
                    time(&v["expires_at"]),
                    text(&v["token"])
                ),
            )
        }
        TokenVerb::List => {
            let v = c.get("/v1/enrolment-tokens", &[])?;
            show(
                json,
                &v,
                &render(rows(&v, "tokens"), &super::admin::token_cols()),
            )
        }
        TokenVerb::Revoke { id: t } => {
            let v = c.post(&format!("/v1/enrolment-tokens/{}/revoke", id(t)?), None)?;
            show(json, &v, &format!("enrolment token {t} revoked"))
        }
    }
}

fn agent_cols() -> [Col; 10] {
    [
        col!("ID", "id"),
        col!("NAME", |a| {
            let name = text(&a["name"]);
            if name.is_empty() {
                text(&a["hostname"])
            } else {
                name
            }
        }),
        col!("HOST", "hostname"),
        col!("STATUS", "status"),
        col!("VERSION", "version"),
        col!(
            "PLATFORM",
            |a| match (a["platform"]["os"].as_str(), a["platform"]["arch"].as_str()) {
                (Some(os), Some(arch)) => format!("{os}/{arch}"),
                _ => String::new(),
            }
        ),
        col!("LAST SEEN", |a| time(&a["last_seen_at"])),
        col!("UPLOAD LIMIT", |a| {
            let b = bytes(&a["upload_limit"]);
            if b.is_empty() {
                b
            } else {
                format!("{b}/s")
            }
        }),
        col!("RUNS AT ONCE", "max_concurrent_runs"),
        col!("LABELS", "labels"),
    ]
}

/// One agent's `{"agent": …}` answer as a table row.
fn one_agent(v: &Value) -> String {
    render(std::slice::from_ref(&v["agent"]), &agent_cols())
}

/// `coffer server agent …`.
pub(crate) fn agent(c: &ServerClient, verb: &AgentVerb, json: bool) -> Result<()> {
    match verb {
        AgentVerb::List => {
            let v = c.get("/v1/agents", &[])?;
            show(json, &v, &render(rows(&v, "agents"), &agent_cols()))
        }
        AgentVerb::Get { id: a } => {
            let v = c.get(&format!("/v1/agents/{}", id(a)?), &[])?;
            let mut out = one_agent(&v);
            if v["destination"].is_object() {
                out.push_str("\n\ndestination:\n");
                out.push_str(&render(
                    std::slice::from_ref(&v["destination"]),
                    &destination_cols(),
                ));
            }
            show(json, &v, &out)
        }
        AgentVerb::Update {
            id: a,
            name,
            labels,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if !labels.is_empty() {
                let mut map = Map::new();
                for l in labels {
                    let (k, v) = l
                        .split_once('=')
                        .ok_or_else(|| CliError::Usage(format!("--label {l:?}: give KEY=VALUE")))?;
                    map.insert(k.to_owned(), json!(v));
                }
                body.insert("labels".into(), Value::Object(map));
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --name or --label".into(),
                ));
            }
            let v = c.patch(&format!("/v1/agents/{}", id(a)?), &Value::Object(body))?;
            show(json, &v, &one_agent(&v))
        }
        AgentVerb::Revoke { id: a } => {
            let v = c.post(&format!("/v1/agents/{}/revoke", id(a)?), None)?;
            show(json, &v, &one_agent(&v))
        }
        AgentVerb::Delete { id: a } => {
            let v = c.delete(&format!("/v1/agents/{}", id(a)?), &[])?;
            show(json, &v, &format!("agent {a} deleted"))
        }
        AgentVerb::UploadLimit { id: a, limit } => {
            let limit = rate(limit);
            let v = c.post(
                &format!("/v1/agents/{}/upload-limit", id(a)?),
                Some(&json!({"upload_limit": limit})),
            )?;
            show(json, &v, &one_agent(&v))
        }
        AgentVerb::Concurrency { id: a, runs } => {
            let v = c.post(
                &format!("/v1/agents/{}/concurrency", id(a)?),
                Some(&json!({"max_concurrent_runs": runs})),
            )?;
            show(json, &v, &one_agent(&v))
        }
        AgentVerb::Logs { id: a, limit } => {
            let v = c.get(
                &format!("/v1/agents/{}/logs", id(a)?),
                &[("limit", limit.map(|l| l.to_string()))],
            )?;
            let cols = [
                col!("TIME", |l| time(&l["time"])),
                col!("LEVEL", "level"),
                col!("MESSAGE", "message"),
            ];
            show(json, &v, &render(rows(&v, "lines"), &cols))
        }
    }
}

/// An upload limit argument: "none" (or "off") is null; digits alone a number of bytes
/// a second; anything else ("10MiB/s") as the server reads it.
fn rate(limit: &str) -> Value {
    match limit {
        "none" | "off" | "null" => Value::Null,
        n if n.chars().all(|c| c.is_ascii_digit()) => {
            n.parse::<u64>().map_or_else(|_| json!(n), |n| json!(n))
        }
        other => json!(other),
    }
}

fn destination_cols() -> [Col; 7] {
    [
        col!("ID", "id"),
        col!("AGENT", "agent_id"),
        col!("BUCKET", "bucket"),
        col!("PREFIX", "prefix"),
        col!("REPOSITORY", "repository_id"),
        col!("LOCKED", "locked"),
        col!("CREATED", |d| time(&d["created_at"])),
    ]
}

/// `coffer server destination …`.
pub(crate) fn destination(c: &ServerClient, verb: &DestinationVerb, json: bool) -> Result<()> {
    match verb {
        DestinationVerb::List => {
            let v = c.get("/v1/destinations", &[])?;
            show(
                json,
                &v,
                &render(rows(&v, "destinations"), &destination_cols()),
            )
        }
        DestinationVerb::Get { id: d } => {
            let v = c.get(&format!("/v1/destinations/{}", id(d)?), &[])?;
            let mut out = render(std::slice::from_ref(&v["destination"]), &destination_cols());
            let r = &v["repository"];
            if r.is_object() {
                out.push_str("\n\nrepository:\n");
                out.push_str(&details(&[
                    ("id", text(&r["id"])),
                    ("key id", text(&r["key_id"])),
                    ("suite", text(&r["suite"])),
                    ("key version", text(&r["key_version"])),
                    ("kek id", text(&r["kek_id"])),
                ]));
            }
            show(json, &v, &out)
        }
        DestinationVerb::Delete { id: d } => {
            let v = c.delete(&format!("/v1/destinations/{}", id(d)?), &[])?;
            show(json, &v, &format!("destination {d} deleted"))
        }
        DestinationVerb::RecoveryKey { id: d, out } => recovery_key(c, d, out, json),
    }
}

/// Asks for a recovery key and writes it as a key file; the key itself is never
/// printed (the JSON output leaves it out too).
fn recovery_key(c: &ServerClient, d: &str, out: &std::path::Path, json: bool) -> Result<()> {
    use base64::Engine as _;
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(CliError::Exists(format!(
            "{} already exists; not overwriting it",
            out.display()
        )));
    }
    let mut v = c.post(&format!("/v1/destinations/{}/recovery-key", id(d)?), None)?;
    let encoded = zeroize::Zeroizing::new(
        v["key"]
            .as_str()
            .ok_or_else(|| CliError::Other("the server sent no key".into()))?
            .to_owned(),
    );
    if let Some(o) = v.as_object_mut() {
        o.remove("key");
    }
    let bytes = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| CliError::Other("the server's key is not base64".into()))?,
    );
    let raw: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| CliError::Other("the server's key is not 32 bytes".into()))?;
    let key = coffer_core::SecretKey::from_bytes(raw);
    crate::keys::write_private_file(out, crate::keys::key_file_text(&key).as_bytes())?;
    let location = text(&v["location"]);
    show(
        json,
        &v,
        &format!(
            "recovery key written to {} (key file {} in the repository).\n\
             Restore without the server: coffer snapshots -r {location} --key-file {}",
            out.display(),
            text(&v["key_file_id"]),
            out.display()
        ),
    )
}

fn job_cols() -> [Col; 7] {
    [
        col!("ID", "id"),
        col!("NAME", "name"),
        col!("AGENT", "agent_id"),
        col!("SOURCES", "sources"),
        col!("SCHEDULE", |j| {
            let s = text(&j["schedule"]);
            let tz = text(&j["time_zone"]);
            if s.is_empty() {
                "(on demand)".to_owned()
            } else if tz.is_empty() {
                s
            } else {
                format!("{s} ({tz})")
            }
        }),
        col!("NEXT RUN", |j| {
            // The newer server lists the next few; the older one the next alone.
            match j["next_runs"].as_array().and_then(|a| a.first()) {
                Some(t) => time(t),
                None => time(&j["next_run_at"]),
            }
        }),
        col!("RETENTION", |j| text(&j["retention"])),
    ]
}

/// One job's `{"job": …}` answer for people.
fn one_job(v: &Value) -> String {
    let j = &v["job"];
    let mut pairs = vec![
        ("id", text(&j["id"])),
        ("name", text(&j["name"])),
        ("agent", text(&j["agent_id"])),
        ("sources", text(&j["sources"])),
        ("excludes", text(&j["excludes"])),
        ("schedule", text(&j["schedule"])),
        ("time zone", text(&j["time_zone"])),
        ("retention", text(&j["retention"])),
        ("level", text(&j["level"])),
        ("upload limit", bytes(&j["upload_limit"])),
        ("created", time(&j["created_at"])),
    ];
    match j["next_runs"].as_array() {
        Some(list) => pairs.push((
            "next runs",
            list.iter().map(time).collect::<Vec<_>>().join(", "),
        )),
        None => pairs.push(("next run", time(&j["next_run_at"]))),
    }
    details(&pairs)
}

/// `--keep-*` as the server's retention object, if any was given.
fn retention(r: &RetentionArgs) -> Option<Value> {
    let fields = [
        ("keep_last", r.keep_last),
        ("keep_daily", r.keep_daily),
        ("keep_weekly", r.keep_weekly),
        ("keep_monthly", r.keep_monthly),
    ];
    if fields.iter().all(|(_, v)| v.is_none()) {
        return None;
    }
    Some(Value::Object(
        fields
            .iter()
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), json!(v))))
            .collect(),
    ))
}

/// `coffer server job …`.
pub(crate) fn job(c: &ServerClient, verb: &JobVerb, json: bool) -> Result<()> {
    match verb {
        JobVerb::Create {
            agent,
            name,
            sources,
            excludes,
            schedule,
            time_zone,
            retention: keep,
            level,
            upload_limit,
        } => {
            let mut body = json!({"agent_id": agent, "name": name, "sources": sources});
            // Fields the older server does not know are sent only when given.
            if !excludes.is_empty() {
                body["excludes"] = json!(excludes);
            }
            if let Some(s) = schedule {
                body["schedule"] = json!(s);
            }
            if let Some(tz) = time_zone {
                body["time_zone"] = json!(tz);
            }
            if let Some(r) = retention(keep) {
                body["retention"] = r;
            }
            if let Some(l) = level {
                body["level"] = json!(l);
            }
            if let Some(u) = upload_limit {
                body["upload_limit"] = rate(u);
            }
            let v = c.post("/v1/jobs", Some(&body))?;
            show(json, &v, &one_job(&v))
        }
        JobVerb::List => {
            let v = c.get("/v1/jobs", &[])?;
            show(json, &v, &render(rows(&v, "jobs"), &job_cols()))
        }
        JobVerb::Get { id: j } => {
            let v = c.get(&format!("/v1/jobs/{}", id(j)?), &[])?;
            show(json, &v, &one_job(&v))
        }
        JobVerb::Update(u) => {
            let v = c.patch(&format!("/v1/jobs/{}", id(&u.id)?), &job_patch(u)?)?;
            show(json, &v, &one_job(&v))
        }
        JobVerb::Delete {
            id: j,
            restore_points,
        } => {
            let keep = restore_points.map(|k| {
                match k {
                    KeepOrDelete::Keep => "keep",
                    KeepOrDelete::Delete => "delete",
                }
                .to_owned()
            });
            let v = c.delete(&format!("/v1/jobs/{}", id(j)?), &[("restore_points", keep)])?;
            show(json, &v, &format!("job {j} deleted"))
        }
        JobVerb::Run { id: j, wait } => {
            let v = c.post(&format!("/v1/jobs/{}/run", id(j)?), None)?;
            let queued = format!("run {} queued", text(&v["run"]["id"]));
            maybe_wait(c, &v, *wait, json, &queued)
        }
        JobVerb::Retention { id: j, now } => {
            let path = format!("/v1/jobs/{}/retention", id(j)?);
            let cols = [
                col!("ID", "id"),
                col!("TRIGGER", "trigger"),
                col!("STATUS", "status"),
                col!("STARTED", |r| time(&r["started_at"])),
                col!("KEPT", "kept"),
                col!("FORGOT", |r| r["forgotten"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string()),
                col!("PRUNE", "prune"),
                col!("FREED", |r| bytes(&r["bytes_freed"])),
            ];
            if *now {
                let v = c.post(&path, None)?;
                show(
                    json,
                    &v,
                    &render(std::slice::from_ref(&v["retention_run"]), &cols),
                )
            } else {
                let v = c.get(&path, &[])?;
                show(json, &v, &render(rows(&v, "retention_runs"), &cols))
            }
        }
    }
}

/// The PATCH body of `job update`: only what was given.
fn job_patch(u: &JobUpdate) -> Result<Value> {
    let mut body = Map::new();
    if let Some(n) = &u.name {
        body.insert("name".into(), json!(n));
    }
    if !u.sources.is_empty() {
        body.insert("sources".into(), json!(u.sources));
    }
    if !u.excludes.is_empty() {
        body.insert("excludes".into(), json!(u.excludes));
    } else if u.no_excludes {
        body.insert("excludes".into(), json!([]));
    }
    if let Some(s) = &u.schedule {
        body.insert("schedule".into(), json!(s));
    } else if u.no_schedule {
        body.insert("schedule".into(), Value::Null);
    }
    if let Some(tz) = &u.time_zone {
        body.insert("time_zone".into(), json!(tz));
    }
    if let Some(r) = retention(&u.retention) {
        body.insert("retention".into(), r);
    }
    if let Some(l) = u.level {
        body.insert("level".into(), json!(l));
    }
    if let Some(l) = &u.upload_limit {
        body.insert("upload_limit".into(), rate(l));
    }
    if body.is_empty() {
        return Err(CliError::Usage(
            "nothing to change: give at least one option (see --help)".into(),
        ));
    }
    Ok(Value::Object(body))
}

/// The columns of a run list.
pub(super) fn run_cols() -> [Col; 10] {
    [
        col!("ID", "id"),
        col!("KIND", "kind"),
        col!("STATUS", "status"),
        col!("JOB", "job_id"),
        col!("AGENT", "agent_id"),
        col!("RESTORE POINT", "restore_point_id"),
        col!("FILES", "files"),
        col!("BYTES", |r| bytes(&r["bytes"])),
        col!("CREATED", |r| time(&r["created_at"])),
        col!("FINISHED / ERROR", |r| {
            let e = text(&r["error"]);
            if e.is_empty() {
                time(&r["finished_at"])
            } else {
                e
            }
        }),
    ]
}

/// The query of a filtered list.
pub(super) fn filter_query(f: &ListFilter) -> Result<Vec<(&'static str, Option<String>)>> {
    let check = |v: &Option<String>| -> Result<Option<String>> {
        v.as_deref().map(|v| id(v).map(str::to_owned)).transpose()
    };
    Ok(vec![
        ("job_id", check(&f.job_id)?),
        ("agent_id", check(&f.agent_id)?),
        ("since", f.since.clone()),
        ("until", f.until.clone()),
        ("limit", f.limit.map(|l| l.to_string())),
    ])
}

/// `coffer server run …`.
pub(crate) fn run(c: &ServerClient, verb: &RunVerb, json: bool) -> Result<()> {
    match verb {
        RunVerb::List { status, filter } => {
            let mut query = filter_query(filter)?;
            query.push(("status", status.clone()));
            let v = c.get("/v1/runs", &query)?;
            show(json, &v, &render(rows(&v, "runs"), &run_cols()))
        }
        RunVerb::Get { id: r, wait: false } => {
            let v = c.get(&format!("/v1/runs/{}", id(r)?), &[])?;
            show(json, &v, &one_run(&v["run"]))
        }
        RunVerb::Get { id: r, wait: true } | RunVerb::Wait { id: r } => {
            let end = wait::follow(c, id(r)?, !json)?;
            show(json, &end, &wait::summary(&end["run"]))
        }
        RunVerb::Retry { id: r, wait } => {
            let v = c.post(&format!("/v1/runs/{}/retry", id(r)?), None)?;
            let queued = format!("run {r} queued again as run {}", text(&v["run"]["id"]));
            maybe_wait(c, &v, *wait, json, &queued)
        }
        RunVerb::Cancel { id: r } => {
            let v = c.post(&format!("/v1/runs/{}/cancel", id(r)?), None)?;
            show(json, &v, &one_run(&v["run"]))
        }
    }
}

/// One run for people, with its progress while it runs.
fn one_run(r: &Value) -> String {
    let p = &r["progress"];
    let mut pairs = vec![
        ("id", text(&r["id"])),
        ("kind", text(&r["kind"])),
        ("status", text(&r["status"])),
        ("job", text(&r["job_id"])),
        ("agent", text(&r["agent_id"])),
        ("restore point", text(&r["restore_point_id"])),
        ("target", text(&r["target"])),
        ("requested by", text(&r["requested_by"])),
        ("created", time(&r["created_at"])),
        ("claimed", time(&r["claimed_at"])),
        ("finished", time(&r["finished_at"])),
        ("files", text(&r["files"])),
        ("bytes", bytes(&r["bytes"])),
        ("error", text(&r["error"])),
    ];
    if p.is_object() {
        pairs.push(("files total", text(&p["files_total"])));
        pairs.push(("bytes total", bytes(&p["bytes_total"])));
        pairs.push(("rate", bytes(&p["rate"])));
        pairs.push(("eta (s)", text(&p["eta_secs"])));
        pairs.push(("current path", text(&p["current_path"])));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    details(&pairs)
}
