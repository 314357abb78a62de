#!/usr/bin/env python3
"""Sanity checks of coffer_reader against FORMAT.md's worked examples (section 8)
and against a minimal test-only writer written from FORMAT.md sections 4-7.

Usage: python3 test-vectors/python/selftest.py   (exits non-zero on failure)

The writer here exists only to produce inputs for the reader's error paths; it
is not a supported implementation.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffer_reader as cr  # noqa: E402
import coffer_repo as cr_repo  # noqa: E402
import coffer_selfbackup as cr_sb  # noqa: E402
from coffer_reader import CofferError  # noqa: E402

FAILS = []
COUNT = 0


def check(cond, what):
    global COUNT
    COUNT += 1
    if not cond:
        FAILS.append(what)


def expect_error(fn, name, what, **fields):
    global COUNT
    COUNT += 1
    try:
        fn()
    except CofferError as e:
        if e.name != name or any(getattr(e, k, None) != v for k, v in fields.items()):
            FAILS.append(f"{what}: expected {name}{fields or ''}, got {e}")
        return
    except Exception as e:  # noqa: BLE001
        FAILS.append(f"{what}: expected {name}, got {type(e).__name__}: {e}")
        return
    FAILS.append(f"{what}: expected {name}, no error")


# --------------------------------------------------------------------------
# Minimal writer (FORMAT.md 4.1-4.3, 5.2, 6.2, 7)
# --------------------------------------------------------------------------


def c2sp_seal(key, ctx, suite, plaintext, salt=None):
    salt = os.urandom(24) if salt is None else salt
    ak, bn, commitment = cr.derive_message_keys(key, salt, ctx, suite)
    aead = cr.SUITES[suite][1](ak)
    out = bytearray(salt + commitment)
    n = len(plaintext) // 16384 + 1
    for i in range(n):
        piece = plaintext[16384 * i:16384 * (i + 1)]
        out += aead.encrypt(cr._chunk_nonce(bn, i), piece, None)
    return bytes(out)


def seal_stream(key, caller_context, suite, plaintext):
    header = b"COFFER/S" + bytes([1, suite]) + bytes(6) + cr.key_id(key)
    return header + c2sp_seal(key, header + caller_context, suite, plaintext)


def key_envelope(kek, w, purpose, version, ctx, suite=1, header_w_id=None):
    header = (b"COFFER/K" + bytes([1, suite, purpose, 0]) + version.to_bytes(4, "big")
              + cr.key_id(kek) + (header_w_id or cr.key_id(w)))
    return header + c2sp_seal(kek, header + ctx, suite, w)


def passphrase_envelope(pw, w, purpose, version, ctx, m=8192, t=1, p=1, suite=2,
                        header_w_id=None, reserved=bytes(4)):
    asalt = os.urandom(16)
    header = (b"COFFER/P" + bytes([1, suite, purpose, 0]) + version.to_bytes(4, "big")
              + m.to_bytes(4, "big") + t.to_bytes(4, "big") + p.to_bytes(4, "big")
              + reserved + asalt + (header_w_id or cr.key_id(w)))
    kek = cr._argon2id(pw, asalt, m, t, p)
    return header + c2sp_seal(kek, header + ctx, suite, w)


def patch(b, off, val):
    b = bytearray(b)
    b[off] = val
    return bytes(b)


def flip(b, off):
    return patch(b, off, b[off] ^ 1)


def stream_all(data, key, ctx):
    return cr.open_sealed_stream(io.BytesIO(data), key, ctx).read_all()


def ra_all(data, key, ctx):
    ra = cr.open_sealed_stream_random_access(io.BytesIO(data), key, ctx)
    return b"".join(ra.iter_chunks())


# --------------------------------------------------------------------------


def main():
    K = bytes(range(32))
    K2 = bytes(range(1, 33))
    ctx = b"tenant/repo"

    # section 2 and 8 examples
    check(cr.key_id(K).hex() == "8586aca7724c3a33929a0345934cc605", "key_id example")
    s = seal_stream(K, b"", 1, b"")
    check(s[:32].hex() == "434f464645522f53" "01" "01" "000000000000"
          "8586aca7724c3a33929a0345934cc605", "header example")
    for L, total in ((0, 104), (20000, 20120), (32768, 32904)):
        pt = os.urandom(L)
        data = seal_stream(K, ctx, 1, pt)
        check(len(data) == total, f"size of a {L}-byte stream")
        ra = cr.open_sealed_stream_random_access(io.BytesIO(data), K, ctx)
        check(ra.claimed_length == L, f"claimed length {L}")
        check(ra.authenticate_length() == L, f"authenticated length {L}")
    sample = io.BytesIO(seal_stream(K, ctx, 1, bytes(20000)))
    ra = cr.open_sealed_stream_random_access(sample, K, ctx)
    check(ra.chunk_count == 2 and ra.chunk_wire_range(1) == (16488, 3632), "section 8 layout")

    # round trips, both suites, both openers
    for suite in (1, 2):
        for L in (0, 1, 16383, 16384, 16385, 32768, 50000):
            pt = os.urandom(L)
            data = seal_stream(K, ctx, suite, pt)
            check(stream_all(data, K, ctx) == pt, f"stream round trip suite {suite} L {L}")
            check(ra_all(data, K, ctx) == pt, f"random-access round trip suite {suite} L {L}")
            ra = cr.open_sealed_stream_random_access(io.BytesIO(data), {cr.key_id(K): K}, ctx)
            if L > 10:
                check(ra.read(L - 10, 10) == pt[-10:], f"range read suite {suite} L {L}")
            msg = c2sp_seal(K, ctx, suite, pt)
            check(cr.open_chunked_stream(io.BytesIO(msg), K, ctx, suite).read_all() == pt,
                  f"bare C2SP round trip suite {suite} L {L}")

    # sealed stream errors, in the order of 5.3
    pt = os.urandom(40000)
    good = seal_stream(K, ctx, 1, pt)
    for cut in range(0, 8):
        expect_error(lambda: stream_all(good[:cut], K, ctx), "Truncated", f"stream cut at {cut}")
    expect_error(lambda: stream_all(b"COFFER/K" + good[8:], K, ctx), "BadMagic", "stream magic")
    expect_error(lambda: stream_all(b"COFFER/s", K, ctx), "BadMagic", "short bad magic")
    for cut in (8, 9, 10, 31, 32, 87):
        expect_error(lambda: stream_all(good[:cut], K, ctx), "Truncated", f"stream cut at {cut}")
        expect_error(lambda: ra_all(good[:cut], K, ctx), "Truncated", f"RA stream cut at {cut}")
    expect_error(lambda: stream_all(patch(good, 8, 2)[:9], K, ctx), "UnsupportedVersion",
                 "version 2", version=2)
    expect_error(lambda: stream_all(patch(good, 9, 3)[:10], K, ctx), "UnsupportedSuite",
                 "suite 3", suite=3)
    expect_error(lambda: stream_all(patch(good, 9, 0), K, ctx), "UnsupportedSuite",
                 "suite 0", suite=0)
    expect_error(lambda: stream_all(patch(good, 12, 1), K, ctx), "ReservedBitsSet", "reserved")
    expect_error(lambda: stream_all(patch(good, 12, 1)[:20], K, ctx), "Truncated",
                 "reserved set but header short (row 5 before row 6)")
    expect_error(lambda: stream_all(good, K2, ctx), "WrongKey", "wrong key",
                 expected=cr.key_id(K))
    expect_error(lambda: stream_all(good, {}, ctx), "WrongKey", "no key for the ID",
                 expected=cr.key_id(K))
    expect_error(lambda: stream_all(good, K[:31], ctx), "InvalidKeyLength", "short key")
    expect_error(lambda: stream_all(good, K, ctx + b"x"), "CommitmentMismatch", "wrong ctx")
    expect_error(lambda: stream_all(patch(good, 9, 2), K, ctx), "CommitmentMismatch",
                 "suite byte changed")
    expect_error(lambda: stream_all(flip(good, 40), K, ctx), "CommitmentMismatch", "salt")
    expect_error(lambda: stream_all(flip(good, 60), K, ctx), "CommitmentMismatch", "commitment")
    expect_error(lambda: stream_all(flip(good, 88 + 16400 + 5), K, ctx), "CorruptedChunk",
                 "chunk 1 body", index=1)
    expect_error(lambda: ra_all(flip(good, 88 + 16400 + 5), K, ctx), "CorruptedChunk",
                 "RA chunk 1 body", index=1)
    expect_error(lambda: stream_all(good + b"x" * 20, K, ctx), "CorruptedChunk",
                 "trailing 20 bytes", index=2)
    expect_error(lambda: stream_all(good + b"x" * 5, K, ctx), "CorruptedChunk",
                 "trailing 5 bytes (final chunk grows)", index=2)
    expect_error(lambda: stream_all(good[:88 + 16400 * 2], K, ctx), "Truncated",
                 "final chunk missing")
    expect_error(lambda: ra_all(good[:88 + 16400 * 2], K, ctx), "Truncated",
                 "RA final chunk missing")
    expect_error(lambda: stream_all(good[:88 + 16400 * 2 + 15], K, ctx), "Truncated",
                 "final chunk shorter than a tag")

    # partial release and stickiness
    st = cr.open_sealed_stream(io.BytesIO(flip(good, 88 + 16400 * 2 + 3)), K, ctx)
    first = next(st)
    check(first == pt[:16384], "chunk 0 released")
    check(next(st) == pt[16384:32768], "chunk 1 released")
    for _ in range(3):
        expect_error(lambda: next(st), "CorruptedChunk", "sticky error", index=2)
    check(not st.complete, "no clean end after an error")

    # random-access length authentication after a corrupted middle chunk
    bad = flip(good, 88 + 100)
    ra = cr.open_sealed_stream_random_access(io.BytesIO(bad), K, ctx)
    check(ra.authenticate_length() == 40000, "length authenticates despite chunk 0 corrupted")
    expect_error(lambda: ra.open_chunk(0), "CorruptedChunk", "RA chunk 0", index=0)
    # input shorter than measured earlier
    buf = io.BytesIO(good)
    ra = cr.open_sealed_stream_random_access(buf, K, ctx)
    buf.truncate(len(good) - 1)
    expect_error(lambda: ra.authenticate_length(), "Truncated", "input shrank")

    # key-wrap envelope (6.3)
    W = os.urandom(32)
    kek = os.urandom(32)
    env = key_envelope(kek, W, 1, 7, ctx, suite=2)
    check(len(env) == 152, "key envelope size")
    out = cr.unwrap_key_envelope(env, kek, "RepositoryKey", ctx)
    check(out.wrapped_key == W and out.key_version == 7 and out.suite == 2
          and out.kek_id == cr.key_id(kek), "key envelope round trip")
    check(cr.key_envelope_kek_id(env) == cr.key_id(kek), "KEK ID peek")
    unwrap = cr.unwrap_key_envelope
    expect_error(lambda: unwrap(env[:7], kek, 1, ctx), "Truncated", "K: 7 bytes")
    expect_error(lambda: unwrap(b"COFFER/S" + env[8:], kek, 1, ctx), "BadMagic", "K: magic")
    expect_error(lambda: unwrap(patch(env, 8, 0), kek, 1, ctx), "UnsupportedVersion", "K: version")
    expect_error(lambda: unwrap(patch(env, 9, 9)[:40], kek, 1, ctx), "UnsupportedSuite",
                 "K: suite before length")
    expect_error(lambda: unwrap(env[:151], kek, 1, ctx), "Truncated", "K: 151 bytes")
    expect_error(lambda: unwrap(env + b"\0", kek, 1, ctx), "TrailingData", "K: 153 bytes")
    expect_error(lambda: unwrap(patch(env, 10, 4) + b"\0", kek, 1, ctx), "TrailingData",
                 "K: length before purpose")
    expect_error(lambda: unwrap(patch(env, 10, 4), kek, 1, ctx), "UnsupportedPurpose",
                 "K: purpose 4", purpose=4)
    expect_error(lambda: unwrap(patch(env, 10, 0), kek, 1, ctx), "UnsupportedPurpose",
                 "K: purpose 0", purpose=0)
    expect_error(lambda: unwrap(patch(env, 11, 1), kek, 1, ctx), "ReservedBitsSet", "K: reserved")
    expect_error(lambda: unwrap(env, K, 1, ctx), "WrongKey", "K: wrong KEK",
                 expected=cr.key_id(kek))
    expect_error(lambda: unwrap(env, kek[:16], 1, ctx), "InvalidKeyLength", "K: short KEK")
    expect_error(lambda: unwrap(env, kek, 1, b""), "CommitmentMismatch", "K: ctx")
    expect_error(lambda: unwrap(flip(env, 13), kek, 1, ctx), "CommitmentMismatch", "K: version")
    expect_error(lambda: unwrap(flip(env, 40), kek, 1, ctx), "CommitmentMismatch", "K: W id")
    expect_error(lambda: unwrap(flip(env, 110), kek, 1, ctx), "CorruptedChunk", "K: body", index=0)
    expect_error(lambda: unwrap(flip(env, 150), kek, 1, ctx), "CorruptedChunk", "K: tag", index=0)
    lying = key_envelope(kek, W, 1, 7, ctx, header_w_id=bytes(16))
    expect_error(lambda: unwrap(lying, kek, 1, ctx), "KeyIdMismatch", "K: wrapped key ID")
    expect_error(lambda: unwrap(env, kek, "MasterKey", ctx), "WrongPurpose", "K: purpose",
                 expected=3, found=1)

    # passphrase envelope (7.3)
    pw = "correct horse".encode()
    penv = passphrase_envelope(pw, W, 3, 2, ctx)
    check(len(penv) == 168, "passphrase envelope size")
    out = cr.unwrap_passphrase_envelope(penv, pw, "MasterKey", ctx)
    check(out.wrapped_key == W and out.key_version == 2 and out.suite == 2
          and out.argon2["memoryKib"] == 8192, "passphrase envelope round trip")
    up = cr.unwrap_passphrase_envelope
    expect_error(lambda: up(penv[:167], pw, 3, ctx), "Truncated", "P: 167 bytes")
    expect_error(lambda: up(penv + b"\0", pw, 3, ctx), "TrailingData", "P: 169 bytes")
    expect_error(lambda: up(patch(penv, 10, 7), pw, 3, ctx), "UnsupportedPurpose", "P: purpose",
                 purpose=7)
    expect_error(lambda: up(patch(penv, 11, 1), pw, 3, ctx), "ReservedBitsSet", "P: byte 11")
    expect_error(lambda: up(patch(penv, 31, 1), pw, 3, ctx), "ReservedBitsSet", "P: bytes 28..32")

    def params(m, t, p):
        b = bytearray(penv)
        b[16:28] = m.to_bytes(4, "big") + t.to_bytes(4, "big") + p.to_bytes(4, "big")
        return bytes(b)

    for m, t, p in ((8191, 1, 1), (1048577, 1, 1), (8192, 0, 1), (8192, 17, 1), (8192, 1, 0),
                    (8192, 1, 5), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)):
        expect_error(lambda: up(params(m, t, p), pw, 3, ctx), "ParameterOutOfBounds",
                     f"P: params {m},{t},{p}")
    expect_error(lambda: up(penv, b"wrong", 3, ctx), "WrongPassphrase", "P: passphrase")
    expect_error(lambda: up(penv, pw, 3, b""), "WrongPassphrase", "P: ctx")
    expect_error(lambda: up(flip(penv, 35), pw, 3, ctx), "WrongPassphrase", "P: argon2 salt")
    expect_error(lambda: up(params(8193, 1, 1), pw, 3, ctx), "WrongPassphrase", "P: memory")
    expect_error(lambda: up(flip(penv, 125), pw, 3, ctx), "CorruptedChunk", "P: body", index=0)
    lying = passphrase_envelope(pw, W, 3, 2, ctx, header_w_id=bytes(16))
    expect_error(lambda: up(lying, pw, 3, ctx), "KeyIdMismatch", "P: wrapped key ID")
    expect_error(lambda: up(penv, pw, "ProfileKey", ctx), "WrongPurpose", "P: purpose",
                 expected=2, found=3)

    # ---- format v2: the keyed chunker (FORMAT.md 12-14) ----
    w = cr.writer_secret(bytes(range(32)))
    c, tk = cr.chunker_keys(w)
    table = cr.chunker_table(tk)
    check(len(set(table)) == 256 and all(0 <= x < 1 << 128 for x in table), "V2: table")
    # rolling (13.2) equals the definition, for windows across random data
    data = os.urandom(300)
    h = cr.window_hash(table, data[0:64])
    for i in range(64, 300):
        h = (cr._rotl128(h, 1) ^ table[data[i]] ^ cr._rotl128(table[data[i - 64]], 64))
        if h != cr.window_hash(table, data[i - 63:i + 1]):
            check(False, f"V2: rolling hash at {i}")
            break
    else:
        check(True, "V2: rolling hash")
    check(cr.chunk_cuts(b"", w, 64, 4, 200) == [], "V2: empty input, no chunk")
    for n in (1, 64, 100):
        check(cr.chunk_cuts(os.urandom(n), w, 100, 4, 200) == [n], f"V2: {n} bytes, one chunk")
    data = os.urandom(20000)
    for mn, mb, mx in ((64, 1, 65), (100, 3, 400), (256, 8, 1024)):
        cuts = cr.chunk_cuts(data, w, mn, mb, mx)
        lens = [b - a for a, b in zip([0] + cuts, cuts)]
        check(cuts[-1] == len(data) and all(mn <= x <= mx for x in lens[:-1])
              and 0 < lens[-1] <= mx, f"V2: chunk lengths under {mn},{mb},{mx}")
        # a chunk's end depends only on where it started and its own bytes (13.4)
        check(cr.chunk_cuts(data[cuts[0]:], w, mn, mb, mx) == [x - cuts[0] for x in cuts[1:]],
              f"V2: cuts after the first chunk under {mn},{mb},{mx}")
    for mn, mb, mx, name in ((63, 4, 200, "min_size"), (64, 0, 200, "mask_bits"),
                             (64, 32, 200, "mask_bits"), (64, 4, 64, "max_size"),
                             (64, 4, (1 << 26) + 1, "max_size"), (0, 0, 0, "min_size")):
        expect_error(lambda: cr.chunk_cuts(b"x", w, mn, mb, mx), "ParameterOutOfBounds",
                     f"V2: params {mn},{mb},{mx}", parameter=name)
    key = cr.chunk_id_key(w)
    check(cr.chunk_id(key, b"a") != cr.chunk_id(key, b"b") and len(cr.chunk_id(key, b"")) == 32,
          "V2: chunk IDs")
    expect_error(lambda: cr.writer_secret(bytes(31)), "InvalidKeyLength", "V2: master key length")

    repo_checks()
    selfbackup_checks()

    print(f"selftest: {COUNT - len(FAILS)} passed, {len(FAILS)} failed")
    for f in FAILS:
        print("   ", f)
    return 1 if FAILS else 0


# --------------------------------------------------------------------------
# Format v2 repositories (coffer_repo.py; FORMAT.md 15-19), no repository needed
# --------------------------------------------------------------------------

EXAMPLE_TREE = (  # FORMAT.md 18.5, its two lines
    "0201096e6f7465732e7478740003001111111111111111111111111111111111111111111111111111111111111111e8070180200022222222222222222222222222222222222222222222222222222222222222"  # noqa: E501
    "22ac02a403e8076405616c69636505757365727380c49fd50c959aef3a0100828008811001942a0108757365722e7461670178"  # noqa: E501
)

# RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base
RFC9180_A21 = {
    "ikmE": "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b",
    "pkEm": "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
    "skEm": "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600",
    "ikmR": "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df",
    "pkRm": "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
    "skRm": "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
    "enc": "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
    "shared_secret": "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7",
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "key": "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91",
    "base_nonce": "5c4d98150661b848853b547f",
    "aad": "436f756e742d30",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "ct": "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db"
          "21993c62ce81883d2dd1b51a28",
}


def expect_repo_error(fn, what):
    global COUNT
    COUNT += 1
    try:
        fn()
    except cr_repo.RepoError:
        return
    except Exception as e:  # noqa: BLE001
        FAILS.append(f"{what}: expected RepoError, got {type(e).__name__}: {e}")
        return
    FAILS.append(f"{what}: expected RepoError, no error")


def check_padme():
    for L, want in ((0, 0), (1, 1), (2, 2), (3, 3), (9, 10), (100, 104), (1000, 1024),
                    ((1 << 24) + 1, (1 << 24) + (1 << 19))):
        check(cr_repo.padme(L) == want, f"Padme({L}) = {want}")
    ok = all(L <= cr_repo.padme(L) <= L * 1.12 and cr_repo.padme(cr_repo.padme(L))
             == cr_repo.padme(L) for L in range(2, 70000, 7))
    check(ok, "Padme: at most 12% more, and a fixed point")


def check_rfc9180():
    v = {k: bytes.fromhex(x) for k, x in RFC9180_A21.items()}
    check(cr_repo.derive_key_pair(v["ikmR"]) == (v["skRm"], v["pkRm"]), "RFC 9180: DeriveKeyPair R")
    check(cr_repo.derive_key_pair(v["ikmE"]) == (v["skEm"], v["pkEm"]), "RFC 9180: DeriveKeyPair E")
    ss = cr_repo.kem_decap(v["enc"], v["skRm"])
    check(ss == v["shared_secret"], "RFC 9180: Decap")
    check(cr_repo.key_schedule_base(ss, v["info"]) == (v["key"], v["base_nonce"]),
          "RFC 9180: KeySchedule")
    check(cr_repo.hpke_open_base(v["skRm"], v["enc"], v["info"], v["aad"], v["ct"]) == v["pt"],
          "RFC 9180: Open, sequence 0")
    try:  # an independent HPKE, when the cryptography package has one
        from cryptography.hazmat.primitives import hpke
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    except ImportError:
        return
    sk = os.urandom(32)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    sealed = suite.encrypt(b"k" * 32, X25519PrivateKey.from_private_bytes(sk).public_key(),
                           info=b"ctx")
    check(cr_repo.hpke_open_base(sk, sealed[:32], b"ctx", b"", sealed[32:]) == b"k" * 32,
          "HPKE: opens what cryptography's HPKE sealed")


def check_example_tree():
    blob = bytes.fromhex(EXAMPLE_TREE)
    check(len(blob) == 135, "18.5: 135 bytes")
    nodes = cr_repo.decode_tree(blob)
    n = nodes[0]
    check(len(nodes) == 1 and n.name == b"notes.txt" and n.kind == "file", "18.5: one file")
    check(n.content == [("data", b"\x11" * 32, 1000), ("hole", 4096), ("data", b"\x22" * 32, 300)],
          "18.5: three pieces")
    check((n.mode, n.uid, n.gid, n.user, n.group) == (0o644, 1000, 100, "alice", "users"),
          "18.5: mode and owner")
    check((n.mtime, n.mtime_ns, n.ctime, n.ctime_ns) == (1700000000, 123456789, -1, 0),
          "18.5: times")
    check((n.inode, n.dev, n.nlink, n.size) == (131074, 2049, 1, 5396), "18.5: inode to size")
    check(n.xattrs == [(b"user.tag", b"x")], "18.5: xattr")
    check(cr_repo.encode_tree(nodes) == blob, "18.5: re-encodes to the same bytes")


def check_tree_rules():
    good = cr_repo.decode_tree(bytes.fromhex(EXAMPLE_TREE))[0]

    def tree_of(*nodes):
        return cr_repo.encode_tree(list(nodes))

    def variant(**kw):
        n = cr_repo.Node(**{**good.__dict__, **kw})
        return tree_of(n)

    blob = bytes.fromhex(EXAMPLE_TREE)
    dt = cr_repo.decode_tree
    expect_repo_error(lambda: dt(b"\x03" + blob[1:]), "18.3 rule 2: version 3")
    expect_repo_error(lambda: dt(b"\x02\x81\x80\x80\x02"), "18.3 rule 3: 4194305 nodes")
    expect_repo_error(lambda: dt(blob + b"\x00"), "18.3 rule 4: trailing byte")
    expect_repo_error(lambda: dt(blob[:-1]), "18.3 rule 4: truncated")
    expect_repo_error(lambda: dt(b"\x02\x81\x00"), "18.3 rule 7: overlong node count")
    for name in (b"", b".", b"..", b"a/b", b"a\x00", b"x" * 4097):
        expect_repo_error(lambda: dt(variant(name=name)), f"18.3: name {name[:8]!r}")
    expect_repo_error(lambda: dt(variant(mode=0o10000)), "18.3: mode above 7777")
    expect_repo_error(lambda: dt(variant(mtime_ns=10**9)), "18.3: mtime_ns")
    expect_repo_error(lambda: dt(variant(ctime_ns=10**9)), "18.3: ctime_ns")
    expect_repo_error(lambda: dt(variant(size=5397)), "18.3: pieces do not add up")
    expect_repo_error(lambda: dt(variant(kind="fifo", content=None)), "18.3: fifo with a size")
    expect_repo_error(lambda: dt(variant(kind="symlink", content=None, size=0, target=b"")),
                      "18.3: empty symlink target")
    expect_repo_error(lambda: dt(variant(xattrs=[(b"user.b", b""), (b"user.a", b"")])),
                      "18.3: xattrs out of order")
    expect_repo_error(lambda: dt(variant(xattrs=[(b"user.a", b"x" * 65537)])),
                      "18.3: xattr value too long")
    a = cr_repo.Node(**{**good.__dict__, "name": b"a"})
    b = cr_repo.Node(**{**good.__dict__, "name": b"ab"})
    check(len(dt(tree_of(a, b))) == 2, "18.3: a before ab (a proper prefix first)")
    expect_repo_error(lambda: dt(tree_of(b, a)), "18.3 rule 6: names out of order")
    expect_repo_error(lambda: dt(tree_of(a, a)), "18.3 rule 6: duplicate names")
    r = cr_repo.PostcardReader(b"\xff\xff\xff\xff\x10", "u32")
    expect_repo_error(r.u32, "18.1: a u32 varint above 2^32 - 1")
    r = cr_repo.PostcardReader(b"\xff\xff\xff\xff\x0f", "u32")
    check(r.u32() == (1 << 32) - 1, "18.1: u32 maximum")


def check_pack_and_object():
    """A pack plaintext (16) in a recipient-sealed object (15), made by a test-only writer."""
    from cryptography.hazmat.primitives import hpke
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    id_key = os.urandom(32)
    blobs = [os.urandom(100), bytes(5000)]
    body, entries = b"", []
    for i, raw in enumerate(blobs):
        stored, comp = raw, 0
        if i == 1:
            import zstandard
            stored, comp = zstandard.ZstdCompressor().compress(raw), 1
        entries.append(cr_repo.TocEntry(cr.chunk_id(id_key, raw), i, comp, len(body),
                                        len(stored), len(raw)))
        body += stored
    toc = len(entries).to_bytes(4, "little") + b"".join(e.encode() for e in entries)
    unpadded = len(body) + len(toc) + 16
    pad = bytes(cr_repo.padme(unpadded) - unpadded)
    trailer = len(body).to_bytes(8, "little") + len(toc).to_bytes(4, "little") + b"CPK2"
    pt = body + toc + pad + trailer
    sk, repo_id, name = os.urandom(32), os.urandom(16), "data/ab/" + "ab" * 16
    head16 = b"COFFER/H\x02\x01" + bytes(6)
    ctx = cr_repo.object_context(head16, repo_id, name)
    object_key = os.urandom(32)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    sealed = suite.encrypt(object_key, X25519PrivateKey.from_private_bytes(sk).public_key(),
                           info=ctx)
    obj = head16 + sealed + seal_stream(object_key, ctx, 2, pt)
    ra = cr_repo.open_recipient_object(io.BytesIO(obj), sk, repo_id, name, 1)
    toc_read = cr_repo.read_pack_toc(ra, name)
    check(toc_read == entries, "16: table of contents read back")
    check([cr_repo.blob_plaintext(ra, e, id_key, name) for e in toc_read] == blobs,
          "16: blobs read back, zstd included")
    expect_repo_error(lambda: cr_repo.blob_plaintext(ra, entries[0], os.urandom(32), name),
                      "14: a blob whose chunk ID does not match")
    expect_repo_error(lambda: cr_repo.open_recipient_object(io.BytesIO(obj), sk, repo_id,
                                                            name + "0", 1),
                      "15: another object name")
    expect_repo_error(lambda: cr_repo.open_recipient_object(io.BytesIO(obj), sk, repo_id, name, 2),
                      "15: another kind")
    expect_repo_error(lambda: cr_repo.open_recipient_object(io.BytesIO(flip(obj, 60)), sk,
                                                            repo_id, name, 1),
                      "15: damaged object key")
    expect_repo_error(lambda: cr_repo.decompress_blob(b"\x28\xb5\x2f\xfd" + bytes(8), 10, "z"),
                      "16: not a zstd frame")


def repo_checks():
    check_padme()
    check_rfc9180()
    check_example_tree()
    check_tree_rules()
    check_pack_and_object()


# --------------------------------------------------------------------------
# Recovery kits and server self-backups (coffer_selfbackup.py; FORMAT.md 25-26)
# --------------------------------------------------------------------------


def expect_kit_error(text, condition, what):
    expect_condition(lambda: cr_sb.parse_recovery_kit(text), cr_sb.RecoveryKitError,
                     condition, what)


def expect_condition(fn, cls, condition, what):
    global COUNT
    COUNT += 1
    try:
        fn()
    except cls as e:
        if e.condition != condition:
            FAILS.append(f"{what}: expected {condition}, got {e.condition}: {e}")
        elif not str(e):
            FAILS.append(f"{what}: {condition} without a message")
        return
    except Exception as e:  # noqa: BLE001
        FAILS.append(f"{what}: expected {cls.__name__} {condition}, got {type(e).__name__}: {e}")
        return
    FAILS.append(f"{what}: expected {condition}, no error")


def attempt(fn):
    """fn()'s result, or the exception it raised (so a check fails instead of the run)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


