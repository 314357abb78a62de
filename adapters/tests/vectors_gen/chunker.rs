//! Keyed chunker vectors (FORMAT.md §12–§14): the key derivations and the table, step
//! by step; the cut points and chunk IDs of inputs under small and v2 parameters; and
//! parameters out of bounds.
//!
//! Every expectation comes from `core-nostd/tests/common/chunker_reference.rs`, a plain
//! transcription of the spec (each position's digest from its window's definition, no
//! batching or skipping), never from the chunker these files test.

use coffer_core::Error;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{hexv, File};

#[path = "../../../core-nostd/tests/common/chunker_reference.rs"]
mod reference;

/// Inputs up to this length are given as hex (`msg`), longer ones by a generator.
const HEX_LIMIT: usize = 16 << 10;

/// `msgSeed`'s generator (test-vectors/README.md): SHA-256(seed ‖ u64le(i)) for
/// i = 0, 1, …, concatenated, cut to `len` bytes.
pub fn counter_bytes(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            &Sha256::new()
                .chain_update(seed)
                .chain_update(i.to_le_bytes())
                .finalize(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// How a test's input is written down.
enum Input {
    Hex,
    Seed([u8; 16]),
    Fill(u8),
}

pub fn chunker_file() -> File {
    let mut f = File::new(
        "coffer_chunker_test.json",
        "Coffer keyed chunker v2",
        0xC0FF_EE05,
        &[
            "Coffer's keyed content-defined chunker and chunk IDs (FORMAT.md §12-§14).",
            "CofferChunkerKeys: derive each key from masterKey and check the table and window digests; CofferChunker: cut the input under writerSecret and the parameters, then name each chunk; see test-vectors/README.md.",
        ],
    );
    f.note("Derivation", "BASIC", "The key hierarchy of §12 and the table and digest of §13.2, step by step: writer secret, chunker cipher and table keys, chunk ID key, the table (first entries and a hash of all 256), and H, D and the cipher's output for a few windows.");
    f.note("EdgeLength", "EDGE_CASE", "An input whose length sits at an edge of §13.4: empty (no chunk), shorter than, equal to or one more than min_size, equal to or one more than max_size.");
    f.note(
        "CutAtMinSize",
        "EDGE_CASE",
        "A chunk ends at its first tested position, exactly min_size bytes after its start.",
    );
    f.note("MaxSize", "EDGE_CASE", "A chunk ends at max_size because no position in it is a cut point: the position s + max_size is not tested, the chunk ends there anyway.");
    f.note("ParameterEdge", "EDGE_CASE", "Parameters at the edges of §13.1's bounds: min_size 64 (the first window starts at the chunk's start), max_size = min_size + 1, mask_bits 1 and 31, max_size 2^26.");
    f.note("V2Parameters", "FUNCTIONALITY", "The v2 parameters (min_size 524288, mask_bits 17, max_size 4194304) on several MiB, given by a generator (msgSeed or msgFill).");
    f.note("ParameterOutOfBounds", "MISSING_STEP", "Parameters outside §13.1's bounds must be refused before any input is read (ParameterOutOfBounds, naming the first parameter out of bounds in the order min_size, mask_bits, max_size).");

    keys_group(&mut f);
    f.next_group();
    chunks_group(&mut f);
    f
}

fn keys_group(f: &mut File) {
    f.group_field("type", json!("CofferChunkerKeys"));
    let example: [u8; 32] = std::array::from_fn(|i| i as u8);
    for (comment, master) in [
        ("master key 000102…1f (FORMAT.md's example key)", example),
        ("random master key", f.array()),
        ("random master key", f.array()),
    ] {
        let keys = reference::Keys::from_master(&master);
        let table = reference::table(&keys.table);
        let table_bytes: Vec<u8> = table.iter().flat_map(|t| t.to_le_bytes()).collect();
        let mut windows = vec![[0u8; 64], std::array::from_fn(|i| i as u8), [0xFF; 64]];
        windows.push(f.array());
        let windows: Vec<Value> = windows
            .iter()
            .map(|w| {
                let h = reference::window_hash(&table, w);
                let d = reference::digest(h);
                let o = reference::aes128(&keys.cipher, d.to_le_bytes());
                json!({
                    "window": hexv(w),
                    "hash": hexv(&h.to_le_bytes()),
                    "digestBlock": hexv(&d.to_le_bytes()),
                    "cipherBlock": hexv(&o),
                })
            })
            .collect();
        let mut m = Map::new();
        m.insert("masterKey".into(), hexv(&master));
        m.insert("writerSecret".into(), hexv(&keys.writer));
        m.insert("chunkerCipherKey".into(), hexv(&keys.cipher));
        m.insert("chunkerTableKey".into(), hexv(&keys.table));
        m.insert("chunkIdKey".into(), hexv(&keys.chunk_id));
        m.insert(
            "tableHead".into(),
            json!(table_bytes[..4 * 16]
                .chunks(16)
                .map(hex::encode)
                .collect::<Vec<_>>()),
        );
        m.insert("tableSha256".into(), hexv(&Sha256::digest(&table_bytes)));
        m.insert("windows".into(), json!(windows));
        f.add(comment, &["Derivation"], m, Ok(()));
    }
}

/// Adds a valid test: the input under the parameters, with the reference's cuts and IDs.
fn valid(
    f: &mut File,
    comment: &str,
    flags: &[&str],
    writer: &[u8; 32],
    (min, mask, max): (u32, u32, u32),
    data: &[u8],
    input: Input,
) {
    let keys = reference::Keys::from_writer(writer);
    let cuts = reference::cuts(
        &keys.cipher,
        &keys.table,
        (min as usize, mask, max as usize),
        data,
    );
    let mut ids = Vec::new();
    let mut start = 0;
    let mut flags: Vec<&str> = flags.to_vec();
    for (i, &end) in cuts.iter().enumerate() {
        ids.push(hex::encode(reference::chunk_id(
            &keys.chunk_id,
            &data[start..end],
        )));
        let last = i + 1 == cuts.len();
        let mut flag = |name| {
            if !flags.contains(&name) {
                flags.push(name);
            }
        };
        if !last && end - start == min as usize {
            flag("CutAtMinSize");
        }
        if end - start == max as usize {
            flag("MaxSize");
        }
        start = end;
    }
    let mut m = params(writer, (min, mask, max));
    match input {
        Input::Hex => {
            assert!(data.len() <= HEX_LIMIT);
            m.insert("msg".into(), hexv(data));
        }
        Input::Seed(seed) => {
            assert_eq!(counter_bytes(&seed, data.len()), data);
            m.insert("msgLength".into(), json!(data.len()));
            m.insert("msgSeed".into(), hexv(&seed));
        }
        Input::Fill(byte) => {
            assert!(data.iter().all(|b| *b == byte));
            m.insert("msgLength".into(), json!(data.len()));
            m.insert("msgFill".into(), json!(byte));
        }
    }
    m.insert("cuts".into(), json!(cuts));
    m.insert("chunkIds".into(), json!(ids));
    f.add(comment, &flags, m, Ok(()));
}

fn params(writer: &[u8; 32], (min, mask, max): (u32, u32, u32)) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("writerSecret".into(), hexv(writer));
    m.insert("minSize".into(), json!(min));
    m.insert("maskBits".into(), json!(mask));
    m.insert("maxSize".into(), json!(max));
    m
}

fn chunks_group(f: &mut File) {
    f.group_field("type", json!("CofferChunker"));
    let writer: [u8; 32] = f.array();
    let small = (256, 4, 2048);

    // ---- random inputs, small parameters ----
    for (mask, len) in [(4, 3000), (6, 9000), (8, 12_000), (12, 16_000)] {
        let data = f.bytes(len);
        let comment = format!("{len} random bytes, min_size 256, mask_bits {mask}, max_size 2048");
        valid(
            f,
            &comment,
            &[],
            &writer,
            (256, mask, 2048),
            &data,
            Input::Hex,
        );
    }
    // A chunk that ends at its first tested position: mask_bits 1 cuts half the positions.
    let data = f.bytes(1500);
    valid(
        f,
        "mask_bits 1: chunks end at or just after min_size",
        &[],
        &writer,
        (256, 1, 2048),
        &data,
        Input::Hex,
    );

    // ---- lengths at the edges ----
    for n in [0, 1, 255, 256, 257, 2047, 2048, 2049, 4096] {
        let data = f.bytes(n);
        valid(
            f,
            &format!("{n} random bytes"),
            &["EdgeLength"],
            &writer,
            small,
            &data,
            Input::Hex,
        );
    }
    // Constant data cuts nowhere (for this key and byte) or everywhere: lengths exactly
    // max_size, and exactly min_size.
    let keys = reference::Keys::from_writer(&writer);
    let table = reference::table(&keys.table);
    let cipher = <aes::Aes128 as aes::cipher::KeyInit>::new((&keys.cipher).into());
    let byte_where = |mask, cuts| {
        (0..=255u8)
            .find(|&b| reference::decision(&cipher, &table, mask, &[b; 64]) == cuts)
            .unwrap()
    };
    let never = byte_where(12, false);
    for n in [2048, 2049, 4096, 5000] {
        let data = vec![never; n];
        valid(
            f,
            &format!("{n} bytes of {never:#04x}, no cut point"),
            &["EdgeLength"],
            &writer,
            (256, 12, 2048),
            &data,
            Input::Hex,
        );
    }
    let always = byte_where(1, true);
    for n in [256, 257, 512, 700] {
        let data = vec![always; n];
        valid(
            f,
            &format!("{n} bytes of {always:#04x}, every position a cut point"),
            &["EdgeLength"],
            &writer,
            (256, 1, 2048),
            &data,
            Input::Hex,
        );
    }

    // ---- parameters at the edges of their bounds ----
    for ((min, mask, max), len) in [
        ((64, 1, 65), 1000),
        ((64, 2, 200), 3000),
        ((64, 31, 1 << 26), 5000),
        ((100, 31, 101), 1000),
        ((200, 3, 1 << 26), 4000),
    ] {
        let data = f.bytes(len);
        let comment =
            format!("min_size {min}, mask_bits {mask}, max_size {max}, {len} random bytes");
        valid(
            f,
            &comment,
            &["ParameterEdge"],
            &writer,
            (min, mask, max),
            &data,
            Input::Hex,
        );
    }

    // ---- the v2 parameters on several MiB ----
    let v2 = (524_288, 17, 4_194_304);
    let seed: [u8; 16] = f.array();
    let data = counter_bytes(&seed, (6 << 20) + 12_345);
    valid(
        f,
        "6 MiB + 12345 generated bytes, v2 parameters",
        &["V2Parameters"],
        &writer,
        v2,
        &data,
        Input::Seed(seed),
    );
    let other: [u8; 32] = f.array();
    let seed: [u8; 16] = f.array();
    let data = counter_bytes(&seed, 3 << 20);
    valid(
        f,
        "3 MiB generated bytes, v2 parameters, another writer secret",
        &["V2Parameters"],
        &other,
        v2,
        &data,
        Input::Seed(seed),
    );
    let never = byte_where(17, false);
    let data = vec![never; 2 * 4_194_304 + 1000];
    valid(
        f,
        "8 MiB + 1000 bytes of one value, v2 parameters: two chunks of max_size",
        &["V2Parameters"],
        &writer,
        v2,
        &data,
        Input::Fill(never),
    );

    // ---- parameters out of bounds ----
    let limit = 1u32 << 26;
    for ((min, mask, max), parameter, comment) in [
        ((63, 17, 1000), "min_size", "min_size 63 < 64"),
        ((0, 17, 1000), "min_size", "min_size 0"),
        ((limit + 1, 17, limit + 2), "min_size", "min_size 2^26 + 1"),
        ((64, 0, 1000), "mask_bits", "mask_bits 0"),
        ((64, 32, 1000), "mask_bits", "mask_bits 32"),
        ((64, 17, 64), "max_size", "max_size = min_size"),
        ((1000, 17, 999), "max_size", "max_size < min_size"),
        ((64, 17, limit + 1), "max_size", "max_size 2^26 + 1"),
        (
            (limit, 17, limit),
            "max_size",
            "min_size 2^26 leaves no max_size",
        ),
        (
            (63, 0, 0),
            "min_size",
            "every parameter out of bounds: min_size is named",
        ),
        (
            (64, 40, 0),
            "mask_bits",
            "mask_bits and max_size out of bounds: mask_bits is named",
        ),
    ] {
        let mut m = params(&writer, (min, mask, max));
        m.insert("msg".into(), hexv(b"any input"));
        m.insert("errorParameter".into(), json!(parameter));
        // §13.1's bounds, checked in the table's order.
        let (value, low, high) = match parameter {
            "min_size" => (min, 64, limit),
            "mask_bits" => (mask, 1, 31),
            _ => (max, min.saturating_add(1), limit),
        };
        let error = Error::ParameterOutOfBounds {
            parameter,
            value: value.into(),
            min: low.into(),
            max: high.into(),
        };
        f.add(comment, &["ParameterOutOfBounds"], m, Err(error));
    }
}
