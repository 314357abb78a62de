//! `repo_config`: the configuration (FORMAT.md §20): `Config::decode` of a plaintext,
//! `Config::peek_id` and `Config::open` of a stored object under a fixed key.
//!
//! Input: any bytes, given to all three. The seeds include the one stored
//! configuration that opens ([`coffer_fuzz::repo::valid`]), sealed configurations that
//! must not (another ID inside, a short plaintext, bad chunker parameters) and
//! plaintexts.
//!
//! Checks: no panic, heap capped; `decode` accepts only 76 bytes whose chunker
//! parameters pass §13.1, and re-encodes them exactly; `peek_id` accepts exactly the
//! inputs of at least 20 bytes that start with `"CCF2"`, and returns bytes 4..20;
//! `open` with the fixed key accepts the valid object (to its configuration) and
//! nothing else, since the fuzzer cannot forge a chunk.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::config::{Config, CONFIG_LEN, CONFIG_MAGIC};
use coffer_fuzz::repo::{config_key, valid};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::decode(data) {
        assert_eq!(data.len(), CONFIG_LEN);
        assert!(config.chunker.check().is_ok());
        assert_eq!(config.encode(), data, "re-encoded configuration");
    }

    let magic = data.len() >= 20 && data[..4] == CONFIG_MAGIC[..];
    match Config::peek_id(data) {
        Ok(id) => {
            assert!(magic, "peek_id accepted a non-configuration");
            assert_eq!(id[..], data[4..20]);
        }
        Err(_) => assert!(!magic, "peek_id refused a configuration's head"),
    }

    let v = valid();
    match Config::open(data, &config_key()) {
        Ok(config) => {
            assert!(
                data == v.config_object,
                "opened a configuration it did not seal"
            );
            assert_eq!(config, v.config);
        }
        Err(e) => assert!(data != v.config_object, "the valid configuration: {e}"),
    }
});