def check_recovery_kits():
    def parse(text):
        return attempt(lambda: cr_sb.parse_recovery_kit(text))

    for _ in range(20):
        k = os.urandom(32)
        text = cr_sb.recovery_kit(k)
        check(parse(text.encode()) == k, "25: kit round trip")
    k = bytes(range(32))
    text = cr_sb.recovery_kit(k)
    lines = text.splitlines()
    check(len(lines) == 4 and lines[0] == "COFFER RECOVERY KIT v1"
          and lines[1] == "Key ID: 8586aca7724c3a33929a0345934cc605"
          and all(len(x) == 34 and len(x.split(" ")) == 7 for x in lines[2:]),
          "25: kit layout (title, key ID, two lines of seven groups of four)")
    body = (lines[2] + lines[3]).replace(" ", "")
    check(body == base64.b32encode(k + hashlib.sha256(b"coffer recovery kit v1\x00" + k)
                                   .digest()[:3]).decode(), "25: kit body is base32(R || c)")

    # what a reader tolerates
    messy = ("\r\n  \r\n  coffer Recovery KIT V1  \r\n\r\n\tKEY id:  "
             + cr.key_id(k).hex().upper() + " \r\n"
             + lines[2].lower().replace(" ", "-") + "\r\n\n   "
             + "\t".join(lines[3].split(" ")) + "   \r\n\r\n")
    check(parse(messy.encode()) == k, "25: blank lines, CRLF, case, -, tabs, upper-case key ID")
    check(parse("\n".join([lines[0], lines[2], lines[3]]).encode()) == k,
          "25: no Key ID line")
    check(parse("\n".join([lines[0], lines[2], lines[3], lines[1]]).encode()) == k,
          "25: the Key ID line after the key")
    # confusables: a key whose text holds O, I and B, typed as 0, 1 and 8
    while True:
        kc = os.urandom(32)
        tc = cr_sb.recovery_kit(kc)
        bodyc = "\n".join(tc.splitlines()[2:])
        if all(c in bodyc for c in "OIB"):
            break
    typed = tc.splitlines()[0] + "\n" + bodyc.replace("O", "0").replace("I", "1").replace("B", "8")
    check(parse(typed.encode()) == kc, "25: 0, 1, 8 read as O, I, B")

    # refusals, in the order of 25
    expect_kit_error(b"", "NoTitle", "25: empty")
    expect_kit_error(b"\n \n\t\n", "NoTitle", "25: only blank lines")
    expect_kit_error("\n".join(lines[1:]).encode(), "BadTitle", "25: no title")
    expect_kit_error(("COFFER RECOVERY KIT v2\n" + "\n".join(lines[1:])).encode(), "BadTitle",
                     "25: another title")
    expect_kit_error(("COFFER RECOVERY \u212aIT v1\n" + "\n".join(lines[1:])).encode(),
                     "BadTitle", "25: a KELVIN SIGN is not K (ASCII case only)")
    expect_kit_error(("COFFER  RECOVERY KIT v1\n" + "\n".join(lines[1:])).encode(), "BadTitle",
                     "25: two spaces in the title")
    expect_kit_error(b"\xff" + text.encode(), "NotText", "25: not UTF-8")
    for bad in ("9", "=", "_", "\u00c9", "\u00a0", "/"):
        t = text.replace(lines[3], lines[3][:5] + bad + lines[3][6:])
        expect_kit_error(t.encode(), "BadCharacter", f"25: character {bad!r}")
    expect_kit_error(text.replace(lines[3], lines[3][:-1]).encode(), "BadLength", "25: 55 chars")
    expect_kit_error(text.replace(lines[3], lines[3] + "A").encode(), "BadLength", "25: 57 chars")
    expect_kit_error(("\n".join(lines[:3]) + "\n").encode(), "BadLength", "25: one line missing")
    last = lines[3][-1]
    swapped = "A" if last != "A" else "B"
    expect_kit_error(text.replace(lines[3], lines[3][:-1] + swapped).encode(), "BadChecksum",
                     "25: last character changed (checksum bits)")
    first = lines[2][0]
    expect_kit_error(text.replace(lines[2], ("Q" if first != "Q" else "R") + lines[2][1:])
                     .encode(), "BadChecksum", "25: first character changed (key bits)")
    wrong_id = cr.key_id(bytes(32)).hex()
    expect_kit_error(text.replace(lines[1], "Key ID: " + wrong_id).encode(), "KeyIdMismatch",
                     "25: a Key ID line for another key")
    expect_kit_error(text.replace(lines[1], lines[1][:-1]).encode(), "BadKeyIdLine",
                     "25: a key ID of 31 digits")
    expect_kit_error(text.replace(lines[1], lines[1][:-1] + "g").encode(), "BadKeyIdLine",
                     "25: a key ID with a non-hex digit")
    expect_kit_error(text.replace(lines[1], lines[1] + "\n" + lines[1]).encode(), "BadKeyIdLine",
                     "25: two Key ID lines")
    # order: character before count, count before checksum, checksum before key ID
    expect_kit_error(text.replace(lines[3], "9").encode(), "BadCharacter",
                     "25: a bad character and a short count: the character")
    expect_kit_error(text.replace(lines[1], "Key ID: " + wrong_id).replace(lines[3], lines[3][:-1])
                     .encode(), "BadLength", "25: short and another key ID: the count")
    expect_kit_error(text.replace(lines[1], "Key ID: " + wrong_id)
                     .replace(lines[3], lines[3][:-1] + swapped).encode(), "BadChecksum",
                     "25: bad checksum and another key ID: the checksum")
    expect_error(lambda: cr_sb.recovery_kit(bytes(31)), "InvalidKeyLength", "25: 31-byte key")


