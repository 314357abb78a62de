//! No request a client can send gets a 500: a property test (proptest) that drives the
//! real router in-process (`Harness::send`, `oneshot`, no socket) with generated requests.
//!
//! Each case is one request (two for the embedded store's signed requests, which are
//! pre-signed first): any route of `openapi.json` (now and then with another method, or
//! an unknown path), its path parameters real IDs of either tenant or bogus ones, any
//! kind of credential (none, admin, operators, agents, a revoked agent's, an enrolment
//! token, garbage), JSON bodies that are valid examples mutated field by field, arbitrary
//! JSON, malformed JSON or bytes, and random query parameters; and the embedded store
//! with real pre-signed URLs (every agent operation, tampered headers, queries, methods
//! and bodies) or unsigned garbage. The only 5xx allowed is a 503 that is S3's
//! `SlowDown` or a destination probe's refusal; the assertion prints the request, the
//! answer and what the server logged meanwhile (its 500s log their detail under the
//! incident number they answer with). A handler that panics, or a request left without
//! an answer for a minute, fails the test too.
//!
//! Nothing is sent anywhere but the router itself: the long poll always gets a
//! `wait_secs` that does not wait, and a backend registration's endpoint (which the
//! server probes) is always a closed port on loopback or no URL at all, path-style.
//!
//! The number of cases is proptest's `PROPTEST_CASES` (default [`DEFAULT_CASES`]); a
//! long run: `PROPTEST_CASES=200000 cargo test -p coffer-server --test no_500 --release`.
//! `RUST_LOG` also copies the server's log to stderr. `NO_500_KEEP_GOING=1` records
//! every kind of failure and goes on, listing them all at the end, instead of stopping
//! at the first. Fixture objects a case revokes or deletes (an agent, an operator
//! token, a job) are replaced at once; `--nocapture` shows what the run reached.

#[path = "support/harness.rs"]
mod harness;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use futures_util::FutureExt as _;
use harness::{checksum, Enrolled, Harness};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Value};

/// Cases when `PROPTEST_CASES` is not set: 20 to 40 seconds in a debug build on two
/// (shared) cores.
const DEFAULT_CASES: u32 = 25_000;
/// Longer than any request should take (a backend probe of a closed port included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------
// What a case is made of.
// ------------------------------------------------------------------------------------

/// A documented route.
#[derive(Clone, Debug)]
struct Route {
    template: String,
    method: Method,
}

/// Every (path template, method) of `openapi.json`.
fn documented_routes() -> Vec<Route> {
    let doc: Value = serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json");
    let mut routes = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) {
                if [
                    "GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE",
                ]
                .contains(&m.as_str())
                {
                    routes.push(Route {
                        template: template.clone(),
                        method: m,
                    });
                }
            }
        }
    }
    assert!(routes.len() > 40, "{routes:?}");
    routes
}

#[derive(Clone, Debug)]
enum Case {
    Api(ApiCase),
    Signed(SignedCase),
    Unsigned(UnsignedCase),
}

#[derive(Clone, Debug)]
struct ApiCase {
    target: Target,
    /// Replaces the route's method.
    method: Option<Method>,
    params: Vec<Param>,
    auth: AuthGen,
    content_type: Option<&'static str>,
    body: BodyGen,
    query: QueryGen,
    /// `wait_secs` of the long poll (none of them waits).
    poll_wait: &'static str,
    /// A backend registration's endpoint (nothing that leaves the machine).
    endpoint: &'static str,
}

#[derive(Clone, Debug)]
enum Target {
    Route(Route),
    Unknown(String),
}

/// A path parameter.
#[derive(Clone, Debug)]
enum Param {
    /// A real ID of the caller's tenant (`own`; A for callers of no tenant) or of the
    /// other: of the kind the path names (`typed`), or of any kind.
    Real {
        own: bool,
        typed: bool,
        pick: usize,
    },
    Lit(&'static str),
    /// 500 of this character.
    Long(char),
    Random(String),
}

const LITERAL_PARAMS: &[&str] = &[
    "0",
    "-1",
    "1",
    "99999999999999999999",
    "abc",
    "%00",
    "%2e%2e",
    "..",
    "é",
    "",
];
const LONG_CHARS: &[char] = &['a', '9', 'é'];

/// The credential: the kind the route takes (of tenant A, or B if `b`), or any.
#[derive(Clone, Copy, Debug)]
enum AuthGen {
    Fitting { b: bool },
    Any(Auth),
}

#[derive(Clone, Copy, Debug)]
enum Auth {
    None,
    Admin,
    OperatorA,
    OperatorB,
    AgentA,
    AgentB,
    RevokedAgent,
    EnrolmentToken,
    Garbage,
    Basic,
    Huge,
    LooksLikeToken,
}

const AUTHS: &[Auth] = &[
    Auth::None,
    Auth::Admin,
    Auth::OperatorA,
    Auth::OperatorB,
    Auth::AgentA,
    Auth::AgentB,
    Auth::RevokedAgent,
    Auth::EnrolmentToken,
    Auth::Garbage,
    Auth::Basic,
    Auth::Huge,
    Auth::LooksLikeToken,
];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json"),
    Some("application/json"),
    None,
    Some("text/plain"),
    Some("application/json; charset=latin1"),
];

