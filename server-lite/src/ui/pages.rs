//! The operator's pages: agents and enrolment, jobs, runs (with live progress),
//! restore points (browse, restore, bulk restore, diff), storage use and the audit
//! log. Each calls the API's handler with the session's [`Operator`] and renders the
//! JSON view it answers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::session::{self, Session};
use super::{page, Form, Post, Signed, UiError, UiResult};
use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, Params};
use crate::routes::{jobs, operator, restores};
use crate::state::AppState;

/// How often the live run page's stream looks at the run's stored progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The operator's pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/agents", get(agents))
        .route("/ui/agents/enrol", post(enrol))
        .route("/ui/agents/{id}", get(agent))
        .route("/ui/agents/{id}/revoke", get(revoke_confirm).post(revoke))
        .route("/ui/jobs", get(jobs_page).post(create_job))
        .route("/ui/jobs/new", get(new_job))
        .route("/ui/jobs/{id}", get(job).post(edit_job))
        .route("/ui/jobs/{id}/edit", get(edit_job_page))
        .route("/ui/jobs/{id}/run", post(run_job))
        .route("/ui/jobs/{id}/delete", get(delete_confirm).post(delete_job))
        .route("/ui/schedule-preview", get(schedule_preview))
        .route("/ui/runs", get(runs))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/runs/{id}/events", get(run_events))
        .route("/ui/runs/{id}/cancel", post(cancel_run))
        .route("/ui/restore-points", get(restore_points))
        .route("/ui/restore-points/{id}", get(restore_point))
        .route("/ui/restore-points/{id}/restore", post(restore))
        .route("/ui/restores", post(bulk_restore))
        .route("/ui/diff", get(diff))
        .route("/ui/usage", get(usage))
        .route("/ui/audit", get(audit))
}

/// The JSON body of an API answer.
fn json_of(answer: Json<Value>) -> Value {
    answer.0
}

/// A form's fields as the API's JSON request type, with the API's own rules (unknown
/// fields, types) applied by the same deserializer.
pub(super) fn request<T: DeserializeOwned>(v: Value) -> Result<ApiJson<T>, ApiError> {
    serde_json::from_value(v)
        .map(ApiJson)
        .map_err(|e| ApiError::BadRequest {
            code: "invalid_field",
            message: e.to_string(),
        })
}

/// A number field: `None` if empty, 400 naming it if not a number.
pub(super) fn number(form: &Form, name: &str) -> Result<Option<u64>, ApiError> {
    form.text(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::field(name, "must be a whole number"))
        })
        .transpose()
}