# A minimal TEST-ONLY self-backup writer (FORMAT.md 26). HPKE seal comes from the
# cryptography package (base mode, single shot), independent of coffer_repo's open.

SB_PASSPHRASE = b"correct horse battery staple"


def sb_metadata(entries, **override):
    meta = {
        "format": 1,
        "server_version": "0.0.0-test",
        "schema_version": 5,
        "created_at": "2025-01-02T03:04:05Z",
        "reason": "manual",
        "counts": {"tenants": 1, "agents": 2, "jobs": 3, "runs": 4, "restore_points": 5},
        "database": {"size": len(entries["database.sqlite"]),
                     "sha256": hashlib.sha256(entries["database.sqlite"]).hexdigest()},
        "config_sha256": hashlib.sha256(entries["config.json"]).hexdigest(),
        "kek_id": cr.key_id(entries["kek"]).hex(),
    }
    meta.update(override)
    return json.dumps(meta).encode()


def sb_entries(db_len=40000, **meta_override):
    """The four entries of 26.3, in order, as a list of (name, content)."""
    e = {"kek": os.urandom(32), "config.json": b'{"listen": "127.0.0.1:8080"}',
         "database.sqlite": b"SQLite format 3\x00" + os.urandom(db_len - 16)}
    return [("metadata.json", sb_metadata(e, **meta_override)), ("kek", e["kek"]),
            ("config.json", e["config.json"]), ("database.sqlite", e["database.sqlite"])]


