//! The server's tables. Append-only, as the catalogue's migration rules say.

use coffer_adapters::catalogue::Migration;

/// The component name of the server's schema in `schema_version`.
pub const SERVER_COMPONENT: &str = "server";

/// The server's schema, step by step.
pub const SERVER_MIGRATIONS: &[Migration] = &[
    Migration {
        description: "tenants, tokens, agents, destinations, jobs, runs, restore points, audit",
        sql: V1,
    },
    Migration {
        description: "embedded store object metadata (ETag, SHA-256)",
        sql: V2,
    },
    Migration {
        description: "deduplicated repositories: agents' write-only key files, runs' locks and key files, snapshots",
        sql: V3,
    },
    Migration {
        description: "day-to-day operation: job excludes and time zones, missed schedules, agent names and labels",
        sql: V4,
    },
    Migration {
        description: "dashboard sessions; notification channels, alerts and their deliveries",
        sql: V5,
    },
    Migration {
        description: "the server's self-backups: where they go, how many are kept, when, and each one made",
        sql: V6,
    },
    Migration {
        description: "the platform (operating system and architecture) each agent reports",
        sql: V7,
    },
];

// What an agent last reported running on (coffer_protocol::Platform: 1 to 32 of a-z,
// 0-9, _); NULL until an agent that reports it enrols or beats.
const V7: &str = "
ALTER TABLE agents ADD COLUMN os TEXT
    CHECK (os IS NULL OR (length(os) BETWEEN 1 AND 32 AND os NOT GLOB '*[^a-z0-9_]*'));
ALTER TABLE agents ADD COLUMN arch TEXT
    CHECK (arch IS NULL OR (length(arch) BETWEEN 1 AND 32 AND arch NOT GLOB '*[^a-z0-9_]*'));
";

// Self-backups (FORMAT.md §26): the one settings row — destination (JSON: a local
// folder, or a registered backend and prefix), how many to keep, the schedule (cron,
// UTC), the recovery key's ID and public key, the passphrase envelope of the recovery
// key if there is one, when the next is due — and a record of each self-backup made or
// attempted.
const V6: &str = "
CREATE TABLE self_backup_settings (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    destination          TEXT    NOT NULL,
    keep                 INTEGER NOT NULL CHECK (keep BETWEEN 1 AND 1000),
    schedule             TEXT    NOT NULL,
    key_id               BLOB    NOT NULL CHECK (length(key_id) = 16),
    public_key           BLOB    NOT NULL CHECK (length(public_key) = 32),
    passphrase_envelope  BLOB,
    next_run_at          INTEGER,
    updated_at           INTEGER NOT NULL
) STRICT;
CREATE TABLE self_backups (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    reason      TEXT    NOT NULL CHECK (reason IN ('manual', 'scheduled', 'pre-restore', 'pre-upgrade')),
    status      TEXT    NOT NULL CHECK (status IN ('succeeded', 'failed')),
    created_at  INTEGER NOT NULL,
    size        INTEGER,
    sha256      TEXT,
    error       TEXT
) STRICT;
";

