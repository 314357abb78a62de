//! Coffer's own test vectors: the committed files are exactly what the generator makes
//! now, the core passes every vector file in `test-vectors/`, and the checker catches a
//! vector whose expectation is wrong.
//!
//! Regenerate after a deliberate change with
//! `COFFER_WRITE_VECTORS=1 cargo test -p coffer-adapters --test coffer_vectors`.

mod vectors_gen;

use std::path::{Path, PathBuf};

use coffer_adapters::vectors::{verify_dir, verify_file};

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
    assert!(
        stale.is_empty(),
        "these files differ from what the generator makes: {stale:?}; if the change is \
         deliberate, run COFFER_WRITE_VECTORS=1 cargo test -p coffer-adapters --test coffer_vectors"
    );
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
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not applied"
        );
    }
    assert_eq!(applied, 5);
}

/// Each kind of wrong expectation in a vector file makes the checker report that test.
#[test]
fn the_checker_catches_wrong_expectations() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 5] = [
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
}
