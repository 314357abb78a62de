//! A minimal driver of the deduplicated repository engine, for benchmarks and manual
//! tries until the `coffer` CLI carries it (issue 16). The repository's key-encryption
//! key is read from the file named by `$COFFER_KEK_FILE` (64 hex digits).
//!
//! ```text
//! repo_tool init REPO
//! repo_tool backup REPO PATH...        prints the snapshot ID and the summary
//! repo_tool restore REPO ID|latest TARGET
//! repo_tool snapshots REPO
//! repo_tool check REPO [--read-data]
//! repo_tool stats REPO                 index bytes per blob, objects
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::restore::{self, RestoreOptions};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{LocalStorage, Storage};
use coffer_core::passphrase::Argon2Params;
use coffer_core::SecretKey;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn unlock() -> Result<Unlock> {
    let path = std::env::var_os("COFFER_KEK_FILE").ok_or("set COFFER_KEK_FILE")?;
    let text = std::fs::read_to_string(path)?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key)?;
    Ok(Unlock::Kek(SecretKey::from_bytes(key)))
}

fn store(path: &str) -> Result<Arc<dyn Storage>> {
    Ok(Arc::new(LocalStorage::open(path)?))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument");
    match arg(0)? {
        "init" => {
            let repo = Repository::init(store(arg(1)?)?, "", &unlock()?, Argon2Params::MIN)?;
            println!("created repository {}", hex::encode(repo.id()));
        }
        "backup" => {
            let repo = Repository::open(store(arg(1)?)?, "", &unlock()?)?;
            let paths: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            let options = BackupOptions {
                host: "bench".into(),
                program: "repo_tool".into(),
                ..BackupOptions::default()
            };
            let t = Instant::now();
            let report = backup::backup(&repo, &paths, &options)?;
            let s = &report.summary;
            println!(
                "snapshot {} in {:.2} s: {} files ({} read), {:.1} MiB, new {} blobs {:.1} MiB stored, {} packs",
                hex::encode(report.snapshot),
                t.elapsed().as_secs_f64(),
                s.files,
                s.files_read,
                s.bytes as f64 / 1048576.0,
                s.new_blobs,
                s.new_stored_bytes as f64 / 1048576.0,
                s.packs
            );
            for (path, why) in &report.skipped {
                eprintln!("skipped {}: {why}", path.display());
            }
        }
        "restore" => {
            let repo = Repository::open(store(arg(1)?)?, "", &unlock()?)?;
            let id = match arg(2)? {
                "latest" => repo.snapshots()?.pop().ok_or("no snapshot")?.0,
                prefix => repo.find_snapshot(prefix)?,
            };
            let report = restore::restore(
                &repo,
                &id,
                &PathBuf::from(arg(3)?),
                &RestoreOptions::default(),
            )?;
            println!(
                "restored {} files, {:.1} MiB",
                report.files,
                report.bytes as f64 / 1048576.0
            );
        }
        "snapshots" => {
            let repo = Repository::open(store(arg(1)?)?, "", &unlock()?)?;
            for (id, s) in repo.snapshots()? {
                let paths: Vec<String> = s
                    .paths
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                println!(
                    "{} {} {} {}",
                    hex::encode(id),
                    s.time,
                    s.host,
                    paths.join(" ")
                );
            }
        }
        "check" => {
            let repo = Repository::open(store(arg(1)?)?, "", &unlock()?)?;
            let read = if arg(2).is_ok_and(|a| a == "--read-data") {
                ReadData::All
            } else {
                ReadData::None
            };
            let report = check::check(&repo, read)?;
            println!(
                "{} snapshots, {} trees, {} data blobs, {} packs ({} read)",
                report.snapshots, report.trees, report.data_blobs, report.packs, report.packs_read
            );
            for e in &report.errors {
                println!("error: {e}");
            }
            if !report.ok() {
                std::process::exit(1);
            }
        }
        "stats" => {
            let repo = Repository::open(store(arg(1)?)?, "", &unlock()?)?;
            let index = repo.load_index()?;
            println!(
                "{} blobs in {} packs; in-memory index {} bytes, {:.1} bytes per blob",
                index.len(),
                index.packs.len(),
                index.heap_bytes(),
                index.heap_bytes() as f64 / index.len().max(1) as f64
            );
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}
