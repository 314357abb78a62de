//! The cutting of one stream (FORMAT.md §13.4), fed in slices, and of data held whole.

use core::fmt;

use zeroize::Zeroize;

use super::hash::{self, Hash};
use super::{Chunker, WINDOW_LEN};

/// The cutting of one stream (FORMAT.md §13.4), fed the stream's bytes in consecutive
/// slices of any sizes; the cuts do not depend on the sizes.
///
/// ```text
///   next_cut(slice) ──► Some(k): the current chunk ends after slice[..k]; the stream is
///        ▲   │                    at the start of the next chunk: call again with
///        │   │                    slice[k..] (which may be empty)
///        │   └──────► None:    all of slice belongs to the current chunk: call again
///        └──────────────────── with the next slice of the stream
///   finish(self) ──► Some(n): the last chunk is the n bytes fed since the last cut
///                    None:    there is no last chunk (empty stream, or it ended at a cut)
/// ```
///
/// Within a chunk the stream is in one of three phases, by the number of the chunk's
/// bytes it has taken (`chunk_len`): below `min_size − 64` it skips bytes without reading
/// them; up to `min_size` it rolls them into the hash of the chunk's first window; from
/// `min_size` on it tests, in front of each byte, the position the byte would follow,
/// and rolls the byte in. A cut point ends the chunk in front of that byte; reaching
/// `max_size` ends it after the byte. A position is tested only once the byte after it
/// has been fed, so `Some(0)` means that the chunk ended exactly where the previous slice
/// did. The stream keeps the last 64 bytes fed, so that a window may span slices.
///
/// Holds only its own state: the chunk's length so far, the hash, the last 64 bytes.
/// Wiped on drop.
#[must_use = "a stream's last chunk is known only from `finish`"]
pub struct ChunkStream<'c> {
    chunker: &'c Chunker,
    /// Bytes of the current chunk taken so far.
    len: usize,
    /// The rolling hash `H`, once the chunk's first window has started.
    hash: Hash,
    /// The last 64 bytes of the stream taken, oldest first.
    window: [u8; WINDOW_LEN],
}

impl<'c> ChunkStream<'c> {
    pub(super) fn new(chunker: &'c Chunker) -> Self {
        ChunkStream {
            chunker,
            len: 0,
            hash: Hash::default(),
            window: [0; WINDOW_LEN],
        }
    }

    /// Takes the next slice of the stream. Returns `Some(k)` if the current chunk ends
    /// after `data[..k]` (`k` ≤ `data.len()`; the rest, `data[k..]`, is not taken and
    /// must be given next), or `None` if all of `data` was taken into the current chunk.
    pub fn next_cut(&mut self, data: &[u8]) -> Option<usize> {
        let cut = self.advance(data);
        let taken = cut.and_then(|k| data.get(..k)).unwrap_or(data);
        self.remember(taken);
        if cut.is_some() {
            self.len = 0;
            self.hash = Hash::default();
        }
        cut
    }

    /// Bytes of the current chunk fed so far.
    pub fn chunk_len(&self) -> usize {
        self.len
    }

    /// Ends the stream: the length of its last chunk, the bytes fed since the last cut,
    /// or `None` if there were none (FORMAT.md §13.4: empty data has no chunks).
    #[must_use]
    pub fn finish(self) -> Option<usize> {
        (self.len > 0).then_some(self.len)
    }

    /// Runs the state machine over `data` up to the first cut.
    fn advance(&mut self, data: &[u8]) -> Option<usize> {
        let c = self.chunker;
        let mut i = 0usize;
        while let Some(rest) = data.get(i..).filter(|rest| !rest.is_empty()) {
            let step = if self.len < c.warm_start {
                c.warm_start.saturating_sub(self.len).min(rest.len())
            } else if self.len < c.min_size {
                let step = c.min_size.saturating_sub(self.len).min(rest.len());
                let bytes = rest.get(..step).unwrap_or_default();
                self.hash = c.table.roll_in(self.hash, bytes);
                step
            } else {
                let step = c.max_size.saturating_sub(self.len).min(rest.len());
                if let Some(k) = self.test(data, i, i.saturating_add(step)) {
                    return Some(k);
                }
                step
            };
            i = i.saturating_add(step);
            self.len = self.len.saturating_add(step);
            if self.len >= c.max_size {
                return Some(i);
            }
        }
        None
    }

