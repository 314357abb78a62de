#!/usr/bin/env python3
"""Independent reader for recovery kits and the lite server's self-backups.

Written from FORMAT.md Part III alone (no Rust code consulted), on top of
``coffer_reader`` (Part I: key IDs, sealed streams, passphrase envelopes) and
``coffer_repo`` (RFC 9180 DeriveKeyPair and HPKE base-mode open):

* section 25: recovery kits, text (``parse_recovery_kit``, ``recovery_kit``);
* section 26: server self-backups ``COFFER/B`` (``open_self_backup``): the
  header, the recovery key (from a kit, or from the passphrase envelope), the
  public key derived from it, the backup key sealed with HPKE, the sealed
  stream, the payload's entries and the metadata record.

Command line::

    coffer_selfbackup.py FILE (--kit-file KITFILE | --passphrase-file FILE)
                         [--extract-db OUT] [--json]

prints the metadata record (``--json``: as JSON) and, with ``--extract-db``,
writes ``database.sqlite`` to OUT, which must not exist yet. Exit status 0 on
success; otherwise non-zero, with the error on stderr.

Every failure is a ``RecoveryKitError`` or a ``SelfBackupError`` whose
``condition`` names what is wrong; errors of the layers underneath (a
``CofferError`` of the passphrase envelope or of the stream) keep their
FORMAT.md name as ``condition``, and the message says which part failed.
Checks run in the order FORMAT.md gives. No payload byte is released before
every chunk of the stream has verified.

Where FORMAT.md leaves a choice open, the guess taken is marked ``GUESS`` in a
comment, with its section.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coffer_reader as cr  # noqa: E402
import coffer_repo as cr_repo  # noqa: E402
from cryptography.exceptions import InvalidTag  # noqa: E402

__all__ = [
    "RecoveryKitError",
    "SelfBackupError",
    "parse_recovery_kit",
    "recovery_kit",
    "recovery_key_pair",
    "self_backup_context",
    "parse_payload",
    "check_metadata",
    "open_self_backup",
    "main",
]


# ==========================================================================
# Recovery kits (FORMAT.md 25)
# ==========================================================================

KIT_TITLE = "COFFER RECOVERY KIT v1"
KIT_KEY_ID_PREFIX = "key id:"
KIT_CHECKSUM_LABEL = b"coffer recovery kit v1"
KIT_CHARS = 56  # base32 of 35 bytes, no padding
KIT_IGNORED = " \t-"
KIT_CONFUSABLES = {"0": "O", "1": "I", "8": "B"}
BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# GUESS 25: "trims spaces at both ends of each line" is read as spaces, tabs and a
# carriage return (a kit saved with CRLF line ends); nothing else is trimmed.
KIT_TRIM = " \t\r"


class RecoveryKitError(ValueError):
    """A recovery kit FORMAT.md 25 refuses; ``condition`` names the rule."""

    def __init__(self, condition: str, message: str):
        self.condition = condition
        super().__init__(f"recovery kit: {message}")


def _kit_checksum(key: bytes) -> bytes:
    """c = the first 3 bytes of SHA-256("coffer recovery kit v1" || 0x00 || R)."""
    return hashlib.sha256(KIT_CHECKSUM_LABEL + b"\x00" + key).digest()[:3]


def _ascii_lower(s: str) -> str:
    """Lower-case ASCII letters only (str.lower() would fold e.g. KELVIN SIGN into k)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def recovery_kit(key: bytes) -> str:
    """The text form of FORMAT.md 25: title, key ID line, two lines of seven groups of four."""
    key = cr._check_key(key)
    body = base64.b32encode(key + _kit_checksum(key)).decode("ascii")
    assert len(body) == KIT_CHARS and "=" not in body
    groups = [body[i:i + 4] for i in range(0, KIT_CHARS, 4)]
    # GUESS 25: each line, the last included, ends with one "\n".
    return "\n".join([KIT_TITLE, "Key ID: " + cr.key_id(key).hex(),
                      " ".join(groups[:7]), " ".join(groups[7:])]) + "\n"


