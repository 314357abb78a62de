//! The dashboard over HTTP, as a browser would send it (the real browser runs in
//! `cli/tests/dashboard.rs`): sign-in and its throttling, the session cookie and what
//! is stored of it, CSRF (token and origin), sign-out and revoked tokens ending
//! sessions, secrets shown once, readable errors with the API's status, and another
//! tenant's operator refused every page and action of the first with nothing changed.
//! Actions taken through the forms are checked through the JSON API afterwards: a job's
//! edit and delete, the storage figures and what prune freed, a diff of two real
//! backups, an agent's log lines (escaped), a storage backend registered and tested,
//! the server's own notification channels, a channel's on/off, alerts and delete, and
//! the tenant's alert settings.

#[path = "support/harness.rs"]
mod harness;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;

use harness::{noise, Enrolled, Harness, PUBLIC_URL};

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
    h.revoke_operator_token(&tenant).await;
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
    let (url, received) = hook_receiver().await;

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

/// The table row (`<tr>` to `</tr>`) of `html` holding `needle`.
fn row<'a>(html: &'a str, needle: &str) -> &'a str {
    html.split("<tr>")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap())
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("no row holds {needle}: {html}"))
}

/// The `<input>` tag of `html` named `name`.
fn input<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name}: {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

/// A webhook receiver on 127.0.0.1: its URL, and how many posts it has had.
async fn hook_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
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
    (url, received)
}

/// A job edited from its form: every field of the form reaches the API's view of the job
/// (and its next run is recomputed in the new time zone); each value the API or the
/// form refuses is a 400 page naming the field, with what was typed, and changes nothing.
#[tokio::test]
async fn a_job_edited_from_its_form_shows_the_new_values_in_the_api_and_a_refused_edit_changes_nothing(
) {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let b = Browser::signed_in(&h, &op).await;
    let edit = b.get(&format!("/ui/jobs/{job}/edit")).await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
    // The form holds the job as the API made it.
    assert!(
        input(&edit.body, "keep_daily").contains("value=\"14\""),
        "{}",
        edit.body
    );
    assert!(input(&edit.text(), "schedule").contains("value=\"0 3 * * *\""));
    let csrf = edit.csrf();
    let fields = [
        ("name", "nightly-home"),
        ("sources", "/srv/data\n/home/ann"),
        ("excludes", "*.tmp\n/home/ann/.cache"),
        ("schedule", "30 1 * * 1"),
        ("time_zone", "Europe/Berlin"),
        ("keep_last", "3"),
        ("keep_daily", "0"),
        ("keep_weekly", "4"),
        ("keep_monthly", "6"),
        ("upload_limit", "2MiB/s"),
        ("level", "9"),
    ];
    let saved = b
        .post(&format!("/ui/jobs/{job}"), Some(&csrf), &fields)
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), format!("/ui/jobs/{job}"));
    let (status, view) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let j = &view["job"];
    assert_eq!(j["name"], "nightly-home");
    assert_eq!(j["sources"], json!(["/srv/data", "/home/ann"]));
    assert_eq!(j["excludes"], json!(["*.tmp", "/home/ann/.cache"]));
    assert_eq!(j["schedule"], "30 1 * * 1");
    assert_eq!(j["time_zone"], "Europe/Berlin");
    assert_eq!(
        j["retention"],
        json!({"keep_last": 3, "keep_daily": 0, "keep_weekly": 4, "keep_monthly": 6})
    );
    assert_eq!(j["upload_limit"], 2 * 1024 * 1024);
    assert_eq!(j["level"], 9);
    // Next due on a Monday at 01:30 in Berlin (no longer 03:00 UTC daily).
    let next = chrono::DateTime::parse_from_rfc3339(j["next_run_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Berlin);
    use chrono::{Datelike, Timelike};
    assert_eq!(
        (next.weekday(), next.hour(), next.minute()),
        (chrono::Weekday::Mon, 1, 30),
        "{next}"
    );
    // The job's page shows it.
    let page = b.get(&format!("/ui/jobs/{job}")).await;
    let text = page.text();
    assert!(text.contains("/srv/data, /home/ann"), "{}", page.body);
    assert!(text.contains("30 1 * * 1 (Europe/Berlin)"), "{}", page.body);
    assert!(text.contains("2.0 MiB/s"), "{}", page.body);

    // Refused edits: each names its field, keeps what was typed, changes nothing.
    let before = view;
    for (field, value, named) in [
        ("schedule", "61 3 * * *", "schedule:"),
        ("upload_limit", "fast", "upload_limit:"),
        ("keep_last", "-1", "keep_last: must be a whole number"),
        ("sources", "relative/path", "sources[0]:"),
        ("level", "23", "level: from 1 to 22"),
    ] {
        let mut bad: Vec<(&str, &str)> = fields
            .iter()
            .map(|&(k, v)| if k == field { (k, value) } else { (k, v) })
            .collect();
        bad[0] = ("name", "renamed");
        let page = b.post(&format!("/ui/jobs/{job}"), Some(&csrf), &bad).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            page.body
        );
        assert!(page.body.contains("role=\"alert\""), "{field}");
        assert!(page.text().contains(named), "{field}: {}", page.body);
        assert!(
            input(&page.body, "name").contains("value=\"renamed\""),
            "{field}: typed values are kept"
        );
        let (_, after) = h
            .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
            .await;
        assert_eq!(after, before, "{field}: nothing changed");
    }
    let audit = h.audit(Some(&tenant)).await;
    let updates: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "job.update")
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(updates[0]["detail"]
        .as_str()
        .unwrap()
        .contains("schedule Some(\"30 1 * * 1\")"));
}

