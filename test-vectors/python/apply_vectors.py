#!/usr/bin/env python3
"""Apply every vector file under a test-vectors directory to coffer_reader and coffer_repo.

Usage: python3 test-vectors/python/apply_vectors.py [test-vectors-dir] [--allow-missing] [-v]

Prints, per file, the tests passed and failed, then a total. Then lists and restores
the small repository in repository/ with ``coffer_repo.py`` (run as a program) and
compares what it restores with that folder's README. Exits non-zero if any test or
check fails, if a vector file yields zero tests, or (unless --allow-missing) if one of
Coffer's own vector files or the repository is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
import types
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffer_reader as cr  # noqa: E402
import coffer_repo as cr_repo  # noqa: E402
from coffer_reader import CofferError  # noqa: E402
from coffer_repo import RepoError  # noqa: E402

from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

COFFER_FILES = [
    "coffer_stream_aes_256_gcm_test.json",
    "coffer_stream_chacha20_poly1305_test.json",
    "coffer_key_envelope_test.json",
    "coffer_passphrase_envelope_test.json",
    "coffer_chunker_test.json",
    "coffer_repository_test.json",
]
REPOSITORY_DIR = "repository"

# Messages up to this size are kept in memory to cross-check random byte ranges.
KEEP_PLAINTEXT_LIMIT = 8 << 20


# --------------------------------------------------------------------------
# Input sources
# --------------------------------------------------------------------------


class ZlibSource:
    """A read-only file-like view of zlib-compressed data, decompressed lazily.

    Forward reads decompress incrementally with bounded buffers; a backward seek
    restarts decompression; seek(0, 2) measures the size with one pass (cached).
    """

    IN_STEP = 1 << 16

    def __init__(self, compressed: bytes, size_cache: dict | None = None):
        self._comp = memoryview(compressed)
        self._size_cache = {} if size_cache is None else size_cache
        self._size = self._size_cache.get("size")
        self._restart()

    def _restart(self):
        self._d = zlib.decompressobj()
        self._in_pos = 0
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _produce(self, max_len: int) -> bytes:
        d = self._d
        while True:
            if d.unconsumed_tail:
                out = d.decompress(d.unconsumed_tail, max_len)
            elif self._in_pos < len(self._comp) and not d.eof:
                piece = self._comp[self._in_pos:self._in_pos + self.IN_STEP]
                self._in_pos += len(piece)
                out = d.decompress(piece, max_len)
            else:
                out = d.flush()
                if not d.eof:
                    raise ValueError("vector data: truncated zlib stream")
                self._eof = True
                return out
            if out:
                return out

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._buf:
                if n < 0:
                    take = self._buf
                else:
                    take = self._buf[:n - len(out)]
                out += take
                self._buf = self._buf[len(take):]
                continue
            if self._eof:
                break
            want = 1 << 16 if n < 0 else max(n - len(out), 1)
            self._buf = self._produce(min(want, 1 << 20))
        self._pos += len(out)
        return bytes(out)

    def _skip(self, count: int):
        while count > 0:
            got = self.read(min(count, 1 << 20))
            if not got:
                break
            count -= len(got)

    def size(self) -> int:
        if self._size is None:
            pos = self._pos
            self._restart()
            self._skip(1 << 62)
            self._size = self._size_cache["size"] = self._pos
            self._restart()
            self._skip(pos)
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            target = offset
        elif whence == 1:
            target = self._pos + offset
        elif whence == 2:
            target = self.size() + offset
        else:
            raise ValueError("whence")
        if target < 0:
            raise ValueError("negative seek")
        if target < self._pos:
            self._restart()
        self._skip(target - self._pos)
        return self._pos


def source_factory(t: dict, compressed_key: str):
    """Return a function making a fresh file-like object over the test's ciphertext."""
    if compressed_key in t:
        comp = bytes.fromhex(t[compressed_key])
        cache = {}  # the decompressed size, measured once
        return lambda: ZlibSource(comp, cache)
    raw = bytes.fromhex(t["ct"])
    return lambda: io.BytesIO(raw)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def describe(e) -> str:
    if e is None:
        return "no error"
    if isinstance(e, CofferError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def error_mismatch(t: dict, e) -> str | None:
    """Compare a raised error with the vector's error / errorChunk / expectedKeyId."""
    want = t["error"]
    if not isinstance(e, CofferError):
        return f"expected {want}, got {describe(e)}"
    if e.name != want:
        return f"expected {want}, got {describe(e)}"
    if want == "CorruptedChunk" and "errorChunk" in t and e.index != t["errorChunk"]:
        return f"expected CorruptedChunk{{index: {t['errorChunk']}}}, got {describe(e)}"
    if want == "WrongKey" and "expectedKeyId" in t and e.expected.hex() != t["expectedKeyId"]:
        return f"expected WrongKey{{expected: {t['expectedKeyId']}}}, got {describe(e)}"
    return None


class StreamRun:
    """The outcome of opening and draining a stream with a streaming opener."""

    def __init__(self, open_fn, keep_limit: int = KEEP_PLAINTEXT_LIMIT):
        self.hasher = hashlib.sha512()
        self.length = 0
        self.error = None
        self.open_error = None  # raised by the opener itself (header/commitment)
        self.clean = False
        self.sticky_problem = None
        self.plaintext = bytearray()
        self.keep = True
        try:
            stream = open_fn()
        except Exception as e:  # noqa: BLE001 - report whatever it is
            self.error = self.open_error = e
            return
        try:
            for chunk in stream:
                self.hasher.update(chunk)
                self.length += len(chunk)
                if self.keep:
                    if self.length <= keep_limit:
                        self.plaintext += chunk
                    else:
                        self.keep = False
                        self.plaintext = None
            self.clean = True
        except Exception as e:  # noqa: BLE001
            self.error = e
        # the stream must keep failing (same error) or keep reporting its clean end
        for _ in range(2):
            try:
                again = stream.read_chunk()
                if self.error is not None:
                    self.sticky_problem = "a call after the error did not raise"
                elif again is not None:
                    self.sticky_problem = "a call after the clean end returned data"
            except Exception as e:  # noqa: BLE001
                if self.error is None:
                    self.sticky_problem = f"a call after the clean end raised {describe(e)}"
                elif not (isinstance(e, CofferError) and isinstance(self.error, CofferError)
                          and e.same_as(self.error)):
                    self.sticky_problem = (f"a later call raised {describe(e)} instead of "
                                           f"{describe(self.error)}")
        if self.error is None and not stream.complete:
            self.sticky_problem = "clean end without complete flag"

    def digest(self) -> str:
        return self.hasher.hexdigest()


class RandomAccessRun:
    """The outcome of the random-access opener: open, length check, sequential read."""

    def __init__(self, open_fn):
        self.open_error = None
        self.length_error = None
        self.length = None
        self.read_error = None
        self.hasher = hashlib.sha512()
        self.read_length = 0
        self.ra = None
        self.first_error = None  # first error of open + sequential read (no length check)
        try:
            self.ra = open_fn()
        except Exception as e:  # noqa: BLE001
            self.open_error = self.first_error = self.length_error = e
            return
        try:
            for chunk in self.ra.iter_chunks():
                self.hasher.update(chunk)
                self.read_length += len(chunk)
        except Exception as e:  # noqa: BLE001
            self.read_error = self.first_error = e
        # length authentication on a fresh opener (nothing verified before)
        try:
            ra2 = open_fn()
            self.length = ra2.authenticate_length()
            if not ra2.length_authenticated:
                self.length_error = RuntimeError("length_authenticated not set")
        except Exception as e:  # noqa: BLE001
            self.length_error = e

    def digest(self) -> str:
        return self.hasher.hexdigest()


def range_checks(ra, plaintext: bytes) -> list:
    """Compare a few byte ranges read by random access with the streamed plaintext."""
    fails = []
    n = len(plaintext)
    ranges = {(0, 0), (0, min(n, 1)), (0, n), (max(n - 1, 0), min(n, 1))}
    for a in (16380, 16384, 32760, 2 * 16384 - 1):
        if a < n:
            ranges.add((a, min(20, n - a)))
    if n > 3:
        ranges.add((n // 3, n // 3))
    for off, ln in sorted(ranges):
        try:
            got = ra.read(off, ln)
        except Exception as e:  # noqa: BLE001
            fails.append(f"random-access read({off}, {ln}) raised {describe(e)}")
            continue
        if got != bytes(plaintext[off:off + ln]):
            fails.append(f"random-access read({off}, {ln}) returned other bytes")
    return fails


# --------------------------------------------------------------------------
# Wycheproof C2SP chunked encryption (Cobblestone)
# --------------------------------------------------------------------------


def check_c2sp(group: dict, t: dict) -> list:
    fails = []
    suite = group["aead"]
    key = bytes.fromhex(t["key"])
    ctx = bytes.fromhex(t["ctx"])
    flags = set(t["flags"])
    valid = t["result"] == "valid"
    make = source_factory({"ctCompressed": t["ct"]}, "ctCompressed")

    # derived AEAD key and base nonce
    if "aeadKey" in t or "baseNonce" in t:
        salt = make().read(24)
        ak, bn, _ = cr.derive_message_keys(key, salt, ctx, suite)
        if ak.hex() != t.get("aeadKey"):
            fails.append("aeadKey differs from the derivation")
        if bn.hex() != t.get("baseNonce"):
            fails.append("baseNonce differs from the derivation")

    # streaming
    run = StreamRun(lambda: cr.open_chunked_stream(make(), key, ctx, suite))
    if run.sticky_problem:
        fails.append("streaming: " + run.sticky_problem)
    if valid:
        if run.error is not None or not run.clean:
            fails.append(f"streaming: valid message rejected: {describe(run.error)}")
        elif run.length != t["msgLength"] or run.digest() != t["msgSha512"]:
            fails.append("streaming: plaintext differs (length or SHA-512)")
    else:
        if run.error is None:
            fails.append("streaming: invalid message accepted")
        elif not isinstance(run.error, CofferError):
            fails.append(f"streaming: raised a non-Coffer error {describe(run.error)}")
        if "PartialPlaintext" in flags:
            if run.length != t["msgLength"] or run.digest() != t["msgSha512"]:
                fails.append(f"streaming: released prefix ({run.length} bytes) is not the "
                             f"PartialPlaintext prefix ({t['msgLength']} bytes)")
        elif run.length != 0:
            fails.append(f"streaming: released {run.length} bytes of an invalid message")
        if "HeaderFailure" in flags and run.open_error is None:
            fails.append("streaming: HeaderFailure vector not rejected by the opener itself")
        if "InvalidKeySize" in flags and getattr(run.error, "name", None) != "InvalidKeyLength":
            fails.append(f"streaming: wrong key size gave {describe(run.error)}")

    # random access
    rar = RandomAccessRun(lambda: cr.open_chunked_random_access(make(), key, ctx, suite))
    fails += random_access_verdict(t, rar, run, valid, flags, expect_name=False)
    if "HeaderFailure" in flags and rar.open_error is None:
        fails.append("random access: HeaderFailure vector not rejected by the opener")
    return fails


def random_access_verdict(t, rar, run, valid, flags, expect_name) -> list:
    fails = []
    if valid:
        if rar.open_error is not None or rar.read_error is not None:
            fails.append(f"random access: valid message rejected: {describe(rar.first_error)}")
        elif rar.read_length != t["msgLength"] or rar.digest() != t["msgSha512"]:
            fails.append("random access: plaintext differs (length or SHA-512)")
        if rar.length_error is not None:
            fails.append("random access: length authentication failed: "
                         + describe(rar.length_error))
        elif rar.length != t["msgLength"]:
            fails.append(f"random access: authenticated length {rar.length} != {t['msgLength']}")
        if rar.ra is not None and run.plaintext is not None and run.clean:
            fails += range_checks(rar.ra, run.plaintext)
    else:
        if rar.first_error is None:
            fails.append("random access: reading every chunk of an invalid message succeeded")
        elif not isinstance(rar.first_error, CofferError):
            fails.append(f"random access: raised a non-Coffer error {describe(rar.first_error)}")
        elif expect_name:
            m = error_mismatch(t, rar.first_error)
            if m:
                fails.append("random access (sequential read): " + m)
        if "ValidFinalChunk" in flags:
            if rar.length_error is not None:
                fails.append(f"random access: ValidFinalChunk but length authentication failed: "
                             f"{describe(rar.length_error)}")
        elif rar.length_error is None:
            fails.append("random access: length authentication succeeded on an invalid message "
                         "without ValidFinalChunk")
    return fails


# --------------------------------------------------------------------------
# Coffer sealed streams
# --------------------------------------------------------------------------


def check_coffer_stream(group: dict, t: dict) -> list:
    fails = []
    key = bytes.fromhex(t["key"])
    ctx = bytes.fromhex(t["ctx"])
    flags = set(t["flags"])
    valid = t["result"] == "valid"
    make = source_factory(t, "ctCompressed")

    if "keyId" in t and len(key) == 32 and cr.key_id(key).hex() != t["keyId"]:
        fails.append(f"keyId: computed {cr.key_id(key).hex()}, vector {t['keyId']}")

    run = StreamRun(lambda: cr.open_sealed_stream(make(), key, ctx))
    if run.sticky_problem:
        fails.append("streaming: " + run.sticky_problem)
    if valid:
        if run.error is not None or not run.clean:
            fails.append(f"streaming: valid stream rejected: {describe(run.error)}")
        else:
            if run.length != t["msgLength"] or run.digest() != t["msgSha512"]:
                fails.append("streaming: plaintext differs (length or SHA-512)")
            if "msg" in t and run.plaintext is not None and bytes(run.plaintext).hex() != t["msg"]:
                fails.append("streaming: plaintext differs from msg")
            if run.plaintext is not None and run.clean is True:
                pass
        # the suite byte of the header should match the group's suite
        try:
            s = cr.open_sealed_stream(make(), key, ctx)
            if s.suite != group.get("suite", s.suite):
                fails.append(f"suite {s.suite} != group suite {group.get('suite')}")
        except Exception as e:  # noqa: BLE001
            fails.append(f"reopen failed: {describe(e)}")
    else:
        if run.error is None:
            fails.append("streaming: invalid stream accepted")
        else:
            m = error_mismatch(t, run.error)
            if m:
                fails.append("streaming: " + m)
        if "PartialPlaintext" in flags:
            if run.length != t.get("msgLength") or run.digest() != t.get("msgSha512"):
                fails.append(f"streaming: released prefix ({run.length} bytes) is not the "
                             f"PartialPlaintext prefix ({t.get('msgLength')} bytes)")
            if "msg" in t and run.plaintext is not None and bytes(run.plaintext).hex() != t["msg"]:
                fails.append("streaming: released prefix differs from msg")
        elif run.length != 0:
            fails.append(f"streaming: released {run.length} bytes of an invalid stream")

    rar = RandomAccessRun(lambda: cr.open_sealed_stream_random_access(make(), key, ctx))
    fails += random_access_verdict(t, rar, run, valid, flags, expect_name=True)
    return fails


# --------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------


def _envelope_common(t: dict, call) -> tuple:
    try:
        return call(), None
    except Exception as e:  # noqa: BLE001
        return None, e


def check_key_envelope(group: dict, t: dict) -> list:
    fails = []
    kek = bytes.fromhex(t["kek"])
    ctx = bytes.fromhex(t["ctx"])
    env = bytes.fromhex(t["envelope"])
    out, err = _envelope_common(t, lambda: cr.unwrap_key_envelope(env, kek, t["purpose"], ctx))
    # the same through a file-like object
    out2, err2 = _envelope_common(
        t, lambda: cr.unwrap_key_envelope(io.BytesIO(env), kek, t["purpose"], ctx))
    if (out != out2) or (describe(err) != describe(err2)):
        fails.append("file-like and bytes inputs disagree")
    if t["result"] == "valid":
        if err is not None:
            return fails + [f"valid envelope rejected: {describe(err)}"]
        fails += compare_unwrapped(t, out)
        if "kekId" in t:
            if out.kek_id.hex() != t["kekId"]:
                fails.append(f"kekId: header {out.kek_id.hex()}, vector {t['kekId']}")
            if len(kek) == 32 and cr.key_id(kek).hex() != t["kekId"]:
                fails.append("kekId is not key_id(kek)")
    else:
        if err is None:
            fails.append("invalid envelope accepted")
        else:
            m = error_mismatch(t, err)
            if m:
                fails.append(m)
    return fails


def compare_unwrapped(t: dict, out) -> list:
    fails = []
    if "wrappedKey" in t and out.wrapped_key.hex() != t["wrappedKey"]:
        fails.append("wrappedKey differs")
    if "wrappedKeyId" in t:
        if out.wrapped_key_id.hex() != t["wrappedKeyId"]:
            fails.append("wrappedKeyId differs from the header")
        if cr.key_id(out.wrapped_key).hex() != t["wrappedKeyId"]:
            fails.append("wrappedKeyId is not key_id(wrappedKey)")
    if "keyVersion" in t and out.key_version != t["keyVersion"]:
        fails.append(f"keyVersion {out.key_version} != {t['keyVersion']}")
    if "suite" in t and out.suite != t["suite"]:
        fails.append(f"suite {out.suite} != {t['suite']}")
    if out.purpose_name != t["purpose"]:
        fails.append(f"purpose {out.purpose_name} != {t['purpose']}")
    return fails


def check_passphrase_envelope(group: dict, t: dict) -> list:
    fails = []
    pw = bytes.fromhex(t["passphrase"])
    ctx = bytes.fromhex(t["ctx"])
    env = bytes.fromhex(t["envelope"])
    out, err = _envelope_common(
        t, lambda: cr.unwrap_passphrase_envelope(env, pw, t["purpose"], ctx))
    if t["result"] == "valid":
        if err is not None:
            return [f"valid envelope rejected: {describe(err)}"]
        fails += compare_unwrapped(t, out)
        if "argon2" in t:
            for k in ("memoryKib", "passes", "lanes"):
                if out.argon2[k] != t["argon2"].get(k):
                    fails.append(f"argon2 {k} {out.argon2[k]} != {t['argon2'].get(k)}")
    else:
        if err is None:
            fails.append("invalid envelope accepted")
        else:
            m = error_mismatch(t, err)
            if m:
                fails.append(m)
    return fails


# --------------------------------------------------------------------------
# Format v2: chunker keys, cut points and chunk IDs (FORMAT.md 12-14)
# --------------------------------------------------------------------------


def check_chunker_keys(group: dict, t: dict) -> list:
    fails = []
    master = bytes.fromhex(t["masterKey"])
    w = cr.writer_secret(master)
    c, tk = cr.chunker_keys(w)
    for name, got in (("writerSecret", w), ("chunkerCipherKey", c),
                      ("chunkerTableKey", tk), ("chunkIdKey", cr.chunk_id_key(w))):
        if got.hex() != t[name]:
            fails.append(f"{name}: computed {got.hex()}, vector {t[name]}")
    table = cr.chunker_table(tk)
    table_bytes = b"".join(x.to_bytes(16, "little") for x in table)
    if [table_bytes[16 * b:16 * b + 16].hex() for b in range(len(t["tableHead"]))] \
            != t["tableHead"]:
        fails.append("tableHead differs")
    if hashlib.sha256(table_bytes).hexdigest() != t["tableSha256"]:
        fails.append("tableSha256 differs")
    enc = Cipher(algorithms.AES(c), modes.ECB()).encryptor()
    for i, win in enumerate(t["windows"]):
        h = cr.window_hash(table, bytes.fromhex(win["window"]))
        d = (h >> 63).to_bytes(16, "little")
        for name, got in (("hash", h.to_bytes(16, "little")), ("digestBlock", d),
                          ("cipherBlock", enc.update(d))):
            if got.hex() != win[name]:
                fails.append(f"window {i}: {name} differs")
    return fails


def chunker_input(t: dict) -> bytes:
    """msg, or msgLength bytes of SHA-256(msgSeed || u64le(i)), i = 0, 1, ..., or of msgFill."""
    if "msg" in t:
        return bytes.fromhex(t["msg"])
    n = t["msgLength"]
    if "msgSeed" in t:
        seed = bytes.fromhex(t["msgSeed"])
        out = bytearray()
        i = 0
        while len(out) < n:
            out += hashlib.sha256(seed + i.to_bytes(8, "little")).digest()
            i += 1
        return bytes(out[:n])
    return bytes([t["msgFill"]]) * n


def check_chunker(group: dict, t: dict) -> list:
    w = bytes.fromhex(t["writerSecret"])
    params = (t["minSize"], t["maskBits"], t["maxSize"])
    try:
        cr.check_chunker_params(*params)
    except CofferError as e:
        if t["result"] == "valid":
            return [f"valid parameters refused: {describe(e)}"]
        m = error_mismatch(t, e)
        if m:
            return [m]
        if e.parameter != t.get("errorParameter"):
            return [f"expected {t.get('errorParameter')} named, got {describe(e)}"]
        # chunk_cuts must refuse them too, before reading the input
        try:
            cr.chunk_cuts(b"", w, *params)
        except CofferError as e2:
            if not e2.same_as(e):
                return [f"chunk_cuts raised {describe(e2)}"]
            return []
        return ["chunk_cuts accepted parameters out of bounds"]
    if t["result"] != "valid":
        return ["parameters out of bounds accepted"]
    data = chunker_input(t)
    cuts = cr.chunk_cuts(data, w, *params)
    if cuts != t["cuts"]:
        return [f"cuts {cuts[:8]}..., vector {t['cuts'][:8]}..."]
    key = cr.chunk_id_key(w)
    ids = []
    start = 0
    for end in cuts:
        ids.append(cr.chunk_id(key, data[start:end]).hex())
        start = end
    if ids != t["chunkIds"]:
        return ["chunkIds differ"]
    return []


# --------------------------------------------------------------------------
# Format v2 repository objects (FORMAT.md 12-21), with coffer_repo
# --------------------------------------------------------------------------

# FORMAT.md's error table: a Part II test naming one of these expects that condition.
CORE_ERRORS = {"Truncated", "TrailingData", "BadMagic", "UnsupportedVersion",
               "UnsupportedSuite", "UnsupportedPurpose", "ReservedBitsSet", "WrongKey",
               "CommitmentMismatch", "WrongPassphrase", "CorruptedChunk", "KeyIdMismatch",
               "WrongPurpose", "ParameterOutOfBounds", "StreamTooLong", "InvalidKeyLength"}


def repo_outcome(t: dict, run, valid, core_names: bool = True) -> list:
    """Run ``run()``; compare with the test: ``valid(result)`` returns a valid test's
    differences. An invalid test must raise; when its ``error`` is a condition of
    FORMAT.md's table (and ``core_names``), a CofferError of that name and fields.
    Other names are the reference's (RepoFormat, Recipient, a tree rule): any
    RepoError or CofferError refuses the input. ``acceptable`` tests may go either way."""
    try:
        result, err = run(), None
    except (RepoError, CofferError) as e:
        result, err = None, e
    except Exception as e:  # noqa: BLE001 - a crash is a failure, reported
        return [f"raised {type(e).__name__}: {e}"]
    if t["result"] == "acceptable":
        return []
    if t["result"] == "valid":
        if err is not None:
            return [f"valid test refused: {describe(err)}"]
        return valid(result)
    if err is None:
        return ["invalid test accepted"]
    if core_names and t.get("error") in CORE_ERRORS:
        m = error_mismatch(t, err)
        return [m] if m else []
    return []


def _h(t: dict, name: str) -> bytes:
    return bytes.fromhex(t[name])


def _differs(pairs) -> list:
    return [f"{name} differs" for name, got, want in pairs if got != want]


def check_repo_keys(group: dict, t: dict) -> list:
    def run():
        if "masterKey" in t:
            k = _h(t, "masterKey")
            keys = cr_repo.RepoKeys(master_key=k)
            ikm = cr.hkdf_expand_sha512(k, b"coffer/v2 x25519", 32)
            return keys, ikm
        return cr_repo.RepoKeys(writer=_h(t, "writerSecret")), None

    def valid(out):
        keys, ikm = out
        pairs = [("chunkIdKey", keys.chunk_id_key, _h(t, "chunkIdKey")),
                 ("indexKey", keys.index_key, _h(t, "indexKey")),
                 ("configKey", keys.config_key, _h(t, "configKey")),
                 ("cacheKey", keys.cache_key, _h(t, "cacheKey"))]
        if "masterKey" in t:
            pairs += [("writerSecret", keys.writer, _h(t, "writerSecret")),
                      ("recipientIkm", ikm, _h(t, "recipientIkm")),
                      ("recipientPrivateKey", keys.private_key, _h(t, "recipientPrivateKey")),
                      ("recipientPublicKey", keys.public_key, _h(t, "recipientPublicKey"))]
        elif keys.full or keys.private_key is not None:
            return ["a write-only key has a private key"]
        return _differs(pairs)

    return repo_outcome(t, run, valid)


def check_recipient_object(group: dict, t: dict) -> list:
    data = _h(t, "object")
    repo_id, name, kind = _h(t, "repositoryId"), t["name"], t["kind"]

    def run():
        keys = cr_repo.RepoKeys(master_key=_h(t, "masterKey"))
        ra = cr_repo.open_recipient_object(io.BytesIO(data), keys.private_key, repo_id, name,
                                           kind)
        plain = b"".join(ra.iter_chunks())  # every chunk, the final one included
        ctx = cr_repo.object_context(data[0:16], repo_id, name)
        key = cr_repo.hpke_open_base(keys.private_key, data[16:48], ctx, b"", data[48:96])
        return plain, key

    return repo_outcome(t, run, lambda out: _differs([
        ("msg", out[0], _h(t, "msg")), ("objectKey", out[1], _h(t, "objectKey"))]))


def check_symmetric_object(group: dict, t: dict) -> list:
    data = _h(t, "object")
    return repo_outcome(
        t,
        lambda: cr_repo.open_symmetric_object(data, _h(t, "key"), t["label"].encode("ascii"),
                                              _h(t, "repositoryId"), t["name"], len(data)),
        lambda plain: _differs([("msg", plain, _h(t, "msg"))]))


class PlainPack:
    """A pack's plaintext given whole, read through coffer_repo's pack functions as an
    opened pack object would be (its length already authenticated)."""

    def __init__(self, plain: bytes):
        self.plain = plain

    def authenticate_length(self) -> int:
        return len(self.plain)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > len(self.plain):
            raise RepoError(f"read({offset}, {length}) outside the plaintext")
        return self.plain[offset:offset + length]


def _entry_json(e) -> dict:
    return {"id": e.id.hex(), "kind": e.kind, "compression": e.compression,
            "offset": e.offset, "storedLen": e.stored_len, "rawLen": e.raw_len}


def check_pack(group: dict, t: dict) -> list:
    plain = _h(t, "pack")
    key = _h(t, "chunkIdKey")

    def run():
        ra = PlainPack(plain)
        entries = cr_repo.read_pack_toc(ra, "pack")
        return [(e, cr_repo.blob_plaintext(ra, e, key, "pack")) for e in entries]

    def valid(blobs):
        want = t["entries"]
        if len(want) != len(blobs):
            return [f"{len(blobs)} entries, the test says {len(want)}"]
        fails = []
        for (e, raw), w in zip(blobs, want):
            if _entry_json(e) != {k: w[k] for k in _entry_json(e)}:
                fails.append(f"entry {e.id.hex()} differs")
            if raw.hex() != w["msg"]:
                fails.append(f"blob {e.id.hex()} differs")
        toc_offset = int.from_bytes(plain[-16:-8], "little")
        toc_len = int.from_bytes(plain[-8:-4], "little")
        if (toc_offset, toc_len, toc_offset + toc_len + 16) != (
                t["tocOffset"], t["tocLength"], t["unpaddedLength"]):
            fails.append("the table's place differs")
        return fails

    return repo_outcome(t, run, valid)


def check_index(group: dict, t: dict) -> list:
    def valid(idx):
        got = [{"id": pid.hex(), "objectLength": plen,
                "entries": [_entry_json(e) for e in entries]}
               for pid, plen, entries in idx.packs]
        return _differs([("packs", got, t["packs"]),
                         ("supersedes", [s.hex() for s in idx.supersedes], t["supersedes"])])

    return repo_outcome(t, lambda: cr_repo.parse_index(_h(t, "plaintext"), "index"), valid)


PY_KINDS = {"file": "file", "dir": "dir", "symlink": "symlink", "fifo": "fifo",
            "chardev": "charDevice", "blockdev": "blockDevice", "socket": "socket"}


def _node_json(n) -> dict:
    out = {"name": n.name.hex(), "kind": PY_KINDS[n.kind]}
    if n.kind == "file":
        out["content"] = [{"type": "data", "id": p[1].hex(), "len": p[2]} if p[0] == "data"
                          else {"type": "hole", "len": p[1]} for p in n.content]
    elif n.kind == "dir":
        out["subtree"] = n.subtree.hex()
    elif n.kind == "symlink":
        out["target"] = n.target.hex()
    elif n.kind in ("chardev", "blockdev"):
        out["rdev"] = n.rdev
    out.update({"mode": n.mode, "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
                "mtime": n.mtime, "mtimeNs": n.mtime_ns, "ctime": n.ctime,
                "ctimeNs": n.ctime_ns, "inode": n.inode, "dev": n.dev, "nlink": n.nlink,
                "size": n.size,
                "xattrs": [{"name": k.hex(), "value": v.hex()} for k, v in n.xattrs]})
    return out


def _maybe_compressed(t: dict, name: str, compressed: str) -> bytes:
    return zlib.decompress(_h(t, compressed)) if compressed in t else _h(t, name)


def check_tree(group: dict, t: dict) -> list:
    blob = _maybe_compressed(t, "blob", "blobCompressed")
    # Tree rules are named as the reference names them, not FORMAT.md's table.
    return repo_outcome(t, lambda: cr_repo.decode_tree(blob),
                        lambda nodes: _differs([("nodes", [_node_json(n) for n in nodes],
                                                 t["nodes"])]), core_names=False)


def check_snapshot(group: dict, t: dict) -> list:
    plain = _maybe_compressed(t, "plaintext", "plaintextCompressed")

    def valid(s):
        got = {"version": 2, "time": s.time, "timeNs": s.time_ns, "host": s.host,
               "user": s.user, "paths": [p.hex() for p in s.paths], "tags": s.tags,
               "parent": s.parent.hex() if s.parent is not None else None,
               "tree": s.tree.hex(), "program": s.program, "command": s.command,
               "summary": {re.sub(r"_(.)", lambda m: m.group(1).upper(), k): v
                           for k, v in s.summary.items()}}
        return _differs([("snapshot", got, t["snapshot"])])

    return repo_outcome(t, lambda: cr_repo.decode_snapshot(b"", plain, "snapshot"), valid)


def check_config(group: dict, t: dict) -> list:
    def run():
        keys = types.SimpleNamespace(config_key=_h(t, "configKey"), full=False,
                                     public_key=None)
        if "masterKey" in t:  # a full key checks the public key (section 20)
            keys.full, keys.public_key = True, cr_repo.RepoKeys(
                master_key=_h(t, "masterKey")).public_key
        return cr_repo.open_config(_h(t, "config"), keys)

    return repo_outcome(t, run, lambda c: _differs([
        ("repositoryId", c.repo_id.hex(), t["repositoryId"]),
        ("minSize", c.min_size, t["minSize"]), ("maskBits", c.mask_bits, t["maskBits"]),
        ("maxSize", c.max_size, t["maxSize"]), ("publicKey", c.public_key.hex(), t["publicKey"]),
        ("created", c.created, t["created"])]))


def check_key_file(group: dict, t: dict) -> list:
    def run():
        header = cr_repo.parse_key_file(_h(t, "keyFile"), _h(t, "repositoryId"), "keys/vector")
        kek = _h(t, "kek") if "kek" in t else None
        passphrase = _h(t, "passphrase") if "passphrase" in t else None
        return header, cr_repo.unwrap_key_file(header, kek, passphrase)

    def valid(out):
        header, unwrapped = out
        access = "full" if header.access == cr_repo.ACCESS_FULL else "writeOnly"
        return _differs([("access", access, t["access"]),
                         ("wrappedKey", unwrapped.wrapped_key, _h(t, "wrappedKey"))])

    return repo_outcome(t, run, valid)


# --------------------------------------------------------------------------
# The small repository (repository/ and its README), restored by coffer_repo.py
# --------------------------------------------------------------------------


def _unescape(text: str) -> bytes:
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.encode("ascii"))


def parse_repository_readme(text: str) -> tuple:
    """The README's ``coffer_repo.py snapshots`` lines, and its listing rows."""
    block = text.split("`coffer_repo.py snapshots` prints, oldest first:\n\n```\n")[1]
    lines = block.split("```")[0].splitlines()
    rows = []
    for line in text.splitlines():
        if not re.match(r"^\| [0-9]+ \| `", line):
            continue
        cells = line[2:-2].split(" | ")
        secs, ns = cells[4].split(".")
        rows.append({"snapshot": int(cells[0]), "path": _unescape(cells[1].strip("`")),
                     "kind": cells[2], "mode": int(cells[3], 8),
                     "mtime": (int(secs), int(ns)), "size": int(cells[5]),
                     "content": cells[6]})
    return lines, rows


def _walk(base: bytes, folder: bytes, out: list) -> None:
    for entry in os.scandir(folder):
        out.append(os.path.relpath(entry.path, base))
        if entry.is_dir(follow_symlinks=False):
            _walk(base, entry.path, out)


def compare_restore(target: bytes, rows: list) -> list:
    """What was restored under ``target`` against one snapshot's listing rows."""
    fails = []
    found = []
    _walk(target, target, found)
    listed = [r["path"] for r in rows if r["kind"] != "socket"]
    if sorted(found) != sorted(listed):
        return [f"restored {sorted(set(found) ^ set(listed))!r}: not as listed"]
    kinds = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink",
             stat.S_IFIFO: "fifo"}
    for r in rows:
        path = os.path.join(target, r["path"])
        what = os.fsdecode(r["path"])
        if r["kind"] == "socket":
            if os.path.lexists(path):
                fails.append(f"{what}: a socket was restored")
            continue
        st = os.lstat(path)
        if kinds.get(stat.S_IFMT(st.st_mode)) != r["kind"]:
            fails.append(f"{what}: not a {r['kind']}")
            continue
        if r["kind"] != "symlink" and stat.S_IMODE(st.st_mode) != r["mode"]:
            fails.append(f"{what}: mode {stat.S_IMODE(st.st_mode):o}, listed {r['mode']:o}")
        if divmod(st.st_mtime_ns, 10**9) != r["mtime"]:
            fails.append(f"{what}: mtime {st.st_mtime_ns}, listed {r['mtime']}")
        for part in r["content"].split(" "):
            if part.startswith("sha256:"):
                with open(path, "rb") as f:
                    data = f.read()
                if len(data) != r["size"] or hashlib.sha256(data).hexdigest() != part[7:]:
                    fails.append(f"{what}: content differs")
            elif part.startswith("target:"):
                if os.readlink(path) != _unescape(part[7:]):
                    fails.append(f"{what}: link target differs")
            elif part.startswith("link:"):
                other = os.lstat(os.path.join(target, _unescape(part[5:])))
                if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
                    fails.append(f"{what}: not a hard link of {part[5:]}")
    return fails


def check_repository(folder: str) -> tuple:
    """List and restore every snapshot of the repository in ``folder`` with
    ``coffer_repo.py`` (the command line), compare with its README. (checks, failures)"""
    tool = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "coffer_repo.py")]
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        lines, rows = parse_repository_readme(f.read())
    fails = []
    checks = 0

    def run(*args):
        return subprocess.run(tool + list(args), capture_output=True, text=True, check=False)

    for key in (["--kek-file", os.path.join(folder, "kek.hex")],
                ["--passphrase-file", os.path.join(folder, "passphrase.txt")]):
        checks += 1
        out = run("snapshots", "--repo", folder, *key)
        if out.returncode != 0 or out.stdout.splitlines() != lines:
            fails.append(f"snapshots {key[0]}: got {out.stdout!r} {out.stderr!r}")
    checks += 1
    out = run("snapshots", "--repo", folder, "--kek-file",
              os.path.join(folder, "write-only-kek.hex"))
    if out.returncode == 0:
        fails.append("a write-only key listed the snapshots")
    for number, line in enumerate(lines, 1):
        checks += 1
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "restored")
            out = run("restore", "--repo", folder, "--kek-file",
                      os.path.join(folder, "kek.hex"), "--snapshot", line.split()[0],
                      "--target", target)
            if out.returncode != 0:
                fails.append(f"restore of snapshot {number} failed: {out.stderr.strip()}")
                continue
            mine = [r for r in rows if r["snapshot"] == number]
            fails += [f"snapshot {number}: {m}"
                      for m in compare_restore(os.fsencode(target), mine)]
    if not lines or not rows:
        fails.append("the README lists no snapshot or no entry")
    return checks, fails