def parse_recovery_kit(text: bytes) -> bytes:
    """Read a recovery kit (FORMAT.md 25) and return the 32-byte key R.

    In the order of 25: blank lines skipped, lines trimmed; the first line is the
    title (any case); a line starting "Key ID:" (any case) gives the expected key ID;
    every other character of the remaining lines is read, spaces, tabs and "-"
    ignored, letters upper-cased, 0 1 8 read as O I B; any other character, a count
    other than 56, a checksum that does not match and a key ID line that is not
    key_id(R) are refused.
    """
    if isinstance(text, str):
        raise TypeError("a recovery kit is given as bytes (the file's content)")
    try:
        # GUESS 25: the kit's text is decoded as UTF-8 (a kit is ASCII; any non-ASCII
        # character is then refused by name below). No byte-order mark is skipped.
        s = bytes(text).decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecoveryKitError("NotText", f"not UTF-8 text (byte {e.start})") from None
    # GUESS 25: lines end at "\n" (a "\r" before it is trimmed, see KIT_TRIM).
    lines = [line.strip(KIT_TRIM) for line in s.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        raise RecoveryKitError("NoTitle", "empty: no title line")
    if _ascii_lower(lines[0]) != _ascii_lower(KIT_TITLE):
        raise RecoveryKitError("BadTitle", f"the first line is {lines[0][:40]!r}, "
                                           f"not the title {KIT_TITLE!r}")
    expected_id = None
    chars = []
    for number, line in enumerate(lines[1:], start=2):
        if _ascii_lower(line[:len(KIT_KEY_ID_PREFIX)]) == KIT_KEY_ID_PREFIX:
            value = line[len(KIT_KEY_ID_PREFIX):].strip(KIT_TRIM)
            # GUESS 25: upper-case hex digits are accepted too (a person may type them).
            if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
                raise RecoveryKitError("BadKeyIdLine",
                                       f"line {number}: the key ID is not 32 hex digits")
            if expected_id is not None:
                # GUESS 25: FORMAT.md speaks of "a line"; a second one is refused.
                raise RecoveryKitError("BadKeyIdLine", f"line {number}: a second Key ID line")
            expected_id = bytes.fromhex(value)
            continue
        for c in line:
            if c in KIT_IGNORED:
                continue
            u = c.upper() if "a" <= c <= "z" else c
            u = KIT_CONFUSABLES.get(u, u)
            if u not in BASE32_ALPHABET:
                raise RecoveryKitError("BadCharacter",
                                       f"line {number}: character {c!r} is not base32")
            chars.append(u)
    if len(chars) != KIT_CHARS:
        raise RecoveryKitError("BadLength", f"{len(chars)} base32 characters, not {KIT_CHARS}")
    raw = base64.b32decode("".join(chars))  # 56 characters: 35 bytes, no padding
    key, checksum = raw[:32], raw[32:]
    if not hmac.compare_digest(_kit_checksum(key), checksum):
        raise RecoveryKitError("BadChecksum", "the checksum does not match (a character "
                                              "was mistyped)")
    if expected_id is not None and not hmac.compare_digest(cr.key_id(key), expected_id):
        raise RecoveryKitError("KeyIdMismatch",
                               f"its Key ID line says {expected_id.hex()}, the key's ID is "
                               f"{cr.key_id(key).hex()}")
    return key


# ==========================================================================
# Server self-backups (FORMAT.md 26)
# ==========================================================================

SB_MAGIC = b"COFFER/B"
SB_VERSION = 0x01
SB_FLAG_PASSPHRASE = 0x01
SB_HEADER_LEN = 64
SB_ENVELOPE_LEN = cr.PASSPHRASE_ENVELOPE_LEN  # 168
SB_SEALED_KEY_LEN = 80  # enc (32) || encrypted B (32) || tag (16)
SB_CONTEXT = b"coffer-server/v1 self-backup"
SB_X25519_INFO = b"coffer-server/v1 self-backup x25519"
SB_ENVELOPE_CONTEXT = b"coffer-server/v1 self-backup recovery-key"
SB_ENVELOPE_PURPOSE = "MasterKey"
SB_ENVELOPE_KEY_VERSION = 1

ENTRY_NAMES = ("metadata.json", "kek", "config.json", "database.sqlite")
REASONS = ("manual", "scheduled", "pre-restore", "pre-upgrade")
COUNT_FIELDS = ("tenants", "agents", "jobs", "runs", "restore_points")
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX32 = re.compile(r"[0-9a-f]{32}")
# RFC 3339 date-time (section 5.6), in UTC. GUESS 26.4: "RFC 3339, UTC" is read as the
# offset "Z" or "+00:00" ("-00:00", unknown offset, refused), fraction optional.
RFC3339_UTC = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                         r"(\.[0-9]+)?([Zz]|\+00:00)", re.ASCII)


