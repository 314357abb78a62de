//! A source tree with what backups meet, and a description of a tree to compare
//! restores against.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub fn set_mtime(path: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// A tree with what backups meet: nested folders, empty files, a large file spanning
/// many frames and chunks (runs of zeros and of noise), symlinks (relative, absolute,
/// dangling), a non-UTF-8 name, and assorted modes and times.
pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("a/empty"), b"").unwrap();
    fs::write(root.join("a/b/small.txt"), b"hello coffer\n").unwrap();
    let mut large = vec![0u8; 9 << 20];
    let mut x = 12345u32;
    for (i, byte) in large.iter_mut().enumerate() {
        if (i / (1 << 20)) % 2 == 1 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *byte = (x >> 16) as u8;
        }
    }
    fs::write(root.join("a/b/c/large.bin"), &large).unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"caf\xe9-latin1")),
        b"non-utf8 name",
    )
    .unwrap();
    fs::write(root.join("a/script.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("a/script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(
        root.join("a/b/small.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("b/small.txt", root.join("a/link-rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("a/link-dangling")).unwrap();
    let mut all = Vec::new();
    walk(root, &mut all);
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000);
    }
    set_mtime(root, 1_500_000_000);
    fs::set_permissions(root.join("a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(&p, out);
        }
    }
}

/// Everything the restore must reproduce, keyed by relative path.
pub fn describe(root: &Path) -> BTreeMap<Vec<u8>, (String, u32, i64, Vec<u8>)> {
    let mut all = Vec::new();
    walk(root, &mut all);
    all.into_iter()
        .map(|p| {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let (kind, content) = if m.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
                )
            } else if m.is_dir() {
                ("dir", Vec::new())
            } else {
                ("file", Sha256::digest(fs::read(&p).unwrap()).to_vec())
            };
            let mode = if m.file_type().is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            (rel, (kind.to_owned(), mode, m.mtime(), content))
        })
        .collect()
}
