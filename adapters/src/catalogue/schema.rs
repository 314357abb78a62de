//! The adapters' tables: the CLI's and the server's common ground.

use super::Migration;

/// The component name of the adapters' schema in `schema_version`.
pub const ADAPTERS_COMPONENT: &str = "adapters";

/// The adapters' schema, step by step. Append-only (see [`super::migration`]).
///
/// - `repositories`: a name, where its objects live (`local:/path`,
///   `s3://bucket/prefix`), the suite it seals with and its key's ID.
/// - `key_envelopes`: the repository's wrapped keys, whole (152-byte `COFFER/K` or
///   168-byte `COFFER/P`), one per (purpose, key version); deleted with the repository.
/// - `backups`: restore points. A backup is `running` until it is `complete` (with its
///   summary) or `failed`; a repository with backups cannot be deleted.
pub const ADAPTERS_MIGRATIONS: &[Migration] = &[Migration {
    description: "repositories, key envelopes and backups",
    sql: V1,
}];

// Key IDs: 32 lowercase hex digits. Envelope magics: "COFFER/K" and "COFFER/P".
const V1: &str = "
CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    location    TEXT    NOT NULL CHECK (length(location) BETWEEN 1 AND 2048),
    suite       TEXT    NOT NULL CHECK (suite IN ('aes-256-gcm', 'chacha20-poly1305')),
    key_id      TEXT    NOT NULL
                CHECK (length(key_id) = 32 AND key_id NOT GLOB '*[^0-9a-f]*'),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE key_envelopes (
    id             INTEGER PRIMARY KEY,
    repository_id  INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    kind           TEXT    NOT NULL CHECK (kind IN ('key', 'passphrase')),
    purpose        TEXT    NOT NULL CHECK (purpose IN ('repository', 'profile', 'master')),
    key_version    INTEGER NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
    suite          TEXT    NOT NULL CHECK (suite IN ('aes-256-gcm', 'chacha20-poly1305')),
    kek_id         TEXT
                   CHECK (length(kek_id) = 32 AND kek_id NOT GLOB '*[^0-9a-f]*'),
    key_id         TEXT    NOT NULL
                   CHECK (length(key_id) = 32 AND key_id NOT GLOB '*[^0-9a-f]*'),
    envelope       BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    wrapped_at     INTEGER NOT NULL,
    UNIQUE (repository_id, purpose, key_version),
    CHECK (
        (kind = 'key' AND kek_id IS NOT NULL AND length(envelope) = 152
            AND substr(envelope, 1, 8) = X'434F464645522F4B')
        OR (kind = 'passphrase' AND kek_id IS NULL AND length(envelope) = 168
            AND substr(envelope, 1, 8) = X'434F464645522F50')
    )
) STRICT;

CREATE INDEX key_envelopes_by_kek ON key_envelopes (kek_id) WHERE kek_id IS NOT NULL;

CREATE TABLE backups (
    id              INTEGER PRIMARY KEY,
    repository_id   INTEGER NOT NULL REFERENCES repositories (id) ON DELETE RESTRICT,
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    archive_key     TEXT    NOT NULL CHECK (length(archive_key) BETWEEN 1 AND 1024),
    manifest_key    TEXT    NOT NULL CHECK (length(manifest_key) BETWEEN 1 AND 1024),
    host            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
    entry_count     INTEGER CHECK (entry_count >= 0),
    content_bytes   INTEGER CHECK (content_bytes >= 0),
    archive_len     INTEGER CHECK (archive_len >= 0),
    compressed_len  INTEGER CHECK (compressed_len >= 0),
    stored_bytes    INTEGER CHECK (stored_bytes >= 0),
    key_id          TEXT    NOT NULL
                    CHECK (length(key_id) = 32 AND key_id NOT GLOB '*[^0-9a-f]*'),
    UNIQUE (repository_id, name),
    -- Two rows naming one object would let pruning one delete the other's data.
    UNIQUE (repository_id, archive_key),
    UNIQUE (repository_id, manifest_key),
    CHECK (archive_key <> manifest_key),
    CHECK ((status = 'running') = (finished_at IS NULL)),
    -- The summary is all there or all missing, and a complete backup has it.
    CHECK (
        (entry_count IS NULL AND content_bytes IS NULL AND archive_len IS NULL
            AND compressed_len IS NULL AND stored_bytes IS NULL)
        OR (entry_count IS NOT NULL AND content_bytes IS NOT NULL AND archive_len IS NOT NULL
            AND compressed_len IS NOT NULL AND stored_bytes IS NOT NULL)
    ),
    CHECK (status <> 'complete' OR entry_count IS NOT NULL)
) STRICT;

-- Listing a repository's backups newest first walks this index backwards.
CREATE INDEX backups_by_time ON backups (repository_id, created_at, id);
";