class SelfBackupError(Exception):
    """A self-backup FORMAT.md 26 calls invalid, or one that cannot be opened.

    ``condition``: ``Truncated``, ``BadMagic``, ``UnsupportedVersion``,
    ``ReservedBitsSet`` (a flag bit or a reserved byte), ``NoPassphraseEnvelope``,
    ``MalformedEnvelope`` (its key version is not 1),
    ``AnotherRecoveryKey``, ``PublicKeyMismatch``, ``Damaged`` (B does not
    open), ``SuiteNotAes256Gcm``, ``MalformedPayload``, ``MalformedMetadata``,
    ``MetadataMismatch``, ``InvalidKeyLength``; or the FORMAT.md name of a
    ``CofferError`` of the passphrase envelope or the stream (``cause``).
    """

    def __init__(self, condition: str, message: str, cause: Optional[Exception] = None):
        self.condition = condition
        self.cause = cause
        super().__init__(f"self-backup: {message}")


def _sb(condition: str, message: str, cause=None) -> SelfBackupError:
    return SelfBackupError(condition, message, cause)


def recovery_key_pair(recovery_key: bytes) -> tuple:
    """FORMAT.md 26.1: ikm = HKDF-Expand-SHA-512(R, "... x25519", 32); DeriveKeyPair(ikm)."""
    ikm = cr.hkdf_expand_sha512(cr._check_key(recovery_key), SB_X25519_INFO, 32)
    return cr_repo.derive_key_pair(ikm)


def self_backup_context(header: bytes) -> bytes:
    """FORMAT.md 26.2: ctx = "coffer-server/v1 self-backup" || bytes 0..64."""
    assert len(header) == SB_HEADER_LEN
    return SB_CONTEXT + header


@dataclass
class SelfBackupHeader:
    version: int
    flags: int
    recovery_key_id: bytes
    public_key: bytes
    envelope: Optional[bytes]
    sealed_key_offset: int

    @property
    def has_envelope(self) -> bool:
        return bool(self.flags & SB_FLAG_PASSPHRASE)


def _parse_header(data: bytes) -> SelfBackupHeader:
    """FORMAT.md 26.2: magic, version, flags, reserved bytes (in this order)."""
    # GUESS 26.2: FORMAT.md gives no place for "the file is too short"; as in 5.3, a
    # field is checked as soon as its byte is present, and the 64-byte header is
    # required before the reserved bytes.
    if len(data) < 8:
        raise _sb("Truncated", f"{len(data)} bytes, shorter than the 8-byte magic")
    if data[0:8] != SB_MAGIC:
        raise _sb("BadMagic", f"magic {data[0:8].hex()} is not COFFER/B")
    if len(data) < 9:
        raise _sb("Truncated", "ends before the version byte")
    if data[8] != SB_VERSION:
        raise _sb("UnsupportedVersion", f"version {data[8]}, this reader knows 1")
    if len(data) < 10:
        raise _sb("Truncated", "ends before the flags byte")
    if data[9] & ~SB_FLAG_PASSPHRASE:
        raise _sb("ReservedBitsSet", f"flags 0x{data[9]:02x}: a bit other than bit 0 is set")
    if len(data) < SB_HEADER_LEN:
        raise _sb("Truncated", f"{len(data)} bytes, shorter than the 64-byte header")
    if any(data[10:16]):
        raise _sb("ReservedBitsSet", f"reserved bytes 10..16 are {data[10:16].hex()}, not zero")
    flags = data[9]
    offset = SB_HEADER_LEN
    envelope = None
    if flags & SB_FLAG_PASSPHRASE:
        offset += SB_ENVELOPE_LEN
        envelope = data[SB_HEADER_LEN:offset]  # may be short: checked where it is used
    return SelfBackupHeader(data[8], flags, data[16:32], data[32:64], envelope, offset)


