//! `coffer agent enroll` and `coffer agent run`: this machine as an agent of a Coffer
//! server, following the agent ⇄ server contract v1 (`/v1/enroll`, heartbeat, long
//! poll, progress, completion, pre-signed storage requests).
//!
//! The agent never holds storage credentials: every object request is signed by the
//! server (`POST /v1/agent/presign`) for one key and a short time, and the adapters'
//! `S3Storage::with_signer` sends it. A run's result is written to the state folder
//! before it is sent and removed once the server took it, so a restart (or a server
//! that is away) never loses it; completions are idempotent on the server.

mod api;
mod state;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use coffer_adapters::pipeline::{self, BackupOptions, RestoreOptions};
use coffer_adapters::storage::{
    ObjectKey, PresignOp, PresignedRequest, S3Config, S3Storage, Signer, Storage,
};
use coffer_adapters::Error as AdaptersError;
use coffer_core::{SecretKey, Suite};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::args::AgentCommand;
use crate::calendar;
use crate::exit::{CliError, Result};
use crate::output::emit;
use crate::progress::ProgressStorage;
use crate::secrets;
use api::{Api, ApiError};
use state::StateDir;

/// The environment variable an enrolment token may come from.
const TOKEN_ENV: &str = "COFFER_ENROLL_TOKEN";
/// How often a running job reports progress (which also extends its lease).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The longest wait between retries when the server is away.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs an agent subcommand.
///
/// # Errors
/// As each command's.
pub(crate) fn run(command: &AgentCommand, json: bool) -> Result<()> {
    match command {
        AgentCommand::Enroll {
            server,
            token_file,
            state_dir,
        } => enroll(server, token_file.as_deref(), state_dir.as_deref(), json),
        AgentCommand::Run { state_dir, once } => run_loop(state_dir.as_deref(), *once),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn enroll(
    server: &str,
    token_file: Option<&std::path::Path>,
    state_dir: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    let state = StateDir::new(state_dir)?;
    if state.enrolled() {
        return Err(CliError::Exists(format!(
            "an agent is already enrolled in {}",
            state.path().display()
        )));
    }
    let token = secrets::passphrase(secrets::PassphraseSpec {
        file: token_file,
        env: TOKEN_ENV,
        prompt: "Enrolment token",
        confirm: false,
    })?;
    let token = Zeroizing::new(token.trim().to_owned());
    if !token.starts_with("cfe_") {
        return Err(CliError::Usage(
            "that is not an enrolment token (they start with cfe_)".into(),
        ));
    }
    let api = Api::new(server, None)?;
    let answer = api
        .post(
            "/v1/enroll",
            &json!({"token": token.as_str(), "hostname": hostname(),
                    "version": env!("CARGO_PKG_VERSION")}),
        )
        .map_err(|e| CliError::from(e).context("enrolling"))?;
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| CliError::Corrupt(format!("the enrolment answer has no {what}")))
    };
    let api_key = Zeroizing::new(text(&answer["api_key"], "api_key")?);
    let repository = &answer["repository"];
    let key = decode_key(repository)?;
    let agent = json!({
        "server": api.base(),
        "agent_id": text(&answer["agent_id"], "agent_id")?,
        "tenant_id": answer["tenant_id"],
        "destination": answer["destination"],
        "repository": {"id": repository["id"], "key_id": repository["key_id"],
                       "suite": repository["suite"]},
    });
    state.save_enrolment(&agent, &api_key, &key)?;
    emit(
        json,
        json!({"agent_id": agent["agent_id"], "state_dir": state.path().display().to_string(),
               "destination": agent["destination"], "key_id": key.id().to_string()}),
        &format!(
            "enrolled as agent {} (state in {}); start it with: coffer agent run",
            agent["agent_id"].as_str().unwrap_or("?"),
            state.path().display()
        ),
    )
}

