//! `coffer`: Coffer's command line. Keys, sealing and opening files and pipes,
//! backups to a folder or an S3 bucket (backup, restore, list, verify, prune), and
//! test-vector checking. See `cli/README.md` for every command and the exit codes.

#![forbid(unsafe_code)]

mod agent;
mod args;
mod backup;
mod calendar;
mod exit;
mod interrupt;
mod key_cmd;
mod keys;
mod output;
mod progress;
mod repo;
mod repo_cmd;
mod repository;
mod seal;
mod secrets;
mod server_cmd;
mod vectors;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{ArchiveCommand, Cli, Command, VectorsCommand};
use crate::exit::Result;
use crate::repository::{backup_cmd, browse, maintain, mount, restore_cmd, snapshots_cmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(_) if interrupt::interrupted() => {
            eprintln!("coffer: interrupted; nothing partial was kept");
            ExitCode::from(interrupt::EXIT_CODE)
        }
        Err(e) => {
            eprintln!("coffer: {e}");
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}})
                );
            }
            ExitCode::from(e.code())
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Key { command } => key_cmd::run(command, json),
        Command::Seal(args) => seal::seal(args, json),
        Command::Open(args) => seal::open(args, json),
        Command::Init(cmd) => snapshots_cmd::init(cmd, json),
        Command::Backup(cmd) => backup_cmd::run(cmd, json),
        Command::Restore(cmd) => restore_cmd::run(cmd, json),
        Command::Snapshots(cmd) => snapshots_cmd::list(cmd, json),
        Command::Ls(cmd) => browse::ls(cmd, json),
        Command::Dump(cmd) => browse::dump(cmd),
        Command::Find(cmd) => browse::find(cmd, json),
        Command::Diff(cmd) => browse::diff(cmd, json),
        Command::Mount(cmd) => mount::run(cmd),
        Command::Forget(cmd) => maintain::forget(cmd, json),
        Command::Prune(cmd) => maintain::prune(cmd, json),
        Command::Check(cmd) => maintain::check(cmd, json),
        Command::Unlock(cmd) => maintain::unlock(cmd, json),
        Command::Stats(cmd) => maintain::stats(cmd, json),
        Command::Archive { command } => match command {
            ArchiveCommand::Init(args) => repo_cmd::init(args, json),
            ArchiveCommand::Backup(args) => backup::backup(args, json),
            ArchiveCommand::Restore(args) => backup::restore(args, json),
            ArchiveCommand::List(args) => repo_cmd::list(args, json),
            ArchiveCommand::Verify(args) => backup::verify(args, json),
            ArchiveCommand::Prune(args) => repo_cmd::prune(args, json),
        },
        Command::Agent { command } => agent::run(command, json),
        Command::Server(cmd) => server_cmd::run(cmd, json),
        Command::Vectors {
            command: VectorsCommand::Verify { dir },
        } => vectors::verify(dir, json),
    }
}
