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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use coffer_adapters::repo::backup::Progress as BackupProgress;
use coffer_adapters::repo::backup::{self, BackupOptions, ProgressFn};
use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::restore::{self, RestoreOptions, RestoreProgress, RestoreProgressFn};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{
    ObjectKey, PresignOp, PresignedRequest, S3Config, S3Storage, Signer, Storage,
};
use coffer_adapters::Error as AdaptersError;
use coffer_core::SecretKey;
use coffer_protocol::enrol::{Destination, EnrollAnswer, EnrollRequest, RepositoryKey};
use coffer_protocol::presign::{PresignAnswer, PresignRequest};
use coffer_protocol::report::{
    Completion, Heartbeat, HeartbeatAnswer, LogLevel, LogLine, Logs, NewRestorePoint, Progress,
    ProgressAnswer,
};
use coffer_protocol::secret::Secret;
use coffer_protocol::work::{BackupWork, PollAnswer, Work, WorkHeader, WorkItem};
use coffer_protocol::{Outcome, Platform, RunId};
use serde_json::json;
use zeroize::Zeroizing;

use crate::args::AgentCommand;
use crate::calendar;
use crate::exit::{CliError, Result};
use crate::output::emit;
use crate::secrets;
use api::{Api, ApiError};
use state::{AgentRecord, RepositoryRecord, StateDir};

/// The environment variable an enrolment token may come from.
const TOKEN_ENV: &str = "COFFER_ENROLL_TOKEN";
/// How often a running job reports progress (which also extends its lease).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
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
            name,
        } => enroll(
            server,
            token_file.as_deref(),
            state_dir.as_deref(),
            name.as_deref(),
            json,
        ),
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
    name: Option<&str>,
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
    let request = EnrollRequest {
        token: Secret::new(token.to_string()),
        hostname: hostname(),
        name: name.map(str::to_owned),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        platform: Some(Platform::current()),
    };
    let answer: EnrollAnswer = api
        .post("/v1/enroll", &request)
        .map_err(|e| CliError::from(e).context("enrolling"))?;
    let key = decode_key(&answer.repository)?;
    let agent = AgentRecord {
        server: api.base().to_owned(),
        agent_id: answer.agent_id,
        tenant_id: answer.tenant_id,
        destination: answer.destination,
        repository: RepositoryRecord {
            id: answer.repository.id,
            key_id: answer.repository.key_id.clone(),
            suite: answer.repository.suite,
            access: answer.repository.access,
        },
    };
    state.save_enrolment(&agent, answer.api_key.expose(), &key)?;
    let start = start_command(state_dir.map(|_| state.path()));
    emit(
        json,
        json!({"agent_id": agent.agent_id, "state_dir": state.path().display().to_string(),
               "destination": agent.destination, "key_id": key.id().to_string(),
               "start_command": start}),
        &format!(
            "enrolled as agent {} (state in {}); start it with: {start}",
            agent.agent_id,
            state.path().display()
        ),
    )
}

/// The command that starts this agent: with `--state-dir` when enrolment used one
/// (absolute, and quoted for a POSIX shell when it needs to be).
fn start_command(state_dir: Option<&std::path::Path>) -> String {
    let Some(dir) = state_dir else {
        return "coffer agent run".to_owned();
    };
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let text = dir.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if plain {
        format!("coffer agent run --state-dir {text}")
    } else {
        format!(
            "coffer agent run --state-dir '{}'",
            text.replace('\'', "'\\''")
        )
    }
}

