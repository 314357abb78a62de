//! `coffer mount` through the built binary: a tree backed up twice, mounted with FUSE,
//! and read back through the mount (every entry's kind, mode, mtime, link target and
//! content, a read in the middle of a large file, both snapshots, the host's folder),
//! a write refused, then Ctrl-C unmounting it. A write-only key is refused with exit 8
//! before anything is mounted.
//!
//! The mount needs /dev/fuse and `fusermount3` (Debian's fuse3) or `fusermount`: without
//! them the test fails and says so rather than passing without testing anything.

mod support;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::tree::{describe, make_tree};
use support::Scratch;

/// `args` with the repository and its key.
fn repo<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--repo", "repo", "--key-file", "k.key"]);
    v
}

/// The `fusermount3` (else `fusermount`) on `$PATH`.
fn fusermount() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["fusermount3", "fusermount"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Whether `path` is a mount point now, by /proc/mounts.
fn mounted(path: &Path) -> bool {
    let path = path.to_str().unwrap();
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(path))
}

/// A running `coffer mount`. Dropped while still running (a failed assertion), it is
/// killed and its mount detached, so the scratch folder can go.
struct Mount {
    child: Child,
    mnt: PathBuf,
    log: PathBuf,
}

impl Mount {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `snapshots/` lists `count` snapshots (and `latest`).
    fn wait_for(&mut self, count: usize) {
        let start = Instant::now();
        loop {
            if let Ok(entries) = fs::read_dir(self.mnt.join("snapshots")) {
                let names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
                if names.len() == count + 1 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("coffer mount exited ({status}): {}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not mounted after a minute: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if mounted(&self.mnt) {
            if let Some(helper) = fusermount() {
                let _ = Command::new(helper)
                    .args(["-u", "-z"])
                    .arg(&self.mnt)
                    .status();
            }
        }
    }
}

#[test]
fn snapshots_are_browsed_through_a_read_only_mount_until_ctrl_c() {
    assert!(
        fusermount().is_some(),
        "neither fusermount3 nor fusermount is installed: install fuse3 \
         (`apt-get install fuse3`) to test `coffer mount`"
    );
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: `coffer mount` needs the FUSE kernel module"
    );
    let s = Scratch::new();
    s.key("k.key");
    make_tree(&s.path("src"));
    s.run(&repo(&["init"])).ok();
    s.run(&repo(&["backup", "src"])).ok();
    let before = describe(&s.path("src"));
    fs::write(s.path("src/a/b/small.txt"), b"hello again\n").unwrap();
    s.run(&repo(&["backup", "src"])).ok();
    let after = describe(&s.path("src"));
    let list = s.run(&repo(&["snapshots", "--json"])).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let host = list[1]["host"].as_str().unwrap().to_owned();
    let newest_id = list[1]["id"].as_str().unwrap().to_owned();

    // Mount in the background, its stderr in a file.
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.canonicalize().unwrap();
    let log = s.path("mount.log");
    let child = s
        .cmd(&repo(&["mount", "mnt"]))
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut m = Mount { child, mnt, log };
    m.wait_for(2);
    assert!(mounted(&m.mnt), "{}", m.log());
    assert!(m.log().contains("mounted at mnt"), "{}", m.log());
    assert_eq!(s.names("mnt"), ["hosts", "ids", "snapshots"]);

    // snapshots/: both, and `latest` names the newest.
    let names: Vec<String> = s
        .names("mnt/snapshots")
        .into_iter()
        .filter(|n| n != "latest")
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let latest = fs::read_link(m.mnt.join("snapshots/latest")).unwrap();
    let latest = latest.to_str().unwrap().to_owned();
    assert!(names.contains(&latest), "{latest} not in {names:?}");
    assert!(latest.ends_with(&newest_id[..8]), "{latest}");
    let older = names.iter().find(|n| **n != latest).unwrap().clone();
    for name in &names {
        // 2026-05-01T10:15:00-1a2b3c4d
        assert_eq!(name.len(), 19 + 1 + 8, "{name}");
        assert_eq!(&name[10..11], "T", "{name}");
    }

    // The newest snapshot holds the tree as it is: kinds, modes, mtimes (folders' too),
    // link targets and every file's content, read through the mount.
    let inside = |snapshot: &str| {
        m.mnt
            .join("snapshots")
            .join(snapshot)
            .join(s.path("src").strip_prefix("/").unwrap())
    };
    assert_eq!(describe(&inside(&latest)), after);
    assert_eq!(describe(&inside("latest")), after, "through the link");
    // The older one, the tree as it was.
    assert_eq!(describe(&inside(&older)), before);
    assert_eq!(
        fs::read(inside(&older).join("a/b/small.txt")).unwrap(),
        b"hello coffer\n"
    );
    assert_eq!(
        fs::read(inside(&latest).join("a/b/small.txt")).unwrap(),
        b"hello again\n"
    );
    // A read in the middle of the large file, across a 1 MiB run boundary.
    let large = fs::read(s.path("src/a/b/c/large.bin")).unwrap();
    let file = fs::File::open(inside(&latest).join("a/b/c/large.bin")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 9 << 20);
    for (at, len) in [
        ((9 << 20) / 2 + 12_345, 300_000),
        ((3 << 20) - 1000, 5000),
        ((9 << 20) - 10, 10),
    ] {
        let mut got = vec![0u8; len];
        file.read_exact_at(&mut got, at as u64).unwrap();
        assert!(got == large[at..at + len], "{len} bytes at {at} differ");
    }
    let mut past = [0u8; 16];
    assert_eq!(file.read_at(&mut past, 9 << 20).unwrap(), 0, "EOF");
    drop(file);

    // hosts/HOST/ lists both (and latest); ids/ has each by its full ID.
    let mut by_host = s.names(&format!("mnt/hosts/{host}"));
    by_host.retain(|n| n != "latest");
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(by_host, expected);
    assert_eq!(s.names("mnt/hosts"), [host.as_str()]);
    let ids: Vec<String> = list
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    let mut ids_sorted = ids.clone();
    ids_sorted.sort();
    assert_eq!(s.names("mnt/ids"), ids_sorted);
    assert!(m
        .mnt
        .join("ids")
        .join(&newest_id)
        .join(s.path("src/a/b/c/large.bin").strip_prefix("/").unwrap())
        .is_file());

    // Read-only: no new file, no change, no removal.
    let refused = |e: std::io::Error| {
        assert!(
            matches!(e.raw_os_error(), Some(30 | 13 | 1)),
            "expected EROFS, EACCES or EPERM: {e}"
        );
    };
    refused(fs::write(inside(&latest).join("new.txt"), b"x").unwrap_err());
    refused(
        fs::OpenOptions::new()
            .write(true)
            .open(inside(&latest).join("a/b/small.txt"))
            .unwrap_err(),
    );
    refused(fs::remove_file(inside(&latest).join("a/b/small.txt")).unwrap_err());
    refused(fs::create_dir(m.mnt.join("snapshots/new")).unwrap_err());

    // Ctrl-C: unmounted, and the command ends.
    let pid = m.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = m.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still running 30 s after Ctrl-C: {}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        matches!(status.code(), Some(0 | 130)),
        "{status}: {}",
        m.log()
    );
    assert!(!mounted(&m.mnt), "still mounted after Ctrl-C: {}", m.log());
    assert!(s.names("mnt").is_empty());
}

#[test]
fn a_write_only_key_cannot_mount() {
    let s = Scratch::new();
    s.key("k.key");
    s.key("w.key");
    make_tree(&s.path("src"));
    s.run(&repo(&["init"])).ok();
    s.run(&repo(&["backup", "src"])).ok();
    s.run(&repo(&[
        "key",
        "add",
        "--write-only",
        "--new-key-file",
        "w.key",
    ]))
    .ok();
    fs::create_dir(s.path("mnt")).unwrap();
    s.run(&["mount", "mnt", "--repo", "repo", "--key-file", "w.key"])
        .fails(8, "write-only");
    assert!(!mounted(&s.path("mnt").canonicalize().unwrap()));
}
