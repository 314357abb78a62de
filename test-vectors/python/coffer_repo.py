#!/usr/bin/env python3
"""Independent reader for Coffer's deduplicated repositories, format v2.

Written from FORMAT.md Part II alone (no Rust code consulted), on top of
``coffer_reader`` (Part I: sealed streams, envelopes, the v2 key hierarchy's
first keys and chunk IDs). It opens a repository and restores a snapshot:

* section 12: the key hierarchy, including the X25519 key pair by RFC 9180
  DeriveKeyPair (``RepoKeys``);
* section 15: symmetric objects and recipient-sealed objects, with HPKE base
  mode single-shot open written here from RFC 9180 (``hpke_open_base``);
* section 16: packs (trailer, table of contents, Padme, zstd blobs), every
  blob's chunk ID (section 14) checked before it is used;
* section 17: indexes, honouring ``supersedes``;
* section 18: trees (postcard, the rules of 18.3, re-encoding check) and
  their restore (18.4);
* section 19: snapshots; section 20: the configuration; section 21: the
  layout and key files (a 32-byte KEK, or a passphrase).

Command line::

    coffer_repo.py snapshots --repo DIR (--kek-file FILE | --passphrase-file FILE)
    coffer_repo.py restore --repo DIR (--kek-file FILE | --passphrase-file FILE)
                           --snapshot HEXPREFIX --target DIR

A KEK file holds the KEK as 64 hex digits. Where FORMAT.md left something
open, the guess taken is marked ``GUESS`` in a comment, with the section.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import grp
import hashlib
import hmac
import io
import os
import pwd
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffer_reader as cr  # noqa: E402
from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import (  # noqa: E402
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402


class RepoError(Exception):
    """A repository object that FORMAT.md Part II calls invalid, or a missing one.

    ``what`` names the object or rule (for example ``pack data/ab/ab..: trailer``).
    """


def _fail(what: str) -> RepoError:
    return RepoError(what)


# ==========================================================================
# RFC 9180 HPKE, base mode, single shot: DHKEM(X25519, HKDF-SHA256),
# HKDF-SHA256, ChaCha20-Poly1305 (FORMAT.md 12 and 15)
# ==========================================================================

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0003
KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")
HPKE_SUITE_ID = (b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big")
                 + AEAD_ID.to_bytes(2, "big"))


def hkdf_extract_sha256(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 2.2: HMAC-SHA-256(salt, ikm); an empty salt acts as 32 zero bytes."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_sha256(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 2.3 with HMAC-SHA-256."""
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([n]), hashlib.sha256).digest()
        out += t
        n += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """RFC 9180 4: Extract(salt, "HPKE-v1" || suite_id || label || ikm)."""
    return hkdf_extract_sha256(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """RFC 9180 4: Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)."""
    labeled_info = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return hkdf_expand_sha256(prk, labeled_info, length)


def x25519_public(sk: bytes) -> bytes:
    """X25519(sk, 9): the public key of a private key (RFC 7748, clamping included)."""
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def derive_key_pair(ikm: bytes) -> tuple:
    """RFC 9180 7.1.3 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256); (sk, pk) (FORMAT.md 12)."""
    dkp_prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    sk = labeled_expand(KEM_SUITE_ID, dkp_prk, b"sk", b"", 32)
    return sk, x25519_public(sk)


def kem_decap(enc: bytes, sk: bytes) -> bytes:
    """RFC 9180 4.1 Decap: shared_secret from enc and the recipient's private key."""
    pk_e = X25519PublicKey.from_public_bytes(enc)
    dh = X25519PrivateKey.from_private_bytes(sk).exchange(pk_e)  # all-zero output raises
    kem_context = enc + x25519_public(sk)
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, 32)


def key_schedule_base(shared_secret: bytes, info: bytes) -> tuple:
    """RFC 9180 5.1 KeySchedule, mode_base (psk and psk_id empty); (key, base_nonce)."""
    psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = labeled_expand(HPKE_SUITE_ID, secret, b"key", context, 32)
    base_nonce = labeled_expand(HPKE_SUITE_ID, secret, b"base_nonce", context, 12)
    return key, base_nonce


def hpke_open_base(sk: bytes, enc: bytes, info: bytes, aad: bytes, ct: bytes) -> bytes:
    """RFC 9180 6.1 single-shot Open in base mode (sequence number 0: nonce = base_nonce).

    Raises ``InvalidTag`` (or ``ValueError`` for a low-order ``enc``) on failure.
    """
    key, base_nonce = key_schedule_base(kem_decap(enc, sk), info)
    return ChaCha20Poly1305(key).decrypt(base_nonce, ct, aad)


# ==========================================================================
# Key hierarchy (FORMAT.md 12)
# ==========================================================================


class RepoKeys:
    """The keys of FORMAT.md 12's table, from the master key K (full) or W (write-only)."""

    def __init__(self, master_key: Optional[bytes] = None, writer: Optional[bytes] = None):
        if master_key is not None:
            writer = cr.writer_secret(master_key)
            ikm = cr.hkdf_expand_sha512(master_key, b"coffer/v2 x25519", 32)
            self.private_key, self.public_key = derive_key_pair(ikm)
        else:
            self.private_key = self.public_key = None  # from the configuration (section 20)
        self.full = master_key is not None
        self.writer = writer
        self.chunk_id_key = cr.chunk_id_key(writer)
        self.index_key = cr.hkdf_expand_sha512(writer, b"coffer/v2 index", 32)
        self.config_key = cr.hkdf_expand_sha512(writer, b"coffer/v2 config", 32)
        self.cache_key = cr.hkdf_expand_sha512(writer, b"coffer/v2 cache", 32)


# ==========================================================================
# Sealed objects (FORMAT.md 15)
# ==========================================================================