def sb_payload(entries):
    return b"".join(len(n.encode()).to_bytes(2, "big") + n.encode()
                    + len(c).to_bytes(8, "big") + c for n, c in entries)


def sb_write(R, entries=None, passphrase=None, payload=None, magic=b"COFFER/B", version=1,
             flags=None, reserved=bytes(6), pk=None, suite=1, envelope=None, backup_key=None):
    from cryptography.hazmat.primitives import hpke
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    if payload is None:
        payload = sb_payload(sb_entries() if entries is None else entries)
    if envelope is None and passphrase is not None:
        envelope = passphrase_envelope(passphrase, R, 3, 1,
                                       b"coffer-server/v1 self-backup recovery-key")
    if flags is None:
        flags = 1 if envelope is not None else 0
    if pk is None:
        pk = cr_sb.recovery_key_pair(R)[1]
    header = magic + bytes([version, flags]) + reserved + cr.key_id(R) + pk
    ctx = b"coffer-server/v1 self-backup" + header
    B = os.urandom(32) if backup_key is None else backup_key
    suite_h = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    sealed = suite_h.encrypt(B, X25519PublicKey.from_public_bytes(pk), info=ctx)
    assert len(sealed) == 80
    return header + (envelope or b"") + sealed + seal_stream(B, ctx, suite, payload)


