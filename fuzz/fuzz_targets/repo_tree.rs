//! `repo_tree`: tree blobs (FORMAT.md §18), `Tree::decode`.
//!
//! Input: any bytes, as a tree blob.
//!
//! Checks: no panic, heap capped ([`coffer_fuzz::repo::ALLOC_LIMIT`]: the node count is
//! capped before postcard sizes anything by it); an accepted tree re-encodes to exactly
//! the input (one tree, one encoding: §18.3 rule 7) and passes `Tree::check` (every rule
//! of §18.3 5–6).
#![no_main]

use cap::Cap;
use coffer_adapters::repo::tree::Tree;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        assert_eq!(tree.encode(), data, "re-encoded tree");
        if let Err(e) = tree.check() {
            panic!("a decoded tree fails its check: {e}");
        }
    }
});