/// The repository key from the server, checked against its stated key ID.
fn decode_key(repository: &RepositoryKey) -> Result<SecretKey> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(repository.key.expose())
            .map_err(|_| CliError::Corrupt("the repository key is not base64".into()))?,
    );
    let key = SecretKey::try_from_slice(&bytes)?;
    let stated = &repository.key_id;
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
    let api = Arc::new(Api::new(&agent.server, Some(state.api_key()?))?);
    let mut backoff = Backoff(Duration::from_secs(1));
    let key = loop {
        match state.repository_key()? {
            Some(k) => break k,
            // Lost with the state (a reinstall): the server issues a new write-only key
            // file and removes the old one.
            None => match api.post::<_, RepositoryKey>("/v1/agent/repository-key", &()) {
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
    let stated = &agent.repository.key_id;
    if !stated.eq_ignore_ascii_case(&key.id().to_string()) {
        return Err(CliError::Corrupt(format!(
            "the stored repository key ({}) is not the enrolled one ({stated})",
            key.id()
        )));
    }
    let mut config = S3Config::for_signer(agent.destination.bucket.clone());
    config.signer_root.clone_from(&agent.destination.prefix);
    let storage = S3Storage::with_signer(
        Arc::new(ApiSigner {
            api: Arc::clone(&api),
            run: None,
        }),
        &config,
    )?;
    eprintln!(
        "coffer agent {} running against {}",
        agent.agent_id,
        api.base()
    );
    log(
        &api,
        LogLevel::Info,
        &format!("agent {} started", env!("CARGO_PKG_VERSION")),
    );
    let runner = Runner {
        api: &api,
        store: Arc::new(storage),
        agent_kek: &key,
        cache_dir: state.path().join("cache"),
    };
    let heartbeat = Heartbeat {
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        platform: Some(Platform::current()),
    };
    // Runs go on threads of their own, so the agent keeps polling while they work: the
    // server hands out no more at once than the operator allows the agent.
    let running = AtomicU64::new(0);
    std::thread::scope(|scope| loop {
        deliver_pending(&api, &state);
        if running.load(Ordering::Relaxed) >= MAX_RUNS_AT_ONCE {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let step = api
            .post::<_, HeartbeatAnswer>("/v1/agent/heartbeat", &heartbeat)
            .and_then(|_| api.get::<serde_json::Value>("/v1/agent/poll?wait_secs=25"));
        match step {
            Ok(answer) => {
                backoff.reset();
                match runner.take_work(answer) {
                    Some(Taken::Work(work)) => {
                        running.fetch_add(1, Ordering::Relaxed);
                        let (runner, state, api, running) = (&runner, &state, &api, &running);
                        scope.spawn(move || {
                            let body = runner.execute(&work);
                            // Written down before it is sent: a restart resends it.
                            if let Err(e) = state.save_pending(work.run_id, &body) {
                                eprintln!(
                                    "coffer agent: keeping the result of run {}: {e}",
                                    work.run_id
                                );
                            }
                            deliver_pending(api, state);
                            running.fetch_sub(1, Ordering::Relaxed);
                        });
                        if once {
                            return Ok(());
                        }
                        continue;
                    }
                    Some(Taken::Refused(run_id, body)) => {
                        state.save_pending(run_id, &body)?;
                        deliver_pending(&api, &state);
                    }
                    None => {}
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
    })
}

/// Runs this agent does at once, at most (the server's limit for it is usually lower).
const MAX_RUNS_AT_ONCE: u64 = 16;

/// What a poll handed out.
enum Taken {
    /// Work to do.
    Work(Work),
    /// Work this agent cannot read: its run fails with this completion.
    Refused(RunId, Completion),
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
        match api.post::<_, serde_json::Value>(&format!("/v1/agent/runs/{run_id}/complete"), &body)
        {
            Ok(_) => {}
            Err(e @ ApiError::Transient { .. }) => {
                eprintln!("coffer agent: result of run {run_id} not delivered yet: {e}");
                return;
            }
            // A refusal (409: the server recorded another result; 404: no such run)
            // will not change by sending it again.
            Err(e) => eprintln!("coffer agent: result of run {run_id} refused: {e}"),
        }
        if let Err(e) = state.delivered(run_id) {
            eprintln!("coffer agent: {e}");
        }
    }
}

/// What runs need from the agent: the server, its storage, its key and cache.
struct Runner<'a> {
    api: &'a Arc<Api>,
    /// The destination, through URLs the server signs.
    store: Arc<dyn Storage>,
    /// The key-encryption key of this agent's write-only key file.
    agent_kek: &'a SecretKey,
    /// The sealed cache of the last backup's trees (FORMAT.md §22), so a backup finds
    /// unchanged files without reading its parent snapshot, which it cannot open.
    cache_dir: PathBuf,
}

/// How far a run is: written by the engine's callbacks (and a backup's scan of its
/// sources), read by the reporting thread.
struct Counters {
    bytes: AtomicU64,
    files: AtomicU64,
    /// `UNKNOWN` until known.
    bytes_total: AtomicU64,
    files_total: AtomicU64,
    current: std::sync::Mutex<String>,
}

/// A total not known yet.
const UNKNOWN: u64 = u64::MAX;

impl Default for Counters {
    fn default() -> Self {
        Counters {
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes_total: AtomicU64::new(UNKNOWN),
            files_total: AtomicU64::new(UNKNOWN),
            current: std::sync::Mutex::new(String::new()),
        }
    }
}

impl Counters {
    fn set(&self, files: u64, bytes: u64) {
        self.files.store(files, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }
    fn totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }
    fn at(&self, path: &std::path::Path) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.clear();
        current.push_str(&path.to_string_lossy());
    }
    fn get(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
    /// The report to send, with the rate over the last `elapsed` since `last_bytes`.
    fn report(&self, last_bytes: u64, elapsed: Duration) -> Progress {
        let (files, bytes) = self.get();
        let known = |v: u64| (v != UNKNOWN).then_some(v);
        let current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let millis = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Progress {
            bytes,
            files,
            bytes_total: known(self.bytes_total.load(Ordering::Relaxed)),
            files_total: known(self.files_total.load(Ordering::Relaxed)),
            rate: Some(bytes.saturating_sub(last_bytes).saturating_mul(1000) / millis),
            current: (!current.is_empty()).then_some(current),
        }
    }
}

/// Counts the regular files under `sources` and their bytes (what a backup will go
/// through), not following links.
fn scan(sources: &[PathBuf], stop: &AtomicBool) -> (u64, u64) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack: Vec<PathBuf> = sources.to_vec();
    while let Some(path) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

impl Runner<'_> {
    /// The work a poll handed out, if any. Work this agent cannot read (a kind it does
    /// not know) fails, naming what it got.
    fn take_work(&self, answer: serde_json::Value) -> Option<Taken> {
        match serde_json::from_value::<PollAnswer>(answer.clone()) {
            Ok(PollAnswer { work }) => work.map(Taken::Work),
            Err(e) => {
                let header: WorkHeader =
                    serde_json::from_value(answer.get("work")?.clone()).ok()?;
                let message = format!(
                    "this agent (version {}) cannot do work of kind {:?}: {e}",
                    env!("CARGO_PKG_VERSION"),
                    header.kind
                );
                eprintln!("coffer agent: run {}: {message}", header.run_id);
                Some(Taken::Refused(
                    header.run_id,
                    Completion::failed(0, 0, message),
                ))
            }
        }
    }

    /// Runs one piece of work and returns its completion. Progress is reported every
    /// [`PROGRESS_EVERY`] while it runs, which keeps the lease.
    fn execute(&self, work: &Work) -> Completion {
        let run_id = work.run_id;
        let counters = Arc::new(Counters::default());
        let done = AtomicBool::new(false);
        let api = self.api;
        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| {
                let (mut last, mut last_bytes) = (Instant::now(), 0);
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() >= PROGRESS_EVERY {
                        let report = counters.report(last_bytes, last.elapsed());
                        (last, last_bytes) = (Instant::now(), report.bytes);
                        let path = format!("/v1/agent/runs/{run_id}/progress");
                        if let Err(e) = api.post::<_, ProgressAnswer>(&path, &report) {
                            eprintln!("coffer agent: progress of run {run_id}: {e}");
                        }
                    }
                }
            });
            if let WorkItem::Backup(job) = &work.item {
                // The totals, counted beside the backup (restic does the same).
                let sources: Vec<PathBuf> = job.sources.iter().map(PathBuf::from).collect();
                let (counters, done) = (&counters, &done);
                scope.spawn(move || {
                    let (files, bytes) = scan(&sources, done);
                    counters.totals(files, bytes);
                });
            }
            log(
                api,
                LogLevel::Info,
                &format!("run {run_id} ({}) started", work.item.kind()),
            );
            let outcome = self.perform(run_id, &work.item, &counters);
            done.store(true, Ordering::Relaxed);
            outcome
        });
        match outcome {
            Ok(body) => {
                log(
                    api,
                    LogLevel::Info,
                    &format!(
                        "run {run_id} ({}) succeeded: {} files, {} bytes",
                        work.item.kind(),
                        body.files,
                        body.bytes
                    ),
                );
                body
            }
            Err(e) => {
                eprintln!("coffer agent: run {run_id} failed: {e}");
                log(api, LogLevel::Error, &format!("run {run_id} failed: {e}"));
                let (files, bytes) = counters.get();
                Completion::failed(bytes, files, e.to_string())
            }
        }
    }

    fn perform(
        &self,
        run_id: RunId,
        work: &WorkItem,
        counters: &Arc<Counters>,
    ) -> Result<Completion> {
        match work {
            WorkItem::Backup(job) => self.backup(job, counters),
            WorkItem::Restore(job) => {
                let key = run_key(&job.key)?;
                let store = self.store_for(run_id, job.destination.as_ref())?;
                let repo = open_repo(store, &job.prefix, key)?;
                let id = snapshot_id(&job.snapshot)?;
                let seen = Arc::clone(counters);
                let options = RestoreOptions {
                    include: job.paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
                    progress: Some(RestoreProgressFn(Arc::new(move |p: &RestoreProgress| {
                        seen.set(p.files, p.bytes);
                        seen.totals(p.total_files, p.total_bytes);
                    }))),
                    ..RestoreOptions::default()
                };
                let report =
                    restore::restore(&repo, &id, std::path::Path::new(&job.target), &options)?;
                for (path, why) in &report.skipped {
                    log(
                        self.api,
                        LogLevel::Warn,
                        &format!("{} not restored: {why}", path.display()),
                    );
                }
                Ok(succeeded(report.bytes, report.files, None))
            }
            WorkItem::Verify(job) => {
                let key = run_key(&job.key)?;
                let store = self.store_for(run_id, job.destination.as_ref())?;
                let repo = open_repo(store, &job.prefix, key)?;
                // The restore point must be there, and everything stored must read back.
                let snapshot = repo.read_snapshot(&snapshot_id(&job.snapshot)?)?;
                let report = check::check(&repo, ReadData::All)?;
                if !report.ok() {
                    return Err(CliError::Corrupt(format!(
                        "the repository does not check: {}",
                        report.errors.join("; ")
                    )));
                }
                // Its counters are the restore point's files and bytes, all checked.
                Ok(succeeded(
                    snapshot.summary.bytes,
                    snapshot.summary.files,
                    None,
                ))
            }
        }
    }

    /// Opens the repository in `folder` with the key file `kek` opens.
    /// The storage a restore or verify reads: this agent's destination, or another
    /// agent's (a restore point it made) through URLs signed for this run only.
    fn store_for(&self, run_id: RunId, other: Option<&Destination>) -> Result<Arc<dyn Storage>> {
        let Some(dest) = other else {
            return Ok(Arc::clone(&self.store));
        };
        let mut config = S3Config::for_signer(dest.bucket.clone());
        config.signer_root.clone_from(&dest.prefix);
        Ok(Arc::new(S3Storage::with_signer(
            Arc::new(ApiSigner {
                api: Arc::clone(self.api),
                run: Some(run_id),
            }),
            &config,
        )?))
    }

    fn backup(&self, job: &BackupWork, counters: &Arc<Counters>) -> Result<Completion> {
        let sources: Vec<PathBuf> = job.sources.iter().map(PathBuf::from).collect();
        if sources.is_empty() {
            return Err(CliError::Usage("the backup has no sources".into()));
        }
        let kek = SecretKey::from_bytes(*self.agent_kek.expose_secret());
        let store: Arc<dyn Storage> = match job.upload_limit {
            Some(limit) => Arc::new(coffer_adapters::storage::Throttled::new(
                Arc::clone(&self.store),
                limit,
            )),
            None => Arc::clone(&self.store),
        };
        let repo = Repository::open(store, &job.prefix, &Unlock::Kek(kek))?;
        let seen = Arc::clone(counters);
        let options = BackupOptions {
            host: hostname(),
            tags: job.tags.clone(),
            // One cache per job: backups of two jobs may run at once.
            cache_dir: Some(self.cache_dir.join(format!("job-{}", job.job_id))),
            program: format!("coffer-agent {}", env!("CARGO_PKG_VERSION")),
            progress: Some(ProgressFn(Arc::new(move |p: &BackupProgress| {
                seen.set(p.files, p.bytes);
                seen.at(&p.current);
            }))),
            // The server holds the repository's lock for this run.
            lock_held_elsewhere: true,
            filter: job_filter(&job.excludes)?,
            ..BackupOptions::default()
        };
        let report = backup::backup(&repo, &sources, &options)?;
        for (path, why) in &report.skipped {
            log(
                self.api,
                LogLevel::Warn,
                &format!("{} not backed up: {why}", path.display()),
            );
        }
        let s = &report.summary;
        let created = repo.read_snapshot(&report.snapshot).ok();
        // A run's counters mean the same for every kind: regular files and their
        // content bytes (what storage gained is the restore point's stored_bytes).
        Ok(succeeded(
            s.bytes,
            s.files,
            Some(NewRestorePoint {
                name: job.name.clone(),
                prefix: job.prefix.clone(),
                snapshot: hex::encode(report.snapshot),
                stored_bytes: s.new_stored_bytes,
                content_bytes: s.bytes,
                files: s.files,
                created_at: calendar::rfc3339(
                    created.map_or_else(crate::backup::now, |snap| snap.time),
                ),
            }),
        ))
    }
}

