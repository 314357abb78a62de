#!/usr/bin/env bash
# Writes seed corpora for the fuzz targets into fuzz/corpus/<target>/ (generated, not
# committed; see fuzz/.gitignore), from:
#   - test-vectors/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json: each `ct`
#     (hex of zlib data) is a C2SP message; seeds put Coffer's stream header (for the
#     fuzz key, 000102…1f) before it, or use its chunks after a valid prefix;
#   - test-vectors/coffer_*_test.json (if present): streams (`ct` hex, or `ctCompressed`
#     hex of zlib data) and envelopes (`envelope` hex);
#   - hand-written seeds in each target's input layout (see fuzz/README.md): every
#     mutation kind on valid objects the harness seals itself, chunk-boundary lengths;
#   - for the repository targets (repo_*), the objects examples/repo_seeds.rs makes with
#     the adapters' encoders: pack plaintexts, indexes, trees (FORMAT.md §18.5's among
#     them), snapshots, locks, caches, and the configuration, key files and sealed
#     objects the targets accept, with sealed ones they must refuse. It is built with
#     cargo in this crate (a debug build, on the first run only).
# Missing vector files are skipped. Idempotent: seeds are named by their SHA-1.
#
# Usage: fuzz/seed-corpora.sh [test-vectors dir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${1:-$here/../test-vectors}"

repo_seeds="$(mktemp -d)"
trap 'rm -rf "$repo_seeds"' EXIT
(cd "$here" && cargo run --quiet --example repo_seeds -- "$repo_seeds")

python3 - "$vectors" "$here/corpus" "$repo_seeds" <<'PY'
import glob, hashlib, json, os, struct, sys, zlib

vectors, out_root, repo_seeds = sys.argv[1], sys.argv[2], sys.argv[3]
MAX_SEED = 64 * 1024          # larger inputs only slow libFuzzer down; run.sh caps -max_len
FUZZ_KEY_ID = bytes.fromhex("8586aca7724c3a33929a0345934cc605")  # key_id(000102…1f), FORMAT.md §2
TARGETS = ["header", "stream_open", "random_open", "envelope",
           "passphrase_envelope", "passphrase_unwrap", "seal_open_differential", "chunker",
           "repo_pack_toc", "repo_index", "repo_tree", "repo_snapshot", "repo_config",
           "repo_keyfile", "repo_sealed_object", "repo_postcard_small"]
counts = {t: 0 for t in TARGETS}

def put(target, data):
    if target == "passphrase_envelope":
        # The parsing and the whole-unwrap targets read the same input layout.
        put("passphrase_unwrap", data)
    data = bytes(data[:MAX_SEED])
    d = os.path.join(out_root, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        counts[target] += 1

u8 = lambda n: struct.pack("<B", n & 0xFF)
u16 = lambda n: struct.pack("<H", n & 0xFFFF)
u32 = lambda n: struct.pack("<I", n & 0xFFFFFFFF)
u64 = lambda n: struct.pack("<Q", n & 0xFFFFFFFFFFFFFFFF)

def stream_head(mode, flags=0, sizes=0, fail=0):
    # stream_open: mode, flags, u64 sizes seed, u32 I/O error offset
    return u8(mode) + u8(flags) + u64(sizes) + u32(fail)

def random_head(mode, flags=0, sizes=0, shrink=0, garbage=0, ops=()):
    # random_open: mode, flags, u64 seed, u16 shrink, u8 garbage, u8 op count, ops
    out = u8(mode) + u8(flags) + u64(sizes) + u16(shrink) + u8(garbage) + u8(len(ops))
    for kind, offset, length in ops:
        out += u8(kind) + u32(offset) + u16(length)
    return out

DEFAULT_OPS = ((0, 0, 100), (0, 16380, 40), (2, 0, 0), (3, 0, 0))

def mutation(kind, a=0, b=0, c=0):
    return u8(kind) + u32(a) + u32(b) + u8(c)

def stream_seeds(stream):
    """Seeds from a Coffer sealed stream (header included)."""
    put("header", stream[:64])
    put("stream_open", stream_head(0) + stream)
    put("stream_open", stream_head(0, flags=2 | 8) + stream)
    put("random_open", random_head(0, ops=DEFAULT_OPS) + stream)
    if len(stream) > 88:
        put("stream_open", stream_head(1) + u64(1) + stream[88:])
        put("random_open", random_head(1, ops=DEFAULT_OPS) + u64(1) + stream[88:])

def c2sp_seeds(message, suite=1):
    """Seeds from a bare C2SP message: behind a stream header for the fuzz key."""
    header = b"COFFER/S" + bytes([1, suite]) + bytes(6) + FUZZ_KEY_ID
    stream_seeds(header + message)

def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"seed-corpora: skipping {path}: {e}", file=sys.stderr)
        return None

