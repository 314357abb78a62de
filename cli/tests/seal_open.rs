//! `coffer seal` / `coffer open` through the built binary: round trips for files and
//! pipes, and every failure with its exit code, its message, and no file left behind.

mod support;

use std::fs;

use support::{noise, Scratch};

const PASS: (&str, &str) = ("COFFER_PASSPHRASE", "correct horse battery staple");

#[test]
fn files_round_trip_under_a_key_file_at_chunk_boundaries() {
    let s = Scratch::new();
    let key = s.key("k.key");
    for len in [0usize, 1, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 300_000] {
        let name = format!("plain-{len}");
        let data = noise(len, len as u64);
        s.write(&name, &data);
        s.run(&["seal", &name, "--key-file", &key]).ok();
        let sealed = fs::read(s.path(&format!("{name}.coffer"))).unwrap();
        assert!(sealed.starts_with(b"COFFER/S"));
        assert_ne!(&sealed[..], &data[..]);
        fs::remove_file(s.path(&name)).unwrap();
        s.run(&["open", &format!("{name}.coffer"), "--key-file", &key])
            .ok();
        assert_eq!(fs::read(s.path(&name)).unwrap(), data, "length {len}");
    }
}

#[test]
fn pipes_round_trip_under_a_passphrase_from_the_environment() {
    let s = Scratch::new();
    let data = noise(200_000, 3);
    let sealed = s
        .run_stdin(&["seal", "-", "-o", "-"], &[PASS], &data)
        .ok()
        .stdout;
    assert!(sealed.starts_with(b"COFFER/P"));
    let opened = s
        .run_stdin(&["open", "-", "-o", "-"], &[PASS], &sealed)
        .ok()
        .stdout;
    assert_eq!(opened, data);
    // With --json the report goes to stderr, never into the data on stdout.
    let run = s
        .run_stdin(&["open", "-", "-o", "-", "--json"], &[PASS], &sealed)
        .ok();
    assert_eq!(run.stdout, data);
    assert!(
        run.stderr.contains("\"plaintext_bytes\":200000"),
        "{}",
        run.stderr
    );
    // A passphrase file works the same; its trailing newline is not part of it.
    s.write("pass.txt", format!("{}\n", PASS.1).as_bytes());
    let opened = s
        .run_stdin(
            &["open", "-", "-o", "-", "--passphrase-file", "pass.txt"],
            &[],
            &sealed,
        )
        .ok()
        .stdout;
    assert_eq!(opened, data);
}

#[test]
fn a_passphrase_is_never_taken_from_the_command_line() {
    let s = Scratch::new();
    s.write("f", b"x");
    s.run(&["seal", "f", "--passphrase", "hunter2"])
        .fails(2, "unexpected argument");
    // With no passphrase source and no terminal, it says where one can come from.
    s.run(&["seal", "f"]).fails(2, "COFFER_PASSPHRASE");
    assert_eq!(s.names(""), vec!["f"]);
}

#[test]
fn wrong_key_and_wrong_passphrase_exit_3_and_leave_nothing() {
    let s = Scratch::new();
    let key = s.key("k.key");
    let other = s.key("other.key");
    s.write("f", &noise(50_000, 1));
    s.run(&["seal", "f", "-o", "f.k", "--key-file", &key]).ok();
    s.run_env(&["seal", "f", "-o", "f.p"], &[PASS]).ok();
    fs::remove_file(s.path("f")).unwrap();
    s.run(&["open", "f.k", "-o", "out", "--key-file", &other])
        .fails(3, "wrong key: this object is sealed for key");
    s.run_env(
        &["open", "f.p", "-o", "out"],
        &[("COFFER_PASSPHRASE", "wrong")],
    )
    .fails(3, "wrong passphrase");
    // The wrong kind of secret is a usage error naming the right one.
    s.run_env(&["open", "f.k", "-o", "out"], &[PASS])
        .fails(2, "give --key-file");
    s.run(&["open", "f.p", "-o", "out", "--key-file", &key])
        .fails(2, "sealed under a passphrase");
    assert_eq!(s.names(""), vec!["f.k", "f.p", "k.key", "other.key"]);
}

