//! The command line, as clap derives it. Secrets never appear here: only the names of
//! files that hold them (environment variables and prompts are read in `secrets`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;
use crate::repository::args::{
    BackupCmd, CheckCmd, DiffCmd, DumpCmd, FindCmd, ForgetCmd, InitCmd, KeyAddCmd, KeyRemoveCmd,
    LsCmd, MountCmd, RepoOnly, RestoreCmd, SnapshotsCmd,
};

/// Coffer: encrypted backups whose format anyone can check.
///
/// Secrets come from files (--key-file, --passphrase-file), from $COFFER_PASSPHRASE,
/// or from a prompt on the terminal; never from the command line.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, after_help = exit::TABLE)]
pub(crate) struct Cli {
    /// Print results as JSON on stdout (errors too), for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate, inspect, export, import and rewrap keys.
    Key {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Seal a file or a pipe ('-') under a key file or a passphrase.
    Seal(SealArgs),
    /// Open a sealed file or pipe; a file is written only once all of it verified.
    Open(OpenArgs),
    /// Create a deduplicated repository in a folder or an S3 bucket.
    Init(InitCmd),
    /// Back up files and folders, or a command's output; unchanged files are not read.
    #[command(after_help = BACKUP_HELP)]
    Backup(BackupCmd),
    /// Restore a snapshot, or paths of it, into a folder or a command's stdin.
    Restore(RestoreCmd),
    /// List snapshots: ID, time, host, tags, size, paths.
    Snapshots(SnapshotsCmd),
    /// List what is in a snapshot.
    Ls(LsCmd),
    /// Write one file of a snapshot to stdout.
    Dump(DumpCmd),
    /// Find files by name or path across every snapshot.
    Find(FindCmd),
    /// Show what changed between two snapshots.
    Diff(DiffCmd),
    /// Browse snapshots as a read-only file system (FUSE) until unmounted or Ctrl-C.
    Mount(MountCmd),
    /// Forget snapshots outside a retention policy (then `prune` frees their data).
    Forget(ForgetCmd),
    /// Delete data no snapshot uses any more; repack mostly unused packs.
    Prune(RepoOnly),
    /// Check the repository's structure, and with --read-data its content.
    Check(CheckCmd),
    /// Remove stale locks (of processes that died); never a live one.
    Unlock(RepoOnly),
    /// What the repository holds: snapshots, blobs, packs, stored bytes, index memory.
    Stats(RepoOnly),
    /// Whole-copy archives of format v1 (catalogue-based): init, backup, restore,
    /// list, verify, prune.
    Archive {
        /// What to do with archives.
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// Run this machine as an agent of a Coffer server.
    Agent {
        /// What to do as an agent.
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Manage a Coffer server as its admin or a tenant's operator: tenants, tokens,
    /// agents, jobs, runs, restore points, restores, audit ($COFFER_SERVER_URL and
    /// $COFFER_SERVER_TOKEN, or `coffer server login`).
    Server(crate::server_cmd::args::ServerCmd),
    /// Check test-vector files, for integrators.
    Vectors {
        /// What to do with vectors.
        #[command(subcommand)]
        command: VectorsCommand,
    },
}

/// How `backup` reads exclude patterns.
const BACKUP_HELP: &str =
    "Exclude patterns (--exclude, --exclude-file) follow restic's rules: a pattern
starting with / matches the whole absolute path; any other matches the path's
last components, so '*.tmp' and 'node_modules' match at every depth. * and ?
stay within one component, ** spans several; an excluded folder is left out
with everything under it. Lines of an exclude file starting with # are comments.";

/// Whole-copy archive subcommands (format v1).
#[derive(Debug, Subcommand)]
pub(crate) enum ArchiveCommand {
    /// Create an archive repository in a folder or an S3 bucket.
    Init(InitArgs),
    /// Back up files and folders, or a command's output, as one whole archive.
    Backup(BackupArgs),
    /// Restore an archive into a folder, a file, or a command's input.
    Restore(RestoreArgs),
    /// List the archives: time, size, key ID.
    List(ListArgs),
    /// Check an archive end to end, writing nothing.
    Verify(VerifyArgs),
    /// Delete archives outside a retention policy.
    Prune(PruneArgs),
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Add a key file or passphrase to a repository (--write-only: one that can add
    /// backups but not read them).
    Add(KeyAddCmd),
    /// List a repository's keys: ID, access, passphrase or key file.
    List(RepoOnly),
    /// Remove a key from a repository (never the one in use, nor the last full one).
    Remove(KeyRemoveCmd),
    /// Write a new random key to a key file (mode 0600) and print its key ID.
    Generate {
        /// The key file to create; an existing file is never overwritten.
        file: PathBuf,
    },
    /// Show the key ID of a key file, recovery kit, envelope or sealed file.
    Id {
        /// The file ('-' for stdin).
        file: PathBuf,
    },
    /// Export a key file as a recovery kit (text) or a passphrase or KEK envelope.
    Export(ExportArgs),
    /// Import a recovery kit or envelope back into a key file.
    Import(ImportArgs),
    /// Rewrap an envelope (a file, or a repository's) under a new passphrase or KEK.
    Rewrap(RewrapArgs),
}

/// How a key is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// A recovery kit: base32 with a checksum, to print or write down.
    Text,
    /// A passphrase envelope (COFFER/P, 168 bytes).
    Passphrase,
    /// A key-wrap envelope under another key file (COFFER/K, 152 bytes).
    Kek,
}

/// `coffer key export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The key file to export.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: PathBuf,
    /// The form of the export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Text)]
    pub(crate) format: ExportFormat,
    /// Where to write it (default: stdout for text; required for envelopes).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// For --format passphrase: file holding the new passphrase (else
    /// $COFFER_NEW_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// For --format kek: the key file to wrap under.
    #[arg(long, value_name = "FILE")]
    pub(crate) kek_file: Option<PathBuf>,
}

/// `coffer key import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// A recovery kit, a passphrase envelope or a KEK envelope ('-' for stdin).
    pub(crate) input: PathBuf,
    /// The key file to create.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// For a passphrase envelope: file holding the passphrase (else
    /// $COFFER_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// For a KEK envelope: the key file it is wrapped under.
    #[arg(long, value_name = "FILE")]
    pub(crate) kek_file: Option<PathBuf>,
}

/// `coffer key rewrap`.
#[derive(Debug, Args)]
pub(crate) struct RewrapArgs {
    /// The envelope file to rewrap in place (or use --repo).
    #[arg(required_unless_present = "repo", conflicts_with = "repo")]
    pub(crate) envelope: Option<PathBuf>,
    /// Rewrap the key envelope of this repository instead.
    #[arg(long)]
    pub(crate) repo: Option<String>,
    /// The catalogue file, for --repo (see `coffer init --help`).
    #[arg(long, value_name = "FILE")]
    pub(crate) catalogue: Option<PathBuf>,
    /// Current passphrase file, for a passphrase envelope (else $COFFER_PASSPHRASE,
    /// else a prompt).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Current KEK file, for a key-wrap envelope.
    #[arg(long, value_name = "FILE")]
    pub(crate) kek_file: Option<PathBuf>,
    /// New passphrase file (else $COFFER_NEW_PASSPHRASE, else a prompt), unless
    /// --new-kek-file is given.
    #[arg(long, value_name = "FILE", conflicts_with = "new_kek_file")]
    pub(crate) new_passphrase_file: Option<PathBuf>,
    /// Rewrap under this key file (a KEK) instead of a passphrase.
    #[arg(long, value_name = "FILE")]
    pub(crate) new_kek_file: Option<PathBuf>,
}

/// A key file or a passphrase.
#[derive(Debug, Args, Clone)]
pub(crate) struct SecretArgs {
    /// Key file (see `coffer key generate`).
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// File holding the passphrase (else $COFFER_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// The chunk AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SuiteArg {
    /// AES-256-GCM (Cobblestone-256): fastest with AES instructions.
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305: for CPUs without AES instructions.
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

/// `coffer seal`.
#[derive(Debug, Args)]
pub(crate) struct SealArgs {
    /// The file to seal, or '-' for stdin.
    pub(crate) input: PathBuf,
    /// Where to write the sealed file ('-' for stdout; default: INPUT.coffer).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// The key file or passphrase to seal under.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// The chunk AEAD.
    #[arg(long, value_enum, default_value_t = SuiteArg::Aes256Gcm)]
    pub(crate) suite: SuiteArg,
}

/// `coffer open`.
#[derive(Debug, Args)]
pub(crate) struct OpenArgs {
    /// The sealed file, or '-' for stdin.
    pub(crate) input: PathBuf,
    /// Where to write the plaintext ('-' for stdout; default: INPUT without .coffer).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// The key file or passphrase it was sealed under.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// Where a repository is.
#[derive(Debug, Args, Clone)]
pub(crate) struct RepoArgs {
    /// The repository: a folder, or s3://BUCKET/PREFIX (endpoint and credentials from
    /// the environment or --s3-config).
    #[arg(long, env = "COFFER_REPO")]
    pub(crate) repo: String,
    /// The catalogue file (default: catalogue.sqlite in a folder repository; for S3,
    /// a cache file under $XDG_CACHE_HOME/coffer, rebuilt from the bucket if missing).
    #[arg(long, value_name = "FILE")]
    pub(crate) catalogue: Option<PathBuf>,
    /// A file of S3 settings (KEY=VALUE lines, as the environment variables).
    #[arg(long, value_name = "FILE", env = "COFFER_S3_CONFIG")]
    pub s3_config: Option<PathBuf>,
}

/// `coffer init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Where to create it.
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    /// Protect the repository key with this key file, or with a passphrase.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// `coffer backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Files and folders to back up (each stored under its own name).
    #[arg(
        required_unless_present = "from_command",
        conflicts_with = "from_command"
    )]
    pub(crate) paths: Vec<PathBuf>,
    /// Back up what this shell command writes to stdout instead (needs --name).
    #[arg(long, value_name = "COMMAND", requires = "name")]
    pub(crate) from_command: Option<String>,
    /// The backup's name (default: the UTC time, e.g. 20261123T101500Z).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// zstd compression level.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub(crate) level: i32,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    /// Its key file or passphrase.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// `coffer restore`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "to_file", "to_command"])))]
pub(crate) struct RestoreArgs {
    /// The backup's name.
    pub(crate) name: String,
    /// Only these paths (as stored, e.g. `docs/report.txt`) and what is under them.
    pub(crate) paths: Vec<OsString>,
    /// Restore into this folder (created if missing; nothing in it is overwritten).
    #[arg(long, value_name = "DIR")]
    pub(crate) to: Option<PathBuf>,
    /// Restore a command-output backup into this file ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub(crate) to_file: Option<PathBuf>,
    /// Restore a command-output backup into this shell command's stdin.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) to_command: Option<String>,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    /// Its key file or passphrase.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// `coffer list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    /// Its key file or passphrase (needed only to rebuild a missing catalogue).
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// `coffer verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The backup's name.
    pub(crate) name: String,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    /// Its key file or passphrase.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// `coffer prune`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Keep the newest N backups.
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days (UTC) that have one.
    #[arg(long, value_name = "N")]
    pub(crate) keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub(crate) keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub(crate) keep_monthly: Option<u32>,
    /// Show what would be deleted, and delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The repository.
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    /// Its key file or passphrase (needed only to rebuild a missing catalogue).
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

/// Vector subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VectorsCommand {
    /// Apply every *_test.json file under DIR and print the counts.
    Verify {
        /// The vectors folder, e.g. test-vectors/.
        dir: PathBuf,
    },
}

/// Agent subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Enrol with a server using a one-time enrolment token (from --token-file, else
    /// $COFFER_ENROLL_TOKEN, else a prompt).
    Enroll {
        /// The server's URL, e.g. https://coffer.example.
        #[arg(long)]
        server: String,
        /// File holding the enrolment token.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Where the agent keeps its state (default: $XDG_STATE_HOME/coffer/agent).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// The agent's name in the server's lists (default: the host name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run the agent: heartbeat, poll for work, run backups, restores and verifies.
    Run {
        /// Where the agent keeps its state (default: $XDG_STATE_HOME/coffer/agent).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Poll once, do any work handed out, and exit.
        #[arg(long)]
        once: bool,
    },
}
