//! The admin's commands (tenants, operator tokens, the admin token, backends) and the
//! two with an admin and a tenant version (audit, usage).

use serde_json::{json, Value};

use super::args::{AdminTokenVerb, AuditArgs, BackendVerb, OperatorVerb, TenantVerb};
use super::client::ServerClient;
use super::table::{self, col, details, render, rows, text, time, Col};
use super::{id, show};
use crate::exit::{CliError, Result};

/// The environment variable a backend's S3 secret key may come from.
const S3_SECRET_ENV: &str = "COFFER_S3_SECRET_ACCESS_KEY";

/// `coffer server tenant …`.
pub(crate) fn tenant(c: &ServerClient, verb: &TenantVerb, json: bool) -> Result<()> {
    match verb {
        TenantVerb::Create { name, backend } => {
            let mut body = json!({"name": name});
            if let Some(b) = backend {
                body["backend_id"] = json!(b);
            }
            let v = c.post("/v1/admin/tenants", Some(&body))?;
            let t = &v["tenant"];
            show(
                json,
                &v,
                &format!("tenant {} created: {}", text(&t["id"]), text(&t["name"])),
            )
        }
        TenantVerb::List => {
            let v = c.get("/v1/admin/tenants", &[])?;
            let cols = [
                col!("ID", "id"),
                col!("NAME", "name"),
                col!("BACKEND", |t| {
                    let b = text(&t["backend_id"]);
                    if b.is_empty() {
                        "embedded".to_owned()
                    } else {
                        b
                    }
                }),
                col!("CREATED", |t| time(&t["created_at"])),
            ];
            show(json, &v, &render(rows(&v, "tenants"), &cols))
        }
        TenantVerb::Delete {
            id: t,
            purge,
            confirm,
        } => {
            let query = [
                ("purge", purge.then(|| "true".to_owned())),
                ("confirm", confirm.clone().filter(|_| *purge)),
            ];
            let v = c.delete(&format!("/v1/admin/tenants/{}", id(t)?), &query)?;
            show(json, &v, &format!("tenant {t} deleted"))
        }
    }
}

/// `coffer server operator …`.
pub(crate) fn operator(c: &ServerClient, verb: &OperatorVerb, json: bool) -> Result<()> {
    match verb {
        OperatorVerb::Create { tenant, label } => {
            let v = c.post(
                &format!("/v1/admin/tenants/{}/operator-tokens", id(tenant)?),
                Some(&json!({"label": label})),
            )?;
            // The secret is the output asked for: on stdout, once, nowhere else.
            show(
                json,
                &v,
                &format!(
                    "operator token {} for tenant {} (shown once, keep it safe):\n{}",
                    text(&v["id"]),
                    text(&v["tenant_id"]),
                    text(&v["token"])
                ),
            )
        }
        OperatorVerb::List { tenant } => {
            let v = c.get(
                &format!("/v1/admin/tenants/{}/operator-tokens", id(tenant)?),
                &[],
            )?;
            show(json, &v, &render(rows(&v, "tokens"), &token_cols()))
        }
        OperatorVerb::Revoke { id: token, tenant } => {
            let path = format!(
                "/v1/admin/tenants/{}/operator-tokens/{}/revoke",
                id(tenant)?,
                id(token)?
            );
            let v = c.post(&path, None)?;
            show(json, &v, &format!("operator token {token} revoked"))
        }
    }
}

/// The columns of a token list (operator and enrolment tokens).
pub(super) fn token_cols() -> [Col; 6] {
    [
        col!("ID", "id"),
        col!("LABEL", "label"),
        col!("CREATED", |t| time(&t["created_at"])),
        col!("EXPIRES", |t| time(&t["expires_at"])),
        col!("USED", |t| time(&t["used_at"])),
        col!("REVOKED", |t| time(&t["revoked_at"])),
    ]
}

/// `coffer server admin-token rotate`.
pub(crate) fn admin_token(c: &ServerClient, verb: &AdminTokenVerb, json: bool) -> Result<()> {
    match verb {
        AdminTokenVerb::Rotate => {
            let v = c.post("/v1/admin/token/rotate", None)?;
            show(
                json,
                &v,
                &format!(
                    "new admin token {} (shown once; every other admin token stopped \
                     working, update your config with `coffer server login`):\n{}",
                    text(&v["id"]),
                    text(&v["token"])
                ),
            )
        }
    }
}

/// `coffer server backend …`.
pub(crate) fn backend(c: &ServerClient, verb: &BackendVerb, json: bool) -> Result<()> {
    let cols = [
        col!("ID", "id"),
        col!("NAME", "name"),
        col!("ENDPOINT", "endpoint"),
        col!("BUCKET", "bucket"),
        col!("REGION", "region"),
        col!("CREATED", |b| time(&b["created_at"])),
    ];
    match verb {
        BackendVerb::Create {
            name,
            endpoint,
            bucket,
            region,
            access_key_id,
            virtual_hosted,
        } => {
            let secret = crate::secrets::passphrase(crate::secrets::PassphraseSpec {
                file: None,
                env: S3_SECRET_ENV,
                prompt: "S3 secret access key",
                confirm: false,
            })?;
            // The secret goes in the request body only (serde_json's copies of it are
            // not wiped: a known limit of building the body as a JSON value).
            let body = json!({
                "name": name, "endpoint": endpoint, "bucket": bucket, "region": region,
                "access_key_id": access_key_id, "path_style": !virtual_hosted,
                "secret_access_key": secret.as_str(),
            });
            let v = c.post("/v1/admin/backends", Some(&body))?;
            let b = &v["backend"];
            show(
                json,
                &v,
                &format!("backend {} created: {}", text(&b["id"]), text(&b["name"])),
            )
        }
        BackendVerb::List => {
            let v = c.get("/v1/admin/backends", &[])?;
            show(json, &v, &render(rows(&v, "backends"), &cols))
        }
        BackendVerb::Test { id: backend } => {
            let v = c.post(&format!("/v1/admin/backends/{}/test", id(backend)?), None)?;
            if v["ok"] == true {
                show(json, &v, &format!("backend {backend} passed its test"))
            } else {
                show(json, &v, "")?;
                Err(CliError::Refused(format!(
                    "backend {backend} failed its test: {}",
                    text(&v["error"])
                )))
            }
        }
    }
}