SUITE_AES_256_GCM = 1
OBJECT_MAGIC = b"COFFER/H"
OBJECT_HEADER_LEN = 96
KIND_PACK, KIND_SNAPSHOT = 1, 2


def _read_capped(ra: cr.RandomAccessMessage, cap: int, what: str) -> bytes:
    """Every chunk of a random-access message, after capping its claimed length."""
    if ra.claimed_length > cap:
        raise _fail(f"{what}: {ra.claimed_length} bytes, more than {cap}")
    return b"".join(ra.iter_chunks())  # includes the final chunk: length authenticated


def open_symmetric_object(data: bytes, key: bytes, label: bytes, repo_id: bytes,
                          name: str, cap: int) -> bytes:
    """Section 15: a sealed stream under ``key``, context label || repository ID || name.

    Section 12: all symmetric objects use AES-256-GCM; this reader holds writers to it.
    """
    ra = cr.open_sealed_stream_random_access(io.BytesIO(data), key,
                                             label + repo_id + name.encode("ascii"))
    if ra.suite != SUITE_AES_256_GCM:
        raise _fail(f"{name}: suite {ra.suite}, section 12 says AES-256-GCM")
    return _read_capped(ra, cap, name)


def object_context(header16: bytes, repo_id: bytes, name: str) -> bytes:
    """Section 15: ctx = "coffer/v2 object" || bytes 0..16 || repository ID || object name."""
    return b"coffer/v2 object" + header16 + repo_id + name.encode("ascii")


def open_recipient_object(f, private_key: bytes, repo_id: bytes, name: str,
                          kind: int) -> cr.RandomAccessMessage:
    """Section 15: check bytes 0..16, open the object key with HPKE, then the stream.

    Returns a random-access opener of the stream (offset 96 in ``f``).
    """
    f.seek(0)
    head = cr._read_upto(f, OBJECT_HEADER_LEN)
    if len(head) < OBJECT_HEADER_LEN:
        raise _fail(f"{name}: shorter than the 96-byte object header")
    if head[0:16] != OBJECT_MAGIC + bytes([2, kind]) + bytes(6):
        raise _fail(f"{name}: object header bytes 0..16 are not COFFER/H v2 kind {kind}")
    ctx = object_context(head[0:16], repo_id, name)
    try:
        object_key = hpke_open_base(private_key, head[16:48], ctx, b"", head[48:96])
    except (InvalidTag, ValueError):
        raise _fail(f"{name}: the object key does not open (another repository, "
                    f"another name, or damaged)") from None
    # GUESS (15): the stream's suite is not given for these objects; either is accepted.
    return cr.open_sealed_stream_random_access(f, object_key, ctx, start=OBJECT_HEADER_LEN)


# ==========================================================================
# Configuration (FORMAT.md 20) and key files (21)
# ==========================================================================

CONFIG_MAGIC = b"CCF2"
CONFIG_PLAINTEXT_LEN = 76
KEYFILE_MAGIC = b"CKF2"
KEYFILE_HEADER_LEN = 24
ACCESS_FULL, ACCESS_WRITE_ONLY = 1, 2
WRAP_PASSPHRASE, WRAP_KEK = 1, 2


@dataclass
class Config:
    repo_id: bytes
    min_size: int
    mask_bits: int
    max_size: int
    public_key: bytes
    created: int


def config_repo_id(data: bytes) -> bytes:
    """Section 20: "CCF2" || repository ID (16) || sealed stream; the ID, unauthenticated."""
    if len(data) < 20 or data[0:4] != CONFIG_MAGIC:
        raise _fail("config: no CCF2 magic")
    return data[4:20]


def open_config(data: bytes, keys: RepoKeys) -> Config:
    """Section 20: open the stream, check length, version, ID, chunker parameters, key."""
    repo_id = config_repo_id(data)
    pt = open_symmetric_object(data[20:], keys.config_key, b"coffer/v2 config", repo_id,
                               "config", CONFIG_PLAINTEXT_LEN)
    if len(pt) != CONFIG_PLAINTEXT_LEN:
        raise _fail(f"config: plaintext of {len(pt)} bytes, not 76")
    if pt[0:8] != CONFIG_MAGIC + b"\x02\x00\x00\x00":
        raise _fail("config: magic or version")
    if pt[8:24] != repo_id:
        raise _fail("config: the ID inside differs from the ID outside")
    u32 = [int.from_bytes(pt[o:o + 4], "little") for o in (24, 28, 32)]
    cr.check_chunker_params(*u32)  # section 13.1's bounds
    config = Config(repo_id, u32[0], u32[1], u32[2], pt[36:68],
                    int.from_bytes(pt[68:76], "little", signed=True))
    if keys.full and not hmac.compare_digest(config.public_key, keys.public_key):
        raise _fail("config: public key is not the one the master key derives")
    return config


@dataclass
class KeyFileHeader:
    access: int
    wrapping: int
    envelope: bytes
    context: bytes  # the envelope's caller context


def parse_key_file(data: bytes, repo_id: bytes, name: str) -> KeyFileHeader:
    """Section 21: "CKF2" || access || wrapping || 0x0000 || repository ID || envelope."""
    if len(data) < KEYFILE_HEADER_LEN or data[0:4] != KEYFILE_MAGIC:
        raise _fail(f"{name}: not a CKF2 key file")
    access, wrapping = data[4], data[5]
    if access not in (ACCESS_FULL, ACCESS_WRITE_ONLY) or wrapping not in (WRAP_PASSPHRASE,
                                                                          WRAP_KEK):
        raise _fail(f"{name}: access {access} or wrapping {wrapping} unknown")
    if data[6:8] != b"\x00\x00":  # section 21: reserved bytes are zero
        raise _fail(f"{name}: reserved bytes 6..8 not zero")
    # Section 21: 176 or 192 bytes; the table at the top: 24 + 168 (passphrase) or
    # 24 + 152 (KEK), so each wrapping has its own length.
    want = KEYFILE_HEADER_LEN + (168 if wrapping == WRAP_PASSPHRASE else 152)
    if len(data) != want:
        raise _fail(f"{name}: {len(data)} bytes, a key file of this wrapping has {want}")
    if data[8:24] != repo_id:
        raise _fail(f"{name}: belongs to another repository")
    context = b"coffer/v2 key-file" + data[0:8] + repo_id
    return KeyFileHeader(access, wrapping, data[KEYFILE_HEADER_LEN:], context)