    /// Tests the positions in front of `data[from..to]`, rolling each byte in after its
    /// position; the bytes leaving the window are the 64 before each, taken from the
    /// remembered window for the first 64 bytes of `data`.
    fn test(&mut self, data: &[u8], from: usize, to: usize) -> Option<usize> {
        let c = self.chunker;
        let mut from = from;
        if from < WINDOW_LEN {
            // The window, then the start of `data`: data[j] is bridge[64 + j].
            let split = to.min(WINDOW_LEN);
            let mut bridge = [0u8; 2 * WINDOW_LEN];
            let (old, new) = bridge.split_at_mut(WINDOW_LEN);
            old.copy_from_slice(&self.window);
            if let (Some(dst), Some(src)) = (new.get_mut(..split), data.get(..split)) {
                dst.copy_from_slice(src);
            }
            let region = bridge
                .get(from..WINDOW_LEN.saturating_add(split))
                .unwrap_or_default();
            if let Some(k) = hash::scan(&c.table, &c.cipher, c.mask, &mut self.hash, region) {
                return Some(from.saturating_add(k));
            }
            from = split;
        }
        if from < to {
            let region = data
                .get(from.saturating_sub(WINDOW_LEN)..to)
                .unwrap_or_default();
            if let Some(k) = hash::scan(&c.table, &c.cipher, c.mask, &mut self.hash, region) {
                return Some(from.saturating_add(k));
            }
        }
        None
    }

    /// Keeps the last 64 bytes of the stream, after `taken` was fed.
    fn remember(&mut self, taken: &[u8]) {
        if let Some(last) = taken.last_chunk::<WINDOW_LEN>() {
            self.window = *last;
        } else {
            // Fewer than 64 bytes: they go after the newest 64 − len already kept.
            self.window.rotate_left(taken.len());
            let keep = WINDOW_LEN.saturating_sub(taken.len());
            if let Some(newest) = self.window.get_mut(keep..) {
                newest.copy_from_slice(taken);
            }
        }
    }
}

impl Drop for ChunkStream<'_> {
    fn drop(&mut self) {
        self.hash.zeroize();
        self.window.zeroize();
    }
}

impl fmt::Debug for ChunkStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStream")
            .field("chunk_len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The chunks of data held whole ([`Chunker::cuts`]): each chunk's end offset.
#[derive(Debug)]
pub struct Cuts<'a> {
    /// `None` once the last chunk was returned.
    stream: Option<ChunkStream<'a>>,
    data: &'a [u8],
    offset: usize,
}

impl<'a> Cuts<'a> {
    pub(super) fn new(chunker: &'a Chunker, data: &'a [u8]) -> Self {
        Cuts {
            stream: Some(chunker.stream()),
            data,
            offset: 0,
        }
    }
}

