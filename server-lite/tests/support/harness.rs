//! Shared set-up for the integration tests: a server on a temporary data directory,
//! driven through the real router with `oneshot`.
#![allow(dead_code, missing_docs, unreachable_pub)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use coffer_server::config::Config;
use coffer_server::state::AppState;
use coffer_server::Server;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tempfile::TempDir;
use tower::ServiceExt;

pub const PUBLIC_URL: &str = "http://127.0.0.1:9";

pub struct Harness {
    pub dir: TempDir,
    pub state: AppState,
    pub app: Router,
    pub admin: String,
}

/// The socket [`Harness::on_a_socket`] serves on.
pub struct Socket {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Socket {
    /// Stops serving (what is in flight finishes first).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

#[derive(Clone)]
pub struct Enrolled {
    pub agent_id: String,
    pub api_key: String,
    pub tenant_id: String,
    pub destination_id: String,
    pub prefix: String,
    pub bucket: String,
    pub repository_id: String,
    pub key_b64: String,
    pub key_id: String,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir.to_owned(), url::Url::parse(PUBLIC_URL).unwrap());
    // Tests enrol many agents from one (unspecified) address.
    config.enrol_per_minute = 1000;
    config.auth_failures_per_minute = 1000;
    config
}

impl Harness {
    /// The embedded store, as the server reaches it.
    #[allow(dead_code)]
    pub fn store(&self) -> std::sync::Arc<dyn coffer_adapters::storage::Storage> {
        std::sync::Arc::new(self.state.stores.local.clone())
    }

    /// `agent`'s repository, opened with the key-encryption key `kek_b64` (an agent's
    /// or a run's).
    #[allow(dead_code)]
    pub fn open_repository(
        &self,
        agent: &Enrolled,
        kek_b64: &str,
    ) -> Result<coffer_adapters::repo::Repository, coffer_adapters::Error> {
        use base64::Engine as _;
        let kek = base64::engine::general_purpose::STANDARD
            .decode(kek_b64)
            .unwrap();
        coffer_adapters::repo::Repository::open(
            self.store(),
            &format!("{}/repo", agent.prefix),
            &coffer_adapters::repo::keyfile::Unlock::Kek(
                coffer_core::SecretKey::try_from_slice(&kek).unwrap(),
            ),
        )
    }