def _recovery_key_from_passphrase(data: bytes, header: SelfBackupHeader,
                                  passphrase: bytes) -> bytes:
    """FORMAT.md 26.1/26.2: open the passphrase envelope of R (section 7)."""
    if not header.has_envelope:
        raise _sb("NoPassphraseEnvelope", "flag bit 0 is clear: this file has no passphrase "
                                          "envelope, open it with the recovery kit")
    if len(data) < SB_HEADER_LEN + SB_ENVELOPE_LEN:
        raise _sb("Truncated", "ends inside the passphrase envelope (bytes 64..232)")
    try:
        out = cr.unwrap_passphrase_envelope(header.envelope, passphrase, SB_ENVELOPE_PURPOSE,
                                            SB_ENVELOPE_CONTEXT)
    except cr.CofferError as e:
        raise _sb(e.name, f"passphrase envelope (bytes 64..232): {e}", e) from None
    # GUESS 26.1: "key version 1" is taken as a reader check, as coffer_repo.py does
    # for key files (section 21).
    if out.key_version != SB_ENVELOPE_KEY_VERSION:
        raise _sb("MalformedEnvelope", f"passphrase envelope: key version {out.key_version}, "
                                       f"not {SB_ENVELOPE_KEY_VERSION}")
    if not hmac.compare_digest(out.wrapped_key_id, header.recovery_key_id):
        raise _sb("AnotherRecoveryKey",
                  f"the passphrase envelope wraps key {out.wrapped_key_id.hex()}, the file "
                  f"names recovery key {header.recovery_key_id.hex()}")
    return out.wrapped_key


def _open_backup_key(data: bytes, header: SelfBackupHeader, secret_key: bytes) -> bytes:
    """FORMAT.md 26.2: B, sealed with HPKE base mode to pk, info = ctx, empty AAD."""
    off = header.sealed_key_offset
    if len(data) < off + SB_SEALED_KEY_LEN:
        raise _sb("Truncated", f"ends inside the sealed backup key (bytes {off}..{off + 80})")
    sealed = data[off:off + SB_SEALED_KEY_LEN]
    ctx = self_backup_context(data[:SB_HEADER_LEN])
    try:
        backup_key = cr_repo.hpke_open_base(secret_key, sealed[:32], ctx, b"", sealed[32:])
    except (InvalidTag, ValueError):
        raise _sb("Damaged", f"the backup key (bytes {off}..{off + 80}) does not open: "
                             f"the file is damaged") from None
    if len(backup_key) != cr.KEY_LEN:  # cannot happen: 48 bytes of ct open to 32
        raise _sb("Damaged", "the backup key is not 32 bytes")
    return backup_key


def _open_payload(data: bytes, header: SelfBackupHeader, backup_key: bytes) -> bytes:
    """FORMAT.md 26.2: the sealed stream under B, context ctx; every chunk verified
    before any payload byte is returned (5.3)."""
    start = header.sealed_key_offset + SB_SEALED_KEY_LEN
    ctx = self_backup_context(data[:SB_HEADER_LEN])
    f = io.BytesIO(data)
    f.seek(start)
    try:
        stream = cr.open_sealed_stream(f, backup_key, ctx)
        # GUESS 26.2: the stream "suite AES-256-GCM" is taken as a reader check; the
        # suite byte is authenticated (it is in the stream's ctx), so it is checked
        # after the commitment and before any chunk.
        if stream.header[9] != cr_repo.SUITE_AES_256_GCM:
            raise _sb("SuiteNotAes256Gcm", f"the payload stream's suite is {stream.header[9]}, "
                                           f"FORMAT.md 26.2 says AES-256-GCM (1)")
        payload = stream.read_all()  # joins the chunks only after the final one verified
    except cr.CofferError as e:
        raise _sb(e.name, f"payload stream (from byte {start}): {e}", e) from None
    if not stream.complete:  # read_all returns only after a clean end
        raise _sb("Truncated", "payload stream: no clean end")
    return payload