#[derive(Clone, Debug)]
enum BodyGen {
    None,
    /// The route's example body (`variant` picks one where there are several), mutated.
    Example {
        variant: usize,
        mutations: Vec<Mutation>,
    },
    Json(Value),
    Bytes(Vec<u8>),
    Text(&'static str),
    /// Arrays or objects nested this deep.
    Nested {
        depth: usize,
        objects: bool,
    },
}

/// A change to an example body; indexes pick a node (modulo their count).
#[derive(Clone, Debug)]
enum Mutation {
    Drop(usize),
    Set(usize, Value),
    /// Replaces a node with this JSON text (numbers `serde_json::Value` cannot hold).
    SetRaw(usize, &'static str),
    Add(usize, String, Value),
}

const RAW_JSON: &[&str] = &[
    "99999999999999999999",
    "-99999999999999999999",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "1.0",
    "1E2",
    "NaN",
    "Infinity",
    "01",
    "0x10",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"a\\u202eb\"",
    "[]",
    "{}",
    "truee",
];

const BODY_TEXTS: &[&str] = &[
    "",
    "null",
    "{",
    "}",
    "{\"a\":1,\"a\":2}",
    "\u{feff}{}",
    "{} {}",
    "[1,2,3]",
    "\"string\"",
    "{\"name\":\"\\ud800\"}",
    "{\"name\":\"x\"}\u{0}",
    "{\"op\":\"put\",\"key\":\"k\",\"key\":\"j\"}",
    "{\"lines\":[{\"level\":\"info\",\"message\":\"m\",\"time\":\"2026-11-23T10:00:00Z\"}],\"lines\":[]}",
];

#[derive(Clone, Debug)]
enum QueryGen {
    None,
    Pairs(Vec<(&'static str, QueryValue)>),
    Raw(String),
}

#[derive(Clone, Debug)]
enum QueryValue {
    Lit(&'static str),
    Real { b: bool, pick: usize },
    Random(String),
}

const QUERY_KEYS: &[&str] = &["limit", "wait_secs", "tenant_id", "agent_id"];
const QUERY_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "100",
    "1000",
    "1001",
    "4294967296",
    "99999999999999999999",
    "x",
    "",
    "%00",
    "%zz",
    "+1",
    "%201",
];
/// `wait_secs` for the long poll: none holds the request.
const POLL_WAITS: &[&str] = &["0", "x", "-1", "99999999999999999999", "31"];
/// Endpoints for backend registrations: port 9 is closed; no host names (no DNS).
const ENDPOINTS: &[&str] = &[
    "http://127.0.0.1:9/",
    "not a url",
    "",
    "ftp://127.0.0.1/",
    "http://[::1]:9/",
];

const UNKNOWN_PATHS: &[&str] = &[
    "/",
    "//",
    "/v1",
    "/v1/",
    "/v2/agents",
    "/v1/agents/1/unknown",
    "/v1/admin",
    "/s3",
    "/s3/",
    "/openapi.json/x",
    "/healthz/",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/v1/jobs/1/run/x",
    "/V1/AGENTS",
    "/v1/agent/poll/",
];

/// A request to the embedded store with a real pre-signed URL (asked by agent A),
/// tampered with.
#[derive(Clone, Debug)]
struct SignedCase {
    op: &'static str,
    key: KeyGen,
    upload: UploadGen,
    part_number: Option<u32>,
    checksum: ChecksumGen,
    create_only: Option<bool>,
    method: Option<Method>,
    path_suffix: Option<&'static str>,
    headers: Vec<HeaderMut>,
    query: Option<QueryTamper>,
    body: S3Body,
    /// The body of a `complete_multipart` (else `body`).
    complete: Option<XmlGen>,
}

const OPS: &[&str] = &[
    "put",
    "get",
    "head",
    "create_multipart",
    "upload_part",
    "list_parts",
    "complete_multipart",
    "abort_multipart",
];

#[derive(Clone, Debug)]
enum KeyGen {
    Pool(&'static str),
    /// A 300-byte segment.
    Long,
    Random(String),
    /// The key of the chosen upload.
    OfUpload,
}

const KEYS: &[&str] = &[
    "data/existing",
    "data/new",
    "deep/a/b/c/d/file",
    "mp/object",
    "data",
    "data/existing/under",
    "x/.probe-0123456789abcdef",
    "sp ace/é ü",
    "k%2Fslash",
    "a//b",
    "./x",
    "",
    "/abs",
    "../escape",
];

#[derive(Clone, Debug)]
enum UploadGen {
    None,
    /// One of the uploads made so far (modulo their count).
    Tracked(usize),
    Lit(&'static str),
}

const UPLOAD_IDS: &[&str] = &[
    "garbage",
    "",
    "..",
    "../../etc/passwd",
    "00000000000000000000000000000000",
    "%00",
    "a/b",
];

#[derive(Clone, Debug)]
enum ChecksumGen {
    Absent,
    OfBody,
    Lit(&'static str),
    Flag(bool),
    Null,
    Number,
}

#[derive(Clone, Debug)]
enum HeaderMut {
    Add(&'static str, HeaderValueGen),
    /// Drops one of the signed headers.
    Drop(usize),
    /// Replaces one of the signed headers' value.
    Replace(usize, HeaderValueGen),
}

#[derive(Clone, Debug)]
enum HeaderValueGen {
    Lit(&'static str),
    Random(String),
    ChecksumOfBody,
}

const S3_HEADERS: &[&str] = &[
    "range",
    "if-none-match",
    "if-match",
    "x-amz-checksum-sha256",
    "x-amz-checksum-algorithm",
    "content-type",
    "x-amz-content-sha256",
    "content-md5",
    "x-amz-date",
    "authorization",
    "expect",
];

const HEADER_VALUES: &[&str] = &[
    "bytes=0-0",
    "bytes=-0",
    "bytes=0-",
    "bytes=5-1",
    "bytes=99999999999999999999-",
    "bytes=0-99999999999999999999",
    "bytes=-18446744073709551615",
    "bytes=18446744073709551615-18446744073709551615",
    "bytes=1-2,3-4",
    "bytes=",
    "bytes=-",
    "items=0-1",
    "*",
    "\"\"",
    "\"abc\"",
    "W/\"x\"",
    "garbage",
    "",
    "SHA256",
    "CRC32",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "AAAA",
    "=",
    "application/xml",
    "UNSIGNED-PAYLOAD",
    "100-continue",
];

#[derive(Clone, Debug)]
enum QueryTamper {
    Drop(usize),
    Replace(usize, String),
    Append(&'static str),
    Duplicate(usize),
}

const QUERY_APPENDS: &[&str] = &[
    "uploads",
    "uploadId=x",
    "partNumber=1",
    "X-Amz-Security-Token=x",
    "X-Amz-Expires=3600",
    "x-id=PutObject",
    "%",
];

#[derive(Clone, Debug)]
enum S3Body {
    Bytes(Vec<u8>),
    Filled { byte: u8, len: usize },
    Xml(XmlGen),
}

#[derive(Clone, Debug)]
enum XmlGen {
    Parts(Vec<XmlPart>),
    /// The parts uploaded so far to the chosen upload.
    Tracked {
        reverse: bool,
        duplicate: bool,
        unquote: bool,
    },
    Deep(usize),
    Lit(&'static str),
    Random(String),
}

#[derive(Clone, Debug)]
struct XmlPart {
    number: &'static str,
    etag: &'static str,
    checksum: Option<&'static str>,
}

const PART_NUMBERS: &[&str] = &[
    "1",
    "2",
    "0",
    "-1",
    "10000",
    "10001",
    "65536",
    "99999999999999999999",
    "x",
    "",
    " 1 ",
];
const ETAGS: &[&str] = &[
    "\"0\"",
    "\"d41d8cd98f00b204e9800998ecf8427e\"",
    "",
    "garbage",
    "&amp;",
    "\"\u{202e}\"",
];
const XML_CHECKSUMS: &[&str] = &[
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "garbage",
    "",
];
const XML_DOCS: &[&str] = &[
    "",
    "<CompleteMultipartUpload/>",
    "<CompleteMultipartUpload></CompleteMultipartUpload>",
    "<?xml version=\"1.0\"?><CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
    "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&f;</ETag></Part></CompleteMultipartUpload>",
    "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&e;</ETag></Part></CompleteMultipartUpload>",
    "<Other/>",
    "not xml",
    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><CompleteMultipartUpload/>",
];

/// A request to the embedded store without a valid signature.
#[derive(Clone, Debug)]
struct UnsignedCase {
    method: Method,
    bucket: &'static str,
    key: RawKey,
    query: RawQuery,
    headers: Vec<(&'static str, HeaderValueGen)>,
    auth: Auth,
    body: Vec<u8>,
}

const BUCKETS: &[&str] = &["coffer", "other", "", "%00", "COFFER", "coffer%2F..", "%zz"];

#[derive(Clone, Debug)]
enum RawKey {
    /// Under agent A's destination.
    UnderA(String),
    UnderB(String),
    UnderRevoked(String),
    Lit(&'static str),
    Random(String),
}

const RAW_KEYS: &[&str] = &[
    "",
    "/",
    "..",
    "%2e%2e/%2e%2e",
    "a/../../b",
    "%ff%fe",
    "a%00b",
    "t1",
];

#[derive(Clone, Debug)]
enum RawQuery {
    None,
    Lit(&'static str),
    Sig(FakeSig),
    Random(String),
}

const RAW_QUERIES: &[&str] = &[
    "X-Amz-Signature=00",
    "uploads",
    "uploadId=x&partNumber=1",
    "uploadId=",
    "partNumber=99999",
    "%",
    "&&&",
    "X-Amz-Algorithm=AWS4-HMAC-SHA256",
];

#[derive(Clone, Debug)]
struct FakeSig {
    algorithm: &'static str,
    credential: &'static str,
    /// Seconds from now, or a literal.
    date: Result<i64, &'static str>,
    expires: &'static str,
    signed_headers: &'static str,
    signature: &'static str,
    extra: &'static str,
}

// ------------------------------------------------------------------------------------
// Strategies.
// ------------------------------------------------------------------------------------

fn case(routes: Vec<Route>) -> impl Strategy<Value = Case> {
    prop_oneof![
        14 => api_case(routes).prop_map(Case::Api),
        3 => signed_case().prop_map(Case::Signed),
        3 => unsigned_case().prop_map(Case::Unsigned),
    ]
}

fn api_case(routes: Vec<Route>) -> impl Strategy<Value = ApiCase> {
    let target = prop_oneof![
        12 => select(routes).prop_map(Target::Route),
        1 => prop_oneof![
            select(UNKNOWN_PATHS).prop_map(String::from),
            "(/[a-zA-Z0-9._~%-]{0,12}){1,5}",
        ]
        .prop_map(Target::Unknown),
    ];
    let method = prop_oneof![
        10 => Just(None),
        1 => select(vec![Method::PATCH, Method::PUT, Method::OPTIONS, Method::TRACE]).prop_map(Some),
    ];
    (
        target,
        method,
        prop::collection::vec(param(), 2),
        prop_oneof![
            2 => any::<bool>().prop_map(|b| AuthGen::Fitting { b }),
            1 => select(AUTHS).prop_map(AuthGen::Any),
        ],
        select(CONTENT_TYPES),
        body_gen(),
        query_gen(),
        select(POLL_WAITS),
        select(ENDPOINTS),
    )
        .prop_map(
            |(target, method, params, auth, content_type, body, query, poll_wait, endpoint)| {
                ApiCase {
                    target,
                    method,
                    params,
                    auth,
                    content_type,
                    body,
                    query,
                    poll_wait,
                    endpoint,
                }
            },
        )
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        6 => (
            prop::bool::weighted(0.75),
            prop::bool::weighted(0.8),
            prop_oneof![Just(0usize), 0..8usize],
        )
            .prop_map(|(own, typed, pick)| Param::Real { own, typed, pick }),
        3 => select(LITERAL_PARAMS).prop_map(Param::Lit),
        1 => select(LONG_CHARS).prop_map(Param::Long),
        1 => "[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,24}".prop_map(Param::Random),
    ]
}

fn body_gen() -> impl Strategy<Value = BodyGen> {
    prop_oneof![
        2 => Just(BodyGen::None),
        10 => (0..16usize, prop::collection::vec(mutation(), 0..3))
            .prop_map(|(variant, mutations)| BodyGen::Example { variant, mutations }),
        2 => json_value().prop_map(BodyGen::Json),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(BodyGen::Bytes),
        1 => select(BODY_TEXTS).prop_map(BodyGen::Text),
        1 => (select(vec![100usize, 200, 10_000]), any::<bool>())
            .prop_map(|(depth, objects)| BodyGen::Nested { depth, objects }),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (0..64usize).prop_map(Mutation::Drop),
        4 => (0..64usize, json_value()).prop_map(|(i, v)| Mutation::Set(i, v)),
        1 => (0..64usize, select(RAW_JSON)).prop_map(|(i, r)| Mutation::SetRaw(i, r)),
        2 => (0..64usize, field_name(), json_value()).prop_map(|(i, n, v)| Mutation::Add(i, n, v)),
    ]
}

const FIELDS: &[&str] = &[
    "name",
    "backend_id",
    "label",
    "endpoint",
    "region",
    "bucket",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "ttl_secs",
    "agent_id",
    "sources",
    "schedule",
    "retention",
    "keep_last",
    "level",
    "target",
    "paths",
    "items",
    "restore_point_id",
    "token",
    "hostname",
    "version",
    "bytes",
    "files",
    "status",
    "error",
    "restore_point",
    "prefix",
    "key_id",
    "created_at",
    "lines",
    "message",
    "time",
    "op",
    "key",
    "create_only",
    "checksum_sha256",
    "upload_id",
    "part_number",
    "extra",
    "",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIELDS).prop_map(String::from),
        1 => "[a-z_]{0,10}",
    ]
}

const SPECIAL_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "a\u{0}b",
    "\u{1b}[2J",
    "\r\n",
    "nas1\u{202e}gpj.exe",
    "\u{200b}",
    "\u{feff}",
    "\u{2028}",
    "\u{e000}",
    "/srv/../etc",
    "/srv/./x",
    "..",
    "/",
    "relative/path",
    "/srv/restore",
    "0 3 * * *",
    "* * * * *",
    "*/5 * * * *",
    "0 0 31 2 *",
    "@hourly",
    "not cron",
    "succeeded",
    "failed",
    "info",
    "put",
    "complete_multipart",
    "2026-11-23T10:00:00Z",
    "9999-12-31T23:59:59Z",
    "-009999-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "not a time",
    "cfe_",
    "cfa_0",
    "0",
    "-1",
    "1",
    "99999999999999999999",
    "true",
    "null",
    "é",
    "😀",
    "\\",
    "\"",
    "%00",
    "a/b",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "us-east-1",
    "coffer",
];

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,16}",
        3 => select(SPECIAL_STRINGS).prop_map(String::from),
        1 => (select(vec!["a", "é", "\u{0}", "\u{202e}", "/x"]), 100..3000usize)
            .prop_map(|(s, n)| s.repeat(n)),
        1 => (65_000..70_000usize).prop_map(|n| "x".repeat(n)),
    ]
}

fn json_number() -> impl Strategy<Value = Value> {
    let special = vec![
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(i64::MAX as u64 + 1),
        json!(-1),
        json!(0),
        json!(1),
        json!(65535),
        json!(65536),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(1e308),
        json!(-1e308),
        json!(0.5),
        json!(-0.0),
        json!(1.0),
    ];
    prop_oneof![
        3 => select(special),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("not finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
    ]
}

fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => json_number(),
        4 => json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

fn query_gen() -> impl Strategy<Value = QueryGen> {
    let value = prop_oneof![
        3 => select(QUERY_VALUES).prop_map(QueryValue::Lit),
        2 => (any::<bool>(), 0..16usize).prop_map(|(b, pick)| QueryValue::Real { b, pick }),
        1 => "[a-zA-Z0-9%+._-]{0,12}".prop_map(QueryValue::Random),
    ];
    prop_oneof![
        3 => Just(QueryGen::None),
        4 => prop::collection::vec((select(QUERY_KEYS), value), 1..4).prop_map(QueryGen::Pairs),
        1 => "[a-z_=&%0-9+.-]{0,30}".prop_map(QueryGen::Raw),
    ]
}

fn header_value() -> impl Strategy<Value = HeaderValueGen> {
    prop_oneof![
        4 => select(HEADER_VALUES).prop_map(HeaderValueGen::Lit),
        1 => "[ -~]{0,40}".prop_map(HeaderValueGen::Random),
        1 => Just(HeaderValueGen::ChecksumOfBody),
    ]
}

fn signed_case() -> impl Strategy<Value = SignedCase> {
    let key = prop_oneof![
        4 => select(KEYS).prop_map(KeyGen::Pool),
        1 => Just(KeyGen::Long),
        1 => "[a-z]{1,8}(/[a-z.]{1,8}){0,3}".prop_map(KeyGen::Random),
        6 => Just(KeyGen::OfUpload),
    ];
    let upload = prop_oneof![
        1 => Just(UploadGen::None),
        4 => (0..8usize).prop_map(UploadGen::Tracked),
        1 => select(UPLOAD_IDS).prop_map(UploadGen::Lit),
    ];
    let part_number = prop_oneof![
        1 => Just(None),
        4 => select(vec![1u32, 2, 3]).prop_map(Some),
        1 => select(vec![0u32, 10_000, 10_001, 65_535, 65_536]).prop_map(Some),
    ];
    let checksum = prop_oneof![
        3 => Just(ChecksumGen::Absent),
        2 => Just(ChecksumGen::OfBody),
        1 => select(vec!["garbage", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]).prop_map(ChecksumGen::Lit),
        1 => any::<bool>().prop_map(ChecksumGen::Flag),
        1 => Just(ChecksumGen::Null),
        1 => Just(ChecksumGen::Number),
    ];
    let create_only = prop_oneof![
        6 => Just(None),
        1 => any::<bool>().prop_map(Some),
    ];
    let method = prop_oneof![
        8 => Just(None),
        1 => select(vec![Method::GET, Method::PUT, Method::HEAD, Method::POST, Method::DELETE, Method::PATCH])
            .prop_map(Some),
    ];
    let path_suffix = prop_oneof![
        8 => Just(None),
        1 => select(vec!["x", "/../x", "%2F..", "/", "%00"]).prop_map(Some),
    ];
    let header = prop_oneof![
        3 => (select(S3_HEADERS), header_value()).prop_map(|(n, v)| HeaderMut::Add(n, v)),
        1 => (0..4usize).prop_map(HeaderMut::Drop),
        1 => (0..4usize, header_value()).prop_map(|(i, v)| HeaderMut::Replace(i, v)),
    ];
    let query = prop_oneof![
        6 => Just(None),
        1 => (0..8usize).prop_map(|i| Some(QueryTamper::Drop(i))),
        1 => (0..8usize, "[a-zA-Z0-9%]{0,8}").prop_map(|(i, v)| Some(QueryTamper::Replace(i, v))),
        1 => select(QUERY_APPENDS).prop_map(|a| Some(QueryTamper::Append(a))),
        1 => (0..8usize).prop_map(|i| Some(QueryTamper::Duplicate(i))),
    ];
    (
        select(OPS),
        key,
        upload,
        part_number,
        checksum,
        create_only,
        method,
        path_suffix,
        prop::collection::vec(header, 0..3),
        query,
        (s3_body(), prop::option::weighted(0.8, xml_gen())),
    )
        .prop_map(
            |(
                op,
                key,
                upload,
                part_number,
                checksum,
                create_only,
                method,
                path_suffix,
                headers,
                query,
                (body, complete),
            )| SignedCase {
                op,
                key,
                upload,
                part_number,
                checksum,
                create_only,
                method,
                path_suffix,
                headers,
                query,
                body,
                complete,
            },
        )
}

fn xml_gen() -> impl Strategy<Value = XmlGen> {
    let part = (
        select(PART_NUMBERS),
        select(ETAGS),
        prop::option::of(select(XML_CHECKSUMS)),
    )
        .prop_map(|(number, etag, checksum)| XmlPart {
            number,
            etag,
            checksum,
        });
    prop_oneof![
        2 => prop::collection::vec(part, 0..4).prop_map(XmlGen::Parts),
        5 => (any::<bool>(), prop::bool::weighted(0.2), prop::bool::weighted(0.2))
            .prop_map(|(reverse, duplicate, unquote)| XmlGen::Tracked { reverse, duplicate, unquote }),
        1 => select(vec![64usize, 1100, 100_000]).prop_map(XmlGen::Deep),
        1 => select(XML_DOCS).prop_map(XmlGen::Lit),
        1 => "[<>/a-zA-Z0-9 =\"&;!?-]{0,80}".prop_map(XmlGen::Random),
    ]
}

fn s3_body() -> impl Strategy<Value = S3Body> {
    let mib5 = 5 * 1024 * 1024;
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..256).prop_map(S3Body::Bytes),
        1 => (any::<u8>(), select(vec![0usize, 1, 4096, mib5, mib5 + 1]))
            .prop_map(|(byte, len)| S3Body::Filled { byte, len }),
        2 => xml_gen().prop_map(S3Body::Xml),
    ]
}

fn unsigned_case() -> impl Strategy<Value = UnsignedCase> {
    let suffix = "[a-zA-Z0-9._%/-]{0,30}";
    let key = prop_oneof![
        3 => suffix.prop_map(RawKey::UnderA),
        1 => suffix.prop_map(RawKey::UnderB),
        1 => suffix.prop_map(RawKey::UnderRevoked),
        1 => select(RAW_KEYS).prop_map(RawKey::Lit),
        1 => "[a-zA-Z0-9._%/-]{0,40}".prop_map(RawKey::Random),
    ];
    let date = prop_oneof![
        2 => select(vec![0i64, -60, -3599, -3601, 299, 301, -86_400]).prop_map(Ok),
        1 => select(vec!["20991231T235959Z", "19700101T000000Z", "garbage", "99991231T235959Z", "20260230T250000Z", ""])
            .prop_map(Err),
    ];
    let sig = (
        select(vec!["AWS4-HMAC-SHA256", "", "HMAC"]),
        select(vec![
            "coffer-local/20260101/us-east-1/s3/aws4_request",
            "other/x",
            "",
            "coffer-local",
        ]),
        date,
        select(vec![
            "1",
            "60",
            "3600",
            "3601",
            "0",
            "-1",
            "18446744073709551616",
            "x",
            "",
        ]),
        select(vec![
            "host",
            "host;x-amz-checksum-sha256",
            "",
            ";;",
            "x-unknown",
            "host;range",
            "Host;IF-NONE-MATCH",
        ]),
        select(vec![
            "00",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "",
            "zz",
        ]),
        select(vec![
            "",
            "&uploads",
            "&uploadId=x",
            "&uploadId=x&partNumber=1",
            "&partNumber=99999",
            "&X-Amz-Security-Token=x",
            "&X-Amz-Date=20260101T000000Z",
        ]),
    )
        .prop_map(
            |(algorithm, credential, date, expires, signed_headers, signature, extra)| FakeSig {
                algorithm,
                credential,
                date,
                expires,
                signed_headers,
                signature,
                extra,
            },
        );
    let query = prop_oneof![
        1 => Just(RawQuery::None),
        2 => select(RAW_QUERIES).prop_map(RawQuery::Lit),
        4 => sig.prop_map(RawQuery::Sig),
        1 => "[a-zA-Z0-9_=&%.-]{0,40}".prop_map(RawQuery::Random),
    ];
    (
        select(vec![
            Method::GET,
            Method::PUT,
            Method::HEAD,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ]),
        select(BUCKETS),
        key,
        query,
        prop::collection::vec((select(S3_HEADERS), header_value()), 0..3),
        select(AUTHS),
        prop::collection::vec(any::<u8>(), 0..128),
    )
        .prop_map(
            |(method, bucket, key, query, headers, auth, body)| UnsignedCase {
                method,
                bucket,
                key,
                query,
                headers,
                auth,
                body,
            },
        )
}

// ------------------------------------------------------------------------------------
// The fixture: two tenants with everything in them, rebuilt when a case destroys part
// of it.
// ------------------------------------------------------------------------------------

struct Side {
    tenant: String,
    operator: String,
    operator_id: String,
    agent: Enrolled,
    job: String,
    /// Newest first; runs the cases queue join at the front (at most eight are kept).
    runs: Vec<String>,
    restore_points: Vec<String>,
    enrolment_ids: Vec<String>,
    /// The last work the agent claimed (for completions).
    work: Value,
    /// Whether that work's run may still be running (as far as the cases know).
    work_open: bool,
}

impl Side {
    /// The IDs a path parameter after `segment` names.
    fn typed(&self, segment: &str, revoked: Option<&Enrolled>) -> Vec<String> {
        match segment {
            "tenants" => vec![self.tenant.clone()],
            "operator-tokens" => vec![self.operator_id.clone()],
            "agents" => std::iter::once(&self.agent)
                .chain(revoked)
                .map(|a| a.agent_id.clone())
                .collect(),
            "destinations" => std::iter::once(&self.agent)
                .chain(revoked)
                .map(|a| a.destination_id.clone())
                .collect(),
            "jobs" => vec![self.job.clone()],
            // The run the agent claimed last first (the one progress and completions
            // can reach).
            "runs" => {
                let mut runs: Vec<String> = self.work["run_id"]
                    .as_str()
                    .map(String::from)
                    .into_iter()
                    .collect();
                runs.extend(
                    self.runs
                        .iter()
                        .filter(|r| Some(r.as_str()) != self.work["run_id"].as_str())
                        .cloned(),
                );
                runs
            }
            "restore-points" => self.restore_points.clone(),
            "enrolment-tokens" => self.enrolment_ids.clone(),
            "s3" => vec!["coffer".to_owned()],
            "{bucket}" => vec![
                format!("{}/data/existing", self.agent.prefix),
                format!("{}/mp/object", self.agent.prefix),
            ],
            _ => self.all(revoked),
        }
    }

    /// Every ID of the tenant.
    fn all(&self, revoked: Option<&Enrolled>) -> Vec<String> {
        let mut v = vec![
            self.tenant.clone(),
            self.operator_id.clone(),
            self.agent.agent_id.clone(),
            self.agent.destination_id.clone(),
            self.agent.repository_id.clone(),
            self.job.clone(),
        ];
        v.extend(self.runs.iter().cloned());
        v.extend(self.restore_points.iter().cloned());
        v.extend(self.enrolment_ids.iter().cloned());
        if let Some(r) = revoked {
            v.extend([
                r.agent_id.clone(),
                r.destination_id.clone(),
                r.repository_id.clone(),
            ]);
        }
        v
    }

    fn add_run(&mut self, id: &str) {
        self.runs.retain(|r| r != id);
        self.runs.insert(0, id.to_owned());
        self.runs.truncate(8);
    }
}

#[derive(Clone, Debug)]
struct Upload {
    id: String,
    key: String,
    /// Part number → (ETag as the store answered it, the part's checksum if sent).
    parts: BTreeMap<u16, (String, Option<String>)>,
}

struct Fixture {
    h: Harness,
    a: Side,
    b: Side,
    revoked: Enrolled,
    unused_token: String,
    /// Multipart uploads of agent A still open, as far as the cases know.
    uploads: Vec<Upload>,
    serial: u64,
    /// A case destroyed part of the fixture: rebuild it before the next.
    damaged: bool,
}

async fn ok_call(
    h: &Harness,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Value {
    let (status, answer) = h.call(method, path, Some(token), body).await;
    assert!(status.is_success(), "fixture: {path}: {status} {answer}");
    answer
}

async fn build_side(h: &Harness, name: &str) -> Side {
    let admin = h.admin.clone();
    let answer = ok_call(
        h,
        Method::POST,
        "/v1/admin/tenants",
        &admin,
        Some(json!({"name": name})),
    )
    .await;
    let tenant = answer["tenant"]["id"]
        .as_str()
        .expect("tenant id")
        .to_owned();
    let answer = ok_call(
        h,
        Method::POST,
        &format!("/v1/admin/tenants/{tenant}/operator-tokens"),
        &admin,
        Some(json!({"label": "ops"})),
    )
    .await;
    let operator = answer["token"].as_str().expect("token").to_owned();
    let operator_id = answer["id"].as_str().expect("token id").to_owned();
    let agent = h.enrol(&operator, "nas").await;
    let job = h.job(&operator, &agent.agent_id, "nightly").await;
    Side {
        tenant,
        operator,
        operator_id,
        agent,
        job,
        runs: Vec::new(),
        restore_points: Vec::new(),
        enrolment_ids: Vec::new(),
        work: Value::Null,
        work_open: false,
    }
}

async fn run_now(h: &Harness, side: &Side) -> String {
    let answer = ok_call(
        h,
        Method::POST,
        &format!("/v1/jobs/{}/run", side.job),
        &side.operator,
        None,
    )
    .await;
    answer["run"]["id"].as_str().expect("run id").to_owned()
}

async fn claim(h: &Harness, agent: &Enrolled) -> Value {
    let answer = ok_call(
        h,
        Method::GET,
        "/v1/agent/poll?wait_secs=0",
        &agent.api_key,
        None,
    )
    .await;
    answer["work"].clone()
}

fn completion(work: &Value, name: &str) -> Value {
    json!({"status": "succeeded", "bytes": 1, "files": 1, "restore_point": {
        "name": name, "prefix": work["spec"]["prefix"], "snapshot": "0123456789abcdef0123456789abcdef",
        "stored_bytes": 1, "content_bytes": 1, "files": 1,
        "created_at": "2026-11-23T10:00:00Z"}})
}

/// The `n`th `/`-separated segment of a path (0 is the empty one before the first `/`).
fn segment(path: &str, n: usize) -> &str {
    path.split('/').nth(n).unwrap_or_default()
}

fn upload_id_of(xml: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(xml);
    let start = text.find("<UploadId>")? + "<UploadId>".len();
    let end = text[start..].find("</UploadId>")? + start;
    Some(text[start..end].to_owned())
}

impl Fixture {
    async fn build() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let h = Harness::open(dir, |c| {
            c.enrol_per_minute = 1_000_000;
            c.auth_failures_per_minute = 1_000_000;
            c.agent_logs_per_minute = 1_000_000;
        });
        let mut a = build_side(&h, "tenant-a").await;
        let mut b = build_side(&h, "tenant-b").await;

        // A: a finished backup with its restore point, a cancelled run, a queued one.
        let done = run_now(&h, &a).await;
        let work = claim(&h, &a.agent).await;
        assert_eq!(work["run_id"], done.as_str());
        ok_call(
            &h,
            Method::POST,
            &format!("/v1/agent/runs/{done}/complete"),
            &a.agent.api_key,
            Some(completion(&work, "first")),
        )
        .await;
        a.work = work;
        let answer = ok_call(&h, Method::GET, "/v1/restore-points", &a.operator, None).await;
        a.restore_points = answer["restore_points"]
            .as_array()
            .expect("restore points")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(a.restore_points.len(), 1);
        let cancelled = run_now(&h, &a).await;
        ok_call(
            &h,
            Method::POST,
            &format!("/v1/runs/{cancelled}/cancel"),
            &a.operator,
            None,
        )
        .await;
        let queued = run_now(&h, &a).await;
        a.runs = vec![queued, cancelled, done];

        // B: a running run (claimed) and a queued one.
        let running = run_now(&h, &b).await;
        b.work = claim(&h, &b.agent).await;
        b.work_open = true;
        assert_eq!(b.work["run_id"], running.as_str());
        let queued = run_now(&h, &b).await;
        b.runs = vec![running, queued];

        // A third agent, revoked, and an enrolment token not used.
        let revoked = h.enrol(&a.operator, "old-nas").await;
        ok_call(
            &h,
            Method::POST,
            &format!("/v1/agents/{}/revoke", revoked.agent_id),
            &a.operator,
            None,
        )
        .await;
        let answer = ok_call(
            &h,
            Method::POST,
            "/v1/enrolment-tokens",
            &a.operator,
            Some(json!({"label": "spare"})),
        )
        .await;
        let unused_token = answer["token"].as_str().expect("token").to_owned();
        for side in [&mut a, &mut b] {
            let answer = ok_call(
                &h,
                Method::GET,
                "/v1/enrolment-tokens",
                &side.operator,
                None,
            )
            .await;
            side.enrolment_ids = answer["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .map(|t| t["id"].as_str().expect("id").to_owned())
                .collect();
        }

        let mut fixture = Fixture {
            h,
            a,
            b,
            revoked,
            unused_token,
            uploads: Vec::new(),
            serial: 0,
            damaged: false,
        };
        // The embedded store: an object, and multipart uploads with a part each.
        fixture.put_existing().await;
        for (key, checksums) in [("mp/object", false), ("mp/checked", true)] {
            fixture.open_upload(key, checksums).await;
        }
        fixture
    }

    /// Agent A's object `data/existing`.
    async fn put_existing(&self) {
        let data = b"an existing object".to_vec();
        let put = self
            .presign(
                json!({"op": "put", "key": "data/existing", "checksum_sha256": checksum(&data)}),
            )
            .await;
        let (status, _, _) = self.h.send_presigned(&put, data, &[]).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn presign(&self, body: Value) -> Value {
        let (status, answer) = self.h.presign(&self.a.agent.api_key, body).await;
        assert_eq!(status, StatusCode::OK, "fixture: presign: {answer}");
        answer
    }

    /// Creates a multipart upload on `key` (of agent A) with one part.
    async fn open_upload(&mut self, key: &str, checksums: bool) {
        let create = self
            .presign(json!({"op": "create_multipart", "key": key, "checksum_sha256": checksums}))
            .await;
        let (status, _, answer) = self.h.send_presigned(&create, Vec::new(), &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let id = upload_id_of(&answer).expect("upload ID");
        let part = vec![b'p'; 1024];
        let sum = checksum(&part);
        let mut ask = json!({"op": "upload_part", "key": key, "upload_id": id, "part_number": 1});
        if checksums {
            ask["checksum_sha256"] = json!(sum);
        }
        let signed = self.presign(ask).await;
        let (status, headers, answer) = self.h.send_presigned(&signed, part, &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let etag = headers["etag"].to_str().expect("etag").to_owned();
        let mut parts = BTreeMap::new();
        parts.insert(1, (etag, checksums.then_some(sum)));
        self.uploads.push(Upload {
            id,
            key: key.to_owned(),
            parts,
        });
    }

    fn side(&self, b: bool) -> &Side {
        if b {
            &self.b
        } else {
            &self.a
        }
    }

    fn authorization(&self, auth: Auth) -> Option<String> {
        let bearer = |t: &str| Some(format!("Bearer {t}"));
        match auth {
            Auth::None => None,
            Auth::Admin => bearer(&self.h.admin),
            Auth::OperatorA => bearer(&self.a.operator),
            Auth::OperatorB => bearer(&self.b.operator),
            Auth::AgentA => bearer(&self.a.agent.api_key),
            Auth::AgentB => bearer(&self.b.agent.api_key),
            Auth::RevokedAgent => bearer(&self.revoked.api_key),
            Auth::EnrolmentToken => bearer(&self.unused_token),
            Auth::Garbage => Some("Bearer garbage".to_owned()),
            Auth::Basic => Some("Basic abc".to_owned()),
            Auth::Huge => Some(format!("Bearer {}", "x".repeat(10 * 1024))),
            Auth::LooksLikeToken => bearer(&format!("cfo_{}", "0".repeat(64))),
        }
    }

    fn param(&self, p: &Param, segment: &str, caller_b: bool) -> String {
        match p {
            Param::Real { own, typed, pick } => {
                let b = *own == caller_b;
                let side = self.side(b);
                let revoked = (!b).then_some(&self.revoked);
                let ids = if *typed {
                    side.typed(segment, revoked)
                } else {
                    side.all(revoked)
                };
                if ids.is_empty() {
                    side.tenant.clone()
                } else {
                    ids[pick % ids.len()].clone()
                }
            }
            Param::Lit(s) => (*s).to_owned(),
            Param::Long(c) => c.to_string().repeat(500),
            Param::Random(s) => s.clone(),
        }
    }

    /// A plausible body for the route (`b`: the tenant the caller belongs to).
    fn example(&self, method: &Method, template: &str, variant: usize, b: bool) -> Option<Value> {
        let side = self.side(b);
        let n = self.serial;
        let ops = [
            "put",
            "get",
            "head",
            "delete",
            "create_multipart",
            "upload_part",
            "list_parts",
            "complete_multipart",
            "abort_multipart",
            "unknown",
        ];
        let upload = self.uploads.first();
        let job_agent = if variant % 3 == 2 {
            &self.revoked.agent_id
        } else {
            &side.agent.agent_id
        };
        Some(match (method.as_str(), template) {
            ("POST", "/v1/admin/tenants") => match variant % 2 {
                0 => json!({"name": format!("tenant-{n}")}),
                _ => json!({"name": format!("tenant-{n}"), "backend_id": "1"}),
            },
            ("POST", "/v1/admin/tenants/{id}/operator-tokens") => {
                json!({"label": format!("ops-{n}")})
            }
            ("POST", "/v1/admin/backends") => json!({
                "name": format!("backend-{n}"), "endpoint": "http://127.0.0.1:9/",
                "region": "us-east-1", "bucket": "coffer", "path_style": true,
                "access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret"}),
            ("POST", "/v1/enrolment-tokens") => {
                json!({"ttl_secs": 600, "label": format!("nas-{n}")})
            }
            ("POST", "/v1/jobs") => json!({
                "agent_id": job_agent,
                "name": format!("job-{n}"), "sources": ["/srv/data", "/home"],
                "schedule": "0 3 * * *", "level": 3,
                "retention": {"keep_last": 7, "keep_daily": 14, "keep_weekly": 4, "keep_monthly": 12}}),
            ("POST", "/v1/restore-points/{id}/restore") => {
                json!({"target": "/srv/restore", "paths": ["etc/hosts", "home"]})
            }
            ("POST", "/v1/restores") => json!({"items": [
                {"restore_point_id": self.a.restore_points.first(), "target": "/srv/restore", "paths": ["x"]},
                {"restore_point_id": "1", "target": "/srv/other"}]}),
            ("POST", "/v1/enroll") => match variant % 3 {
                2 => json!({"token": format!("cfe_{}", "0".repeat(64)), "hostname": "nas"}),
                _ => {
                    json!({"token": self.unused_token, "hostname": format!("nas-{n}"), "version": "0.1.0"})
                }
            },
            ("POST", "/v1/agent/heartbeat") => match variant % 2 {
                0 => json!({"version": "0.1.0"}),
                _ => json!({}),
            },
            ("POST", "/v1/agent/runs/{run_id}/progress") => json!({"bytes": 1024, "files": 3}),
            ("POST", "/v1/agent/runs/{run_id}/complete") => match variant % 3 {
                0 => {
                    let work = if side.work.is_null() {
                        &self.a.work
                    } else {
                        &side.work
                    };
                    completion(work, &format!("backup-{n}"))
                }
                1 => json!({"status": "failed", "bytes": 0, "files": 0, "error": "disk full"}),
                _ => json!({"status": "succeeded", "bytes": 10, "files": 1}),
            },
            ("POST", "/v1/agent/logs") => json!({"lines": [
                {"level": "info", "message": "started", "time": "2026-11-23T10:00:00Z"},
                {"level": "error", "message": "disk\u{1b}[2J full", "time": "2026-11-23T10:00:01Z"}]}),
            ("POST", "/v1/agent/presign") => {
                let op = ops[variant % ops.len()];
                json!({"op": op, "key": upload.map_or("data/k", |u| u.key.as_str()),
                       "upload_id": upload.map(|u| u.id.clone()), "part_number": 2,
                       "checksum_sha256": checksum(b"x")})
            }
            _ => return None,
        })
    }
}

// ------------------------------------------------------------------------------------
// Requests and answers.
// ------------------------------------------------------------------------------------

/// A request as sent.
struct Sent {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}… ({} bytes in all)", text.len())
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.method, shorten(&self.uri, 2000))?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {}", shorten(value, 300))?;
        }
        let body = format!("{:?}", String::from_utf8_lossy(&self.body));
        write!(
            f,
            "body ({} bytes): {}",
            self.body.len(),
            shorten(&body, 1500)
        )
    }
}

/// Percent-encodes what cannot stand in a URI's path or query as it is (`%` stays, so
/// bad escapes get through as such).
fn encode_uri_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%?".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

/// Whether a 5xx is one of the two allowed: S3's `SlowDown`, or a destination probe
/// that could not reach its store.
fn allowed(status: StatusCode, s3: bool, body: &[u8]) -> bool {
    if !status.is_server_error() {
        return true;
    }
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return false;
    }
    if s3 {
        return String::from_utf8_lossy(body).contains("<Code>SlowDown</Code>");
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v["error"]["code"] == "unavailable"
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the destination probe"))
    })
}

/// The server's log, collected per request.
static SERVER_LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static ECHO_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut log = SERVER_LOG.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() < 256 * 1024 {
            log.extend_from_slice(buf);
        }
        if ECHO_LOG.load(std::sync::atomic::Ordering::Relaxed) {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn collect_server_log() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) => {
            ECHO_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing_subscriber::EnvFilter::new(f)
        }
        Err(_) => tracing_subscriber::EnvFilter::new("warn"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .try_init();
}

fn take_server_log() -> String {
    let mut log = SERVER_LOG.lock().unwrap_or_else(PoisonError::into_inner);
    let text = String::from_utf8_lossy(&log).into_owned();
    log.clear();
    text
}

#[derive(Default)]
struct Stats {
    /// Cases run (shrinking included).
    cases: u64,
    requests: u64,
    statuses: BTreeMap<u16, u64>,
    /// Per route (or store operation): requests, and those answered 2xx.
    routes: BTreeMap<String, (u64, u64)>,
    unsendable: u64,
    rebuilds: u64,
    rebuild_time: Duration,
    /// The slowest request and how long it took.
    slowest: (Duration, String),
}

type Answer = (StatusCode, HeaderMap, Vec<u8>);

/// A request answered with a 5xx not allowed, a panic, or not at all.
struct Failure {
    /// What went wrong where, to tell failures apart.
    kind: String,
    /// The request, the answer and the server's log.
    message: String,
}

/// The server's first error line, without its time and incident number.
fn log_signature(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains(" ERROR ") && !l.contains("tower_http"))
        .map(|l| {
            let l = l.split_once(' ').map_or(l, |(_, rest)| rest);
            l.split(" incident=").next().unwrap_or(l).to_owned()
        })
        .next()
        .unwrap_or_default()
}

impl Fixture {
    /// Sends one request; `Err` (with the request, the answer and the server's log) if
    /// the answer is a 5xx not allowed, a panic, or no answer in time.
    async fn exchange(
        &self,
        sent: &Sent,
        label: &str,
        stats: &mut Stats,
    ) -> Result<Option<Answer>, Failure> {
        let mut builder = Request::builder()
            .method(sent.method.clone())
            .uri(sent.uri.as_str());
        for (name, value) in &sent.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let Ok(request) = builder.body(Body::from(sent.body.clone())) else {
            // Not a request HTTP can carry (no client can send it).
            stats.unsendable += 1;
            return Ok(None);
        };
        take_server_log();
        let sent_at = Instant::now();
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            AssertUnwindSafe(self.h.send(request)).catch_unwind(),
        )
        .await;
        let (status, headers, body) = match answer {
            Err(_) => {
                return Err(Failure {
                    kind: format!("no answer: {label}"),
                    message: format!(
                        "no answer within {REQUEST_TIMEOUT:?} to\n{sent}\n--- server log ---\n{}",
                        take_server_log()
                    ),
                })
            }
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Err(Failure {
                    kind: format!("panic: {label}: {what}"),
                    message: format!(
                        "the server panicked ({what}) on\n{sent}\n--- server log ---\n{}",
                        take_server_log()
                    ),
                });
            }
            Ok(Ok(answer)) => answer,
        };
        let took = sent_at.elapsed();
        if took > stats.slowest.0 {
            stats.slowest = (
                took,
                format!("{} {} ({label})", sent.method, shorten(&sent.uri, 200)),
            );
        }
        stats.requests += 1;
        *stats.statuses.entry(status.as_u16()).or_default() += 1;
        let entry = stats.routes.entry(label.to_owned()).or_default();
        entry.0 += 1;
        if status.is_success() {
            entry.1 += 1;
        }
        if !allowed(status, sent.uri.starts_with("/s3/"), &body) {
            // Audit rows and the like are written after the answer: give them a moment
            // to log their part too.
            self.h.state.background.idle().await;
            let log = take_server_log();
            return Err(Failure {
                kind: format!("{status}: {label}: {}", log_signature(&log)),
                message: format!(
                    "{status} answer to a request a client can send:\n--- request ---\n{sent}\n\
                     --- answer ---\n{}\n--- server log ---\n{log}",
                    shorten(&String::from_utf8_lossy(&body), 4000),
                ),
            });
        }
        Ok(Some((status, headers, body)))
    }

