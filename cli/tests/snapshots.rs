//! Deduplicated repositories through the built binary: a tree with every metadata kind
//! backed up, changed, backed up again, then listed, found, diffed, dumped and
//! restored (whole, in part, into a command), excludes, keys, and the failures with
//! their exit codes.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::tree::{describe, make_tree};
use support::Scratch;

/// A scratch folder with a key file `k.key`, a tree `src` and a repository `repo`.
fn setup() -> Scratch {
    let s = Scratch::new();
    s.key("k.key");
    make_tree(&s.path("src"));
    s.run(&repo(&["init"])).ok();
    s
}

/// `args` with the repository and its key.
fn repo<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--repo", "repo", "--key-file", "k.key"]);
    v
}

/// Where a restore into `target` puts the folder `src` of the scratch folder: under
/// its absolute path, as restic does.
fn restored(s: &Scratch, target: &str) -> PathBuf {
    let src = s.path("src");
    s.path(target).join(src.strip_prefix("/").unwrap())
}

/// The last JSON line of a run's stdout (the summary).
fn summary(run: &support::Run) -> serde_json::Value {
    let text = run.stdout_text();
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn abs(s: &Scratch, rel: &str) -> String {
    s.path(rel).display().to_string()
}

#[test]
fn a_changed_tree_is_backed_up_incrementally_and_browsed_diffed_and_restored() {
    let s = setup();
    let first = s
        .run(&repo(&["backup", "src", "--tag", "one", "--json"]))
        .ok();
    let one = summary(&first);
    assert_eq!(one["message_type"], "summary");
    // make_tree: a/empty, a/b/small.txt, a/b/c/large.bin, café-latin1, a/script.sh.
    assert_eq!(one["files_new"], 5, "{one}");
    assert_eq!(one["files_changed"], 0);
    assert!(one["data_added"].as_u64().unwrap() > 9 << 20);
    let first_id = one["snapshot_id"].as_str().unwrap().to_owned();

    // Change the tree: one file's content, one added, one removed, one chmod.
    fs::write(s.path("src/a/b/small.txt"), b"hello again\n").unwrap();
    fs::write(s.path("src/new.txt"), b"new file\n").unwrap();
    fs::remove_file(s.path("src/a/empty")).unwrap();
    fs::set_permissions(s.path("src/a/script.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    let second = s
        .run(&repo(&["backup", "src", "--tag", "two", "--json"]))
        .ok();
    let two = summary(&second);
    assert_eq!(two["files_new"], 1, "{two}");
    assert_eq!(two["files_changed"], 1, "{two}");
    assert_eq!(two["files_unmodified"], 3, "{two}");
    // Unchanged files are not read again: only the changed one, the new one, and the
    // one whose mode changed (chmod changes its ctime, so it is read, and found the same).
    assert_eq!(two["bytes_read"], 12 + 9 + 10, "{two}");
    assert!(
        two["data_added"].as_u64().unwrap() < 64 << 10,
        "deduplicated: {two}"
    );
    let second_id = two["snapshot_id"].as_str().unwrap().to_owned();

    // snapshots: both, with their tags; --tag filters.
    let list = s.run(&repo(&["snapshots", "--json"])).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], first_id.as_str());
    assert_eq!(list[1]["tags"], serde_json::json!(["two"]));
    assert_eq!(list[1]["parent"], first_id.as_str());
    let tagged = s
        .run(&repo(&["snapshots", "--tag", "one", "--json"]))
        .ok()
        .json();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    let text = s.run(&repo(&["snapshots"])).ok().stdout_text();
    assert!(
        text.contains(&first_id[..8]) && text.contains("2 snapshots"),
        "{text}"
    );

    // diff: added, removed, changed content, metadata only.
    let d = s
        .run(&repo(&["diff", &first_id[..8], &second_id[..8]]))
        .ok()
        .stdout_text();
    let src = abs(&s, "src");
    for line in [
        format!("+    {src}/new.txt"),
        format!("-    {src}/a/empty"),
        format!("M    {src}/a/b/small.txt"),
        format!("U    {src}/a/script.sh"),
    ] {
        assert!(d.lines().any(|l| l == line), "{line:?} not in:\n{d}");
    }
    assert!(
        !d.contains("large.bin"),
        "an unchanged file is not in the diff:\n{d}"
    );

    // ls: every entry under a path; -l shows modes and link targets.
    let ls = s
        .run(&repo(&["ls", "latest", &format!("{src}/a")]))
        .ok()
        .stdout_text();
    assert!(
        ls.lines().any(|l| l == format!("{src}/a/b/c/large.bin")),
        "{ls}"
    );
    assert!(
        !ls.contains("/a/empty\n"),
        "removed in the second snapshot:\n{ls}"
    );
    let long = s
        .run(&repo(&["ls", "-l", "latest", &format!("{src}/a")]))
        .ok()
        .stdout_text();
    assert!(
        long.contains("-rwx------") && long.contains("-> b/small.txt"),
        "{long}"
    );
    let old = s
        .run(&repo(&["ls", &first_id, &format!("{src}/a/empty")]))
        .ok()
        .stdout_text();
    assert_eq!(old.trim(), format!("{src}/a/empty"));

    // find: by name across snapshots; both versions of small.txt.
    let found = s
        .run(&repo(&["find", "small.txt", "--json"]))
        .ok()
        .stdout_text();
    let hits: Vec<serde_json::Value> = found
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 2, "{found}");
    assert_eq!(hits[0]["snapshot_id"], first_id.as_str());
    assert_eq!(hits[1]["size"], 12);
    let none = s.run(&repo(&["find", "*.nothing"])).ok();
    assert!(none.stdout.is_empty() && none.stderr.contains("no match"));

    // dump: a file's bytes to stdout, old and new.
    let new = s
        .run(&repo(&["dump", "latest", &format!("{src}/a/b/small.txt")]))
        .ok();
    assert_eq!(new.stdout, b"hello again\n");
    let was = s
        .run(&repo(&["dump", &first_id, &format!("{src}/a/b/small.txt")]))
        .ok();
    assert_eq!(was.stdout, b"hello coffer\n");
    let large = s
        .run(&repo(&[
            "dump",
            "latest",
            &format!("{src}/a/b/c/large.bin"),
        ]))
        .ok();
    assert_eq!(
        large.stdout,
        fs::read(s.path("src/a/b/c/large.bin")).unwrap()
    );

    // restore whole, verified: the tree comes back exactly.
    s.run(&repo(&["restore", "latest", "--target", "out", "--verify"]))
        .ok();
    assert_eq!(describe(&restored(&s, "out")), describe(&s.path("src")));
    // the first snapshot: the tree as it was.
    s.run(&repo(&["restore", &first_id[..8], "--target", "old"]))
        .ok();
    assert_eq!(
        fs::read(restored(&s, "old").join("a/b/small.txt")).unwrap(),
        b"hello coffer\n"
    );
    assert!(restored(&s, "old").join("a/empty").is_file());

    // restore in part: only what --include names.
    s.run(&repo(&[
        "restore",
        "latest",
        "--target",
        "part",
        "--include",
        &format!("{src}/a/b"),
    ]))
    .ok();
    let part = restored(&s, "part");
    assert!(part.join("a/b/c/large.bin").is_file());
    assert!(!part.join("a/script.sh").exists() && !part.join("new.txt").exists());
    // --exclude: patterns as backups use them.
    s.run(&repo(&[
        "restore",
        "latest",
        "--target",
        "slim",
        "--exclude",
        "*.bin",
        "-e",
        "/**/a/b/small.txt",
    ]))
    .ok();
    let slim = restored(&s, "slim");
    assert!(slim.join("a/script.sh").is_file() && slim.join("new.txt").is_file());
    assert!(!slim.join("a/b/c/large.bin").exists() && !slim.join("a/b/small.txt").exists());

    // Into an existing target: by default nothing there is overwritten; if-changed
    // replaces only files whose content differs; always replaces every file.
    let restored_small = restored(&s, "out").join("a/b/small.txt");
    let mine = restored(&s, "out").join("mine.txt");
    fs::write(&restored_small, b"edited after the restore\n").unwrap();
    fs::write(&mine, b"not in any snapshot").unwrap();
    let never = s
        .run(&repo(&["restore", "latest", "--target", "out", "--json"]))
        .ok()
        .json();
    assert_eq!(never["files_restored"], 0, "{never}");
    assert!(never["kept"].as_u64().unwrap() >= 6, "{never}");
    assert_eq!(
        fs::read(&restored_small).unwrap(),
        b"edited after the restore\n"
    );
    let changed = s
        .run(&repo(&[
            "restore",
            "latest",
            "--target",
            "out",
            "--overwrite",
            "if-changed",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(
        changed["files_restored"], 1,
        "only the edited file: {changed}"
    );
    assert_eq!(fs::read(&restored_small).unwrap(), b"hello again\n");
    let always = s
        .run(&repo(&[
            "restore",
            "latest",
            "--target",
            "out",
            "--overwrite",
            "always",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(always["files_restored"], 5, "{always}");
    assert_eq!(
        fs::read(&mine).unwrap(),
        b"not in any snapshot",
        "never deleted"
    );
    fs::remove_file(&mine).unwrap();
    assert_eq!(describe(&restored(&s, "out")), describe(&s.path("src")));
    // A file where the target folder should be is refused.
    fs::write(s.path("a-file"), b"x").unwrap();
    s.run(&repo(&["restore", "latest", "--target", "a-file"]))
        .fails(7, "already exists");

    // check, structure and data.
    s.run(&repo(&["check", "--read-data"])).ok();
    s.run(&repo(&["check", "--read-data-subset", "1/2"])).ok();
    s.run(&repo(&["check", "--read-data-subset", "3/2"]))
        .fails(2, "--read-data-subset");
}

#[test]
fn excludes_leave_out_what_restic_users_expect_and_a_dry_run_stores_nothing() {
    let s = setup();
    fs::create_dir_all(s.path("src/node_modules/x")).unwrap();
    fs::write(s.path("src/node_modules/x/index.js"), b"x").unwrap();
    fs::write(s.path("src/a/b/drop.tmp"), b"tmp").unwrap();
    fs::create_dir_all(s.path("src/cachedir")).unwrap();
    fs::write(
        s.path("src/cachedir/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    fs::write(s.path("src/cachedir/blob"), b"cached").unwrap();
    fs::create_dir_all(s.path("src/private")).unwrap();
    fs::write(s.path("src/private/.nobackup"), b"").unwrap();
    fs::write(s.path("src/private/secret"), b"s").unwrap();
    fs::write(s.path("excludes"), b"# build output\nnode_modules\n\n").unwrap();
    let packs = |s: &Scratch| {
        let mut all = Vec::new();
        if s.path("repo/data").exists() {
            collect(&s.path("repo/data"), &mut all);
        }
        all.len()
    };

    let dry = s
        .run(&repo(&[
            "backup",
            "src",
            "--dry-run",
            "--json",
            "--exclude",
            "*.tmp",
        ]))
        .ok();
    let dry = summary(&dry);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["snapshot_id"].is_null());
    assert!(dry["data_added"].as_u64().unwrap() > 9 << 20, "{dry}");
    assert_eq!(
        s.run(&repo(&["snapshots", "--json"])).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(packs(&s), 0, "a dry run writes no pack");

    let run = s
        .run(&repo(&[
            "backup",
            "src",
            "--json",
            "--exclude",
            "*.tmp",
            "--exclude-file",
            "excludes",
            "--exclude-caches",
            "--exclude-if-present",
            ".nobackup",
            "--exclude-larger-than",
            "1M",
        ]))
        .ok();
    assert_eq!(summary(&run)["excluded"], 5, "{}", run.stdout_text());
    let listed = s.run(&repo(&["ls", "latest"])).ok().stdout_text();
    for gone in [
        "drop.tmp",
        "node_modules",
        "cachedir",
        "private",
        "large.bin",
    ] {
        assert!(!listed.contains(gone), "{gone} was excluded:\n{listed}");
    }
    assert!(
        listed.contains("small.txt") && listed.contains("script.sh"),
        "{listed}"
    );

    s.run(&repo(&["backup", "src", "--exclude", "!keep"]))
        .fails(2, "negated patterns");
    s.run(&repo(&["backup", "src", "--exclude-larger-than", "5X"]))
        .fails(2, "unknown unit");
}

#[test]
fn command_output_is_deduplicated_and_restored_into_a_command() {
    let s = setup();
    let dump = "i=0; while [ $i -lt 20000 ]; do echo \"row $i of a table\"; i=$((i+1)); done";
    let first = s
        .run(&repo(&[
            "backup",
            "--from-command",
            dump,
            "--stdin-name",
            "db.sql",
            "--json",
        ]))
        .ok();
    let first = summary(&first);
    assert_eq!(first["files_new"], 1);
    let again = s
        .run(&repo(&[
            "backup",
            "--from-command",
            dump,
            "--stdin-name",
            "db.sql",
            "--json",
        ]))
        .ok();
    assert_eq!(
        summary(&again)["data_blobs"],
        0,
        "the same output stores no new chunk"
    );
    s.run(&repo(&[
        "restore",
        "latest",
        "--to-command",
        "cat > restored.sql",
    ]))
    .ok();
    let expected = s.sh(dump).stdout;
    assert_eq!(fs::read(s.path("restored.sql")).unwrap(), expected);
    let dumped = s.run(&repo(&["dump", "latest", "/db.sql"])).ok();
    assert_eq!(dumped.stdout, expected);

    // A command that fails stores nothing.
    let before = s.run(&repo(&["snapshots", "--json"])).ok().json();
    s.run(&repo(&[
        "backup",
        "--from-command",
        "echo partial; exit 3",
        "--stdin-name",
        "x",
    ]))
    .fails(1, "the command failed");
    assert_eq!(s.run(&repo(&["snapshots", "--json"])).ok().json(), before);
    // A restore command that fails is an error.
    s.run(&repo(&[
        "restore",
        "latest",
        "--to-command",
        "cat >/dev/null; exit 4",
    ]))
    .fails(1, "the command failed");
}

#[test]
fn keys_can_be_added_listed_removed_and_made_write_only() {
    let s = setup();
    s.key("second.key");
    s.key("writer.key");
    s.run(&repo(&["backup", "src"])).ok();
    let added = s
        .run(&repo(&[
            "key",
            "add",
            "--new-key-file",
            "second.key",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(added["access"], "full");
    let writer = s
        .run(&repo(&[
            "key",
            "add",
            "--write-only",
            "--new-key-file",
            "writer.key",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(writer["access"], "write-only");
    let keys = s.run(&repo(&["key", "list", "--json"])).ok().json();
    assert_eq!(keys.as_array().unwrap().len(), 3);

    // The second full key reads everything.
    let second = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--repo", "repo", "--key-file", "second.key"]);
        s.run(&v)
    };
    second(&["restore", "latest", "--target", "by-second"]).ok();
    // The write-only key adds a backup but cannot read anything: exit 8.
    let w = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--repo", "repo", "--key-file", "writer.key"]);
        s.run(&v)
    };
    fs::write(s.path("src/more.txt"), b"written by the agent").unwrap();
    let by_writer = w(&["backup", "src", "--json"]).ok();
    assert_eq!(
        summary(&by_writer)["files_new"],
        6,
        "no cache yet: everything is new to it"
    );
    w(&["restore", "latest", "--target", "nope"]).fails(8, "write-only");
    w(&["ls", "latest"]).fails(8, "write-only");
    w(&["check"]).fails(8, "write-only");
    w(&["prune"]).fails(8, "write-only");
    w(&["key", "add", "--new-key-file", "k.key"]).fails(8, "write-only");
    assert!(!s.path("nope").exists());
    // The full key reads what the writer added.
    s.run(&repo(&[
        "dump",
        "latest",
        &format!("{}/more.txt", abs(&s, "src")),
    ]))
    .ok();
    s.run(&repo(&["check", "--read-data"])).ok();

    // Remove: not the key in use, not a missing one; the write-only one goes.
    let id_of = |access: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["access"] == access && k["current"] == false)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.run(&repo(&["key", "remove", &current]))
        .fails(2, "unlocked with");
    s.run(&repo(&["key", "remove", "ffffffff"]))
        .fails(6, "no key");
    s.run(&repo(&["key", "remove", &id_of("write-only")])).ok();
    w(&["snapshots"]).fails(3, "");
    assert_eq!(
        s.run(&repo(&["key", "list", "--json"]))
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn wrong_keys_missing_repositories_and_damaged_packs_fail_clearly() {
    let s = setup();
    s.key("other.key");
    s.run(&repo(&["backup", "src"])).ok();
    s.run(&["snapshots", "--repo", "repo", "--key-file", "other.key"])
        .fails(3, "");
    s.run(&["snapshots", "--repo", "nowhere", "--key-file", "k.key"])
        .fails(6, "no repository");
    s.run(&repo(&["restore", "abcdef", "--target", "x"]))
        .fails(6, "no snapshot");
    s.run(&repo(&["restore", "zz", "--target", "x"]))
        .fails(2, "hex digits");
    s.run(&repo(&["forget"])).fails(2, "--keep");
    s.run(&repo(&["init"])).fails(7, "");

    // The environment names the repository and its key, as RESTIC_* do.
    let env = [("COFFER_REPOSITORY", "repo"), ("COFFER_KEY_FILE", "k.key")];
    let listed = s.run_env(&["snapshots", "--json"], &env).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // A missing pack: check names it and fails with exit 4; a restore fails too.
    let data = s.path("repo/data");
    let mut packs: Vec<PathBuf> = Vec::new();
    collect(&data, &mut packs);
    let victim = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    fs::remove_file(victim).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let check = s.run(&repo(&["check"]));
    assert_eq!(check.code, 4, "{}", check.stderr);
    let text = check.stdout_text();
    assert!(text.contains(&name[..16]), "{text}");
    // It names the files whose data was in that pack: the largest pack holds the large
    // file's chunks, so the large file, or a folder above it whose listing was in the
    // same pack (shown with a trailing `/`: everything in it).
    let large = format!("{}/a/b/c/large.bin", abs(&s, "src"));
    let suffix = format!(" (pack {name})");
    let named: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("snapshot "))
        .filter_map(|l| l.strip_suffix(suffix.as_str()))
        .filter_map(|l| l.split_once(' ').map(|(_, path)| path))
        .collect();
    assert!(
        named
            .iter()
            .any(|p| *p == large || (p.ends_with('/') && large.starts_with(p))),
        "{text}"
    );
    s.run(&repo(&["restore", "latest", "--target", "broken"]))
        .fails(6, &format!("no object data/{}/{name}", &name[..2]));
}

/// Waits until a running backup holds its lock; returns the locks folder.
fn wait_for_lock(s: &Scratch) -> PathBuf {
    let locks = s.path("repo/locks");
    let started = std::time::Instant::now();
    while fs::read_dir(&locks).map_or(0, |d| d.count()) == 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "the backup never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    locks
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn forget_keeps_what_the_policy_says_and_prune_frees_the_rest() {
    let s = setup();
    for i in 0..4 {
        fs::write(
            s.path("src/changing"),
            format!("version {i}").repeat(50_000),
        )
        .unwrap();
        s.run(&repo(&["backup", "src"])).ok();
    }
    let dry = s
        .run(&repo(&[
            "forget",
            "--keep-last",
            "2",
            "--dry-run",
            "--json",
        ]))
        .ok()
        .json();
    let kept = dry["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .count();
    assert_eq!(kept, 2);
    assert_eq!(
        s.run(&repo(&["snapshots", "--json"]))
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let out = s
        .run(&repo(&["forget", "--keep-last", "2", "--prune"]))
        .ok()
        .stdout_text();
    assert!(out.contains("removed 2 of 4"), "{out}");
    assert_eq!(
        s.run(&repo(&["snapshots", "--json"]))
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    s.run(&repo(&["check", "--read-data"])).ok();
    s.run(&repo(&["restore", "latest", "--target", "out", "--verify"]))
        .ok();
    assert_eq!(
        fs::read(restored(&s, "out").join("changing")).unwrap(),
        "version 3".repeat(50_000).as_bytes()
    );
    let unlocked = s.run(&repo(&["unlock", "--json"])).ok().json();
    assert_eq!(unlocked["remaining"], 0);
}

#[test]
fn a_full_disk_on_restore_exits_5_and_leaves_no_partial_file() {
    let s = setup();
    s.run(&repo(&["backup", "src"])).ok();
    // Every file left under the target must be whole (the same as its source): a file
    // appears under its name only once all of it is written and verified.
    let script = "\"$COFFER\" restore latest --target small/out --repo repo --key-file k.key; \
        rc=$?; (cd small/out 2>/dev/null && find . -type f | while read -r f; do \
        cmp -s \"$f\" \"/$f\" || echo PARTIAL \"$f\"; done); exit $rc";
    let (how, run) = s.with_small_disk(script);
    assert_eq!(run.code, 5, "{how}: {}", run.stderr);
    assert!(
        !run.stdout_text().contains("PARTIAL"),
        "{how}: {}",
        run.stdout_text()
    );
}

#[test]
fn ctrl_c_stops_a_backup_and_leaves_a_repository_that_checks() {
    let s = setup();
    s.run(&repo(&["backup", "src"])).ok();
    // A command that never ends: only the interrupt stops this backup.
    let child = s
        .cmd(&repo(&[
            "backup",
            "--from-command",
            "yes coffer",
            "--stdin-name",
            "endless",
        ]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let locks = wait_for_lock(&s);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        fs::read_dir(&locks).unwrap().count(),
        0,
        "the lock is removed"
    );
    let list = s.run(&repo(&["snapshots", "--json"])).ok().json();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "no snapshot of the interrupted backup"
    );
    s.run(&repo(&["check", "--read-data"])).ok();
    s.run(&repo(&["prune"])).ok();
    s.run(&repo(&["check", "--read-data"])).ok();
}

#[test]
fn a_recovery_kit_of_the_key_file_opens_the_repository() {
    let s = setup();
    s.run(&repo(&["backup", "src"])).ok();
    let kit = s
        .run(&["key", "export", "--key-file", "k.key"])
        .ok()
        .stdout_text();
    s.write("kit.txt", kit.as_bytes());
    // The key file is lost; the kit printed on paper brings it back.
    fs::remove_file(s.path("k.key")).unwrap();
    s.run(&["key", "import", "kit.txt", "-o", "k.key"]).ok();
    s.run(&repo(&["restore", "latest", "--target", "out", "--verify"]))
        .ok();
    assert_eq!(describe(&restored(&s, "out")), describe(&s.path("src")));
}

#[test]
fn prune_waits_for_a_running_backup_with_a_clear_message() {
    let s = setup();
    s.run(&repo(&["backup", "src"])).ok();
    // A backup that holds its shared lock until its command ends.
    let backup = s
        .cmd(&repo(&[
            "backup",
            "--from-command",
            "echo start; sleep 3; echo end",
            "--stdin-name",
            "slow",
        ]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lock(&s);
    s.run(&repo(&["prune"])).fails(9, "prune must wait");
    // unlock removes only stale locks: the running backup's stays.
    let unlocked = s.run(&repo(&["unlock", "--json"])).ok().json();
    assert_eq!(unlocked["removed"], 0);
    assert_eq!(unlocked["remaining"], 1);
    let out = backup.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.run(&repo(&["prune"])).ok();
    s.run(&repo(&["check", "--read-data"])).ok();
}

#[test]
fn hard_links_sparse_files_fifos_and_extended_attributes_come_back() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let s = Scratch::new();
    s.key("k.key");
    let src = s.path("src");
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::write(src.join("linked"), b"one inode, two names").unwrap();
    fs::hard_link(src.join("linked"), src.join("also-linked")).unwrap();
    // 64 MiB with data only at the start and the end.
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    drop(sparse);
    s.sh("printf start | dd of=src/sparse conv=notrunc 2>/dev/null; \
          printf end | dd of=src/sparse bs=1 seek=67108861 conv=notrunc 2>/dev/null")
        .ok();
    s.sh("mkfifo src/pipe").ok();
    let xattrs = s
        .sh("python3 -c \"import os; os.setxattr('src/linked', 'user.coffer', b'kept')\"")
        .code
        == 0;
    if !xattrs {
        eprintln!("this file system refuses user extended attributes: not checked here");
    }
    s.run(&repo(&["init"])).ok();
    s.run(&repo(&["backup", "src"])).ok();
    s.run(&repo(&["restore", "latest", "--target", "out"])).ok();
    let out = restored(&s, "out");
    let a = fs::metadata(out.join("linked")).unwrap();
    let b = fs::metadata(out.join("also-linked")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "still one inode");
    assert_eq!(a.nlink(), 2);
    let sp = fs::metadata(out.join("sparse")).unwrap();
    assert_eq!(sp.len(), 64 << 20);
    assert!(
        sp.blocks() * 512 < 1 << 20,
        "{} blocks: not sparse",
        sp.blocks()
    );
    let data = fs::read(out.join("sparse")).unwrap();
    assert_eq!(&data[..5], b"start");
    assert_eq!(&data[data.len() - 3..], b"end");
    assert_eq!(data, fs::read(src.join("sparse")).unwrap());
    assert!(fs::symlink_metadata(out.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(out.join("empty").is_dir());
    if xattrs {
        let got = s.sh(&format!(
            "python3 -c \"import os; print(os.getxattr('{}', 'user.coffer').decode())\"",
            out.join("linked").display()
        ));
        assert_eq!(got.stdout_text().trim(), "kept", "{}", got.stderr);
    }
    // ls -l shows each kind.
    let listed = s.run(&repo(&["ls", "-l", "latest"])).ok().stdout_text();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with('p') && l.ends_with("/src/pipe")),
        "{listed}"
    );
}

/// Files under `dir`, none if it does not exist.
fn files_under(dir: &Path) -> usize {
    let mut found = Vec::new();
    if dir.exists() {
        collect(dir, &mut found);
    }
    found.len()
}

#[test]
fn the_cache_is_skipped_with_no_cache_or_coffer_no_cache_set_the_usual_ways() {
    let s = setup();
    s.run(&repo(&["backup", "src"])).ok();
    // The scratch environment's XDG_CACHE_HOME is `cache`.
    let cache = s.path("cache/coffer");
    fs::remove_dir_all(&cache).unwrap();
    for value in ["1", "yes", "true", "on"] {
        s.run_env(&repo(&["snapshots"]), &[("COFFER_NO_CACHE", value)])
            .ok();
        assert_eq!(files_under(&cache), 0, "COFFER_NO_CACHE={value}");
    }
    s.run(&repo(&["snapshots", "--no-cache"])).ok();
    assert_eq!(files_under(&cache), 0, "--no-cache");
    s.run_env(&repo(&["snapshots"]), &[("COFFER_NO_CACHE", "0")])
        .ok();
    assert!(files_under(&cache) > 0, "COFFER_NO_CACHE=0 caches");
    s.run_env(&repo(&["snapshots"]), &[("COFFER_NO_CACHE", "perhaps")])
        .fails(2, "--no-cache");
}