def tests(doc):
    for group in doc.get("testGroups", []):
        for t in group.get("tests", []):
            yield group, t

def unhex(s):
    try:
        return bytes.fromhex(s)
    except (TypeError, ValueError):
        return None

def inflate(b):
    # Only the first MAX_SEED bytes matter; don't inflate multi-megabyte vectors whole.
    d = zlib.decompressobj()
    try:
        return d.decompress(b, MAX_SEED + 1)
    except zlib.error:
        return None

# --- Wycheproof Cobblestone-256 (C2SP layer) --------------------------------------
wy = os.path.join(vectors, "wycheproof", "c2sp_chunked_encryption_aes_256_gcm_test.json")
doc = load_json(wy) if os.path.exists(wy) else None
if doc:
    for _, t in tests(doc):
        raw = unhex(t.get("ct", ""))
        msg = inflate(raw) if raw is not None else None
        if msg is not None:
            c2sp_seeds(msg)
else:
    print(f"seed-corpora: no {wy}", file=sys.stderr)

# --- Coffer's own vectors ---------------------------------------------------------
for path in sorted(glob.glob(os.path.join(vectors, "coffer_*_test.json"))):
    doc = load_json(path)
    if not doc:
        continue
    for _, t in tests(doc):
        if "ctCompressed" in t:
            raw = unhex(t["ctCompressed"])
            stream = inflate(raw) if raw is not None else None
        elif "ct" in t:
            stream = unhex(t["ct"])
        else:
            stream = None
        if stream:
            stream_seeds(stream)
        env = unhex(t["envelope"]) if "envelope" in t else None
        if env is not None:
            put("header", env)
            purpose = t.get("purpose")
            p = {"repository": 1, "profile": 2, "master": 3}.get(purpose, purpose)
            p = (p - 1) if isinstance(p, int) and 1 <= p <= 3 else 0
            if env[:8] == b"COFFER/P":
                put("passphrase_envelope", u8(0) + u8(p) + u8(0) + env)
            else:
                put("envelope", u8(0) + u8(p) + u8(0) + env)

# --- Hand-written seeds, in the targets' layouts ----------------------------------
# Headers: valid ones for each kind, and each check of FORMAT.md tripped once.
sh = b"COFFER/S" + bytes([1, 1]) + bytes(6) + FUZZ_KEY_ID
kh = b"COFFER/K" + bytes([1, 2, 1, 0]) + u32(7)[::-1] + FUZZ_KEY_ID + bytes(16)
ph = (b"COFFER/P" + bytes([1, 1, 3, 0]) + bytes(4) + (8192).to_bytes(4, "big")
      + (1).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(4) + bytes(32))
for seed in (sh, sh + bytes(72), kh + bytes(104), ph + bytes(104),
             b"COFFER/", sh[:9] + b"\x02", sh[:10], kh[:9] + b"\x07"):
    put("header", seed)
