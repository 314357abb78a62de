//! The dashboard over HTTP, as a browser would send it (the real browser runs in
//! `cli/tests/dashboard.rs`): sign-in and its throttling, the session cookie and what
//! is stored of it, CSRF (token and origin), sign-out and revoked tokens ending
//! sessions, secrets shown once, readable errors with the API's status, and another
//! tenant's operator refused every page and action of the first with nothing changed.

#[path = "support/harness.rs"]
mod harness;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;

use harness::{Enrolled, Harness, PUBLIC_URL};

/// A browser's view of the dashboard: its session cookie, if signed in.
struct Browser<'a> {
    h: &'a Harness,
    cookie: Option<String>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        self.body[at + 19..at + 19 + 64].to_owned()
    }

    /// The body with the template's HTML escapes undone (as a browser shows it).
    fn text(&self) -> String {
        self.body
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }
}

impl<'a> Browser<'a> {
    fn new(h: &'a Harness) -> Self {
        Browser { h, cookie: None }
    }

    async fn signed_in(h: &'a Harness, token: &str) -> Self {
        let mut b = Browser::new(h);
        let page = b.sign_in(token).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        b
    }

    async fn sign_in(&mut self, token: &str) -> Page {
        let page = self
            .send(
                Method::POST,
                "/ui/login",
                Some(form(&[("token", token)])),
                Some(PUBLIC_URL),
            )
            .await;
        if let Some(set) = page.headers.get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        page
    }

    async fn get(&self, path: &str) -> Page {
        self.send(Method::GET, path, None, None).await
    }

