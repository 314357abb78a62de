//! Runs one backup or restore through the pipeline, for the benchmark scripts in
//! `bench/` (peak memory with `/usr/bin/time -v`, throughput against `tar | zstd`).
//!
//! `pipeline_bench backup <store> <threads> <source>...` /
//! `pipeline_bench restore <store> <target>`; the key comes from `COFFER_BENCH_KEY_HEX`
//! (64 hex digits) so it never appears in argv. Sealing uses the default provider.

use std::path::PathBuf;
use std::time::Instant;

use coffer_adapters::default_provider;
use coffer_adapters::pipeline::{self, BackupOptions, RestoreOptions};
use coffer_adapters::storage::{LocalStorage, ObjectKey};
use coffer_core::{SecretKey, Suite};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let key_hex = std::env::var("COFFER_BENCH_KEY_HEX")?;
    let key = SecretKey::try_from_slice(&hex::decode(key_hex)?)?;
    let prefix = ObjectKey::new("bench")?;
    match args.first().map(String::as_str) {
        Some("backup") if args.len() >= 4 => {
            let store = LocalStorage::open(&args[1])?;
            let options = BackupOptions {
                threads: args[2].parse()?,
                level: 3,
                suite: Suite::Aes256Gcm,
                host: "bench".into(),
            };
            let sources: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
            let start = Instant::now();
            let s = pipeline::backup(
                &default_provider(),
                &store,
                &prefix,
                "b",
                &key,
                &sources,
                &options,
            )?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "backup: {} bytes of content, {} archive, {} stored, {:.3} s, {:.1} MiB/s",
                s.manifest.content_bytes,
                s.manifest.archive_len,
                s.stored_bytes,
                secs,
                s.manifest.archive_len as f64 / secs / 1048576.0
            );
        }
        Some("restore") if args.len() == 3 => {
            let store = LocalStorage::open(&args[1])?;
            let start = Instant::now();
            let s = pipeline::restore(
                &default_provider(),
                &store,
                &prefix,
                "b",
                &key,
                args[2].as_ref(),
                &RestoreOptions::default(),
            )?;
            println!(
                "restore: {} files, {} bytes, {:.3} s",
                s.files,
                s.bytes,
                start.elapsed().as_secs_f64()
            );
        }
        _ => {
            eprintln!("usage: pipeline_bench backup <store> <threads> <source>... | restore <store> <target>");
            std::process::exit(2);
        }
    }
    Ok(())
}