/// A job deleted from the pages: its confirm page first (showing it deletes nothing),
/// then the post; the job is gone from the API, its queued run ended, its restore point
/// kept as chosen. Another tenant's operator gets the API's 404 for both, nothing
/// changed.
#[tokio::test]
async fn a_job_deleted_after_its_confirm_page_is_gone_from_the_api_and_another_tenant_cannot() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let (_, other) = h.tenant("bolt").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let stays = h.job(&op, &agent.agent_id, "weekly").await;
    h.run_now(&op, &job).await;
    backup_done(&h, &agent, "first").await;
    let queued = h.run_now(&op, &job).await;
    h.state.background.idle().await;
    let job_path = format!("/v1/jobs/{job}");
    let get_job = || h.call(Method::GET, &job_path, Some(&op), None);

    let o = Browser::signed_in(&h, &other).await;
    let csrf_o = o.get("/ui/jobs").await.csrf();
    let page = o.get(&format!("/ui/jobs/{job}/delete")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    assert!(!page.body.contains("nightly"));
    let refused = o
        .post(
            &format!("/ui/jobs/{job}/delete"),
            Some(&csrf_o),
            &[("restore_points", "delete")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert_eq!(get_job().await.0, StatusCode::OK);

    let b = Browser::signed_in(&h, &op).await;
    let confirm = b.get(&format!("/ui/jobs/{job}/delete")).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let text = confirm.text();
    assert!(text.contains("<h1>Delete job nightly?</h1>"), "{text}");
    assert!(
        text.contains(&format!("action=\"/ui/jobs/{job}/delete\"")),
        "{text}"
    );
    assert!(text.contains("value=\"keep\" checked"), "{text}");
    assert_eq!(
        get_job().await.0,
        StatusCode::OK,
        "the confirm page deletes nothing"
    );
    // Without the form's token: refused.
    let no_csrf = b
        .post(
            &format!("/ui/jobs/{job}/delete"),
            None,
            &[("restore_points", "keep")],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(get_job().await.0, StatusCode::OK);

    let deleted = b
        .post(
            &format!("/ui/jobs/{job}/delete"),
            Some(&confirm.csrf()),
            &[("restore_points", "keep")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.location(), "/ui/jobs");
    let (status, body) = get_job().await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = h.call(Method::GET, "/v1/jobs", Some(&op), None).await;
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [stays.as_str()]);
    // Its queued run ended with it; its restore point was kept, as chosen.
    let (_, run) = h
        .call(Method::GET, &format!("/v1/runs/{queued}"), Some(&op), None)
        .await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    assert!(
        run["run"]["error"]
            .as_str()
            .unwrap()
            .contains("job deleted"),
        "{run}"
    );
    let (_, points) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    assert_eq!(points["restore_points"].as_array().unwrap().len(), 1);
    // Gone: the API's 404, on a page.
    let again = b
        .post(
            &format!("/ui/jobs/{job}/delete"),
            Some(&confirm.csrf()),
            &[("restore_points", "keep")],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let audit = h.audit(Some(&tenant)).await;
    let deletes: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "job.delete")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0]["target"], format!("job:{job}"));
    assert!(deletes[0]["detail"]
        .as_str()
        .unwrap()
        .contains("1 queued run(s) cancelled; restore points kept"));
}

/// The storage page shows the figures `/v1/usage` answers — the tenant's totals, each
/// repository's and each job's — and what the prune after a backup freed, as the job's
/// retention runs record it. Two real backups under "keep the last 1": the second's
/// retention forgets the first and prunes the data only it held.
#[tokio::test]
async fn the_storage_page_shows_the_usage_apis_figures_and_what_prune_freed() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(
                json!({"agent_id": agent.agent_id, "name": "keep1", "sources": ["/srv"],
                        "retention": {"keep_last": 1}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("day-0.bin"), noise(300_000, 0)).unwrap();
    h.backup(&op, &agent, &job, src.path(), (310_000, 300_000))
        .await;
    std::fs::remove_file(src.path().join("day-0.bin")).unwrap();
    std::fs::write(src.path().join("day-1.bin"), noise(200_000, 1)).unwrap();
    h.backup(&op, &agent, &job, src.path(), (210_000, 200_000))
        .await;

    let (status, body) = h.call(Method::GET, "/v1/usage", Some(&op), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let u = &body["usage"];
    assert_eq!(u["restore_points"], 1, "the first was forgotten: {u}");
    let stored = u["stored_bytes"].as_u64().unwrap();
    assert!(stored > 200_000, "the kept backup's data is stored: {u}");
    let a = &u["agents"][0];
    assert_eq!(a["agent_id"], agent.agent_id.as_str());
    assert_eq!(a["stored_bytes"], stored);
    let j = &u["jobs"][0];
    assert_eq!(j["job_id"], job.as_str());
    assert_eq!(
        j["added_bytes"], 210_000,
        "the kept backup's, as reported: {u}"
    );
    assert_eq!(j["latest_content_bytes"], 200_000);
    let (_, retention) = h
        .call(
            Method::GET,
            &format!("/v1/jobs/{job}/retention"),
            Some(&op),
            None,
        )
        .await;
    let pruned = retention["retention_runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["restore_points_removed"] == 1)
        .unwrap_or_else(|| panic!("the second backup's retention forgot one: {retention}"));
    let freed = pruned["bytes_freed"].as_i64().unwrap();
    assert!(freed > 0, "{pruned}");

    let b = Browser::signed_in(&h, &op).await;
    let page = b.get("/ui/usage").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The tenant's totals.
    assert!(
        page.body
            .contains(&format!("<strong><data value=\"{stored}\">")),
        "{}",
        page.body
    );
    assert!(
        page.text()
            .contains(&format!("in {} objects, 1 restore points", u["objects"])),
        "{}",
        page.body
    );
    // The repository's.
    let repo_row = row(&page.body, &format!("/ui/agents/{}\"", agent.agent_id));
    assert!(
        repo_row.contains(&format!("<data value=\"{stored}\">")),
        "{repo_row}"
    );
    assert!(
        repo_row.ends_with(&format!("<td>{}</td><td>1</td>", a["objects"])),
        "{repo_row}"
    );
    // The job's.
    let job_row = row(&page.body, &format!("/ui/jobs/{job}\""));
    assert!(
        job_row.contains("<td>1</td><td><data value=\"210000\">"),
        "{job_row}"
    );
    assert!(job_row.contains("<data value=\"200000\">"), "{job_row}");
    // What prune freed.
    let freed_section = &page.body[page.body.find("What prune freed").unwrap()..];
    let freed_row = row(freed_section, &format!("<data value=\"{freed}\">"));
    assert!(freed_row.contains("<td>keep1</td>"), "{freed_row}");
    assert!(freed_row.contains("<td>1</td>"), "one removed: {freed_row}");
}

/// The diff page lists exactly the changes the API's diff answers for two real backups
/// (a file removed, one modified, one added between them), with their counts.
#[tokio::test]
async fn the_diff_page_lists_the_changes_the_apis_diff_returns() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let (src, first, second) = h.two_backups_a_change_apart(&op, &agent, &job).await;
    let dir = src.path().to_str().unwrap().to_owned();
    let (status, api) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points/{first}/diff?to={second}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{api}");
    let changes: Vec<(String, String)> = api["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ours: Vec<&(String, String)> = changes
        .iter()
        .filter(|(p, _)| p.starts_with(&format!("{dir}/")))
        .collect();
    assert_eq!(
        ours,
        [
            &(format!("{dir}/a.txt"), "removed".to_owned()),
            &(format!("{dir}/b.txt"), "modified".to_owned()),
            &(format!("{dir}/c.txt"), "added".to_owned()),
        ]
    );

    let b = Browser::signed_in(&h, &op).await;
    let page = b.get(&format!("/ui/diff?from={first}&to={second}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let text = page.text();
    assert!(
        text.contains(&format!("Changes from restore point {first} to {second}")),
        "{text}"
    );
    for (path, change) in &changes {
        assert!(
            text.contains(&format!(
                "<td><span class=\"change change-{change}\">{change}</span></td>\
                 <td class=\"path\">{path}</td>"
            )),
            "{change} {path}: {text}"
        );
    }
    assert_eq!(
        page.body.matches("<td class=\"path\">").count(),
        changes.len(),
        "one row a change"
    );
    for (name, count) in api["counts"].as_object().unwrap() {
        assert!(text.contains(&format!("{count} {name}")), "{name}: {text}");
    }
    // The same two the other way round: what was added is removed.
    let back = b
        .get(&format!("/ui/diff?from={second}&to={first}"))
        .await
        .text();
    assert!(
        back.contains(&format!(
            "change-removed\">removed</span></td><td class=\"path\">{dir}/c.txt</td>"
        )),
        "{back}"
    );
}

/// Log lines an agent posts show on its page, newest first, each with its time and
/// level, and escaped: markup in a message is text, never markup.
#[tokio::test]
async fn an_agents_log_lines_show_on_its_page_escaped() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let (_, other) = h.tenant("bolt").await;
    let agent = h.enrol(&op, "nas").await;
    let hostile = "<script>alert('x')</script> & \"quoted\"";
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/agent/logs",
            Some(&agent.api_key),
            Some(json!({"lines": [
                {"level": "warn", "message": hostile, "time": "2026-11-30T10:00:00Z"},
                {"level": "info", "message": "backup of /srv/data started", "time": "2026-11-30T10:00:05Z"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, logs) = h
        .call(
            Method::GET,
            &format!("/v1/agents/{}/logs", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    let lines = logs["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{logs}");

    let b = Browser::signed_in(&h, &op).await;
    let page = b.get(&format!("/ui/agents/{}", agent.agent_id)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; &quot;quoted&quot;"
        ),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    // Each line as the API answers it, in its order, with its time in words.
    let text = page.text();
    let shown: Vec<usize> = lines
        .iter()
        .map(|l| {
            let line = format!(
                "{} {}",
                l["level"].as_str().unwrap(),
                l["message"].as_str().unwrap()
            );
            text.find(&line).unwrap_or_else(|| panic!("{line}: {text}"))
        })
        .collect();
    assert!(shown[0] < shown[1], "newest first: {shown:?}");
    assert!(
        text.contains("Mon 2026-11-30 10:00:05 UTC info backup of /srv/data started"),
        "{text}"
    );
    // Not another tenant's to read.
    let o = Browser::signed_in(&h, &other).await;
    let refused = o.get(&format!("/ui/agents/{}", agent.agent_id)).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(!refused.body.contains("backup of"));
}

/// The admin's backend form: a backend registered from it (the harness's own embedded
/// store, reached over a real socket as any S3 service is) is in `GET /v1/admin/backends`;
/// "Test connection" passes, and once the store is gone fails and opens the server's
/// storage alert, shown on the admin's notifications page. Bad forms are the API's 4xx
/// (or its 503 when the probe fails) and store nothing; an operator is refused the
/// admin's pages and posts with the API's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_registers_and_tests_a_backend_from_the_form() {
    // The harness's embedded store on a socket, to register as an S3 backend.
    let (h, addr, socket) = Harness::on_a_socket().await;
    let endpoint = format!("http://{addr}/s3/");
    let secret = h.state.stores.credentials.secret.to_string();
    let backends = || h.call(Method::GET, "/v1/admin/backends", Some(&h.admin), None);

    // An operator: the admin's pages and posts are the API's 403.
    let (_, op) = h.tenant("acme").await;
    let o = Browser::signed_in(&h, &op).await;
    let api = h
        .call(Method::GET, "/v1/admin/backends", Some(&op), None)
        .await
        .0;
    assert_eq!(api, StatusCode::FORBIDDEN);
    assert_eq!(o.get("/ui/admin/backends").await.status, api);
    let csrf_o = o.get("/ui/agents").await.csrf();
    let good = [
        ("name", "store"),
        ("endpoint", endpoint.as_str()),
        ("region", "us-east-1"),
        ("bucket", "coffer"),
        ("path_style", "on"),
        ("access_key_id", "coffer-local"),
        ("secret_access_key", secret.as_str()),
    ];
    let refused = o.post("/ui/admin/backends", Some(&csrf_o), &good).await;
    assert_eq!(refused.status, api, "{}", refused.body);
    assert_eq!(backends().await.1["backends"], json!([]));

    let a = Browser::signed_in(&h, &h.admin).await;
    let page = a.get("/ui/admin/backends").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // Every input has its label.
    for id in [
        "name",
        "endpoint",
        "region",
        "bucket",
        "access_key_id",
        "secret_access_key",
    ] {
        assert!(page.body.contains(&format!("<label for=\"{id}\">")), "{id}");
    }
    let csrf = page.csrf();
    let with = |field: &str, value: &'static str| -> Vec<(&str, &str)> {
        good.iter()
            .map(|&(k, v)| if k == field { (k, value) } else { (k, v) })
            .collect()
    };
    for (fields, status, says) in [
        (
            with("endpoint", "not a url"),
            StatusCode::BAD_REQUEST,
            "endpoint",
        ),
        (
            with("endpoint", "ftp://127.0.0.1/"),
            StatusCode::BAD_REQUEST,
            "scheme",
        ),
        (with("bucket", ""), StatusCode::BAD_REQUEST, "bucket"),
        (with("name", ""), StatusCode::BAD_REQUEST, "name"),
        (
            with("secret_access_key", ""),
            StatusCode::BAD_REQUEST,
            "secret key",
        ),
        // The settings are well formed, but the store refuses the key: the probe fails.
        (
            with("secret_access_key", "wrong"),
            StatusCode::SERVICE_UNAVAILABLE,
            "",
        ),
    ] {
        let bad = a.post("/ui/admin/backends", Some(&csrf), &fields).await;
        assert_eq!(bad.status, status, "{fields:?}: {}", bad.body);
        assert!(bad.body.contains("role=\"alert\""));
        assert!(bad.text().contains(says), "{fields:?}: {}", bad.body);
        assert_eq!(backends().await.1["backends"], json!([]), "{fields:?}");
    }
    let no_csrf = a.post("/ui/admin/backends", None, &good).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(backends().await.1["backends"], json!([]));

    let made = a.post("/ui/admin/backends", Some(&csrf), &good).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(made.location(), "/ui/admin/backends");
    let (_, list) = backends().await;
    let list = list["backends"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], "store");
    assert_eq!(list[0]["endpoint"], endpoint.as_str());
    assert_eq!(list[0]["bucket"], "coffer");
    assert!(!list[0].to_string().contains(&secret));
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let page = a.get("/ui/admin/backends").await;
    let listed = row(&page.body, &format!("/ui/admin/backends/{id}/test"));
    assert!(listed.contains("<td>store</td>"), "{listed}");

    let tested = a
        .post(&format!("/ui/admin/backends/{id}/test"), Some(&csrf), &[])
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.body);
    assert!(
        tested
            .text()
            .contains(&format!("Backend {id}: passed its test")),
        "{}",
        tested.body
    );
    // An operator cannot press it.
    let refused = o
        .post(&format!("/ui/admin/backends/{id}/test"), Some(&csrf_o), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The store goes away: the test fails, and the server's storage alert opens.
    socket.stop().await;
    let failed = a
        .post(&format!("/ui/admin/backends/{id}/test"), Some(&csrf), &[])
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.body);
    assert!(
        failed
            .text()
            .contains(&format!("Backend {id}: failed its test")),
        "{}",
        failed.body
    );
    let (_, alerts) = h
        .call(
            Method::GET,
            "/v1/admin/alerts?open=true",
            Some(&h.admin),
            None,
        )
        .await;
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "storage.failed")
        .unwrap_or_else(|| panic!("{alerts}"))
        .clone();
    let page = a.get("/ui/admin/notifications").await;
    assert!(
        page.text().contains(&format!(
            "{} (storage.failed, 1 times",
            alert["summary"].as_str().unwrap()
        )),
        "{}",
        page.body
    );
    h.state.background.idle().await;
}

/// The admin's own channels, on `/ui/admin/notifications`: a webhook and an email channel
/// added from its forms (the server's, not a tenant's), a test sent and received, the
/// delivery listed under the channel's name, the channel limited to some alerts and
/// turned off, an open server alert shown (and not on a tenant's page), then deleted
/// after its confirm page, its deliveries with it. An operator reaches none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_keeps_the_servers_own_channels_on_its_notifications_page() {
    let (url, received) = hook_receiver().await;
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.notify.allow_private_webhooks = true;
    });
    let (_, op) = h.tenant("acme").await;
    let hr = &h;
    let server_channels = move || async move {
        let (status, body) = hr
            .call(
                Method::GET,
                "/v1/admin/notifications/channels",
                Some(&hr.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["channels"].as_array().unwrap().clone()
    };
    let a = Browser::signed_in(&h, &h.admin).await;
    let page = a.get("/ui/admin/notifications").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page
        .body
        .contains("<li><a href=\"/ui/admin/notifications\">Notifications</a></li>"));
    assert!(
        page.text().contains("The server's notifications"),
        "{}",
        page.body
    );
    assert!(page.text().contains("None yet"), "{}", page.body);
    assert!(
        !page.body.contains("/ui/notifications/settings"),
        "no tenant settings form for the server"
    );
    for id in [
        "wh-name", "wh-url", "em-name", "em-host", "em-port", "em-tls", "em-from", "em-to",
        "em-user", "em-pass",
    ] {
        assert!(page.body.contains(&format!("<label for=\"{id}\">")), "{id}");
    }
    let csrf = page.csrf();

    let added = a
        .post(
            "/ui/admin/notifications/webhooks",
            Some(&csrf),
            &[("name", "oncall"), ("url", &url)],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(
        added.text().contains("Channel oncall added."),
        "{}",
        added.body
    );
    let at = added.body.find("whsec_").expect("the secret is shown once");
    let secret = added.body[at..at + 50].to_owned();
    let channels = server_channels().await;
    assert_eq!(channels.len(), 1, "{channels:?}");
    assert_eq!(channels[0]["name"], "oncall");
    assert_eq!(channels[0]["kind"], "webhook");
    assert_eq!(channels[0]["config"]["url"], url.as_str());
    assert_eq!(channels[0]["enabled"], true);
    let hook = channels[0]["id"].as_str().unwrap().to_owned();
    // The server's, not the tenant's.
    let (_, tenant) = h
        .call(Method::GET, "/v1/notifications/channels", Some(&op), None)
        .await;
    assert_eq!(tenant["channels"], json!([]));

    let email = a
        .post(
            "/ui/admin/notifications/emails",
            Some(&csrf),
            &[
                ("name", "admins"),
                ("host", "127.0.0.1"),
                ("port", "2525"),
                ("tls", "none"),
                ("from", "coffer@example.net"),
                ("to", "admins@example.net, oncall@example.net"),
            ],
        )
        .await;
    assert_eq!(email.status, StatusCode::OK, "{}", email.body);
    let channels = server_channels().await;
    let mail = channels.iter().find(|c| c["name"] == "admins").unwrap();
    assert_eq!(mail["kind"], "email");
    assert_eq!(mail["config"]["host"], "127.0.0.1");
    assert_eq!(mail["config"]["port"], 2525);
    assert_eq!(mail["config"]["tls"], "none");
    assert_eq!(
        mail["config"]["to"],
        json!(["admins@example.net", "oncall@example.net"])
    );
    // A bad one is the API's 400, and adds nothing.
    let bad = a
        .post(
            "/ui/admin/notifications/webhooks",
            Some(&csrf),
            &[("name", "bad"), ("url", "ftp://example.com/")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(server_channels().await.len(), 2);

    let tested = a
        .post(
            &format!("/ui/admin/notifications/channels/{hook}/test"),
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
    let (_, deliveries) = h
        .call(
            Method::GET,
            "/v1/admin/notifications/deliveries",
            Some(&h.admin),
            None,
        )
        .await;
    let sent = &deliveries["deliveries"][0];
    assert_eq!(sent["channel_id"], hook.as_str(), "{deliveries}");
    assert_eq!(sent["status"], "sent");
    let page = a.get("/ui/admin/notifications").await;
    assert!(!page.body.contains(&secret), "shown once only");
    let delivered = row(&page.body, "<td>sent</td>");
    assert!(delivered.contains("<td>oncall</td>"), "{delivered}");

    // Limited to two alerts, then turned off.
    let limited = a
        .post(
            &format!("/ui/admin/notifications/channels/{hook}"),
            Some(&csrf),
            &[
                ("set_events", "1"),
                ("events", "storage.failed"),
                ("events", "self_backup.failed"),
            ],
        )
        .await;
    assert_eq!(limited.status, StatusCode::OK, "{}", limited.body);
    let find = |list: &[Value]| {
        list.iter()
            .find(|c| c["id"] == hook.as_str())
            .unwrap()
            .clone()
    };
    let c = find(&server_channels().await);
    assert_eq!(c["events"], json!(["storage.failed", "self_backup.failed"]));
    assert_eq!(c["enabled"], true);
    let off = a
        .post(
            &format!("/ui/admin/notifications/channels/{hook}"),
            Some(&csrf),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert!(
        off.text().contains("Channel oncall saved: off"),
        "{}",
        off.body
    );
    let c = find(&server_channels().await);
    assert_eq!(c["enabled"], false);
    assert_eq!(c["events"], json!(["storage.failed", "self_backup.failed"]));
    let listed = row(&off.body, &format!("channels/{hook}/delete"));
    assert!(
        listed.contains("value=\"storage.failed\" checked"),
        "{listed}"
    );
    assert!(!listed.contains("value=\"run.failed\" checked"), "{listed}");
    assert!(listed.contains("Turn on"), "{listed}");

    // An open server alert is on this page, not on a tenant's.
    h.state.db.blocking(|cat| {
        coffer_server::db::notify::raise(
            cat.connection(),
            &coffer_server::db::notify::NewAlert {
                tenant_id: None,
                kind: coffer_server::db::notify::AlertKind::SelfBackupFailed,
                subject: "server".to_owned(),
                summary: "The self-backup to /mnt/offsite failed".to_owned(),
                detail: "no space left".to_owned(),
            },
            coffer_server::db::now(),
        )
        .unwrap()
    });
    let (_, open) = h
        .call(
            Method::GET,
            "/v1/admin/alerts?open=true",
            Some(&h.admin),
            None,
        )
        .await;
    let summary = open["alerts"][0]["summary"].as_str().unwrap().to_owned();
    assert!(a
        .get("/ui/admin/notifications")
        .await
        .text()
        .contains(&summary));
    let o = Browser::signed_in(&h, &op).await;
    let theirs = o.get("/ui/notifications").await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(!theirs.text().contains(&summary));
    assert!(!theirs.body.contains("oncall"));

    // An operator reaches none of the server's channels: the API's 403 on the admin's
    // pages, its 404 for the channel through the tenant's.
    let api = h
        .call(
            Method::GET,
            "/v1/admin/notifications/channels",
            Some(&op),
            None,
        )
        .await
        .0;
    assert_eq!(api, StatusCode::FORBIDDEN);
    assert_eq!(o.get("/ui/admin/notifications").await.status, api);
    let csrf_o = theirs.csrf();
    for (path, fields, status) in [
        (
            "/ui/admin/notifications/webhooks".to_owned(),
            vec![("name", "mine"), ("url", url.as_str())],
            api,
        ),
        (
            format!("/ui/admin/notifications/channels/{hook}/delete"),
            vec![],
            api,
        ),
        (
            format!("/ui/notifications/channels/{hook}/delete"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/ui/notifications/channels/{hook}/test"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/ui/notifications/channels/{hook}"),
            vec![("enabled", "true")],
            StatusCode::NOT_FOUND,
        ),
    ] {
        let page = o.post(&path, Some(&csrf_o), &fields).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
    }
    assert_eq!(
        o.get(&format!("/ui/notifications/channels/{hook}/delete"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(server_channels().await.len(), 2);
    assert_eq!(find(&server_channels().await)["enabled"], false);
    // And the admin is not a tenant's operator.
    assert_eq!(
        a.get("/ui/notifications").await.status,
        StatusCode::FORBIDDEN
    );

    // Deleted: its confirm page, then the post (not without the form's token).
    let confirm = a
        .get(&format!("/ui/admin/notifications/channels/{hook}/delete"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let text = confirm.text();
    assert!(text.contains("<h1>Delete channel oncall?</h1>"), "{text}");
    assert!(
        text.contains(&format!(
            "action=\"/ui/admin/notifications/channels/{hook}/delete\""
        )),
        "{text}"
    );
    assert!(
        text.contains("href=\"/ui/admin/notifications\">Cancel"),
        "{text}"
    );
    assert_eq!(
        server_channels().await.len(),
        2,
        "the confirm page deletes nothing"
    );
    let no_csrf = a
        .post(
            &format!("/ui/admin/notifications/channels/{hook}/delete"),
            None,
            &[],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(server_channels().await.len(), 2);
    let deleted = a
        .post(
            &format!("/ui/admin/notifications/channels/{hook}/delete"),
            Some(&confirm.csrf()),
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.location(), "/ui/admin/notifications");
    let left = server_channels().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["name"], "admins");
    let (_, deliveries) = h
        .call(
            Method::GET,
            "/v1/admin/notifications/deliveries",
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(deliveries["deliveries"], json!([]), "they went with it");
    let gone = a
        .get(&format!("/ui/admin/notifications/channels/{hook}/delete"))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    h.state.background.idle().await;
}

/// The tenant's alert settings as a form: it holds what `GET /v1/notifications/settings`
/// answers; a change saved from it is what the API then answers (and audited once); a
/// value the API refuses (out of its range, not a number, missing) is a 400 page naming
/// the field with what was typed, and changes nothing; without the form's token, from
/// another site, or by the admin: refused. Another tenant's settings stay its own.
#[tokio::test]
async fn the_alert_settings_form_saves_through_the_api_and_refuses_what_it_refuses() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let (_, other) = h.tenant("bolt").await;
    let hr = &h;
    let settings = move |token: String| async move {
        let (status, body) = hr
            .call(
                Method::GET,
                "/v1/notifications/settings",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["settings"].clone()
    };
    let defaults = settings(op.clone()).await;
    let b = Browser::signed_in(&h, &op).await;
    let page = b.get("/ui/notifications").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for name in ["missed_grace_secs", "offline_after_secs", "repeat_secs"] {
        let tag = input(&page.body, name);
        assert!(
            tag.contains(&format!("value=\"{}\"", defaults[name])),
            "{name}: {tag}"
        );
        assert!(tag.contains("max=\"2592000\""), "{name}: {tag}");
        let id = tag
            .split("id=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            page.body.contains(&format!("<label for=\"{id}\">")),
            "{name}"
        );
    }
    let csrf = page.csrf();
    let saved = b
        .post(
            "/ui/notifications/settings",
            Some(&csrf),
            &[
                ("missed_grace_secs", "600"),
                ("offline_after_secs", "900"),
                ("repeat_secs", "7200"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(
        saved.text().contains("Alert settings saved."),
        "{}",
        saved.body
    );
    assert!(
        saved.text().contains("at most every 2 h 0 min"),
        "{}",
        saved.body
    );
    let now = settings(op.clone()).await;
    assert_eq!(
        now,
        json!({"missed_grace_secs": 600, "offline_after_secs": 900, "repeat_secs": 7200})
    );
    assert!(input(&saved.body, "offline_after_secs").contains("value=\"900\""));

    for (field, value, says) in [
        (
            "repeat_secs",
            "10",
            "repeat_secs: from 300 to 2592000 seconds",
        ),
        (
            "offline_after_secs",
            "2592001",
            "offline_after_secs: from 120 to 2592000 seconds",
        ),
        (
            "missed_grace_secs",
            "59",
            "missed_grace_secs: from 60 to 2592000 seconds",
        ),
        (
            "missed_grace_secs",
            "soon",
            "missed_grace_secs: must be a whole number",
        ),
        (
            "offline_after_secs",
            "-120",
            "offline_after_secs: must be a whole number",
        ),
        ("repeat_secs", "", "repeat_secs: required"),
    ] {
        let mut fields = vec![
            ("missed_grace_secs", "1200"),
            ("offline_after_secs", "1800"),
            ("repeat_secs", "3600"),
        ];
        for f in &mut fields {
            if f.0 == field {
                f.1 = value;
            }
        }
        let page = b
            .post("/ui/notifications/settings", Some(&csrf), &fields)
            .await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{field}={value}: {}",
            page.body
        );
        assert!(page.body.contains("role=\"alert\""), "{field}");
        assert!(page.text().contains(says), "{field}={value}: {}", page.body);
        assert!(
            input(&page.body, field).contains(&format!("value=\"{value}\"")),
            "{field}: what was typed is kept"
        );
        assert!(!page.text().contains("Alert settings saved."));
        assert_eq!(
            settings(op.clone()).await,
            now,
            "{field}={value}: unchanged"
        );
    }

    let other_values = [
        ("missed_grace_secs", "60"),
        ("offline_after_secs", "120"),
        ("repeat_secs", "300"),
    ];
    let refused = b
        .post("/ui/notifications/settings", None, &other_values)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut with_token = other_values.to_vec();
    with_token.push(("csrf", &csrf));
    let elsewhere = b
        .send(
            Method::POST,
            "/ui/notifications/settings",
            Some(form(&with_token)),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let a = Browser::signed_in(&h, &h.admin).await;
    let csrf_a = a.get("/ui/admin/notifications").await.csrf();
    let admin = a
        .post("/ui/notifications/settings", Some(&csrf_a), &other_values)
        .await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    assert_eq!(
        settings(op.clone()).await,
        now,
        "nothing refused changed it"
    );
    assert_eq!(
        settings(other.clone()).await,
        defaults,
        "the other tenant's are its own"
    );
    let audit = h.audit(Some(&tenant)).await;
    let updates: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "alert_settings.update")
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(
        updates[0]["detail"],
        "grace 600 s, offline after 900 s, repeat 7200 s"
    );
}

/// On the operator's page, a channel is limited to some alerts, turned off, and deleted
/// after its confirm page, each through the API's handler and seen in its answers; a
/// value the API refuses is its 400; another tenant's operator gets its 404 for each
/// and changes nothing.
#[tokio::test]
async fn an_operator_limits_turns_off_and_deletes_a_channel_from_the_page() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.notify.allow_private_webhooks = true;
    });
    let (_, op) = h.tenant("acme").await;
    let (_, other) = h.tenant("bolt").await;
    let (hr, opr) = (&h, op.as_str());
    let channels = move || async move {
        let (_, body) = hr
            .call(Method::GET, "/v1/notifications/channels", Some(opr), None)
            .await;
        body["channels"].as_array().unwrap().clone()
    };
    let b = Browser::signed_in(&h, &op).await;
    let csrf = b.get("/ui/notifications").await.csrf();
    let added = b
        .post(
            "/ui/notifications/webhooks",
            Some(&csrf),
            &[("name", "ops"), ("url", "http://127.0.0.1:1/hook")],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let id = channels().await[0]["id"].as_str().unwrap().to_owned();
    let at = format!("/ui/notifications/channels/{id}");

    let limited = b
        .post(
            &at,
            Some(&csrf),
            &[
                ("set_events", "1"),
                ("events", "run.failed"),
                ("events", "agent.offline"),
            ],
        )
        .await;
    assert_eq!(limited.status, StatusCode::OK, "{}", limited.body);
    assert_eq!(
        channels().await[0]["events"],
        json!(["run.failed", "agent.offline"])
    );
    let off = b.post(&at, Some(&csrf), &[("enabled", "false")]).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(channels().await[0]["enabled"], false);
    for (fields, says) in [
        (vec![("enabled", "maybe")], "enabled: true or false"),
        (
            vec![("set_events", "1"), ("events", "test")],
            "events[0]: one of",
        ),
        (
            vec![("set_events", "1"), ("events", "nope")],
            "events[0]: one of",
        ),
    ] {
        let page = b.post(&at, Some(&csrf), &fields).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{fields:?}: {}",
            page.body
        );
        assert!(page.text().contains(says), "{fields:?}: {}", page.body);
    }
    // None ticked is every alert again; turned back on.
    let all = b
        .post(
            &at,
            Some(&csrf),
            &[("set_events", "1"), ("enabled", "true")],
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert!(
        all.text()
            .contains("Channel ops saved: on, for every alert."),
        "{}",
        all.body
    );
    let c = channels().await[0].clone();
    assert_eq!(
        (c["enabled"].clone(), c["events"].clone()),
        (json!(true), json!([]))
    );

    let o = Browser::signed_in(&h, &other).await;
    let csrf_o = o.get("/ui/notifications").await.csrf();
    assert_eq!(
        o.get(&format!("{at}/delete")).await.status,
        StatusCode::NOT_FOUND
    );
    for (path, fields) in [
        (format!("{at}/delete"), vec![]),
        (at.clone(), vec![("enabled", "false")]),
    ] {
        let page = o.post(&path, Some(&csrf_o), &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
    }
    assert_eq!(channels().await, vec![c], "nothing changed");

    let confirm = b.get(&format!("{at}/delete")).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(confirm.text().contains("<h1>Delete channel ops?</h1>"));
    assert_eq!(channels().await.len(), 1);
    let deleted = b.post(&format!("{at}/delete"), Some(&csrf), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.location(), "/ui/notifications");
    assert_eq!(channels().await, Vec::<Value>::new());
    assert!(b.get("/ui/notifications").await.text().contains("None yet"));
}

/// The next server-sent event of `body` (its text up to the blank line), or `None` once
/// the stream has ended; fails if nothing comes within 10 seconds.
async fn next_event(body: &mut Body, buffered: &mut String) -> Option<String> {
    use http_body_util::BodyExt;
    loop {
        if let Some(end) = buffered.find("\n\n") {
            let event = buffered[..end].to_owned();
            buffered.drain(..end + 2);
            return Some(event);
        }
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event or the stream's end within 10 s");
        match frame {
            None => return None,
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    buffered.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        }
    }
}

#[tokio::test]
async fn a_runs_event_stream_ends_when_its_session_does() {
    use tower::ServiceExt;
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    // A queued run: its stream stays open until the run ends or the session does.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (status, body) = h
            .call(
                Method::POST,
                &format!("/v1/jobs/{job}/run"),
                Some(&op),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        runs.push(body["run"]["id"].as_str().unwrap().to_owned());
    }
    let open = |b: &Browser<'_>, run: &str| {
        Request::get(format!("/ui/runs/{run}/events"))
            .header(header::HOST, "127.0.0.1:9")
            .header(header::COOKIE, b.cookie.clone().unwrap())
            .body(Body::empty())
            .unwrap()
    };

    // Signed out in another tab: the stream says so and ends.
    let b = Browser::signed_in(&h, &op).await;
    let response = h.app.clone().oneshot(open(&b, &runs[0])).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut buffered = String::new();
    let first = next_event(&mut body, &mut buffered).await.unwrap();
    assert!(
        first.contains("event: progress") && first.contains("queued"),
        "{first}"
    );
    let csrf = b.get("/ui/agents").await.csrf();
    assert_eq!(
        b.post("/ui/logout", Some(&csrf), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let mut seen = Vec::new();
    while let Some(event) = next_event(&mut body, &mut buffered).await {
        seen.push(event);
    }
    assert!(
        seen.last().is_some_and(|e| e.contains("event: signed-out")),
        "{seen:?}"
    );
    // Reconnecting with the old cookie is refused.
    let again = h.app.clone().oneshot(open(&b, &runs[0])).await.unwrap();
    assert_ne!(again.status(), StatusCode::OK);

    // The operator token revoked while a stream is open: the same.
    let b = Browser::signed_in(&h, &op).await;
    let response = h.app.clone().oneshot(open(&b, &runs[1])).await.unwrap();
    let mut body = response.into_body();
    let mut buffered = String::new();
    assert!(next_event(&mut body, &mut buffered)
        .await
        .unwrap()
        .contains("event: progress"));
    h.revoke_operator_token(&tenant).await;
    let mut seen = Vec::new();
    while let Some(event) = next_event(&mut body, &mut buffered).await {
        seen.push(event);
    }
    assert!(
        seen.last().is_some_and(|e| e.contains("event: signed-out")),
        "{seen:?}"
    );
}

/// The self-backups page checks restore points against storage: a restore point whose
/// snapshot was forgotten behind the database's back is counted, removed only by the
/// second button, and only the admin may ask (with the form's CSRF token).
#[tokio::test]
async fn the_admin_checks_restore_points_against_storage_and_removes_the_gone_ones() {
    use coffer_adapters::repo::config::names;
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let (_src, first, second) = h.two_backups_a_change_apart(&op, &agent, &job).await;
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points/{first}"),
            Some(&op),
            None,
        )
        .await;
    let gone = body["restore_point"]["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let repo = h.open_repository(&agent, &agent.key_b64).unwrap();
    let id: [u8; 16] = hex::decode(&gone).unwrap().try_into().unwrap();
    repo.store()
        .delete(&repo.object(&names::snapshot(&id)).unwrap())
        .unwrap();

    let operator = Browser::signed_in(&h, &op).await;
    let csrf = operator.get("/ui/agents").await.csrf();
    let refused = operator.post("/ui/admin/reconcile", Some(&csrf), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let a = Browser::signed_in(&h, &h.admin).await;
    let csrf = a.get("/ui/admin/self-backups").await.csrf();
    let without = a
        .post("/ui/admin/reconcile", None, &[("apply", "true")])
        .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    let checked = a.post("/ui/admin/reconcile", Some(&csrf), &[]).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    let text = checked.text();
    assert!(
        text.contains("1 restore point(s) name a snapshot gone from storage."),
        "{text}"
    );
    assert!(text.contains("Remove the 1 restore point(s) whose snapshot is gone"));
    let listed = || async {
        let (_, body) = h
            .call(Method::GET, "/v1/restore-points", Some(&op), None)
            .await;
        body["restore_points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rp| rp["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed().await.len(), 2, "checking removes nothing");

    let applied = a
        .post("/ui/admin/reconcile", Some(&csrf), &[("apply", "true")])
        .await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert!(
        applied.text().contains("gone from storage; 1 removed."),
        "{}",
        applied.text()
    );
    assert_eq!(listed().await, vec![second]);
}