// A dashboard session: the token it was exchanged for (so revoking the token ends the
// session; the tenant and kind are the token's), the hash of the cookie's value (the
// value itself is never stored) and the session's CSRF token.
// A notification channel (email or webhook) of a tenant, or of the server itself when
// tenant_id is NULL (the admin's); its settings as JSON and its secret (SMTP password,
// webhook signing secret) sealed under the KEK. A tenant's alert settings. An alert is
// one condition (a job's runs failing, a job missing its schedule, an agent offline, a
// storage test failing, ...) open until it clears: repeats count on it instead of each
// sending a message. A delivery is one message of one alert to one channel, retried
// with backoff until sent or given up, with its last error.
const V5: &str = "
CREATE TABLE web_sessions (
    id_hash       BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    token_id      INTEGER NOT NULL REFERENCES tokens (id),
    csrf          BLOB    NOT NULL CHECK (length(csrf) = 32),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
CREATE TABLE notification_channels (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER REFERENCES tenants (id),
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    kind        TEXT    NOT NULL CHECK (kind IN ('email', 'webhook')),
    config      TEXT    NOT NULL,
    secret      BLOB,
    events      TEXT    NOT NULL DEFAULT '[]',
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX notification_channels_name
    ON notification_channels (coalesce(tenant_id, 0), name);
CREATE TABLE alert_settings (
    tenant_id           INTEGER PRIMARY KEY REFERENCES tenants (id),
    missed_grace_secs   INTEGER NOT NULL CHECK (missed_grace_secs > 0),
    offline_after_secs  INTEGER NOT NULL CHECK (offline_after_secs > 0),
    repeat_secs         INTEGER NOT NULL CHECK (repeat_secs > 0)
) STRICT;
CREATE TABLE alerts (
    id                    INTEGER PRIMARY KEY,
    tenant_id             INTEGER REFERENCES tenants (id),
    kind                  TEXT    NOT NULL,
    subject               TEXT    NOT NULL CHECK (length(subject) <= 256),
    summary               TEXT    NOT NULL CHECK (length(summary) <= 1024),
    detail                TEXT    NOT NULL DEFAULT '' CHECK (length(detail) <= 8192),
    opened_at             INTEGER NOT NULL,
    last_seen_at          INTEGER NOT NULL,
    occurrences           INTEGER NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    notified_occurrences  INTEGER NOT NULL DEFAULT 0 CHECK (notified_occurrences >= 0),
    last_notified_at      INTEGER,
    resolved_at           INTEGER
) STRICT;
CREATE UNIQUE INDEX alerts_open ON alerts (coalesce(tenant_id, 0), kind, subject)
    WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_tenant ON alerts (tenant_id, id);
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    tenant_id        INTEGER REFERENCES tenants (id),
    alert_id         INTEGER NOT NULL REFERENCES alerts (id),
    channel_id       INTEGER NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    message_id       TEXT    NOT NULL UNIQUE,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  INTEGER,
    last_error       TEXT,
    payload          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
";

// A job's exclude patterns (JSON list, copied into each run as its sources are) and the
// IANA time zone its schedule is read in; how many due times a backup run stands for
// (more than one when the agent was offline or the server stopped); an agent's name
// (default its host name) and labels (JSON object); when a revoked agent was deleted
// (the row stays: its runs and restore points name it, and stay restorable); when a
// destination no longer in use was deleted (its objects removed from storage) and when
// an empty tenant was deleted (rows stay for the audit log and the runs' history).
// Each application of a job's retention (after a backup, on the daily schedule, or
// asked for), with what it forgot and what prune freed.
const V4: &str = "
ALTER TABLE jobs ADD COLUMN excludes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE runs ADD COLUMN excludes TEXT;
ALTER TABLE runs ADD COLUMN missed_schedules INTEGER NOT NULL DEFAULT 0
    CHECK (missed_schedules >= 0);
ALTER TABLE agents ADD COLUMN name TEXT;
ALTER TABLE agents ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN deleted_at INTEGER;
ALTER TABLE destinations ADD COLUMN deleted_at INTEGER;
ALTER TABLE tenants ADD COLUMN deleted_at INTEGER;
CREATE TABLE retention_runs (
    id                      INTEGER PRIMARY KEY,
    tenant_id               INTEGER NOT NULL REFERENCES tenants (id),
    job_id                  INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    agent_id                INTEGER NOT NULL REFERENCES agents (id),
    trigger                 TEXT    NOT NULL CHECK (trigger IN ('backup', 'schedule', 'operator')),
    status                  TEXT    NOT NULL CHECK (status IN ('succeeded', 'failed')),
    started_at              INTEGER NOT NULL,
    finished_at             INTEGER NOT NULL,
    kept                    INTEGER NOT NULL DEFAULT 0 CHECK (kept >= 0),
    forgotten               TEXT    NOT NULL DEFAULT '[]',
    restore_points_removed  INTEGER NOT NULL DEFAULT 0 CHECK (restore_points_removed >= 0),
    prune                   TEXT    NOT NULL CHECK (prune IN ('done', 'put_off', 'none')),
    bytes_freed             INTEGER NOT NULL DEFAULT 0,
    packs_deleted           INTEGER NOT NULL DEFAULT 0 CHECK (packs_deleted >= 0),
    packs_repacked          INTEGER NOT NULL DEFAULT 0 CHECK (packs_repacked >= 0),
    error                   TEXT
) STRICT;
CREATE INDEX retention_runs_by_job ON retention_runs (job_id, id);
CREATE INDEX runs_by_job ON runs (job_id, id);
CREATE INDEX restore_points_by_job ON restore_points (job_id, id);
";

// Deduplicated repositories (`repos`): each agent's write-only key file; what the
// server keeps in storage for a run while it lasts (a backup's shared lock, a restore's
// or verify's own key file), removed once the run ends (`run_access`); the snapshot a
// restore point is; the latest progress of a run (totals, rate, current path); upload
// limits of jobs and agents (bytes a second); how many runs an agent does at once.
// IDs are 32 hex digits.
const V3: &str = "
ALTER TABLE agents ADD COLUMN key_file TEXT;
ALTER TABLE runs ADD COLUMN lock_id TEXT;
ALTER TABLE runs ADD COLUMN run_key_file TEXT;
ALTER TABLE runs ADD COLUMN access_renewed_at INTEGER;
ALTER TABLE restore_points ADD COLUMN snapshot_id TEXT;
ALTER TABLE runs ADD COLUMN bytes_total INTEGER CHECK (bytes_total >= 0);
ALTER TABLE runs ADD COLUMN files_total INTEGER CHECK (files_total >= 0);
ALTER TABLE runs ADD COLUMN rate INTEGER CHECK (rate >= 0);
ALTER TABLE runs ADD COLUMN current_path TEXT CHECK (length(current_path) <= 4096);
ALTER TABLE runs ADD COLUMN progress_at INTEGER;
ALTER TABLE jobs ADD COLUMN upload_limit INTEGER CHECK (upload_limit > 0);
ALTER TABLE agents ADD COLUMN upload_limit INTEGER CHECK (upload_limit > 0);
ALTER TABLE agents ADD COLUMN max_concurrent_runs INTEGER NOT NULL DEFAULT 1
    CHECK (max_concurrent_runs BETWEEN 1 AND 16);
CREATE INDEX runs_with_access ON runs (id) WHERE lock_id IS NOT NULL OR run_key_file IS NOT NULL;
";

// What the embedded store answers HEAD and GET with, as S3 would: the ETag (MD5 of a
// single put, or the multipart ETag) and the SHA-256 a put carried. S3 clients use
// them to confirm a put whose answer was lost; a row is written after its object is
// in place, so a missing row only means the store falls back to a size-and-time ETag.
const V2: &str = "
CREATE TABLE object_meta (
    bucket  TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    size    INTEGER NOT NULL CHECK (size >= 0),
    etag    TEXT    NOT NULL,
    sha256  TEXT,
    PRIMARY KEY (bucket, key)
) STRICT;
";

// Times are Unix seconds. Token hashes are SHA-256; `lookup` is the first 8 bytes of
// the hash in hex, to find the row (see `token`).
const V1: &str = "
CREATE TABLE backends (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    endpoint       TEXT    NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 2048),
    region         TEXT    NOT NULL CHECK (length(region) BETWEEN 1 AND 100),
    bucket         TEXT    NOT NULL CHECK (length(bucket) BETWEEN 1 AND 255),
    path_style     INTEGER NOT NULL CHECK (path_style IN (0, 1)),
    access_key_id  TEXT    NOT NULL CHECK (length(access_key_id) BETWEEN 1 AND 256),
    -- The secret key, sealed under the server KEK (a Coffer sealed stream).
    secret_sealed  BLOB    NOT NULL,
    kek_id         TEXT    NOT NULL CHECK (length(kek_id) = 32),
    created_at     INTEGER NOT NULL,
    tested_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    backend_id  INTEGER REFERENCES backends (id),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE agents (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    hostname      TEXT    NOT NULL CHECK (length(hostname) BETWEEN 1 AND 255),
    version       TEXT    NOT NULL CHECK (length(version) <= 64),
    enrolled_at   INTEGER NOT NULL,
    last_seen_at  INTEGER,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX agents_by_tenant ON agents (tenant_id, id);

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('admin', 'operator', 'enrolment', 'agent')),
    lookup      TEXT    NOT NULL UNIQUE CHECK (length(lookup) = 16),
    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
    tenant_id   INTEGER REFERENCES tenants (id),
    agent_id    INTEGER REFERENCES agents (id),
    label       TEXT    NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    used_at     INTEGER,
    revoked_at  INTEGER,
    CHECK ((kind = 'admin') = (tenant_id IS NULL)),
    CHECK ((kind = 'agent') = (agent_id IS NOT NULL))
) STRICT;

-- One destination per agent; no two share a bucket and prefix; never repointed.
CREATE TABLE destinations (
    id             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id),
    agent_id       INTEGER NOT NULL UNIQUE REFERENCES agents (id),
    backend_id     INTEGER REFERENCES backends (id),
    bucket         TEXT    NOT NULL CHECK (length(bucket) BETWEEN 1 AND 255),
    prefix         TEXT    NOT NULL CHECK (length(prefix) BETWEEN 1 AND 512),
    repository_id  INTEGER NOT NULL UNIQUE REFERENCES repositories (id),
    tested_at      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (bucket, prefix)
) STRICT;
CREATE TRIGGER destinations_locked BEFORE UPDATE OF tenant_id, agent_id, backend_id, bucket,
    prefix, repository_id ON destinations
