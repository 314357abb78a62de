"""Independent reader for the Coffer formats, version 1.

Written from FORMAT.md alone (no Rust code consulted), as a cross-check of the
specification. It covers the reader side only:

* ``key_id`` (FORMAT.md section 2);
* the chunked-encryption layer, C2SP (section 4): ``open_chunked_stream``
  (streaming) and ``open_chunked_random_access`` (random access, byte ranges,
  length authentication through the final chunk);
* sealed streams ``COFFER/S`` (section 5): ``open_sealed_stream`` and
  ``open_sealed_stream_random_access``;
* key-wrap envelopes ``COFFER/K`` (section 6): ``unwrap_key_envelope``;
* passphrase envelopes ``COFFER/P`` (section 7): ``unwrap_passphrase_envelope``;
* format v2's key hierarchy (section 12), keyed chunking (section 13) and chunk IDs
  (section 14): ``writer_secret``, ``chunker_keys``, ``chunk_id_key``,
  ``chunker_table``, ``window_hash``, ``chunk_cuts``, ``chunk_id``.

Every failure is raised as ``CofferError`` whose ``name`` is the condition name
of FORMAT.md's "Error conditions" table (``Truncated``, ``BadMagic``,
``CorruptedChunk`` with ``index``, ``WrongKey`` with ``expected``, ...). Checks
run in the order FORMAT.md gives. Caller mistakes that are not format errors
(a chunk index out of range, an unknown purpose name, a range past the end) are
``ValueError`` / ``IndexError`` / ``TypeError``.

Plaintext is released only after its chunk's tag has verified, and streams are
read one chunk (at most 16400 bytes) at a time from a file-like object.

Python cannot reliably wipe memory (``bytes`` are immutable and may be copied);
this reader makes no claim about zeroisation (FORMAT.md section 9, item 13).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

__all__ = [
    "CofferError",
    "key_id",
    "hkdf_expand_sha512",
    "derive_message_keys",
    "open_chunked_stream",
    "open_chunked_random_access",
    "open_sealed_stream",
    "open_sealed_stream_random_access",
    "unwrap_key_envelope",
    "unwrap_passphrase_envelope",
    "key_envelope_kek_id",
    "ChunkStream",
    "RandomAccessMessage",
    "UnwrappedKey",
    "PURPOSES",
    "SUITES",
    "writer_secret",
    "chunker_keys",
    "chunk_id_key",
    "check_chunker_params",
    "chunker_table",
    "window_hash",
    "chunk_cuts",
    "chunk_id",
    "V2_CHUNKER_PARAMS",
]

# --------------------------------------------------------------------------
# Constants (FORMAT.md sections 3 and 4)
# --------------------------------------------------------------------------

KEY_LEN = 32
CHUNK_SIZE = 16384
TAG_LEN = 16
WIRE_CHUNK = CHUNK_SIZE + TAG_LEN  # 16400
SALT_LEN = 24
COMMITMENT_LEN = 32
PREAMBLE_LEN = SALT_LEN + COMMITMENT_LEN  # 56
MAX_CHUNKS = 1 << 38
NONCE_LEN = 12

KEY_ID_INFO = b"coffer/v1 key-id"
C2SP_PREFIX = b"c2sp.org/chunked-encryption@v1+"

# suite byte -> (IANA AEAD name, AEAD class)
SUITES = {
    1: (b"AEAD_AES_256_GCM", AESGCM),
    2: (b"AEAD_CHACHA20_POLY1305", ChaCha20Poly1305),
}

# purpose byte <-> name (FORMAT.md 6.1; names as used by the test vectors)
PURPOSES = {1: "RepositoryKey", 2: "ProfileKey", 3: "MasterKey"}
_PURPOSE_BY_NAME = {v: k for k, v in PURPOSES.items()}

STREAM_MAGIC = b"COFFER/S"
KEY_ENVELOPE_MAGIC = b"COFFER/K"
PASSPHRASE_ENVELOPE_MAGIC = b"COFFER/P"
STREAM_HEADER_LEN = 32
KEY_ENVELOPE_LEN = 152
KEY_ENVELOPE_HEADER_LEN = 48
PASSPHRASE_ENVELOPE_LEN = 168
PASSPHRASE_ENVELOPE_HEADER_LEN = 64

# Argon2id bounds (FORMAT.md 7.2), checked in this order: memory, passes, lanes
ARGON2_BOUNDS = (
    ("memoryKib", 8192, 1048576),
    ("passes", 1, 16),
    ("lanes", 1, 4),
)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class CofferError(Exception):
    """A format error; ``name`` is the condition of FORMAT.md's error table.

    Extra fields, when the condition has them:
      CorruptedChunk:      index (int)
      WrongKey:            expected (bytes, the header's key ID)
      UnsupportedVersion:  version (int)
      UnsupportedSuite:    suite (int)
      UnsupportedPurpose:  purpose (int)
      WrongPurpose:        expected (int), found (int)
    """

    def __init__(self, name: str, **fields):
        self.name = name
        self.fields = dict(fields)
        for k, v in fields.items():
            setattr(self, k, v)
        super().__init__(self._describe())

    def _describe(self) -> str:
        if not self.fields:
            return self.name
        parts = []
        for k, v in self.fields.items():
            if isinstance(v, (bytes, bytearray)):
                v = bytes(v).hex()
            parts.append(f"{k}: {v}")
        return f"{self.name}{{{', '.join(parts)}}}"

    def same_as(self, other: "CofferError") -> bool:
        return self.name == other.name and self.fields == other.fields


def _err(name: str, **fields) -> CofferError:
    return CofferError(name, **fields)


# --------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------


def hkdf_expand_sha512(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 2.3) with HMAC-SHA-512, PRK used as given (FORMAT.md 1)."""
    if length < 0 or length > 255 * 64:
        raise ValueError("HKDF-Expand-SHA-512 output length out of range")
    okm = bytearray()
    t = b""
    n = 1
    while len(okm) < length:
        t = hmac.new(bytes(prk), t + bytes(info) + bytes([n]), hashlib.sha512).digest()
        okm += t
        n += 1
    return bytes(okm[:length])


def _check_key(key) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError("keys are byte strings")
    key = bytes(key)
    if len(key) != KEY_LEN:
        raise _err("InvalidKeyLength")
    return key


def key_id(key: bytes) -> bytes:
    """key_id(K) = HKDF-Expand-SHA-512(PRK = K, info = "coffer/v1 key-id", L = 16)."""
    return hkdf_expand_sha512(_check_key(key), KEY_ID_INFO, 16)


def _suite_entry(suite):
    """Accept a suite byte (1, 2) or an IANA AEAD name; return (byte, name, cls)."""
    if isinstance(suite, str):
        suite = suite.encode("ascii")
    if isinstance(suite, (bytes, bytearray)):
        for b, (name, cls) in SUITES.items():
            if name == bytes(suite):
                return b, name, cls
        raise ValueError(f"unknown AEAD name {bytes(suite)!r}")
    if suite not in SUITES:
        raise _err("UnsupportedSuite", suite=suite)
    name, cls = SUITES[suite]
    return suite, name, cls


def derive_message_keys(key: bytes, salt: bytes, ctx: bytes, suite) -> tuple:
    """FORMAT.md 4.1: return (aead_key, base_nonce, commitment)."""
    key = _check_key(key)
    _, name, _ = _suite_entry(suite)
    if len(salt) != SALT_LEN:
        raise ValueError("salt must be 24 bytes")
    info = C2SP_PREFIX + name + b"\x00" + bytes(salt) + bytes(ctx)
    okm = hkdf_expand_sha512(key, info, 76)
    return okm[0:32], okm[32:44], okm[44:76]


def _chunk_nonce(base_nonce: bytes, index: int) -> bytes:
    return (int.from_bytes(base_nonce, "big") ^ index).to_bytes(NONCE_LEN, "big")


class _MessageKeys:
    """The AEAD and base nonce of one message, available only after the commitment check."""

    __slots__ = ("_aead", "_base_nonce", "suite")

    def __init__(self, aead, base_nonce: bytes, suite: int):
        self._aead = aead
        self._base_nonce = base_nonce
        self.suite = suite

    def open_chunk(self, index: int, wire: bytes) -> bytes:
        """Open chunk ``index`` (ciphertext || tag) with empty AAD, or CorruptedChunk{index}."""
        try:
            return self._aead.decrypt(_chunk_nonce(self._base_nonce, index), bytes(wire), None)
        except InvalidTag:
            raise _err("CorruptedChunk", index=index) from None


def _commit(key: bytes, suite, preamble: bytes, ctx: bytes,
            failure: str = "CommitmentMismatch") -> _MessageKeys:
    """FORMAT.md 4.5 step 1: derive, compare the commitment in constant time."""
    suite_byte, _, cls = _suite_entry(suite)
    aead_key, base_nonce, commitment = derive_message_keys(key, preamble[:SALT_LEN], ctx,
                                                           suite_byte)
    if not hmac.compare_digest(commitment, bytes(preamble[SALT_LEN:PREAMBLE_LEN])):
        raise _err(failure)
    return _MessageKeys(cls(aead_key), base_nonce, suite_byte)


def _read_upto(f, n: int) -> bytes:
    """Read until n bytes are buffered or the input ends."""
    buf = bytearray()
    while len(buf) < n:
        b = f.read(n - len(buf))
        if not b:
            break
        buf += b
    return bytes(buf)


# --------------------------------------------------------------------------
# Key selection ("pick K by this ID"; never try keys in turn)
# --------------------------------------------------------------------------

KeySource = Union[bytes, bytearray, Mapping, Callable[[bytes], Optional[bytes]]]


def _precheck_keys(keys: KeySource) -> None:
    """A single key given directly is length-checked before any input is read."""
    if isinstance(keys, (bytes, bytearray, memoryview)):
        _check_key(keys)


def _select_key(keys: KeySource, expected_id: bytes) -> bytes:
    """Return the key whose ID is ``expected_id`` or raise WrongKey{expected}.

    ``keys`` is one key (bytes), a mapping key ID -> key, or a callable
    key ID -> key (or None).
    """
    expected_id = bytes(expected_id)
    if isinstance(keys, (bytes, bytearray, memoryview)):
        key = _check_key(keys)
    elif isinstance(keys, Mapping):
        key = keys.get(expected_id)
        if key is None:
            key = keys.get(expected_id.hex())
    elif callable(keys):
        key = keys(expected_id)
    else:
        raise TypeError("keys must be bytes, a mapping or a callable")
    if key is None:
        raise _err("WrongKey", expected=expected_id)
    key = _check_key(key)
    if not hmac.compare_digest(key_id(key), expected_id):
        raise _err("WrongKey", expected=expected_id)
    return key


# --------------------------------------------------------------------------
# Chunked-encryption layer: streaming (FORMAT.md 4.5, "Streaming reader")
# --------------------------------------------------------------------------


class ChunkStream:
    """Streaming opener over a file-like object positioned at the first chunk.

    Iterate to get verified chunk plaintexts, one at a time. A clean end
    (StopIteration / ``read_chunk() is None``) is reported only after the short
    final chunk verified. Once an error is raised it is raised again on every
    later call.
    """

    def __init__(self, f, keys: _MessageKeys, **info):
        self._f = f
        self._keys = keys
        self._next_index = 0
        self._done = False
        self._error: Optional[BaseException] = None
        self.suite = keys.suite
        for k, v in info.items():
            setattr(self, k, v)

    @property
    def complete(self) -> bool:
        """True once the final chunk verified (the output may be trusted as a whole)."""
        return self._done

    @property
    def chunks_released(self) -> int:
        return self._next_index

    def read_chunk(self) -> Optional[bytes]:
        if self._error is not None:
            raise self._error
        if self._done:
            return None
        try:
            return self._read_chunk()
        except BaseException as e:  # sticky, whatever the cause (I/O errors too)
            self._error = e
            self._keys = None
            raise

    def _read_chunk(self) -> bytes:
        data = _read_upto(self._f, WIRE_CHUNK)
        index = self._next_index
        if len(data) < TAG_LEN:
            # 0 right after a full chunk = missing final chunk
            raise _err("Truncated")
        if index >= MAX_CHUNKS:
            raise _err("StreamTooLong")
        final = len(data) < WIRE_CHUNK  # a full chunk is never final
        plaintext = self._keys.open_chunk(index, data)
        self._next_index = index + 1
        if final:
            self._done = True
            self._keys = None
        return plaintext

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = self.read_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def read_all(self) -> bytes:
        """Convenience for small messages: every chunk, joined (only after a clean end)."""
        out = bytearray()
        for chunk in self:
            out += chunk
        return bytes(out)


def open_chunked_stream(f, key: bytes, ctx: bytes, suite) -> ChunkStream:
    """Open a bare C2SP message read from ``f`` (from its current position to its end).

    Checks: key length, suite, preamble present (Truncated), commitment
    (CommitmentMismatch). Chunk errors surface while iterating.
    """
    key = _check_key(key)
    suite_byte, _, _ = _suite_entry(suite)
    preamble = _read_upto(f, PREAMBLE_LEN)
    if len(preamble) < PREAMBLE_LEN:
        raise _err("Truncated")
    keys = _commit(key, suite_byte, preamble, bytes(ctx))
    return ChunkStream(f, keys)


# --------------------------------------------------------------------------
# Chunked-encryption layer: random access (FORMAT.md 4.4, 4.5)
# --------------------------------------------------------------------------


class RandomAccessMessage:
    """Random-access opener over a seekable file-like object.

    The message (preamble + chunks) starts at ``message_offset`` and is
    ``message_length`` bytes long (measured by the caller or from the object
    size). Each chunk is opened and verified on its own at its own index.
    ``claimed_length`` is not authentic until ``authenticate_length()`` (or a
    read of the final chunk) succeeded.
    """

    def __init__(self, f, keys: _MessageKeys, message_offset: int, message_length: int, **info):
        # FORMAT.md 4.4 steps 2-5 (step 1, M < 56, was checked before the commitment).
        b = message_length - PREAMBLE_LEN
        full, r = divmod(b, WIRE_CHUNK)
        if r < TAG_LEN:
            raise _err("Truncated")
        n = full + 1
        if n > MAX_CHUNKS:
            raise _err("StreamTooLong")
        self._f = f
        self._keys = keys
        self._offset = message_offset
        self.message_length = message_length
        self.chunk_count = n
        self.final_wire_length = r
        self.claimed_length = CHUNK_SIZE * full + r - TAG_LEN
        self.length_authenticated = False
        self.suite = keys.suite
        for k, v in info.items():
            setattr(self, k, v)

    def chunk_wire_range(self, k: int) -> tuple:
        """(offset from the object start, wire length) of chunk k."""
        if not 0 <= k < self.chunk_count:
            raise IndexError(f"chunk index {k} out of range 0..{self.chunk_count - 1}")
        size = WIRE_CHUNK if k < self.chunk_count - 1 else self.final_wire_length
        return self._offset + PREAMBLE_LEN + WIRE_CHUNK * k, size

    def open_chunk(self, k: int) -> bytes:
        """Read, verify and return chunk k's plaintext."""
        offset, size = self.chunk_wire_range(k)
        self._f.seek(offset)
        data = _read_upto(self._f, size)
        if len(data) < size:
            raise _err("Truncated")  # input shorter than measured earlier
        plaintext = self._keys.open_chunk(k, data)
        if k == self.chunk_count - 1:
            self.length_authenticated = True
        return plaintext

    def authenticate_length(self) -> int:
        """Open the final chunk; return the now authentic plaintext length L."""
        self.open_chunk(self.chunk_count - 1)
        return self.claimed_length

    def read(self, offset: int, length: int) -> bytes:
        """Return plaintext bytes [offset, offset+length), opening only the chunks needed."""
        if offset < 0 or length < 0 or offset + length > self.claimed_length:
            raise ValueError("range outside the message's claimed length")
        out = bytearray()
        pos = offset
        end = offset + length
        while pos < end:
            k, within = divmod(pos, CHUNK_SIZE)
            chunk = self.open_chunk(k)
            take = min(len(chunk) - within, end - pos)
            out += chunk[within:within + take]
            pos += take
        return bytes(out)

    def iter_chunks(self, start: int = 0, stop: Optional[int] = None) -> Iterator[bytes]:
        """Open chunks start..stop-1 in order (each verified before it is yielded)."""
        stop = self.chunk_count if stop is None else stop
        for k in range(start, stop):
            yield self.open_chunk(k)


def _measure(f, start: int, length: Optional[int]) -> int:
    if length is not None:
        return length
    end = f.seek(0, 2)
    return end - start


def open_chunked_random_access(f, key: bytes, ctx: bytes, suite, start: int = 0,
                               length: Optional[int] = None) -> RandomAccessMessage:
    """Open a bare C2SP message at ``start`` in seekable ``f`` for random access.

    ``length`` is the message's total length M; by default everything from
    ``start`` to the end of ``f``. Checks: key length, suite, M >= 56 and
    preamble readable (Truncated), commitment (CommitmentMismatch), then the
    layout of 4.4 (Truncated, StreamTooLong).
    """
    key = _check_key(key)
    suite_byte, _, _ = _suite_entry(suite)
    m = _measure(f, start, length)
    if m < PREAMBLE_LEN:
        raise _err("Truncated")
    f.seek(start)
    preamble = _read_upto(f, PREAMBLE_LEN)
    if len(preamble) < PREAMBLE_LEN:
        raise _err("Truncated")
    keys = _commit(key, suite_byte, preamble, bytes(ctx))
    return RandomAccessMessage(f, keys, start, m)


# --------------------------------------------------------------------------
# Common header checks (FORMAT.md 5.3 rows 1-4)
# --------------------------------------------------------------------------


def _check_magic_version_suite(data: bytes, magic: bytes) -> int:
    if len(data) < 8:
        raise _err("Truncated")
    if data[0:8] != magic:
        raise _err("BadMagic")
    if len(data) < 9:
        raise _err("Truncated")
    if data[8] != 0x01:
        raise _err("UnsupportedVersion", version=data[8])
    if len(data) < 10:
        raise _err("Truncated")
    if data[9] not in SUITES:
        raise _err("UnsupportedSuite", suite=data[9])
    return data[9]


# --------------------------------------------------------------------------
# Sealed stream COFFER/S (FORMAT.md 5)
# --------------------------------------------------------------------------


def _stream_header(header: bytes, keys: KeySource) -> tuple:
    """Rows 1-7 of FORMAT.md 5.3 on the first (up to) 32 bytes; return (suite, key)."""
    suite = _check_magic_version_suite(header, STREAM_MAGIC)
    if len(header) < STREAM_HEADER_LEN:
        raise _err("Truncated")
    if any(header[10:16]):
        raise _err("ReservedBitsSet")
    key = _select_key(keys, header[16:32])
    return suite, key


def open_sealed_stream(f, keys: KeySource, caller_context: bytes = b"") -> ChunkStream:
    """Open a ``COFFER/S`` stream read from ``f`` for streaming.

    ``keys``: the key, or a mapping/callable from key ID to key. Header and
    commitment errors are raised here; chunk errors while iterating the
    returned ``ChunkStream`` (which also has ``suite``, ``key_id``, ``header``).
    """
    _precheck_keys(keys)
    header = _read_upto(f, STREAM_HEADER_LEN)
    suite, key = _stream_header(header, keys)
    preamble = _read_upto(f, PREAMBLE_LEN)
    if len(preamble) < PREAMBLE_LEN:
        raise _err("Truncated")  # row 8: at least 88 bytes
    msg_keys = _commit(key, suite, preamble, header + bytes(caller_context))
    return ChunkStream(f, msg_keys, header=header, key_id=header[16:32])


def open_sealed_stream_random_access(f, keys: KeySource, caller_context: bytes = b"",
                                     start: int = 0, length: Optional[int] = None
                                     ) -> RandomAccessMessage:
    """Open a ``COFFER/S`` stream at ``start`` in seekable ``f`` for random access.

    ``length`` is the whole object's length (header included); by default up
    to the end of ``f``. Plaintext offsets in ``read`` are plaintext offsets.
    """
    _precheck_keys(keys)
    total = _measure(f, start, length)
    f.seek(start)
    header = _read_upto(f, min(STREAM_HEADER_LEN, max(total, 0)))
    suite, key = _stream_header(header, keys)
    if total < STREAM_HEADER_LEN + PREAMBLE_LEN:
        raise _err("Truncated")  # row 8
    preamble = _read_upto(f, PREAMBLE_LEN)
    if len(preamble) < PREAMBLE_LEN:
        raise _err("Truncated")
    msg_keys = _commit(key, suite, preamble, header + bytes(caller_context))
    return RandomAccessMessage(f, msg_keys, start + STREAM_HEADER_LEN, total - STREAM_HEADER_LEN,
                               header=header, key_id=header[16:32])


# --------------------------------------------------------------------------
# Envelopes (FORMAT.md 6 and 7)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnwrappedKey:
    wrapped_key: bytes
    wrapped_key_id: bytes
    purpose: int
    key_version: int
    suite: int
    kek_id: Optional[bytes] = None  # COFFER/K only
    argon2: Optional[dict] = None  # COFFER/P only: memoryKib, passes, lanes, salt

    @property
    def purpose_name(self) -> str:
        return PURPOSES[self.purpose]


def _purpose_byte(purpose) -> int:
    if isinstance(purpose, str):
        if purpose not in _PURPOSE_BY_NAME:
            raise ValueError(f"unknown purpose {purpose!r}")
        return _PURPOSE_BY_NAME[purpose]
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    return purpose


def _envelope_bytes(envelope, fixed_len: int) -> bytes:
    if isinstance(envelope, (bytes, bytearray, memoryview)):
        return bytes(envelope)
    # file-like: one byte past the fixed length is enough to see TrailingData
    return _read_upto(envelope, fixed_len + 1)


def key_envelope_kek_id(envelope) -> bytes:
    """Steps 1-4 of FORMAT.md 6.3 only: return the (unauthenticated) KEK ID."""
    data = _envelope_bytes(envelope, KEY_ENVELOPE_LEN)
    _key_envelope_steps_1_4(data)
    return data[16:32]


def _key_envelope_steps_1_4(data: bytes) -> int:
    suite = _check_magic_version_suite(data, KEY_ENVELOPE_MAGIC)
    if len(data) < KEY_ENVELOPE_LEN:
        raise _err("Truncated")
    if len(data) > KEY_ENVELOPE_LEN:
        raise _err("TrailingData")
    if data[10] not in PURPOSES:
        raise _err("UnsupportedPurpose", purpose=data[10])
    if data[11] != 0:
        raise _err("ReservedBitsSet")
    return suite


def unwrap_key_envelope(envelope, kek: KeySource, expected_purpose,
                        caller_context: bytes = b"") -> UnwrappedKey:
    """Open a ``COFFER/K`` envelope (FORMAT.md 6.3, steps 1-9, in order).

    ``kek``: the KEK, or a mapping/callable from KEK ID to KEK.
    ``expected_purpose``: "RepositoryKey", "ProfileKey", "MasterKey" or 1..3.
    """
    expected = _purpose_byte(expected_purpose)
    _precheck_keys(kek)
    data = _envelope_bytes(envelope, KEY_ENVELOPE_LEN)
    suite = _key_envelope_steps_1_4(data)                       # steps 1-4
    k = _select_key(kek, data[16:32])                           # step 5
    hl = KEY_ENVELOPE_HEADER_LEN
    msg_keys = _commit(k, suite, data[hl:hl + PREAMBLE_LEN],
                       data[:hl] + bytes(caller_context))       # step 6
    w = msg_keys.open_chunk(0, data[104:152])                   # step 7
    if not hmac.compare_digest(key_id(w), data[32:48]):         # step 8
        raise _err("KeyIdMismatch")
    if data[10] != expected:                                    # step 9
        raise _err("WrongPurpose", expected=expected, found=data[10])
    return UnwrappedKey(
        wrapped_key=w,
        wrapped_key_id=data[32:48],
        purpose=data[10],
        key_version=int.from_bytes(data[12:16], "big"),
        suite=suite,
        kek_id=data[16:32],
    )


def _argon2id(passphrase: bytes, salt: bytes, m: int, t: int, p: int) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        secret=passphrase, salt=salt, time_cost=t, memory_cost=m,
        parallelism=p, hash_len=32, type=Type.ID, version=19,
    )