/// `coffer server audit`.
pub(crate) fn audit(c: &ServerClient, a: &AuditArgs, json: bool) -> Result<()> {
    let limit = a.limit.map(|l| l.to_string());
    let v = if a.admin {
        let tenant = match &a.tenant {
            Some(t) => Some(id(t)?.to_owned()),
            None => None,
        };
        c.get(
            "/v1/admin/audit",
            &[("limit", limit), ("tenant_id", tenant)],
        )?
    } else {
        c.get("/v1/audit", &[("limit", limit)])?
    };
    let cols = [
        col!("ID", "id"),
        col!("TIME", |e| time(&e["at"])),
        col!("TENANT", "tenant_id"),
        col!("ACTOR", "actor"),
        col!("ACTION", "action"),
        col!("TARGET", "target"),
        col!("OUTCOME", "outcome"),
        col!("DETAIL", "detail"),
    ];
    show(json, &v, &render(rows(&v, "entries"), &cols))
}

/// `coffer server usage`: the server's totals, whatever fields it sends, as `key: value`
/// lines, and a table of any list in it.
/// `coffer server reconcile [--apply]`: a row a repository; fails (exit 5) when a
/// repository's storage could not be listed, so a script does not take "nothing
/// missing" from a check that did not happen.
pub(crate) fn reconcile(c: &ServerClient, apply: bool, json: bool) -> Result<()> {
    let v = c.post("/v1/admin/reconcile", Some(&json!({ "apply": apply })))?;
    let r = &v["reconcile"];
    let cols = [
        col!("DESTINATION", "destination_id"),
        col!("TENANT", "tenant_id"),
        col!("RESTORE POINTS", "restore_points"),
        col!("SNAPSHOTS", |x| {
            let n = text(&x["snapshots"]);
            if n.is_empty() {
                "?".to_owned()
            } else {
                n
            }
        }),
        col!("MISSING", |x| x["missing"]
            .as_array()
            .map_or(0, Vec::len)
            .to_string()),
        col!("NOT LISTED", "unlisted"),
        col!("REMOVED", "removed"),
        col!("ERROR", "error"),
    ];
    let mut out = render(rows(r, "repositories"), &cols);
    let missing = r["missing"].as_u64().unwrap_or(0);
    out.push_str(&match (missing, apply) {
        (0, _) => "\nno restore point names a snapshot gone from storage".to_owned(),
        (n, false) => format!(
            "\n{n} restore point(s) name a snapshot gone from storage: \
             `coffer server reconcile --apply` removes them"
        ),
        (_, true) => format!("\n{} restore point(s) removed", text(&r["removed"])),
    });
    show(json, &v, &out)?;
    match r["failed"].as_u64().unwrap_or(0) {
        0 => Ok(()),
        n => Err(CliError::Io(format!(
            "the storage of {n} repository(ies) could not be listed; nothing there was checked"
        ))),
    }
}

pub(crate) fn usage(c: &ServerClient, admin: bool, json: bool) -> Result<()> {
    let path = if admin {
        "/v1/admin/usage"
    } else {
        "/v1/usage"
    };
    let v = c.get(path, &[])?;
    show(json, &v, &describe(&v)?)
}

/// An object of unknown shape for people: scalars as `key  value` lines (sizes in
/// binary units for fields named like bytes), arrays of objects as tables of their
/// scalar fields, nested objects flattened with dotted keys.
fn describe(v: &Value) -> Result<String> {
    let Value::Object(map) = v else {
        return Err(CliError::Other(format!("unexpected answer: {v}")));
    };
    let mut pairs = Vec::new();
    let mut tables = Vec::new();
    flatten("", map, &mut pairs, &mut tables);
    let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut out = details(&pairs);
    for (name, list) in tables {
        let keys: Vec<String> = list
            .first()
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut lines = vec![keys.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>()];
        for row in &list {
            lines.push(keys.iter().map(|k| scalar(k, &row[k.as_str()])).collect());
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&format!("{name}:\n{}", aligned(&lines)));
    }
    Ok(out)
}

fn flatten(
    prefix: &str,
    map: &serde_json::Map<String, Value>,
    pairs: &mut Vec<(String, String)>,
    tables: &mut Vec<(String, Vec<Value>)>,
) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(&key, inner, pairs, tables),
            Value::Array(list) if list.iter().all(Value::is_object) && !list.is_empty() => {
                tables.push((key, list.clone()));
            }
            other => pairs.push((key.clone(), scalar(&key, other))),
        }
    }
}

fn scalar(key: &str, v: &Value) -> String {
    if key.contains("bytes") {
        if let Some(n) = v.as_u64() {
            return format!("{} ({n})", table::size(n));
        }
    }
    text(v)
}

/// Rows of cells, the first the header, in aligned columns.
fn aligned(lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in lines {
        for (i, cell) in row.iter().enumerate() {
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(cell.chars().count()),
                None => widths.push(cell.chars().count()),
            }
        }
    }
    lines
        .iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
