//! Running the built `coffer` binary in a scratch folder, and checking what it left.
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub mod s3s;
pub mod server;
/// The adapters' tree of what backups meet and its description (mtimes of folders
/// and links too), shared rather than copied.
#[path = "../../../adapters/tests/tree_support/mod.rs"]
pub mod tree;

pub const BIN: &str = env!("CARGO_BIN_EXE_coffer");

/// A scratch folder with helpers to run `coffer` in it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

/// What a run gave: exit code, stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        self
    }
    pub fn fails(self, code: i32, message: &str) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}; stderr: {}",
            self.stderr
        );
        assert!(
            self.stderr.contains(message),
            "expected {message:?} in stderr: {}",
            self.stderr
        );
        self
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout_text()))
    }
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A command in the scratch folder, with a clean environment for secrets.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("COFFER_PASSPHRASE")
            .env_remove("COFFER_NEW_PASSPHRASE")
            .env_remove("COFFER_REPO")
            .env_remove("COFFER_REPOSITORY")
            .env_remove("COFFER_KEY_FILE")
            .env_remove("COFFER_PASSWORD")
            .env_remove("COFFER_PASSWORD_FILE")
            .env_remove("COFFER_NEW_PASSWORD")
            .env_remove("COFFER_CACHE_DIR")
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        finish(self.cmd(args).output().unwrap())
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        finish(c.output().unwrap())
    }

    pub fn run_stdin(&self, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Run {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        finish(out)
    }

    /// Runs `sh -c script` in the scratch folder (`$COFFER` is the binary).
    /// Runs `script` with the current folder's `small` a 1 MiB tmpfs (in a private mount
    /// namespace), or where that is not allowed, with a 1 MiB file-size limit
    /// (`ulimit -f`, SIGXFSZ ignored so writes fail with EFBIG). Returns which was used.
    pub fn with_small_disk(&self, script: &str) -> (&'static str, Run) {
        fs::create_dir_all(self.path("small")).unwrap();
        let probe = self.sh("unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs small' 2>&1");
        if probe.code == 0 {
            let run = self.sh(&format!(
                "unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs small && {{ {script}; }}; \
                 rc=$?; echo LEFT: $(ls -A small); exit $rc'"
            ));
            ("tmpfs", run)
        } else {
            let run = self.sh(&format!(
                "trap '' XFSZ; ulimit -f 2048; {script}; rc=$?; echo LEFT: $(ls -A small); exit $rc"
            ));
            ("ulimit -f", run)
        }
    }

    pub fn sh(&self, script: &str) -> Run {
        finish(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(self.dir.path())
                .env("COFFER", BIN)
                .env_remove("COFFER_PASSPHRASE")
                .output()
                .unwrap(),
        )
    }

    pub fn write(&self, p: &str, data: &[u8]) -> PathBuf {
        let path = self.path(p);
        fs::write(&path, data).unwrap();
        path
    }

    /// Names in a folder (hidden ones too), sorted.
    pub fn names(&self, p: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path(p))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Generates a key file.
    pub fn key(&self, name: &str) -> String {
        self.run(&["key", "generate", name]).ok();
        name.to_owned()
    }
}

/// Deterministic noise.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
