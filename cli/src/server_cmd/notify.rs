//! `coffer server notify …`: notification channels, deliveries, alerts and the
//! tenant's alert settings (with `--admin`, the server's own channels and alerts).

use serde_json::{json, Value};

use super::args::{ChannelAdd, NotifyVerb};
use super::client::ServerClient;
use super::table::{col, details, render, rows, text, time};
use super::{id, show};
use crate::exit::{CliError, Result};

/// Where the SMTP password comes from when there is no terminal to ask on.
const SMTP_PASSWORD_ENV: &str = "COFFER_SMTP_PASSWORD";

/// Runs a `notify` verb.
pub(crate) fn notify(c: &ServerClient, verb: &NotifyVerb, json: bool) -> Result<()> {
    match verb {
        NotifyVerb::Add(add) => add_channel(c, add, json),
        NotifyVerb::Channels(scope) => {
            let path = if scope.admin {
                "/v1/admin/notifications/channels"
            } else {
                "/v1/notifications/channels"
            };
            let v = c.get(path, &[])?;
            let cols = [
                col!("ID", "id"),
                col!("NAME", "name"),
                col!("KIND", "kind"),
                col!("TO", |ch| match ch["kind"].as_str() {
                    Some("webhook") => text(&ch["config"]["url"]),
                    _ => ch["config"]["to"]
                        .as_array()
                        .map(|to| to.iter().map(text).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                }),
                col!("EVENTS", |ch| {
                    let list: Vec<String> = ch["events"]
                        .as_array()
                        .map(|e| e.iter().map(text).collect())
                        .unwrap_or_default();
                    if list.is_empty() {
                        "all".to_owned()
                    } else {
                        list.join(",")
                    }
                }),
                col!("ON", |ch| if ch["enabled"] == true { "yes" } else { "no" }
                    .to_owned()),
            ];
            show(json, &v, &render(rows(&v, "channels"), &cols))
        }
        NotifyVerb::Update {
            id: channel,
            enable,
            disable,
            events,
            scope,
        } => {
            let mut body = serde_json::Map::new();
            if *enable || *disable {
                body.insert("enabled".into(), Value::Bool(*enable));
            }
            if let Some(events) = events {
                let list: Vec<&String> = events.iter().filter(|e| *e != "all").collect();
                body.insert("events".into(), json!(list));
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --enable, --disable or --events".into(),
                ));
            }
            let path = if scope.admin {
                format!("/v1/admin/notifications/channels/{}", id(channel)?)
            } else {
                format!("/v1/notifications/channels/{}", id(channel)?)
            };
            let v = c.patch(&path, &Value::Object(body))?;
            show(json, &v, &format!("channel {channel} updated"))
        }
        NotifyVerb::Delete { id: channel, scope } => {
            let path = if scope.admin {
                format!("/v1/admin/notifications/channels/{}", id(channel)?)
            } else {
                format!("/v1/notifications/channels/{}", id(channel)?)
            };
            let v = c.delete(&path, &[])?;
            show(json, &v, &format!("channel {channel} removed"))
        }
        NotifyVerb::Test { id: channel, scope } => {
            let path = if scope.admin {
                format!("/v1/admin/notifications/channels/{}/test", id(channel)?)
            } else {
                format!("/v1/notifications/channels/{}/test", id(channel)?)
            };
            let v = c.post(&path, None)?;
            let d = &v["delivery"];
            if d["status"] == "sent" {
                show(json, &v, &format!("sample sent through channel {channel}"))
            } else {
                show(json, &v, "")?;
                Err(CliError::Refused(format!(
                    "the sample did not go through channel {channel}: {} (it will be retried; \
                     see `coffer server notify deliveries`)",
                    text(&d["last_error"])
                )))
            }
        }
        NotifyVerb::Deliveries {
            status,
            limit,
            scope,
        } => {
            let path = if scope.admin {
                "/v1/admin/notifications/deliveries"
            } else {
                "/v1/notifications/deliveries"
            };
            let v = c.get(
                path,
                &[
                    ("status", status.clone()),
                    ("limit", limit.map(|l| l.to_string())),
                ],
            )?;
            let cols = [
                col!("ID", "id"),
                col!("CHANNEL", "channel_id"),
                col!("ALERT", "alert_id"),
                col!("STATUS", "status"),
                col!("ATTEMPTS", "attempts"),
                col!("CREATED", |d| time(&d["created_at"])),
                col!("NEXT", |d| time(&d["next_attempt_at"])),
                col!("LAST ERROR", "last_error"),
            ];
            show(json, &v, &render(rows(&v, "deliveries"), &cols))
        }
        NotifyVerb::Alerts { open, scope } => {
            let path = if scope.admin {
                "/v1/admin/alerts"
            } else {
                "/v1/alerts"
            };
            let v = c.get(path, &[("open", open.then(|| "true".to_owned()))])?;
            let cols = [
                col!("ID", "id"),
                col!("KIND", "kind"),
                col!("ABOUT", "subject"),
                col!("SUMMARY", "summary"),
                col!("TIMES", "occurrences"),
                col!("OPENED", |a| time(&a["opened_at"])),
                col!("CLEARED", |a| time(&a["resolved_at"])),
            ];
            show(json, &v, &render(rows(&v, "alerts"), &cols))
        }
        NotifyVerb::Settings {
            missed_grace,
            offline_after,
            repeat,
        } => {
            let mut v = c.get("/v1/notifications/settings", &[])?;
            if missed_grace.is_some() || offline_after.is_some() || repeat.is_some() {
                let mut s = v["settings"].clone();
                for (key, value) in [
                    ("missed_grace_secs", missed_grace),
                    ("offline_after_secs", offline_after),
                    ("repeat_secs", repeat),
                ] {
                    if let Some(n) = value {
                        s[key] = json!(n);
                    }
                }
                v = c.put("/v1/notifications/settings", &s)?;
            }
            let s = &v["settings"];
            show(
                json,
                &v,
                &details(&[
                    (
                        "missed after",
                        format!("{} s past due", text(&s["missed_grace_secs"])),
                    ),
                    (
                        "offline after",
                        format!("{} s silent", text(&s["offline_after_secs"])),
                    ),
                    (
                        "repeat at most every",
                        format!("{} s", text(&s["repeat_secs"])),
                    ),
                ]),
            )
        }
    }
}

