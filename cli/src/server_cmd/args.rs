//! `coffer server …` as clap derives it: one noun, then one verb. No token is ever an
//! argument: it comes from $COFFER_SERVER_TOKEN, a 0600 token or config file, or
//! `coffer server login`'s prompt.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the server is and where its token lives.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// The server's URL (else $COFFER_SERVER_URL, else `url` in the config file).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// A `key = value` file with `url` and `token` (mode 0600; default
    /// $XDG_CONFIG_HOME/coffer/server.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A file holding only the token (mode 0600); wins over $COFFER_SERVER_TOKEN.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
}

/// `coffer server`: the admin's and the operators' side of a Coffer server.
#[derive(Debug, Args)]
pub(crate) struct ServerCmd {
    /// Server and token.
    #[command(flatten)]
    pub(crate) connection: Connection,
    /// What to manage.
    #[command(subcommand)]
    pub(crate) noun: Noun,
}

/// The things on a server.
#[derive(Debug, Subcommand)]
pub(crate) enum Noun {
    /// Save the server URL and a token (read from stdin or a prompt) in the config file.
    Login,
    /// Tenants (admin).
    Tenant {
        /// What to do.
        #[command(subcommand)]
        verb: TenantVerb,
    },
    /// A tenant's operator tokens (admin).
    Operator {
        /// What to do.
        #[command(subcommand)]
        verb: OperatorVerb,
    },
    /// The admin token (admin).
    AdminToken {
        /// What to do.
        #[command(subcommand)]
        verb: AdminTokenVerb,
    },
    /// S3 storage backends tenants may use (admin).
    Backend {
        /// What to do.
        #[command(subcommand)]
        verb: BackendVerb,
    },
    /// One-time enrolment tokens for new agents.
    Token {
        /// What to do.
        #[command(subcommand)]
        verb: TokenVerb,
    },
    /// Enrolled agents.
    Agent {
        /// What to do.
        #[command(subcommand)]
        verb: AgentVerb,
    },
    /// Where agents' backups go.
    Destination {
        /// What to do.
        #[command(subcommand)]
        verb: DestinationVerb,
    },
    /// Backup jobs.
    Job {
        /// What to do.
        #[command(subcommand)]
        verb: JobVerb,
    },
    /// Runs: backups, restores and verifies, queued, running or done.
    Run {
        /// What to do.
        #[command(subcommand)]
        verb: RunVerb,
    },
    /// Restore points that backups left.
    RestorePoint {
        /// What to do.
        #[command(subcommand)]
        verb: RestorePointVerb,
    },
    /// Restore several restore points in one request.
    Restore(BulkRestore),
    /// The audit log: the tenant's, or with --admin the whole server's.
    Audit(AuditArgs),
    /// Storage used: the tenant's, or with --admin every tenant's.
    Usage(AdminFlag),
    /// Compare each repository's snapshots in storage with the restore points listed
    /// (after a self-restore): the restore points whose snapshot is gone (removed with
    /// --apply) and the snapshots no restore point lists (admin).
    Reconcile(ReconcileArgs),
    /// Notifications: channels (email, webhooks), alert settings, deliveries, alerts;
    /// the tenant's, or with --admin the server's own.
    Notify {
        /// What to do.
        #[command(subcommand)]
        verb: NotifyVerb,
    },
}

/// Notification verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum NotifyVerb {
    /// Add a channel: email (SMTP, STARTTLS by default; the password is read from
    /// $COFFER_SMTP_PASSWORD or a prompt) or a webhook (signed as Standard Webhooks
    /// says; the signing secret is printed once).
    Add(ChannelAdd),
    /// List the channels.
    Channels(AdminFlag),
    /// Turn a channel on or off, or set the alerts it takes.
    Update {
        /// The channel.
        id: String,
        /// Turn it on.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Turn it off.
        #[arg(long)]
        disable: bool,
        /// The alert kinds it takes (comma-separated; "all" for every kind).
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[command(flatten)]
        scope: AdminFlag,
    },
    /// Remove a channel.
    Delete {
        /// The channel.
        id: String,
        #[command(flatten)]
        scope: AdminFlag,
    },
    /// Send a sample through a channel now and say whether it arrived.
    Test {
        /// The channel.
        id: String,
        #[command(flatten)]
        scope: AdminFlag,
    },
    /// Deliveries, newest first: each message, its attempts and last error.
    Deliveries {
        /// Only those pending, sent or failed.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (server default 100).
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        scope: AdminFlag,
    },
    /// Alerts, newest first.
    Alerts {
        /// Only those still open.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        scope: AdminFlag,
    },
    /// Show the tenant's alert settings, or change those given.
    Settings {
        /// A job is missed when its run has not started this long after it was due
        /// (seconds).
        #[arg(long, value_name = "SECS")]
        missed_grace: Option<i64>,
        /// An agent is offline when not heard from this long (seconds).
        #[arg(long, value_name = "SECS")]
        offline_after: Option<i64>,
        /// An alert that keeps happening is sent again at most this often (seconds).
        #[arg(long, value_name = "SECS")]
        repeat: Option<i64>,
    },
}