def parse_payload(payload: bytes) -> dict:
    """FORMAT.md 26.3: u16be(name length) || name || u64be(content length) || content,
    to the end; the four entries, each once, in their order. Returns name -> bytes."""
    entries = {}
    pos, n = 0, len(payload)
    while pos < n:
        at = pos
        if n - pos < 2:
            raise _sb("MalformedPayload", f"payload ends inside the name length of the entry "
                                          f"at byte {at}")
        name_len = int.from_bytes(payload[pos:pos + 2], "big")
        pos += 2
        if n - pos < name_len:
            raise _sb("MalformedPayload", f"payload ends inside the name of the entry at byte {at}")
        raw_name = payload[pos:pos + name_len]
        pos += name_len
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise _sb("MalformedPayload", f"the name of the entry at byte {at} is not "
                                          f"UTF-8") from None
        if n - pos < 8:
            raise _sb("MalformedPayload", f"payload ends inside the content length of entry "
                                          f"{name!r}")
        size = int.from_bytes(payload[pos:pos + 8], "big")
        pos += 8
        if n - pos < size:
            raise _sb("MalformedPayload", f"payload ends inside the content of entry {name!r} "
                                          f"({size} bytes announced, {n - pos} left)")
        if name in entries:
            raise _sb("MalformedPayload", f"entry {name!r} is given twice")
        entries[name] = payload[pos:pos + size]
        pos += size
    # GUESS 26.3: "to the end of the payload, in this order" is taken as: exactly the
    # four entries of the table, in its order; an unknown name or a missing entry is
    # refused (FORMAT.md names neither case).
    names = list(entries)
    for name in names:
        if name not in ENTRY_NAMES:
            raise _sb("MalformedPayload", f"unknown entry {name!r} (26.3 names "
                                          f"{', '.join(ENTRY_NAMES)})")
    for name in ENTRY_NAMES:
        if name not in entries:
            raise _sb("MalformedPayload", f"entry {name!r} is missing")
    if tuple(names) != ENTRY_NAMES:
        raise _sb("MalformedPayload", f"entries in the order {', '.join(names)}, not "
                                      f"{', '.join(ENTRY_NAMES)}")
    if len(entries["kek"]) != cr.KEY_LEN:
        raise _sb("MalformedPayload", f"entry 'kek' is {len(entries['kek'])} bytes, not 32")
    return entries


def _no_duplicate_keys(what: str, condition: str):
    def hook(pairs):
        obj = {}
        for k, v in pairs:
            if k in obj:
                # GUESS 26.4: a JSON object with a field given twice is refused.
                raise _sb(condition, f"{what}: field {k!r} given twice")
            obj[k] = v
        return obj
    return hook


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _parse_json(raw: bytes, what: str, condition: str):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _sb(condition, f"{what} is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(what, condition),
                          parse_constant=_not_json)
    except ValueError as e:  # json.JSONDecodeError
        raise _sb(condition, f"{what} is not JSON: {e}") from None
    except RecursionError:
        raise _sb(condition, f"{what}: JSON nested too deeply") from None


def check_metadata(raw: bytes) -> dict:
    """FORMAT.md 26.4: the metadata record, every field of the table with its type.

    Unknown fields are ignored (kept in the returned dict)."""
    meta = _parse_json(raw, "metadata.json", "MalformedMetadata")
    if not isinstance(meta, dict):
        raise _sb("MalformedMetadata", "metadata.json is not a JSON object")

    def bad(field, why):
        return _sb("MalformedMetadata", f"metadata.json: {field} {why}")

    # GUESS 26.4: every field of the table is required, with the type it gives;
    # integers are JSON integers (not 1.0, not true), sizes and counts not negative.
    for field, kind in (("format", "int"), ("server_version", "str"), ("schema_version", "int"),
                        ("created_at", "str"), ("reason", "str"), ("counts", "object"),
                        ("database", "object"), ("config_sha256", "str"), ("kek_id", "str")):
        if field not in meta:
            raise bad(field, "is missing")
        v = meta[field]
        ok = {"int": _is_int(v), "str": isinstance(v, str),
              "object": isinstance(v, dict)}[kind]
        if not ok:
            raise bad(field, f"is not a JSON {'integer' if kind == 'int' else kind}")
    # GUESS 26.4: a format other than 1 is refused (it is the record's version).
    if meta["format"] != 1:
        raise bad("format", f"is {meta['format']}, this reader knows 1")
    if meta["schema_version"] < 0:
        raise bad("schema_version", "is negative")
    m = RFC3339_UTC.fullmatch(meta["created_at"])
    if not m:
        raise bad("created_at", f"{meta['created_at']!r} is not an RFC 3339 time in UTC")
    try:
        datetime.datetime(*(int(m.group(i)) for i in range(1, 7)))
    except ValueError:
        # GUESS 26.4: a leap second (:60) is refused like any impossible date.
        raise bad("created_at", f"{meta['created_at']!r} is not a valid date and time") from None
    if meta["reason"] not in REASONS:
        raise bad("reason", f"{meta['reason']!r} is not one of {', '.join(REASONS)}")
    for field in COUNT_FIELDS:
        v = meta["counts"].get(field)
        if not _is_int(v) or v < 0:
            raise bad(f"counts.{field}", "is missing or not an integer >= 0")
    size = meta["database"].get("size")
    if not _is_int(size) or size < 0:
        raise bad("database.size", "is missing or not an integer >= 0")
    digest = meta["database"].get("sha256")
    # GUESS 26.4: "64 hex digits" is lowercase, as section 1 writes hex.
    if not isinstance(digest, str) or not HEX64.fullmatch(digest):
        raise bad("database.sha256", "is missing or not 64 lowercase hex digits")
    if not HEX64.fullmatch(meta["config_sha256"]):
        raise bad("config_sha256", "is not 64 lowercase hex digits")
    if not HEX32.fullmatch(meta["kek_id"]):
        raise bad("kek_id", "is not 32 lowercase hex digits")
    return meta


