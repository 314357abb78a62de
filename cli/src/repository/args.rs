//! The arguments of the repository commands, as clap derives them. As everywhere in
//! the CLI, secrets are never arguments: only the names of files holding them.

use std::path::PathBuf;

use clap::Args;

/// Where a repository is and what unlocks it. Each has an environment variable, as
/// restic users expect (`RESTIC_REPOSITORY` → `COFFER_REPOSITORY`, and so on).
#[derive(Debug, Args, Clone)]
pub(crate) struct RepoOpts {
    /// The repository: a folder, or s3://BUCKET/PREFIX (endpoint and credentials from
    /// the COFFER_S3_* environment variables or --s3-config).
    #[arg(long, short = 'r', env = "COFFER_REPOSITORY", value_name = "REPO")]
    pub(crate) repo: String,
    /// A key file that unlocks the repository (see `coffer key generate`).
    #[arg(long, env = "COFFER_KEY_FILE", value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// A file holding a passphrase that unlocks it (else $COFFER_PASSWORD, else a
    /// prompt on the terminal).
    #[arg(
        long,
        env = "COFFER_PASSWORD_FILE",
        value_name = "FILE",
        conflicts_with = "key_file"
    )]
    pub(crate) password_file: Option<PathBuf>,
    /// A file of S3 settings (KEY=VALUE lines, as the environment variables).
    #[arg(long, env = "COFFER_S3_CONFIG", value_name = "FILE")]
    pub(crate) s3_config: Option<PathBuf>,
    /// Read everything from the repository: no local cache of its indexes, snapshots
    /// and folder listings (by default in $COFFER_CACHE_DIR, else
    /// $XDG_CACHE_HOME/coffer, else ~/.cache/coffer; verified on every use).
    #[arg(long, env = "COFFER_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) no_cache: bool,
}

