#!/usr/bin/env python3
"""Sanity checks of coffer_reader against FORMAT.md's worked examples (section 8)
and against a minimal test-only writer written from FORMAT.md sections 4-7.

Usage: python3 test-vectors/python/selftest.py   (exits non-zero on failure)

The writer here exists only to produce inputs for the reader's error paths; it
is not a supported implementation.
"""

from __future__ import annotations

import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffer_reader as cr  # noqa: E402
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

    print(f"selftest: {COUNT - len(FAILS)} passed, {len(FAILS)} failed")
    for f in FAILS:
        print("   ", f)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
