//! `--wait`: following a run to its end by asking the server once a second, with a
//! progress bar (files and bytes done of the totals, rate, ETA) on a terminal and
//! nothing otherwise. Ctrl-C stops the following, not the run.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::Value;

use super::client::ServerClient;
use super::table::size;
use crate::exit::{CliError, Result};

/// How often the run is asked for.
const POLL: Duration = Duration::from_secs(1);

/// Follows run `id` until it succeeds or fails, and returns its last view (the
/// server's `{"run": …}`).
///
/// # Errors
/// [`CliError::RunFailed`] naming the run's error if it failed; the client's errors;
/// an interrupt.
pub(crate) fn follow(client: &ServerClient, id: &str, show: bool) -> Result<Value> {
    let show = show && std::io::stdout().is_terminal();
    let mut bar: Option<(ProgressBar, Option<u64>)> = None;
    crate::interrupt::install();
    let outcome = loop {
        let answer = client.get(&format!("/v1/runs/{id}"), &[])?;
        let run = &answer["run"];
        match run["status"].as_str().unwrap_or("") {
            "succeeded" | "failed" => break answer,
            _ => {}
        }
        if show {
            draw(&mut bar, id, run);
        }
        for _ in 0..10 {
            if crate::interrupt::interrupted() {
                if let Some((b, _)) = &bar {
                    b.finish_and_clear();
                }
                return Err(CliError::Other(format!(
                    "stopped following run {id}; it goes on on the server \
                     (`coffer server run wait {id}`)"
                )));
            }
            std::thread::sleep(POLL / 10);
        }
    };
    if let Some((b, _)) = &bar {
        b.finish_and_clear();
    }
    let run = &outcome["run"];
    if run["status"] == "failed" {
        return Err(CliError::RunFailed(format!(
            "run {id} ({}) failed: {}",
            run["kind"].as_str().unwrap_or("run"),
            run["error"].as_str().unwrap_or("no reason given")
        )));
    }
    Ok(outcome)
}

/// A one-line summary of a finished run for people.
pub(crate) fn summary(run: &Value) -> String {
    let files = run["files"].as_u64().unwrap_or(0);
    let bytes = run["bytes"].as_u64().unwrap_or(0);
    format!(
        "run {} ({}) {}: {files} files, {}",
        super::table::text(&run["id"]),
        super::table::text(&run["kind"]),
        super::table::text(&run["status"]),
        size(bytes),
    )
}

/// Updates the bar (made the first time, and made again when the total becomes known).
fn draw(bar: &mut Option<(ProgressBar, Option<u64>)>, id: &str, run: &Value) {
    let progress = &run["progress"];
    let total = progress["bytes_total"].as_u64();
    if bar.as_ref().is_none_or(|(_, t)| *t != total) {
        if let Some((old, _)) = bar.take() {
            old.finish_and_clear();
        }
        *bar = Some((crate::progress::bar(total, "", true), total));
    }
    let Some((b, _)) = bar.as_ref() else {
        return;
    };
    let files = run["files"].as_u64().unwrap_or(0);
    let files = match progress["files_total"].as_u64() {
        Some(t) => format!("{files}/{t} files"),
        None => format!("{files} files"),
    };
    let mut message = format!(
        "run {id} {} {}: {files}",
        super::table::text(&run["kind"]),
        super::table::text(&run["status"])
    );
    // The agent's own rate and ETA, when the bar has no total to estimate from.
    if total.is_none() {
        if let Some(rate) = progress["rate"].as_u64() {
            message.push_str(&format!(", {}/s", size(rate)));
        }
        if let Some(eta) = progress["eta_secs"].as_u64() {
            message.push_str(&format!(", ETA {eta}s"));
        }
    }
    b.set_message(message);
    b.set_position(run["bytes"].as_u64().unwrap_or(0));
}
