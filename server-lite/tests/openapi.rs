//! The OpenAPI file and the router cannot drift: every route the router declares is in
//! `openapi.json` with its methods, every documented operation is answered by a route,
//! and the server serves the same file.

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::Harness;

fn documented() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((path.clone(), method.clone()));
        }
    }
    out
}

/// `(path, method)` of every `.route(...)` in the router's source.
fn declared() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files = vec![format!("{dir}/routes.rs")];
    for entry in std::fs::read_dir(format!("{dir}/routes")).unwrap() {
        files.push(entry.unwrap().path().display().to_string());
    }
    let mut out = BTreeSet::new();
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        let mut rest = src.as_str();
        while let Some(start) = rest.find(".route(\"") {
            let call = &rest[start + ".route(".len()..];
            // The call ends at the parenthesis that closes `.route(`.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in call.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &call[..end];
            let path = call[1..].split('"').next().unwrap().to_owned();
            let path = if path == "/s3/{*path}" {
                "/s3/{bucket}/{key}".to_owned()
            } else {
                path
            };
            let mut methods = Vec::new();
            for m in ["get", "post", "put", "delete", "patch", "head", "any"] {
                let needle = format!("{m}(");
                let mut from = 0;
                while let Some(i) = call[from..].find(&needle) {
                    let at = from + i;
                    let before = call[..at].chars().last().unwrap_or(' ');
                    if !(before.is_alphanumeric() || before == '_') {
                        methods.push(m);
                    }
                    from = at + needle.len();
                }
            }
            assert!(!methods.is_empty(), "{file}: no method for {path}");
            for m in methods {
                if m == "any" {
                    for m in ["get", "head", "put", "post", "delete"] {
                        out.insert((path.clone(), m.to_owned()));
                    }
                } else {
                    out.insert((path.clone(), m.to_owned()));
                }
            }
            rest = &rest[start + 8..];
        }
    }
    out
}

#[test]
fn every_declared_route_is_documented() {
    let documented = documented();
    let declared = declared();
    assert!(
        declared.len() > 30,
        "the source scan found only {declared:?}"
    );
    let missing: Vec<_> = declared.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_the_file_is_served() {
    let h = Harness::new();
    for (path, method) in documented() {
        let concrete = path
            .replace("{bucket}", "coffer")
            .replace("{key}", "some/key")
            .replace("{run_id}", "1")
            .replace("{id}", "1");
        let request = Request::builder()
            .method(method.to_uppercase().parse::<Method>().unwrap())
            .uri(&concrete)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = h.send(request).await;
        let text = String::from_utf8_lossy(&body);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND && text.contains("route not found")),
            "{method} {path} is documented but not routed"
        );
    }
    let (status, _, body) = h
        .send(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, file);
}