BEGIN
    SELECT RAISE(ABORT, 'destinations are locked');
END;

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    agent_id      INTEGER NOT NULL REFERENCES agents (id),
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    sources       TEXT    NOT NULL,
    schedule      TEXT,
    keep_last     INTEGER NOT NULL CHECK (keep_last >= 0),
    keep_daily    INTEGER NOT NULL CHECK (keep_daily >= 0),
    keep_weekly   INTEGER NOT NULL CHECK (keep_weekly >= 0),
    keep_monthly  INTEGER NOT NULL CHECK (keep_monthly >= 0),
    level         INTEGER NOT NULL CHECK (level BETWEEN 1 AND 22),
    next_run_at   INTEGER,
    created_at    INTEGER NOT NULL,
    UNIQUE (agent_id, name)
) STRICT;
CREATE INDEX jobs_due ON jobs (next_run_at) WHERE next_run_at IS NOT NULL;

-- tenant_id, repository_id and destination_id are what they were when the run was
-- made: an agent that moves later does not take its history along.
CREATE TABLE runs (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    agent_id          INTEGER NOT NULL REFERENCES agents (id),
    repository_id     INTEGER NOT NULL REFERENCES repositories (id),
    destination_id    INTEGER NOT NULL REFERENCES destinations (id),
    job_id            INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify')),
    status            TEXT    NOT NULL
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    restore_point_id  INTEGER REFERENCES restore_points (id),
    name              TEXT,
    prefix            TEXT,
    target            TEXT,
    paths             TEXT,
    sources           TEXT,
    level             INTEGER,
    requested_by      TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    claimed_at        INTEGER,
    lease_expires_at  INTEGER,
    finished_at       INTEGER,
    bytes             INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    files             INTEGER NOT NULL DEFAULT 0 CHECK (files >= 0),
    error             TEXT,
    completion        TEXT,
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL))
) STRICT;
CREATE INDEX runs_queue ON runs (agent_id, status, id);
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_by_tenant ON runs (tenant_id, id);

