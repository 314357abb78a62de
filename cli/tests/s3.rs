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
