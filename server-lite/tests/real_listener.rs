//! The server on a real socket: an S3 backend registered by the admin (here the
//! server's own embedded store, reached as any S3 service would be, so the adapters'
//! real S3 client is what talks to it), an agent enrolled on it, uploads through its
//! pre-signed URLs, and a multipart upload by `S3Storage` itself.

#[path = "support/harness.rs"]
mod harness;

use std::io::Read;

use coffer_adapters::storage::{ObjectKey, PutMode, S3Config, S3Storage, Storage};
use coffer_server::{server, Server};
use serde_json::{json, Value};

struct Live {
    base: String,
    state: coffer_server::state::AppState,
    admin: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Live {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = harness::test_config(dir.path());
    config.public_url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let started = Server::open(config, None).unwrap();
    let state = started.state.clone();
    tokio::spawn(server::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    Live {
        base: format!("http://{addr}"),
        state,
        admin: started.admin_token.unwrap().to_string(),
        _dir: dir,
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_backend_is_probed_sealed_and_used_through_presigned_urls() {
    let live = start().await;
    let client = reqwest::Client::new();
    let secret = live.state.stores.credentials.secret.to_string();
    let post = reqwest::Method::POST;

    // Wrong credentials: the probe fails and nothing is stored.
    let (status, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/backends", live.base),
        &live.admin,
        Some(
            json!({"name": "bad", "endpoint": format!("{}/s3/", live.base), "bucket": "coffer",
                    "access_key_id": "coffer-local", "secret_access_key": "wrong"}),
        ),
    )
    .await;
    assert_eq!(status, 503, "{body}");

    let (status, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/backends", live.base),
        &live.admin,
        Some(
            json!({"name": "store", "endpoint": format!("{}/s3/", live.base), "bucket": "coffer",
                    "access_key_id": "coffer-local", "secret_access_key": secret}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let backend = body["backend"]["id"].as_str().unwrap().to_owned();
    assert!(!body.to_string().contains(&secret));
    // The secret is sealed in the database, never stored in the clear.
    let (sealed, count): (Vec<u8>, i64) = live.state.db.blocking(|cat| {
        let conn = cat.connection();
        let sealed = conn
            .query_row("SELECT secret_sealed FROM backends", [], |r| r.get(0))
            .unwrap();
        let count = conn
            .query_row("SELECT count(*) FROM backends", [], |r| r.get(0))
            .unwrap();
        (sealed, count)
    });
    assert_eq!(count, 1);
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // A tenant on that backend; its agent's destination is there.
    let (_, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/tenants", live.base),
        &live.admin,
        Some(json!({"name": "s3-tenant", "backend_id": backend})),
    )
    .await;
    let tenant = body["tenant"]["id"].as_str().unwrap().to_owned();
    let (_, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/tenants/{tenant}/operator-tokens", live.base),
        &live.admin,
        Some(json!({})),
    )
    .await;
    let op = body["token"].as_str().unwrap().to_owned();
    let (_, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/enrolment-tokens", live.base),
        &op,
        Some(json!({})),
    )
    .await;
    let enrol = body["token"].as_str().unwrap().to_owned();
    let response = client
        .post(format!("{}/v1/enroll", live.base))
        .json(&json!({"token": enrol, "hostname": "s3-nas", "version": "0.1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let enrolled: Value = response.json().await.unwrap();
    let agent = enrolled["api_key"].as_str().unwrap().to_owned();
    let prefix = enrolled["destination"]["prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = call(
        &client,
        reqwest::Method::GET,
        format!(
            "{}/v1/destinations/{}",
            live.base,
            enrolled["destination"]["id"].as_str().unwrap()
        ),
        &op,
        None,
    )
    .await;
    assert_eq!(body["destination"]["backend_id"], backend.as_str());

    // The agent uploads and reads back through pre-signed URLs over HTTP.
    let data = b"through a real socket".to_vec();
    let sum = coffer_adapters::storage::s3::checksum_sha256(&data);
    let (status, signed) = call(
        &client,
        post.clone(),
        format!("{}/v1/agent/presign", live.base),
        &agent,
        Some(json!({"op": "put", "key": "a/b", "create_only": true, "checksum_sha256": sum})),
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let mut request = client
        .put(signed["url"].as_str().unwrap())
        .body(data.clone());
    for pair in signed["headers"].as_array().unwrap() {
        request = request.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
    let (_, signed) = call(
        &client,
        post.clone(),
        format!("{}/v1/agent/presign", live.base),
        &agent,
        Some(json!({"op": "get", "key": "a/b"})),
    )
    .await;
    let got = client
        .get(signed["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &data[..]);

    // The adapters' own S3 client, multipart and ranged reads included, against the
    // embedded store.
    let base = live.base.clone();
    tokio::task::spawn_blocking(move || {
        let mut config = S3Config::new(
            format!("{base}/s3/"),
            "us-east-1",
            "coffer",
            "coffer-local",
            secret,
        );
        config.part_size = coffer_adapters::storage::s3::MIN_PART_SIZE;
        let store = S3Storage::new(&config).unwrap();
        let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        let key = ObjectKey::new(format!("{prefix}/big/object")).unwrap();
        assert_eq!(
            store
                .put(&key, &mut big.as_slice(), PutMode::CreateOnly)
                .unwrap(),
            big.len() as u64
        );
        assert!(matches!(
            store.put(&key, &mut big.as_slice(), PutMode::CreateOnly),
            Err(coffer_adapters::Error::AlreadyExists { .. })
        ));
        let mut back = Vec::new();
        store.get(&key).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == big, "multipart object differs");
        let mut range = Vec::new();
        store
            .get_range(&key, 5 * 1024 * 1024 - 3, 10)
            .unwrap()
            .read_to_end(&mut range)
            .unwrap();
        assert_eq!(range, &big[5 * 1024 * 1024 - 3..5 * 1024 * 1024 + 7]);
        assert_eq!(store.head(&key).unwrap().unwrap().size, big.len() as u64);
        store.delete(&key).unwrap();
        assert!(store.head(&key).unwrap().is_none());
    })
    .await
    .unwrap();
}

/// The admin's storage test: a backend that passes says so; one whose store cannot
/// be written opens a `storage.failed` alert for the server and for the tenant with a
/// destination on it (an audited failure, a 200 with the reason: the test ran); once
/// it passes again the alerts clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_failing_its_test_opens_a_storage_alert_and_passing_clears_it() {
    let live = start().await;
    let client = reqwest::Client::new();
    let secret = live.state.stores.credentials.secret.to_string();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let (status, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/backends", live.base),
        &live.admin,
        Some(
            json!({"name": "store", "endpoint": format!("{}/s3/", live.base), "bucket": "coffer",
                    "access_key_id": "coffer-local", "secret_access_key": secret}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let backend = body["backend"]["id"].as_str().unwrap().to_owned();
    let (_, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/tenants", live.base),
        &live.admin,
        Some(json!({"name": "on-store", "backend_id": backend})),
    )
    .await;
    let tenant = body["tenant"]["id"].as_str().unwrap().to_owned();
    let (_, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/admin/tenants/{tenant}/operator-tokens", live.base),
        &live.admin,
        Some(json!({})),
    )
    .await;
    let op = body["token"].as_str().unwrap().to_owned();
    let (_, body) = call(
        &client,
        post.clone(),
        format!("{}/v1/enrolment-tokens", live.base),
        &op,
        Some(json!({})),
    )
    .await;
    let response = client
        .post(format!("{}/v1/enroll", live.base))
        .json(&json!({"token": body["token"], "hostname": "nas", "version": "0.1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);

    let test = format!("{}/v1/admin/backends/{backend}/test", live.base);
    let (status, body) = call(&client, post.clone(), test.clone(), &live.admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");

    // The store's folder becomes a file: nothing can be written under it.
    let objects = live.state.config.data_dir.join("objects");
    let away = live.state.config.data_dir.join("objects.away");
    std::fs::rename(&objects, &away).unwrap();
    std::fs::write(&objects, b"not a folder").unwrap();
    let (status, body) = call(&client, post.clone(), test.clone(), &live.admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert!(body["error"].as_str().unwrap().contains("probe"), "{body}");
    let open = |token: String, path: &'static str| {
        let (client, base) = (client.clone(), live.base.clone());
        async move {
            let (_, body) = call(
                &client,
                reqwest::Method::GET,
                format!("{base}{path}?open=true"),
                &token,
                None,
            )
            .await;
            body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["kind"] == "storage.failed")
                .map(|a| a["subject"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let subject = format!("backend:{backend}");
    assert_eq!(
        open(live.admin.clone(), "/v1/admin/alerts").await,
        vec![subject.clone()]
    );
    assert_eq!(open(op.clone(), "/v1/alerts").await, vec![subject]);
    let (_, audit) = call(
        &client,
        get.clone(),
        format!("{}/v1/admin/audit", live.base),
        &live.admin,
        None,
    )
    .await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "backend.test" && e["outcome"] == "failed"),
        "{audit}"
    );

    std::fs::remove_file(&objects).unwrap();
    std::fs::rename(&away, &objects).unwrap();
    let (_, body) = call(&client, post.clone(), test, &live.admin, None).await;
    assert_eq!(body["ok"], true, "{body}");
    assert!(open(live.admin.clone(), "/v1/admin/alerts")
        .await
        .is_empty());
    assert!(open(op, "/v1/alerts").await.is_empty());
}
