//! The server's settings, with the defaults that make `coffer-server serve` work with
//! nothing else configured.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Everything the server needs to run, besides the KEK.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database, the embedded store and (by default) the KEK file live.
    pub data_dir: PathBuf,
    /// The URL agents reach the server at (an origin); pre-signed URLs of the
    /// embedded store point here.
    pub public_url: Url,
    /// How long a pre-signed URL stays valid.
    pub presign_expiry: Duration,
    /// How long a claimed run may go without progress before it fails ("timed out").
    pub lease: Duration,
    /// The longest an enrolment token may live.
    pub max_enrolment_ttl: Duration,
    /// The largest JSON body a route accepts.
    pub json_body_limit: usize,
    /// Enrolments allowed per client address per minute (burst of the same size).
    pub enrol_per_minute: u32,
    /// Failed authentications allowed per client address per minute; beyond that, the
    /// address gets 429 until the quota refills.
    pub auth_failures_per_minute: u32,
    /// How long a client may take to send a request's headers (from the first byte,
    /// or from the end of the previous request on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// The longest a request body may go without sending any bytes.
    pub body_read_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog. Each
    /// agent keeps one open (it long-polls), so this bounds the agents a server
    /// serves without queueing; [`crate::server::serve`] lowers it to what the
    /// process's open-files limit allows.
    pub max_connections: usize,
    /// Log uploads (`POST /v1/agent/logs`) allowed per agent per minute.
    pub agent_logs_per_minute: u32,
    /// How often the scheduler looks for due jobs and lapsed leases.
    pub scheduler_tick: Duration,
    /// Take the client's address for rate limits from the last `X-Forwarded-For`
    /// entry: set it only behind a reverse proxy that sets that header, or clients
    /// could pick their own address.
    pub trust_forwarded_for: bool,
    /// The SHA-256 of the token a scraper presents for `/metrics`; `None`: the route
    /// is off.
    pub metrics_token_hash: Option<[u8; 32]>,
    /// How notifications are sent.
    pub notify: NotifyConfig,
}

/// The default of [`Config::max_connections`]: room for a few thousand agents.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;

impl Config {
    /// The defaults for a server at `public_url` with data in `data_dir`.
    pub fn new(data_dir: PathBuf, public_url: Url) -> Self {
        Config {
            data_dir,
            public_url,
            presign_expiry: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(5 * 60),
            max_enrolment_ttl: Duration::from_secs(7 * 24 * 3600),
            json_body_limit: 64 * 1024,
            enrol_per_minute: 10,
            auth_failures_per_minute: 30,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            agent_logs_per_minute: 12,
            scheduler_tick: Duration::from_secs(5),
            trust_forwarded_for: false,
            metrics_token_hash: None,
            notify: NotifyConfig::default(),
        }
    }

    /// The settings as a record (no secret: the metrics token only as "set"), kept in
    /// the data directory and in each self-backup.
    pub fn record(&self) -> serde_json::Value {
        serde_json::json!({
            "server_version": env!("CARGO_PKG_VERSION"),
            "data_dir": self.data_dir,
            "public_url": self.public_url.as_str(),
            "presign_expiry_secs": self.presign_expiry.as_secs(),
            "lease_secs": self.lease.as_secs(),
            "max_enrolment_ttl_secs": self.max_enrolment_ttl.as_secs(),
            "json_body_limit": self.json_body_limit,
            "enrol_per_minute": self.enrol_per_minute,
            "auth_failures_per_minute": self.auth_failures_per_minute,
            "max_connections": self.max_connections,
            "agent_logs_per_minute": self.agent_logs_per_minute,
            "scheduler_tick_secs": self.scheduler_tick.as_secs_f64(),
            "trust_forwarded_for": self.trust_forwarded_for,
            "metrics": self.metrics_token_hash.is_some(),
            "notify_allow_private_webhooks": self.notify.allow_private_webhooks,
        })
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("coffer-server.sqlite")
    }
}

/// How notifications are sent and retried.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Attempts of a delivery before it is given up and recorded as failed.
    pub max_attempts: u32,
    /// The wait before the first retry; each further retry waits twice as long, plus
    /// jitter, up to `max_delay`.
    pub min_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
    /// How long one attempt may take (connect, TLS, send, answer).
    pub timeout: Duration,
    /// Let webhooks go to loopback, private and link-local addresses. Off by default:
    /// a tenant's operator sets webhook URLs, and the server must not be made to call
    /// services on its own network for them.
    pub allow_private_webhooks: bool,
    /// How often every registered storage backend is tested (a failure opens a
    /// `storage.failed` alert).
    pub storage_test_interval: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_attempts: 8,
            min_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(20),
            allow_private_webhooks: false,
            storage_test_interval: Duration::from_secs(3600),
        }
    }
}
