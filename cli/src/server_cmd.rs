//! `coffer server …`: the admin's and operators' command line for a Coffer server, so
//! routine work needs no curl and jq. Tables for people by default; `--json` prints the
//! server's own JSON. `--wait` follows a run to its end.
//!
//! - `args`: the command line;
//! - `config`: where the URL and the token come from (never argv);
//! - `client`: the HTTP calls and how refusals become exit codes;
//! - `table`: aligned columns;
//! - `wait`: following a run;
//! - `admin`, `operator`, `restores`, `notify`: the commands, by the routes they use.

mod admin;
pub(crate) mod args;
mod client;
mod config;
mod notify;
mod operator;
mod restores;
mod table;
mod wait;

use std::io::{BufRead, IsTerminal};

use serde_json::Value;
use zeroize::Zeroizing;

use self::args::{Noun, ServerCmd};
use self::client::ServerClient;
use self::config::Target;
use crate::exit::{CliError, Result};

/// Runs one `coffer server` command.
///
/// # Errors
/// Usage, connection and refusal errors (see `client`), a failed run under `--wait`.
pub(crate) fn run(cmd: &ServerCmd, json: bool) -> Result<()> {
    if let Noun::Login = cmd.noun {
        return login(cmd, json);
    }
    let client = ServerClient::new(config::resolve(&cmd.connection)?)?;
    let c = &client;
    match &cmd.noun {
        Noun::Login => Ok(()),
        Noun::Tenant { verb } => admin::tenant(c, verb, json),
        Noun::Operator { verb } => admin::operator(c, verb, json),
        Noun::AdminToken { verb } => admin::admin_token(c, verb, json),
        Noun::Backend { verb } => admin::backend(c, verb, json),
        Noun::Audit(a) => admin::audit(c, a, json),
        Noun::Usage(a) => admin::usage(c, a.admin, json),
        Noun::Reconcile(a) => admin::reconcile(c, a.apply, json),
        Noun::Token { verb } => operator::token(c, verb, json),
        Noun::Agent { verb } => operator::agent(c, verb, json),
        Noun::Destination { verb } => operator::destination(c, verb, json),
        Noun::Job { verb } => operator::job(c, verb, json),
        Noun::Run { verb } => operator::run(c, verb, json),
        Noun::RestorePoint { verb } => restores::restore_point(c, verb, json),
        Noun::Restore(b) => restores::bulk(c, b, json),
        Noun::Notify { verb } => notify::notify(c, verb, json),
    }
}

/// Prints `value` (the server's JSON) with `--json`, else `text`.
fn show(json: bool, value: &Value, text: &str) -> Result<()> {
    crate::output::emit(json, value.clone(), text)
}

/// `{"id": id}`-style path segment check: IDs go into URLs, so only digits and the
/// characters IDs are made of pass (no `/`, `?` or `..` to reach another route).
fn id(raw: &str) -> Result<&str> {
    if raw.is_empty()
        || !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CliError::Usage(format!("{raw:?} is not an ID")));
    }
    Ok(raw)
}

/// Follows run `run_id` if `wait`, printing the end state; else prints `answer`.
fn maybe_wait(
    client: &ServerClient,
    answer: &Value,
    wait: bool,
    json: bool,
    queued_text: &str,
) -> Result<()> {
    if !wait {
        return show(json, answer, queued_text);
    }
    let run_id = table::text(&answer["run"]["id"]);
    let end = wait::follow(client, id(&run_id)?, !json)?;
    show(json, &end, &wait::summary(&end["run"]))
}

/// `coffer server login`: checks a token against the server and saves it with the URL
/// in the config file (0600). The token comes from stdin when it is not a terminal,
/// else from a prompt.
fn login(cmd: &ServerCmd, json: bool) -> Result<()> {
    let url = cmd
        .connection
        .url
        .clone()
        .or_else(|| std::env::var(config::URL_ENV).ok())
        .ok_or_else(|| CliError::Usage("coffer server login needs --url URL".into()))?;
    let token = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password("Token for the server: ")
                .map_err(|e| CliError::Usage(format!("reading the token: {e}")))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::io("reading the token from stdin", e))?;
        Zeroizing::new(line.trim().to_owned())
    };
    if token.is_empty() {
        return Err(CliError::Usage("no token given".into()));
    }
    let client = ServerClient::new(Target {
        url: url.clone(),
        token: token.clone(),
    })?;
    // Its prefix says its kind (cfa_ admin, cfo_ operator): probe that kind's route
    // only, so a good token never leaves a refusal in the audit log.
    let kind = if token.starts_with("cfa_") {
        client.get("/v1/admin/tenants", &[])?;
        "admin"
    } else {
        client.get("/v1/agents", &[("limit", Some("1".to_owned()))])?;
        "operator"
    };
    let path = config::config_path(cmd.connection.config.as_deref())?.ok_or_else(|| {
        CliError::Usage("no config folder ($XDG_CONFIG_HOME, $HOME): give --config".into())
    })?;
    config::write_config(&path, client.base(), &token)?;
    let shown = path.display().to_string();
    show(
        json,
        &serde_json::json!({"url": client.base(), "kind": kind, "config": shown}),
        &format!("{kind} token for {} saved in {shown}", client.base()),
    )
}
