//! The S3 backend against a real S3-compatible server (s3s-fs, started by each test on
//! a free loopback port): the shared storage suite with multipart objects, boto3 as an
//! independent client both ways, pre-signed URLs (and altered ones refused), and a
//! fault-injecting proxy that breaks, stalls and fails requests in the middle of uploads.
//!
//! Needs `s3s-fs` (`cargo install s3s-fs --version 0.14.1 --features binary --locked`)
//! and `python3` with boto3; .ci/run installs both. Without them the tests fail, saying
//! so.

mod s3_support;
mod storage_suite;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coffer_adapters::storage::s3::{
    check_complete_response, checksum_sha256, complete_multipart_body, parse_upload_id,
    CompletedPart,
};
use coffer_adapters::storage::{
    ObjectKey, PresignOp, PresignedRequest, PutMode, S3Config, S3Storage, Signer, Storage,
};
use coffer_adapters::Error;
use s3_support::{boto3, config, store, Fault, Op, Proxy, Rule, Server, SECRET_KEY};
use serde_json::json;
use storage_suite::{data, key, read_all, Trickle};

const PART: usize = 5 << 20;

#[test]
fn s3_storage_passes_the_suite_with_multipart_objects() {
    let server = Server::start();
    let store = store(&server.endpoint());
    // Three parts (5 + 5 + 2 MiB and a bit), read from a reader that trickles.
    storage_suite::run(&store, "tenant/repo", 2 * PART + (2 << 20) + 12_345);
    // The failing-source puts aborted their multipart uploads.
    assert_eq!(server.dangling_uploads(), Vec::<String>::new());
}

#[test]
fn listing_follows_continuation_tokens() {
    let server = Server::start();
    let mut cfg = config(&server.endpoint());
    cfg.list_page_size = 3;
    let store = S3Storage::new(&cfg).unwrap();
    let mut expected = Vec::new();
    for i in 0..10 {
        let k = key(&format!("many/{i:02}"));
        store
            .put(&k, &mut &data(i, 1)[..], PutMode::Overwrite)
            .unwrap();
        expected.push((k.to_string(), i as u64));
    }
    store
        .put(&key("other/x"), &mut &b"x"[..], PutMode::Overwrite)
        .unwrap();
    let listed: Vec<(String, u64)> = store
        .list("many/")
        .unwrap()
        .into_iter()
        .map(|m| (m.key.to_string(), m.size))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(store.list("").unwrap().len(), 11);
}