def unwrap_passphrase_envelope(envelope, passphrase: bytes, expected_purpose,
                               caller_context: bytes = b"") -> UnwrappedKey:
    """Open a ``COFFER/P`` envelope (FORMAT.md 7.3, steps 1-10, in order).

    ``passphrase``: the passphrase bytes, used as given (no normalisation).
    """
    expected = _purpose_byte(expected_purpose)
    if not isinstance(passphrase, (bytes, bytearray, memoryview)):
        raise TypeError("the passphrase is a byte string (encode it yourself; no normalisation)")
    data = _envelope_bytes(envelope, PASSPHRASE_ENVELOPE_LEN)
    suite = _check_magic_version_suite(data, PASSPHRASE_ENVELOPE_MAGIC)   # step 1
    if len(data) < PASSPHRASE_ENVELOPE_LEN:                                # step 2
        raise _err("Truncated")
    if len(data) > PASSPHRASE_ENVELOPE_LEN:
        raise _err("TrailingData")
    if data[10] not in PURPOSES:                                           # step 3
        raise _err("UnsupportedPurpose", purpose=data[10])
    if data[11] != 0 or any(data[28:32]):                                  # step 4
        raise _err("ReservedBitsSet")
    params = {
        "memoryKib": int.from_bytes(data[16:20], "big"),
        "passes": int.from_bytes(data[20:24], "big"),
        "lanes": int.from_bytes(data[24:28], "big"),
    }
    for name, lo, hi in ARGON2_BOUNDS:                                     # step 5
        if not lo <= params[name] <= hi:
            raise _err("ParameterOutOfBounds")
    argon2_salt = data[32:48]
    kek = _argon2id(bytes(passphrase), argon2_salt, params["memoryKib"],
                    params["passes"], params["lanes"])                     # step 6
    hl = PASSPHRASE_ENVELOPE_HEADER_LEN
    msg_keys = _commit(kek, suite, data[hl:hl + PREAMBLE_LEN],
                       data[:hl] + bytes(caller_context),
                       failure="WrongPassphrase")                          # step 7
    w = msg_keys.open_chunk(0, data[120:168])                              # step 8
    if not hmac.compare_digest(key_id(w), data[48:64]):                    # step 9
        raise _err("KeyIdMismatch")
    if data[10] != expected:                                               # step 10
        raise _err("WrongPurpose", expected=expected, found=data[10])
    return UnwrappedKey(
        wrapped_key=w,
        wrapped_key_id=data[48:64],
        purpose=data[10],
        key_version=int.from_bytes(data[12:16], "big"),
        suite=suite,
        argon2=dict(params, salt=argon2_salt),
    )


