//! `repo_postcard_small`: the small postcard records of a repository, decoded as the
//! adapters decode them (`postcard::take_from_bytes`, nothing left over): a lock's
//! `LockInfo` (FORMAT.md §23, `locks::list`) and a writer's cache `WriterCache` (§22,
//! `cache::load`).
//!
//! Input: any bytes, decoded as both.
//!
//! Checks: no panic; bounded allocation: the heap is capped at
//! [`coffer_fuzz::repo::ALLOC_LIMIT`] for inputs of a few KiB, so no length or count
//! read from the input sizes an allocation; a record that decodes re-encodes to at most
//! the bytes it was read from (postcard's shortest form; a reader accepts overlong
//! varints, and a map with a repeated key keeps one) and decodes back to itself.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::cache::WriterCache;
use coffer_adapters::repo::locks::LockInfo;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok((value, rest)) = postcard::take_from_bytes::<T>(data) else {
        return;
    };
    if !rest.is_empty() {
        return; // refused by the adapters
    }
    let again = postcard::to_allocvec(&value).expect("encoding a decoded record");
    assert!(again.len() <= data.len(), "re-encoded longer than read");
    let (back, rest) = postcard::take_from_bytes::<T>(&again).expect("decoding an encoding");
    assert!(rest.is_empty());
    assert_eq!(back, value);
}

fuzz_target!(|data: &[u8]| {
    check::<LockInfo>(data);
    check::<WriterCache>(data);
});
