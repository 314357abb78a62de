//! Where destinations live: the embedded store (a local folder served as S3 by
//! [`crate::local_s3`]) or an S3 backend an admin registered. Both are presigned the
//! same way, through `S3Storage::presign`, so the agent has one code path.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use coffer_adapters::storage::{
    LocalStorage, ObjectKey, PresignOp, PresignedRequest, PutMode, S3Config, S3Storage, Storage,
};
use coffer_core::SecretKey;
use url::Url;
use zeroize::Zeroizing;

use crate::db::backends::BackendRow;
use crate::error::{ApiError, ApiResult};
use crate::keys;
use crate::local_s3;

/// The embedded store's one bucket.
pub const LOCAL_BUCKET: &str = "coffer";
/// The embedded store's signing region.
const LOCAL_REGION: &str = "us-east-1";
/// The embedded store's access key ID (the secret is random per start).
const LOCAL_ACCESS_KEY: &str = "coffer-local";

/// The stores the server reaches.
pub struct Stores {
    /// The embedded store's objects.
    pub local: LocalStorage,
    /// Staged multipart parts of the embedded store.
    pub staging: LocalStorage,
    /// The embedded store's bucket name.
    pub bucket: String,
    /// The credentials the embedded store's URLs are signed with.
    pub credentials: local_s3::Credentials,
    /// The embedded store's S3 service (s3s), which checks those URLs.
    pub embedded: local_s3::Service,
    /// Signs the embedded store's URLs.
    local_presigner: S3Storage,
    /// S3 clients of registered backends, by ID (their secrets opened once).
    backends: Mutex<HashMap<i64, S3Storage>>,
    /// Probe objects being written right now (see [`Stores::probe`]).
    pub live_probes: LiveProbes,
    /// The prefixes of destinations whose repository is being created, before any
    /// destination row holds them (the embedded store lets the server's own requests
    /// under them through, as it does a probe's: see [`Stores::creating`]).
    pub creating: LiveProbes,
}

/// The keys of the probes in flight. The embedded store lets a request through to a key
/// under no destination only while that exact key is here: a probe's name is random and
/// lives for one write-read-delete, so no agent URL (always under the agent's own,
/// checked destination) can reach it, and nothing else skips the destination and
/// revocation check.
#[derive(Debug, Default)]
pub struct LiveProbes(Mutex<HashSet<String>>);

impl LiveProbes {
    /// Whether `key` is a probe in flight.
    pub fn contains(&self, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    fn insert(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned());
    }

