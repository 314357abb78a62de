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
mod seal;
mod secrets;
mod vectors;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, VectorsCommand};
use crate::exit::Result;

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
        Command::Init(args) => repo_cmd::init(args, json),
        Command::Backup(args) => backup::backup(args, json),
        Command::Restore(args) => backup::restore(args, json),
        Command::List(args) => repo_cmd::list(args, json),
        Command::Verify(args) => backup::verify(args, json),
        Command::Prune(args) => repo_cmd::prune(args, json),
        Command::Agent { command } => agent::run(command, json),
        Command::Vectors {
            command: VectorsCommand::Verify { dir },
        } => vectors::verify(dir, json),
    }
}
