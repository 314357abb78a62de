//! The dashboard's templates (minijinja), compiled into the binary and auto-escaped
//! (every name ends in `.html`). They are fed the API's JSON views, so a page shows
//! what its API route answers.

use std::sync::LazyLock;

use minijinja::{Environment, Value as Jinja};
use serde_json::Value;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("agents.html", include_str!("templates/agents.html")),
    ("agent.html", include_str!("templates/agent.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("job_form.html", include_str!("templates/job_form.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run_rows.html", include_str!("templates/run_rows.html")),
    ("run.html", include_str!("templates/run.html")),
    (
        "restore_points.html",
        include_str!("templates/restore_points.html"),
    ),
    ("files.html", include_str!("templates/files.html")),
    ("diff.html", include_str!("templates/diff.html")),
    ("restored.html", include_str!("templates/restored.html")),
    ("usage.html", include_str!("templates/usage.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("tenants.html", include_str!("templates/tenants.html")),
    ("tenant.html", include_str!("templates/tenant.html")),
    ("backends.html", include_str!("templates/backends.html")),
    (
        "notifications.html",
        include_str!("templates/notifications.html"),
    ),
    (
        "self_backups.html",
        include_str!("templates/self_backups.html"),
    ),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    build().unwrap_or_else(|e| {
        // Caught by the tests; in production every page would be the notice below.
        tracing::error!("dashboard templates: {e:#}");
        Environment::new()
    })
});

/// Every template compiled, with the filters they use.
fn build() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    env.add_filter("bytes", bytes);
    env.add_filter("when", when);
    env.add_filter("secs", secs);
    Ok(env)
}

/// `template` rendered with `context`. A template error (a bug, caught by the tests)
/// is logged and rendered as a short notice rather than a panic.
pub fn render(template: &str, context: Value) -> String {
    match ENV
        .get_template(template)
        .and_then(|t| t.render(Jinja::from_serialize(&context)))
    {
        Ok(html) => html,
        Err(e) => {
            let incident = crate::token::incident_id();
            tracing::error!(incident = %incident, "rendering {template}: {e:#}");
            format!("<!doctype html><title>Error</title><p>This page could not be shown (incident {incident}).</p>")
        }
    }
}

/// A byte count as people read it ("1.5 MiB"); empty for none.
fn bytes(v: Jinja) -> String {
    let n = u64::try_from(v.clone())
        .ok()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    n.map(|n| bytesize::ByteSize::b(n).display().iec().to_string())
        .unwrap_or_default()
}

/// An RFC 3339 time as people read it, in UTC ("2026-12-01 03:44 UTC").
fn when(v: Jinja) -> String {
    let Some(text) = v.as_str() else {
        return String::new();
    };
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%a %Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => text.to_owned(),
    }
}

/// Seconds as people read them ("1 h 2 min", "45 s").
fn secs(v: Jinja) -> String {
    let Ok(s) = u64::try_from(v) else {
        return String::new();
    };
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        if let Err(e) = build() {
            panic!("{e:#}");
        }
        for (name, _) in TEMPLATES {
            ENV.get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn values_are_escaped_and_filters_read_well() {
        let html = render(
            "error.html",
            serde_json::json!({"title": "x", "status": 400, "message": "<script>alert(1)</script>"}),
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert_eq!(bytes(Jinja::from(1536)), "1.5 KiB");
        assert_eq!(secs(Jinja::from(3720)), "1 h 2 min");
        assert_eq!(
            when(Jinja::from("2026-12-01T03:44:00Z")),
            "Tue 2026-12-01 03:44:00 UTC"
        );
    }
}
