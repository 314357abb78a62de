//! Running the built `coffer` binary in a scratch folder, and checking what it left.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// A tree with nested folders, empty files and folders, symlinks (relative,
/// absolute, dangling), a non-UTF-8 name, several modes, and a file spanning several
/// zstd frames and many chunks.
pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("a/empty"), b"").unwrap();
    fs::write(root.join("a/b/small.txt"), b"hello coffer\n").unwrap();
    fs::write(root.join("a/b/c/large.bin"), noise(5 << 20, 7)).unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"caf\xe9-latin1.txt")),
        b"non-UTF-8 name",
    )
    .unwrap();
    fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(root.join("a/private"), b"secret-ish").unwrap();
    fs::set_permissions(root.join("a/private"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("b/small.txt", root.join("a/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("missing", root.join("dangling")).unwrap();
    fs::set_permissions(root.join("a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
    for (p, t) in [
        ("a/b/small.txt", 1_600_000_000),
        ("script.sh", 1_500_000_000),
    ] {
        let t = filetime_from(t);
        set_times(&root.join(p), t);
    }
}

fn filetime_from(secs: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
}

fn set_times(path: &Path, t: std::time::SystemTime) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

/// Every path under `root`: kind, mode, file mtime, and content or link target.
pub fn describe(root: &Path) -> BTreeMap<Vec<u8>, (char, u32, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, (char, u32, i64, Vec<u8>)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            out.insert(rel, ('l', 0, 0, target.as_os_str().as_bytes().to_vec()));
        } else if meta.is_dir() {
            out.insert(rel, ('d', mode, 0, Vec::new()));
            walk(root, &path, out);
        } else {
            out.insert(rel, ('f', mode, meta.mtime(), fs::read(&path).unwrap()));
        }
    }
}