    fn remove(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("local", &self.local.root())
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Opens the embedded store under `data_dir` and prepares its signer for URLs on
    /// `public_url` (an origin: scheme, host, port).
    ///
    /// # Errors
    /// I/O errors; a public URL that is not `http(s)://host[:port]`.
    pub fn open(data_dir: &Path, public_url: &Url) -> Result<Self, String> {
        let local = LocalStorage::open(data_dir.join("objects")).map_err(|e| e.to_string())?;
        let staging = LocalStorage::open(data_dir.join("staging")).map_err(|e| e.to_string())?;
        let origin = origin_of(public_url)?;
        let secret = Zeroizing::new(crate::token::random_hex(32));
        let mut endpoint = origin.clone();
        endpoint.set_path("/s3/");
        let config = S3Config::new(
            endpoint.as_str(),
            LOCAL_REGION,
            LOCAL_BUCKET,
            LOCAL_ACCESS_KEY,
            secret.as_str(),
        );
        let local_presigner = build_s3(&config)?;
        let credentials = local_s3::Credentials {
            origin,
            region: LOCAL_REGION.to_owned(),
            access_key: LOCAL_ACCESS_KEY.to_owned(),
            secret,
        };
        let embedded = local_s3::Service::new(&credentials)?;
        Ok(Stores {
            local,
            staging,
            bucket: LOCAL_BUCKET.to_owned(),
            credentials,
            embedded,
            local_presigner,
            backends: Mutex::new(HashMap::new()),
            live_probes: LiveProbes::default(),
            creating: LiveProbes::default(),
        })
    }

    /// A pre-signed request for `op` on `key` in the destination's store.
    ///
    /// # Errors
    /// 400 for parameters `presign` refuses, or a key longer than the embedded store
    /// holds ([`local_s3::MAX_KEY_BYTES`]); 500 for a backend that does not open.
    pub fn presign(
        &self,
        backend: Option<&BackendRow>,
        kek: &SecretKey,
        op: PresignOp<'_>,
        key: &ObjectKey,
        expiry: Duration,
    ) -> ApiResult<PresignedRequest> {
        let result = match backend {
            None if key.as_str().len() > local_s3::MAX_KEY_BYTES => {
                return Err(ApiError::BadRequest {
                    code: "invalid_key",
                    message: format!(
                        "key: longer than {} bytes, the embedded store's limit",
                        local_s3::MAX_KEY_BYTES
                    ),
                })
            }
            None => self.local_presigner.presign(op, key, expiry),
            Some(b) => self.backend_client(b, kek)?.presign(op, key, expiry),
        };
        result.map_err(|e| match e {
            coffer_adapters::Error::InvalidConfig { reason } => ApiError::field("presign", reason),
            other => ApiError::internal(other),
        })
    }

    /// The storage of a destination's store, with the server's own credentials (for
    /// the server's work on repositories: creating them, key files, locks, prune).
    ///
    /// # Errors
    /// 500 for a backend that does not open.
    pub fn storage(
        &self,
        backend: Option<&BackendRow>,
        kek: &SecretKey,
    ) -> ApiResult<std::sync::Arc<dyn Storage>> {
        Ok(match backend {
            None => std::sync::Arc::new(self.local.clone()),
            Some(b) => std::sync::Arc::new(self.backend_client(b, kek)?),
        })
    }

    /// Runs `f` with `prefix` marked as a destination being created, so the embedded
    /// store takes the server's own requests under it (when an S3 backend is this very
    /// store) before its destination row exists.
    pub fn creating<T>(&self, prefix: &str, f: impl FnOnce() -> T) -> T {
        self.creating.insert(prefix);
        let out = f();
        self.creating.remove(prefix);
        out
    }

    /// The S3 client of a registered backend.
    ///
    /// # Errors
    /// 500 if its secret does not open or its settings are refused.
    pub fn backend_client(&self, b: &BackendRow, kek: &SecretKey) -> ApiResult<S3Storage> {
        let mut cache = self.backends.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = cache.get(&b.id) {
            return Ok(client.clone());
        }
        let secret = keys::open_secret(kek, &keys::backend_context(&b.name), &b.secret_sealed)?;
        let secret = Zeroizing::new(
            String::from_utf8(secret.to_vec())
                .map_err(|_| ApiError::internal("secret is not UTF-8"))?,
        );
        let client = s3_client(b, &secret).map_err(ApiError::internal)?;
        cache.insert(b.id, client.clone());
        Ok(client)
    }

    /// Tests a destination before use: writes a probe object under `prefix`, reads it
    /// back, deletes it. Blocking (run it on a blocking thread).
    ///
    /// # Errors
    /// 503 naming the step that failed.
    pub fn probe(&self, client: Option<&S3Storage>, prefix: &str) -> ApiResult<()> {
        match client {
            None => probe(&self.local, prefix, &self.live_probes),
            Some(c) => probe(c, prefix, &self.live_probes),
        }
    }
}

/// Tests registered backend `b` (a probe object written, read back, deleted) and
/// records the result as its `storage.failed` alert: opened (for the server and each
/// tenant with a destination on it) on failure, cleared on success.
///
/// # Errors
/// The step that failed (503), or a database error.
pub async fn test_backend(state: &crate::state::AppState, b: &BackendRow) -> ApiResult<()> {
    let client = state.stores.backend_client(b, &state.kek)?;
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        probe(
            &client,
            crate::local_s3::PROBE_PREFIX.trim_end_matches('/'),
            &st.stores.live_probes,
        )
    })
    .await
    .map_err(ApiError::internal)?;
    if result.is_err() {
        state.metrics.storage_error();
    }
    let (id, name) = (b.id, b.name.clone());
    let error = result.as_ref().err().map(ToString::to_string);
    state
        .db
        .call(move |cat| {
            Ok(crate::db::immediate(cat.connection_mut(), |tx| {
                crate::notify::storage_tested(tx, id, &name, error.as_deref(), crate::db::now())
            })?)
        })
        .await?;
    result
}