/// `coffer server notify add`.
#[derive(Debug, Args)]
pub(crate) struct ChannelAdd {
    /// Its name.
    pub(crate) name: String,
    /// A webhook: the URL to POST to.
    #[arg(
        long,
        conflicts_with = "smtp_host",
        required_unless_present = "smtp_host"
    )]
    pub(crate) webhook_url: Option<String>,
    /// Email: the SMTP server.
    #[arg(long, requires_all = ["from", "to"])]
    pub(crate) smtp_host: Option<String>,
    /// Email: its port (default 587, 465 with --tls tls, 25 with --tls none).
    #[arg(long)]
    pub(crate) smtp_port: Option<u16>,
    /// Email: starttls (default), tls, or none (a relay on this machine only).
    #[arg(long, default_value = "starttls")]
    pub(crate) tls: String,
    /// Email: the user to log in as (the password from $COFFER_SMTP_PASSWORD or a prompt).
    #[arg(long)]
    pub(crate) smtp_user: Option<String>,
    /// Email: the sender.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Email: a recipient (repeat for more).
    #[arg(long)]
    pub(crate) to: Vec<String>,
    /// Email: a CA certificate (PEM file) to trust besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// The alert kinds it takes (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) events: Vec<String>,
    #[command(flatten)]
    pub(crate) scope: AdminFlag,
}

/// Tenant verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum TenantVerb {
    /// Create a tenant.
    Create {
        /// Its name.
        name: String,
        /// The S3 backend its agents store to (default: the embedded store).
        #[arg(long, value_name = "ID")]
        backend: Option<String>,
    },
    /// List the tenants.
    List,
    /// Delete an empty tenant (no agents, jobs or restore points left), or with
    /// --purge one with everything it has (its backups are removed from storage).
    Delete {
        /// The tenant.
        id: String,
        /// Revoke its agents and remove every backup, job and restore point with it.
        #[arg(long, requires = "confirm")]
        purge: bool,
        /// The tenant's name, to confirm a purge.
        #[arg(long, value_name = "NAME")]
        confirm: Option<String>,
    },
}

/// Operator-token verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum OperatorVerb {
    /// Create an operator token for a tenant; the token is printed once.
    Create {
        /// The tenant.
        tenant: String,
        /// A label, to tell tokens apart.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List a tenant's operator tokens (never their secrets).
    List {
        /// The tenant.
        tenant: String,
    },
    /// Revoke an operator token.
    Revoke {
        /// The token's ID.
        id: String,
        /// Its tenant.
        #[arg(long, value_name = "ID")]
        tenant: String,
    },
}

/// Admin-token verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminTokenVerb {
    /// Replace the admin token: the new one is printed once, every other one stops
    /// working (the config file is not changed).
    Rotate,
}

/// Backend verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum BackendVerb {
    /// Register an S3 backend; the secret key is read from $COFFER_S3_SECRET_ACCESS_KEY
    /// or a prompt.
    Create {
        /// Its name.
        name: String,
        /// The S3 endpoint URL.
        #[arg(long)]
        endpoint: String,
        /// The bucket.
        #[arg(long)]
        bucket: String,
        /// The region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The access key ID.
        #[arg(long)]
        access_key_id: String,
        /// Virtual-hosted-style addressing instead of path style.
        #[arg(long)]
        virtual_hosted: bool,
    },
    /// List the backends.
    List,
    /// Test a backend now (write, read back, delete a probe object); a failure opens a
    /// storage alert.
    Test {
        /// The backend.
        id: String,
    },
}

/// Enrolment-token verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenVerb {
    /// Create a one-time enrolment token; the token is printed once.
    Create {
        /// How long it stays valid, in seconds (server default: an hour).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// A label, to tell tokens apart.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List enrolment tokens.
    List,
    /// Revoke an unused enrolment token.
    Revoke {
        /// The token's ID.
        id: String,
    },
}

