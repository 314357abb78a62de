//! A repository in an S3-compatible bucket (s3s-fs, a real S3 server, on a loopback
//! port): settings from a config file, the catalogue in the cache folder and rebuilt
//! from the bucket, and the secret access key never printed.

mod support;

use support::s3s::{start, SECRET};
use support::tree::{describe, make_tree};
use support::{noise, Scratch};

#[test]
fn a_bucket_repository_round_trips_and_rebuilds_its_catalogue() {
    let s = Scratch::new();
    let (_server, endpoint) = start(&s.path("s3root"));
    s.write(
        "s3.conf",
        format!(
            "# test bucket\nCOFFER_S3_ENDPOINT={endpoint}\nCOFFER_S3_ACCESS_KEY_ID=cli-test-access\n\
             COFFER_S3_SECRET_ACCESS_KEY={SECRET}\n"
        )
        .as_bytes(),
    );
    s.key("k.key");
    make_tree(&s.path("src"));
    s.write("dump", &noise(1 << 20, 4));
    let repo = [
        "--repo",
        "s3://bucket/nas1",
        "--s3-config",
        "s3.conf",
        "--key-file",
        "k.key",
    ];
    let with = |args: &[&'static str]| [args, &repo[..]].concat();
    let mut outputs = Vec::new();
    let mut run = |args: Vec<&str>| {
        let r = s.run(&args).ok();
        outputs.push(format!("{}{}", r.stdout_text(), r.stderr));
        r
    };
    run(with(&["archive", "init"]));
    run(with(&["archive", "backup", "src", "--name", "tree"]));
    run(with(&[
        "archive",
        "backup",
        "--from-command",
        "cat dump",
        "--name",
        "dump",
    ]));
    assert!(s.path("s3root/bucket/nas1/backups/tree.archive").is_file());
    assert!(s.path("s3root/bucket/nas1/keys/repository").is_file());
    let cache: Vec<_> = s.names("cache/coffer");
    assert!(
        cache.iter().any(|n| n.starts_with("s3-bucket-")),
        "{cache:?}"
    );
    // A new machine: no catalogue. It is rebuilt from the bucket.
    std::fs::remove_dir_all(s.path("cache")).unwrap();
    let listed = run(with(&["archive", "list", "--json"])).json();
    let mut names: Vec<_> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["dump", "tree"]);
    run(with(&["archive", "restore", "tree", "--to", "out"]));
    assert_eq!(describe(&s.path("src")), describe(&s.path("out/src")));
    run(with(&[
        "archive",
        "restore",
        "dump",
        "--to-file",
        "dump.back",
    ]));
    assert_eq!(
        std::fs::read(s.path("dump")).unwrap(),
        std::fs::read(s.path("dump.back")).unwrap()
    );
    run(with(&["archive", "verify", "tree"]));
    run(with(&["archive", "prune", "--keep-last", "1"]));
    for out in &outputs {
        assert!(!out.contains(SECRET), "secret printed: {out}");
    }
    // Without settings: a usage error naming what is missing, not the secret.
    let r = s.run(&["archive", "list", "--repo", "s3://bucket/nas1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("COFFER_S3_ENDPOINT"), "{}", r.stderr);
}

#[test]
fn a_deduplicated_repository_in_a_bucket_backs_up_twice_restores_and_checks() {
    let s = Scratch::new();
    let (_server, endpoint) = start(&s.path("s3root"));
    s.write(
        "s3.conf",
        format!(
            "COFFER_S3_ENDPOINT={endpoint}\nCOFFER_S3_ACCESS_KEY_ID=cli-test-access\n\
             COFFER_S3_SECRET_ACCESS_KEY={SECRET}\n"
        )
        .as_bytes(),
    );
    s.key("k.key");
    make_tree(&s.path("src"));
    let env = [
        ("COFFER_REPOSITORY", "s3://bucket/dedup"),
        ("COFFER_KEY_FILE", "k.key"),
        ("COFFER_S3_CONFIG", "s3.conf"),
    ];
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let r = s.run_env(args, &env).ok();
        outputs.push(format!("{}{}", r.stdout_text(), r.stderr));
        r
    };
    run(&["init"]);
    // The summary is the last line (status lines come before it on a slow run).
    let last = |r: support::Run| -> serde_json::Value {
        let text = r.stdout_text();
        serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap()
    };
    let first = last(run(&["backup", "src", "--json"]));
    assert_eq!(first["files_new"], 5, "{first}");
    std::fs::write(s.path("src/a/b/small.txt"), b"changed in the bucket\n").unwrap();
    let second = last(run(&["backup", "src", "--json"]));
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(second["files_unmodified"], 4, "{second}");
    // The objects landed under the prefix, in the repository's layout.
    for dir in ["config", "keys", "snapshots", "index", "data"] {
        assert!(s.path("s3root/bucket/dedup").join(dir).exists(), "{dir}");
    }
    let list = run(&["snapshots", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    run(&["restore", "latest", "--target", "out", "--verify"]);
    let src = s.path("src");
    assert_eq!(
        describe(&s.path("out").join(src.strip_prefix("/").unwrap())),
        describe(&src)
    );
    run(&["forget", "--keep-last", "1", "--prune"]);
    run(&["check", "--read-data"]);
    for out in &outputs {
        assert!(!out.contains(SECRET), "secret printed: {out}");
    }
}
