//! The generator of Coffer's test vectors (`test-vectors/coffer_*_test.json`).
//!
//! Every vector is built from a fixed seed, so the files are reproducible byte for
//! byte; `tests/coffer_vectors.rs` fails when the committed files differ from what
//! this code makes now, and rewrites them with `COFFER_WRITE_VECTORS=1`.
//!
//! Expected outcomes are set by construction (this chunk was flipped, so chunk 2 fails
//! after two chunks were released), never by running the reader being tested.
#![allow(dead_code, unreachable_pub)]

pub mod chunker;
pub mod envelopes;
pub mod repository;
pub mod streams;

use std::io::Write as _;

use coffer_core::Error;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

/// What a test expects of a reader.
pub enum Expect<'a> {
    /// Valid: the reader must accept it and give the test's values.
    Valid,
    /// Either outcome is right (a rule FORMAT.md says a reader MAY check).
    Acceptable,
    /// Invalid, refused with a core error (named, with its fields, as in Part I's files).
    Core(Error),
    /// Invalid, refused with the reference's condition of this name (Part II).
    Named(&'a str),
}

/// One vector file under construction.
pub struct File {
    pub name: &'static str,
    algorithm: String,
    header: Vec<String>,
    notes: Map<String, Value>,
    /// Groups before the current one, with their tests.
    finished: Vec<(Map<String, Value>, Vec<Value>)>,
    group: Map<String, Value>,
    tests: Vec<Value>,
    pub rng: ChaCha20Rng,
}

impl File {
    pub fn new(name: &'static str, algorithm: &str, seed: u64, header: &[&str]) -> Self {
        File {
            name,
            algorithm: algorithm.to_owned(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            notes: Map::new(),
            finished: Vec::new(),
            group: Map::new(),
            tests: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    pub fn note(&mut self, flag: &str, bug_type: &str, description: &str) {
        self.notes.insert(
            flag.to_owned(),
            json!({ "bugType": bug_type, "description": description }),
        );
    }

    pub fn group_field(&mut self, name: &str, value: Value) {
        self.group.insert(name.to_owned(), value);
    }

    /// Closes the current group; later `group_field` and `add` calls make the next one.
    /// Test IDs go on counting across groups.
    pub fn next_group(&mut self) {
        let group = std::mem::take(&mut self.group);
        let tests = std::mem::take(&mut self.tests);
        self.finished.push((group, tests));
    }

    /// Every test of every group, in order.
    fn all_tests(&self) -> impl Iterator<Item = &Value> {
        self.finished
            .iter()
            .flat_map(|(_, tests)| tests)
            .chain(&self.tests)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        self.rng.fill_bytes(&mut out);
        out
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng.fill_bytes(&mut out);
        out
    }

    /// Adds a test: `fields` are its inputs; `outcome` is `Ok(())` for a valid test or
    /// the error a reader must report.
    pub fn add(
        &mut self,
        comment: &str,
        flags: &[&str],
        fields: Map<String, Value>,
        outcome: Result<(), Error>,
    ) {
        let expect = match outcome {
            Ok(()) => Expect::Valid,
            Err(e) => Expect::Core(e),
        };
        self.add_expect(comment, flags, fields, expect);
    }

    /// Adds a test with any expectation, including `acceptable` ones and the named
    /// conditions of Part II.
    pub fn add_expect(
        &mut self,
        comment: &str,
        flags: &[&str],
        mut fields: Map<String, Value>,
        expect: Expect<'_>,
    ) {
        for flag in flags {
            assert!(self.notes.contains_key(*flag), "flag {flag} has no note");
        }
        let id = self.test_count() as u64 + 1;
        fields.insert("tcId".into(), json!(id));
        fields.insert("comment".into(), json!(comment));
        fields.insert("flags".into(), json!(flags));
        match expect {
            Expect::Valid => {
                fields.insert("result".into(), json!("valid"));
            }
            Expect::Acceptable => {
                fields.insert("result".into(), json!("acceptable"));
            }
            Expect::Named(name) => {
                fields.insert("result".into(), json!("invalid"));
                fields.insert("error".into(), json!(name));
            }
            Expect::Core(e) => {
                fields.insert("result".into(), json!("invalid"));
                let debug = format!("{e:?}");
                let name = debug.split([' ', '{', '(']).next().unwrap().to_owned();
                fields.insert("error".into(), json!(name));
                match e {
                    Error::CorruptedChunk { index } => {
                        fields.insert("errorChunk".into(), json!(index));
                    }
                    Error::WrongKey { expected } => {
                        fields.insert(
                            "expectedKeyId".into(),
                            json!(hex::encode(expected.as_bytes())),
                        );
                    }
                    _ => {}
                }
            }
        }
        self.tests.push(Value::Object(fields));
    }

    /// The flags used, with how many tests carry each.
    pub fn flag_counts(&self) -> Vec<(String, usize)> {
        self.notes
            .keys()
            .map(|flag| {
                let n = self
                    .all_tests()
                    .filter(|t| t["flags"].as_array().unwrap().iter().any(|f| f == flag))
                    .count();
                (flag.clone(), n)
            })
            .collect()
    }

    pub fn test_count(&self) -> usize {
        self.all_tests().count()
    }

    pub fn group_type(&self) -> &str {
        self.group["type"].as_str().unwrap()
    }

    pub fn to_json(&self) -> String {
        let groups: Vec<Value> = self
            .finished
            .iter()
            .chain([(self.group.clone(), self.tests.clone())].iter())
            .map(|(group, tests)| {
                let mut group = group.clone();
                group.insert("tests".into(), Value::Array(tests.clone()));
                Value::Object(group)
            })
            .collect();
        let file = json!({
            "algorithm": self.algorithm,
            "generatorVersion": "coffer vectors v1",
            "header": self.header,
            "notes": self.notes,
            "numberOfTests": self.test_count(),
            "testGroups": groups,
        });
        let mut text = serde_json::to_string_pretty(&file).unwrap();
        text.push('\n');
        text
    }
}

pub fn hexv(bytes: &[u8]) -> Value {
    json!(hex::encode(bytes))
}

pub fn sha512(bytes: &[u8]) -> Vec<u8> {
    Sha512::digest(bytes).to_vec()
}

pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An RNG that hands out given bytes, so the real sealer can be made to use the salt
/// a vector was built with.
pub struct FixedRng(pub Vec<u8>);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("the sealers only fill bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("the sealers only fill bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(self.0.len() >= dest.len(), "FixedRng ran out");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FixedRng {}

/// Every vector file, generated.
pub fn all_files() -> Vec<File> {
    vec![
        streams::stream_file(coffer_core::Suite::Aes256Gcm),
        streams::stream_file(coffer_core::Suite::ChaCha20Poly1305),
        envelopes::key_envelope_file(),
        envelopes::passphrase_envelope_file(),
        chunker::chunker_file(),
        repository::repository_file(),
    ]
}
