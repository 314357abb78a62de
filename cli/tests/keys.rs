//! `coffer key ...` through the built binary.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use support::Scratch;

#[test]
fn generate_writes_a_private_key_file_prints_its_id_and_never_overwrites() {
    let s = Scratch::new();
    let run = s.run(&["key", "generate", "k.key"]).ok();
    let id = run.stdout_text().trim().to_owned();
    assert_eq!(id.len(), 32);
    let mode = fs::metadata(s.path("k.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(s.path("k.key")).unwrap();
    assert!(text.contains(&format!("# key id: {id}")));
    s.run(&["key", "generate", "k.key"])
        .fails(7, "already exists");
    assert_eq!(fs::read_to_string(s.path("k.key")).unwrap(), text);
    let shown = s.run(&["key", "id", "k.key", "--json"]).ok().json();
    assert_eq!(shown["key_id"], id.as_str());
    assert_eq!(shown["kind"], "key file");
}

#[test]
fn recovery_kit_export_import_round_trips_and_typos_are_caught() {
    let s = Scratch::new();
    s.key("k.key");
    let kit = s
        .run(&["key", "export", "--key-file", "k.key"])
        .ok()
        .stdout_text();
    assert!(kit.starts_with("COFFER RECOVERY KIT v1"));
    s.write("kit.txt", kit.as_bytes());
    s.run(&["key", "import", "kit.txt", "-o", "back.key"]).ok();
    assert_eq!(
        fs::read(s.path("k.key")).unwrap(),
        fs::read(s.path("back.key")).unwrap()
    );
    // From stdin, too.
    s.run_stdin(
        &["key", "import", "-", "-o", "stdin.key"],
        &[],
        kit.as_bytes(),
    )
    .ok();
    // One mistyped character: the checksum catches it; nothing is written.
    let lines: Vec<&str> = kit.lines().collect();
    let line = lines[2];
    let swapped = if line.starts_with('Q') { "R" } else { "Q" };
    let typo = kit.replacen(line, &format!("{swapped}{}", &line[1..]), 1);
    s.write("typo.txt", typo.as_bytes());
    s.run(&["key", "import", "typo.txt", "-o", "typo.key"])
        .fails(4, "checksum does not match");
    assert!(!s.path("typo.key").exists());
}

#[test]
fn passphrase_and_kek_envelopes_export_import_and_rewrap() {
    let s = Scratch::new();
    s.key("k.key");
    s.key("kek.key");
    s.write("old.txt", b"old passphrase\n");
    s.write("new.txt", b"new passphrase\n");
    s.run(&[
        "key",
        "export",
        "--key-file",
        "k.key",
        "--format",
        "passphrase",
        "-o",
        "k.env",
        "--passphrase-file",
        "old.txt",
    ])
    .ok();
    let env = fs::read(s.path("k.env")).unwrap();
    assert_eq!((env.len(), &env[..8]), (168, &b"COFFER/P"[..]));
    let id = s.run(&["key", "id", "k.env", "--json"]).ok().json();
    let kid = s.run(&["key", "id", "k.key", "--json"]).ok().json();
    assert_eq!(id["key_id"], kid["key_id"]);
    s.run(&[
        "key",
        "import",
        "k.env",
        "-o",
        "bad.key",
        "--passphrase-file",
        "new.txt",
    ])
    .fails(3, "wrong passphrase");
    assert!(!s.path("bad.key").exists());
    // Rewrap under the new passphrase: the old one stops working, the key stays.
    s.run(&[
        "key",
        "rewrap",
        "k.env",
        "--passphrase-file",
        "old.txt",
        "--new-passphrase-file",
        "new.txt",
    ])
    .ok();
    s.run(&[
        "key",
        "import",
        "k.env",
        "-o",
        "x.key",
        "--passphrase-file",
        "old.txt",
    ])
    .fails(3, "wrong passphrase");
    s.run(&[
        "key",
        "import",
        "k.env",
        "-o",
        "y.key",
        "--passphrase-file",
        "new.txt",
    ])
    .ok();
    assert_eq!(
        fs::read(s.path("k.key")).unwrap(),
        fs::read(s.path("y.key")).unwrap()
    );
    // Rewrap under a KEK file, then import with it.
    s.run(&[
        "key",
        "rewrap",
        "k.env",
        "--passphrase-file",
        "new.txt",
        "--new-kek-file",
        "kek.key",
    ])
    .ok();
    assert_eq!(&fs::read(s.path("k.env")).unwrap()[..8], b"COFFER/K");
    s.run(&["key", "import", "k.env", "-o", "z.key"])
        .fails(2, "give --kek-file");
    s.run(&[
        "key",
        "import",
        "k.env",
        "-o",
        "z.key",
        "--kek-file",
        "k.key",
    ])
    .fails(3, "wrong key");
    s.run(&[
        "key",
        "import",
        "k.env",
        "-o",
        "z.key",
        "--kek-file",
        "kek.key",
    ])
    .ok();
    assert_eq!(
        fs::read(s.path("k.key")).unwrap(),
        fs::read(s.path("z.key")).unwrap()
    );
}