# --------------------------------------------------------------------------
# Format v2: key hierarchy (FORMAT.md 12), keyed chunking (13), chunk IDs (14)
# --------------------------------------------------------------------------

WRITER_INFO = b"coffer/v2 writer"
CHUNKER_CIPHER_INFO = b"coffer/v2 chunker"
CHUNKER_TABLE_INFO = b"coffer/v2 chunker-table"
CHUNK_ID_INFO = b"coffer/v2 chunk-id"

CHUNKER_WINDOW = 64
CHUNKER_SIZE_BOUND = 1 << 26
# (min_size, mask_bits, max_size), FORMAT.md 13.1
V2_CHUNKER_PARAMS = (524288, 17, 4194304)

_U128 = (1 << 128) - 1
_CUT_BATCH = 4096  # positions whose digests go through AES in one call


def writer_secret(master_key: bytes) -> bytes:
    """W = HKDF-Expand-SHA-512(K, "coffer/v2 writer", 32)."""
    return hkdf_expand_sha512(_check_key(master_key), WRITER_INFO, 32)


def chunker_keys(writer: bytes) -> tuple:
    """(cipher key c, table key t) = HKDF-Expand-SHA-512(W, "coffer/v2 chunker", 16),
    HKDF-Expand-SHA-512(W, "coffer/v2 chunker-table", 16)."""
    w = _check_key(writer)
    return (hkdf_expand_sha512(w, CHUNKER_CIPHER_INFO, 16),
            hkdf_expand_sha512(w, CHUNKER_TABLE_INFO, 16))