    async fn api(&mut self, c: &ApiCase, stats: &mut Stats) -> Result<(), Failure> {
        let (template, route_method) = match &c.target {
            Target::Route(r) => (Some(r.template.as_str()), r.method.clone()),
            Target::Unknown(_) => (None, Method::GET),
        };
        let method = c.method.clone().unwrap_or(route_method.clone());
        let auth = match c.auth {
            AuthGen::Any(a) => a,
            AuthGen::Fitting { b } => match template {
                Some(t) if t.starts_with("/v1/admin/") => Auth::Admin,
                Some(t) if t.starts_with("/v1/agent/") && b => Auth::AgentB,
                Some(t) if t.starts_with("/v1/agent/") => Auth::AgentA,
                Some(t) if t.starts_with("/v1/enroll") || !t.starts_with("/v1/") => Auth::None,
                Some(_) if b => Auth::OperatorB,
                Some(_) => Auth::OperatorA,
                None => Auth::None,
            },
        };
        let side_b = matches!(auth, Auth::OperatorB | Auth::AgentB);
        let agent_run = template.is_some_and(|t| t.starts_with("/v1/agent/runs/"));
        if agent_run && c.method.is_none() {
            self.open_work(side_b, stats).await?;
        }
        // The path, its parameters filled in.
        let path = match template {
            Some(template) => {
                let mut out = String::new();
                let mut params = c.params.iter();
                let mut previous = "";
                for segment in template.split('/').skip(1) {
                    out.push('/');
                    if segment.starts_with('{') {
                        let p = params.next().unwrap_or(&Param::Lit("1"));
                        out.push_str(&self.param(p, previous, side_b));
                    } else {
                        out.push_str(segment);
                    }
                    previous = segment;
                }
                out
            }
            None => match &c.target {
                Target::Unknown(p) => p.clone(),
                Target::Route(r) => r.template.clone(),
            },
        };
        let path = encode_uri_part(&path);
        let query = if path == "/v1/agent/poll" {
            // Never a wait: every value here answers at once (or is refused).
            let mut q = format!("wait_secs={}", c.poll_wait);
            if let QueryGen::Pairs(pairs) = &c.query {
                for (k, v) in pairs.iter().filter(|(k, _)| *k != "wait_secs") {
                    q.push_str(&format!("&{k}={}", self.query_value(v)));
                }
            }
            Some(q)
        } else {
            match &c.query {
                QueryGen::None => None,
                QueryGen::Pairs(pairs) => Some(
                    pairs
                        .iter()
                        .map(|(k, v)| format!("{k}={}", self.query_value(v)))
                        .collect::<Vec<_>>()
                        .join("&"),
                ),
                QueryGen::Raw(r) => Some(r.clone()),
            }
        };
        let uri = match query {
            Some(q) => format!("{path}?{}", encode_uri_part(&q)),
            None => path.clone(),
        };
        let mut body = match &c.body {
            BodyGen::None => Vec::new(),
            BodyGen::Example { variant, mutations } => {
                let base = template
                    .and_then(|t| self.example(&route_method, t, *variant, side_b))
                    .unwrap_or_else(|| json!({}));
                mutate(base, mutations)
            }
            BodyGen::Json(v) => v.to_string().into_bytes(),
            BodyGen::Bytes(b) => b.clone(),
            BodyGen::Text(t) => t.as_bytes().to_vec(),
            BodyGen::Nested { depth, objects } => {
                if *objects {
                    format!("{}1{}", "{\"a\":".repeat(*depth), "}".repeat(*depth)).into_bytes()
                } else {
                    format!("{}{}", "[".repeat(*depth), "]".repeat(*depth)).into_bytes()
                }
            }
        };
        if path == "/v1/admin/backends" {
            body = offline_backend(&body, c.endpoint);
        }
        let mut headers = Vec::new();
        if let Some(a) = self.authorization(auth) {
            headers.push(("authorization".to_owned(), a));
        }
        if let Some(ct) = c.content_type {
            headers.push(("content-type".to_owned(), ct.to_owned()));
        }
        let sent = Sent {
            method: method.clone(),
            uri,
            headers,
            body,
        };
        let label = match template {
            Some(t) if c.method.is_none() => format!("{method} {t}"),
            Some(_) => "another method on a documented path".to_owned(),
            None => "unknown path".to_owned(),
        };
        let Some((status, _, answer)) = self.exchange(&sent, &label, stats).await? else {
            return Ok(());
        };
        // A completion, or a refusal because the run is not running: claim another
        // before the next progress or completion.
        if agent_run
            && (status == StatusCode::CONFLICT
                || (status.is_success() && template.is_some_and(|t| t.ends_with("/complete"))))
        {
            if side_b {
                self.b.work_open = false;
            } else {
                self.a.work_open = false;
            }
        }
        if status.is_success() && c.method.is_none() {
            if let Some(t) = template {
                self.learn(&route_method, t, &path, side_b, &answer, stats)
                    .await?;
            }
        }
        Ok(())
    }