    /// A form post from this site, with `csrf` if given.
    async fn post(&self, path: &str, csrf: Option<&str>, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if let Some(c) = csrf {
            all.push(("csrf", c));
        }
        self.send(Method::POST, path, Some(form(&all)), Some(PUBLIC_URL))
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        origin: Option<&str>,
    ) -> Page {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1:9");
        if let Some(c) = &self.cookie {
            b = b.header(header::COOKIE, c);
        }
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        let request = match body {
            Some(body) => b
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let (status, headers, bytes) = self.h.send(request).await;
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Completes the agent's claimed backup with a restore point named `name`.
async fn backup_done(h: &Harness, agent: &Enrolled, name: &str) -> String {
    let work = h.claim(agent).await;
    let run = work["run_id"].as_str().expect("a run to claim").to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(
                json!({"status": "succeeded", "bytes": 10, "files": 2, "restore_point": {
                "name": name, "prefix": work["spec"]["prefix"], "snapshot": "ab".repeat(16),
                "stored_bytes": 10, "content_bytes": 20, "files": 2,
                "created_at": "2026-11-30T10:00:00Z"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    run
}

#[tokio::test]
async fn sign_in_gives_a_strict_http_only_cookie_stored_only_as_its_hash() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;

    // Not signed in: every page sends the browser to the sign-in page.
    let anon = Browser::new(&h);
    for path in ["/ui/", "/ui/agents", "/ui/jobs", "/ui/admin/tenants"] {
        let page = anon.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/ui/login", "{path}");
    }
    let root = anon.get("/").await;
    assert_eq!(root.location(), "/ui/");
    let login = anon.get("/ui/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("type=\"password\""), "{}", login.body);
    assert!(login.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));

    // A wrong token: refused, readable, audited.
    let mut b = Browser::new(&h);
    let bad = b.sign_in("cfo_0000").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body.contains("not accepted"), "{}", bad.body);
    assert!(b.cookie.is_none());
    let audit = h.audit(None).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "auth" && e["target"] == "route:/ui/login"),
        "{audit:?}"
    );

    let page = b.sign_in(&op).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let set = page.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let value = b.cookie.clone().unwrap();
    let value = value.strip_prefix("coffer_session=").unwrap().to_owned();
    // Only the SHA-256 of the cookie is stored; the token never is.
    let stored: Vec<Vec<u8>> = h.state.db.blocking(|cat| {
        let mut st = cat
            .connection()
            .prepare("SELECT id_hash FROM web_sessions")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    });
    assert_eq!(
        stored,
        vec![sha2::Sha256::digest(value.as_bytes()).to_vec()]
    );
    let agents = b.get("/ui/agents").await;
    assert_eq!(agents.status, StatusCode::OK);
    assert!(agents.body.contains("<h1>Agents</h1>"));
    assert!(
        !agents.body.contains(&value),
        "the cookie value is not on the page"
    );
}

#[tokio::test]
async fn behind_an_https_proxy_the_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::open(dir, |c| {
        c.public_url = url::Url::parse("https://backup.example.net").unwrap();
    });
    let (_, op) = h.tenant("acme").await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/ui/login")
        .header(header::ORIGIN, "https://backup.example.net")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form(&[("token", &op)])))
        .unwrap();
    let (status, headers, _) = h.send(request).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_like_bad_bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::open(dir, |c| c.auth_failures_per_minute = 3);
    let (_, op) = h.tenant("acme").await;
    let mut b = Browser::new(&h);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(b.sign_in("cfo_nope").await.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let limited = b.sign_in("cfo_nope").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert!(limited.body.contains("retry after"), "{}", limited.body);
    // A valid token still passes from the same address, as with bearer tokens.
    assert_eq!(b.sign_in(&op).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn posts_need_the_csrf_token_and_this_origin() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let b = Browser::signed_in(&h, &op).await;
    let csrf = b.get("/ui/agents").await.csrf();
    let tokens_before = h
        .call(Method::GET, "/v1/enrolment-tokens", Some(&op), None)
        .await
        .1;

    let none = b.post("/ui/agents/enrol", None, &[("label", "x")]).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert!(none.body.contains("Request refused"), "{}", none.body);
    let wrong = b
        .post(
            "/ui/agents/enrol",
            Some(&"00".repeat(32)),
            &[("label", "x")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let elsewhere = b
        .send(
            Method::POST,
            "/ui/agents/enrol",
            Some(form(&[("label", "x"), ("csrf", &csrf)])),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert!(
        elsewhere.body.contains("another site"),
        "{}",
        elsewhere.body
    );
    // No Origin, but the browser says the request is cross-site.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/ui/agents/enrol")
        .header(header::COOKIE, b.cookie.clone().unwrap())
        .header("sec-fetch-site", "cross-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form(&[("label", "x"), ("csrf", &csrf)])))
        .unwrap();
    assert_eq!(h.send(request).await.0, StatusCode::FORBIDDEN);
    // Sign-in from another site is refused too (login CSRF).
    let mut other = Browser::new(&h);
    let request = other
        .send(
            Method::POST,
            "/ui/login",
            Some(form(&[("token", &op)])),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(request.status, StatusCode::FORBIDDEN);
    assert!(other.sign_in("x").await.status != StatusCode::SEE_OTHER);
    // Nothing was created by the refused posts.
    let tokens_after = h
        .call(Method::GET, "/v1/enrolment-tokens", Some(&op), None)
        .await
        .1;
    assert_eq!(tokens_before, tokens_after);

    // The same post with its token and from this site works, and the token is shown
    // this once.
    let ok = b
        .post("/ui/agents/enrol", Some(&csrf), &[("label", "nas1")])
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let at = ok.body.find("COFFER_ENROLL_TOKEN=").expect("the command");
    let token = ok.body[at + 20..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("cfe_"), "{token}");
    assert!(
        ok.text().contains(&format!(
            "COFFER_ENROLL_TOKEN={token} coffer agent enroll --server http://127.0.0.1:9 \
             --name 'nas1'</code>"
        )),
        "{}",
        &ok.body[at..at + 200]
    );
    let again = b.get("/ui/agents").await;
    assert!(!again.body.contains(&token));
    assert!(!again.body.contains("COFFER_ENROLL_TOKEN"));
}

#[tokio::test]
async fn sign_out_and_a_revoked_token_end_the_session() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let b = Browser::signed_in(&h, &op).await;
    let csrf = b.get("/ui/agents").await.csrf();
    let out = b.post("/ui/logout", Some(&csrf), &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie no longer opens anything.
    assert_eq!(b.get("/ui/agents").await.location(), "/ui/login");

    let b = Browser::signed_in(&h, &op).await;
    assert_eq!(b.get("/ui/agents").await.status, StatusCode::OK);
    let tokens = h
        .call(
            Method::GET,
            &format!("/v1/admin/tenants/{tenant}/operator-tokens"),
            Some(&h.admin),
            None,
        )
        .await
        .1;
    let id = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/admin/tenants/{tenant}/operator-tokens/{id}/revoke"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b.get("/ui/agents").await.location(), "/ui/login");
    let left: i64 = h.state.db.blocking(|cat| {
        cat.connection()
            .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(left, 0, "the revoked token's session was deleted");
}

#[tokio::test]
async fn api_errors_are_readable_pages_with_the_api_status() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let b = Browser::signed_in(&h, &op).await;
    let csrf = b.get("/ui/jobs/new").await.csrf();
    let bad = b
        .post(
            "/ui/jobs",
            Some(&csrf),
            &[
                ("agent_id", &agent.agent_id),
                ("name", "nightly"),
                ("sources", "/srv/data"),
                ("schedule", "not a schedule"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("schedule:"), "{}", bad.body);
    assert!(
        bad.body.contains("value=\"nightly\""),
        "typed values are kept"
    );
    let relative = b
        .post(
            "/ui/jobs",
            Some(&csrf),
            &[
                ("agent_id", &agent.agent_id),
                ("name", "n"),
                ("sources", "srv"),
            ],
        )
        .await;
    assert_eq!(relative.status, StatusCode::BAD_REQUEST);
    for (path, status) in [
        (
            "/ui/jobs/nope",
            h.call(Method::GET, "/v1/jobs/nope", Some(&op), None)
                .await
                .0,
        ),
        ("/ui/jobs/123456", StatusCode::NOT_FOUND),
        ("/ui/no-such-page", StatusCode::NOT_FOUND),
        ("/ui/admin/tenants", StatusCode::FORBIDDEN),
        ("/ui/runs?status=bogus", StatusCode::BAD_REQUEST),
        ("/ui/diff?from=1", StatusCode::BAD_REQUEST),
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(page.body.contains("<!doctype html>"), "{path}");
        assert!(page.body.contains("role=\"alert\""), "{path}");
    }
    // A job made from the form, with its next runs shown in words.
    let made = b
        .post(
            "/ui/jobs",
            Some(&csrf),
            &[
                ("agent_id", &agent.agent_id),
                ("name", "nightly"),
                ("sources", "/srv/data\n/srv/more"),
                ("excludes", "*.tmp"),
                ("schedule", "0 3 * * *"),
                ("time_zone", "Europe/Berlin"),
                ("keep_last", "7"),
                ("upload_limit", "10MiB/s"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let job = b.get(made.location()).await;
    assert!(job.text().contains("/srv/data, /srv/more"), "{}", job.body);
    assert!(job.body.contains("10.0 MiB/s"), "{}", job.body);
    assert_eq!(
        job.body.matches(":00:00 UTC</li>").count(),
        5,
        "{}",
        job.body
    );
    let preview = b
        .get("/ui/schedule-preview?schedule=0+3+*+*+*&time_zone=Europe/Berlin")
        .await;
    let preview: Value = serde_json::from_str(&preview.body).unwrap();
    assert_eq!(preview["next"].as_array().unwrap().len(), 5);
    assert!(preview["next"][0].as_str().unwrap().contains("03:00 CET"));
}

#[tokio::test]
async fn the_admin_manages_tenants_and_operator_tokens_shown_once() {
    let h = Harness::new();
    let b = Browser::signed_in(&h, &h.admin).await;
    let page = b.get("/ui/").await;
    assert_eq!(page.location(), "/ui/admin/tenants");
    let csrf = b.get("/ui/admin/tenants").await.csrf();
    let made = b
        .post("/ui/admin/tenants", Some(&csrf), &[("name", "acme")])
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let tenant_page = made.location().to_owned();
    let token = b
        .post(
            &format!("{tenant_page}/tokens"),
            Some(&csrf),
            &[("label", "ops")],
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
    let at = token.body.find("cfo_").unwrap();
    let secret = token.body[at..at + 68].to_owned();
    assert!(!b.get(&tenant_page).await.body.contains(&secret));
    // The token works: its operator signs in and sees the operator's pages only.
    let op = Browser::signed_in(&h, &secret).await;
    assert_eq!(op.get("/ui/agents").await.status, StatusCode::OK);
    assert_eq!(
        op.get("/ui/admin/backends").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.get("/ui/agents").await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/ui/admin/backends").await.status, StatusCode::OK);
    let audit = b.get("/ui/admin/audit?action=tenant.").await;
    assert!(audit.body.contains("tenant.create"), "{}", audit.body);
    assert!(!audit.body.contains("operator_token.create"));
}

#[tokio::test]
async fn another_tenants_operator_is_refused_every_page_and_action() {
    let h = Harness::new();
    let (tenant_a, op_a) = h.tenant("acme").await;
    let (_, op_b) = h.tenant("bolt").await;
    let agent = h.enrol(&op_a, "nas").await;
    let job = h.job(&op_a, &agent.agent_id, "nightly").await;
    h.run_now(&op_a, &job).await;
    let done = backup_done(&h, &agent, "first").await;
    h.run_now(&op_a, &job).await;
    h.state.background.idle().await;
    let rps = h
        .call(Method::GET, "/v1/restore-points", Some(&op_a), None)
        .await
        .1;
    let rp = rps["restore_points"][0]["id"].as_str().unwrap().to_owned();
    let runs = h.call(Method::GET, "/v1/runs", Some(&op_a), None).await.1;
    let queued = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "queued")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_id = &agent.agent_id;
    let before = (
        h.call(Method::GET, "/v1/agents", Some(&op_a), None).await.1,
        h.call(Method::GET, "/v1/jobs", Some(&op_a), None).await.1,
        h.call(Method::GET, "/v1/runs", Some(&op_a), None).await.1,
    );

    let b = Browser::signed_in(&h, &op_b).await;
    let csrf = b.get("/ui/agents").await.csrf();
    let pages = [
        format!("/ui/agents/{a_id}"),
        format!("/ui/agents/{a_id}/revoke"),
        format!("/ui/jobs/{job}"),
        format!("/ui/jobs/{job}/edit"),
        format!("/ui/jobs/{job}/delete"),
        format!("/ui/runs/{done}"),
        format!("/ui/runs/{done}/events"),
        format!("/ui/runs/{queued}"),
        format!("/ui/restore-points/{rp}"),
        format!("/ui/restore-points/{rp}?path=/srv"),
        format!("/ui/diff?from={rp}&to={rp}"),
    ];
    for path in &pages {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(!page.body.contains("nightly") && !page.body.contains("nas"));
    }
    let posts: [(String, Vec<(&str, &str)>); 7] = [
        (format!("/ui/agents/{a_id}/revoke"), vec![]),
        (format!("/ui/jobs/{job}/run"), vec![]),
        (
            format!("/ui/jobs/{job}"),
            vec![("name", "stolen"), ("sources", "/etc")],
        ),
        (
            format!("/ui/jobs/{job}/delete"),
            vec![("restore_points", "delete")],
        ),
        (format!("/ui/runs/{queued}/cancel"), vec![]),
        (
            format!("/ui/restore-points/{rp}/restore"),
            vec![("target", "/tmp/x")],
        ),
        (
            "/ui/restores".to_owned(),
            vec![("restore_point_id", rp.as_str()), ("target", "/tmp/x")],
        ),
    ];
    for (path, fields) in &posts {
        let page = b.post(path, Some(&csrf), fields).await;
        if path == "/ui/restores" {
            // Bulk restores report each item: this one is not found.
            assert_eq!(page.status, StatusCode::OK);
            assert!(page.body.contains("0 of 1 queued"), "{}", page.body);
            assert!(page.body.contains("restore point not found"));
        } else {
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        }
    }
    // Nothing of the first tenant changed, and B's own lists stay empty.
    let after = (
        h.call(Method::GET, "/v1/agents", Some(&op_a), None).await.1,
        h.call(Method::GET, "/v1/jobs", Some(&op_a), None).await.1,
        h.call(Method::GET, "/v1/runs", Some(&op_a), None).await.1,
    );
    assert_eq!(before, after);
    for path in [
        "/ui/agents",
        "/ui/jobs",
        "/ui/runs",
        "/ui/restore-points",
        "/ui/audit",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(a_id.as_str()), "{path}");
    }
    // Each attempt is in the first tenant's audit log as denied.
    h.state.background.idle().await;
    let audit = h.audit(Some(&tenant_a)).await;
    let denied = audit
        .iter()
        .filter(|e| e["action"] == "access" && e["outcome"] == "denied")
        .count();
    assert!(denied >= pages.len(), "{denied} denials: {audit:?}");
}

/// The notifications page: a webhook added from the form (its signing secret shown that
/// once), a test sent with the button and received, the channel listed; another
/// tenant's operator cannot test it. The admin's pages: a backend test button for each
/// backend, and self-backups — "not set up", then, once set up, "Back up now" makes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_channels_backend_tests_and_self_backups_from_the_pages() {
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.notify.allow_private_webhooks = true;
    });
    let (_, op) = h.tenant("acme").await;
    let b = Browser::signed_in(&h, &op).await;
    let page = b.get("/ui/notifications").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.text().contains("None yet"), "{}", page.body);
    let csrf = page.csrf();
    let added = b
        .post(
            "/ui/notifications/webhooks",
            Some(&csrf),
            &[("name", "ops"), ("url", &url)],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let at = added.body.find("whsec_").expect("the secret is shown once");
    let secret = added.body[at..at + 50].to_owned();
    let listed = b.get("/ui/notifications").await;
    assert!(listed.text().contains(&url), "{}", listed.body);
    assert!(!listed.body.contains(&secret), "shown once only");
    let (_, channels) = h
        .call(Method::GET, "/v1/notifications/channels", Some(&op), None)
        .await;
    let id = channels["channels"][0]["id"].as_str().unwrap().to_owned();
    let tested = b
        .post(
            &format!("/ui/notifications/channels/{id}/test"),
            Some(&csrf),
            &[],
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.body);
    assert!(
        tested.text().contains("the sample was delivered"),
        "{}",
        tested.body
    );
    assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A bad URL is the API's 400, on a readable page.
    let bad = b
        .post(
            "/ui/notifications/webhooks",
            Some(&csrf),
            &[("name", "bad"), ("url", "ftp://example.com/")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    // Another tenant's operator: not found, nothing sent.
    let (_, other) = h.tenant("globex").await;
    let o = Browser::signed_in(&h, &other).await;
    let csrf_o = o.get("/ui/notifications").await.csrf();
    let refused = o
        .post(
            &format!("/ui/notifications/channels/{id}/test"),
            Some(&csrf_o),
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 1);
    // An operator does not reach the admin's pages.
    assert_eq!(
        b.get("/ui/admin/self-backups").await.status,
        StatusCode::FORBIDDEN
    );

    let a = Browser::signed_in(&h, &h.admin).await;
    let page = a.get("/ui/admin/self-backups").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.text().contains("Not set up"), "{}", page.body);
    let to = tempfile::tempdir().unwrap();
    coffer_server::selfbackup::init(
        &h.state.config.data_dir,
        &coffer_server::selfbackup::InitOptions {
            destination: coffer_server::selfbackup::Destination::Local {
                path: to.path().to_owned(),
            },
            keep: 3,
            schedule: coffer_server::selfbackup::DEFAULT_SCHEDULE.to_owned(),
            passphrase: None,
        },
    )
    .unwrap();
    let page = a.get("/ui/admin/self-backups").await;
    assert!(page.text().contains("the last 3"), "{}", page.body);
    let made = a
        .post("/ui/admin/self-backups", Some(&page.csrf()), &[])
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert!(
        made.text().contains("Self-backup selfbackup-"),
        "{}",
        made.body
    );
    let files: Vec<_> = std::fs::read_dir(to.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    // A backend test for an unknown backend is the API's 404.
    let csrf_a = a.get("/ui/admin/backends").await.csrf();
    let missing = a
        .post("/ui/admin/backends/99/test", Some(&csrf_a), &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    h.state.background.idle().await;
}