/// The repository key from a `repository` object, checked against its stated key ID.
fn decode_key(repository: &Value) -> Result<SecretKey> {
    let encoded = repository["key"]
        .as_str()
        .ok_or_else(|| CliError::Corrupt("the server sent no repository key".into()))?;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| CliError::Corrupt("the repository key is not base64".into()))?,
    );
    let key = SecretKey::try_from_slice(&bytes)?;
    let stated = repository["key_id"].as_str().unwrap_or_default();
    if !stated.eq_ignore_ascii_case(&key.id().to_string()) {
        return Err(CliError::Corrupt(format!(
            "the repository key's ID is {}, not the {stated:?} the server states",
            key.id()
        )));
    }
    Ok(key)
}

/// Waits that double from 1 s up to [`MAX_BACKOFF`], with jitter.
struct Backoff(Duration);

impl Backoff {
    fn reset(&mut self) {
        self.0 = Duration::from_secs(1);
    }
    fn wait(&mut self, hint: Option<u64>) {
        let jitter = Duration::from_millis(u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_millis())
                % 500,
        ));
        let wait = hint.map_or(self.0, Duration::from_secs).min(MAX_BACKOFF) + jitter;
        std::thread::sleep(wait);
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
    }
}

fn run_loop(state_dir: Option<&std::path::Path>, once: bool) -> Result<()> {
    let state = StateDir::new(state_dir)?;
    let agent = state.agent()?;
    let server = agent["server"]
        .as_str()
        .ok_or_else(|| CliError::Corrupt("agent.json has no server".into()))?;
    let api = Arc::new(Api::new(server, Some(state.api_key()?))?);
    let mut backoff = Backoff(Duration::from_secs(1));
    let key = loop {
        match state.repository_key()? {
            Some(k) => break k,
            None => match api.get("/v1/agent/repository-key") {
                Ok(repository) => {
                    let key = decode_key(&repository)?;
                    state.save_enrolment(&agent, &state.api_key()?, &key)?;
                    break key;
                }
                Err(e @ ApiError::Transient { .. }) => {
                    eprintln!("coffer agent: {e}; retrying");
                    backoff.wait(None);
                }
                Err(e) => return Err(e.into()),
            },
        }
    };
    let stated = agent["repository"]["key_id"].as_str().unwrap_or_default();
    if !stated.eq_ignore_ascii_case(&key.id().to_string()) {
        return Err(CliError::Corrupt(format!(
            "the stored repository key ({}) is not the enrolled one ({stated})",
            key.id()
        )));
    }
    let suite = match agent["repository"]["suite"].as_str() {
        Some("chacha20-poly1305") => Suite::ChaCha20Poly1305,
        _ => Suite::Aes256Gcm,
    };
    let bucket = agent["destination"]["bucket"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let storage = S3Storage::with_signer(
        Arc::new(ApiSigner {
            api: Arc::clone(&api),
        }),
        &S3Config::for_signer(bucket),
    )?;
    eprintln!(
        "coffer agent {} running against {}",
        agent["agent_id"].as_str().unwrap_or("?"),
        api.base()
    );
    log(
        &api,
        "info",
        &format!("agent {} started", env!("CARGO_PKG_VERSION")),
    );
    loop {
        deliver_pending(&api, &state);
        let step = api
            .post(
                "/v1/agent/heartbeat",
                &json!({"version": env!("CARGO_PKG_VERSION")}),
            )
            .and_then(|_| api.get("/v1/agent/poll?wait_secs=25"));
        match step {
            Ok(answer) => {
                backoff.reset();
                if let Some(work) = answer.get("work").filter(|w| !w.is_null()) {
                    let run_id = work["run_id"].as_str().unwrap_or_default().to_owned();
                    let body = execute(&api, &storage, &key, suite, work);
                    // Written down before it is sent: a restart resends it.
                    state.save_pending(&run_id, &body)?;
                    deliver_pending(&api, &state);
                }
            }
            Err(ApiError::Refused { status, .. }) if status == 401 || status == 403 => {
                return Err(CliError::WrongKey(
                    "the server no longer accepts this agent's API key (revoked?)".into(),
                ));
            }
            Err(e) => {
                let hint = match &e {
                    ApiError::Transient { retry_after, .. } => *retry_after,
                    ApiError::Refused { .. } => None,
                };
                eprintln!("coffer agent: {e}; retrying");
                if once {
                    return Err(e.into());
                }
                backoff.wait(hint);
            }
        }
        if once {
            return Ok(());
        }
    }
}

/// Sends every stored result; those the server cannot take now stay for later.
fn deliver_pending(api: &Api, state: &StateDir) {
    let pending = match state.pending() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coffer agent: reading pending results: {e}");
            return;
        }
    };
    for (run_id, body) in pending {
        match api.post(&format!("/v1/agent/runs/{run_id}/complete"), &body) {
            Ok(_) => {}
            Err(e @ ApiError::Transient { .. }) => {
                eprintln!("coffer agent: result of run {run_id} not delivered yet: {e}");
                return;
            }
            // A refusal (409: the server recorded another result; 404: no such run)
            // will not change by sending it again.
            Err(e) => eprintln!("coffer agent: result of run {run_id} refused: {e}"),
        }
        if let Err(e) = state.delivered(&run_id) {
            eprintln!("coffer agent: {e}");
        }
    }
}