def _check_entries_against_metadata(entries: dict, meta: dict) -> None:
    """FORMAT.md 26.3: database.sqlite's length and SHA-256 are the metadata's; and
    config.json's SHA-256 and the KEK's ID (26.4)."""
    db = entries["database.sqlite"]
    if len(db) != meta["database"]["size"]:
        raise _sb("MetadataMismatch", f"database.sqlite is {len(db)} bytes, the metadata "
                                      f"says {meta['database']['size']}")
    if hashlib.sha256(db).hexdigest() != meta["database"]["sha256"]:
        raise _sb("MetadataMismatch", "database.sqlite's SHA-256 is not the metadata's "
                                      "database.sha256")
    # GUESS 26.3: the refusal list of 26.3 names only the database; the config's
    # SHA-256 and the KEK's ID given by 26.4 are checked too.
    if hashlib.sha256(entries["config.json"]).hexdigest() != meta["config_sha256"]:
        raise _sb("MetadataMismatch", "config.json's SHA-256 is not the metadata's "
                                      "config_sha256")
    if cr.key_id(entries["kek"]).hex() != meta["kek_id"]:
        raise _sb("MetadataMismatch", f"the kek entry's key ID is "
                                      f"{cr.key_id(entries['kek']).hex()}, the metadata's "
                                      f"kek_id is {meta['kek_id']}")
    # GUESS 26.3: config.json must be UTF-8 JSON (26.3 says it is; it is checked
    # after its SHA-256, so a mismatch is reported as such first).
    _parse_json(entries["config.json"], "config.json", "MalformedPayload")


def open_self_backup(data: bytes, kit_key: Optional[bytes] = None,
                     passphrase: Optional[bytes] = None) -> dict:
    """Open a ``COFFER/B`` self-backup (FORMAT.md 26) with the recovery key R (from a
    kit) or with the passphrase of its envelope; exactly one of the two.

    Returns ``{"metadata": dict, "entries": {name: bytes}, "recovery_key_id": bytes,
    "has_passphrase_envelope": bool}``. Checks, in the order of 26.2: magic,
    version, flags, reserved bytes, key_id(R) (the envelope opened first, with a
    passphrase), pk from R, B, the stream (all chunks), then the payload (26.3) and
    the metadata record (26.4).
    """
    if (kit_key is None) == (passphrase is None):
        raise TypeError("give exactly one of kit_key and passphrase")
    if kit_key is not None:
        if not isinstance(kit_key, (bytes, bytearray, memoryview)):
            raise TypeError("the recovery key is a byte string")
        if len(kit_key) != cr.KEY_LEN:  # section 1: before any input is read
            raise _sb("InvalidKeyLength", f"the recovery key is {len(kit_key)} bytes, not 32")
        kit_key = bytes(kit_key)
    elif not isinstance(passphrase, (bytes, bytearray, memoryview)):
        raise TypeError("the passphrase is a byte string (no normalisation)")
    data = bytes(data)
    header = _parse_header(data)                                         # magic .. reserved
    if kit_key is not None:
        recovery_key = kit_key
    else:
        recovery_key = _recovery_key_from_passphrase(data, header, bytes(passphrase))
    # GUESS 26.2: with a kit, a passphrase envelope present (flag bit 0) is not opened
    # or checked: ctx covers bytes 0..64 only, so the envelope is not bound to the file.
    if not hmac.compare_digest(cr.key_id(recovery_key), header.recovery_key_id):
        raise _sb("AnotherRecoveryKey",
                  f"the file is sealed to recovery key {header.recovery_key_id.hex()}, the "
                  f"key given is {cr.key_id(recovery_key).hex()}")
    secret_key, public_key = recovery_key_pair(recovery_key)
    if not hmac.compare_digest(public_key, header.public_key):
        raise _sb("PublicKeyMismatch", "bytes 32..64 are not the public key the recovery key "
                                       "derives (26.1): the file is invalid")
    backup_key = _open_backup_key(data, header, secret_key)
    payload = _open_payload(data, header, backup_key)
    entries = parse_payload(payload)
    meta = check_metadata(entries["metadata.json"])
    _check_entries_against_metadata(entries, meta)
    return {
        "metadata": meta,
        "entries": entries,
        "recovery_key_id": header.recovery_key_id,
        "has_passphrase_envelope": header.has_envelope,
    }