fn params(pairs: &[(&str, String)]) -> Params {
    Params(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn op(session: &Session) -> UiResult<Operator> {
    Ok(session.operator()?)
}

async fn agent_list(state: &AppState, op: &Operator) -> UiResult<Value> {
    Ok(json_of(operator::list_agents(State(state.clone()), op.clone()).await?)["agents"].take())
}

async fn agents(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let list = agent_list(&state, &op).await?;
    let tokens = json_of(operator::list_enrolment_tokens(State(state.clone()), op).await?);
    Ok(page(
        &s,
        "agents.html",
        json!({"agents": list, "tokens": tokens["tokens"]}),
    ))
}

/// Shell-quotes `s` for the command the page shows (single quotes).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A new enrolment token, shown this once with the commands to run on the new machine.
async fn enrol(State(state): State<AppState>, post: Post) -> UiResult<Response> {
    let op = op(&post.session)?;
    let label = post.form.text("label").unwrap_or_default();
    let mut req = json!({"label": label});
    if let Some(ttl) = number(&post.form, "ttl_secs")? {
        req["ttl_secs"] = json!(ttl);
    }
    let (_, Json(created)) =
        operator::create_enrolment_token(State(state.clone()), op.clone(), request(req)?).await?;
    let server = state.config.public_url.as_str().trim_end_matches('/');
    let name = if label.is_empty() {
        String::new()
    } else {
        format!(" --name {}", shell_quote(&label))
    };
    let token = created["token"].as_str().unwrap_or_default();
    let command = zeroize::Zeroizing::new(format!(
        "COFFER_ENROLL_TOKEN={token} coffer agent enroll --server {server}{name}"
    ));
    let run = "coffer agent run";
    let list = agent_list(&state, &op).await?;
    let tokens = json_of(operator::list_enrolment_tokens(State(state.clone()), op).await?);
    let html = page(
        &post.session,
        "agents.html",
        json!({
            "agents": list,
            "tokens": tokens["tokens"],
            "enrolment": {
                "id": created["id"], "expires_at": created["expires_at"],
                "command": command.as_str(), "run": run,
            },
        }),
    );
    Ok((StatusCode::CREATED, html).into_response())
}

async fn agent(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let view =
        json_of(operator::get_agent(State(state.clone()), op.clone(), Path(id.clone())).await?);
    let logs = json_of(
        operator::agent_logs(
            State(state.clone()),
            op.clone(),
            Path(id.clone()),
            params(&[("limit", "100".to_owned())]),
        )
        .await?,
    );
    let jobs = json_of(
        jobs::list_jobs(
            State(state.clone()),
            op,
            params(&[("agent_id", id.clone())]),
        )
        .await?,
    );
    Ok(page(
        &s,
        "agent.html",
        json!({"agent": view["agent"], "destination": view["destination"],
               "logs": logs["lines"], "jobs": jobs["jobs"]}),
    ))
}

async fn revoke_confirm(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let view = json_of(operator::get_agent(State(state), op, Path(id.clone())).await?);
    let name = view["agent"]["name"].as_str().unwrap_or_default();
    Ok(page(
        &s,
        "confirm.html",
        json!({
            "title": format!("Revoke agent {name}?"),
            "message": "The agent's key stops working at once: it can no longer poll, upload or restore. Its restore points stay, restorable on another agent. This cannot be undone.",
            "action": format!("/ui/agents/{id}/revoke"),
            "button": "Revoke the agent",
            "back": format!("/ui/agents/{id}"),
        }),
    ))
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Redirect> {
    let op = op(&post.session)?;
    let _revoked = operator::revoke_agent(State(state), op, Path(id.clone())).await?;
    Ok(Redirect::to(&format!("/ui/agents/{id}")))
}

async fn jobs_page(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let list = json_of(jobs::list_jobs(State(state.clone()), op.clone(), params(&[])).await?);
    let agents = agent_list(&state, &op).await?;
    Ok(page(
        &s,
        "jobs.html",
        json!({"jobs": list["jobs"], "agents": agents}),
    ))
}

/// The job form's fields as the API's job JSON (every field: an edit replaces all).
fn job_json(form: &Form) -> Result<Value, ApiError> {
    let keep = |name: &str| number(form, name).map(|n| n.unwrap_or(0));
    Ok(json!({
        "name": form.text("name").unwrap_or_default(),
        "sources": form.lines("sources"),
        "excludes": form.lines("excludes"),
        "schedule": form.text("schedule"),
        "time_zone": form.text("time_zone").unwrap_or_else(|| "UTC".to_owned()),
        "retention": {
            "keep_last": keep("keep_last")?, "keep_daily": keep("keep_daily")?,
            "keep_weekly": keep("keep_weekly")?, "keep_monthly": keep("keep_monthly")?,
        },
        "level": number(form, "level")?.unwrap_or(3),
        "upload_limit": form.text("upload_limit"),
    }))
}

/// The job form again, with what was typed and why it was refused, at the API's status.
fn job_form_error(s: &Session, e: ApiError, form: &Form, agents: Value, action: &str) -> Response {
    let status = e.status();
    if !status.is_client_error() {
        return UiError::Api(e).into_response();
    }
    let job = json!({
        "agent_id": form.get("agent_id"), "name": form.get("name"),
        "sources": form.lines("sources"), "excludes": form.lines("excludes"),
        "schedule": form.get("schedule"), "time_zone": form.get("time_zone"),
        "retention": {"keep_last": form.get("keep_last"), "keep_daily": form.get("keep_daily"),
                      "keep_weekly": form.get("keep_weekly"), "keep_monthly": form.get("keep_monthly")},
        "level": form.get("level"), "upload_limit": form.get("upload_limit"),
    });
    let html = page(
        s,
        "job_form.html",
        json!({"job": job, "agents": agents, "action": action, "error": e.to_string(),
               "editing": action != "/ui/jobs"}),
    );
    (status, html).into_response()
}

async fn new_job(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let agents = agent_list(&state, &op).await?;
    Ok(page(
        &s,
        "job_form.html",
        json!({"agents": agents, "action": "/ui/jobs",
               "job": {"time_zone": "UTC", "level": 3, "retention": {}}}),
    ))
}

async fn create_job(State(state): State<AppState>, post: Post) -> UiResult<Response> {
    let op = op(&post.session)?;
    let created = async {
        let mut body = job_json(&post.form)?;
        body["agent_id"] = json!(post.form.text("agent_id").unwrap_or_default());
        jobs::create_job(State(state.clone()), op.clone(), request(body)?).await
    }
    .await;
    match created {
        Ok((_, Json(v))) => {
            let id = v["job"]["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/ui/jobs/{id}")).into_response())
        }
        Err(e) => {
            let agents = agent_list(&state, &op).await?;
            Ok(job_form_error(
                &post.session,
                e,
                &post.form,
                agents,
                "/ui/jobs",
            ))
        }
    }
}

async fn job(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let view = json_of(jobs::get_job(State(state.clone()), op.clone(), Path(id.clone())).await?);
    let retention = json_of(
        jobs::list_retention_runs(
            State(state.clone()),
            op.clone(),
            Path(id.clone()),
            params(&[("limit", "20".to_owned())]),
        )
        .await?,
    );
    let runs = json_of(
        operator::list_runs(
            State(state.clone()),
            op,
            params(&[("job_id", id.clone()), ("limit", "20".to_owned())]),
        )
        .await?,
    );
    Ok(page(
        &s,
        "job.html",
        json!({"job": view["job"], "retention_runs": retention["retention_runs"],
               "runs": runs["runs"]}),
    ))
}

async fn edit_job_page(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let view = json_of(jobs::get_job(State(state.clone()), op.clone(), Path(id.clone())).await?);
    let agents = agent_list(&state, &op).await?;
    Ok(page(
        &s,
        "job_form.html",
        json!({"job": view["job"], "agents": agents, "action": format!("/ui/jobs/{id}"),
               "editing": true}),
    ))
}

async fn edit_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Response> {
    let op = op(&post.session)?;
    let edited = async {
        let body = job_json(&post.form)?;
        jobs::edit_job(
            State(state.clone()),
            op.clone(),
            Path(id.clone()),
            request(body)?,
        )
        .await
    }
    .await;
    match edited {
        Ok(_) => Ok(Redirect::to(&format!("/ui/jobs/{id}")).into_response()),
        Err(e) => {
            let agents = agent_list(&state, &op).await?;
            Ok(job_form_error(
                &post.session,
                e,
                &post.form,
                agents,
                &format!("/ui/jobs/{id}"),
            ))
        }
    }
}

async fn run_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Redirect> {
    let op = op(&post.session)?;
    let (_, Json(v)) = jobs::run_job(State(state), op, Path(id)).await?;
    let run = v["run"]["id"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/runs/{run}")))
}

async fn delete_confirm(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let view = json_of(jobs::get_job(State(state), op, Path(id.clone())).await?);
    let name = view["job"]["name"].as_str().unwrap_or_default();
    Ok(page(
        &s,
        "confirm.html",
        json!({
            "title": format!("Delete job {name}?"),
            "message": "Its queued runs are cancelled. Choose what becomes of its restore points.",
            "action": format!("/ui/jobs/{id}/delete"),
            "button": "Delete the job",
            "back": format!("/ui/jobs/{id}"),
            "restore_points_choice": true,
        }),
    ))
}

async fn delete_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Redirect> {
    let op = op(&post.session)?;
    let choice = post
        .form
        .text("restore_points")
        .unwrap_or_else(|| "keep".to_owned());
    let _deleted = jobs::delete_job(
        State(state),
        op,
        Path(id),
        params(&[("restore_points", choice)]),
    )
    .await?;
    Ok(Redirect::to("/ui/jobs"))
}

/// The next due times of a schedule as typed (the job form's live preview): JSON
/// `{"next": [...]}` in the time zone given, or `{"error": ...}`.
async fn schedule_preview(Signed(s): Signed, params: Params) -> UiResult<Json<Value>> {
    op(&s)?;
    let schedule = params.0.get("schedule").map_or("", |v| v.trim());
    let zone_name = params
        .0
        .get("time_zone")
        .map_or("UTC", |v| v.trim())
        .to_owned();
    let zone_name = if zone_name.is_empty() {
        "UTC".to_owned()
    } else {
        zone_name
    };
    if schedule.is_empty() {
        return Ok(Json(
            json!({"next": [], "note": "no schedule: run now only"}),
        ));
    }
    let answer = crate::scheduler::parse_zone(&zone_name)
        .and_then(|zone| {
            crate::scheduler::next_times(schedule, zone, crate::db::now(), 5).map(|t| (zone, t))
        })
        .map(|(zone, times)| {
            times
                .into_iter()
                .filter_map(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| {
                    t.with_timezone(&zone)
                        .format("%a %-d %b %Y, %H:%M %Z")
                        .to_string()
                })
                .collect::<Vec<_>>()
        });
    Ok(Json(match answer {
        Ok(next) => json!({"next": next, "time_zone": zone_name}),
        Err(e) => json!({"error": e}),
    }))
}

async fn runs(
    State(state): State<AppState>,
    Signed(s): Signed,
    query: Params,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let keep: HashMap<String, String> = query
        .0
        .into_iter()
        .filter(|(k, v)| {
            ["status", "job_id", "agent_id", "before"].contains(&k.as_str()) && !v.is_empty()
        })
        .collect();
    let filter = json!(keep);
    let list = json_of(operator::list_runs(State(state), op, Params(keep)).await?);
    Ok(page(
        &s,
        "runs.html",
        json!({"runs": list["runs"], "next_before": list["next_before"], "filter": filter}),
    ))
}

async fn run(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let view = json_of(operator::get_run(State(state), op, Path(id)).await?);
    Ok(page(&s, "run.html", json!({"run": view["run"]})))
}

/// A run's progress as server-sent events: the run's view (as `GET /v1/runs/{id}`
/// answers it) each time what the server stores for it changes, and an `end` event
/// once it has finished, after which the stream closes. The tenant is checked once,
/// up front, like the page's.
async fn run_events(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let op = op(&s)?;
    let key = s.key();
    let first =
        json_of(operator::get_run(State(state.clone()), op.clone(), Path(id.clone())).await?);
    let stream = futures_util::stream::unfold(
        (Some(first), None::<Value>, false),
        move |(next, last, ended)| {
            let (state, op, id) = (state.clone(), op.clone(), id.clone());
            async move {
                if ended {
                    return None;
                }
                let mut current = next;
                loop {
                    let view = match current.take() {
                        Some(v) => v,
                        None => {
                            tokio::time::sleep(PROGRESS_EVERY).await;
                            // Signed out, or the token revoked, since the stream opened:
                            // say so and stop (a reconnect would be refused). A database
                            // error is not a sign-out: the read below fails too, ending
                            // the stream for the browser to reconnect.
                            if matches!(session::is_live(&state, &key).await, Ok(false)) {
                                let event = Event::default().event("signed-out").data("");
                                return Some((Ok(event), (None, last, true)));
                            }
                            match operator::get_run(
                                State(state.clone()),
                                op.clone(),
                                Path(id.clone()),
                            )
                            .await
                            {
                                Ok(Json(v)) => v,
                                Err(_) => return None,
                            }
                        }
                    };
                    let run = view["run"].clone();
                    let finished = !matches!(run["status"].as_str(), Some("queued" | "running"));
                    if finished {
                        let event = Event::default().event("end").data(run.to_string());
                        return Some((Ok(event), (None, Some(run), true)));
                    }
                    if last.as_ref() != Some(&run) {
                        let event = Event::default().event("progress").data(run.to_string());
                        return Some((Ok(event), (None, Some(run), false)));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Redirect> {
    let op = op(&post.session)?;
    let _cancelled = operator::cancel_run(State(state), op, Path(id.clone())).await?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")))
}

async fn restore_points(
    State(state): State<AppState>,
    Signed(s): Signed,
    query: Params,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let keep: HashMap<String, String> = query
        .0
        .into_iter()
        .filter(|(k, v)| ["job_id", "agent_id", "before"].contains(&k.as_str()) && !v.is_empty())
        .collect();
    let list = json_of(
        restores::list_restore_points(State(state.clone()), op.clone(), Params(keep)).await?,
    );
    let agents = agent_list(&state, &op).await?;
    Ok(page(
        &s,
        "restore_points.html",
        json!({"restore_points": list["restore_points"], "next_before": list["next_before"],
               "agents": agents}),
    ))
}

/// A restore point and one folder of its files, with the form to restore chosen
/// paths to an agent and a target folder.
async fn restore_point(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
    query: Params,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let rp = json_of(
        restores::get_restore_point(State(state.clone()), op.clone(), Path(id.clone())).await?,
    );
    let path = query
        .0
        .get("path")
        .cloned()
        .unwrap_or_else(|| "/".to_owned());
    let files = json_of(
        restores::files(
            State(state.clone()),
            op.clone(),
            Path(id),
            params(&[("path", path.clone())]),
        )
        .await?,
    );
    let parent = match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) if path != "/" => Some("/".to_owned()),
        Some((p, _)) if !p.is_empty() => Some(p.to_owned()),
        _ => None,
    };
    let agents = agent_list(&state, &op).await?;
    Ok(page(
        &s,
        "files.html",
        json!({"rp": rp["restore_point"], "path": path, "parent": parent,
               "entries": files["entries"], "agents": agents}),
    ))
}

async fn restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Redirect> {
    let op = op(&post.session)?;
    let body = json!({
        "target": post.form.text("target").unwrap_or_default(),
        "paths": post.form.all("paths"),
        "agent_id": post.form.text("agent_id"),
    });
    let (_, Json(v)) = restores::restore(State(state), op, Path(id), request(body)?).await?;
    let run = v["run"]["id"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/runs/{run}")))
}

/// Several restore points at once, each to the same agent and target folder (a
/// folder of its own under it, named by the restore point); each item's result and
/// the totals are shown.
async fn bulk_restore(State(state): State<AppState>, post: Post) -> UiResult<Html<String>> {
    let op = op(&post.session)?;
    let target = post.form.text("target").unwrap_or_default();
    let agent = post.form.text("agent_id");
    let items: Vec<Value> = post
        .form
        .all("restore_point_id")
        .into_iter()
        .map(|rp| {
            let folder = format!("{}/{rp}", target.trim_end_matches('/'));
            json!({"restore_point_id": rp, "target": folder, "agent_id": agent})
        })
        .collect();
    let answer =
        json_of(restores::bulk_restore(State(state), op, request(json!({"items": items}))?).await?);
    Ok(page(
        &post.session,
        "restored.html",
        json!({"results": answer["results"], "totals": answer["totals"]}),
    ))
}

async fn diff(
    State(state): State<AppState>,
    Signed(s): Signed,
    query: Params,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let from = query
        .0
        .get("from")
        .cloned()
        .ok_or_else(|| ApiError::field("from", "choose the restore point to compare from"))?;
    let to = query.0.get("to").cloned().unwrap_or_default();
    let answer =
        json_of(restores::diff(State(state), op, Path(from), params(&[("to", to)])).await?);
    Ok(page(&s, "diff.html", answer))
}

async fn usage(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let usage = json_of(operator::tenant_usage(State(state.clone()), op.clone()).await?);
    // What prune freed: each job's latest retention runs.
    let mut pruned = Vec::new();
    if let Some(jobs) = usage["usage"]["jobs"].as_array() {
        for job in jobs.iter().take(50) {
            let Some(id) = job["job_id"].as_str() else {
                continue;
            };
            let runs = json_of(
                jobs::list_retention_runs(
                    State(state.clone()),
                    op.clone(),
                    Path(id.to_owned()),
                    params(&[("limit", "5".to_owned())]),
                )
                .await?,
            );
            if let Some(list) = runs["retention_runs"].as_array() {
                for r in list {
                    let mut r = r.clone();
                    r["job_name"] = job["name"].clone();
                    pruned.push(r);
                }
            }
        }
    }
    Ok(page(
        &s,
        "usage.html",
        json!({"usage": usage["usage"], "pruned": pruned}),
    ))
}

/// The audit log, filtered by action, actor and outcome (over the newest `limit`
/// entries the API answers).
async fn audit(
    State(state): State<AppState>,
    Signed(s): Signed,
    query: Params,
) -> UiResult<Html<String>> {
    let op = op(&s)?;
    let limit = query
        .0
        .get("limit")
        .cloned()
        .unwrap_or_else(|| "200".to_owned());
    let list = json_of(
        operator::tenant_audit(State(state), op, params(&[("limit", limit.clone())])).await?,
    );
    let (entries, filter) = filter_audit(&list["entries"], &query);
    Ok(page(
        &s,
        "audit.html",
        json!({"entries": entries, "filter": filter, "limit": limit, "admin": false}),
    ))
}

/// The entries of `list` matching the query's `action` (prefix), `actor` and
/// `outcome`, and the filter as given.
pub(super) fn filter_audit(list: &Value, query: &Params) -> (Vec<Value>, Value) {
    let get = |k: &str| {
        query
            .0
            .get(k)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (action, actor, outcome) = (get("action"), get("actor"), get("outcome"));
    let entries = list
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|e| {
                    let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    (action.is_empty() || field("action").starts_with(&action))
                        && (actor.is_empty() || field("actor") == actor)
                        && (outcome.is_empty() || field("outcome") == outcome)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (
        entries,
        json!({"action": action, "actor": actor, "outcome": outcome}),
    )
}