def unwrap_key_file(header: KeyFileHeader, kek: Optional[bytes],
                    passphrase: Optional[bytes]) -> cr.UnwrappedKey:
    """Section 21: the envelope (section 6 or 7), purpose RepositoryKey, key version 1."""
    if header.wrapping == WRAP_KEK:
        out = cr.unwrap_key_envelope(header.envelope, kek, "RepositoryKey", header.context)
    else:
        out = cr.unwrap_passphrase_envelope(header.envelope, passphrase, "RepositoryKey",
                                            header.context)
    if out.key_version != 1:  # GUESS (21): "key version 1" taken as a reader check
        raise _fail(f"key file: key version {out.key_version}, not 1")
    return out


def open_key_files(files: list, repo_id: bytes, kek: Optional[bytes],
                   passphrase: Optional[bytes]) -> RepoKeys:
    """Section 21: try the key files that can match (KEK ID, or every passphrase file)."""
    last_error = None
    for name, data in files:
        try:
            header = parse_key_file(data, repo_id, name)
            if header.wrapping == WRAP_KEK:
                if kek is None or cr.key_envelope_kek_id(header.envelope) != cr.key_id(kek):
                    continue  # the envelope names another KEK: not tried
            elif passphrase is None:
                continue
            w = unwrap_key_file(header, kek, passphrase).wrapped_key
        except (cr.CofferError, RepoError) as e:
            last_error = f"{name}: {e}"
            continue
        if header.access == ACCESS_FULL:
            return RepoKeys(master_key=w)
        return RepoKeys(writer=w)
    raise _fail("no key file opens with the key given"
                + (f" (last failure: {last_error})" if last_error else ""))


# ==========================================================================
# Packs (FORMAT.md 16)
# ==========================================================================

PACK_TRAILER_MAGIC = b"CPK2"
PACK_TRAILER_LEN = 16
TOC_ENTRY_LEN = 48
BLOB_DATA, BLOB_TREE = 0, 1
COMPRESSION_NONE, COMPRESSION_ZSTD = 0, 1
MAX_RAW_LEN = (1 << 30) - (1 << 20)
ZSTD_FEED = 512  # compressed bytes per decompressor call, so output stays bounded


def padme(length: int) -> int:
    """Section 16: Padme(L) = L for L < 2; else round L up, keeping E-S low bits zero."""
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()  # floor(log2 E) + 1
    m = (1 << (e - s)) - 1
    return (length + m) & ~m


@dataclass(frozen=True)
class TocEntry:
    id: bytes
    kind: int
    compression: int
    offset: int
    stored_len: int
    raw_len: int

    def encode(self) -> bytes:
        """The 48-byte entry of section 16 (and section 17)."""
        return (self.id + bytes([self.kind, self.compression, 0, 0])
                + b"".join(x.to_bytes(4, "little")
                           for x in (self.offset, self.stored_len, self.raw_len)))


def parse_toc_entry(raw: bytes, what: str) -> TocEntry:
    """Section 16: id (32) || kind || compression || 0x0000 || offset || stored || raw."""
    kind, comp = raw[32], raw[33]
    if kind not in (BLOB_DATA, BLOB_TREE) or comp not in (COMPRESSION_NONE, COMPRESSION_ZSTD):
        raise _fail(f"{what}: blob kind {kind} or compression {comp} unknown")
    if raw[34:36] != b"\x00\x00":
        raise _fail(f"{what}: reserved bytes of an entry not zero")
    offset, stored, rawlen = (int.from_bytes(raw[o:o + 4], "little") for o in (36, 40, 44))
    if comp == COMPRESSION_NONE and stored != rawlen:
        raise _fail(f"{what}: uncompressed blob with stored_len != raw_len")
    if rawlen > MAX_RAW_LEN:
        raise _fail(f"{what}: raw_len {rawlen} above 2^30 - 2^20")
    return TocEntry(raw[0:32], kind, comp, offset, stored, rawlen)


def parse_toc(toc: bytes, toc_offset: int, what: str) -> list:
    """Section 16: u32le(n) || n entries; toc_len = 4 + 48n; no overlap, none in the table."""
    n = int.from_bytes(toc[0:4], "little")
    if len(toc) != 4 + TOC_ENTRY_LEN * n:
        raise _fail(f"{what}: toc_len {len(toc)} is not 4 + 48 x {n}")
    entries = [parse_toc_entry(toc[4 + TOC_ENTRY_LEN * i:4 + TOC_ENTRY_LEN * (i + 1)], what)
               for i in range(n)]
    end = 0
    for e in sorted(entries, key=lambda e: e.offset):
        if e.offset < end:
            raise _fail(f"{what}: two blobs overlap")
        end = e.offset + e.stored_len
    if end > toc_offset:
        raise _fail(f"{what}: a blob runs into the table of contents")
    return entries


def read_pack_toc(ra: cr.RandomAccessMessage, what: str) -> list:
    """Section 16: authenticate the length, read the trailer, then the table."""
    length = ra.authenticate_length()  # before reading relative to the end (section 4.5)
    if length < PACK_TRAILER_LEN:
        raise _fail(f"{what}: shorter than a trailer")
    trailer = ra.read(length - PACK_TRAILER_LEN, PACK_TRAILER_LEN)
    if trailer[12:16] != PACK_TRAILER_MAGIC:
        raise _fail(f"{what}: trailer magic")
    toc_offset = int.from_bytes(trailer[0:8], "little")
    toc_len = int.from_bytes(trailer[8:12], "little")
    toc_end = toc_offset + toc_len
    if toc_end > length - PACK_TRAILER_LEN or toc_len < 4:
        raise _fail(f"{what}: table of contents outside the plaintext")
    entries = parse_toc(ra.read(toc_offset, toc_len), toc_offset, what)
    check_pack_padding(ra, toc_end, length, what)
    return entries


