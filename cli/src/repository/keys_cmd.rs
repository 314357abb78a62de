//! `coffer key add | list | remove` on a repository: several key files or passphrases
//! unlock one repository, and a key can be made write-only.

use coffer_adapters::repo::keys::Access;
use coffer_core::passphrase::Argon2Params;
use serde_json::json;

use super::args::{KeyAddCmd, KeyRemoveCmd, RepoOnly};
use super::{open, unlock, unlock_from};
use crate::exit::{CliError, Result};
use crate::output::emit;

/// The environment variable a new key's passphrase is read from.
const NEW_PASSWORD_ENV: &str = "COFFER_NEW_PASSWORD";

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Full => "full",
        Access::WriteOnly => "write-only",
    }
}

/// `coffer key add`.
pub(crate) fn add(cmd: &KeyAddCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let new = match (&cmd.new_key_file, &cmd.new_password_file) {
        (Some(file), _) => unlock_from(Some(file), None, "", false)?,
        (None, file) => {
            let phrase = crate::secrets::passphrase(crate::secrets::PassphraseSpec {
                file: file.as_deref(),
                env: NEW_PASSWORD_ENV,
                prompt: "New key's passphrase",
                confirm: true,
            })?;
            coffer_adapters::repo::keyfile::Unlock::Passphrase(zeroize::Zeroizing::new(
                phrase.as_bytes().to_vec(),
            ))
        }
    };
    let params = Argon2Params::DEFAULT;
    let (id, access) = if cmd.write_only {
        (
            repo.add_key(Access::WriteOnly, &new, params)?,
            Access::WriteOnly,
        )
    } else {
        let master = repo.master_from(&unlock(&cmd.repo, false)?)?;
        (repo.add_full_key(&master, &new, params)?, Access::Full)
    };
    emit(
        json,
        json!({"message_type": "key_added", "id": hex::encode(id), "access": access_name(access)}),
        &format!("added {} key {}", access_name(access), hex::encode(id)),
    )
}

/// `coffer key list`.
pub(crate) fn list(cmd: &RepoOnly, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let keys = repo.list_keys()?;
    if json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({
                    "id": hex::encode(k.id),
                    "access": access_name(k.access),
                    "unlocked_by": if k.passphrase { "passphrase" } else { "key file" },
                    "current": k.current,
                })
            })
            .collect();
        return emit(true, serde_json::Value::Array(v), "");
    }
    let mut text = format!(" {:<32}  {:<10}  {}\n", "ID", "Access", "Unlocked by");
    for k in &keys {
        text.push_str(&format!(
            "{}{:<32}  {:<10}  {}\n",
            if k.current { "*" } else { " " },
            hex::encode(k.id),
            access_name(k.access),
            if k.passphrase {
                "passphrase"
            } else {
                "key file"
            },
        ));
    }
    text.push_str("(* the key used now)");
    emit(false, serde_json::Value::Null, &text)
}

/// `coffer key remove`.
pub(crate) fn remove(cmd: &KeyRemoveCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let wanted = cmd.id.to_ascii_lowercase();
    let keys = repo.list_keys()?;
    let found: Vec<_> = keys
        .iter()
        .filter(|k| hex::encode(k.id).starts_with(&wanted))
        .collect();
    let key = match found.as_slice() {
        [one] => *one,
        [] => return Err(CliError::NotFound(format!("no key {}", cmd.id))),
        _ => {
            return Err(CliError::Usage(format!(
                "{} names {} keys: give more digits",
                cmd.id,
                found.len()
            )))
        }
    };
    if key.current {
        return Err(CliError::Usage(
            "that is the key this command was unlocked with: remove it with another key".into(),
        ));
    }
    let full = keys.iter().filter(|k| k.access == Access::Full).count();
    if key.access == Access::Full && full == 1 {
        return Err(CliError::Usage(
            "that is the last full key: without it nothing could read the repository".into(),
        ));
    }
    repo.remove_key(&key.id)?;
    emit(
        json,
        json!({"message_type": "key_removed", "id": hex::encode(key.id)}),
        &format!("removed key {}", hex::encode(key.id)),
    )
}
