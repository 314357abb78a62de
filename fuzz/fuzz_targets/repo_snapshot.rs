//! `repo_snapshot`: snapshot plaintexts (FORMAT.md §19), `Snapshot::decode`.
//!
//! Input: any bytes, as a snapshot's plaintext.
//!
//! Checks: no panic, heap capped ([`coffer_fuzz::repo::ALLOC_LIMIT`]); an accepted
//! snapshot has version 2 and nanoseconds below 10^9, and re-encodes to exactly the
//! input.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::snapshot::{Snapshot, SNAPSHOT_VERSION};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = Snapshot::decode("snapshots/fuzz", data) {
        assert_eq!(snapshot.version, SNAPSHOT_VERSION);
        assert!(snapshot.time_ns < 1_000_000_000);
        let again = snapshot.encode().expect("encoding a decoded snapshot");
        assert_eq!(again, data, "re-encoded snapshot");
    }
});
