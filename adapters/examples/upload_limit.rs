//! Measures the upload rate limit (`storage::Throttled`): puts `--mib` MiB of random
//! data, in 16 MiB objects as packs are, into a local folder through a limit of
//! `--limit-mib` MiB/s, and reports the rate achieved and its ratio to the limit (and
//! the unlimited rate of the same puts, for scale).
//!
//! `cargo run --release -p coffer-adapters --example upload_limit -- --mib 200 --limit-mib 10`

use std::sync::Arc;
use std::time::Instant;

use coffer_adapters::storage::{LocalStorage, ObjectKey, PutMode, Storage, Throttled};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn put_all(store: &dyn Storage, prefix: &str, data: &[u8]) -> f64 {
    let started = Instant::now();
    for (i, object) in data.chunks(16 << 20).enumerate() {
        let key = ObjectKey::new(format!("{prefix}/{i:04}")).expect("a valid key");
        store
            .put(&key, &mut &object[..], PutMode::CreateOnly)
            .expect("the put");
    }
    data.len() as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let (mib, limit) = (arg("--mib", 200), arg("--limit-mib", 10));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let local: Arc<dyn Storage> = Arc::new(LocalStorage::open(dir.path()).expect("the folder"));
    let raw = put_all(local.as_ref(), "raw", &data);
    let limited = Throttled::new(Arc::clone(&local), limit << 20);
    let rate = put_all(&limited, "limited", &data);
    println!(
        "{mib} MiB: unlimited {raw:.1} MiB/s; limit {limit} MiB/s: {rate:.2} MiB/s \
         ({:.1}% of the limit)",
        100.0 * rate / limit as f64
    );
}