def expect_sb_error(data, condition, what, kit=None, passphrase=None):
    if kit is None and passphrase is None:
        kit = SB_R
    expect_condition(lambda: cr_sb.open_self_backup(data, kit_key=kit, passphrase=passphrase),
                     cr_sb.SelfBackupError, condition, what)


SB_R = os.urandom(32)


def check_self_backups():
    R, R2 = SB_R, os.urandom(32)
    entries = sb_entries()
    plain = sb_write(R, entries)
    withpw = sb_write(R, entries, passphrase=SB_PASSPHRASE)
    check(len(withpw) == len(plain) + 168, "26.2: the envelope adds 168 bytes")
    check(len(plain) == 64 + 80 + 88 + len(sb_payload(entries))
          + 16 * (len(sb_payload(entries)) // 16384 + 1), "26.2: the size of a self-backup")
    want = dict(entries)
    for data, how, kw in ((plain, "kit, no envelope", {"kit_key": R}),
                          (withpw, "kit, envelope present", {"kit_key": R}),
                          (withpw, "passphrase", {"passphrase": SB_PASSPHRASE})):
        try:
            out = cr_sb.open_self_backup(data, **kw)
        except Exception as e:  # noqa: BLE001
            check(False, f"26: opens ({how}): {type(e).__name__}: {e}")
            continue
        check(out["entries"] == want and list(out["entries"]) == list(want),
              f"26: gives back its entries ({how})")
        check(out["metadata"] == json.loads(want["metadata.json"])
              and out["recovery_key_id"] == cr.key_id(R)
              and out["has_passphrase_envelope"] == (data is withpw),
              f"26: metadata and recovery key ID ({how})")
    kit_text = cr_sb.recovery_kit(R).encode()
    out = attempt(lambda: cr_sb.open_self_backup(
        plain, kit_key=cr_sb.parse_recovery_kit(kit_text)))
    check(isinstance(out, dict) and out["entries"] == want,
          f"26: opens with the key read back from its kit ({type(out).__name__})")
    small = sb_entries(db_len=16)
    out = attempt(lambda: cr_sb.open_self_backup(sb_write(R, small), kit_key=R))
    check(isinstance(out, dict) and out["entries"] == dict(small), "26: a one-chunk payload")
    out = attempt(lambda: cr_sb.open_self_backup(sb_write(R, sb_entries(future_field={"x": 1})),
                                                 kit_key=R))
    check(isinstance(out, dict) and out["metadata"]["future_field"] == {"x": 1},
          "26.4: unknown fields are ignored")
    out = attempt(lambda: cr_sb.open_self_backup(sb_write(R, sb_entries(
        created_at="2025-01-02T03:04:05.123456789+00:00")), kit_key=R))
    check(isinstance(out, dict), "26.4: created_at with a fraction and +00:00")

    # header, in the order of 26.2
    for cut in (0, 7, 8, 9, 10, 16, 63):
        expect_sb_error(plain[:cut], "Truncated", f"26.2: cut at {cut}")
    expect_sb_error(b"COFFER/S" + plain[8:], "BadMagic", "26.2: magic COFFER/S")
    expect_sb_error(b"COFFER/b", "BadMagic", "26.2: 8 bytes, bad magic")
    expect_sb_error(patch(plain, 8, 2), "UnsupportedVersion", "26.2: version 2")
    expect_sb_error(patch(plain, 8, 0), "UnsupportedVersion", "26.2: version 0")
    for bit in range(1, 8):
        expect_sb_error(patch(plain, 9, 1 << bit), "ReservedBitsSet", f"26.2: flag bit {bit}")
    for off in range(10, 16):
        expect_sb_error(patch(plain, off, 0x80), "ReservedBitsSet", f"26.2: reserved byte {off}")
    expect_sb_error(patch(patch(plain, 0, 0), 8, 2), "BadMagic", "26.2: magic before version")
    expect_sb_error(patch(patch(plain, 8, 2), 9, 2), "UnsupportedVersion",
                    "26.2: version before flags")
    expect_sb_error(patch(plain, 12, 1), "ReservedBitsSet", "26.2: reserved before the key",
                    kit=R2)
    # the recovery key, then pk
    expect_sb_error(plain, "AnotherRecoveryKey", "26.2: another recovery key", kit=R2)
    expect_sb_error(flip(plain, 20), "AnotherRecoveryKey", "26.2: header key ID altered")
    pk2 = cr_sb.recovery_key_pair(R2)[1]
    expect_sb_error(sb_write(R, pk=pk2), "PublicKeyMismatch", "26.2: a pk that R does not derive")
    expect_sb_error(flip(plain, 40), "PublicKeyMismatch", "26.2: pk altered")
    expect_sb_error(flip(sb_write(R, pk=pk2), 20), "AnotherRecoveryKey",
                    "26.2: the key ID before pk")
    expect_condition(lambda: cr_sb.open_self_backup(plain, kit_key=R[:31]),
                     cr_sb.SelfBackupError, "InvalidKeyLength", "26: a 31-byte recovery key")
    # B (bytes 64..144 without an envelope)
    for off, part in ((64, "enc"), (64 + 40, "encrypted B"), (64 + 75, "its tag")):
        expect_sb_error(flip(plain, off), "Damaged", f"26.2: sealed key, {part} flipped")
    expect_sb_error(flip(withpw, 232 + 40), "Damaged", "26.2: sealed key after the envelope")
    expect_sb_error(plain[:64 + 79], "Truncated", "26.2: cut inside the sealed key")
    expect_sb_error(patch(plain, 8 + 1, 1)[:64 + 168 + 10], "Truncated",
                    "26.2: flag bit 0 set, cut after the envelope, opened with the kit")
    # the stream
    s0 = 64 + 80
    expect_sb_error(plain[:s0], "Truncated", "26.2: no stream")
    expect_sb_error(plain[:s0 + 87], "Truncated", "26.2: stream cut in its preamble")
    expect_sb_error(patch(plain, s0, ord("X")), "BadMagic", "26.2: stream magic")
    expect_sb_error(flip(plain, s0 + 20), "WrongKey", "26.2: stream key ID altered")
    expect_sb_error(flip(plain, s0 + 40), "CommitmentMismatch", "26.2: stream salt flipped")
    expect_sb_error(flip(plain, s0 + 88 + 5), "CorruptedChunk", "26.2: chunk 0 flipped")
    expect_sb_error(flip(plain, len(plain) - 3), "CorruptedChunk", "26.2: final chunk flipped")
    expect_sb_error(plain + b"\x00", "CorruptedChunk", "26.2: a byte after the stream")
    expect_sb_error(plain[:s0 + 88 + 16400], "Truncated", "26.2: final chunk missing")
    expect_sb_error(sb_write(R, entries, suite=2), "SuiteNotAes256Gcm", "26.2: a ChaCha20 stream")
    # the passphrase envelope
    expect_sb_error(withpw, "WrongPassphrase", "26.2: wrong passphrase", passphrase=b"wrong")
    expect_sb_error(withpw, "WrongPassphrase", "26.2: the passphrase with a newline",
                    passphrase=SB_PASSPHRASE + b"\n")
    expect_sb_error(plain, "NoPassphraseEnvelope", "26.2: a passphrase for a file without one",
                    passphrase=SB_PASSPHRASE)
    expect_sb_error(withpw[:64 + 167], "Truncated", "26.2: cut inside the envelope",
                    passphrase=SB_PASSPHRASE)
    expect_sb_error(flip(withpw, 64 + 130), "CorruptedChunk", "26.2: envelope body flipped",
                    passphrase=SB_PASSPHRASE)
    expect_sb_error(flip(withpw, 64 + 1), "BadMagic", "26.2: envelope magic",
                    passphrase=SB_PASSPHRASE)
    other = passphrase_envelope(SB_PASSPHRASE, R2, 3, 1,
                                b"coffer-server/v1 self-backup recovery-key")
    expect_sb_error(sb_write(R, entries, envelope=other), "AnotherRecoveryKey",
                    "26.2: an envelope of another recovery key", passphrase=SB_PASSPHRASE)
    for env, cond, why in (
            (passphrase_envelope(SB_PASSPHRASE, R, 1, 1,
                                 b"coffer-server/v1 self-backup recovery-key"),
             "WrongPurpose", "purpose RepositoryKey"),
            (passphrase_envelope(SB_PASSPHRASE, R, 3, 1, b"coffer-server/v1 self-backup"),
             "WrongPassphrase", "another caller context"),
            (passphrase_envelope(SB_PASSPHRASE, R, 3, 2,
                                 b"coffer-server/v1 self-backup recovery-key"),
             "MalformedEnvelope", "key version 2")):
        expect_sb_error(sb_write(R, entries, envelope=env), cond, f"26.1: envelope, {why}",
                        passphrase=SB_PASSPHRASE)

    # the payload (26.3)
    pl = sb_payload(entries)
    for cut, where in ((1, "name length"), (5, "name"), (2 + 13 + 3, "content length"),
                       (2 + 13 + 8 + 5, "content"), (len(pl) - 1, "the last content")):
        expect_sb_error(sb_write(R, payload=pl[:cut]), "MalformedPayload",
                        f"26.3: payload ending inside {where}")
    expect_sb_error(sb_write(R, payload=pl + b"\x00"), "MalformedPayload",
                    "26.3: one byte after the last entry")
    expect_sb_error(sb_write(R, entries + [entries[1]]), "MalformedPayload",
                    "26.3: kek given twice")
    expect_sb_error(sb_write(R, [entries[0], entries[0]] + entries[1:]), "MalformedPayload",
                    "26.3: metadata.json given twice")
    expect_sb_error(sb_write(R, entries[:3]), "MalformedPayload", "26.3: database missing")
    expect_sb_error(sb_write(R, entries + [("notes", b"x")]), "MalformedPayload",
                    "26.3: an unknown entry")
    expect_sb_error(sb_write(R, [entries[1], entries[0]] + entries[2:]), "MalformedPayload",
                    "26.3: entries out of order")
    expect_sb_error(sb_write(R, [entries[0], ("kek\xff", b"")] + entries[1:]),
                    "MalformedPayload", "26.3: an unknown name")
    bad_name = b"\x00\x02\xff\xfe" + bytes(8)
    expect_sb_error(sb_write(R, payload=bad_name + pl), "MalformedPayload",
                    "26.3: a name that is not UTF-8")
    short_kek = sb_entries()
    short_kek[1] = ("kek", short_kek[1][1][:31])
    expect_sb_error(sb_write(R, short_kek), "MalformedPayload", "26.3: a 31-byte kek")
    # the metadata record (26.4) against the entries
    e = sb_entries()
    db = e[3][1]

    def with_meta(**override):
        m = json.loads(e[0][1])
        m.update(override)
        return sb_write(R, [("metadata.json", json.dumps(m).encode())] + e[1:])

    expect_sb_error(with_meta(database={"size": len(db), "sha256": hashlib.sha256(b"x")
                                        .hexdigest()}),
                    "MetadataMismatch", "26.3: a wrong database SHA-256")
    expect_sb_error(with_meta(database={"size": len(db) + 1,
                                        "sha256": hashlib.sha256(db).hexdigest()}),
                    "MetadataMismatch", "26.3: a wrong database length")
    expect_sb_error(with_meta(config_sha256=hashlib.sha256(b"{}").hexdigest()),
                    "MetadataMismatch", "26.4: a wrong config SHA-256")
    expect_sb_error(with_meta(kek_id=cr.key_id(bytes(32)).hex()), "MetadataMismatch",
                    "26.4: a wrong kek_id")
    for field, value in (("format", 2), ("format", "1"), ("format", 1.0), ("format", True),
                         ("schema_version", -1), ("server_version", 1),
                         ("created_at", "2025-01-02 03:04:05"),
                         ("created_at", "2025-01-02T03:04:05+01:00"),
                         ("created_at", "2025-02-30T03:04:05Z"), ("reason", "weekly"),
                         ("counts", {"tenants": 1}), ("counts", []),
                         ("database", {"size": len(db)}),
                         ("config_sha256", "AB" * 32), ("kek_id", "0" * 31)):
        expect_sb_error(with_meta(**{field: value}), "MalformedMetadata",
                        f"26.4: {field} = {value!r}")
    m = json.loads(e[0][1])
    missing = {k: v for k, v in m.items() if k != "reason"}
    expect_sb_error(sb_write(R, [("metadata.json", json.dumps(missing).encode())] + e[1:]),
                    "MalformedMetadata", "26.4: reason missing")
    dup = e[0][1][:-1] + b', "format": 1}'
    expect_sb_error(sb_write(R, [("metadata.json", dup)] + e[1:]), "MalformedMetadata",
                    "26.4: a field given twice")
    for raw, why in ((b"[1]", "an array"), (b"{", "not JSON"), (b"\xff{}", "not UTF-8"),
                     (e[0][1][:-1] + b', "x": NaN}', "NaN")):
        expect_sb_error(sb_write(R, [("metadata.json", raw)] + e[1:]), "MalformedMetadata",
                        f"26.4: metadata {why}")
    cfg = b"not json"
    e2 = [(n, c) for n, c in e]
    e2[2] = ("config.json", cfg)
    m2 = json.loads(e[0][1])
    m2["config_sha256"] = hashlib.sha256(cfg).hexdigest()
    e2[0] = ("metadata.json", json.dumps(m2).encode())
    expect_sb_error(sb_write(R, e2), "MalformedPayload", "26.3: config.json that is not JSON")
    # nothing of a payload is given back unless every chunk verified: a corrupted last
    # chunk of a multi-chunk payload fails the whole call
    check(len(sb_payload(entries)) > 16384, "26: the test payload spans chunks")


def check_selfbackup_cli():
    import contextlib
    import tempfile

    R = SB_R
    entries = sb_entries()
    with tempfile.TemporaryDirectory() as d:
        def path(name):
            return os.path.join(d, name)

        def write(name, content):
            with open(path(name), "wb") as f:
                f.write(content)
            return path(name)

        def run(*argv):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = cr_sb.main(list(argv))
                except SystemExit as e:  # argparse
                    rc = e.code
            return rc, out.getvalue(), err.getvalue()

        backup = write("selfbackup-20250102T030405Z-manual-0a1b2c3d.cfsb",
                       sb_write(R, entries, passphrase=SB_PASSPHRASE))
        kit = write("kit.txt", cr_sb.recovery_kit(R).encode())
        pw = write("pw", SB_PASSPHRASE + b"\n")
        rc, out, err = run(backup, "--kit-file", kit)
        check(rc == 0 and "reason:          manual" in out
              and cr.key_id(entries[1][1]).hex() in out, f"CLI: kit, metadata printed ({err})")
        rc, out, err = run(backup, "--passphrase-file", pw, "--json")
        check(rc == 0 and json.loads(out) == json.loads(entries[0][1]),
              f"CLI: passphrase file (newline dropped), --json ({err})")
        db_out = path("restored.sqlite")
        rc, out, err = run(backup, "--kit-file", kit, "--extract-db", db_out)
        with open(db_out, "rb") as f:
            check(rc == 0 and f.read() == entries[3][1], f"CLI: --extract-db ({err})")
        check(os.stat(db_out).st_mode & 0o777 == 0o600, "CLI: the database is written 0600")
        rc, out, err = run(backup, "--kit-file", kit, "--extract-db", db_out)
        with open(db_out, "rb") as f:
            check(rc != 0 and "exists" in err and f.read() == entries[3][1],
                  "CLI: --extract-db refuses to overwrite")
        bad = write("bad.cfsb", flip(sb_write(R, entries), 64 + 40))
        fresh = path("fresh.sqlite")
        rc, out, err = run(bad, "--kit-file", kit, "--extract-db", fresh)
        check(rc != 0 and "damaged" in err and out == "" and not os.path.exists(fresh),
              "CLI: a damaged file, an error on stderr, nothing written")
        other_kit = write("kit2.txt", cr_sb.recovery_kit(os.urandom(32)).encode())
        rc, out, err = run(backup, "--kit-file", other_kit)
        check(rc != 0 and "recovery key" in err, "CLI: another recovery key")
        bad_kit = write("kit3.txt", b"COFFER RECOVERY KIT v1\nAAAA\n")
        rc, out, err = run(backup, "--kit-file", bad_kit)
        check(rc != 0 and "recovery kit" in err, "CLI: a malformed kit")
        rc, out, err = run(backup, "--kit-file", kit, "--passphrase-file", pw)
        check(rc not in (0, None), "CLI: the kit and a passphrase together are refused")
        rc, out, err = run(path("missing.cfsb"), "--kit-file", kit)
        check(rc != 0 and "missing.cfsb" in err, "CLI: a missing file")


def selfbackup_checks():
    check_recovery_kits()
    check_self_backups()
    check_selfbackup_cli()


if __name__ == "__main__":
    sys.exit(main())