# ==========================================================================
# Command line
# ==========================================================================


def format_metadata(result: dict) -> str:
    """The metadata record, one field a line, then the entries and their sizes."""
    meta = result["metadata"]
    counts = meta["counts"]
    lines = [
        f"format:          {meta['format']}",
        f"server_version:  {meta['server_version']}",
        f"schema_version:  {meta['schema_version']}",
        f"created_at:      {meta['created_at']}",
        f"reason:          {meta['reason']}",
        "counts:          " + ", ".join(f"{k} {counts[k]}" for k in COUNT_FIELDS),
        f"database:        {meta['database']['size']} bytes, sha256 {meta['database']['sha256']}",
        f"config_sha256:   {meta['config_sha256']}",
        f"kek_id:          {meta['kek_id']}",
    ]
    extra = [k for k in meta if k not in (
        "format", "server_version", "schema_version", "created_at", "reason", "counts",
        "database", "config_sha256", "kek_id")]
    for k in extra:
        lines.append(f"{k + ':':<17}{json.dumps(meta[k])} (not in FORMAT.md 26.4)")
    lines.append(f"recovery key ID: {result['recovery_key_id'].hex()}")
    lines.append("passphrase envelope: " + ("yes" if result["has_passphrase_envelope"] else "no"))
    lines.append("entries:         " + ", ".join(
        f"{name} ({len(content)} bytes)" for name, content in result["entries"].items()))
    return "\n".join(lines)


def write_new_file(path: str, content: bytes) -> None:
    """Create ``path`` (it must not exist: never overwritten), mode 0600, and write it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            fd = None
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if fd is not None:
            os.close(fd)
        os.unlink(path)  # ours: created just now
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Open a Coffer server self-backup (FORMAT.md 26) and print its metadata.")
    p.add_argument("file", metavar="FILE", help="the self-backup (selfbackup-....cfsb)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--kit-file", help="a file holding the recovery kit's text (25)")
    key.add_argument("--passphrase-file",
                     help="a file holding the passphrase (its bytes, one trailing newline dropped)")
    p.add_argument("--extract-db", metavar="OUT",
                   help="write database.sqlite to OUT (a new file; never overwritten)")
    p.add_argument("--json", action="store_true", help="print the metadata record as JSON")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        with open(args.file, "rb") as f:
            data = f.read()
        if args.kit_file:
            with open(args.kit_file, "rb") as f:
                kit_key = parse_recovery_kit(f.read())
            result = open_self_backup(data, kit_key=kit_key)
        else:
            result = open_self_backup(data, passphrase=cr_repo._read_passphrase(
                args.passphrase_file))
        if args.extract_db:
            try:
                write_new_file(args.extract_db, result["entries"]["database.sqlite"])
            except FileExistsError:
                raise OSError(f"{args.extract_db}: exists already; not overwritten") from None
    except (RecoveryKitError, SelfBackupError, OSError) as e:
        print(f"coffer_selfbackup: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result["metadata"], indent=2))
    else:
        print(format_metadata(result))
    if args.extract_db:
        print(f"coffer_selfbackup: database.sqlite written to {args.extract_db}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