    fn query_value(&self, v: &QueryValue) -> String {
        match v {
            QueryValue::Lit(s) => (*s).to_owned(),
            QueryValue::Real { b, pick } => {
                let ids = self.side(*b).all(None);
                ids[pick % ids.len()].clone()
            }
            QueryValue::Random(s) => s.clone(),
        }
    }

    /// Keeps up with what a successful request changed: new runs, claimed work, a
    /// rotated admin token, a used or revoked enrolment token; marks the fixture for a
    /// rebuild if the request revoked or deleted one of its objects.
    async fn learn(
        &mut self,
        method: &Method,
        template: &str,
        path: &str,
        side_b: bool,
        answer: &[u8],
        stats: &mut Stats,
    ) -> Result<(), Failure> {
        let value: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
        let side = if side_b { &mut self.b } else { &mut self.a };
        if let Some(run) = value["run"]["id"].as_str() {
            side.add_run(run);
        }
        if let Some(run) = value["work"]["run_id"].as_str() {
            side.add_run(run);
            side.work = value["work"].clone();
            side.work_open = true;
        }
        if template == "/v1/runs/{id}/cancel"
            && side.work["run_id"].as_str() == Some(segment(path, 3))
        {
            side.work_open = false;
        }
        if let Some(results) = value["results"].as_array() {
            for run in results.iter().filter_map(|r| r["run_id"].as_str()) {
                side.add_run(run);
            }
        }
        match (method.as_str(), template) {
            ("POST", "/v1/admin/token/rotate") => {
                self.h.admin = value["token"].as_str().unwrap_or_default().to_owned();
            }
            // A fixture object revoked or deleted: a new one in its place.
            ("POST", "/v1/admin/tenants/{id}/operator-tokens/{token_id}/revoke") => {
                for b in [false, true] {
                    if segment(path, 6) == self.side(b).operator_id {
                        let tenant = self.side(b).tenant.clone();
                        let answer = ok_call(
                            &self.h,
                            Method::POST,
                            &format!("/v1/admin/tenants/{tenant}/operator-tokens"),
                            &self.h.admin,
                            Some(json!({"label": "ops"})),
                        )
                        .await;
                        let side = if b { &mut self.b } else { &mut self.a };
                        side.operator = answer["token"].as_str().unwrap_or_default().to_owned();
                        side.operator_id = answer["id"].as_str().unwrap_or_default().to_owned();
                    }
                }
            }
            ("POST", "/v1/agents/{id}/revoke") => {
                for b in [false, true] {
                    if segment(path, 3) == self.side(b).agent.agent_id {
                        self.replace_agent(b).await;
                    }
                }
            }
            ("DELETE", "/v1/jobs/{id}") => {
                for b in [false, true] {
                    if segment(path, 3) == self.side(b).job {
                        let name = format!("nightly-{}", self.serial);
                        let side = self.side(b);
                        let job = self
                            .h
                            .job(&side.operator, &side.agent.agent_id, &name)
                            .await;
                        if b {
                            self.b.job = job;
                        } else {
                            self.a.job = job;
                        }
                    }
                }
            }
            ("POST", "/v1/enroll") | ("POST", "/v1/enrolment-tokens/{id}/revoke") => {
                // A new spare enrolment token (its request checked like any other).
                let sent = Sent {
                    method: Method::POST,
                    uri: "/v1/enrolment-tokens".to_owned(),
                    headers: vec![
                        (
                            "authorization".to_owned(),
                            format!("Bearer {}", self.a.operator),
                        ),
                        ("content-type".to_owned(), "application/json".to_owned()),
                    ],
                    body: br#"{"label": "spare"}"#.to_vec(),
                };
                match self
                    .exchange(&sent, "POST /v1/enrolment-tokens", stats)
                    .await?
                {
                    Some((StatusCode::CREATED, _, answer)) => {
                        let value: Value = serde_json::from_slice(&answer).unwrap_or_default();
                        self.unused_token = value["token"].as_str().unwrap_or_default().to_owned();
                        let id = value["id"].as_str().unwrap_or_default().to_owned();
                        self.a.enrolment_ids.push(id);
                    }
                    // Operator A's token was revoked meanwhile.
                    _ => self.damaged = true,
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Makes sure the side's agent has claimed a run that is running (queues a backup
    /// and claims it, both requests checked like any other).
    async fn open_work(&mut self, b: bool, stats: &mut Stats) -> Result<(), Failure> {
        if self.side(b).work_open {
            return Ok(());
        }
        let side = self.side(b);
        let queue = Sent {
            method: Method::POST,
            uri: format!("/v1/jobs/{}/run", side.job),
            headers: vec![(
                "authorization".to_owned(),
                format!("Bearer {}", side.operator),
            )],
            body: Vec::new(),
        };
        let poll = Sent {
            method: Method::GET,
            uri: "/v1/agent/poll?wait_secs=0".to_owned(),
            headers: vec![(
                "authorization".to_owned(),
                format!("Bearer {}", side.agent.api_key),
            )],
            body: Vec::new(),
        };
        self.exchange(&queue, "POST /v1/jobs/{id}/run (fixture)", stats)
            .await?;
        if let Some((StatusCode::OK, _, answer)) = self
            .exchange(&poll, "GET /v1/agent/poll (fixture)", stats)
            .await?
        {
            let value: Value = serde_json::from_slice(&answer).unwrap_or_default();
            if let Some(run) = value["work"]["run_id"].as_str() {
                let side = if b { &mut self.b } else { &mut self.a };
                side.add_run(run);
                side.work = value["work"].clone();
                side.work_open = true;
            }
        }
        Ok(())
    }

    /// A new agent (with a job) in place of the side's, revoked by a case; on side A
    /// also a restore point of it, and the embedded store's object and uploads under
    /// its destination.
    async fn replace_agent(&mut self, b: bool) {
        let operator = self.side(b).operator.clone();
        let agent = self
            .h
            .enrol(&operator, &format!("nas-{}", self.serial))
            .await;
        let job = self.h.job(&operator, &agent.agent_id, "nightly").await;
        let side = if b { &mut self.b } else { &mut self.a };
        side.agent = agent;
        side.job = job;
        side.work = Value::Null;
        side.work_open = false;
        if b {
            return;
        }
        let run = run_now(&self.h, &self.a).await;
        let work = claim(&self.h, &self.a.agent).await;
        ok_call(
            &self.h,
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            &self.a.agent.api_key,
            Some(completion(&work, "first")),
        )
        .await;
        self.a.add_run(&run);
        let answer = ok_call(
            &self.h,
            Method::GET,
            "/v1/restore-points?limit=1",
            &self.a.operator,
            None,
        )
        .await;
        if let Some(rp) = answer["restore_points"][0]["id"].as_str() {
            self.a.restore_points.insert(0, rp.to_owned());
        }
        self.put_existing().await;
        self.uploads.clear();
    }

    /// Keeps two uploads open, each with a part (making new ones as the cases complete
    /// or abort them; every request checked like any other).
    async fn ensure_uploads(&mut self, stats: &mut Stats) -> Result<(), Failure> {
        while self.uploads.len() < 2 {
            let key = format!("mp/object-{}-{}", self.serial, self.uploads.len());
            let checksums = self.serial.is_multiple_of(2);
            let ask = json!({"op": "create_multipart", "key": key, "checksum_sha256": checksums});
            let Some(signed) = self.presigned(&ask, stats).await? else {
                self.damaged = true;
                return Ok(());
            };
            let sent = presigned_request(&signed, Vec::new());
            let id = match self
                .exchange(&sent, "s3 create_multipart (fixture)", stats)
                .await?
            {
                Some((StatusCode::OK, _, answer)) => upload_id_of(&answer).unwrap_or_default(),
                _ => {
                    self.damaged = true;
                    return Ok(());
                }
            };
            let part = vec![b'p'; 1024];
            let sum = checksum(&part);
            let mut ask =
                json!({"op": "upload_part", "key": key, "upload_id": id, "part_number": 1});
            if checksums {
                ask["checksum_sha256"] = json!(sum);
            }
            let mut parts = BTreeMap::new();
            if let Some(signed) = self.presigned(&ask, stats).await? {
                let sent = presigned_request(&signed, part);
                if let Some((StatusCode::OK, headers, _)) = self
                    .exchange(&sent, "s3 upload_part (fixture)", stats)
                    .await?
                {
                    let etag = headers
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    parts.insert(1, (etag, checksums.then_some(sum)));
                }
            }
            self.uploads.push(Upload { id, key, parts });
        }
        Ok(())
    }

    /// Asks agent A's pre-signed request (the request checked like any other).
    async fn presigned(&self, ask: &Value, stats: &mut Stats) -> Result<Option<Value>, Failure> {
        let sent = Sent {
            method: Method::POST,
            uri: "/v1/agent/presign".to_owned(),
            headers: vec![
                (
                    "authorization".to_owned(),
                    format!("Bearer {}", self.a.agent.api_key),
                ),
                ("content-type".to_owned(), "application/json".to_owned()),
            ],
            body: ask.to_string().into_bytes(),
        };
        match self
            .exchange(&sent, "POST /v1/agent/presign", stats)
            .await?
        {
            Some((StatusCode::OK, _, answer)) => Ok(serde_json::from_slice(&answer).ok()),
            _ => Ok(None),
        }
    }

    async fn signed(&mut self, c: &SignedCase, stats: &mut Stats) -> Result<(), Failure> {
        self.ensure_uploads(stats).await?;
        if self.damaged {
            return Ok(());
        }
        let (upload_id, upload_key, tracked) = match &c.upload {
            UploadGen::None => (None, None, None),
            UploadGen::Tracked(i) => {
                let i = i % self.uploads.len();
                let u = &self.uploads[i];
                (Some(u.id.clone()), Some(u.key.clone()), Some(i))
            }
            UploadGen::Lit(s) => (Some((*s).to_owned()), None, None),
        };
        let key = match &c.key {
            KeyGen::Pool(k) => (*k).to_owned(),
            KeyGen::Long => format!("s/{}", "a".repeat(300)),
            KeyGen::Random(k) => k.clone(),
            KeyGen::OfUpload => upload_key.unwrap_or_else(|| "mp/object".to_owned()),
        };
        let body = match (&c.body, &c.complete) {
            (_, Some(x)) if c.op == "complete_multipart" => {
                xml(x, tracked.map(|i| &self.uploads[i]))
            }
            (S3Body::Bytes(b), _) => b.clone(),
            (S3Body::Filled { byte, len }, _) => vec![*byte; *len],
            (S3Body::Xml(x), _) => xml(x, tracked.map(|i| &self.uploads[i])),
        };
        let mut ask = json!({"op": c.op, "key": key});
        if let Some(u) = &upload_id {
            ask["upload_id"] = json!(u);
        }
        if let Some(n) = c.part_number {
            ask["part_number"] = json!(n);
        }
        match &c.checksum {
            ChecksumGen::Absent => {}
            ChecksumGen::OfBody => ask["checksum_sha256"] = json!(checksum(&body)),
            ChecksumGen::Lit(s) => ask["checksum_sha256"] = json!(s),
            ChecksumGen::Flag(f) => ask["checksum_sha256"] = json!(f),
            ChecksumGen::Null => ask["checksum_sha256"] = Value::Null,
            ChecksumGen::Number => ask["checksum_sha256"] = json!(5),
        }
        if let Some(f) = c.create_only {
            ask["create_only"] = json!(f);
        }
        let Some(signed) = self.presigned(&ask, stats).await? else {
            return Ok(());
        };
        let mut sent = presigned_request(&signed, body);
        // Tampering: method, path, query, headers.
        if let Some(m) = &c.method {
            sent.method = m.clone();
        }
        let (path, query) = match sent.uri.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (sent.uri.clone(), None),
        };
        let path = match c.path_suffix {
            Some(s) => format!("{path}{s}"),
            None => path,
        };
        let mut pairs: Vec<String> = query
            .map(|q| q.split('&').map(String::from).collect())
            .unwrap_or_default();
        if !pairs.is_empty() {
            let n = pairs.len();
            match &c.query {
                None => {}
                Some(QueryTamper::Drop(i)) => {
                    pairs.remove(i % n);
                }
                Some(QueryTamper::Replace(i, v)) => {
                    let name = pairs[i % n]
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    pairs[i % n] = format!("{name}={v}");
                }
                Some(QueryTamper::Append(a)) => pairs.push((*a).to_owned()),
                Some(QueryTamper::Duplicate(i)) => pairs.push(pairs[i % n].clone()),
            }
        }
        sent.uri = if pairs.is_empty() {
            path
        } else {
            format!("{path}?{}", pairs.join("&"))
        };
        for m in &c.headers {
            let n = sent.headers.len();
            match m {
                HeaderMut::Add(name, v) => {
                    let value = header_value_of(v, &sent.body);
                    sent.headers.push(((*name).to_owned(), value));
                }
                HeaderMut::Drop(i) if n > 0 => {
                    sent.headers.remove(i % n);
                }
                HeaderMut::Replace(i, v) if n > 0 => {
                    sent.headers[i % n].1 = header_value_of(v, &sent.body);
                }
                _ => {}
            }
        }
        let label = format!("s3 {} (pre-signed)", c.op);
        let Some((status, headers, answer)) = self.exchange(&sent, &label, stats).await? else {
            return Ok(());
        };
        if !status.is_success() {
            return Ok(());
        }
        // Keep up with the uploads (a success means the signature held: the operation
        // is the one asked for).
        match c.op {
            "create_multipart" => {
                if let Some(id) = upload_id_of(&answer) {
                    self.uploads.push(Upload {
                        id,
                        key,
                        parts: BTreeMap::new(),
                    });
                    if self.uploads.len() > 4 {
                        self.uploads.remove(0);
                    }
                }
            }
            "upload_part" => {
                let etag = headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let sum = match &c.checksum {
                    ChecksumGen::OfBody => Some(checksum(&sent.body)),
                    _ => None,
                };
                if let (Some(u), Some(n)) = (
                    self.uploads
                        .iter_mut()
                        .find(|u| Some(&u.id) == upload_id.as_ref()),
                    c.part_number.and_then(|n| u16::try_from(n).ok()),
                ) {
                    u.parts.insert(n, (etag, sum));
                }
            }
            "complete_multipart" | "abort_multipart" => {
                self.uploads.retain(|u| Some(&u.id) != upload_id.as_ref());
            }
            _ => {}
        }
        Ok(())
    }

    async fn unsigned(&mut self, c: &UnsignedCase, stats: &mut Stats) -> Result<(), Failure> {
        let key = match &c.key {
            RawKey::UnderA(s) => format!("{}/{s}", self.a.agent.prefix),
            RawKey::UnderB(s) => format!("{}/{s}", self.b.agent.prefix),
            RawKey::UnderRevoked(s) => format!("{}/{s}", self.revoked.prefix),
            RawKey::Lit(s) => (*s).to_owned(),
            RawKey::Random(s) => s.clone(),
        };
        let path = encode_uri_part(&format!("/s3/{}/{key}", c.bucket));
        let query = match &c.query {
            RawQuery::None => None,
            RawQuery::Lit(q) => Some((*q).to_owned()),
            RawQuery::Random(q) => Some(q.clone()),
            RawQuery::Sig(s) => {
                let date = match s.date {
                    Ok(offset) => {
                        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + offset)
                            .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
                            .unwrap_or_default()
                    }
                    Err(lit) => lit.to_owned(),
                };
                Some(format!(
                    "X-Amz-Algorithm={}&X-Amz-Credential={}&X-Amz-Date={date}&X-Amz-Expires={}\
                     &X-Amz-SignedHeaders={}&X-Amz-Signature={}{}",
                    s.algorithm, s.credential, s.expires, s.signed_headers, s.signature, s.extra
                ))
            }
        };
        let uri = match query {
            Some(q) => format!("{path}?{}", encode_uri_part(&q)),
            None => path,
        };
        let mut headers: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), header_value_of(v, &c.body)))
            .collect();
        if let Some(a) = self.authorization(c.auth) {
            headers.push(("authorization".to_owned(), a));
        }
        let sent = Sent {
            method: c.method.clone(),
            uri,
            headers,
            body: c.body.clone(),
        };
        self.exchange(&sent, "s3 (unsigned)", stats).await?;
        Ok(())
    }
}