#[test]
fn boto3_reads_what_coffer_writes_and_coffer_reads_what_boto3_writes() {
    let server = Server::start();
    let store = store(&server.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // Coffer writes one small object (PutObject) and one of three parts.
    let small = data(1000, 5);
    let large = data(2 * PART + 777, 6);
    store
        .put(&key("coffer/small"), &mut &small[..], PutMode::Overwrite)
        .unwrap();
    store
        .put(
            &key("coffer/large"),
            &mut Trickle::new(large.clone()),
            PutMode::Overwrite,
        )
        .unwrap();
    // boto3 writes one object with PutObject and one with three explicit parts.
    let boto_small = data(4321, 7);
    let boto_large = data(2 * PART + 99, 8);
    std::fs::write(file("boto-small"), &boto_small).unwrap();
    std::fs::write(file("boto-large"), &boto_large).unwrap();

    let results = boto3(
        &server,
        &json!([
            {"op": "get", "key": "coffer/small", "file": file("got-small")},
            {"op": "get", "key": "coffer/large", "file": file("got-large")},
            {"op": "head", "key": "coffer/large"},
            {"op": "put", "key": "boto/small", "file": file("boto-small")},
            {"op": "put_multipart", "key": "boto/large", "file": file("boto-large"),
             "part_size": PART},
            {"op": "list_uploads"},
        ]),
    );
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    assert_eq!(results[0]["sha256"], sha(&small));
    assert_eq!(results[1]["sha256"], sha(&large));
    assert!(std::fs::read(file("got-small")).unwrap() == small);
    assert!(std::fs::read(file("got-large")).unwrap() == large);
    // A multipart ETag ("...-3"): Coffer's large object really is three parts.
    let etag = results[2]["etag"].as_str().unwrap();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    assert_eq!(results[4]["parts"], 3);
    // s3s-fs does not implement ListMultipartUploads: the tests look at its folder.
    println!("boto3 ListMultipartUploads on s3s-fs: {}", results[5]);

    assert!(read_all(store.get(&key("boto/small")).unwrap()) == boto_small);
    assert!(read_all(store.get(&key("boto/large")).unwrap()) == boto_large);
    assert_eq!(
        store.head(&key("boto/large")).unwrap().unwrap().size,
        boto_large.len() as u64
    );
    let got = read_all(
        store
            .get_range(&key("boto/large"), PART as u64 - 10, 20)
            .unwrap(),
    );
    assert_eq!(got, boto_large[PART - 10..PART + 10]);
    assert_eq!(server.dangling_uploads(), Vec::<String>::new());
}

fn plain_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends a pre-signed request with no credentials; the status and the body.
fn send_presigned(
    url: &str,
    method: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut request = plain_client().request(method.parse().unwrap(), url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let resp = request.body(body).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().unwrap().to_vec())
}

#[test]
fn presigned_urls_work_without_credentials_and_altered_ones_are_refused() {
    let server = Server::start();
    let store = store(&server.endpoint());
    let k = key("shared/obj");
    let minute = Duration::from_secs(60);
    let body = data(2000, 9);
    let sum = checksum_sha256(&body);

    let put = store
        .presign(
            PresignOp::Put {
                create_only: false,
                checksum_sha256: Some(&sum),
            },
            &k,
            minute,
        )
        .unwrap();
    assert!(!put.url.contains(SECRET_KEY));
    // Without the signed checksum header: refused, nothing stored.
    let (status, _) = send_presigned(&put.url, "PUT", &[], body.clone());
    assert_eq!(
        status, 403,
        "a request without a signed header was accepted"
    );
    assert!(store.head(&k).unwrap().is_none());
    // With it but other bytes: refused (400 BadDigest). s3s-fs 0.14.1 checks the
    // checksum only after moving the file into place, so this uses a key of its own.
    let elsewhere = store
        .presign(
            PresignOp::Put {
                create_only: false,
                checksum_sha256: Some(&sum),
            },
            &key("shared/bad-digest"),
            minute,
        )
        .unwrap();
    let (status, answer) =
        send_presigned(&elsewhere.url, "PUT", &elsewhere.headers, data(2000, 10));
    assert_eq!(status, 400, "wrong bytes accepted");
    assert!(String::from_utf8_lossy(&answer).contains("BadDigest"));
    let (status, _) = send_presigned(&put.url, put.method, &put.headers, body.clone());
    assert_eq!(status, 200);
    assert!(read_all(store.get(&k).unwrap()) == body);

    let get = store.presign(PresignOp::Get, &k, minute).unwrap();
    let (status, got) = send_presigned(&get.url, "GET", &get.headers, Vec::new());
    assert_eq!((status, got), (200, body.clone()));
    let head = store.presign(PresignOp::Head, &k, minute).unwrap();
    assert_eq!(
        send_presigned(&head.url, "HEAD", &head.headers, Vec::new()).0,
        200
    );

    // A create-only URL for a key that exists: 412.
    let once = store
        .presign(
            PresignOp::Put {
                create_only: true,
                checksum_sha256: None,
            },
            &k,
            minute,
        )
        .unwrap();
    assert_eq!(
        send_presigned(&once.url, "PUT", &once.headers, b"x".to_vec()).0,
        412
    );

    // Altered URLs: another signature, another key, another method.
    store
        .put(
            &key("shared/other"),
            &mut &b"secret"[..],
            PutMode::Overwrite,
        )
        .unwrap();
    let flipped = {
        let last = get.url.chars().last().unwrap();
        let other = if last == '0' { '1' } else { '0' };
        format!("{}{other}", &get.url[..get.url.len() - 1])
    };
    assert_eq!(send_presigned(&flipped, "GET", &[], Vec::new()).0, 403);
    let moved = get.url.replace("/shared/obj?", "/shared/other?");
    assert_ne!(moved, get.url);
    assert_eq!(send_presigned(&moved, "GET", &[], Vec::new()).0, 403);
    assert_eq!(send_presigned(&get.url, "DELETE", &[], Vec::new()).0, 403);
    assert!(store.head(&k).unwrap().is_some());

    // Expired: a one-second URL, used after two and a half.
    let short = store
        .presign(PresignOp::Get, &k, Duration::from_secs(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(send_presigned(&short.url, "GET", &[], Vec::new()).0, 403);
    // Longer than an hour is refused when asked for.
    assert!(store
        .presign(PresignOp::Get, &k, Duration::from_secs(3601))
        .is_err());

    let delete = store.presign(PresignOp::Delete, &k, minute).unwrap();
    let (status, _) = send_presigned(&delete.url, "DELETE", &delete.headers, Vec::new());
    assert!(status == 204 || status == 200, "{status}");
    assert!(store.head(&k).unwrap().is_none());
}

#[test]
fn an_agent_uploads_a_large_object_through_presigned_urls_only() {
    let server = Server::start();
    let store = store(&server.endpoint());
    let minute = Duration::from_secs(60);
    let k = key("agent/backup.coffer");
    let body = data(2 * PART + 4242, 11);

    let upload_id = |k: &ObjectKey| {
        let create = store
            .presign(
                PresignOp::CreateMultipartUpload {
                    checksum_sha256: true,
                },
                k,
                minute,
            )
            .unwrap();
        let (status, answer) = send_presigned(&create.url, create.method, &create.headers, vec![]);
        assert_eq!(status, 200);
        parse_upload_id(std::str::from_utf8(&answer).unwrap()).unwrap()
    };
    let upload_part = |k: &ObjectKey, id: &str, number: u16, part: &[u8]| {
        let sum = checksum_sha256(part);
        let req = store
            .presign(
                PresignOp::UploadPart {
                    upload_id: id,
                    part_number: number,
                    checksum_sha256: Some(&sum),
                },
                k,
                minute,
            )
            .unwrap();
        let resp = plain_client()
            .put(&req.url)
            .header(req.headers[0].0, &req.headers[0].1)
            .body(part.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        CompletedPart {
            part_number: number,
            etag: resp.headers()["etag"].to_str().unwrap().to_owned(),
            checksum_sha256: Some(sum),
        }
    };

    let id = upload_id(&k);
    let parts: Vec<CompletedPart> = body
        .chunks(PART)
        .zip(1u16..)
        .map(|(chunk, n)| upload_part(&k, &id, n, chunk))
        .collect();
    assert!(store.head(&k).unwrap().is_none(), "visible before Complete");
    let complete = store
        .presign(
            PresignOp::CompleteMultipartUpload {
                upload_id: &id,
                create_only: true,
            },
            &k,
            minute,
        )
        .unwrap();
    let (status, answer) = send_presigned(
        &complete.url,
        complete.method,
        &complete.headers,
        complete_multipart_body(&parts).into_bytes(),
    );
    assert_eq!(status, 200);
    check_complete_response(std::str::from_utf8(&answer).unwrap()).unwrap();
    assert!(read_all(store.get(&k).unwrap()) == body);

    // An agent that gives up aborts: nothing visible, nothing left.
    let k2 = key("agent/abandoned");
    let id2 = upload_id(&k2);
    upload_part(&k2, &id2, 1, &body[..PART]);
    let abort = store
        .presign(
            PresignOp::AbortMultipartUpload { upload_id: &id2 },
            &k2,
            minute,
        )
        .unwrap();
    let (status, _) = send_presigned(&abort.url, abort.method, &abort.headers, vec![]);
    assert!(status == 204 || status == 200, "{status}");
    assert!(store.head(&k2).unwrap().is_none());
    assert_eq!(server.dangling_uploads(), Vec::<String>::new());
}

#[test]
fn errors_name_the_service_code_but_never_a_credential_or_signature() {
    let server = Server::start();
    let mut cfg = config(&server.endpoint());
    cfg.set_secret_access_key("wrong-secret-material-XYZ");
    let store = S3Storage::new(&cfg).unwrap();
    let err = store
        .put(&key("k"), &mut &b"x"[..], PutMode::Overwrite)
        .unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(shown.contains("SignatureDoesNotMatch"), "{shown}");
        assert!(!shown.contains("wrong-secret"), "{shown}");
        assert!(!shown.contains(SECRET_KEY), "{shown}");
        assert!(!shown.contains("X-Amz-Signature"), "{shown}");
    }
    assert!(matches!(
        err,
        Error::Backend {
            status: Some(403),
            transient: false,
            ..
        }
    ));
    // A HEAD's answer has no body: the message still says what happened.
    let err = store.head(&key("k")).unwrap_err();
    match &err {
        Error::Backend {
            status: Some(403),
            message,
            ..
        } => assert!(message.contains("HTTP 403"), "{err}"),
        other => panic!("{other:?}"),
    }
    // A refused connection: transient, retried, then reported without the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = store_at(&endpoint).head(&key("k")).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        matches!(
            err,
            Error::Backend {
                transient: true,
                status: None,
                ..
            }
        ),
        "{shown}"
    );
    assert!(!shown.contains("X-Amz-"), "{shown}");
}

fn store_at(endpoint: &str) -> S3Storage {
    store(endpoint)
}

/// Settings for going through the fault proxy: a short timeout (stalls cost 2 s), and
/// a minimum upload rate so high it adds nothing to it.
fn proxied(proxy: &Proxy) -> S3Storage {
    let mut cfg = config(&proxy.endpoint());
    cfg.request_timeout = Duration::from_secs(2);
    cfg.min_upload_rate = 1 << 30;
    cfg.max_attempts = 4;
    S3Storage::new(&cfg).unwrap()
}

fn rule(op: Op, from: usize, count: usize, fault: Fault) -> Rule {
    Rule {
        op,
        from,
        count,
        fault,
    }
}

const STALL: Fault = Fault::Stall(Duration::from_secs(3));
const ALWAYS: usize = 1000;

#[test]
fn multipart_uploads_under_faults_complete_exactly_or_fail_leaving_the_old_object() {
    use Fault::*;
    use Op::*;
    let server = Server::start();
    let direct = store(&server.endpoint());
    let proxy = Proxy::start(server.addr);
    let via = proxied(&proxy);
    let new = data(2 * PART + (3 << 20), 21); // three parts
    let old = data(3000, 22);

    // (what, rules, create-only, whether the put must succeed)
    let scenarios: Vec<(&str, Vec<Rule>, bool, bool)> = vec![
        (
            "part 2 cut mid-body",
            vec![rule(UploadPart, 2, 1, DropMidRequest)],
            false,
            true,
        ),
        (
            "part 1's answer lost",
            vec![rule(UploadPart, 1, 1, DropResponse)],
            false,
            true,
        ),
        (
            "part 3 stalls past the timeout",
            vec![rule(UploadPart, 3, 1, STALL)],
            false,
            true,
        ),
        (
            "500 then 503s on parts",
            vec![
                rule(UploadPart, 1, 1, Status(500)),
                rule(UploadPart, 2, 2, Status(503)),
            ],
            false,
            true,
        ),
        (
            "create answers 503",
            vec![rule(CreateMultipart, 1, 1, Status(503))],
            false,
            true,
        ),
        (
            "complete answers 500",
            vec![rule(Complete, 1, 1, Status(500))],
            false,
            true,
        ),
        (
            "complete stalls",
            vec![rule(Complete, 1, 1, STALL)],
            false,
            true,
        ),
        (
            "complete's answer lost",
            vec![rule(Complete, 1, 1, DropResponse)],
            false,
            true,
        ),
        (
            "create-only, complete's answer lost",
            vec![rule(Complete, 1, 1, DropResponse)],
            true,
            true,
        ),
        (
            "parts keep failing with 500",
            vec![rule(UploadPart, 2, ALWAYS, Status(500))],
            false,
            false,
        ),
        (
            "parts keep being cut",
            vec![rule(UploadPart, 1, ALWAYS, DropMidRequest)],
            false,
            false,
        ),
        (
            "complete keeps answering 503",
            vec![rule(Complete, 1, ALWAYS, Status(503))],
            false,
            false,
        ),
        ("create-only over an existing object", vec![], true, false),
    ];

    for (i, (what, rules, create_only, must_succeed)) in scenarios.into_iter().enumerate() {
        let k = key(&format!("faults/{i}"));
        // The create-only success case starts with no object; all others with one.
        let had_old = !(create_only && must_succeed);
        if had_old {
            direct.put(&k, &mut &old[..], PutMode::Overwrite).unwrap();
        }
        // Whenever a part or a Complete reaches the proxy, the key must still show the
        // old object (or none): nothing before Complete is visible.
        let wrong_views = Arc::new(AtomicUsize::new(0));
        {
            let (direct, k, wrong_views) = (direct.clone(), k.clone(), Arc::clone(&wrong_views));
            let old_size = had_old.then_some(old.len() as u64);
            proxy.set_hook(Some(Box::new(move |op| {
                if matches!(op, UploadPart | Complete) {
                    let seen = direct.head(&k).unwrap().map(|m| m.size);
                    if seen != old_size {
                        wrong_views.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })));
        }
        proxy.set_rules(&rules);
        let mode = if create_only {
            PutMode::CreateOnly
        } else {
            PutMode::Overwrite
        };
        let result = via.put(&k, &mut Trickle::new(new.clone()), mode);
        proxy.set_hook(None);
        let log = proxy.log();
        proxy.set_rules(&[]);
        println!(
            "{what}: {:?}; requests: {:?}",
            result.as_ref().map_err(ToString::to_string),
            log
        );

        assert!(
            rules.is_empty() || log.iter().any(|(_, f)| f.is_some()),
            "{what}: no fault was applied: {log:?}"
        );
        assert_eq!(wrong_views.load(Ordering::SeqCst), 0, "{what}: early view");
        match (&result, must_succeed) {
            (Ok(n), true) => {
                assert_eq!(*n, new.len() as u64, "{what}");
                assert!(
                    read_all(direct.get(&k).unwrap()) == new,
                    "{what}: wrong bytes"
                );
            }
            (Err(e), false) => {
                let shown = format!("{e} {e:?}");
                assert!(
                    !shown.contains(SECRET_KEY) && !shown.contains("X-Amz-"),
                    "{shown}"
                );
                if create_only {
                    assert!(matches!(e, Error::AlreadyExists { .. }), "{what}: {e}");
                } else {
                    assert!(matches!(e, Error::Backend { .. }), "{what}: {e}");
                }
                assert!(
                    read_all(direct.get(&k).unwrap()) == old,
                    "{what}: old object lost"
                );
            }
            (other, _) => panic!("{what}: unexpected outcome {other:?}; requests: {log:?}"),
        }
        assert_eq!(
            server.dangling_uploads(),
            Vec::<String>::new(),
            "{what}: an upload was left behind"
        );
    }
}

#[test]
fn a_create_only_multipart_put_loses_a_race_cleanly() {
    // Another writer creates the key while the parts are being uploaded: the
    // If-None-Match on CompleteMultipartUpload refuses ours (412), the upload is
    // aborted, and the other writer's object stays.
    let server = Server::start();
    let direct = store(&server.endpoint());
    let proxy = Proxy::start(server.addr);
    let via = proxied(&proxy);
    let k = key("race/obj");
    {
        let (direct, k) = (direct.clone(), k.clone());
        proxy.set_hook(Some(Box::new(move |op| {
            if op == Op::Complete {
                direct
                    .put(&k, &mut &b"the other writer"[..], PutMode::CreateOnly)
                    .unwrap();
            }
        })));
    }
    let result = via.put(
        &k,
        &mut Trickle::new(data(2 * PART + 1, 51)),
        PutMode::CreateOnly,
    );
    proxy.set_hook(None);
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "{result:?}"
    );
    assert!(proxy.log().iter().any(|(op, _)| *op == Op::Abort));
    assert_eq!(read_all(direct.get(&k).unwrap()), b"the other writer");
    assert_eq!(server.dangling_uploads(), Vec::<String>::new());
}

#[test]
fn single_puts_retry_and_checksums_refuse_corrupted_bodies() {
    use Fault::*;
    use Op::*;
    let server = Server::start();
    let direct = store(&server.endpoint());
    let proxy = Proxy::start(server.addr);
    let via = proxied(&proxy);
    let body = data(100_000, 31);
    let old = data(10, 32);

    // A 500, then success.
    proxy.set_rules(&[rule(PutObject, 1, 1, Status(500))]);
    via.put(&key("s/a"), &mut &body[..], PutMode::Overwrite)
        .unwrap();
    assert!(read_all(direct.get(&key("s/a")).unwrap()) == body);

    // Create-only whose answer is lost: the retry's 412 is recognised as our own
    // object by its SHA-256.
    proxy.set_rules(&[rule(PutObject, 1, 1, DropResponse)]);
    via.put(&key("s/b"), &mut &body[..], PutMode::CreateOnly)
        .unwrap();
    assert!(read_all(direct.get(&key("s/b")).unwrap()) == body);
    // ... while a genuinely existing object still refuses.
    proxy.set_rules(&[]);
    assert!(matches!(
        via.put(&key("s/b"), &mut &old[..], PutMode::CreateOnly),
        Err(Error::AlreadyExists { .. })
    ));

    // A body corrupted on the way: the server's SHA-256 check refuses it, every time,
    // and the put fails.
    direct
        .put(&key("s/c"), &mut &old[..], PutMode::Overwrite)
        .unwrap();
    proxy.set_rules(&[rule(PutObject, 1, ALWAYS, CorruptBody)]);
    match via.put(&key("s/c"), &mut &body[..], PutMode::Overwrite) {
        Err(Error::Backend { code, status, .. }) => {
            assert_eq!((code.as_str(), status), ("BadDigest", Some(400)))
        }
        other => panic!("a corrupted body was accepted: {other:?}"),
    }
    // AWS S3 (and MinIO) verify before storing, so the old object stays. s3s-fs 0.14.1
    // renames the upload into place first and verifies after (put_object in its
    // s3.rs), so there the corrupted bytes are left under the key despite the 400.
    // Either way, what is there is never passed off as the put's data.
    let after = read_all(direct.get(&key("s/c")).unwrap());
    let s3s_fs_quirk = after.len() == body.len() && after != body;
    assert!(
        after == old || s3s_fs_quirk,
        "unexpected content after BadDigest"
    );
}

#[test]
fn reads_resume_after_a_broken_connection() {
    use Fault::*;
    use Op::*;
    let server = Server::start();
    let direct = store(&server.endpoint());
    let proxy = Proxy::start(server.addr);
    let via = proxied(&proxy);
    let body = data(3 << 20, 41);
    direct
        .put(&key("r/obj"), &mut &body[..], PutMode::Overwrite)
        .unwrap();

    proxy.set_rules(&[rule(Get, 1, 2, TruncateResponse)]);
    assert!(read_all(via.get(&key("r/obj")).unwrap()) == body);
    assert_eq!(proxy.faults_applied(), 2);

    proxy.set_rules(&[
        rule(Get, 1, 1, TruncateResponse),
        rule(Head, 1, 1, Status(503)),
    ]);
    let got = read_all(via.get_range(&key("r/obj"), 1000, 2 << 20).unwrap());
    assert!(got == body[1000..1000 + (2 << 20)]);
    assert_eq!(
        via.head(&key("r/obj")).unwrap().unwrap().size,
        body.len() as u64
    );

    // A missing object is NotFound, also through retries of 503s.
    proxy.set_rules(&[rule(Get, 1, 1, Status(503))]);
    assert!(matches!(
        via.get(&key("r/missing")),
        Err(Error::NotFound { .. })
    ));
}

/// Signs with another storage's credentials, as an agent's server does, and can be told
/// to fail its next calls.
struct ServerSigner {
    store: S3Storage,
    calls: AtomicUsize,
    /// Fail this many coming calls, transiently.
    fail_next: AtomicUsize,
    /// Refuse every call, for good.
    refuse: std::sync::atomic::AtomicBool,
    /// Put before every key (an agent's destination), as the server does.
    root: &'static str,
}

impl Signer for ServerSigner {
    fn sign(&self, op: PresignOp<'_>, key: &ObjectKey) -> Result<PresignedRequest, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let backend = |code: &str, transient| Error::Backend {
            operation: "Sign",
            key: key.to_string(),
            status: None,
            code: code.into(),
            message: "the server said no".into(),
            transient,
        };
        if self.refuse.load(Ordering::SeqCst) {
            return Err(backend("Forbidden", false));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(backend("ServerAway", true));
        }
        let full = if self.root.is_empty() {
            key.clone()
        } else {
            ObjectKey::new(format!("{}/{key}", self.root))?
        };
        self.store.presign(op, &full, Duration::from_secs(60))
    }
}

#[test]
fn a_storage_without_credentials_works_through_a_signer() {
    let server = Server::start();
    let own = store(&server.endpoint());
    let signer = Arc::new(ServerSigner {
        store: own.clone(),
        calls: AtomicUsize::new(0),
        fail_next: AtomicUsize::new(0),
        refuse: Default::default(),
        root: "",
    });
    let mut cfg = S3Config::for_signer(own.bucket());
    cfg.part_size = PART;
    cfg.retry_base_delay = Duration::from_millis(10);
    let agent = S3Storage::with_signer(signer.clone(), &cfg).unwrap();
    assert!(!format!("{agent:?}").contains(SECRET_KEY));

    // Single and multipart puts, create-only, read back by both.
    let small = data(1000, 5);
    let large = data(2 * PART + 777, 6);
    for (name, body) in [("agent/small", &small), ("agent/large", &large)] {
        let k = key(name);
        let n = agent
            .put(&k, &mut Trickle::new(body.clone()), PutMode::CreateOnly)
            .unwrap();
        assert_eq!(n, body.len() as u64);
        assert!(read_all(own.get(&k).unwrap()) == *body, "{name}");
        assert!(read_all(agent.get(&k).unwrap()) == *body, "{name}");
        assert_eq!(agent.head(&k).unwrap().unwrap().size, body.len() as u64);
        assert!(matches!(
            agent.put(&k, &mut &b"again"[..], PutMode::CreateOnly),
            Err(Error::AlreadyExists { .. })
        ));
    }
    let got = read_all(
        agent
            .get_range(&key("agent/large"), PART as u64 - 5, 10)
            .unwrap(),
    );
    assert_eq!(got, large[PART - 5..PART + 5]);
    assert!(signer.calls.load(Ordering::SeqCst) >= 10);

    // A signer that is away for a moment is retried; the upload completes.
    signer.fail_next.store(2, Ordering::SeqCst);
    agent
        .put(
            &key("agent/retried"),
            &mut Trickle::new(large.clone()),
            PutMode::CreateOnly,
        )
        .unwrap();
    assert_eq!(signer.fail_next.load(Ordering::SeqCst), 0);
    assert!(read_all(own.get(&key("agent/retried")).unwrap()) == large);

    // A signer that refuses ends the put: nothing visible, no upload left behind.
    signer.refuse.store(true, Ordering::SeqCst);
    match agent.put(&key("agent/refused"), &mut &small[..], PutMode::CreateOnly) {
        Err(Error::Backend { code, .. }) => assert_eq!(code, "Forbidden"),
        other => panic!("put through a refusing signer: {other:?}"),
    }
    signer.refuse.store(false, Ordering::SeqCst);
    assert!(own.head(&key("agent/refused")).unwrap().is_none());

    // Delete works; presigning needs credentials it does not have.
    agent.delete(&key("agent/small")).unwrap();
    assert!(own.head(&key("agent/small")).unwrap().is_none());
    assert!(agent
        .presign(PresignOp::Get, &key("agent/large"), Duration::from_secs(60))
        .is_err());
    assert_eq!(server.dangling_uploads(), Vec::<String>::new());
}

#[test]
fn a_storage_without_credentials_lists_folders_under_its_signers_root() {
    let server = Server::start();
    let own = store(&server.endpoint());
    for name in [
        "dest1/index/a",
        "dest1/index/b",
        "dest1/index/c",
        "dest1/indexes/x",
        "dest1/keys/k",
        "dest2/index/z",
    ] {
        own.put(&key(name), &mut &b"o"[..], PutMode::Overwrite)
            .unwrap();
    }
    let signer = Arc::new(ServerSigner {
        store: own.clone(),
        calls: AtomicUsize::new(0),
        fail_next: AtomicUsize::new(0),
        refuse: Default::default(),
        root: "dest1",
    });
    let mut cfg = S3Config::for_signer(own.bucket());
    cfg.signer_root = "dest1".into();
    // Pages of two: the continuation token is signed with each page.
    cfg.list_page_size = 2;
    let agent = S3Storage::with_signer(signer.clone(), &cfg).unwrap();
    let names = |list: Vec<coffer_adapters::storage::ObjectMeta>| {
        list.into_iter()
            .map(|m| m.key.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    // The folder only (not `indexes/`), keys relative to the root, nothing of dest2.
    assert_eq!(
        names(agent.list("index/").unwrap()),
        ["index/a", "index/b", "index/c"]
    );
    assert_eq!(
        signer.calls.load(Ordering::SeqCst),
        2,
        "two pages, two signatures"
    );
    assert_eq!(names(agent.list("keys/").unwrap()), ["keys/k"]);
    assert!(agent.list("nothing/").unwrap().is_empty());
    // Only folders can be asked for: a bare prefix could reach past one.
    assert!(matches!(
        agent.list("index"),
        Err(Error::InvalidConfig { .. })
    ));
    // The URL lists what was signed: moved to another prefix, it is refused.
    let signed = own
        .presign(
            PresignOp::List {
                continuation_token: None,
                max_keys: 10,
            },
            &key("dest1/index"),
            Duration::from_secs(60),
        )
        .unwrap();
    let moved = signed.url.replace("dest1%2Findex", "dest2%2Findex");
    assert_ne!(moved, signed.url, "{}", signed.url);
    let status = plain_client().get(&moved).send().unwrap().status();
    assert_eq!(status.as_u16(), 403);
    let status = plain_client().get(&signed.url).send().unwrap().status();
    assert_eq!(status.as_u16(), 200);
}