def check_pack_padding(ra: cr.RandomAccessMessage, toc_end: int, length: int,
                       what: str) -> None:
    """Section 16: the plaintext is Padme(unpadded) long, the padding zero.

    GUESS (16): "unpadded length" taken as blobs + toc + trailer (= toc_end + 16),
    and the padding as lying between the table and the trailer. Section 16's list of
    reader checks names neither check; this reader makes both, to test the text.
    """
    if length != padme(toc_end + PACK_TRAILER_LEN):
        raise _fail(f"{what}: plaintext length {length} is not "
                    f"Padme({toc_end + PACK_TRAILER_LEN}) = {padme(toc_end + PACK_TRAILER_LEN)}")
    if any(ra.read(toc_end, length - PACK_TRAILER_LEN - toc_end)):
        raise _fail(f"{what}: padding not zero")


def decompress_blob(stored: bytes, raw_len: int, what: str) -> bytes:
    """Section 16: one zstd frame (RFC 8878) of exactly raw_len bytes, nothing after it.

    GUESS (16): "one zstd frame" read strictly: no second frame, no skippable frame.
    """
    import zstandard

    d = zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)
    out = bytearray()
    try:
        for i in range(0, len(stored), ZSTD_FEED):
            if d.eof:
                raise _fail(f"{what}: bytes after the zstd frame")
            out += d.decompress(stored[i:i + ZSTD_FEED])
            if len(out) > raw_len:
                raise _fail(f"{what}: decompresses to more than raw_len {raw_len}")
    except zstandard.ZstdError as e:
        raise _fail(f"{what}: zstd: {e}") from None
    if not d.eof or d.unused_data:
        raise _fail(f"{what}: not exactly one complete zstd frame")
    if len(out) != raw_len:
        raise _fail(f"{what}: decompresses to {len(out)} bytes, raw_len {raw_len}")
    return bytes(out)


def blob_plaintext(ra: cr.RandomAccessMessage, entry: TocEntry, id_key: bytes,
                   what: str) -> bytes:
    """Sections 16 and 14: a blob's bytes, released only once their chunk ID is its id."""
    stored = ra.read(entry.offset, entry.stored_len)
    if entry.compression == COMPRESSION_ZSTD:
        raw = decompress_blob(stored, entry.raw_len, what)
    else:
        raw = stored
    if not hmac.compare_digest(cr.chunk_id(id_key, raw), entry.id):
        raise _fail(f"{what}: blob {entry.id.hex()} does not have its chunk ID")
    return raw


# ==========================================================================
# Indexes (FORMAT.md 17)
# ==========================================================================

INDEX_MAGIC = b"CIX2"


@dataclass
class Index:
    packs: list  # (pack ID, pack object length, [TocEntry])
    supersedes: list  # index IDs


