//! An independent S3 client against the embedded store: boto3, which signs SigV4 in the
//! `Authorization` header (and streams bodies as aws-chunked with trailing checksums),
//! where the agents pre-sign. With the server's internal credentials it puts (plain and
//! create-only), reads ranges, heads with checksums, uploads in parts, lists a
//! destination page by page and deletes; a wrong secret and a key outside every
//! destination are refused.
//!
//! Needs `python3` with boto3 (.ci/run installs it); without them the test fails,
//! saying so.

#[path = "support/harness.rs"]
mod harness;

use serde_json::{json, Value};

const SCRIPT: &str = r#"
import base64, hashlib, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

base, secret, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
def client(secret):
    return boto3.client('s3', endpoint_url=base + '/s3', aws_access_key_id='coffer-local',
                        aws_secret_access_key=secret, region_name='us-east-1',
                        config=Config(s3={'addressing_style': 'path'},
                                      retries={'max_attempts': 1}))
def code(call):
    try:
        call()
    except ClientError as e:
        return e.response['Error']['Code']
    return None
def sha(b):
    return base64.b64encode(hashlib.sha256(b).digest()).decode()

s3 = client(secret)
key = prefix + '/boto/one'
body = b'hello from boto3 ' * 100
r = s3.put_object(Bucket='coffer', Key=key, Body=body, ChecksumAlgorithm='SHA256')
assert r['ChecksumSHA256'] == sha(body), r
r = s3.get_object(Bucket='coffer', Key=key, Range='bytes=0-4')
assert r['Body'].read() == b'hello' and r['ContentRange'] == 'bytes 0-4/%d' % len(body), r
r = s3.head_object(Bucket='coffer', Key=key, ChecksumMode='ENABLED')
assert r['ContentLength'] == len(body) and r['ChecksumSHA256'] == sha(body), r
assert code(lambda: s3.put_object(Bucket='coffer', Key=key, Body=b'x', IfNoneMatch='*')) == 'PreconditionFailed'

big = prefix + '/boto/parts'
parts_data = [b'a' * (5 << 20), b'the short last part']
uid = s3.create_multipart_upload(Bucket='coffer', Key=big, ChecksumAlgorithm='SHA256')['UploadId']
parts = []
for n, data in enumerate(parts_data, 1):
    r = s3.upload_part(Bucket='coffer', Key=big, UploadId=uid, PartNumber=n, Body=data,
                       ChecksumAlgorithm='SHA256')
    assert r['ChecksumSHA256'] == sha(data), r
    parts.append({'PartNumber': n, 'ETag': r['ETag'], 'ChecksumSHA256': r['ChecksumSHA256']})
listed = s3.list_parts(Bucket='coffer', Key=big, UploadId=uid)['Parts']
assert [(p['PartNumber'], p['Size']) for p in listed] == [(1, 5 << 20), (2, 19)], listed
r = s3.complete_multipart_upload(Bucket='coffer', Key=big, UploadId=uid,
                                 MultipartUpload={'Parts': parts})
assert r['ETag'].endswith('-2"'), r
assert s3.get_object(Bucket='coffer', Key=big)['Body'].read() == b''.join(parts_data)

keys, token = [], None
while True:
    args = {'Bucket': 'coffer', 'Prefix': prefix + '/boto/', 'MaxKeys': 1}
    if token:
        args['ContinuationToken'] = token
    r = s3.list_objects_v2(**args)
    keys += [o['Key'] for o in r.get('Contents', [])]
    if not r['IsTruncated']:
        break
    token = r['NextContinuationToken']
assert keys == sorted([big, key]), keys

s3.delete_object(Bucket='coffer', Key=key)
assert code(lambda: s3.head_object(Bucket='coffer', Key=key)) == '404'
assert code(lambda: client('wrong').get_object(Bucket='coffer', Key=big)) == 'SignatureDoesNotMatch'
assert code(lambda: s3.get_object(Bucket='coffer', Key='t0/nobody/x')) == 'AccessDenied'
print('ok')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_uses_the_embedded_store_with_header_signing() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = harness::test_config(dir.path());
    config.public_url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let started = coffer_server::Server::open(config, None).unwrap();
    let secret = started.state.stores.credentials.secret.to_string();
    let admin = started.admin_token.unwrap().to_string();
    tokio::spawn(coffer_server::server::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    let base = format!("http://{addr}");

    // An agent, for a destination to put the objects under.
    let client = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let tenant = post("/v1/admin/tenants", Some(&admin), json!({"name": "boto"})).await;
    let id = tenant["tenant"]["id"].as_str().unwrap();
    let path = format!("/v1/admin/tenants/{id}/operator-tokens");
    let op = post(&path, Some(&admin), json!({})).await;
    let op = op["token"].as_str().unwrap();
    let enrolment = post("/v1/enrolment-tokens", Some(op), json!({})).await;
    let enrolled = post(
        "/v1/enroll",
        None,
        json!({"token": enrolment["token"], "hostname": "boto", "version": "0.1.0"}),
    )
    .await;
    let prefix = enrolled["destination"]["prefix"]
        .as_str()
        .unwrap()
        .to_owned();

    let script = dir.path().join("boto3_check.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(&script)
            .args([&base, &secret, &prefix])
            .output()
    })
    .await
    .unwrap()
    .expect("python3 is needed (with boto3: pip install boto3)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        !stderr.contains("No module named 'boto3'"),
        "boto3 is needed: pip install boto3"
    );
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{stdout}\n{stderr}"
    );
}
