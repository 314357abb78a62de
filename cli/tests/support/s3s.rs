//! s3s-fs, a real S3-compatible server, on a free loopback port over a folder whose
//! subfolder `bucket` is the bucket; killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ACCESS: &str = "cli-test-access";
pub const SECRET: &str = "cli-test-secret-DO-NOT-PRINT";
pub const BUCKET: &str = "bucket";

pub struct S3sFs(Child);

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap();
    let bin = home.join("bin/s3s-fs");
    assert!(
        bin.is_file(),
        "needs s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary --locked"
    );
    bin
}

/// Starts s3s-fs over `root` (creating the bucket's folder); returns it and its URL.
pub fn start(root: &Path) -> (S3sFs, String) {
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let mut child = Command::new(binary())
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--access-key", ACCESS, "--secret-key", SECRET])
        .arg(root)
        .env("RUST_LOG", "s3s_fs=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It logs the address it bound; the rest of its log is drained so it never
    // blocks on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("server is running at ").nth(1) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        }
    });
    let server = S3sFs(child);
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("s3s-fs did not start");
    (server, url)
}
