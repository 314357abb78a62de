//! `coffer vectors verify DIR`: every vector file, through the adapters' checker.

use std::path::Path;

use serde_json::json;

use crate::exit::{CliError, Result};
use crate::output::{emit, shown};

/// Applies every `*_test.json` under `dir` and prints per-file counts.
///
/// # Errors
/// [`CliError::Corrupt`] if any test failed; I/O errors and malformed files.
pub(crate) fn verify(dir: &Path, json: bool) -> Result<()> {
    let reports = coffer_adapters::vectors::verify_dir(dir)?;
    if reports.is_empty() {
        return Err(CliError::NotFound(format!(
            "no *_test.json files under {}",
            shown(dir)
        )));
    }
    let mut text = String::new();
    let (mut tests, mut failed) = (0usize, 0usize);
    let mut files = Vec::new();
    for r in &reports {
        tests += r.tests;
        failed += r.failures.len();
        let state = if !r.not_applicable.is_empty() && r.tests == 0 {
            "not applicable".to_owned()
        } else if r.failures.is_empty() {
            "ok".to_owned()
        } else {
            format!("{} FAILED", r.failures.len())
        };
        text.push_str(&format!("{}: {} tests, {state}\n", shown(&r.path), r.tests));
        for f in &r.failures {
            text.push_str(&format!("  tcId {}: {}\n", f.tc_id, f.message));
        }
        files.push(json!({"file": shown(&r.path), "tests": r.tests,
            "failures": r.failures.iter().map(|f| json!({"tc_id": f.tc_id, "message": f.message})).collect::<Vec<_>>(),
            "not_applicable": r.not_applicable}));
    }
    text.push_str(&format!(
        "{} files, {tests} tests, {failed} failed",
        reports.len()
    ));
    emit(
        json,
        json!({"files": files, "tests": tests, "failed": failed}),
        &text,
    )?;
    if failed > 0 {
        return Err(CliError::Corrupt(format!(
            "{failed} of {tests} vector tests failed"
        )));
    }
    Ok(())
}