/// The request a pre-signed answer describes (as `Harness::send_presigned` sends it).
fn presigned_request(signed: &Value, body: Vec<u8>) -> Sent {
    let url = url::Url::parse(signed["url"].as_str().unwrap_or_default()).expect("pre-signed URL");
    let uri = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let method = signed["method"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .unwrap_or(Method::GET);
    let headers = signed["headers"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or_default().to_owned(),
                        p[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Sent {
        method,
        uri,
        headers,
        body,
    }
}

fn header_value_of(v: &HeaderValueGen, body: &[u8]) -> String {
    match v {
        HeaderValueGen::Lit(s) => (*s).to_owned(),
        HeaderValueGen::Random(s) => s.clone(),
        HeaderValueGen::ChecksumOfBody => checksum(body),
    }
}

/// A `CompleteMultipartUpload` body.
fn xml(x: &XmlGen, upload: Option<&Upload>) -> Vec<u8> {
    let part = |number: &str, etag: &str, sum: Option<&str>| {
        let sum = sum.map_or_else(String::new, |s| {
            format!("<ChecksumSHA256>{s}</ChecksumSHA256>")
        });
        format!("<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag>{sum}</Part>")
    };
    let doc = |parts: Vec<String>| {
        format!(
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{}</CompleteMultipartUpload>",
            parts.concat()
        )
    };
    let text = match x {
        XmlGen::Parts(parts) => doc(parts
            .iter()
            .map(|p| part(p.number, p.etag, p.checksum))
            .collect()),
        XmlGen::Tracked {
            reverse,
            duplicate,
            unquote,
        } => {
            let mut parts: Vec<String> = upload
                .map(|u| {
                    u.parts
                        .iter()
                        .map(|(n, (etag, sum))| {
                            let etag = if *unquote {
                                etag.trim_matches('"')
                            } else {
                                etag
                            };
                            part(&n.to_string(), etag, sum.as_deref())
                        })
                        .collect()
                })
                .unwrap_or_default();
            if *reverse {
                parts.reverse();
            }
            if *duplicate {
                if let Some(first) = parts.first().cloned() {
                    parts.push(first);
                }
            }
            doc(parts)
        }
        XmlGen::Deep(depth) => format!("{}{}", "<a>".repeat(*depth), "</a>".repeat(*depth)),
        XmlGen::Lit(s) => (*s).to_owned(),
        XmlGen::Random(s) => s.clone(),
    };
    text.into_bytes()
}

/// A backend registration that cannot leave the machine: whatever the mutations did,
/// a JSON object gets `endpoint` (a closed loopback port, or no URL) and path-style
/// addressing (virtual-host style would put the bucket in a host name to look up).
/// Anything else is not JSON the server can read either.
fn offline_backend(body: &[u8], endpoint: &str) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut fields)) => {
            fields.insert("endpoint".to_owned(), json!(endpoint));
            if fields.contains_key("path_style") {
                fields.insert("path_style".to_owned(), json!(true));
            }
            Value::Object(fields).to_string().into_bytes()
        }
        _ => body.to_vec(),
    }
}