def chunk_id_key(writer: bytes) -> bytes:
    """HKDF-Expand-SHA-512(W, "coffer/v2 chunk-id", 32)."""
    return hkdf_expand_sha512(_check_key(writer), CHUNK_ID_INFO, 32)


def check_chunker_params(min_size: int, mask_bits: int, max_size: int) -> None:
    """FORMAT.md 13.1's bounds, in the table's order; ParameterOutOfBounds names the
    first parameter out of bounds."""
    for name, value, lo, hi in (
        ("min_size", min_size, CHUNKER_WINDOW, CHUNKER_SIZE_BOUND),
        ("mask_bits", mask_bits, 1, 31),
        ("max_size", max_size, min_size + 1, CHUNKER_SIZE_BOUND),
    ):
        if not lo <= value <= hi:
            raise _err("ParameterOutOfBounds", parameter=name, value=value, min=lo, max=hi)


def _aes128_ecb(key: bytes):
    return Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()


def _rotl128(x: int, r: int) -> int:
    r %= 128
    return ((x << r) | (x >> (128 - r))) & _U128


def chunker_table(table_key: bytes) -> list:
    """T[b] = u128le(AES-128-Encrypt(t, u128le(b))) for b = 0 .. 255 (FORMAT.md 13.2)."""
    enc = _aes128_ecb(table_key)
    out = enc.update(b"".join(b.to_bytes(16, "little") for b in range(256)))
    return [int.from_bytes(out[16 * b:16 * b + 16], "little") for b in range(256)]


