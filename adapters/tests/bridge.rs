//! The std::io bridges: the parallel sealer produces streams the core opens, for every
//! length around chunk and batch boundaries and any thread count; the parallel open
//! reader returns what the core's opener returns, releases nothing unverified, and
//! reports the core's errors, again on every later read. The relay (reader to writer on
//! several threads) does the same in one call.

use std::io::{BufRead, Read};

use coffer_adapters::bridge::relay::{Failure, Relay, Relayed};
use coffer_adapters::bridge::{core_error, OpenReader, SealReader};
use coffer_core::chunked::CHUNK_LEN;
use coffer_core::{Error, RustCrypto, SecretKey, Suite};

fn plaintext(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 65536) as u8)
        .collect()
}

fn seal(suite: Suite, key: &SecretKey, ctx: &[u8], data: &[u8], threads: usize) -> Vec<u8> {
    let mut sealer = SealReader::new(&RustCrypto, suite, key, ctx, data, threads).unwrap();
    let mut out = Vec::new();
    sealer.read_to_end(&mut out).unwrap();
    assert_eq!(sealer.plaintext_len(), data.len() as u64);
    out
}

/// The plaintext as the core's own streaming opener releases it.
fn core_open(key: &SecretKey, ctx: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let (_, mut opener) = coffer_core::stream::open(
        &RustCrypto,
        key,
        ctx,
        sealed,
        vec![0u8; coffer_core::chunked::OPEN_BUFFER_LEN],
    )?;
    let mut out = Vec::new();
    while let Some(chunk) = opener.next_chunk()? {
        out.extend_from_slice(chunk);
    }
    Ok(out)
}

fn open(key: &SecretKey, ctx: &[u8], sealed: &[u8]) -> (Vec<u8>, Result<(), std::io::Error>) {
    open_with(key, ctx, sealed, 1)
}