/// `coffer init`.
#[derive(Debug, Args)]
pub(crate) struct InitCmd {
    /// The repository to create and its first key.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupCmd {
    /// Files and folders to back up.
    #[arg(
        required_unless_present = "from_command",
        conflicts_with = "from_command"
    )]
    pub(crate) paths: Vec<PathBuf>,
    /// Back up what this shell command writes to stdout (e.g. 'pg_dump mydb'),
    /// chunked and deduplicated like a file; a command that fails stores nothing.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) from_command: Option<String>,
    /// The file name the command's output is stored under.
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub(crate) stdin_name: String,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// The host name recorded (default: this machine's).
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Leave out what matches this pattern (repeatable; see `coffer backup --help`).
    #[arg(long = "exclude", short = 'e', value_name = "PATTERN")]
    pub(crate) excludes: Vec<String>,
    /// Read exclude patterns from this file, one per line (repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub(crate) exclude_files: Vec<PathBuf>,
    /// Leave out folders holding this file; NAME:HEADER also checks its first bytes.
    #[arg(long = "exclude-if-present", value_name = "NAME[:HEADER]")]
    pub(crate) exclude_if_present: Vec<String>,
    /// Leave out cache folders (those with a CACHEDIR.TAG).
    #[arg(long)]
    pub(crate) exclude_caches: bool,
    /// Do not cross into other file systems.
    #[arg(long, short = 'x')]
    pub(crate) one_file_system: bool,
    /// Leave out files larger than SIZE (e.g. 500M, 2G; K/M/G/T are powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) exclude_larger_than: Option<u64>,
    /// Read every file, even those the parent snapshot shows unchanged.
    #[arg(long)]
    pub(crate) force: bool,
    /// The snapshot unchanged files are taken from (default: the newest of this host
    /// and these paths).
    #[arg(long, value_name = "SNAPSHOT")]
    pub(crate) parent: Option<String>,
    /// Record this time instead of now ('2026-11-30 10:15:00', local time), as restic's
    /// `backup --time`.
    #[arg(long, value_name = "TIME")]
    pub(crate) time: Option<String>,
    /// Read and chunk everything, report what would be stored, and store nothing.
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer restore`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["target", "to_command"])))]
pub(crate) struct RestoreCmd {
    /// The snapshot: `latest` or an ID (a unique prefix is enough).
    pub(crate) snapshot: String,
    /// Restore into this folder (created if missing).
    #[arg(long, short = 't', value_name = "DIR")]
    pub(crate) target: Option<PathBuf>,
    /// Pipe one file (the snapshot's only file, or the one --include names) into this
    /// shell command, and only data whose every chunk verified.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) to_command: Option<String>,
    /// Only these paths of the snapshot and what is under them (repeatable), as `ls`
    /// shows them, e.g. /home/me/docs.
    #[arg(long = "include", short = 'i', value_name = "PATH")]
    pub(crate) includes: Vec<String>,
    /// Leave out what matches this pattern (repeatable; the rules of `backup
    /// --exclude`, against the snapshot's absolute paths).
    #[arg(long = "exclude", short = 'e', value_name = "PATTERN")]
    pub(crate) excludes: Vec<String>,
    /// For `latest`: the newest snapshot of this host.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Read back every file written and compare it with the snapshot.
    #[arg(long)]
    pub(crate) verify: bool,
    /// What to do with files that exist in the target: never replace them, replace
    /// them if their content differs from the snapshot's, or always.
    #[arg(long, value_enum, default_value_t = OverwriteArg::Never)]
    pub(crate) overwrite: OverwriteArg,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `restore --overwrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OverwriteArg {
    /// Keep every existing entry as it is.
    Never,
    /// Replace a file whose content differs from the snapshot's.
    IfChanged,
    /// Replace every entry the snapshot has.
    Always,
}

/// `coffer snapshots`.
#[derive(Debug, Args)]
pub(crate) struct SnapshotsCmd {
    /// Only snapshots of this host.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// A retention policy, as restic and Borg spell it.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct KeepArgs {
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub(crate) keep_hourly: Option<u32>,
    /// ... of each of the last N days.
    #[arg(long, value_name = "N")]
    pub(crate) keep_daily: Option<u32>,
    /// ... of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub(crate) keep_weekly: Option<u32>,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N")]
    pub(crate) keep_monthly: Option<u32>,
    /// ... of each of the last N years.
    #[arg(long, value_name = "N")]
    pub(crate) keep_yearly: Option<u32>,
    /// Keep every snapshot younger than this before the newest (e.g. 2y5m7d3h; also
    /// any duration jiff reads, e.g. '10 days').
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within: Option<String>,
}

/// `coffer forget`.
#[derive(Debug, Args)]
pub(crate) struct ForgetCmd {
    /// The policy.
    #[command(flatten)]
    pub(crate) keep: KeepArgs,
    /// Prune after forgetting.
    #[arg(long)]
    pub(crate) prune: bool,
    /// Show what would be forgotten, and forget nothing.
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer check`.
#[derive(Debug, Args)]
pub(crate) struct CheckCmd {
    /// Also read and verify every pack's content.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub(crate) read_data: bool,
    /// Read a subset of the packs: N% (at random), or n/t (slice n of t, so t runs
    /// read everything).
    #[arg(long, value_name = "N%|n/t")]
    pub(crate) read_data_subset: Option<String>,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// Commands that need only the repository.
#[derive(Debug, Args)]
pub(crate) struct RepoOnly {
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer ls`.
#[derive(Debug, Args)]
pub(crate) struct LsCmd {
    /// The snapshot: `latest` or an ID.
    pub(crate) snapshot: String,
    /// Only this path and what is under it.
    pub(crate) path: Option<String>,
    /// Long listing: mode, owner, size, time.
    #[arg(long, short = 'l')]
    pub(crate) long: bool,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpCmd {
    /// The snapshot: `latest` or an ID.
    pub(crate) snapshot: String,
    /// The file, as `ls` shows it.
    pub(crate) file: String,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer find`.
#[derive(Debug, Args)]
pub(crate) struct FindCmd {
    /// A glob matched against names (e.g. '*.pdf'), or against whole paths if it has
    /// a '/'.
    pub(crate) pattern: String,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffCmd {
    /// The older snapshot.
    pub(crate) from: String,
    /// The newer snapshot.
    pub(crate) to: String,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer key add`.
#[derive(Debug, Args)]
pub(crate) struct KeyAddCmd {
    /// The new key can add backups but not read them (for agents and untrusted hosts).
    #[arg(long)]
    pub(crate) write_only: bool,
    /// Protect the new key with this key file...
    #[arg(long, value_name = "FILE")]
    pub(crate) new_key_file: Option<PathBuf>,
    /// ... or with the passphrase in this file (else $COFFER_NEW_PASSWORD, else a
    /// prompt).
    #[arg(long, value_name = "FILE", conflicts_with = "new_key_file")]
    pub(crate) new_password_file: Option<PathBuf>,
    /// The repository, and a key that opens it (a full one, for a full new key).
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer key remove`.
#[derive(Debug, Args)]
pub(crate) struct KeyRemoveCmd {
    /// The key's ID, as `coffer key list` shows it (a unique prefix is enough).
    pub(crate) id: String,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// `coffer mount`.
#[derive(Debug, Args)]
pub(crate) struct MountCmd {
    /// The folder to mount the repository on (it must exist).
    pub(crate) mountpoint: PathBuf,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoOpts,
}

/// A size with an optional K/M/G/T suffix (powers of 1024), as restic reads them.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'B' => 0,
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?}: unknown unit {c:?} (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: not a size (e.g. 500M)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_like_restics() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
