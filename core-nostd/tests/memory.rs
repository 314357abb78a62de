//! The memory a sealer and an opener need, as the crate docs state it: their own state
//! (at most `MAX_STATE_LEN` bytes with the RustCrypto provider) plus the caller's buffer
//! of one chunk. Nothing grows with the stream: the state types have no heap and the
//! buffer is borrowed. The same for the chunker: a keyed chunker, and a small state per
//! stream.

mod common;

use coffer_core::chunked::{
    RandomAccessOpener, Sealer, StreamOpener, CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN,
};
use coffer_core::provider::{RustCryptoCipher, TAG_LEN};
use coffer_core::MAX_STATE_LEN;
use common::Cursor;
use std::mem::size_of;

#[test]
fn state_and_buffer_sizes_are_as_documented() {
    let sealer = size_of::<Sealer<RustCryptoCipher, &mut [u8]>>();
    let opener = size_of::<StreamOpener<Cursor<'static>, RustCryptoCipher, &mut [u8]>>();
    let random = size_of::<RandomAccessOpener<Cursor<'static>, RustCryptoCipher, &mut [u8]>>();
    println!("sealer state {sealer} B, stream opener {opener} B, random-access opener {random} B");
    for (name, size) in [
        ("sealer", sealer),
        ("stream opener", opener),
        ("random-access opener", random),
    ] {
        assert!(
            size <= MAX_STATE_LEN,
            "{name}: {size} bytes > MAX_STATE_LEN {MAX_STATE_LEN}"
        );
    }
    // The cipher's key schedule is most of it; the scheme's own state is small.
    let cipher = size_of::<RustCryptoCipher>();
    assert!(
        sealer - cipher <= 128,
        "sealer bookkeeping {} bytes",
        sealer - cipher
    );
    assert_eq!(SEAL_BUFFER_LEN, CHUNK_LEN + 2 * TAG_LEN);
    assert_eq!(OPEN_BUFFER_LEN, CHUNK_LEN + TAG_LEN);
}

#[test]
fn chunker_sizes_are_as_documented() {
    use coffer_core::chunker::{ChunkStream, Chunker};
    let chunker = size_of::<Chunker>();
    let stream = size_of::<ChunkStream<'static>>();
    println!("chunker {chunker} B, stream {stream} B");
    // The 4 KiB table and the AES-128 key schedule; a stream's length, hash and window.
    assert!(chunker <= 5 * 1024, "chunker: {chunker} bytes");
    assert!(stream <= 128, "chunk stream: {stream} bytes");
}
