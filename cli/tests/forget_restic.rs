//! `coffer forget` keeps exactly the snapshots restic keeps: the same synthetic dates
//! (clusters within hours and days, gaps of weeks, across three years) are backed up
//! into a Coffer repository and a restic repository with `--time`, and each retention
//! policy of a table is applied by both with `--dry-run --json`.
//!
//! restic is the oracle, run here, not a copy of its answers. The test needs it on the
//! PATH (`apt-get install restic`; `.ci/run` installs it) and fails without it.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use support::Scratch;

/// Deterministic, irregular snapshot times (Unix seconds, UTC), oldest first.
fn dates() -> Vec<i64> {
    let mut t = 1_704_067_200i64; // 2024-01-01T00:00:00Z
    let mut x = 0x2545_f491u64;
    let mut out = Vec::new();
    for _ in 0..48 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Steps from minutes to weeks, so hours, days, weeks and months hold one
        // snapshot, several, or none.
        let step = match (x >> 33) % 6 {
            0 => 600 + (x >> 40) as i64 % 1800,
            1 => 3_600 + (x >> 40) as i64 % 7_200,
            2 => 20_000 + (x >> 40) as i64 % 60_000,
            3 => 86_400 + (x >> 40) as i64 % 200_000,
            4 => 604_800 + (x >> 40) as i64 % 900_000,
            _ => 2_600_000 + (x >> 40) as i64 % 3_000_000,
        };
        t += step;
        out.push(t);
    }
    out
}

fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).unwrap().to_string()
}

fn restic(s: &Scratch, args: &[&str]) -> std::process::Output {
    let out = Command::new("restic")
        .args(["-q", "-r", "restic-repo"])
        .args(args)
        .current_dir(s.dir.path())
        .env("RESTIC_PASSWORD", "forget-test")
        .env("TZ", "UTC")
        .env("RESTIC_CACHE_DIR", s.path("restic-cache"))
        .output()
        .unwrap_or_else(|e| {
            panic!("restic is needed as this test's oracle ({e}): apt-get install restic")
        });
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The times restic keeps under `policy`.
fn restic_keeps(s: &Scratch, policy: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend_from_slice(policy);
    let out = restic(s, &args);
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "one host, one path: one group");
    groups[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let t: jiff::Timestamp = s["time"].as_str().unwrap().parse().unwrap();
            rfc3339(t.as_second())
        })
        .collect()
}

/// The times Coffer keeps under `policy`.
fn coffer_keeps(s: &Scratch, policy: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend_from_slice(policy);
    args.extend(["--repo", "repo", "--key-file", "k.key"]);
    let v = s.run_env(&args, &[("TZ", "UTC")]).ok().json();
    v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| {
            let t: jiff::Timestamp = d["time"].as_str().unwrap().parse().unwrap();
            rfc3339(t.as_second())
        })
        .collect()
}

#[test]
fn forget_keeps_what_restic_keeps_for_the_same_dates() {
    let s = Scratch::new();
    s.key("k.key");
    fs::create_dir(s.path("src")).unwrap();
    fs::write(s.path("src/file"), b"the same data every time").unwrap();
    s.run(&["init", "--repo", "repo", "--key-file", "k.key"])
        .ok();
    restic(&s, &["init"]);
    let dates = dates();
    for &t in &dates {
        let when = jiff::Timestamp::from_second(t)
            .unwrap()
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        s.run_env(
            &[
                "backup",
                "src",
                "--host",
                "h",
                "--time",
                &when,
                "--repo",
                "repo",
                "--key-file",
                "k.key",
            ],
            &[("TZ", "UTC")],
        )
        .ok();
        restic(&s, &["backup", "--host", "h", "--time", &when, "src"]);
    }
    let all: BTreeSet<String> = dates.iter().map(|&t| rfc3339(t)).collect();
    assert_eq!(coffer_keeps(&s, &["--keep-last", "1000"]), all);

    let table: &[&[&str]] = &[
        &["--keep-last", "5"],
        &["--keep-hourly", "6"],
        &["--keep-daily", "10"],
        &["--keep-weekly", "5"],
        &["--keep-monthly", "8"],
        &["--keep-yearly", "3"],
        &[
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "2",
        ],
        &[
            "--keep-last",
            "2",
            "--keep-hourly",
            "3",
            "--keep-monthly",
            "2",
        ],
        &["--keep-within", "45d"],
        &["--keep-within", "2m10d", "--keep-weekly", "2"],
    ];
    for policy in table {
        let theirs = restic_keeps(&s, policy);
        let ours = coffer_keeps(&s, policy);
        assert!(
            !ours.is_empty() && ours.len() < dates.len(),
            "{policy:?} keeps {} of {}: the dates do not test it",
            ours.len(),
            dates.len()
        );
        assert_eq!(
            ours,
            theirs,
            "{policy:?}: Coffer keeps {} snapshots, restic {}; only Coffer: {:?}; only restic: {:?}",
            ours.len(),
            theirs.len(),
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        );
    }
}
