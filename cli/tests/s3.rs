//! A repository in an S3-compatible bucket (s3s-fs, a real S3 server, on a loopback
//! port): settings from a config file, the catalogue in the cache folder and rebuilt
//! from the bucket, and the secret access key never printed.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{describe, make_tree, noise, Scratch};

const SECRET: &str = "cli-test-secret-DO-NOT-PRINT";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s3s_fs() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap();
    let bin = home.join("bin/s3s-fs");
    assert!(
        bin.is_file(),
        "needs s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary --locked"
    );
    bin
}

/// Starts s3s-fs over `root` (whose folder `bucket` is the bucket); returns its URL.
fn start(root: &std::path::Path) -> (Server, String) {
    std::fs::create_dir_all(root.join("bucket")).unwrap();
    let mut child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--access-key", "cli-test-access", "--secret-key", SECRET])
        .arg(root)
        .env("RUST_LOG", "s3s_fs=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("server is running at ").nth(1) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        }
    });
    let server = Server(child);
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("s3s-fs did not start");
    (server, url)
}

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
    run(with(&["init"]));
    run(with(&["backup", "src", "--name", "tree"]));
    run(with(&[
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
    let listed = run(with(&["list", "--json"])).json();
    let mut names: Vec<_> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["dump", "tree"]);
    run(with(&["restore", "tree", "--to", "out"]));
    assert_eq!(describe(&s.path("src")), describe(&s.path("out/src")));
    run(with(&["restore", "dump", "--to-file", "dump.back"]));
    assert_eq!(
        std::fs::read(s.path("dump")).unwrap(),
        std::fs::read(s.path("dump.back")).unwrap()
    );
    run(with(&["verify", "tree"]));
    run(with(&["prune", "--keep-last", "1"]));
    for out in &outputs {
        assert!(!out.contains(SECRET), "secret printed: {out}");
    }
    // Without settings: a usage error naming what is missing, not the secret.
    let r = s.run(&["list", "--repo", "s3://bucket/nas1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("COFFER_S3_ENDPOINT"), "{}", r.stderr);
}