/// Runs one piece of work and returns its completion body. Progress is reported every
/// [`PROGRESS_EVERY`] while it runs, which keeps the lease.
fn execute(api: &Api, storage: &S3Storage, key: &SecretKey, suite: Suite, work: &Value) -> Value {
    let run_id = work["run_id"].as_str().unwrap_or_default();
    let bar = indicatif::ProgressBar::hidden();
    let counted = ProgressStorage {
        inner: storage,
        bar: bar.clone(),
    };
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    let body = json!({"bytes": bar.position(), "files": 0});
                    if let Err(e) = api.post(&format!("/v1/agent/runs/{run_id}/progress"), &body) {
                        eprintln!("coffer agent: progress of run {run_id}: {e}");
                    }
                }
            }
        });
        let outcome = perform(&counted, key, suite, work);
        done.store(true, Ordering::Relaxed);
        outcome
    });
    match outcome {
        Ok(mut body) => {
            body["status"] = json!("succeeded");
            body["error"] = Value::Null;
            body
        }
        Err(e) => {
            eprintln!("coffer agent: run {run_id} failed: {e}");
            log(api, "error", &format!("run {run_id} failed: {e}"));
            json!({"status": "failed", "bytes": bar.position(), "files": 0,
                   "error": e.to_string(), "restore_point": null})
        }
    }
}

/// Sends one line to the server's log of this agent (best effort: a log line is not
/// worth a retry).
fn log(api: &Api, level: &str, message: &str) {
    let line = json!({"level": level, "message": message,
                      "time": calendar::rfc3339(crate::backup::now())});
    if let Err(e) = api.post("/v1/agent/logs", &json!({"lines": [line]})) {
        eprintln!("coffer agent: sending a log line: {e}");
    }
}

fn text_field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v[name]
        .as_str()
        .ok_or_else(|| CliError::Usage(format!("the work item has no {name}")))
}