/// Opens through `read` with `threads` threads: what it released, and how it ended.
fn open_with(
    key: &SecretKey,
    ctx: &[u8],
    sealed: &[u8],
    threads: usize,
) -> (Vec<u8>, Result<(), std::io::Error>) {
    let mut out = Vec::new();
    let mut reader = match OpenReader::with_threads(&RustCrypto, key, ctx, sealed, threads) {
        Ok(r) => r,
        Err(e) => return (out, Err(std::io::Error::other(e))),
    };
    let mut buf = vec![0u8; 10_000];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Opens through a relay with `threads` threads: what it wrote, and how it ended.
fn relay_open(
    key: &SecretKey,
    ctx: &[u8],
    sealed: &[u8],
    threads: usize,
) -> (Vec<u8>, Result<Relayed, Failure>) {
    let mut out = Vec::new();
    let result = match Relay::open(&RustCrypto, key, ctx, sealed) {
        Ok(relay) => relay.run(&mut out, threads),
        Err(e) => Err(Failure::Input(std::io::Error::other(e))),
    };
    (out, result)
}

fn relay_seal(suite: Suite, key: &SecretKey, ctx: &[u8], data: &[u8], threads: usize) -> Vec<u8> {
    let relay = Relay::seal(&RustCrypto, suite, key, ctx, data).unwrap();
    let mut out = Vec::new();
    let done = relay.run(&mut out, threads).unwrap();
    assert_eq!(done.read, data.len() as u64);
    assert_eq!(done.written, out.len() as u64);
    out
}

/// The core error a failed relay reports, if the input was at fault.
fn relay_core_error(result: Result<Relayed, Failure>) -> Option<Error> {
    match result {
        Err(Failure::Input(e)) => core_error(&e),
        other => panic!("expected an input failure, got {other:?}"),
    }
}

#[test]
fn parallel_sealing_round_trips_at_every_boundary() {
    let key = SecretKey::from_bytes([3; 32]);
    // A batch is 128 chunks per thread; cover lengths around batches of one to three
    // threads.
    let mut lengths = vec![0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1];
    for chunks in [128usize, 256, 384] {
        for delta in [-1isize, 0, 1] {
            lengths.push((chunks * CHUNK_LEN).checked_add_signed(delta).unwrap());
        }
    }
    for suite in Suite::ALL {
        for threads in [1, 2, 3] {
            for &len in &lengths {
                let data = plaintext(len);
                let sealed = seal(suite, &key, b"ctx", &data, threads);
                let expected_len = 88 + len + 16 * (len / CHUNK_LEN + 1);
                assert_eq!(sealed.len(), expected_len, "{suite:?} {threads} {len}");
                let core = core_open(&key, b"ctx", &sealed).unwrap();
                assert!(core == data, "core: {suite:?} threads {threads} len {len}");
                for open_threads in [1, 2, 3] {
                    let (out, result) = open_with(&key, b"ctx", &sealed, open_threads);
                    result.unwrap();
                    assert!(
                        out == data,
                        "{suite:?} threads {threads}/{open_threads} len {len}"
                    );
                    let (out, result) = relay_open(&key, b"ctx", &sealed, open_threads);
                    let done = result.unwrap();
                    assert!(
                        out == data,
                        "relay: {suite:?} {threads}/{open_threads} {len}"
                    );
                    assert_eq!(done.read as usize, sealed.len() - 88);
                    assert_eq!(done.written as usize, len);
                }
                // The relay seals what the core opens, at every thread count.
                let relayed = relay_seal(suite, &key, b"ctx", &data, threads);
                assert_eq!(
                    relayed.len(),
                    expected_len,
                    "relay {suite:?} {threads} {len}"
                );
                let core = core_open(&key, b"ctx", &relayed).unwrap();
                assert!(core == data, "relay: {suite:?} threads {threads} len {len}");
            }
        }
    }
}

#[test]
fn open_reader_reports_the_core_error_and_releases_nothing_unverified() {
    let key = SecretKey::from_bytes([4; 32]);
    let data = plaintext(3 * CHUNK_LEN + 5);
    let sealed = seal(Suite::Aes256Gcm, &key, b"", &data, 2);

    let mut bad = sealed.clone();
    bad[88 + CHUNK_LEN + 16 + 100] ^= 1; // inside chunk 1
    let (out, result) = open(&key, b"", &bad);
    let err = result.unwrap_err();
    assert_eq!(core_error(&err), Some(Error::CorruptedChunk { index: 1 }));
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    // Chunk 0 verified, but its batch also holds the bad chunk: none of it is released.
    assert!(out.is_empty(), "{} bytes released", out.len());

    // A byte short: the final chunk's tag no longer verifies.
    let (out, result) = open(&key, b"", &sealed[..sealed.len() - 1]);
    assert_eq!(
        core_error(&result.unwrap_err()),
        Some(Error::CorruptedChunk { index: 3 })
    );
    assert!(out.is_empty());
}

#[test]
fn the_open_reader_fails_as_the_core_does_and_keeps_failing() {
    let key = SecretKey::from_bytes([6; 32]);
    let data = plaintext(300 * CHUNK_LEN + 7);
    let sealed = seal(Suite::ChaCha20Poly1305, &key, b"c", &data, 2);
    let chunk_at = |i: usize| 88 + i * (CHUNK_LEN + 16);
    let last = 300;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut flipped = sealed.clone();
    flipped[chunk_at(270) + 5] ^= 0x80;
    cases.push(("chunk 270 flipped", flipped));
    let mut tag = sealed.clone();
    tag[chunk_at(140) + CHUNK_LEN + 3] ^= 1;
    cases.push(("chunk 140's tag flipped", tag));
    cases.push(("final chunk dropped", sealed[..chunk_at(last)].to_vec()));
    cases.push(("cut in the final tag", sealed[..sealed.len() - 3].to_vec()));
    cases.push((
        "only a piece of a tag after full chunks",
        sealed[..chunk_at(last) + 15].to_vec(),
    ));
    cases.push((
        "cut inside chunk 256",
        sealed[..chunk_at(256) + 999].to_vec(),
    ));
    let mut garbage = sealed.clone();
    garbage.extend_from_slice(b"xyz");
    cases.push(("trailing garbage", garbage));
    let mut swapped = sealed.clone();
    let (a, b) = (chunk_at(3), chunk_at(4));
    let chunk3 = sealed[a..b].to_vec();
    swapped.copy_within(b..b + (b - a), a);
    swapped[b..b + (b - a)].copy_from_slice(&chunk3);
    cases.push(("chunks 3 and 4 swapped", swapped));
    for (what, bytes) in &cases {
        let want = core_open(&key, b"c", bytes).unwrap_err();
        for threads in [1, 2, 3] {
            let mut reader =
                OpenReader::with_threads(&RustCrypto, &key, b"c", &bytes[..], threads).unwrap();
            let mut out = Vec::new();
            let err = reader.read_to_end(&mut out).unwrap_err();
            assert_eq!(core_error(&err), Some(want), "{what}, {threads} threads");
            // Only whole verified batches before the failure came out, all authentic.
            let batch = 128 * threads * CHUNK_LEN;
            assert_eq!(out.len() % batch, 0, "{what}, {threads} threads");
            assert!(out == data[..out.len()], "{what}, {threads} threads");
            // And the failure repeats: no later read skips past it.
            let again = reader.read(&mut [0u8; 100]).unwrap_err();
            assert_eq!(core_error(&again), Some(want), "{what}, {threads} threads");
            assert!(reader.fill_buf().is_err());
            // The relay writes only whole verified 128-chunk batches before the failure.
            let (out, result) = relay_open(&key, b"c", bytes, threads);
            assert_eq!(
                relay_core_error(result),
                Some(want),
                "relay: {what}, {threads}"
            );
            assert_eq!(out.len() % (128 * CHUNK_LEN), 0, "relay: {what}, {threads}");
            assert!(out == data[..out.len()], "relay: {what}, {threads} threads");
        }
    }
}

#[test]
fn buffered_reads_hand_out_the_same_bytes() {
    let key = SecretKey::from_bytes([7; 32]);
    let data = plaintext(300 * CHUNK_LEN + 123);
    let mut sealer =
        SealReader::new(&RustCrypto, Suite::Aes256Gcm, &key, b"", &data[..], 2).unwrap();
    let mut sealed = Vec::new();
    loop {
        let ready = sealer.fill_buf().unwrap();
        if ready.is_empty() {
            break;
        }
        // Take odd amounts, so consume splits batches and chunks.
        let n = ready.len().min(7777);
        sealed.extend_from_slice(&ready[..n]);
        sealer.consume(n);
    }
    assert_eq!(core_open(&key, b"", &sealed).unwrap(), data);
    let mut reader = OpenReader::with_threads(&RustCrypto, &key, b"", &sealed[..], 2).unwrap();
    let mut out = Vec::new();
    loop {
        let ready = reader.fill_buf().unwrap();
        if ready.is_empty() {
            break;
        }
        let n = ready.len().min(5000);
        out.extend_from_slice(&ready[..n]);
        reader.consume(n);
    }
    assert!(out == data);

    let other = SecretKey::from_bytes([5; 32]);
    match OpenReader::new(&RustCrypto, &other, b"", &sealed[..]) {
        Err(coffer_adapters::Error::Core(Error::WrongKey { expected })) => {
            assert_eq!(expected, key.id())
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
}

#[test]
fn the_open_reader_agrees_with_the_core_on_random_damage() {
    // Seeded damage (flips, cuts, insertions, deletions) anywhere in a 140-chunk stream:
    // the parallel reader ends as the core's opener does, and what it released is a
    // prefix of what the core released.
    let key = SecretKey::from_bytes([8; 32]);
    let data = plaintext(140 * CHUNK_LEN + 999);
    let sealed = seal(Suite::Aes256Gcm, &key, b"d", &data, 2);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = |below: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % below as u64) as usize
    };
    for round in 0..300 {
        let mut bytes = sealed.clone();
        let at = next(bytes.len());
        match round % 4 {
            0 => bytes[at] ^= 1 << next(8),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, next(256) as u8),
            _ => {
                bytes.remove(at);
            }
        }
        let want = core_open(&key, b"d", &bytes);
        for threads in [1, 2] {
            let (out, got) = open_with(&key, b"d", &bytes, threads);
            match (&want, got) {
                (Ok(plain), Ok(())) => assert!(out == *plain, "round {round}"),
                (Err(want), Err(got)) => {
                    assert_eq!(core_error(&got), Some(*want), "round {round} at {at}");
                    assert!(out == data[..out.len()], "round {round}");
                }
                (want, got) => panic!("round {round} at {at}: core {want:?}, reader {got:?}"),
            }
            let (out, got) = relay_open(&key, b"d", &bytes, threads);
            match (&want, got) {
                (Ok(plain), Ok(_)) => assert!(out == *plain, "relay: round {round}"),
                (Err(want), got @ Err(_)) => {
                    assert_eq!(relay_core_error(got), Some(*want), "relay: round {round}");
                    assert!(out == data[..out.len()], "relay: round {round}");
                }
                (want, got) => panic!("relay: round {round} at {at}: {want:?}, {got:?}"),
            }
        }
    }
}

