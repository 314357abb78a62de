//! What every handler shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use coffer_core::SecretKey;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use crate::config::Config;
use crate::db::agents::Beat;
use crate::db::Db;
use crate::stores::Stores;

/// The shared state: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Shared>,
}

/// The state's contents.
pub struct Shared {
    /// The database.
    pub db: Db,
    /// The server KEK (zeroized on drop; never printed).
    pub kek: SecretKey,
    /// Settings.
    pub config: Config,
    /// Object stores.
    pub stores: Stores,
    /// Wakes long polls when work is queued.
    pub dispatch: Dispatch,
    /// Rate limits.
    pub limits: Limits,
    /// Heartbeats not yet written to the database.
    pub presence: Presence,
    /// Work a response does not wait for (audit rows of refused lookups).
    pub background: Background,
    /// Agents whose repository's prune was put off (a backup held it): the next
    /// retention or delete prunes even if it forgets nothing. Kept in memory: after a
    /// restart the next forget prunes.
    pub prune_pending: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// What `/metrics` counts as the process goes.
    pub metrics: crate::metrics::Metrics,
}

/// Tasks spawned so a response does not wait for them, counted so that shutdown (and
/// tests) can wait until they are done.
#[derive(Debug, Default)]
pub struct Background {
    running: Arc<std::sync::atomic::AtomicUsize>,
    done: Arc<Notify>,
}

impl Background {
    /// Runs `task` on the runtime without waiting for it.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        use std::sync::atomic::Ordering;
        let (running, done) = (Arc::clone(&self.running), Arc::clone(&self.done));
        running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            task.await;
            running.fetch_sub(1, Ordering::SeqCst);
            done.notify_waiters();
        });
    }

    /// Waits until no spawned task is running.
    pub async fn idle(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let notified = self.done.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            // Bounded wait: a task finishing between the check and here is seen on
            // the next turn.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("kek", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(db: Db, kek: SecretKey, config: Config, stores: Stores) -> Self {
        let limits = Limits::new(&config);
        AppState {
            inner: Arc::new(Shared {
                db,
                kek,
                config,
                stores,
                dispatch: Dispatch::default(),
                limits,
                presence: Presence::default(),
                background: Background::default(),
                prune_pending: std::sync::Mutex::default(),
                metrics: crate::metrics::Metrics::default(),
            }),
        }
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.inner
    }
}

/// One wake-up handle per agent, so a long poll returns as soon as work is queued.
#[derive(Default, Debug)]
pub struct Dispatch {
    wakers: Mutex<HashMap<i64, Arc<Notify>>>,
}

impl Dispatch {
    /// The handle of `agent`.
    pub fn waker(&self, agent: i64) -> Arc<Notify> {
        let mut map = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(agent).or_default())
    }

    /// Wakes `agent`'s poll (or the next one, if none is waiting).
    pub fn wake(&self, agent: i64) {
        self.waker(agent).notify_one();
    }
}

/// Rate limits keyed by client address (GCRA, from `governor`).
pub struct Limits {
    /// Enrolment attempts.
    pub enrol: DefaultKeyedRateLimiter<IpAddr>,
    /// Failed authentications.
    pub auth_failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses refused until a time, because their failure quota ran out.
    pub blocked: Mutex<HashMap<IpAddr, std::time::Instant>>,
    /// Log uploads per agent.
    pub agent_logs: DefaultKeyedRateLimiter<i64>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

/// The most addresses (and agents) the limiters remember; beyond it, the oldest state
/// is dropped first, so a flood of addresses cannot grow the server's memory.
pub const MAX_TRACKED: usize = 65_536;

impl Limits {
    /// Blocks `ip` until `until`, keeping the map within [`MAX_TRACKED`].
    pub fn block(&self, ip: IpAddr, until: std::time::Instant) {
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        if blocked.len() >= MAX_TRACKED && !blocked.contains_key(&ip) {
            let now = std::time::Instant::now();
            blocked.retain(|_, t| *t > now);
            if blocked.len() >= MAX_TRACKED {
                // Still full of live blocks: drop the one that ends soonest.
                if let Some(first) = blocked.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                    blocked.remove(&first);
                }
            }
        }
        blocked.insert(ip, until);
    }

    /// Forgets what no longer matters: lapsed blocks, and limiter state of keys whose
    /// quota has refilled. The scheduler calls it every tick.
    pub fn trim(&self) {
        let now = std::time::Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, t| *t > now);
        for limiter in [&self.enrol, &self.auth_failures] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.agent_logs.retain_recent();
        self.agent_logs.shrink_to_fit();
    }

    /// How many keys the limiters hold now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
            + self.enrol.len()
            + self.auth_failures.len()
            + self.agent_logs.len()
    }

    fn new(config: &Config) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Limits {
            enrol: RateLimiter::keyed(quota(config.enrol_per_minute)),
            auth_failures: RateLimiter::keyed(quota(config.auth_failures_per_minute)),
            blocked: Mutex::new(HashMap::new()),
            agent_logs: RateLimiter::keyed(quota(config.agent_logs_per_minute)),
        }
    }
}

/// Heartbeats held in memory and written in batches (by the scheduler every tick, and
/// at shutdown): one transaction for all agents instead of an fsync per heartbeat.
/// Presence is soft state; a crash loses at most one tick of "last seen".
#[derive(Default, Debug)]
pub struct Presence {
    pending: Mutex<HashMap<i64, Beat>>,
}

impl Presence {
    /// Records a heartbeat of `agent`.
    pub fn beat(&self, agent: i64, beat: Beat) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(agent, beat);
    }

    /// The heartbeat of `agent` not yet written, if any.
    pub fn get(&self, agent: i64) -> Option<Beat> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&agent)
            .cloned()
    }

    /// Takes every heartbeat not yet written.
    pub fn take(&self) -> HashMap<i64, Beat> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back heartbeats a failed write did not store (newer ones win).
    pub fn restore(&self, beats: HashMap<i64, Beat>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (agent, beat) in beats {
            pending.entry(agent).or_insert(beat);
        }
    }
}