fn perform(store: &dyn Storage, key: &SecretKey, suite: Suite, work: &Value) -> Result<Value> {
    let provider = coffer_adapters::default_provider();
    match work["kind"].as_str() {
        Some("backup") => {
            let job = &work["backup"];
            let prefix = ObjectKey::new(text_field(job, "prefix")?)?;
            let name = text_field(job, "name")?;
            let sources: Vec<PathBuf> = job["sources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(PathBuf::from))
                        .collect()
                })
                .unwrap_or_default();
            if sources.is_empty() {
                return Err(CliError::Usage("the backup has no sources".into()));
            }
            let options = BackupOptions {
                level: job["level"].as_i64().map_or(3, |l| l.clamp(1, 19) as i32),
                suite,
                ..BackupOptions::default()
            };
            let summary =
                pipeline::backup(&provider, store, &prefix, name, key, &sources, &options)?;
            let m = &summary.manifest;
            let files = m.entries.len() as u64;
            Ok(json!({"bytes": summary.stored_bytes, "files": files,
                "restore_point": {"name": name, "prefix": prefix.as_str(),
                    "key_id": key.id().to_string(), "stored_bytes": summary.stored_bytes,
                    "content_bytes": m.content_bytes, "files": files,
                    "created_at": calendar::rfc3339(m.created)}}))
        }
        Some("restore") => {
            let job = &work["restore"];
            let prefix = ObjectKey::new(text_field(job, "prefix")?)?;
            let name = text_field(job, "name")?;
            let target = PathBuf::from(text_field(job, "target")?);
            let options = RestoreOptions {
                paths: job["paths"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(|p| p.as_bytes().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let s = crate::backup::restore_tree(&target, |staging| {
                pipeline::restore(&provider, store, &prefix, name, key, staging, &options)
            })?;
            Ok(json!({"bytes": s.bytes, "files": s.files, "restore_point": null}))
        }
        Some("verify") => {
            let job = &work["verify"];
            let prefix = ObjectKey::new(text_field(job, "prefix")?)?;
            let name = text_field(job, "name")?;
            let s = pipeline::verify(&provider, store, &prefix, name, key)?;
            Ok(json!({"bytes": s.bytes, "files": s.entries, "restore_point": null}))
        }
        other => Err(CliError::Usage(format!(
            "this agent does not know work of kind {other:?}"
        ))),
    }
}

/// Signs storage requests by asking the server (`POST /v1/agent/presign`).
struct ApiSigner {
    api: Arc<Api>,
}

impl Signer for ApiSigner {
    fn sign(&self, op: PresignOp<'_>, key: &ObjectKey) -> Result<PresignedRequest, AdaptersError> {
        let backend = |code: &str, message: String, status: Option<u16>, transient: bool| {
            AdaptersError::Backend {
                operation: "Presign",
                key: key.to_string(),
                status,
                code: code.to_owned(),
                message,
                transient,
            }
        };
        let body = presign_body(op, key).ok_or_else(|| {
            backend(
                "Unsupported",
                "an operation this agent cannot ask for".into(),
                None,
                false,
            )
        })?;
        let answer = self
            .api
            .post("/v1/agent/presign", &body)
            .map_err(|e| match e {
                ApiError::Transient { message, .. } => {
                    backend("ServerUnavailable", message, None, true)
                }
                ApiError::Refused {
                    status,
                    code,
                    message,
                } => backend(&code, message, Some(status), false),
            })?;
        parse_presigned(&answer).map_err(|m| backend("BadPresignAnswer", m, None, false))
    }
}

/// The contract's presign request for `op` on `key` (None for an operation it lacks).
fn presign_body(op: PresignOp<'_>, key: &ObjectKey) -> Option<Value> {
    let mut body = json!({"key": key.as_str(), "create_only": false, "checksum_sha256": null,
                          "upload_id": null, "part_number": null});
    let (name, create_only, checksum, upload_id, part): (
        _,
        bool,
        Value,
        Option<&str>,
        Option<u16>,
    ) = match op {
        PresignOp::Get => ("get", false, Value::Null, None, None),
        PresignOp::Head => ("head", false, Value::Null, None, None),
        PresignOp::Delete => ("delete", false, Value::Null, None, None),
        PresignOp::Put {
            create_only,
            checksum_sha256,
        } => ("put", create_only, json!(checksum_sha256), None, None),
        // The server takes `true` here for "parts will carry SHA-256 checksums".
        PresignOp::CreateMultipartUpload { checksum_sha256 } => (
            "create_multipart",
            false,
            if checksum_sha256 {
                json!(true)
            } else {
                Value::Null
            },
            None,
            None,
        ),
        PresignOp::UploadPart {
            upload_id,
            part_number,
            checksum_sha256,
        } => (
            "upload_part",
            false,
            json!(checksum_sha256),
            Some(upload_id),
            Some(part_number),
        ),
        PresignOp::ListParts { upload_id } => {
            ("list_parts", false, Value::Null, Some(upload_id), None)
        }
        PresignOp::CompleteMultipartUpload {
            upload_id,
            create_only,
        } => (
            "complete_multipart",
            create_only,
            Value::Null,
            Some(upload_id),
            None,
        ),
        PresignOp::AbortMultipartUpload { upload_id } => {
            ("abort_multipart", false, Value::Null, Some(upload_id), None)
        }
        _ => return None,
    };
    body["op"] = json!(name);
    body["create_only"] = json!(create_only);
    body["checksum_sha256"] = checksum;
    body["upload_id"] = json!(upload_id);
    body["part_number"] = json!(part);
    Some(body)
}

/// The signed headers the adapters send; the server may sign only these.
const KNOWN_HEADERS: [&str; 4] = [
    "x-amz-checksum-sha256",
    "x-amz-checksum-mode",
    "x-amz-checksum-algorithm",
    "if-none-match",
];

fn parse_presigned(answer: &Value) -> std::result::Result<PresignedRequest, String> {
    let method = match answer["method"]
        .as_str()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("GET") => "GET",
        Some("PUT") => "PUT",
        Some("HEAD") => "HEAD",
        Some("DELETE") => "DELETE",
        Some("POST") => "POST",
        other => return Err(format!("unknown method {other:?}")),
    };
    let url = answer["url"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or("no http(s) url")?
        .to_owned();
    let mut headers = Vec::new();
    for pair in answer["headers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
            return Err("a header is not a [name, value] pair".into());
        };
        let known = KNOWN_HEADERS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("the server signed a header this agent does not send: {name}")
            })?;
        headers.push((*known, value.to_owned()));
    }
    Ok(PresignedRequest {
        method,
        url,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presign_requests_follow_the_contract() {
        let key = ObjectKey::new("repo/backups/b.archive").unwrap();
        let body = presign_body(
            PresignOp::Put {
                create_only: true,
                checksum_sha256: Some("abc="),
            },
            &key,
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"op": "put", "key": "repo/backups/b.archive", "create_only": true,
                   "checksum_sha256": "abc=", "upload_id": null, "part_number": null})
        );
        let body = presign_body(
            PresignOp::UploadPart {
                upload_id: "u1",
                part_number: 7,
                checksum_sha256: None,
            },
            &key,
        )
        .unwrap();
        assert_eq!(body["op"], "upload_part");
        assert_eq!(body["upload_id"], "u1");
        assert_eq!(body["part_number"], 7);
        let body = presign_body(
            PresignOp::CreateMultipartUpload {
                checksum_sha256: true,
            },
            &key,
        )
        .unwrap();
        assert_eq!(
            (body["op"].clone(), body["checksum_sha256"].clone()),
            (json!("create_multipart"), json!(true))
        );
    }

    #[test]
    fn presign_answers_are_parsed_and_unknown_headers_refused() {
        let ok = parse_presigned(
            &json!({"method": "PUT", "url": "https://s3/x?X-Amz-Signature=s",
            "headers": [["If-None-Match", "*"], ["x-amz-checksum-sha256", "abc="]],
            "expires_at": "2026-11-23T12:00:00Z"}),
        )
        .unwrap();
        assert_eq!(ok.method, "PUT");
        assert_eq!(
            ok.headers,
            vec![
                ("if-none-match", "*".to_owned()),
                ("x-amz-checksum-sha256", "abc=".to_owned())
            ]
        );
        assert!(
            parse_presigned(&json!({"method": "PUT", "url": "https://s3/x",
            "headers": [["authorization", "x"]]}))
            .is_err()
        );
        assert!(parse_presigned(
            &json!({"method": "PUT", "url": "file:///etc/passwd", "headers": []})
        )
        .is_err());
    }

    #[test]
    fn the_repository_key_must_match_its_stated_id() {
        let key = SecretKey::from_bytes([6; 32]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(key.expose_secret());
        let good = json!({"key": encoded, "key_id": key.id().to_string()});
        assert_eq!(decode_key(&good).unwrap(), key);
        let bad = json!({"key": encoded, "key_id": "00".repeat(16)});
        assert!(matches!(decode_key(&bad), Err(CliError::Corrupt(_))));
    }
}