/// A run's key, from its work item.
fn run_key(encoded: &Secret) -> Result<SecretKey> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.expose())
            .map_err(|_| CliError::Corrupt("the run's key is not base64".into()))?,
    );
    Ok(SecretKey::try_from_slice(&bytes)?)
}

/// A snapshot ID from a work item.
fn snapshot_id(text: &str) -> Result<[u8; 16]> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CliError::Corrupt(format!("{text:?} is not a snapshot ID")))
}

/// Sends one line to the server's log of this agent (best effort: a log line is not
/// worth a retry).
fn log(api: &Api, level: LogLevel, message: &str) {
    let lines = Logs {
        lines: vec![LogLine {
            level,
            message: message.to_owned(),
            time: calendar::rfc3339(crate::backup::now()),
        }],
    };
    if let Err(e) = api.post::<_, ()>("/v1/agent/logs", &lines) {
        eprintln!("coffer agent: sending a log line: {e}");
    }
}

fn succeeded(bytes: u64, files: u64, restore_point: Option<NewRestorePoint>) -> Completion {
    Completion {
        status: Outcome::Succeeded,
        bytes,
        files,
        error: None,
        restore_point,
    }
}

/// Signs storage requests by asking the server (`POST /v1/agent/presign`).
struct ApiSigner {
    api: Arc<Api>,
    /// For a run reading another agent's destination: the URLs are asked for with it.
    run: Option<RunId>,
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
        let body = PresignRequest::of(op, key).ok_or_else(|| {
            backend(
                "Unsupported",
                "an operation this agent cannot ask for".into(),
                None,
                false,
            )
        })?;
        let path = match self.run {
            Some(run) => format!("/v1/agent/presign?run_id={run}"),
            None => "/v1/agent/presign".to_owned(),
        };
        let answer: PresignAnswer = self.api.post(&path, &body).map_err(|e| match e {
            ApiError::Transient { message, .. } => {
                backend("ServerUnavailable", message, None, true)
            }
            ApiError::Refused {
                status,
                code,
                message,
            } => backend(&code, message, Some(status), false),
        })?;
        answer
            .into_request()
            .map_err(|m| backend("BadPresignAnswer", m, None, false))
    }
}