CREATE TABLE restore_points (
    id             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id),
    repository_id  INTEGER NOT NULL REFERENCES repositories (id),
    agent_id       INTEGER NOT NULL REFERENCES agents (id),
    run_id         INTEGER NOT NULL UNIQUE REFERENCES runs (id),
    job_id         INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    name           TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    prefix         TEXT    NOT NULL CHECK (length(prefix) BETWEEN 1 AND 1024),
    key_id         TEXT    NOT NULL CHECK (length(key_id) = 32),
    stored_bytes   INTEGER NOT NULL CHECK (stored_bytes >= 0),
    content_bytes  INTEGER NOT NULL CHECK (content_bytes >= 0),
    files          INTEGER NOT NULL CHECK (files >= 0),
    created_at     INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (repository_id, prefix, name)
) STRICT;
CREATE INDEX restore_points_by_tenant ON restore_points (tenant_id, id);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    tenant_id  INTEGER,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    detail     TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_by_tenant ON audit (tenant_id, id);

CREATE TABLE agent_logs (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants (id),
    agent_id     INTEGER NOT NULL REFERENCES agents (id),
    level        TEXT    NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message      TEXT    NOT NULL CHECK (length(message) <= 4096),
    time         INTEGER NOT NULL,
    received_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX agent_logs_by_agent ON agent_logs (agent_id, id);

-- Multipart uploads to the embedded store; parts are files in its staging folder.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    bucket      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    checksum    INTEGER NOT NULL CHECK (checksum IN (0, 1)),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE TABLE upload_parts (
    upload_id    TEXT    NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number  INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    size         INTEGER NOT NULL CHECK (size >= 0),
    etag         TEXT    NOT NULL,
    sha256       TEXT,
    PRIMARY KEY (upload_id, part_number)
) STRICT;
";
