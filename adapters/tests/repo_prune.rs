//! Forget and prune: space is freed and what is kept restores; prune waits for running
//! backups; a backup or a prune killed (SIGKILL) at any moment leaves a repository that
//! `check` passes, in which every kept snapshot restores.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

mod repo_support;

use repo_support::random_bytes;

use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::forget::{self, Policy};
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::locks::Lock;
use coffer_adapters::repo::prune;
use coffer_adapters::repo::restore::{self, RestoreOptions};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{LocalStorage, Storage};
use coffer_adapters::Error;
use coffer_core::passphrase::Argon2Params;

fn kek() -> Unlock {
    repo_support::kek(1)
}

fn options() -> BackupOptions {
    BackupOptions {
        host: "h".into(),
        program: "test".into(),
        ..BackupOptions::default()
    }
}

fn open(root: &Path) -> Repository {
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(root).unwrap());
    Repository::open(store, "", &kek()).unwrap()
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Files under a folder: relative path and content, sorted.
type Files = Vec<(PathBuf, Vec<u8>)>;

fn files_of(p: &Path) -> Files {
    let mut out = Vec::new();
    let mut stack = vec![p.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(p).unwrap().to_owned(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// A repository with three snapshots of a source whose big file is replaced between
/// them; returns the repository folder, the source and the snapshot IDs (oldest
/// first) and the source's content at the last one.
fn prepared(work: &Path) -> (PathBuf, PathBuf, Vec<[u8; 16]>, Files) {
    let root = work.join("repo");
    let src = work.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(&root).unwrap());
    let repo = Repository::init(store, "", &kek(), Argon2Params::MIN).unwrap();
    let mut ids = Vec::new();
    for round in 0..3u64 {
        std::fs::write(src.join("big"), random_bytes(2_500_000, round + 10)).unwrap();
        std::fs::write(src.join("sub/small"), format!("round {round}")).unwrap();
        std::fs::write(src.join("same"), random_bytes(700_000, 1)).unwrap();
        ids.push(
            backup::backup(&repo, std::slice::from_ref(&src), &options())
                .unwrap()
                .snapshot,
        );
    }
    let last = files_of(&src);
    (root, src, ids, last)
}

fn restores_as(
    repo: &Repository,
    id: &[u8; 16],
    src: &Path,
    want: &[(PathBuf, Vec<u8>)],
    out: &Path,
) {
    restore::restore(repo, id, out, &RestoreOptions::default()).unwrap();
    assert_eq!(files_of(&out.join(src.strip_prefix("/").unwrap())), want);
}

#[test]
fn forget_then_prune_frees_space_and_keeps_what_is_kept() {
    let work = tempfile::tempdir().unwrap();
    let (root, src, ids, last) = prepared(work.path());
    let repo = open(&root);
    let before = dir_size(&root.join("data"));
    let decisions = forget::forget(
        &repo,
        &Policy {
            keep_last: 1,
            ..Policy::default()
        },
        false,
    )
    .unwrap();
    assert_eq!(decisions.iter().filter(|d| d.keep).count(), 1);
    assert!(matches!(
        forget::forget(&repo, &Policy::default(), false),
        Err(Error::RepoFormat { .. })
    ));
    let report = prune::prune(&repo, "h").unwrap();
    assert!(
        report.packs_deleted + report.packs_repacked > 0,
        "{report:?}"
    );
    // Two of three big files are gone. Packs at least half in use are kept whole
    // (REPACK_BELOW), so how much goes depends on how the blobs fell into packs; the
    // second backup's packs hold nothing the last one uses, so they always go.
    let after = dir_size(&root.join("data"));
    assert!(
        after < before && report.bytes_freed > 0 && report.packs_deleted > 0,
        "{before} -> {after} bytes: {report:?}"
    );
    let c = check::check(&repo, ReadData::All).unwrap();
    assert!(c.ok() && c.unindexed_packs.is_empty(), "{:?}", c.errors);
    restores_as(&repo, &ids[2], &src, &last, &work.path().join("out"));
    // A second prune finds nothing to do.
    let again = prune::prune(&repo, "h").unwrap();
    assert_eq!(
        (again.packs_deleted, again.packs_repacked),
        (0, 0),
        "{again:?}"
    );
}

#[test]
fn prune_waits_for_a_running_backup_and_a_backup_for_prune() {
    let work = tempfile::tempdir().unwrap();
    let (root, src, _, _) = prepared(work.path());
    let repo = open(&root);
    let shared = Lock::take(&repo, false, "backup-host").unwrap();
    match prune::prune(&repo, "h") {
        Err(Error::Locked { holder }) => assert!(holder.contains("backup-host"), "{holder}"),
        other => panic!("{other:?}"),
    }
    shared.release().unwrap();
    let exclusive = Lock::take(&repo, true, "prune-host").unwrap();
    assert!(matches!(
        backup::backup(&repo, &[src], &options()),
        Err(Error::Locked { .. })
    ));
    exclusive.release().unwrap();
    prune::prune(&repo, "h").unwrap();
}

/// The child of the kill tests: runs the operation named by the environment on the
/// repository there, until it is killed (or finishes). Does nothing unless started so.
#[test]
fn kill_test_child() {
    let (Some(root), Some(op)) = (
        std::env::var_os("COFFER_REPO_KILL_ROOT"),
        std::env::var("COFFER_REPO_KILL_OP").ok(),
    ) else {
        return;
    };
    let repo = open(Path::new(&root));
    match op.as_str() {
        "prune" => {
            prune::prune(&repo, "h").unwrap();
        }
        _ => {
            let src = PathBuf::from(std::env::var_os("COFFER_REPO_KILL_SRC").unwrap());
            backup::backup(&repo, &[src], &options()).unwrap();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn kill_rounds(op: &str) {
    let work = tempfile::tempdir().unwrap();
    let (template, src, ids, last) = prepared(work.path());
    {
        let repo = open(&template);
        forget::forget(
            &repo,
            &Policy {
                keep_last: 1,
                ..Policy::default()
            },
            false,
        )
        .unwrap();
    }
    // Changed content, so a killed backup is killed while it writes.
    std::fs::write(src.join("big"), random_bytes(2_500_000, 77)).unwrap();
    let spawn = |root: &Path| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill_test_child", "--nocapture"])
            .env("COFFER_REPO_KILL_ROOT", root)
            .env("COFFER_REPO_KILL_OP", op)
            .env("COFFER_REPO_KILL_SRC", &src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long the whole child takes unkilled, here and now: the kills are spread over
    // that span, so they land while it works on a fast, idle machine as on a busy one.
    let whole = {
        let root = work.path().join("unkilled");
        copy_dir(&template, &root);
        let started = std::time::Instant::now();
        spawn(&root).wait().unwrap();
        started.elapsed()
    };
    let mut finished = 0;
    for round in 0..24u64 {
        let root = work.path().join(format!("round-{round}"));
        copy_dir(&template, &root);
        let mut child = spawn(&root);
        // Rounds 0..24 in a scattered order over the span (11 is prime to 24).
        std::thread::sleep(whole.mul_f64(((round * 11) % 24) as f64 / 24.0));
        if child.try_wait().unwrap().is_some() {
            finished += 1;
        }
        child.kill().ok();
        child.wait().unwrap();
        // Whatever moment it died at: check passes, and the kept snapshot restores.
        let repo = open(&root);
        let report = check::check(&repo, ReadData::All).unwrap();
        assert!(report.ok(), "{op} round {round}: {:?}", report.errors);
        restores_as(
            &repo,
            &ids[2],
            &src,
            &last,
            &work.path().join(format!("out-{round}")),
        );
        // The killed process's lock stays until it is stale; removing it by hand, the
        // next prune cleans up what the killed one left.
        for (_, name) in repo.list_ids("locks").unwrap() {
            repo.store().delete(&repo.object(&name).unwrap()).unwrap();
        }
        prune::prune(&repo, "h").unwrap();
        let report = check::check(&repo, ReadData::All).unwrap();
        assert!(
            report.ok() && report.unindexed_packs.is_empty(),
            "{op} round {round}: {:?}",
            report.errors
        );
    }
    assert!(
        finished < 24,
        "the child always finished before the kill: no kill landed"
    );
}

#[test]
fn a_prune_killed_at_any_moment_leaves_a_repository_that_checks() {
    kill_rounds("prune");
}

#[test]
fn a_backup_killed_at_any_moment_leaves_a_repository_that_checks() {
    kill_rounds("backup");
}

#[test]
fn prune_racing_a_backup_never_loses_the_backup() {
    let work = tempfile::tempdir().unwrap();
    let (root, src, _, _) = prepared(work.path());
    {
        let repo = open(&root);
        forget::forget(
            &repo,
            &Policy {
                keep_last: 1,
                ..Policy::default()
            },
            false,
        )
        .unwrap();
    }
    std::fs::write(src.join("big"), random_bytes(2_500_000, 1234)).unwrap();
    let want = files_of(&src);
    for round in 0..6 {
        let (backed, pruned) = std::thread::scope(|s| {
            let b =
                s.spawn(|| backup::backup(&open(&root), std::slice::from_ref(&src), &options()));
            let p = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(round * 15));
                prune::prune(&open(&root), "h")
            });
            (b.join().unwrap(), p.join().unwrap())
        });
        // One of them may be refused by the other's lock; never both succeed wrongly.
        assert!(
            backed.is_ok() || matches!(backed, Err(Error::Locked { .. })),
            "{backed:?}"
        );
        assert!(
            pruned.is_ok() || matches!(pruned, Err(Error::Locked { .. })),
            "{pruned:?}"
        );
        let repo = open(&root);
        let report = check::check(&repo, ReadData::All).unwrap();
        assert!(report.ok(), "round {round}: {:?}", report.errors);
        if let Ok(b) = backed {
            let out = work.path().join(format!("race-{round}"));
            restores_as(&repo, &b.snapshot, &src, &want, &out);
        }
    }
}

/// A prune asked to stop (Ctrl-C) at each of its cancellation points in turn: it fails
/// with `Cancelled`, removes its lock, and leaves a repository that `check` passes, in
/// which the kept snapshot restores; the next prune finishes the work.
#[test]
fn a_prune_cancelled_at_each_point_leaves_a_repository_that_checks() {
    let work = tempfile::tempdir().unwrap();
    let (template, src, ids, last) = prepared(work.path());
    {
        let repo = open(&template);
        let keep = Policy {
            keep_last: 1,
            ..Policy::default()
        };
        forget::forget(&repo, &keep, false).unwrap();
    }
    let mut cancelled_at = Vec::new();
    for stop_at in 1..64u32 {
        let root = work.path().join(format!("stop-{stop_at}"));
        copy_dir(&template, &root);
        let repo = open(&root);
        let asked = std::sync::atomic::AtomicU32::new(0);
        let cancelled = || asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 >= stop_at;
        match prune::prune_with(&repo, "h", &cancelled) {
            Err(Error::Cancelled) => cancelled_at.push(stop_at),
            Ok(_) => break, // Past the last cancellation point: it finished.
            Err(e) => panic!("stop at {stop_at}: {e}"),
        }
        assert!(repo.list_ids("locks").unwrap().is_empty(), "lock left");
        let report = check::check(&repo, ReadData::All).unwrap();
        assert!(report.ok(), "stop at {stop_at}: {:?}", report.errors);
        restores_as(
            &repo,
            &ids[2],
            &src,
            &last,
            &work.path().join(format!("out-{stop_at}")),
        );
        prune::prune(&repo, "h").unwrap();
        let report = check::check(&repo, ReadData::All).unwrap();
        assert!(
            report.ok() && report.unindexed_packs.is_empty(),
            "{:?}",
            report.errors
        );
    }
    // Before repacking, before the new index, and between deletions: several points.
    assert!(
        cancelled_at.len() >= 3,
        "cancelled only at {cancelled_at:?}"
    );
}
