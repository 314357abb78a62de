//! Coffer's own test vectors: the committed files are exactly what the generator makes
//! now (the small repository in `test-vectors/repository/` included), the core and the
//! repository engine pass every vector file in `test-vectors/`, the engine restores that
//! repository to what its README lists, and the checker catches a vector whose
//! expectation is wrong.
//!
//! Regenerate after a deliberate change with
//! `COFFER_WRITE_VECTORS=1 cargo test -p coffer-adapters --test coffer_vectors`.

mod vectors_gen;

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::restore::{self, RestoreOptions};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::LocalStorage;
use coffer_adapters::vectors::{verify_dir, verify_file};
use coffer_adapters::Error;
use coffer_core::SecretKey;
use sha2::{Digest, Sha256};
use vectors_gen::repository::whole;
use zeroize::Zeroizing;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

const TABLE_BEGIN: &str = "<!-- flag counts: generated, do not edit -->\n";
const TABLE_END: &str = "<!-- end of flag counts -->\n";

/// The README's table of tests per flag, per file.
fn flag_table(files: &[vectors_gen::File]) -> String {
    let mut out = String::from("| file | flag | tests |\n| --- | --- | --- |\n");
    for f in files {
        out += &format!("| `{}` | (all) | {} |\n", f.name, f.test_count());
        for (flag, n) in f.flag_counts() {
            out += &format!("| `{}` | {flag} | {n} |\n", f.name);
        }
    }
    out
}

