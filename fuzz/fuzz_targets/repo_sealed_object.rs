//! `repo_sealed_object`: recipient-sealed objects (FORMAT.md §15): `object::object_key`
//! and `object::open_from` with a fixed recipient secret, as a pack and as a snapshot.
//!
//! Input: any bytes, as an object. The seeds are the pack and the snapshot that open
//! ([`coffer_fuzz::repo::valid`]), each under its own name and kind.
//!
//! Checks: no panic, heap capped; `object_key` accepts only the first 96 bytes of the
//! valid object of that kind (the fuzzer cannot forge an HPKE-sealed key), returning
//! its object key and context; `open_from` accepts exactly the valid object, to its
//! plaintext: not the other kind's, nor any change to it.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::object::{self, OBJECT_HEADER_LEN};
use coffer_fuzz::repo::{valid, REPO_ID};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fuzz_target!(|data: &[u8]| {
    let v = valid();
    for sealed in &v.sealed {
        let (kind, name) = (sealed.kind, sealed.name.as_str());
        if let Ok((key, context)) = object::object_key(&v.secret, kind, &REPO_ID, name, data) {
            assert_eq!(
                data[..OBJECT_HEADER_LEN],
                sealed.bytes[..OBJECT_HEADER_LEN],
                "object_key accepted a header it did not seal ({kind:?})"
            );
            assert!(key == sealed.key, "object_key returned another key");
            assert_eq!(context, object::sealed_context(&data[..16], &REPO_ID, name));
        }
        match object::open_from(&v.secret, kind, &REPO_ID, name, data) {
            Ok(plaintext) => {
                assert!(
                    data == sealed.bytes,
                    "opened an object it did not seal ({kind:?})"
                );
                assert_eq!(plaintext, sealed.plaintext);
            }
            Err(e) => assert!(data != sealed.bytes, "the valid {kind:?} failed: {e}"),
        }
    }
});
