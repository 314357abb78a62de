//! `repo_index`: index plaintexts (FORMAT.md §17), `IndexFile::decode`.
//!
//! Input: any bytes, as an index object's plaintext.
//!
//! Checks: no panic, heap capped ([`coffer_fuzz::repo::ALLOC_LIMIT`]: entry counts are
//! bounded by the bytes there are); an accepted index re-encodes (`encode`) to exactly
//! the input, so nothing is skipped, defaulted or left over.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::index::IndexFile;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = IndexFile::decode("index/fuzz", data) {
        assert_eq!(index.encode(), data, "re-encoded index");
    }
});