/// An S3 client for backend settings with `secret`.
///
/// # Errors
/// The adapters' refusal of the settings.
pub fn s3_client(b: &BackendRow, secret: &str) -> Result<S3Storage, String> {
    let mut config = S3Config::new(
        b.endpoint.as_str(),
        b.region.as_str(),
        b.bucket.as_str(),
        b.access_key_id.as_str(),
        secret,
    );
    config.path_style = b.path_style;
    config.max_attempts = 2;
    config.request_timeout = Duration::from_secs(10);
    build_s3(&config)
}

/// Builds an S3 client off the async threads: its blocking HTTP client starts a
/// runtime of its own, which tokio refuses inside an async context.
fn build_s3(config: &S3Config) -> Result<S3Storage, String> {
    std::thread::scope(|s| {
        s.spawn(|| S3Storage::new(config).map_err(|e| e.to_string()))
            .join()
            .map_err(|_| "building the S3 client panicked".to_owned())?
    })
}

/// Writes, reads back and deletes a random probe object under `prefix`, its key in
/// `live` for that time only.
///
/// # Errors
/// 503 naming the step.
pub fn probe(store: &dyn Storage, prefix: &str, live: &LiveProbes) -> ApiResult<()> {
    let key = ObjectKey::new(format!(
        "{prefix}/{}{}",
        crate::local_s3::PROBE_NAME,
        crate::token::random_hex(16)
    ))
    .map_err(ApiError::internal)?;
    live.insert(key.as_str());
    let result = probe_key(store, &key);
    live.remove(key.as_str());
    result
}

fn probe_key(store: &dyn Storage, key: &ObjectKey) -> ApiResult<()> {
    let data = crate::token::random_hex(16).into_bytes();
    let fail = |step: &'static str, e: coffer_adapters::Error| {
        tracing::warn!("destination probe failed ({step}): {e}");
        ApiError::Unavailable(step)
    };
    store
        .put(key, &mut data.as_slice(), PutMode::CreateOnly)
        .map_err(|e| fail("the destination probe could not write", e))?;
    let mut back = Vec::new();
    store
        .get(key)
        .and_then(|mut r| {
            r.read_to_end(&mut back)
                .map_err(|e| coffer_adapters::Error::io("reading the probe", e))
        })
        .map_err(|e| fail("the destination probe could not read back", e))?;
    store
        .delete(key)
        .map_err(|e| fail("the destination probe could not delete", e))?;
    if back != data {
        return Err(ApiError::Unavailable(
            "the destination probe read back different bytes",
        ));
    }
    Ok(())
}

/// `scheme://host[:port]` of a URL, refusing anything else.
///
/// # Errors
/// A message naming what is wrong.
pub fn origin_of(url: &Url) -> Result<Url, String> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("public URL {url}: must be http(s)://host[:port]"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "public URL {url}: must have no path or query (the server answers at its root)"
        ));
    }
    let mut origin = url.clone();
    origin.set_path("/");
    Ok(origin)
}

/// What [`under_prefix`] does to each object it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixOp {
    /// Only counts it.
    Measure,
    /// Counts and deletes it.
    Empty,
}

/// The bytes and count of the objects under `prefix/` in the bucket of a destination
/// on `backend_id` (`None`: the embedded store), each deleted as well with
/// [`PrefixOp::Empty`]. Storage work runs on the blocking pool.
///
/// # Errors
/// Database errors finding the backend; 500 for storage errors.
pub async fn under_prefix(
    state: &crate::state::AppState,
    backend_id: Option<i64>,
    prefix: String,
    op: PrefixOp,
) -> crate::error::ApiResult<(u64, u64)> {
    use crate::error::ApiError;
    let backend = match backend_id {
        Some(id) => {
            state
                .db
                .read(move |conn| Ok(crate::db::backends::backend(conn, id)?))
                .await?
        }
        None => None,
    };
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let store = st.stores.storage(backend.as_ref(), &st.kek)?;
        let objects = store
            .list(&format!("{prefix}/"))
            .map_err(|e| ApiError::internal(format!("listing storage: {e}")))?;
        if op == PrefixOp::Empty {
            for object in &objects {
                store.delete(&object.key).map_err(ApiError::internal)?;
            }
        }
        Ok((objects.iter().map(|o| o.size).sum(), objects.len() as u64))
    })
    .await
    .map_err(ApiError::internal)?
}