#[test]
fn truncated_and_bit_flipped_files_exit_4_and_leave_nothing() {
    let s = Scratch::new();
    let key = s.key("k.key");
    s.write("f", &noise(100_000, 2));
    s.run(&["seal", "f", "--key-file", &key]).ok();
    s.run_env(&["seal", "f", "-o", "f.p"], &[PASS]).ok();
    fs::remove_file(s.path("f")).unwrap();
    let sealed = fs::read(s.path("f.coffer")).unwrap();
    let sealed_p = fs::read(s.path("f.p")).unwrap();
    // Cut at several places: inside the header, inside a chunk, just before the end.
    // The end of the input decides which chunk is final, so a stream cut at a chunk
    // fails as that chunk being corrupted (FORMAT.md 4.5); inside the header it is
    // "truncated".
    for cut in [10, 40_000, sealed.len() - 1] {
        s.write("cut.coffer", &sealed[..cut]);
        let run = s.run(&["open", "cut.coffer", "-o", "out", "--key-file", &key]);
        assert_eq!(run.code, 4, "cut at {cut}: {}", run.stderr);
        assert!(
            run.stderr.contains("truncated") || run.stderr.contains("is corrupted"),
            "cut at {cut}: {}",
            run.stderr
        );
        assert!(!s.path("out").exists());
    }
    // A flipped bit in a chunk body, in the last chunk, in the commitment.
    for (at, message) in [
        (50_000, "chunk 3 is corrupted"),
        (sealed.len() - 3, "is corrupted"),
        (70, "commitment mismatch"),
    ] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x04;
        s.write("bad.coffer", &bad);
        s.run(&["open", "bad.coffer", "-o", "out", "--key-file", &key])
            .fails(4, message);
        assert!(!s.path("out").exists());
    }
    // The passphrase form: a flip in the envelope or in the stream.
    for at in [100, 20_000] {
        let mut bad = sealed_p.clone();
        bad[at] ^= 0x01;
        s.write("bad.p", &bad);
        let run = s.run_env(&["open", "bad.p", "-o", "out"], &[PASS]);
        assert!(
            run.code == 4 || (at == 100 && run.code == 3),
            "flip at {at}: exit {} {}",
            run.code,
            run.stderr
        );
        assert!(!s.path("out").exists());
    }
    s.write("empty", b"");
    s.run(&["open", "empty", "-o", "out", "--key-file", &key])
        .fails(4, "empty: not a sealed Coffer file");
    s.write("junk", b"hello world, not sealed at all");
    s.run(&["open", "junk", "-o", "out", "--key-file", &key])
        .fails(4, "bad magic");
    let hidden: Vec<_> = s
        .names("")
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporaries left: {hidden:?}");
}

#[test]
fn outputs_are_never_overwritten() {
    let s = Scratch::new();
    let key = s.key("k.key");
    s.write("f", b"data");
    s.run(&["seal", "f", "--key-file", &key]).ok();
    s.run(&["seal", "f", "--key-file", &key])
        .fails(7, "f.coffer already exists");
    s.run(&["open", "f.coffer", "--key-file", &key])
        .fails(7, "already exists");
    assert_eq!(fs::read(s.path("f")).unwrap(), b"data");
}

#[test]
fn a_full_disk_on_open_exits_5_and_leaves_nothing() {
    let s = Scratch::new();
    let key = s.key("k.key");
    s.write("big", &noise(3 << 20, 9));
    s.run(&["seal", "big", "--key-file", &key]).ok();
    let (how, run) = s.with_small_disk("\"$COFFER\" open big.coffer -o small/big --key-file k.key");
    eprintln!("full disk simulated with {how}");
    assert_eq!(run.code, 5, "{how}: {}", run.stderr);
    assert!(run.stderr.contains("writing small/big"), "{}", run.stderr);
    assert!(
        run.stdout_text().trim_end().ends_with("LEFT:"),
        "{how}: left behind: {}",
        run.stdout_text()
    );
}

/// Sends SIGINT to a running `coffer` once `ready` holds, and returns its exit code.
pub fn interrupt_when(mut child: std::process::Child, ready: impl Fn() -> bool) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the interrupt"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn ctrl_c_while_opening_exits_130_and_leaves_nothing() {
    let s = Scratch::new();
    let key = s.key("k.key");
    s.write("big", &vec![0u8; 400 << 20]);
    s.run(&["seal", "big", "--key-file", &key]).ok();
    fs::remove_file(s.path("big")).unwrap();
    let child = s
        .cmd(&["open", "big.coffer", "--key-file", &key])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = || {
        s.names("")
            .iter()
            .any(|n| n.starts_with(".coffer-partial-"))
    };
    assert_eq!(interrupt_when(child, partial), 130);
    assert_eq!(s.names(""), vec!["big.coffer", "k.key"]);
}