# --------------------------------------------------------------------------
# Wycheproof primitives the reader builds on (HKDF-Expand-SHA-512, the AEADs)
# --------------------------------------------------------------------------


def check_hkdf(group: dict, t: dict, algorithm: str) -> list:
    if algorithm != "HKDF-SHA-512":
        raise SkipTest
    ikm = bytes.fromhex(t["ikm"])
    salt = bytes.fromhex(t["salt"]) or b"\x00" * 64
    info = bytes.fromhex(t["info"])
    prk = hmac.new(salt, ikm, hashlib.sha512).digest()  # Extract, only for this test
    try:
        okm = cr.hkdf_expand_sha512(prk, info, t["size"])
    except ValueError:
        okm = None
    if t["result"] == "valid":
        return [] if okm is not None and okm.hex() == t["okm"] else ["OKM differs"]
    if t["result"] == "invalid":
        return [] if okm is None else ["invalid size accepted"]
    return []


class SkipTest(Exception):
    pass


def check_aead(group: dict, t: dict, algorithm: str) -> list:
    classes = {"AES-GCM": cr.SUITES[1][1], "CHACHA20-POLY1305": cr.SUITES[2][1]}
    if algorithm not in classes or (group.get("keySize"), group.get("ivSize"),
                                    group.get("tagSize")) != (256, 96, 128):
        raise SkipTest  # parameters no Coffer suite uses
    aead = classes[algorithm](bytes.fromhex(t["key"]))
    try:
        pt = aead.decrypt(bytes.fromhex(t["iv"]), bytes.fromhex(t["ct"] + t["tag"]),
                          bytes.fromhex(t["aad"]))
    except InvalidTag:
        pt = None
    if t["result"] == "valid":
        return [] if pt is not None and pt.hex() == t["msg"] else ["valid AEAD vector rejected"]
    if t["result"] == "invalid":
        return [] if pt is None else ["invalid AEAD vector accepted"]
    return []


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