def window_hash(table: list, window: bytes) -> int:
    """H(w) = XOR over j = 0 .. 63 of rotl128(T[w[63 - j]], j), w[63] the newest byte."""
    if len(window) != CHUNKER_WINDOW:
        raise ValueError("a window is 64 bytes")
    h = 0
    for j in range(CHUNKER_WINDOW):
        h ^= _rotl128(table[window[63 - j]], j)
    return h


def chunk_cuts(data: bytes, writer: bytes, min_size: int, mask_bits: int,
               max_size: int) -> list:
    """The end offset of every chunk of ``data`` (FORMAT.md 13.4); [] for empty data.

    Position p is a cut point when, with D = H(data[p-64:p]) >> 63,
    u32le(AES-128-Encrypt(c, u128le(D))[0:4]) AND (2^mask_bits - 1) = 0 (13.3). Each
    chunk's first window is hashed from its definition, then H rolls:
    H' = rotl128(H, 1) XOR T[x_in] XOR rotl128(T[x_out], 64). Digests are encrypted
    a batch at a time (AES-ECB is one block cipher call per block).
    """
    check_chunker_params(min_size, mask_bits, max_size)
    cipher_key, table_key = chunker_keys(writer)
    table = chunker_table(table_key)
    swapped = [_rotl128(t, 64) for t in table]
    enc = _aes128_ecb(cipher_key)
    mask = (1 << mask_bits) - 1
    data = bytes(data)
    n = len(data)
    ends = []
    s = 0
    while s < n:
        if n - s <= min_size:                                   # step 1
            ends.append(n)
            break
        end = None
        p = s + min_size                                        # step 2
        limit = min(n, s + max_size)                            # test p < n, p < s + max
        h = window_hash(table, data[p - CHUNKER_WINDOW:p])
        while p < limit and end is None:
            q = min(limit, p + _CUT_BATCH)
            digests = bytearray()
            for i in range(p, q):
                # h is H(data[i-64:i]); then byte i enters and byte i-64 leaves
                digests += (h >> 63).to_bytes(16, "little")
                h = ((((h << 1) | (h >> 127)) & _U128)
                     ^ table[data[i]] ^ swapped[data[i - CHUNKER_WINDOW]])
            out = enc.update(bytes(digests))
            for k in range(q - p):
                if int.from_bytes(out[16 * k:16 * k + 4], "little") & mask == 0:
                    end = p + k
                    break
            p = q
        if end is None:                                         # step 3
            end = min(s + max_size, n)
        ends.append(end)
        s = end
    return ends


def chunk_id(key: bytes, chunk: bytes) -> bytes:
    """HMAC-SHA-256(key = chunk ID key, message = the chunk) (FORMAT.md 14)."""
    return hmac.new(_check_key(key), bytes(chunk), hashlib.sha256).digest()
