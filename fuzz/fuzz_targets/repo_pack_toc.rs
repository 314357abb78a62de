//! `repo_pack_toc`: a pack's table of contents (FORMAT.md §16), found from the trailer
//! of an arbitrary plaintext.
//!
//! Input: any bytes, as a pack's plaintext. `parse_trailer` reads its last 16 bytes;
//! if it accepts, `parse_toc` reads the table it points to.
//!
//! Checks: no panic, heap capped ([`coffer_fuzz::repo::ALLOC_LIMIT`]); an accepted
//! trailer points at a table of at least 4 bytes that ends before the trailer; an
//! accepted table has `4 + 48·n` bytes, every entry's stored bytes lie in the plaintext
//! before the table, no two entries' bytes overlap, and `u32le(n)` followed by each
//! entry re-encoded by `TocEntry::encode` gives the table's bytes back.
#![no_main]

use cap::Cap;
use coffer_adapters::repo::pack::{parse_toc, parse_trailer, TOC_ENTRY_LEN, TRAILER_LEN};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, coffer_fuzz::repo::ALLOC_LIMIT);

fuzz_target!(|plain: &[u8]| {
    let Some(trailer_at) = plain.len().checked_sub(TRAILER_LEN) else {
        return;
    };
    let Ok((toc_offset, toc_len)) = parse_trailer(&plain[trailer_at..], plain.len() as u64) else {
        return;
    };
    assert!(toc_len >= 4, "a table of {toc_len} bytes");
    let toc_end = toc_offset
        .checked_add(toc_len)
        .expect("table end overflows");
    assert!(
        toc_end <= trailer_at as u64,
        "the table runs into the trailer"
    );
    let toc = &plain[toc_offset as usize..toc_end as usize];

    let Ok(entries) = parse_toc(toc, toc_offset) else {
        return;
    };
    assert_eq!(toc.len(), 4 + entries.len() * TOC_ENTRY_LEN);
    let mut spans: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| {
            let start = u64::from(e.offset);
            (start, start + u64::from(e.stored_len))
        })
        .collect();
    for &(start, end) in &spans {
        assert!(end <= toc_offset, "blob {start}..{end} runs into the table");
    }
    spans.retain(|(start, end)| start < end);
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "blobs {pair:?} overlap");
    }

    let mut again = (entries.len() as u32).to_le_bytes().to_vec();
    for e in &entries {
        e.encode(&mut again);
    }
    assert_eq!(again, toc, "re-encoded table");
});
