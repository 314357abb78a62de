//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven over
//! the DevTools protocol, against a real `coffer-server` and a real agent started with
//! the command the dashboard prints. The admin makes a tenant and an operator token on
//! the pages; the operator signs in (typing the token), enrols an agent (the command is
//! shown once, and gone on reload), creates a job from the form (with its next runs
//! previewed), watches the run's progress change without a reload, browses the restore
//! point, restores two chosen files (checked on disk), restores in bulk, and reads the
//! audit entry; then sign-out ends the session, and so does revoking the token.
//! Screenshots of the main pages go to server-lite/docs/screenshots/.
//!
//! The HTTP-level checks (CSRF, origins, throttling, another tenant refused every page
//! and action) are in server-lite/tests/dashboard.rs, where they need no browser.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;
use support::server::{free_port, server_binary, start_server, Killed};
use support::Scratch;

/// The system's Chromium, or a failure saying how to install it.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "the dashboard's browser test needs Chromium: install it with \
         `apt-get install -y chromium` (Debian) and run the test again"
    );
}

fn browser() -> Browser {
    let no_shm = OsStr::new("--disable-dev-shm-usage");
    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        // Tests run as root in CI, where Chromium's sandbox cannot start.
        .sandbox(false)
        .window_size(Some((1000, 800)))
        .args(vec![no_shm])
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    Browser::new(options).expect("starting headless Chromium")
}

/// The value of a JavaScript expression in the page.
fn js(tab: &Tab, expression: &str) -> Value {
    tab.evaluate(expression, false)
        .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
        .value
        .unwrap_or(Value::Null)
}