impl Iterator for Cuts<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let stream = self.stream.as_mut()?;
        let rest = self.data.get(self.offset..).unwrap_or_default();
        match stream.next_cut(rest) {
            Some(k) => {
                self.offset = self.offset.saturating_add(k);
                Some(self.offset)
            }
            // The rest is the last chunk, unless it is empty.
            None => {
                let last = self.stream.take()?.finish();
                last.map(|_| self.data.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkerKeys, ChunkerParams};
    use super::*;
    use std::vec::Vec;

    fn chunker(min: u32, mask: u32, max: u32) -> Chunker {
        let keys = ChunkerKeys::from_bytes([1; 16], [2; 16]);
        Chunker::new(&keys, ChunkerParams::new(min, mask, max).unwrap())
    }

    /// A byte whose constant windows are (or are not) cut points.
    fn constant_byte(c: &Chunker, cuts: bool) -> u8 {
        (0..=255u8)
            .find(|&b| c.is_cut_point(&[b; WINDOW_LEN]) == cuts)
            .unwrap()
    }

    fn cuts_of(c: &Chunker, data: &[u8]) -> Vec<usize> {
        c.cuts(data).collect()
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let c = chunker(64, 4, 128);
        assert!(cuts_of(&c, &[]).is_empty());
        let mut stream = c.stream();
        assert_eq!(stream.next_cut(&[]), None);
        assert_eq!(stream.finish(), None);
    }

    #[test]
    fn boundaries_when_every_position_cuts() {
        // mask_bits 1: some constant byte makes every window a cut point, so each chunk
        // is exactly min_size long and the last is the remainder.
        let c = chunker(100, 1, 1000);
        let b = constant_byte(&c, true);
        for (n, want) in [
            (1, &[1][..]),
            (99, &[99]),
            (100, &[100]),
            (101, &[100, 101]),
            (200, &[100, 200]),
            (201, &[100, 200, 201]),
        ] {
            assert_eq!(cuts_of(&c, &std::vec![b; n]), want, "n = {n}");
        }
    }

    #[test]
    fn boundaries_when_no_position_cuts() {
        let c = chunker(100, 8, 1000);
        let b = constant_byte(&c, false);
        for (n, want) in [
            (100, &[100][..]),
            (101, &[101]),
            (999, &[999]),
            (1000, &[1000]),
            (1001, &[1000, 1001]),
            (2000, &[1000, 2000]),
            (2100, &[1000, 2000, 2100]),
        ] {
            assert_eq!(cuts_of(&c, &std::vec![b; n]), want, "n = {n}");
        }
    }

    #[test]
    fn a_cut_at_the_end_of_a_slice_is_reported_with_the_next() {
        let c = chunker(100, 1, 1000);
        let b = constant_byte(&c, true);
        let mut stream = c.stream();
        // Position 100 is a cut point, tested once byte 100 arrives.
        assert_eq!(stream.next_cut(&[b; 100]), None);
        assert_eq!(stream.chunk_len(), 100);
        assert_eq!(stream.next_cut(&[b; 5]), Some(0));
        assert_eq!(stream.chunk_len(), 0);
        assert_eq!(stream.next_cut(&[b; 5]), None);
        assert_eq!(stream.finish(), Some(5));
    }

    #[test]
    fn max_size_cuts_after_the_byte_that_reaches_it() {
        let c = chunker(64, 8, 65);
        let b = constant_byte(&c, false);
        let mut stream = c.stream();
        assert_eq!(stream.next_cut(&[b; 65]), Some(65));
        assert_eq!(stream.next_cut(&[b; 64]), None);
        assert_eq!(stream.next_cut(&[b; 3]), Some(1));
        assert_eq!(stream.finish(), None);
    }

    #[test]
    fn byte_at_a_time_equals_one_shot() {
        let c = chunker(64, 2, 300);
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let want = cuts_of(&c, &data);
        assert!(want.len() > 20);
        let mut stream = c.stream();
        let mut got = Vec::new();
        for (i, byte) in data.iter().enumerate() {
            match stream.next_cut(core::slice::from_ref(byte)) {
                Some(0) => {
                    got.push(i);
                    assert_eq!(stream.next_cut(core::slice::from_ref(byte)), None);
                }
                Some(1) => got.push(i + 1),
                None => {}
                Some(k) => panic!("cut at {k} in a 1-byte slice"),
            }
        }
        if stream.finish().is_some() {
            got.push(data.len());
        }
        assert_eq!(got, want);
    }

    #[test]
    fn debug_shows_no_state_but_the_length() {
        let c = chunker(64, 2, 300);
        let mut stream = c.stream();
        let _ = stream.next_cut(&[7; 10]);
        let shown = std::format!("{stream:?} {c:?}");
        assert!(shown.contains("chunk_len: 10"), "{shown}");
        assert!(!shown.contains("hash") && !shown.contains("window") && !shown.contains("table"));
    }
}