CHECKERS = {
    "ChunkedEncryption": lambda g, t, alg: check_c2sp(g, t),
    "CofferStream": lambda g, t, alg: check_coffer_stream(g, t),
    "CofferKeyEnvelope": lambda g, t, alg: check_key_envelope(g, t),
    "CofferPassphraseEnvelope": lambda g, t, alg: check_passphrase_envelope(g, t),
    "CofferChunkerKeys": lambda g, t, alg: check_chunker_keys(g, t),
    "CofferChunker": lambda g, t, alg: check_chunker(g, t),
    "CofferRepositoryKeys": lambda g, t, alg: check_repo_keys(g, t),
    "CofferRecipientObject": lambda g, t, alg: check_recipient_object(g, t),
    "CofferSymmetricObject": lambda g, t, alg: check_symmetric_object(g, t),
    "CofferPack": lambda g, t, alg: check_pack(g, t),
    "CofferIndex": lambda g, t, alg: check_index(g, t),
    "CofferTree": lambda g, t, alg: check_tree(g, t),
    "CofferSnapshot": lambda g, t, alg: check_snapshot(g, t),
    "CofferConfig": lambda g, t, alg: check_config(g, t),
    "CofferKeyFile": lambda g, t, alg: check_key_file(g, t),
    "HkdfTest": check_hkdf,
    "AeadTest": check_aead,
}


