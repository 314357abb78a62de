//! `header`: the three header decoders on arbitrary bytes.
//!
//! Input: any bytes. Each decoder runs on the input as it is and on the input behind
//! each of the three magics (so the fuzzer starts past the magic check).
//!
//! Checks, for `StreamHeader::decode`, `KeyEnvelope::decode` and
//! `PassphraseEnvelope::decode`:
//! - the result (Ok, or which error) is the one FORMAT.md's checks give in the order
//!   the spec lists them (§5.3 rows 1–6, §6.3 rows 1–4, §7.3 rows 1–5; `spec.rs`);
//! - a successful decode re-encodes to the same first 32 / 48 / 64 bytes, and decoding
//!   that encoding gives the same header back (round trip).
#![no_main]

use coffer_core::envelope::KeyEnvelope;
use coffer_core::passphrase::PassphraseEnvelope;
use coffer_core::stream::StreamHeader;
use coffer_fuzz::{same_error, spec};
use libfuzzer_sys::fuzz_target;

fn agree<T>(
    core: &Result<T, coffer_core::Error>,
    model: Result<(), coffer_core::Error>,
    what: &str,
) {
    match (core, model) {
        (Ok(_), Ok(())) => {}
        (Err(a), Err(b)) => assert!(same_error(a, &b), "{what}: core {a:?}, spec {b:?}"),
        (Ok(_), Err(b)) => panic!("{what}: core accepted, spec says {b:?}"),
        (Err(a), Ok(())) => panic!("{what}: core says {a:?}, spec accepts"),
    }
}

fn check(bytes: &[u8]) {
    let stream = StreamHeader::decode(bytes);
    agree(&stream, spec::stream_header(bytes), "stream header");
    if let Ok(h) = stream {
        let encoded = h.encode();
        assert_eq!(encoded[..], bytes[..32], "stream header round trip");
        assert_eq!(h.suite.to_byte(), bytes[9]);
        assert_eq!(h.key_id.as_bytes()[..], bytes[16..32]);
        assert_eq!(StreamHeader::decode(&encoded), Ok(h));
    }

    let key = KeyEnvelope::decode(bytes);
    agree(&key, spec::key_envelope(bytes), "key envelope");
    if let Ok(h) = key {
        let encoded = h.encode();
        assert_eq!(encoded[..], bytes[..48], "key envelope round trip");
        let mut again = encoded.to_vec();
        again.extend_from_slice(&bytes[48..]);
        assert_eq!(KeyEnvelope::decode(&again), Ok(h));
    }

    let pass = PassphraseEnvelope::decode(bytes);
    agree(
        &pass,
        spec::passphrase_envelope(bytes).map(|_| ()),
        "passphrase envelope",
    );
    if let Ok(h) = pass {
        let encoded = h.encode();
        assert_eq!(encoded[..], bytes[..64], "passphrase envelope round trip");
        let mut again = encoded.to_vec();
        again.extend_from_slice(&bytes[64..]);
        assert_eq!(PassphraseEnvelope::decode(&again), Ok(h));
        assert_eq!(h.params.blocks(), h.params.memory_kib as usize);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    for magic in [spec::STREAM_MAGIC, spec::KEY_MAGIC, spec::PASS_MAGIC] {
        let mut prefixed = magic.to_vec();
        prefixed.extend_from_slice(data);
        check(&prefixed);
    }
});