fn add_channel(c: &ServerClient, add: &ChannelAdd, json: bool) -> Result<()> {
    let mut body = json!({ "name": add.name, "events": add.events });
    if let Some(url) = &add.webhook_url {
        body["kind"] = json!("webhook");
        body["webhook"] = json!({ "url": url });
    } else {
        let host = add.smtp_host.as_deref().unwrap_or_default();
        let mut email = json!({
            "host": host, "port": add.smtp_port, "tls": add.tls,
            "from": add.from, "to": add.to,
        });
        if let Some(file) = &add.ca_file {
            let pem = std::fs::read_to_string(file)
                .map_err(|e| CliError::io(format!("reading {}", file.display()), e))?;
            email["ca_pem"] = json!(pem);
        }
        body["kind"] = json!("email");
        if let Some(user) = &add.smtp_user {
            email["username"] = json!(user);
            let password = crate::secrets::passphrase(crate::secrets::PassphraseSpec {
                file: None,
                env: SMTP_PASSWORD_ENV,
                prompt: "SMTP password",
                confirm: false,
            })?;
            // In the request body only (serde_json's copy is not wiped: the same known
            // limit as the S3 secret's).
            body["password"] = json!(password.as_str());
        }
        body["email"] = email;
    }
    let path = if add.scope.admin {
        "/v1/admin/notifications/channels"
    } else {
        "/v1/notifications/channels"
    };
    let v = c.post(path, Some(&body))?;
    let ch = &v["channel"];
    let mut said = format!("channel {} added: {}", text(&ch["id"]), text(&ch["name"]));
    if let Some(secret) = v["secret"].as_str() {
        said.push_str(&format!(
            "\nsigning secret (shown once; the receiver checks webhook-signature with it):\n{secret}"
        ));
    }
    show(json, &v, &said)
}