/// Agent verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum AgentVerb {
    /// List the agents.
    List,
    /// Show an agent and its destination.
    Get {
        /// The agent.
        id: String,
    },
    /// Rename an agent or set its labels.
    Update {
        /// The agent.
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A label, KEY=VALUE (repeat; replaces all labels).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Revoke an agent: its key stops working.
    Revoke {
        /// The agent.
        id: String,
    },
    /// Delete a revoked agent.
    Delete {
        /// The agent.
        id: String,
    },
    /// Set an agent's upload limit ("10MiB/s", bytes a second, or "none").
    UploadLimit {
        /// The agent.
        id: String,
        /// The limit.
        limit: String,
    },
    /// Set how many runs an agent does at once (1 to 16).
    Concurrency {
        /// The agent.
        id: String,
        /// Runs at once.
        runs: u8,
    },
    /// Show an agent's latest log lines.
    Logs {
        /// The agent.
        id: String,
        /// Lines at most.
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// Destination verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum DestinationVerb {
    /// List the destinations.
    List,
    /// Show a destination and its repository.
    Get {
        /// The destination.
        id: String,
    },
    /// Delete a destination no longer in use (its agent deleted, no restore points).
    Delete {
        /// The destination.
        id: String,
    },
    /// Write a recovery key for the destination's repository (a new full-access key
    /// file in it) to FILE (mode 0600, never overwritten): with it, `coffer restore -r
    /// LOCATION --key-file FILE` restores without the server.
    RecoveryKey {
        /// The destination.
        id: String,
        /// The key file to write.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

/// Retention, as `coffer forget` takes it.
#[derive(Debug, Args, Default)]
pub(crate) struct RetentionArgs {
    /// Keep the last N restore points.
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<u32>,
    /// Keep the last of each of N days.
    #[arg(long, value_name = "N")]
    pub(crate) keep_daily: Option<u32>,
    /// Keep the last of each of N weeks.
    #[arg(long, value_name = "N")]
    pub(crate) keep_weekly: Option<u32>,
    /// Keep the last of each of N months.
    #[arg(long, value_name = "N")]
    pub(crate) keep_monthly: Option<u32>,
}

/// Job verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum JobVerb {
    /// Create a backup job on an agent.
    Create {
        /// The agent that runs it.
        #[arg(long, value_name = "ID")]
        agent: String,
        /// Its name (unique on the agent).
        #[arg(long)]
        name: String,
        /// An absolute path to back up (repeat).
        #[arg(long = "source", value_name = "PATH", required = true)]
        sources: Vec<String>,
        /// An exclude pattern (repeat).
        #[arg(long = "exclude", value_name = "PATTERN")]
        excludes: Vec<String>,
        /// A cron schedule, e.g. "0 3 * * *" (none: it runs when asked).
        #[arg(long)]
        schedule: Option<String>,
        /// The schedule's time zone (IANA name, e.g. Europe/Paris).
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        /// Retention.
        #[command(flatten)]
        retention: RetentionArgs,
        /// zstd level, 1 to 22.
        #[arg(long)]
        level: Option<u8>,
        /// Upload limit, e.g. "10MiB/s".
        #[arg(long, value_name = "RATE")]
        upload_limit: Option<String>,
    },
    /// List the jobs.
    List,
    /// Show a job.
    Get {
        /// The job.
        id: String,
    },
    /// Change a job: only what is given changes.
    Update(JobUpdate),
    /// Delete a job (its queued runs are cancelled).
    Delete {
        /// The job.
        id: String,
        /// What happens to its restore points.
        #[arg(long, value_enum)]
        restore_points: Option<KeepOrDelete>,
    },
    /// Run a job now.
    Run {
        /// The job.
        id: String,
        /// Follow the run to its end; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// List the job's retention runs (what each forgot and freed); with --now, apply
    /// its retention now and prune.
    Retention {
        /// The job.
        id: String,
        /// Apply it now.
        #[arg(long)]
        now: bool,
    },
}

/// `job update`'s changes.
#[derive(Debug, Args)]
pub(crate) struct JobUpdate {
    /// The job.
    pub(crate) id: String,
    /// A new name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The sources (repeat; replaces them all).
    #[arg(long = "source", value_name = "PATH")]
    pub(crate) sources: Vec<String>,
    /// The exclude patterns (repeat; replaces them all).
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub(crate) excludes: Vec<String>,
    /// Remove every exclude pattern.
    #[arg(long, conflicts_with = "excludes")]
    pub(crate) no_excludes: bool,
    /// A new cron schedule.
    #[arg(long)]
    pub(crate) schedule: Option<String>,
    /// Remove the schedule: the job runs only when asked.
    #[arg(long, conflicts_with = "schedule")]
    pub(crate) no_schedule: bool,
    /// The schedule's time zone (IANA name).
    #[arg(long, value_name = "ZONE")]
    pub(crate) time_zone: Option<String>,
    /// Retention (replaces the job's whole policy when any is given).
    #[command(flatten)]
    pub(crate) retention: RetentionArgs,
    /// zstd level, 1 to 22.
    #[arg(long)]
    pub(crate) level: Option<u8>,
    /// Upload limit, e.g. "10MiB/s", or "none".
    #[arg(long, value_name = "RATE")]
    pub(crate) upload_limit: Option<String>,
}

/// What `job delete` does with the job's restore points.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KeepOrDelete {
    /// Keep them (restorable until retention removes them).
    Keep,
    /// Delete them with the job.
    Delete,
}

/// Filters of the run and restore-point lists.
#[derive(Debug, Args)]
pub(crate) struct ListFilter {
    /// Only this job's.
    #[arg(long = "job", value_name = "ID")]
    pub(crate) job_id: Option<String>,
    /// Only this agent's.
    #[arg(long = "agent", value_name = "ID")]
    pub(crate) agent_id: Option<String>,
    /// Only from this time on (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// At most this many.
    #[arg(long)]
    pub(crate) limit: Option<u32>,
}

/// Run verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum RunVerb {
    /// List runs, newest first.
    List {
        /// Only runs in this state (queued, running, succeeded, failed).
        #[arg(long)]
        status: Option<String>,
        /// Filters.
        #[command(flatten)]
        filter: ListFilter,
    },
    /// Show a run.
    Get {
        /// The run.
        id: String,
        /// Follow it to its end; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// Follow a run to its end; exit non-zero if it fails.
    Wait {
        /// The run.
        id: String,
    },
    /// Queue a failed run again.
    Retry {
        /// The run.
        id: String,
        /// Follow the new run to its end.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a queued or running run.
    Cancel {
        /// The run.
        id: String,
    },
}

/// Restore-point verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum RestorePointVerb {
    /// List restore points, newest first.
    List {
        /// Filters.
        #[command(flatten)]
        filter: ListFilter,
    },
    /// Show a restore point.
    Get {
        /// The restore point.
        id: String,
    },
    /// Restore a restore point (or some of its paths) into a folder on an agent.
    Restore {
        /// The restore point.
        id: String,
        /// The folder, an absolute path on the agent.
        #[arg(long, value_name = "PATH")]
        target: String,
        /// A path inside the restore point (repeat; default: all of it).
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// Restore on this agent of the tenant instead of the one that made it.
        #[arg(long = "agent", value_name = "ID")]
        agent_id: Option<String>,
        /// Follow the run to its end; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// Check that a restore point opens and its data is whole.
    Verify {
        /// The restore point.
        id: String,
        /// Follow the run to its end; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// List one folder of a restore point.
    Files {
        /// The restore point.
        id: String,
        /// The folder (default: /).
        #[arg(long)]
        path: Option<String>,
    },
    /// What changed from a restore point to another.
    Diff {
        /// The older restore point.
        id: String,
        /// The newer one.
        #[arg(long, value_name = "ID")]
        to: String,
    },
    /// Delete a restore point.
    Delete {
        /// The restore point.
        id: String,
    },
}

/// `coffer server restore`: several restores in one request.
#[derive(Debug, Args)]
pub(crate) struct BulkRestore {
    /// RESTORE_POINT_ID=TARGET (repeat); TARGET an absolute path on the agent.
    #[arg(long = "item", value_name = "ID=TARGET", required = true)]
    pub(crate) items: Vec<String>,
    /// Follow every queued run to its end; exit non-zero if any fails.
    #[arg(long)]
    pub(crate) wait: bool,
}

/// `coffer server audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// The whole server's log (admin token).
    #[arg(long)]
    pub(crate) admin: bool,
    /// With --admin: one tenant's entries.
    #[arg(long, value_name = "ID", requires = "admin")]
    pub(crate) tenant: Option<String>,
    /// Entries at most (server default 100).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
}

/// `coffer server reconcile`.
#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    /// Remove the restore points whose snapshot is gone from storage (default: only
    /// list them).
    #[arg(long)]
    pub(crate) apply: bool,
}

/// A route with a tenant's and an admin's version.
#[derive(Debug, Args)]
pub(crate) struct AdminFlag {
    /// The admin's view over every tenant (admin token).
    #[arg(long)]
    pub(crate) admin: bool,
}