    /// A harness whose router (so its embedded store too) is also served on a socket
    /// of 127.0.0.1, its public URL that socket's (the store checks signatures for that
    /// host): the store can be registered as an S3 backend, then stopped.
    pub async fn on_a_socket() -> (Self, std::net::SocketAddr, Socket) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
            c.public_url = url::Url::parse(&format!("http://{addr}")).unwrap();
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = h.app.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        (h, addr, Socket { stop, task })
    }

    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir, |_| {})
    }

    pub fn open(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let started = Server::open(config, None).unwrap();
        let admin = started
            .admin_token
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let app = coffer_server::app(started.state.clone());
        Harness {
            dir,
            state: started.state,
            app,
            admin,
        }
    }

    pub async fn send(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    /// A JSON call; the body is parsed as JSON (Null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let request = match body {
            Some(b) => builder
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        let (status, _, bytes) = self.send(request).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    /// Creates a tenant and an operator token for it.
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/admin/tenants",
                Some(&self.admin),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["tenant"]["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/admin/tenants/{id}/operator-tokens"),
                Some(&self.admin),
                Some(json!({"label": "ops"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (id, body["token"].as_str().unwrap().to_owned())
    }

    pub async fn enrolment_token(&self, operator: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/enrolment-tokens",
                Some(operator),
                Some(json!({"ttl_secs": 600})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn enrol(&self, operator: &str, hostname: &str) -> Enrolled {
        let token = self.enrolment_token(operator).await;
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/enroll",
                None,
                Some(json!({"token": token, "hostname": hostname, "version": "0.1.0"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Enrolled {
            agent_id: body["agent_id"].as_str().unwrap().to_owned(),
            api_key: body["api_key"].as_str().unwrap().to_owned(),
            tenant_id: body["tenant_id"].as_str().unwrap().to_owned(),
            destination_id: body["destination"]["id"].as_str().unwrap().to_owned(),
            prefix: body["destination"]["prefix"].as_str().unwrap().to_owned(),
            bucket: body["destination"]["bucket"].as_str().unwrap().to_owned(),
            repository_id: body["repository"]["id"].as_str().unwrap().to_owned(),
            key_b64: body["repository"]["key"].as_str().unwrap().to_owned(),
            key_id: body["repository"]["key_id"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn job(&self, operator: &str, agent_id: &str, name: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/jobs",
                Some(operator),
                Some(json!({"agent_id": agent_id, "name": name, "sources": ["/srv/data"],
                            "schedule": "0 3 * * *", "retention": {"keep_last": 7, "keep_daily": 14}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["job"]["id"].as_str().unwrap().to_owned()
    }

    /// The agent's next work item, claimed without waiting (`Null` if none).
    pub async fn claim(&self, agent: &Enrolled) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                "/v1/agent/poll?wait_secs=0",
                Some(&agent.api_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["work"].clone()
    }

    /// Queues a run of `job` now; returns its ID.
    pub async fn run_now(&self, operator: &str, job: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/jobs/{job}/run"),
                Some(operator),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["run"]["id"].as_str().unwrap().to_owned()
    }

    /// One backup run of `job` as the agent does it: queued, claimed, `dir` backed up
    /// with the agent's write-only key (so the restore point is a real snapshot the
    /// server can open), completed with its restore point — `stored` and `content` are
    /// the byte counts the agent reports — and what runs behind a backup (retention,
    /// releasing the run's lock) waited for.
    pub async fn backup(
        &self,
        operator: &str,
        agent: &Enrolled,
        job: &str,
        dir: &std::path::Path,
        (stored, content): (u64, u64),
    ) {
        use coffer_adapters::repo::backup::{self, BackupOptions};
        self.run_now(operator, job).await;
        let work = self.claim(agent).await;
        assert_eq!(work["kind"], "backup", "{work}");
        let repo = self.open_repository(agent, &agent.key_b64).unwrap();
        let options = BackupOptions {
            host: "nas".into(),
            tags: vec![work["spec"]["tags"][0].as_str().unwrap().to_owned()],
            lock_held_elsewhere: true,
            ..Default::default()
        };
        let snapshot = backup::backup(&repo, &[dir.to_owned()], &options)
            .unwrap()
            .snapshot;
        let run = work["run_id"].as_str().unwrap();
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/agent/runs/{run}/complete"),
                Some(&agent.api_key),
                Some(json!({"status": "succeeded", "bytes": content, "files": 1,
                    "restore_point": {
                        "name": work["spec"]["name"], "prefix": work["spec"]["prefix"],
                        "snapshot": hex::encode(snapshot), "stored_bytes": stored,
                        "content_bytes": content, "files": 1,
                        "created_at": "2026-11-30T10:00:00Z"}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.state.background.idle().await;
    }

    /// Two real backups of a folder by `job`, a change apart: `a.txt` removed,
    /// `b.txt` modified and `c.txt` added between them. Returns the folder and the
    /// first and second restore points' IDs.
    pub async fn two_backups_a_change_apart(
        &self,
        operator: &str,
        agent: &Enrolled,
        job: &str,
    ) -> (TempDir, String, String) {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.txt"), b"first").unwrap();
        std::fs::write(src.path().join("b.txt"), b"before").unwrap();
        self.backup(operator, agent, job, src.path(), (100, 11))
            .await;
        std::fs::remove_file(src.path().join("a.txt")).unwrap();
        std::fs::write(src.path().join("b.txt"), b"after, longer").unwrap();
        std::fs::write(src.path().join("c.txt"), b"new").unwrap();
        self.backup(operator, agent, job, src.path(), (100, 16))
            .await;
        let (_, body) = self
            .call(Method::GET, "/v1/restore-points", Some(operator), None)
            .await;
        // Newest first.
        let second = body["restore_points"][0]["id"].as_str().unwrap().to_owned();
        let first = body["restore_points"][1]["id"].as_str().unwrap().to_owned();
        (src, first, second)
    }

    /// Revokes the first operator token of `tenant`, as the admin.
    pub async fn revoke_operator_token(&self, tenant: &str) {
        let (_, tokens) = self
            .call(
                Method::GET,
                &format!("/v1/admin/tenants/{tenant}/operator-tokens"),
                Some(&self.admin),
                None,
            )
            .await;
        let id = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/admin/tenants/{tenant}/operator-tokens/{id}/revoke"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Presigns `op` on `key` for an agent; returns the answer.
    pub async fn presign(&self, agent: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/agent/presign", Some(agent), Some(body))
            .await
    }

    /// Sends a pre-signed request through the router (the URL's path and query).
    pub async fn send_presigned(
        &self,
        presigned: &Value,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let url = url::Url::parse(presigned["url"].as_str().unwrap()).unwrap();
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let method: Method = presigned["method"].as_str().unwrap().parse().unwrap();
        let mut builder = Request::builder().method(method).uri(path);
        for pair in presigned["headers"].as_array().unwrap() {
            builder = builder.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        }
        for (n, v) in extra {
            builder = builder.header(*n, *v);
        }
        self.send(builder.body(Body::from(body)).unwrap()).await
    }

    /// Audit entries of a tenant (through the admin API).
    pub async fn audit(&self, tenant: Option<&str>) -> Vec<Value> {
        // Refused lookups are audited after their answer went out.
        self.state.background.idle().await;
        let path = match tenant {
            Some(t) => format!("/v1/admin/audit?limit=1000&tenant_id={t}"),
            None => "/v1/admin/audit?limit=1000".to_owned(),
        };
        let (status, body) = self.call(Method::GET, &path, Some(&self.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["entries"].as_array().unwrap().clone()
    }
}

/// Incompressible bytes, different for each `seed` (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn checksum(data: &[u8]) -> String {
    coffer_adapters::storage::s3::checksum_sha256(data)
}