/// Waits until `expression` is truthy in the page.
fn wait_for(tab: &Tab, expression: &str, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let v = js(tab, &format!("Boolean({expression})"));
        if v == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let text = js(tab, "document.body ? document.body.innerText : ''");
            panic!("timed out waiting for {what}; the page reads: {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn go(tab: &Tab, url: &str) {
    tab.navigate_to(url).unwrap();
    tab.wait_until_navigated().unwrap();
}

/// Where the page is now (from the page itself, not the tab's cached target info).
fn here(tab: &Tab) -> String {
    js(tab, "location.href")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn text(tab: &Tab) -> String {
    js(tab, "document.body.innerText")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Sets a form field's value (as typing would) by its id.
fn fill(tab: &Tab, id: &str, value: &str) {
    let v = serde_json::to_string(value).unwrap();
    js(
        tab,
        &format!(
            "(() => {{ const e = document.getElementById('{id}'); e.value = {v}; \
             e.dispatchEvent(new Event('input')); return true; }})()"
        ),
    );
}

/// Clicks the element and waits for the page it leads to (a new document, loaded).
fn click(tab: &Tab, selector: &str) {
    js(tab, "window.beforeClick = true");
    tab.wait_for_element(selector).unwrap().click().unwrap();
    wait_for(
        tab,
        "window.beforeClick === undefined && document.readyState === 'complete'",
        Duration::from_secs(20),
        &format!("the page after clicking {selector}"),
    );
}

fn screenshot(tab: &Tab, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server-lite/docs/screenshots");
    fs::create_dir_all(&dir).unwrap();
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

fn sign_in(tab: &Tab, base: &str, token: &str) {
    go(tab, &format!("{base}/ui/login"));
    // By keyboard, as a person would: the field, the token (pasted: inserted as text
    // in one go, where typing key by key takes seconds), Enter.
    js(tab, "window.beforeClick = true");
    tab.wait_for_element("#token").unwrap().click().unwrap();
    tab.send_character(token).unwrap();
    tab.press_key("Enter").unwrap();
    wait_for(
        tab,
        "window.beforeClick === undefined && document.readyState === 'complete' \
         && !location.pathname.startsWith('/ui/login')",
        Duration::from_secs(10),
        "sign-in",
    );
}

/// The dashboard's commands run with `sh`, `coffer` on the PATH and the agent's state
/// under the scratch folder.
fn shell(s: &Scratch, command: &str) -> Command {
    let bin_dir = Path::new(support::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.args(["-c", command])
        .current_dir(s.dir.path())
        .env("PATH", path)
        .env("XDG_STATE_HOME", s.path("state"))
        .env_remove("COFFER_ENROLL_TOKEN");
    c
}

#[test]
fn an_operator_enrols_backs_up_watches_and_restores_in_a_real_browser() {
    let s = Scratch::new();
    let server = start_server(&server_binary(), &s.path("server-data"), free_port());
    let base = server.url.clone();
    let browser = browser();
    let tab = browser.new_tab().unwrap();
    let started = Instant::now();
    let step = |what: &str| eprintln!("{:>6.1} s: {what}", started.elapsed().as_secs_f64());
    tab.set_default_timeout(Duration::from_secs(20));

    // The admin: a tenant and an operator token, on the pages.
    sign_in(&tab, &base, &server.admin);
    assert!(here(&tab).ends_with("/ui/admin/tenants"), "{}", here(&tab));
    fill(&tab, "name", "acme");
    click(&tab, "form[action='/ui/admin/tenants'] button[type=submit]");
    fill(&tab, "label", "ops");
    click(&tab, "form[action$='/tokens'] button[type=submit]");
    let op_token = js(
        &tab,
        "document.getElementById('operator-token').textContent",
    )
    .as_str()
    .unwrap()
    .to_owned();
    assert!(op_token.starts_with("cfo_"), "{op_token}");
    click(&tab, "form.signout button");
    assert!(here(&tab).ends_with("/ui/login"), "{}", here(&tab));

    step("signed in as admin, made tenant");
    // The operator enrols a machine: the commands, once.
    sign_in(&tab, &base, &op_token);
    assert!(here(&tab).ends_with("/ui/agents"), "{}", here(&tab));
    fill(&tab, "label", "nas1");
    click(&tab, "form[action='/ui/agents/enrol'] button[type=submit]");
    let enrol = js(&tab, "document.getElementById('enrol-command').textContent")
        .as_str()
        .unwrap()
        .to_owned();
    let run = js(&tab, "document.getElementById('run-command').textContent")
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        enrol.starts_with("COFFER_ENROLL_TOKEN=cfe_")
            && enrol.contains(&format!(
                "coffer agent enroll --server {base} --name 'nas1'"
            )),
        "{enrol}"
    );
    let secret = enrol
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("COFFER_ENROLL_TOKEN=")
        .to_owned();
    go(&tab, &format!("{base}/ui/agents"));
    let reloaded = js(&tab, "document.documentElement.outerHTML");
    assert!(!reloaded.as_str().unwrap().contains(&secret));
    assert!(!reloaded.as_str().unwrap().contains("COFFER_ENROLL_TOKEN"));

    step("enrolment page");
    // The new machine runs exactly what the page printed.
    let out = shell(&s, &enrol).output().unwrap();
    assert!(
        out.status.success(),
        "{enrol}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = fs::File::create(s.path("agent.log")).unwrap();
    let _agent = Killed(
        shell(&s, &format!("exec {run}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        go(&tab, &format!("{base}/ui/agents"));
        if text(&tab).contains("online") {
            break;
        }
        assert!(Instant::now() < deadline, "the agent never came online");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(text(&tab).contains("nas1"));
    // The agent reported the machine it runs on.
    let platform = format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH);
    assert!(text(&tab).contains(&platform), "{}", text(&tab));
    screenshot(&tab, "agents");

    step("agent online");
    // 16 MB of random bytes, uploaded at 2 MiB/s: a backup of several seconds.
    let src = s.path("data");
    fs::create_dir_all(src.join("docs")).unwrap();
    for i in 0..16u64 {
        fs::write(
            src.join(format!("f{i:02}.bin")),
            support::noise(1_000_000, 7 + i),
        )
        .unwrap();
    }
    fs::write(src.join("docs/readme.txt"), b"restore me\n").unwrap();

    go(&tab, &format!("{base}/ui/jobs/new"));
    fill(&tab, "name", "nightly");
    fill(&tab, "sources", src.to_str().unwrap());
    fill(&tab, "excludes", "*.tmp");
    fill(&tab, "schedule", "30 2 * * *");
    fill(&tab, "time_zone", "Europe/Berlin");
    fill(&tab, "keep_last", "7");
    fill(&tab, "upload_limit", "2MiB/s");
    wait_for(
        &tab,
        "document.getElementById('schedule-preview').textContent.includes('Next runs (Europe/Berlin)')",
        Duration::from_secs(10),
        "the schedule's preview",
    );
    assert!(js(
        &tab,
        "document.getElementById('schedule-preview').textContent"
    )
    .as_str()
    .unwrap()
    .contains("02:30"),);
    click(&tab, "form[action='/ui/jobs'] button[type=submit]");
    let job_url = here(&tab);
    assert!(job_url.contains("/ui/jobs/"), "{job_url}");
    let page = text(&tab);
    assert!(
        page.contains("Job nightly") && page.contains("2.0 MiB/s"),
        "{page}"
    );
    go(&tab, &format!("{base}/ui/jobs"));
    screenshot(&tab, "jobs");
    go(&tab, &job_url);

    step("job created");
    // Run now: the run's page updates itself as the agent reports.
    click(&tab, "form[action$='/run'] button");
    assert!(here(&tab).contains("/ui/runs/"), "{}", here(&tab));
    js(&tab, "window.notReloaded = true");
    // Each distinct state of the progress section as shown (the update counter aside).
    js(
        &tab,
        "window.seen = new Set(); const shown = () => { const c = document.getElementById('run').cloneNode(true); \
         c.querySelector('#run-updates').remove(); window.seen.add(c.innerText); }; shown(); \
         new MutationObserver(shown).observe(document.getElementById('run'), \
         {subtree: true, childList: true, characterData: true, attributes: true})",
    );
    wait_for(
        &tab,
        "document.getElementById('run-status').textContent === 'running' \
         && Number(document.getElementById('run-updates').textContent) >= 2",
        Duration::from_secs(30),
        "the run's progress",
    );
    screenshot(&tab, "run-in-progress");
    wait_for(
        &tab,
        "document.getElementById('run-status').textContent === 'succeeded'",
        Duration::from_secs(90),
        "the run's end",
    );
    let updates = js(
        &tab,
        "Number(document.getElementById('run-updates').textContent)",
    );
    assert!(updates.as_f64().unwrap() >= 3.0, "{updates}");
    assert_eq!(js(&tab, "window.notReloaded === true"), Value::Bool(true));
    let seen = js(&tab, "JSON.stringify([...window.seen])");
    let seen: Vec<String> = serde_json::from_str(seen.as_str().unwrap()).unwrap();
    assert!(
        seen.len() >= 3,
        "the progress shown changed at least twice: {seen:#?}"
    );
    assert_eq!(
        js(&tab, "document.getElementById('run').dataset.ended"),
        Value::String("true".to_owned())
    );

    step("backup ended");
    // The restore point's files; two chosen, restored on the agent, checked on disk.
    go(&tab, &format!("{base}/ui/restore-points"));
    click(&tab, "table a[href^='/ui/restore-points/']");
    let rp_url = here(&tab);
    let src_text = src.to_str().unwrap();
    let encoded = js(
        &tab,
        &format!(
            "encodeURIComponent({})",
            serde_json::to_string(src_text).unwrap()
        ),
    );
    go(
        &tab,
        &format!("{rp_url}?path={}", encoded.as_str().unwrap()),
    );
    let listing = text(&tab);
    assert!(
        listing.contains("f03.bin") && listing.contains("docs/"),
        "{listing}"
    );
    screenshot(&tab, "restore-point-files");
    for name in ["f03.bin", "docs"] {
        let path = serde_json::to_string(&format!("{src_text}/{name}")).unwrap();
        js(
            &tab,
            &format!("document.querySelector('input[name=paths][value=' + JSON.stringify({path}) + ']').checked = true"),
        );
    }
    let target = s.path("restored");
    fill(&tab, "target", target.to_str().unwrap());
    click(&tab, "form[action$='/restore'] fieldset button");
    assert!(here(&tab).contains("/ui/runs/"), "{}", here(&tab));
    wait_for(
        &tab,
        "document.getElementById('run-status').textContent === 'succeeded'",
        Duration::from_secs(60),
        "the restore",
    );
    let restored: Vec<PathBuf> = walk(&target);
    let find = |name: &str| {
        restored
            .iter()
            .find(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not restored: {restored:?}"))
            .clone()
    };
    assert_eq!(
        fs::read(find("f03.bin")).unwrap(),
        support::noise(1_000_000, 10)
    );
    assert_eq!(fs::read(find("docs/readme.txt")).unwrap(), b"restore me\n");
    assert!(
        !restored.iter().any(|p| p.ends_with("f04.bin")),
        "only the chosen paths: {restored:?}"
    );

    step("restored");
    // A bulk restore of the restore point, with its per-item result and totals.
    go(&tab, &format!("{base}/ui/restore-points"));
    js(
        &tab,
        "document.querySelector('input[name=restore_point_id]').checked = true",
    );
    fill(&tab, "bulk-target", s.path("bulk").to_str().unwrap());
    click(&tab, "#bulk fieldset button");
    let bulk = text(&tab);
    assert!(bulk.contains("1 of 1 queued, 0 failed"), "{bulk}");

    // The audit page, filtered to restores.
    go(&tab, &format!("{base}/ui/audit?action=restore."));
    let audit = text(&tab);
    assert!(
        audit.contains("restore.request") && audit.contains("restore.bulk"),
        "{audit}"
    );
    assert!(!audit.contains("job.create"), "the filter applies: {audit}");
    screenshot(&tab, "audit");

    step("audit read");
    on_a_phone_and_by_keyboard(&tab, &base, &[&job_url, &rp_url]);
    step("phone and keyboard");
    // Sign-out ends the session; a new one ends when the admin revokes the token.
    click(&tab, "form.signout button");
    go(&tab, &format!("{base}/ui/jobs"));
    assert!(here(&tab).ends_with("/ui/login"), "{}", here(&tab));
    sign_in(&tab, &base, &op_token);
    go(&tab, &format!("{base}/ui/jobs"));
    assert!(text(&tab).contains("nightly"));
    revoke_operator_token(&base, &server.admin);
    go(&tab, &format!("{base}/ui/jobs"));
    assert!(here(&tab).ends_with("/ui/login"), "{}", here(&tab));
    step("done");
}

/// Each main page on a phone's screen (375 CSS pixels wide): the page itself never
/// scrolls sideways (wide tables scroll inside themselves) and every form control has
/// a label. Then the keyboard alone: Tab reaches the navigation's Jobs link and Enter
/// follows it.
fn on_a_phone_and_by_keyboard(tab: &Tab, base: &str, more: &[&str]) {
    use headless_chrome::protocol::cdp::Emulation;
    let phone: Emulation::SetDeviceMetricsOverride = serde_json::from_value(
        serde_json::json!({"width": 375, "height": 740, "deviceScaleFactor": 2, "mobile": true}),
    )
    .unwrap();
    tab.call_method(phone).unwrap();
    let mut pages: Vec<String> = [
        "agents",
        "jobs",
        "jobs/new",
        "runs",
        "restore-points",
        "usage",
        "audit",
        "notifications",
    ]
    .iter()
    .map(|p| format!("{base}/ui/{p}"))
    .collect();
    pages.extend(more.iter().map(|p| (*p).to_owned()));
    for page in &pages {
        go(tab, page);
        assert_eq!(
            js(tab, "window.innerWidth"),
            Value::from(375),
            "the phone's viewport"
        );
        let overflow = js(
            tab,
            "document.documentElement.scrollWidth - window.innerWidth",
        );
        assert!(
            overflow.as_f64().unwrap() <= 0.0,
            "{page} scrolls sideways on a phone by {overflow} px"
        );
        let unlabelled = js(
            tab,
            "JSON.stringify([...document.querySelectorAll('input, select, textarea')]              .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length)                      && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))              .map(e => e.outerHTML))",
        );
        assert_eq!(
            unlabelled.as_str().unwrap(),
            "[]",
            "{page}: form controls without a label"
        );
    }
    go(tab, &format!("{base}/ui/jobs/new"));
    screenshot(tab, "phone-new-job");

    go(tab, &format!("{base}/ui/agents"));
    let mut reached = false;
    for _ in 0..30 {
        tab.press_key("Tab").unwrap();
        let focused = js(tab, "document.activeElement.getAttribute('href')");
        if focused.as_str() == Some("/ui/jobs") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the Jobs link");
    js(tab, "window.beforeClick = true");
    tab.press_key("Enter").unwrap();
    wait_for(
        tab,
        "window.beforeClick === undefined && document.readyState === 'complete'",
        Duration::from_secs(10),
        "the Jobs page by keyboard",
    );
    assert!(here(tab).ends_with("/ui/jobs"), "{}", here(tab));
    tab.call_method(Emulation::ClearDeviceMetricsOverride(None))
        .unwrap();
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Revokes the (one) tenant's operator tokens through the admin API.
fn revoke_operator_token(base: &str, admin: &str) {
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| -> Value {
        let body = client
            .get(format!("{base}{path}"))
            .bearer_auth(admin)
            .send()
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    };
    let tenants = get("/v1/admin/tenants");
    let tenant = tenants["tenants"][0]["id"].as_str().unwrap().to_owned();
    let tokens = get(&format!("/v1/admin/tenants/{tenant}/operator-tokens"));
    for t in tokens["tokens"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        let status = client
            .post(format!(
                "{base}/v1/admin/tenants/{tenant}/operator-tokens/{id}/revoke"
            ))
            .bearer_auth(admin)
            .send()
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }
}
