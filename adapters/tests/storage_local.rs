//! The local-folder backend: the shared storage suite, leftover temporaries, and a
//! child process killed at random points while replacing an object, many times.

mod storage_suite;

use std::process::{Command, Stdio};
use std::time::Duration;

use coffer_adapters::storage::{LocalStorage, PutMode, Storage};
use storage_suite::{data, key, read_all};

#[test]
fn local_storage_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open(dir.path()).unwrap();
    storage_suite::run(&store, "tenant/repo", 3 << 20);
}

#[test]
fn leftover_temporaries_are_removed_on_open_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open(dir.path()).unwrap();
    store
        .put(&key("a/b"), &mut &b"x"[..], PutMode::Overwrite)
        .unwrap();
    std::fs::write(dir.path().join("a/.coffer-tmp-deadbeef"), b"torn").unwrap();
    std::fs::write(dir.path().join("a/.coffer-tmp-0000f00d"), b"being written").unwrap();
    let old = filetime::FileTime::from_unix_time(1_700_000_000, 0);
    filetime::set_file_mtime(dir.path().join("a/.coffer-tmp-deadbeef"), old).unwrap();
    assert_eq!(store.list("").unwrap().len(), 1);
    LocalStorage::open(dir.path()).unwrap();
    // The stale one goes; a fresh one may be another process's write in progress.
    assert!(!dir.path().join("a/.coffer-tmp-deadbeef").exists());
    assert!(dir.path().join("a/.coffer-tmp-0000f00d").exists());
    assert!(dir.path().join("a/b").exists());
    assert_eq!(store.list("").unwrap().len(), 1);
}

#[test]
fn a_key_that_clashes_with_a_folder_or_an_object_is_a_key_conflict() {
    use coffer_adapters::Error;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open(dir.path()).unwrap();
    store
        .put(&key("d/inner"), &mut &b"x"[..], PutMode::Overwrite)
        .unwrap();
    store
        .put(&key("f"), &mut &b"x"[..], PutMode::Overwrite)
        .unwrap();
    for (k, mode) in [
        ("d", PutMode::Overwrite),
        ("d", PutMode::CreateOnly),
        ("f/under", PutMode::Overwrite),
        ("f/under/deeper", PutMode::CreateOnly),
    ] {
        match store.put(&key(k), &mut &b"y"[..], mode) {
            Err(Error::KeyConflict { .. }) => {}
            other => panic!("{k} ({mode:?}): {other:?}"),
        }
    }
    // Nothing was left behind, and the objects are as they were.
    assert_eq!(store.list("").unwrap().len(), 2);
    assert_eq!(read_all(store.get(&key("f")).unwrap()), b"x");
}

const OLD_LEN: usize = 3 << 20;
const NEW_LEN: usize = 5 << 20;

/// The child half of the kill test: replaces `obj` with the new content in a loop until
/// it is killed. Does nothing unless the parent test starts it.
#[test]
fn kill_test_child() {
    let Some(root) = std::env::var_os("COFFER_KILL_TEST_ROOT") else {
        return;
    };
    let store = LocalStorage::open(root).unwrap();
    let new = data(NEW_LEN, 2);
    loop {
        store
            .put(&key("obj"), &mut &new[..], PutMode::Overwrite)
            .unwrap();
    }
}

#[test]
fn a_writer_killed_at_any_moment_leaves_the_old_or_the_new_object() {
    let old = data(OLD_LEN, 1);
    let new = data(NEW_LEN, 2);
    let (mut seen_old, mut seen_new) = (0, 0);
    // At least 40 kills, and more until both outcomes were seen (a slow machine may
    // need later kill points before the first rename lands).
    for round in 0..200u64 {
        if round >= 40 && seen_old > 0 && seen_new > 0 {
            break;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open(dir.path()).unwrap();
        store
            .put(&key("obj"), &mut &old[..], PutMode::Overwrite)
            .unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill_test_child", "--nocapture"])
            .env("COFFER_KILL_TEST_ROOT", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill points spread over startup, the first write and the rewrites after it.
        std::thread::sleep(Duration::from_millis(5 + (round * 37) % 300 + round * 3));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = LocalStorage::open(dir.path()).unwrap();
        let got = read_all(store.get(&key("obj")).unwrap());
        assert!(
            got == old || got == new,
            "round {round}: a torn object of {} bytes",
            got.len()
        );
        seen_new += usize::from(got == new);
        seen_old += usize::from(got == old);
        // The killed writer's temporary may remain (a fresh one could be another
        // process's write in progress) but is never listed, and goes once stale.
        let keys: Vec<_> = store.list("").unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(keys, [key("obj")], "round {round}");
        let old_time = filetime::FileTime::from_unix_time(1_700_000_000, 0);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() != "obj" {
                filetime::set_file_mtime(&p, old_time).unwrap();
            }
        }
        LocalStorage::open(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["obj"],
            "round {round}: stale temporaries left after reopening"
        );
    }
    // The kill points must have landed both before and after a completed rename.
    assert!(
        seen_new > 0 && seen_new < 40,
        "new object seen {seen_new} times of 40"
    );
}