/// One step into a JSON value.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every node's path, and whether it is an object.
fn nodes(v: &Value, at: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, bool)>) {
    out.push((at.clone(), v.is_object()));
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Step::Key(k.clone()));
                nodes(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Step::Index(i));
                nodes(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    let mut v = v;
    for step in path {
        v = match step {
            Step::Key(k) => v.get_mut(k.as_str())?,
            Step::Index(i) => v.get_mut(*i)?,
        };
    }
    Some(v)
}

/// An example body with the mutations applied, as JSON text.
fn mutate(mut body: Value, mutations: &[Mutation]) -> Vec<u8> {
    let mut raw: Vec<(String, &str)> = Vec::new();
    for m in mutations {
        let mut all = Vec::new();
        nodes(&body, &mut Vec::new(), &mut all);
        // Every node but the root (which `Add` may use).
        let inner: Vec<&Vec<Step>> = all
            .iter()
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty())
            .collect();
        match m {
            Mutation::Drop(i) if !inner.is_empty() => {
                let path = inner[i % inner.len()];
                let (last, parent) = path.split_last().expect("not the root");
                if let Some(parent) = node_mut(&mut body, parent) {
                    match (last, parent) {
                        (Step::Key(k), Value::Object(o)) => {
                            o.remove(k);
                        }
                        (Step::Index(j), Value::Array(a)) => {
                            a.remove(*j);
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Set(i, v) if !inner.is_empty() => {
                let path = inner[i % inner.len()].clone();
                if let Some(node) = node_mut(&mut body, &path) {
                    *node = v.clone();
                }
            }
            Mutation::SetRaw(i, text) if !inner.is_empty() => {
                let path = inner[i % inner.len()].clone();
                let marker = format!("@@raw-{}@@", raw.len());
                if let Some(node) = node_mut(&mut body, &path) {
                    *node = json!(marker);
                    raw.push((marker, text));
                }
            }
            Mutation::Add(i, name, v) => {
                let objects: Vec<&Vec<Step>> = all
                    .iter()
                    .filter(|(_, object)| *object)
                    .map(|(p, _)| p)
                    .collect();
                if !objects.is_empty() {
                    let path = objects[i % objects.len()].clone();
                    if let Some(Value::Object(o)) = node_mut(&mut body, &path) {
                        o.insert(name.clone(), v.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut text = body.to_string();
    for (marker, replacement) in raw {
        text = text.replace(&format!("\"{marker}\""), replacement);
    }
    text.into_bytes()
}

// ------------------------------------------------------------------------------------
// The test.
// ------------------------------------------------------------------------------------

#[test]
fn no_request_gets_a_500() {
    collect_server_log();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let routes = documented_routes();
    let route_count = routes.len();

    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    // The server's state carries over from case to case: shrinking replays cases on a
    // changed server, so it is kept short; and no regression files are written.
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = 256;
    }
    config.failure_persistence = None;
    let cases = config.cases;
    let mut runner = TestRunner::new(config);

    let started = Instant::now();
    let fixture = RefCell::new(rt.block_on(Fixture::build()));
    let stats = RefCell::new(Stats::default());
    let first_failure: RefCell<Option<String>> = RefCell::new(None);
    // NO_500_KEEP_GOING=1: record every kind of failure and go on, to list them all
    // at the end (instead of stopping at the first and shrinking it).
    let keep_going = std::env::var_os("NO_500_KEEP_GOING").is_some();
    let failures: RefCell<BTreeMap<String, (u64, String)>> = RefCell::new(BTreeMap::new());
    let outcome = runner.run(&case(routes), |case| {
        let mut fx = fixture.borrow_mut();
        let mut stats = stats.borrow_mut();
        stats.cases += 1;
        let result = rt.block_on(async {
            if fx.damaged {
                let t = Instant::now();
                *fx = Fixture::build().await;
                stats.rebuilds += 1;
                stats.rebuild_time += t.elapsed();
            }
            fx.serial += 1;
            match &case {
                Case::Api(c) => fx.api(c, &mut stats).await,
                Case::Signed(c) => fx.signed(c, &mut stats).await,
                Case::Unsigned(c) => fx.unsigned(c, &mut stats).await,
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(f) if keep_going => {
                let mut failures = failures.borrow_mut();
                let seen = failures.entry(f.kind).or_insert((0, f.message));
                seen.0 += 1;
                Ok(())
            }
            Err(f) => {
                first_failure
                    .borrow_mut()
                    .get_or_insert_with(|| f.message.clone());
                Err(TestCaseError::fail(f.message))
            }
        }
    });
    let elapsed = started.elapsed();

    let stats = stats.into_inner();
    let mut summary = format!(
        "{} cases run ({cases} asked), {} requests in {:.1} s ({} fixture rebuilds in {:.1} s, {} unsendable); \
         {route_count} documented routes\nstatuses: {:?}\nslowest: {:?} {}\n",
        stats.cases,
        stats.requests,
        elapsed.as_secs_f64(),
        stats.rebuilds,
        stats.rebuild_time.as_secs_f64(),
        stats.unsendable,
        stats.statuses,
        stats.slowest.0,
        stats.slowest.1
    );
    for (label, (n, ok)) in &stats.routes {
        summary.push_str(&format!("  {n:>7} requests, {ok:>6} 2xx: {label}\n"));
    }
    println!("{summary}");
    rt.block_on(async { drop(fixture.into_inner()) });

    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => {
            let case = format!("{case:?}");
            panic!(
                "{reason}\n\nfirst failure seen:\n{}\n\ngenerated case (after shrinking): {}",
                first_failure.into_inner().unwrap_or_default(),
                shorten(&case, 8000)
            );
        }
        Err(TestError::Abort(why)) => panic!("proptest aborted: {why}"),
    }
    let failures = failures.into_inner();
    if !failures.is_empty() {
        let mut report = format!("{} kinds of failure:\n", failures.len());
        for (kind, (count, first)) in &failures {
            report.push_str(&format!("\n=== {count} × {kind}\n{first}\n"));
        }
        panic!("{report}");
    }
    // A run of the default length or longer reaches every documented route.
    if cases >= DEFAULT_CASES {
        let missed: Vec<String> = documented_routes()
            .iter()
            .map(|r| format!("{} {}", r.method, r.template))
            .filter(|label| !stats.routes.contains_key(label))
            .collect();
        assert!(missed.is_empty(), "never sent: {missed:?}\n{summary}");
    }
}