def apply_file(path: str, verbose: bool) -> tuple:
    with open(path) as fh:
        doc = json.load(fh)
    alg = doc.get("algorithm", "")
    passed = failed = skipped = 0
    messages = []
    seen = 0
    for group in doc["testGroups"]:
        gtype = group.get("type")
        checker = CHECKERS.get(gtype)
        for t in group["tests"]:
            seen += 1
            if checker is None:
                failed += 1
                messages.append(f"tcId {t.get('tcId')}: unsupported group type {gtype!r}")
                continue
            start = time.monotonic()
            try:
                fails = checker(group, t, alg)
            except SkipTest:
                skipped += 1
                continue
            except Exception as e:  # noqa: BLE001 - a crash is a failure, not an abort
                fails = [f"checker crashed: {type(e).__name__}: {e}"]
            took = time.monotonic() - start
            if fails:
                failed += 1
                for f in fails:
                    messages.append(f"tcId {t.get('tcId')} ({t.get('comment', '')}): {f}")
            else:
                passed += 1
            if verbose:
                print(f"    tcId {t.get('tcId')}: {'FAIL' if fails else 'ok'} ({took:.2f}s)",
                      flush=True)
    declared = doc.get("numberOfTests")
    if declared is not None and declared != seen:
        messages.append(f"numberOfTests is {declared} but the file holds {seen} tests")
        failed += 1
    return passed, failed, skipped, messages


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=os.path.dirname(here))
    ap.add_argument("--allow-missing", action="store_true",
                    help="do not fail when one of Coffer's own vector files is absent")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every test")
    args = ap.parse_args(argv)

    files = []
    for root, dirs, names in os.walk(args.dir):
        dirs.sort()
        for name in sorted(names):
            if not name.endswith(".json") or "schema" in name:
                continue
            files.append(os.path.join(root, name))

    ok = True
    total_pass = total_fail = total_skip = 0
    for path in files:
        rel = os.path.relpath(path, args.dir)
        try:
            with open(path) as fh:
                if "testGroups" not in json.load(fh):
                    continue
        except (OSError, ValueError):
            print(f"{rel}: not a readable JSON vector file")
            ok = False
            continue
        start = time.monotonic()
        if args.verbose:
            print(f"{rel}:", flush=True)
        p, f, s, msgs = apply_file(path, args.verbose)
        took = time.monotonic() - start
        extra = f", {s} skipped (parameters Coffer does not use)" if s else ""
        print(f"{rel}: {p} passed, {f} failed{extra} [{took:.1f}s]", flush=True)
        for m in msgs:
            print(f"    {m}")
        if p + f == 0:
            print(f"    no tests applied from {rel}")
            ok = False
        if f:
            ok = False
        total_pass += p
        total_fail += f
        total_skip += s

    present = {os.path.basename(p) for p in files}
    for name in COFFER_FILES:
        if name not in present:
            print(f"{name}: MISSING" + (" (allowed)" if args.allow_missing else ""))
            if not args.allow_missing:
                ok = False

    repository = os.path.join(args.dir, REPOSITORY_DIR)
    if os.path.isfile(os.path.join(repository, "README.md")):
        start = time.monotonic()
        checks, fails = check_repository(repository)
        print(f"{REPOSITORY_DIR}/: {checks - len(fails)} of {checks} checks passed "
              f"(coffer_repo.py snapshots and restore) [{time.monotonic() - start:.1f}s]")
        for m in fails:
            print(f"    {m}")
        if fails:
            ok = False
    else:
        print(f"{REPOSITORY_DIR}/: MISSING" + (" (allowed)" if args.allow_missing else ""))
        if not args.allow_missing:
            ok = False

    print(f"TOTAL: {total_pass} passed, {total_fail} failed, {total_skip} skipped")
    return 0 if ok and total_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