put("envelope", u8(0) + u8(0) + u8(0) + kh + bytes(104))
put("passphrase_envelope", u8(0) + u8(2) + u8(0) + ph + bytes(104))
hostile = bytearray(ph + bytes(104))
hostile[16:20] = (1 << 20).to_bytes(4, "big")   # 1 GiB: BufferTooSmall, no allocation
put("passphrase_envelope", u8(0) + u8(2) + u8(0) + hostile)
hostile[16:20] = (8192).to_bytes(4, "big")
hostile[20:24] = (16).to_bytes(4, "big")         # 16 passes over the 8 MiB given
hostile[24:28] = (4).to_bytes(4, "big")
put("passphrase_envelope", u8(0) + u8(2) + u8(0) + hostile)

# Valid objects sealed by the harness, unmodified (kind 0) and with each mutation.
lengths = ((0, 0), (0, 1), (0, 100), (2, 0), (2, 0x20 << 8), (2, 1 | (0x20 << 8)), (3, 40000))
for sel, n in lengths:
    for kind in range(12):
        m = mutation(kind, a=88 + 16400 * (kind % 2) + 5, b=3, c=0x41)
        body = u8(sel) + u32(n) + u64(kind) + m + b"coffer"
        put("stream_open", stream_head(2, flags=kind & 0x3F, sizes=kind) + body)
        put("random_open", random_head(2, flags=kind & 0x21, sizes=kind, ops=DEFAULT_OPS) + body)
    put("stream_open", stream_head(2, flags=16 | 8, fail=50) + u8(sel) + u32(n) + u64(1) + mutation(0))
    put("random_open", random_head(2, flags=2 | 4, shrink=17, garbage=5, ops=DEFAULT_OPS)
        + u8(sel) + u32(n) + u64(1) + mutation(0))
for kind in range(12):
    m = mutation(kind, a=100 + kind * 3, b=kind, c=0x80)
    put("envelope", u8(1) + u8(kind % 3) + u8(kind) + u8(kind % 3) + u32(kind) + u64(kind) + m + bytes(range(32)))
for kind in (0, 1, 2, 4, 5, 11):
    put("passphrase_envelope", u8(1) + u8(kind % 2) + u8(kind & 3) + mutation(kind, a=17 + kind) + u8(4) + b"pass")

# seal_open_differential: flags, u32 length, u64 seed, context, slices, plaintext
def diff(flags, length, slices, ctx=b"repo", pt=b"plaintext"):
    out = u8(flags) + u32(length) + u64(length) + u8(len(ctx)) + ctx + u8(len(slices) - 1)
    return out + b"".join(u16(s) for s in slices) + pt
for length in (0, 1, 16383, 16384, 16385, 32768, 40000, 100 * 1024):
    for feed in (0, 1, 2):
        put("seal_open_differential", diff(4 | feed, length, (1000, 0, 16384, 7)))
put("seal_open_differential", diff(0, 0, (3,), pt=bytes(range(256)) * 4))

# chunker: u16 min_size, u8 mask_bits, u16 max_size, u8 key, u8 slicing, u64 seed, input
def chunker_seed(min_off, mask, max_off, key, slicing, data):
    return u16(min_off) + u8(mask) + u16(max_off) + u8(key) + u8(slicing) + u64(key) + data
pseudo = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(256))  # 8 KiB
for mask, slicing in ((0, 0), (1, 6), (3, 7), (7, 12), (30, 3)):
    put("chunker", chunker_seed(192, mask, 1792, mask, slicing, pseudo))
put("chunker", chunker_seed(0, 0, 0, 1, 6, pseudo[:3000]))      # min 64, max 65
put("chunker", chunker_seed(0, 0, 100, 2, 0, bytes(3000)))      # constant input
put("chunker", chunker_seed(36, 4, 50, 3, 1, pseudo[:101]))     # input of min_size + 1
put("chunker", chunker_seed(0, 0, 0, 0, 0, b""))                # empty input

# Repository targets: the files examples/repo_seeds.rs wrote, <target>/<label>.
for target in sorted(os.listdir(repo_seeds)):
    for name in sorted(os.listdir(os.path.join(repo_seeds, target))):
        with open(os.path.join(repo_seeds, target, name), "rb") as f:
            put(target, f.read())

print("seed-corpora: new seeds " + ", ".join(f"{t} {n}" for t, n in counts.items()))
PY