/// Opens the repository in `folder` of `store` with a run's key.
fn open_repo(store: Arc<dyn Storage>, folder: &str, kek: SecretKey) -> Result<Repository> {
    Ok(Repository::open(store, folder, &Unlock::Kek(kek))?)
}

/// The job's exclude patterns as the engine's filter (the server checked them too).
fn job_filter(excludes: &[String]) -> Result<coffer_adapters::repo::filter::Filter, CliError> {
    let mut filter = coffer_adapters::repo::filter::Filter::new();
    for pattern in excludes {
        filter = filter
            .exclude(pattern)
            .map_err(|e| CliError::Usage(format!("the job's exclude pattern: {e}")))?;
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_command_names_the_state_dir_enrolment_used() {
        assert_eq!(start_command(None), "coffer agent run");
        assert_eq!(
            start_command(Some(std::path::Path::new("/srv/coffer agent's"))),
            "coffer agent run --state-dir '/srv/coffer agent'\\''s'"
        );
        let relative = start_command(Some(std::path::Path::new("state")));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            relative,
            format!("coffer agent run --state-dir {}/state", cwd.display())
        );
    }

    #[test]
    fn progress_reports_carry_totals_once_known_the_rate_and_the_current_path() {
        let c = Counters::default();
        c.set(3, 4_000_000);
        let first = c.report(0, Duration::from_secs(2));
        assert_eq!((first.files, first.bytes), (3, 4_000_000));
        assert_eq!(
            (first.bytes_total, first.files_total, first.current),
            (None, None, None)
        );
        assert_eq!(first.rate, Some(2_000_000));
        c.totals(10, 9_000_000);
        c.at(std::path::Path::new("/srv/data/big.bin"));
        c.set(5, 5_000_000);
        let next = c.report(first.bytes, Duration::from_millis(500));
        assert_eq!(
            (next.files_total, next.bytes_total),
            (Some(10), Some(9_000_000))
        );
        assert_eq!(next.rate, Some(2_000_000));
        assert_eq!(next.current.as_deref(), Some("/srv/data/big.bin"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 32]).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        assert_eq!(
            scan(&[dir.path().to_owned()], &AtomicBool::new(false)),
            (2, 42)
        );
    }

    #[test]
    fn the_repository_key_must_match_its_stated_id() {
        let key = SecretKey::from_bytes([6; 32]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(key.expose_secret());
        let stated = |key_id: String| RepositoryKey {
            id: "5".parse().unwrap(),
            key_id,
            folder: "repo".into(),
            access: coffer_protocol::enrol::KeyAccess::WriteOnly,
            suite: coffer_protocol::Suite::Aes256Gcm,
            key: Secret::new(encoded.clone()),
        };
        assert_eq!(decode_key(&stated(key.id().to_string())).unwrap(), key);
        let bad = stated("00".repeat(16));
        assert!(matches!(decode_key(&bad), Err(CliError::Corrupt(_))));
    }
}