#[test]
fn committed_vectors_are_what_the_generator_makes() {
    let write = std::env::var_os("COFFER_WRITE_VECTORS").is_some();
    let files = vectors_gen::all_files();
    let mut stale = Vec::new();
    for f in &files {
        for (flag, n) in f.flag_counts() {
            assert!(n > 0, "{}: flag {flag} has a note but no test", f.name);
        }
        let path = vectors_dir().join(f.name);
        let text = f.to_json();
        if write {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(&text) {
            stale.push(f.name.to_owned());
        }
    }
    let readme_path = vectors_dir().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (Some(begin), Some(end)) = (readme.find(TABLE_BEGIN), readme.find(TABLE_END)) else {
        panic!("test-vectors/README.md lacks the flag-count markers");
    };
    let fresh = format!(
        "{}{TABLE_BEGIN}{}{}",
        &readme[..begin],
        flag_table(&files),
        &readme[end..]
    );
    if write {
        std::fs::write(&readme_path, fresh).unwrap();
    } else if fresh != readme {
        stale.push("README.md (flag counts)".into());
    }
    // The small repository, file by file.
    let repo_dir = vectors_dir().join(whole::DIR);
    let made = whole::repository_files();
    if write {
        let _ = std::fs::remove_dir_all(&repo_dir);
        for (rel, bytes) in &made {
            let path = repo_dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    } else {
        let mut committed = Vec::new();
        read_tree(&repo_dir, &repo_dir, &mut committed);
        committed.sort();
        let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
            files.iter().map(|(n, _)| n.clone()).collect()
        };
        if names(&committed) != names(&made) {
            stale.push(format!("{}/ (the files it holds)", whole::DIR));
        }
        for ((name, a), (_, b)) in committed.iter().zip(&made) {
            if a != b {
                stale.push(format!("{}/{name}", whole::DIR));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "these files differ from what the generator makes: {stale:?}; if the change is \
         deliberate, run COFFER_WRITE_VECTORS=1 cargo test -p coffer-adapters --test coffer_vectors"
    );
}

/// Every file under `dir`, as (path relative to `base`, bytes).
fn read_tree(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            read_tree(base, &path, out);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn the_core_passes_every_vector_file() {
    let reports = verify_dir(&vectors_dir()).unwrap();
    let mut applied = 0;
    for r in &reports {
        assert!(
            r.failures.is_empty(),
            "{}: {} of {} tests failed: {:#?}",
            r.path.display(),
            r.failures.len(),
            r.tests,
            r.failures
        );
        if r.not_applicable.is_empty() {
            assert!(r.tests > 0, "{}", r.path.display());
            applied += 1;
        }
    }
    let names: Vec<String> = reports
        .iter()
        .filter(|r| r.not_applicable.is_empty())
        .map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "coffer_stream_aes_256_gcm_test.json",
        "coffer_stream_chacha20_poly1305_test.json",
        "coffer_key_envelope_test.json",
        "coffer_passphrase_envelope_test.json",
        "c2sp_chunked_encryption_aes_256_gcm_test.json",
        "coffer_chunker_test.json",
        "coffer_repository_test.json",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not applied"
        );
    }
    assert_eq!(applied, 7);
}

/// Each kind of wrong expectation in a vector file makes the checker report that test.
#[test]
fn the_checker_catches_wrong_expectations() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 6] = [
        ("coffer_key_envelope_test.json", |t| {
            t["result"] = "invalid".into()
        }),
        ("coffer_key_envelope_test.json", |t| {
            let mut k = hex::decode(t["wrappedKey"].as_str().unwrap()).unwrap();
            k[0] ^= 1;
            t["wrappedKey"] = hex::encode(k).into();
        }),
        ("coffer_stream_chacha20_poly1305_test.json", |t| {
            t["msgLength"] = (t["msgLength"].as_u64().unwrap() + 1).into()
        }),
        ("coffer_passphrase_envelope_test.json", |t| {
            t["passphrase"] = hex::encode(b"not it").into()
        }),
        ("coffer_stream_aes_256_gcm_test.json", |t| {
            t["ctx"] = hex::encode(b"another context").into()
        }),
        ("coffer_chunker_test.json", |t| {
            let mut k = hex::decode(t["chunkerTableKey"].as_str().unwrap()).unwrap();
            k[15] ^= 0x80;
            t["chunkerTableKey"] = hex::encode(k).into();
        }),
    ];
    for (file, edit) in edits {
        let text = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Edit the first valid test (tcId 1 in every file).
        let test = &mut json["testGroups"][0]["tests"][0];
        assert_eq!(test["result"], "valid");
        edit(test);
        let path = dir.path().join(file);
        std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
        let report = verify_file(&path).unwrap();
        assert_eq!(report.failures.len(), 1, "{file}: {:?}", report.failures);
        assert_eq!(report.failures[0].tc_id, 1);
    }
    // An invalid test whose named error is wrong is caught too.
    let text =
        std::fs::read_to_string(vectors_dir().join("coffer_key_envelope_test.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tests = json["testGroups"][0]["tests"].as_array_mut().unwrap();
    let bad = tests.iter_mut().find(|t| t["error"] == "BadMagic").unwrap();
    bad["error"] = "Truncated".into();
    let path = dir.path().join("edited_test.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    assert_eq!(verify_file(&path).unwrap().failures.len(), 1);

    // Chunker tests: a moved cut, another chunk ID, a parameter error naming another
    // parameter, a table entry, each in one test.
    let text = std::fs::read_to_string(vectors_dir().join("coffer_chunker_test.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let group = json["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .position(|g| g["type"] == "CofferChunker")
        .unwrap();
    type ChunkerEdit = fn(&mut Vec<serde_json::Value>);
    let chunker_edits: [ChunkerEdit; 4] = [
        |tests| {
            let t = tests
                .iter_mut()
                .find(|t| t["cuts"].as_array().is_some_and(|c| c.len() > 2))
                .unwrap();
            t["cuts"][0] = (t["cuts"][0].as_u64().unwrap() + 1).into();
        },
        |tests| {
            let t = tests
                .iter_mut()
                .find(|t| t["chunkIds"].as_array().is_some_and(|c| c.len() > 1))
                .unwrap();
            t["chunkIds"][1] = hex::encode([0u8; 32]).into();
        },
        |tests| {
            let t = tests
                .iter_mut()
                .find(|t| t["errorParameter"] == "max_size")
                .unwrap();
            t["errorParameter"] = "min_size".into();
        },
        |tests| {
            let t = tests.iter_mut().find(|t| t["result"] == "invalid").unwrap();
            t["maxSize"] = 1000.into();
            t["minSize"] = 100.into();
            t["maskBits"] = 4.into();
        },
    ];
    for edit in chunker_edits {
        let mut json = json.clone();
        edit(json["testGroups"][group]["tests"].as_array_mut().unwrap());
        std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
        let report = verify_file(&path).unwrap();
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    }

    // Repository tests: one edit in one test of each group (the first valid one, unless
    // the edit says which), each caught.
    let text = std::fs::read_to_string(vectors_dir().join("coffer_repository_test.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    type RepoEdit = (
        &'static str,
        Option<&'static str>,
        fn(&mut serde_json::Value),
    );
    let repo_edits: [RepoEdit; 12] = [
        ("CofferRepositoryKeys", None, |t| {
            let mut b = hex::decode(t["recipientPrivateKey"].as_str().unwrap()).unwrap();
            b[31] ^= 0x40;
            t["recipientPrivateKey"] = hex::encode(b).into();
        }),
        ("CofferRecipientObject", None, |t| {
            t["name"] = "data/00/00000000000000000000000000000000".into()
        }),
        ("CofferRecipientObject", None, |t| {
            let mut b = hex::decode(t["objectKey"].as_str().unwrap()).unwrap();
            b[0] ^= 1;
            t["objectKey"] = hex::encode(b).into();
        }),
        ("CofferSymmetricObject", None, |t| {
            t["msg"] = hex::encode(b"another plaintext").into()
        }),
        ("CofferPack", None, |t| {
            let mut b = hex::decode(t["entries"][0]["msg"].as_str().unwrap()).unwrap();
            b[0] ^= 1;
            t["entries"][0]["msg"] = hex::encode(b).into();
        }),
        ("CofferPack", Some("Overlap"), |t| {
            t["result"] = "valid".into()
        }),
        ("CofferIndex", None, |t| {
            t["supersedes"] = serde_json::json!([])
        }),
        ("CofferTree", None, |t| {
            t["nodes"][0]["mode"] = (t["nodes"][0]["mode"].as_u64().unwrap() + 1).into()
        }),
        ("CofferTree", Some("Unsorted"), |t| {
            t["error"] = "DuplicateName".into()
        }),
        ("CofferSnapshot", None, |t| {
            t["snapshot"]["summary"]["files"] = 1.into()
        }),
        ("CofferConfig", None, |t| {
            t["created"] = (t["created"].as_i64().unwrap() + 1).into()
        }),
        ("CofferKeyFile", None, |t| t["access"] = "writeOnly".into()),
    ];
    for (kind, flag, edit) in repo_edits {
        let mut json = json.clone();
        let group = json["testGroups"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|g| g["type"] == kind)
            .unwrap();
        let test = group["tests"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|t| match flag {
                None => t["result"] == "valid",
                Some(flag) => t["flags"].as_array().unwrap().iter().any(|f| f == flag),
            })
            .unwrap();
        edit(test);
        std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
        let report = verify_file(&path).unwrap();
        assert_eq!(report.failures.len(), 1, "{kind}: {:?}", report.failures);
    }
}

/// One row of the repository README's listing.
struct Row {
    snapshot: usize,
    path: Vec<u8>,
    kind: String,
    mode: u32,
    mtime: (i64, i64),
    size: u64,
    content: String,
}

/// `\xNN` escapes back to bytes.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The README's `coffer_repo.py snapshots` lines, and its listing.
fn parse_readme(readme: &str) -> (Vec<String>, Vec<Row>) {
    let block = readme
        .split("`coffer_repo.py snapshots` prints, oldest first:\n\n```\n")
        .nth(1)
        .unwrap();
    let lines = block
        .split("```")
        .next()
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let rows = readme
        .lines()
        .filter(|l| l.starts_with("| 1 |") || l.starts_with("| 2 |"))
        .map(|l| {
            let cells: Vec<&str> = l
                .trim_start_matches("| ")
                .trim_end_matches(" |")
                .split(" | ")
                .collect();
            let (secs, ns) = cells[4].split_once('.').unwrap();
            Row {
                snapshot: cells[0].parse().unwrap(),
                path: unescape(cells[1].trim_matches('`')),
                kind: cells[2].to_owned(),
                mode: u32::from_str_radix(cells[3], 8).unwrap(),
                mtime: (secs.parse().unwrap(), ns.parse().unwrap()),
                size: cells[5].parse().unwrap(),
                content: cells[6].to_owned(),
            }
        })
        .collect();
    (lines, rows)
}

/// Every path under `dir`, relative to `base`.
fn walk(base: &Path, dir: &Path, out: &mut Vec<Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        out.push(
            path.strip_prefix(base)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec(),
        );
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(base, &path, out);
        }
    }
}

/// Compares a restored folder with the listing's rows of one snapshot.
fn compare_restore(target: &Path, rows: &[&Row]) {
    let os = |p: &[u8]| target.join(std::ffi::OsStr::from_bytes(p));
    let mut found = Vec::new();
    walk(target, target, &mut found);
    found.sort();
    let mut listed: Vec<Vec<u8>> = rows
        .iter()
        .filter(|r| r.kind != "socket")
        .map(|r| r.path.clone())
        .collect();
    listed.sort();
    assert_eq!(found, listed, "the restored paths differ from the listing");
    for r in rows {
        let path = os(&r.path);
        let what = String::from_utf8_lossy(&r.path).into_owned();
        if r.kind == "socket" {
            assert!(
                std::fs::symlink_metadata(&path).is_err(),
                "{what}: restored"
            );
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = if meta.is_dir() {
            "dir"
        } else if meta.is_symlink() {
            "symlink"
        } else if meta.file_type().is_file() {
            "file"
        } else {
            "other"
        };
        let kind = if kind == "other" && std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type())
        {
            "fifo"
        } else {
            kind
        };
        assert_eq!(kind, r.kind, "{what}: kind");
        if r.kind != "symlink" {
            assert_eq!(meta.mode() & 0o7777, r.mode, "{what}: mode");
        }
        assert_eq!((meta.mtime(), meta.mtime_nsec()), r.mtime, "{what}: mtime");
        for part in r.content.split(' ') {
            if let Some(sha) = part.strip_prefix("sha256:") {
                let data = std::fs::read(&path).unwrap();
                assert_eq!(data.len() as u64, r.size, "{what}: size");
                assert_eq!(hex::encode(Sha256::digest(&data)), sha, "{what}: content");
            } else if let Some(t) = part.strip_prefix("target:") {
                let got = std::fs::read_link(&path).unwrap();
                assert_eq!(got.as_os_str().as_bytes(), unescape(t), "{what}: target");
            } else if let Some(first) = part.strip_prefix("link:") {
                let other = std::fs::metadata(os(&unescape(first))).unwrap();
                assert_eq!(
                    meta.ino(),
                    other.ino(),
                    "{what}: not a hard link of {first}"
                );
            }
        }
    }
}

/// The committed repository, copied to a temporary folder, opened with `unlock`.
fn open_vector_repository(copy: &Path, unlock: &Unlock) -> Result<Repository, Error> {
    let store = Arc::new(LocalStorage::open(copy).unwrap());
    Repository::open(store, "", unlock)
}

#[test]
fn the_repository_vector_restores_with_the_engine() {
    let dir = vectors_dir().join(whole::DIR);
    let copy = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    read_tree(&dir, &dir, &mut files);
    for (rel, bytes) in &files {
        let path = copy.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let secret = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let kek = |name: &str| {
        let bytes: [u8; 32] = hex::decode(secret(name)).unwrap().try_into().unwrap();
        Unlock::Kek(SecretKey::from_bytes(bytes))
    };
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let (lines, rows) = parse_readme(&readme);
    assert_eq!(lines.len(), 2);

    let repo = open_vector_repository(copy.path(), &kek("kek.hex")).unwrap();
    let report = check::check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    assert!(report.unindexed_packs.is_empty());
    let snapshots = repo.snapshots().unwrap();
    assert_eq!(snapshots.len(), lines.len());
    for (i, ((id, s), line)) in snapshots.iter().zip(&lines).enumerate() {
        let stamp = jiff::Timestamp::from_second(s.time)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S");
        let paths: Vec<String> = s
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let want = format!(
            "{}  {stamp}.{:09}Z  {}  {}",
            hex::encode(id),
            s.time_ns,
            s.host,
            paths.join(" ")
        );
        assert_eq!(&want, line);
        if i == 1 {
            assert_eq!(
                s.parent,
                Some(snapshots[0].0),
                "the second's parent is the first"
            );
        }
        let target = tempfile::tempdir().unwrap();
        let out = target.path().join("restored");
        let report = restore::restore(&repo, id, &out, &RestoreOptions::default()).unwrap();
        assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
        let mine: Vec<&Row> = rows.iter().filter(|r| r.snapshot == i + 1).collect();
        compare_restore(&out, &mine);
    }

    // The passphrase key file opens it too; the write-only one opens no snapshot.
    let pass = Unlock::Passphrase(Zeroizing::new(secret("passphrase.txt").into_bytes()));
    let by_pass = open_vector_repository(copy.path(), &pass).unwrap();
    assert_eq!(by_pass.snapshots().unwrap().len(), 2);
    let write_only = open_vector_repository(copy.path(), &kek("write-only-kek.hex")).unwrap();
    assert!(matches!(write_only.snapshots(), Err(Error::WriteOnlyKey)));
    assert_eq!(write_only.config(), repo.config());
}