/// A writer that takes `room` bytes, then fails as a full disk does.
struct FullAfter {
    room: usize,
    taken: Vec<u8>,
}

impl std::io::Write for FullAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.room - self.taken.len());
        if n == 0 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.taken.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader that yields `good` bytes of `data`, then fails.
struct BrokenAfter<'a> {
    data: &'a [u8],
    good: usize,
}

impl Read for BrokenAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.good == 0 {
            return Err(std::io::Error::other("the disk went away"));
        }
        let n = buf.len().min(self.good).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.good -= n;
        Ok(n)
    }
}

#[test]
fn the_relay_tells_read_failures_from_write_failures() {
    let key = SecretKey::from_bytes([9; 32]);
    let data = plaintext(700 * CHUNK_LEN + 3);
    let sealed = relay_seal(Suite::Aes256Gcm, &key, b"", &data, 2);
    for threads in [1, 2, 3] {
        // A full disk while opening: an output failure, and nothing more written.
        let relay = Relay::open(&RustCrypto, &key, b"", &sealed[..]).unwrap();
        let mut full = FullAfter {
            room: 5 * CHUNK_LEN + 1,
            taken: Vec::new(),
        };
        match relay.run(&mut full, threads) {
            Err(Failure::Output(e)) => assert_eq!(e.raw_os_error(), Some(28)),
            other => panic!("{threads} threads: {other:?}"),
        }
        assert!(full.taken == data[..full.taken.len()]);
        assert_eq!(full.taken.len(), 5 * CHUNK_LEN + 1);

        // A read error while sealing: an input failure naming it, and no sealed chunk
        // after the batch it broke.
        let broken = BrokenAfter {
            data: &data,
            good: 300 * CHUNK_LEN + 10,
        };
        let relay = Relay::seal(&RustCrypto, Suite::Aes256Gcm, &key, b"", broken).unwrap();
        let mut out = Vec::new();
        match relay.run(&mut out, threads) {
            Err(Failure::Input(e)) => assert_eq!(e.to_string(), "the disk went away"),
            other => panic!("{threads} threads: {other:?}"),
        }
        // The header and the two whole batches (256 chunks) before the broken one.
        assert_eq!(out.len(), 88 + 256 * (CHUNK_LEN + 16), "{threads} threads");
    }

    // The wrong key is refused before anything is read past the prefix.
    let other = SecretKey::from_bytes([1; 32]);
    match Relay::open(&RustCrypto, &other, b"", &sealed[..]) {
        Err(coffer_adapters::Error::Core(Error::WrongKey { expected })) => {
            assert_eq!(expected, key.id())
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
}