class _Cursor:
    """Bounds-checked reads of a fixed little-endian layout."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise _fail(f"{self.what}: truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def count(self, item_len: int) -> int:
        """A u32le count, capped by the bytes left before anything is sized by it."""
        n = self.uint(4)
        if n * item_len > len(self.data) - self.pos:
            raise _fail(f"{self.what}: a count of {n} runs past the end")
        return n


def parse_index(pt: bytes, what: str) -> Index:
    """Section 17: "CIX2" || u32le(packs) || pack* || u32le(superseded) || ID(16)*."""
    c = _Cursor(pt, what)
    if c.take(4) != INDEX_MAGIC:
        raise _fail(f"{what}: magic")
    packs = []
    for _ in range(c.count(28)):
        pack_id, pack_len = c.take(16), c.uint(8)
        entries = [parse_toc_entry(c.take(TOC_ENTRY_LEN), what)
                   for _ in range(c.count(TOC_ENTRY_LEN))]
        packs.append((pack_id, pack_len, entries))
    supersedes = [c.take(16) for _ in range(c.count(16))]
    if c.pos != len(pt):
        raise _fail(f"{what}: bytes after the superseded list")
    return Index(packs, supersedes)


def live_indexes(indexes: dict) -> list:
    """Section 17: every index not superseded by another.

    GUESS (17): a superseded index's own ``supersedes`` list still counts.
    """
    superseded = {sid for idx in indexes.values() for sid in idx.supersedes}
    return [idx for iid, idx in sorted(indexes.items()) if iid not in superseded]


# ==========================================================================
# Postcard (FORMAT.md 18.1)
# ==========================================================================


class PostcardReader:
    """Strict postcard 1.x decoding: shortest varints that fit, canonical bools/options."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def bad(self, why: str) -> RepoError:
        return _fail(f"{self.what}: {why} at byte {self.pos}")

    def fixed(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise self.bad("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.fixed(1)[0]

    def varint(self, bits: int) -> int:
        """Unsigned LEB128, at most ceil(bits/7) bytes, fitting ``bits``, shortest form."""
        value = 0
        for i in range((bits + 6) // 7):
            b = self.u8()
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise self.bad("overlong varint")
                if value >> bits:
                    raise self.bad(f"varint does not fit u{bits}")
                return value
        raise self.bad("varint too long")

    def u32(self) -> int:
        return self.varint(32)

    def u64(self) -> int:
        return self.varint(64)

    def i64(self) -> int:
        z = self.u64()
        return (z >> 1) ^ -(z & 1)

    def boolean(self) -> bool:
        b = self.u8()
        if b > 1:
            raise self.bad("bool not 00 or 01")
        return b == 1

    def length(self, cap: Optional[int] = None) -> int:
        """A seq or byte-string length, capped by the bytes left (and ``cap``)."""
        n = self.u64()
        if (cap is not None and n > cap) or n > len(self.data) - self.pos:
            raise self.bad(f"length {n} too large")
        return n

    def byte_string(self) -> bytes:
        return self.fixed(self.length())

    def string(self) -> str:
        try:
            return self.byte_string().decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad("string not UTF-8") from None

    def seq(self, item: Callable, cap: Optional[int] = None) -> list:
        return [item() for _ in range(self.length(cap))]

    def option(self, item: Callable):
        return item() if self.boolean() else None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.bad("trailing bytes")


def pc_varint(n: int) -> bytes:
    """Postcard's unsigned LEB128 varint, shortest form."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pc_i64(n: int) -> bytes:
    """Zigzag, then varint (section 18.1)."""
    return pc_varint(((n << 1) ^ (n >> 63)) & ((1 << 64) - 1))


def pc_bytes(b: bytes) -> bytes:
    return pc_varint(len(b)) + b


# ==========================================================================
# Trees (FORMAT.md 18)
# ==========================================================================

TREE_VERSION = 2
MAX_TREE_BLOB = 64 * 1024 * 1024
MAX_TREE_NODES = 4194304
NODE_KINDS = ("file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket")
MAX_NAME, MAX_TARGET, MAX_XATTR_NAME, MAX_XATTR_VALUE = 4096, 4096, 255, 65536


@dataclass
class Node:
    """Section 18.2's Node; the kind's fields in content/subtree/target/rdev."""

    name: bytes
    kind: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime: int = 0
    mtime_ns: int = 0
    ctime: int = 0
    ctime_ns: int = 0
    inode: int = 0
    dev: int = 0
    nlink: int = 0
    size: int = 0
    xattrs: list = field(default_factory=list)  # [(name, value)]
    content: Optional[list] = None  # File: [("data", id, len) | ("hole", len)]
    subtree: Optional[bytes] = None  # Dir
    target: Optional[bytes] = None  # Symlink
    rdev: Optional[int] = None  # CharDevice, BlockDevice


def _decode_content_ref(r: PostcardReader) -> tuple:
    """Section 18.2 ContentRef: 0 Data { id [u8; 32], len u32 }, 1 Hole { len u64 }."""
    variant = r.u32()
    if variant == 0:
        return ("data", r.fixed(32), r.u32())
    if variant == 1:
        return ("hole", r.u64())
    raise r.bad(f"ContentRef variant {variant}")


def _decode_kind(r: PostcardReader, node: Node) -> None:
    """Section 18.2 NodeKind, fields into ``node``."""
    variant = r.u32()
    if variant >= len(NODE_KINDS):
        raise r.bad(f"NodeKind variant {variant}")
    node.kind = NODE_KINDS[variant]
    if node.kind == "file":
        node.content = r.seq(lambda: _decode_content_ref(r))
    elif node.kind == "dir":
        node.subtree = r.fixed(32)
    elif node.kind == "symlink":
        node.target = r.byte_string()
    elif node.kind in ("chardev", "blockdev"):
        node.rdev = r.u64()


def _decode_node(r: PostcardReader) -> Node:
    """Section 18.2 Node, fields in the table's order."""
    node = Node(name=r.byte_string(), kind="")
    _decode_kind(r, node)
    node.mode, node.uid, node.gid = r.u32(), r.u32(), r.u32()
    node.user, node.group = r.string(), r.string()
    node.mtime, node.mtime_ns = r.i64(), r.u32()
    node.ctime, node.ctime_ns = r.i64(), r.u32()
    node.inode, node.dev, node.nlink, node.size = r.u64(), r.u64(), r.u64(), r.u64()
    node.xattrs = r.seq(lambda: (r.byte_string(), r.byte_string()))
    return node


def encode_node(node: Node) -> bytes:
    """Section 18.2, the inverse of ``_decode_node`` (for rule 7 of 18.3)."""
    kind = pc_varint(NODE_KINDS.index(node.kind))
    if node.kind == "file":
        kind += pc_varint(len(node.content)) + b"".join(
            pc_varint(0) + p[1] + pc_varint(p[2]) if p[0] == "data" else pc_varint(1)
            + pc_varint(p[1]) for p in node.content)
    elif node.kind == "dir":
        kind += node.subtree
    elif node.kind == "symlink":
        kind += pc_bytes(node.target)
    elif node.kind in ("chardev", "blockdev"):
        kind += pc_varint(node.rdev)
    return (pc_bytes(node.name) + kind
            + b"".join(pc_varint(x) for x in (node.mode, node.uid, node.gid))
            + pc_bytes(node.user.encode()) + pc_bytes(node.group.encode())
            + pc_i64(node.mtime) + pc_varint(node.mtime_ns)
            + pc_i64(node.ctime) + pc_varint(node.ctime_ns)
            + b"".join(pc_varint(x) for x in (node.inode, node.dev, node.nlink, node.size))
            + pc_varint(len(node.xattrs))
            + b"".join(pc_bytes(k) + pc_bytes(v) for k, v in node.xattrs))


def encode_tree(nodes: list) -> bytes:
    """Section 18.2 Tree: version u8 (= 2), then the seq of nodes."""
    return bytes([TREE_VERSION]) + pc_varint(len(nodes)) + b"".join(map(encode_node, nodes))


def _check_node(node: Node, what: str) -> None:
    """Section 18.3 rule 5, one node."""
    name = node.name
    if not 1 <= len(name) <= MAX_NAME or b"/" in name or b"\x00" in name or name in (b".",
                                                                                     b".."):
        raise _fail(f"{what}: node name {name!r} not allowed")
    if node.mode > 0o7777:
        raise _fail(f"{what}: mode {node.mode:o} above 7777")
    if node.mtime_ns >= 10**9 or node.ctime_ns >= 10**9:
        raise _fail(f"{what}: nanoseconds out of range")
    if node.kind == "file":
        if any((p[2] if p[0] == "data" else p[1]) == 0 for p in node.content):
            raise _fail(f"{what}: {name!r} has a piece of length 0")
        total = sum(p[2] if p[0] == "data" else p[1] for p in node.content)
        if total != node.size or total >= 1 << 64:  # "summed without overflow" of u64
            raise _fail(f"{what}: {name!r}'s pieces add to {total}, size {node.size}")
    elif node.size != 0:
        raise _fail(f"{what}: {name!r} is a {node.kind} with size {node.size}")
    if node.kind == "symlink" and (not 1 <= len(node.target) <= MAX_TARGET
                                   or b"\x00" in node.target):
        raise _fail(f"{what}: symlink target of {name!r} not allowed")
    for xname, xvalue in node.xattrs:
        if not 1 <= len(xname) <= MAX_XATTR_NAME or b"\x00" in xname:
            raise _fail(f"{what}: xattr name {xname!r} not allowed")
        if len(xvalue) > MAX_XATTR_VALUE:
            raise _fail(f"{what}: xattr value of {xname!r} too long")
    _check_increasing([x[0] for x in node.xattrs], f"{what}: xattr names of {name!r}")


def _check_increasing(names: list, what: str) -> None:
    """Strictly increasing, bytes compared unsigned, a proper prefix first (Python's order)."""
    for a, b in zip(names, names[1:]):
        if not a < b:
            raise _fail(f"{what}: not strictly increasing ({a!r}, {b!r})")


def decode_tree(blob: bytes, what: str = "tree") -> list:
    """Section 18.3, rules 1-7 in order; returns the nodes."""
    if len(blob) > MAX_TREE_BLOB:                                     # rule 1
        raise _fail(f"{what}: {len(blob)} bytes, more than 64 MiB")
    r = PostcardReader(blob, what)
    if r.u8() != TREE_VERSION:                                        # rule 2
        raise _fail(f"{what}: version is not 2")
    nodes = r.seq(lambda: _decode_node(r), cap=MAX_TREE_NODES)       # rules 3, 4
    r.end()                                                           # rule 4
    for node in nodes:                                                # rule 5
        _check_node(node, what)
    _check_increasing([n.name for n in nodes], f"{what}: node names")  # rule 6
    if encode_tree(nodes) != blob:                                    # rule 7
        raise _fail(f"{what}: re-encoding differs")
    return nodes


# ==========================================================================
# Snapshots (FORMAT.md 19)
# ==========================================================================

SNAPSHOT_VERSION = 2
MAX_SNAPSHOT = 16 * 1024 * 1024
SUMMARY_FIELDS = ("files", "dirs", "others", "bytes", "files_read", "bytes_read", "new_blobs",
                  "new_trees", "new_raw_bytes", "new_stored_bytes", "packs", "duration_ms")


@dataclass
class Snapshot:
    id: bytes
    time: int
    time_ns: int
    host: str
    user: str
    paths: list
    tags: list
    parent: Optional[bytes]
    tree: bytes
    program: str
    command: Optional[str]
    summary: dict


def decode_snapshot(snapshot_id: bytes, pt: bytes, what: str) -> Snapshot:
    """Section 19: the postcard record, fields in the table's order.

    GUESS (19): ``summary`` "12 x u64" read as a fixed array, 12 varints, no length.
    """
    if len(pt) > MAX_SNAPSHOT:  # GUESS (19): "more than 16 MiB" of plaintext
        raise _fail(f"{what}: more than 16 MiB")
    r = PostcardReader(pt, what)
    if r.u8() != SNAPSHOT_VERSION:
        raise _fail(f"{what}: version is not 2")
    time, time_ns = r.i64(), r.u32()
    if time_ns >= 10**9:
        raise _fail(f"{what}: time_ns out of range")
    host, user = r.string(), r.string()
    paths, tags = r.seq(r.byte_string), r.seq(r.string)
    parent, tree = r.option(lambda: r.fixed(16)), r.fixed(32)
    program, command = r.string(), r.option(r.string)
    summary = dict(zip(SUMMARY_FIELDS, (r.u64() for _ in SUMMARY_FIELDS)))
    r.end()
    return Snapshot(snapshot_id, time, time_ns, host, user, paths, tags, parent, tree,
                    program, command, summary)


# ==========================================================================
# The repository (FORMAT.md 21)
# ==========================================================================

HEX32 = re.compile(r"^[0-9a-f]{32}$")


class Repository:
    """A v2 repository in a local folder, opened with a KEK or a passphrase (section 21)."""

    def __init__(self, root: str, kek: Optional[bytes] = None,
                 passphrase: Optional[bytes] = None):
        self.root = root
        config_bytes = self._read("config")
        self.repo_id = config_repo_id(config_bytes)
        self.keys = open_key_files(self._key_files(), self.repo_id, kek, passphrase)
        self.config = open_config(config_bytes, self.keys)
        if not self.keys.full:
            self.keys.public_key = self.config.public_key  # section 12: write-only keys
        self._blobs = None  # (id, kind) -> [(pack ID, pack length, TocEntry)]
        self._packs = {}  # pack ID -> (file, RandomAccessMessage, {(id, kind): TocEntry})

    # -- storage ----------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("/"))

    def _read(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise _fail(f"{name}: missing") from None

    def _list(self, folder: str) -> list:
        """Object names under ``folder`` ending in 32 hex digits (section 21); others ignored."""
        try:
            names = sorted(os.listdir(self._path(folder)))
        except FileNotFoundError:
            return []
        return [f"{folder}/{n}" for n in names if HEX32.match(n)]

    def _key_files(self) -> list:
        return [(name, self._read(name)) for name in self._list("keys")]

    # -- snapshots (section 19) -----------------------------------------

    def _require_full(self) -> None:
        if not self.keys.full:
            raise _fail("a write-only key opens no pack and no snapshot (section 12)")

    def snapshot(self, name: str) -> Snapshot:
        """Open ``snapshots/<hex>`` (a recipient-sealed object of kind 2) and decode it."""
        self._require_full()
        with open(self._path(name), "rb") as f:
            ra = open_recipient_object(f, self.keys.private_key, self.repo_id, name,
                                       KIND_SNAPSHOT)
            pt = _read_capped(ra, MAX_SNAPSHOT, name)
        return decode_snapshot(bytes.fromhex(name.split("/")[1]), pt, name)

    def snapshots(self) -> list:
        """Every snapshot, oldest first."""
        snaps = [self.snapshot(name) for name in self._list("snapshots")]
        return sorted(snaps, key=lambda s: (s.time, s.time_ns, s.id))

    def find_snapshot(self, prefix: str) -> Snapshot:
        """The one snapshot whose hex ID starts with ``prefix``."""
        names = [n for n in self._list("snapshots") if n.split("/")[1].startswith(prefix.lower())]
        if len(names) != 1:
            raise _fail(f"{len(names)} snapshots match {prefix!r}; give a longer prefix"
                        if names else f"no snapshot matches {prefix!r}")
        return self.snapshot(names[0])

    # -- indexes (section 17) -------------------------------------------

    def _load_indexes(self) -> None:
        indexes = {}
        for name in self._list("index"):
            data = self._read(name)  # section 17 caps no index: its own size bounds it
            pt = open_symmetric_object(data, self.keys.index_key, b"coffer/v2 index",
                                       self.repo_id, name, len(data))
            indexes[bytes.fromhex(name.split("/")[1])] = parse_index(pt, name)
        self._blobs = {}
        for idx in live_indexes(indexes):
            for pack_id, pack_len, entries in idx.packs:
                for e in entries:
                    self._blobs.setdefault((e.id, e.kind), []).append((pack_id, pack_len, e))

    def _locate(self, blob_id: bytes, kind: int) -> tuple:
        """The first index entry for the blob.

        GUESS (16, 17): a blob is looked up by (ID, kind); when no entry has that kind,
        by ID alone (chunk IDs do not depend on kind; the content is verified anyway).
        """
        if self._blobs is None:
            self._load_indexes()
        hits = self._blobs.get((blob_id, kind))
        if not hits:
            hits = self._blobs.get((blob_id, 1 - kind))
        if not hits:
            raise _fail(f"blob {blob_id.hex()} is in no index")
        return hits[0]

    # -- packs (section 16) ---------------------------------------------

    @staticmethod
    def pack_name(pack_id: bytes) -> str:
        """Section 16: data/ || first two hex digits || / || 32 hex digits."""
        h = pack_id.hex()
        return f"data/{h[:2]}/{h}"

    def _open_pack(self, pack_id: bytes, pack_len: int) -> tuple:
        """Open a pack once: object, stream, table of contents (checked against its length)."""
        if pack_id in self._packs:
            return self._packs[pack_id]
        name = self.pack_name(pack_id)
        f = open(self._path(name), "rb")
        size = f.seek(0, 2)
        if size != pack_len:  # GUESS (17): "the pack object's length" is its size in storage
            f.close()
            raise _fail(f"{name}: {size} bytes, the index says {pack_len}")
        ra = open_recipient_object(f, self.keys.private_key, self.repo_id, name, KIND_PACK)
        toc = {(e.id, e.kind): e for e in read_pack_toc(ra, name)}
        self._packs[pack_id] = (f, ra, toc)
        return self._packs[pack_id]

    def read_blob(self, blob_id: bytes, kind: int) -> bytes:
        """A blob's verified plaintext; the index entry must be the pack's own entry."""
        self._require_full()
        pack_id, pack_len, entry = self._locate(blob_id, kind)
        name = self.pack_name(pack_id)
        _, ra, toc = self._open_pack(pack_id, pack_len)
        if toc.get((entry.id, entry.kind)) != entry:
            raise _fail(f"{name}: the index's entry for {blob_id.hex()} is not the pack's")
        return blob_plaintext(ra, entry, self.keys.chunk_id_key, name)

    def tree(self, tree_id: bytes) -> list:
        """Section 18: a tree blob (kind 1), decoded under 18.3's rules."""
        return decode_tree(self.read_blob(tree_id, BLOB_TREE), f"tree {tree_id.hex()}")

    def close(self) -> None:
        for f, _, _ in self._packs.values():
            f.close()
        self._packs = {}


# ==========================================================================
# Restore (FORMAT.md 18.4)
# ==========================================================================


SPARSE_BLOCK = 4096


def write_sparse(fd: int, data: bytes, pos: int) -> None:
    """Write ``data`` at ``pos``, skipping whole 4 KiB file blocks of zeros (section 18.4
    allows it; the final ftruncate gives the file its length)."""
    start = 0
    while start < len(data):
        end = min(len(data), (pos + start) // SPARSE_BLOCK * SPARSE_BLOCK + SPARSE_BLOCK - pos)
        block = data[start:end]
        if len(block) < SPARSE_BLOCK or any(block):
            os.pwrite(fd, block, pos + start)
        start = end


class Restorer:
    """Restores one snapshot's root tree into a target folder (section 18.4)."""

    def __init__(self, repo: Repository, target: bytes, warn: Callable[[str], None]):
        self.repo = repo
        self.target = target
        self.warn = warn
        self.is_root = os.geteuid() == 0
        self.links = {}  # (dev, inode) -> first restored path (hard links)

    def restore(self, snapshot: Snapshot) -> None:
        """The root tree's nodes go under the target; the target's own metadata is kept."""
        os.makedirs(self.target, exist_ok=True)
        if os.listdir(self.target):
            raise _fail("the target folder is not empty")
        self.restore_tree(snapshot.tree, self.target)

    def restore_tree(self, tree_id: bytes, folder: bytes) -> None:
        for node in self.repo.tree(tree_id):
            self.restore_node(node, os.path.join(folder, node.name))

    def restore_node(self, node: Node, path: bytes) -> None:
        """Create one node, then apply its metadata (a directory's after its contents)."""
        if node.kind == "dir":
            os.mkdir(path, 0o700)
            self.restore_tree(node.subtree, path)
        elif node.kind == "file":
            if self.link_existing(node, path):
                return
            self.write_file(node, path)
        elif node.kind == "symlink":
            os.symlink(node.target, path)
        elif node.kind == "fifo":
            os.mkfifo(path, 0o600)
        elif node.kind in ("chardev", "blockdev"):
            if not self.is_root:
                self.warn(f"{os.fsdecode(path)}: device node not created (not root)")
                return
            kind = stat.S_IFCHR if node.kind == "chardev" else stat.S_IFBLK
            os.mknod(path, 0o600 | kind, node.rdev)
        else:
            self.warn(f"{os.fsdecode(path)}: socket not created")
            return
        self.apply_metadata(node, path)

    def link_existing(self, node: Node, path: bytes) -> bool:
        """Section 18.4 hard links: files with the same (dev, inode) and nlink > 1."""
        if node.nlink <= 1:
            return False
        key = (node.dev, node.inode)
        first = self.links.get(key)
        if first is None:
            self.links[key] = path
            return False
        os.link(first, path, follow_symlinks=False)
        return True

    def write_file(self, node: Node, path: bytes) -> None:
        """Data pieces written at their offsets, holes skipped, length set to size last."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            pos = 0
            for piece in node.content:
                if piece[0] == "hole":
                    pos += piece[1]
                    continue
                data = self.repo.read_blob(piece[1], BLOB_DATA)
                if len(data) != piece[2]:
                    raise _fail(f"{os.fsdecode(path)}: chunk of {len(data)} bytes, "
                                f"the tree says {piece[2]}")
                write_sparse(fd, data, pos)
                pos += len(data)
            os.ftruncate(fd, node.size)
        finally:
            os.close(fd)

    def apply_metadata(self, node: Node, path: bytes) -> None:
        """Ownership (root only), xattrs, mode (not symlinks), then mtime (atime = mtime)."""
        is_link = node.kind == "symlink"
        if self.is_root:
            os.chown(path, self.owner_uid(node), self.owner_gid(node), follow_symlinks=False)
        for name, value in node.xattrs:
            self.set_xattr(path, name, value)
        if not is_link:
            os.chmod(path, node.mode)
        t = node.mtime * 10**9 + node.mtime_ns
        os.utime(path, ns=(t, t), follow_symlinks=False)

    def set_xattr(self, path: bytes, name: bytes, value: bytes) -> None:
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
                raise
            self.warn(f"{os.fsdecode(path)}: xattr {os.fsdecode(name)} not set: {e.strerror}")

    @staticmethod
    def owner_uid(node: Node) -> int:
        """The recorded user name if it exists here, else the recorded number."""
        try:
            return pwd.getpwnam(node.user).pw_uid if node.user else node.uid
        except KeyError:
            return node.uid

    @staticmethod
    def owner_gid(node: Node) -> int:
        try:
            return grp.getgrnam(node.group).gr_gid if node.group else node.gid
        except KeyError:
            return node.gid


# ==========================================================================
# Command line
# ==========================================================================


def _read_kek(path: str) -> bytes:
    """A KEK file: 64 hex digits (surrounding whitespace ignored)."""
    with open(path, "r", encoding="ascii") as f:
        text = f.read().strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise _fail(f"{path}: a KEK file holds 64 hex digits")
    return bytes.fromhex(text)


def _read_passphrase(path: str) -> bytes:
    """A passphrase file: its bytes, one trailing newline removed (no other normalisation)."""
    with open(path, "rb") as f:
        data = f.read()
    return data[:-1] if data.endswith(b"\n") else data


def format_snapshot(s: Snapshot) -> str:
    """One line: id, time (UTC, nanoseconds), host, paths."""
    try:
        when = datetime.datetime.fromtimestamp(s.time, datetime.timezone.utc)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S") + f".{s.time_ns:09d}Z"
    except (OverflowError, ValueError, OSError):  # a time no calendar date can show
        stamp = f"{s.time}.{s.time_ns:09d}"
    paths = " ".join(os.fsdecode(p) for p in s.paths)
    return f"{s.id.hex()}  {stamp}  {s.host}  {paths}"


def _open_repo(args) -> Repository:
    kek = _read_kek(args.kek_file) if args.kek_file else None
    passphrase = _read_passphrase(args.passphrase_file) if args.passphrase_file else None
    return Repository(args.repo, kek=kek, passphrase=passphrase)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Read a Coffer v2 repository (FORMAT.md Part II).")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("snapshots", "restore"):
        s = sub.add_parser(name)
        s.add_argument("--repo", required=True, help="the repository's folder")
        key = s.add_mutually_exclusive_group(required=True)
        key.add_argument("--kek-file", help="a file holding the KEK as 64 hex digits")
        key.add_argument("--passphrase-file", help="a file holding the passphrase")
        if name == "restore":
            s.add_argument("--snapshot", required=True, help="a prefix of the snapshot's hex ID")
            s.add_argument("--target", required=True, help="an empty or new folder")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    warnings = []
    try:
        repo = _open_repo(args)
        try:
            if args.command == "snapshots":
                for s in repo.snapshots():
                    print(format_snapshot(s))
            else:
                snap = repo.find_snapshot(args.snapshot)
                Restorer(repo, os.fsencode(args.target), warnings.append).restore(snap)
        finally:
            repo.close()
    except (RepoError, cr.CofferError, OSError) as e:
        print(f"coffer_repo: {e}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"coffer_repo: warning: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
