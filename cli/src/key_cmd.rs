//! `coffer key ...`: generate, id, export, import, rewrap.

use std::io::Read;
use std::path::Path;

use coffer_core::envelope::{KeyEnvelope, Purpose};
use coffer_core::passphrase::PassphraseEnvelope;
use coffer_core::stream::StreamHeader;
use coffer_core::SecretKey;
use serde_json::json;
use zeroize::Zeroizing;

use crate::args::{ExportArgs, ExportFormat, ImportArgs, KeyCommand, RewrapArgs};
use crate::exit::{CliError, Result};
use crate::keys::{self, Detected, ENVELOPE_CONTEXT};
use crate::output::{emit, is_dash, shown};
use crate::secrets::{self, PassphraseSpec, NEW_PASSPHRASE_ENV, PASSPHRASE_ENV};

/// Runs a key subcommand.
///
/// # Errors
/// As each command's.
pub(crate) fn run(command: &KeyCommand, json: bool) -> Result<()> {
    match command {
        KeyCommand::Generate { file } => generate(file, json),
        KeyCommand::Id { file } => id(file, json),
        KeyCommand::Export(args) => export(args, json),
        KeyCommand::Import(args) => import(args, json),
        KeyCommand::Rewrap(args) => rewrap(args, json),
        KeyCommand::Add(cmd) => crate::repository::keys_cmd::add(cmd, json),
        KeyCommand::List(cmd) => crate::repository::keys_cmd::list(cmd, json),
        KeyCommand::Remove(cmd) => crate::repository::keys_cmd::remove(cmd, json),
    }
}

fn generate(file: &Path, json: bool) -> Result<()> {
    let key = SecretKey::generate(&mut rand_core::OsRng);
    keys::write_private_file(file, keys::key_file_text(&key).as_bytes())?;
    let id = key.id().to_string();
    emit(json, json!({"key_file": shown(file), "key_id": id}), &id)
}

/// Reads a file or stdin that holds a secret or an envelope.
fn read_input(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    if is_dash(path) {
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::stdin()
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::io("reading stdin", e))?;
        return Ok(bytes);
    }
    secrets::read_secret_file(path)
}

fn id(file: &Path, json: bool) -> Result<()> {
    let bytes = read_input(file)?;
    let name = shown(file);
    let (kind, key_id, extra) = match keys::detect(&bytes) {
        Detected::KeyFile => ("key file", keys::parse_key_file(&bytes)?.id(), json!({})),
        Detected::RecoveryKit => (
            "recovery kit",
            keys::parse_recovery_kit(&bytes)?.id(),
            json!({}),
        ),
        Detected::PassphraseEnvelope => {
            let head = &bytes[..bytes
                .len()
                .min(coffer_core::passphrase::PASSPHRASE_ENVELOPE_LEN)];
            let e =
                PassphraseEnvelope::decode(head).map_err(|e| CliError::from(e).context(&name))?;
            (
                "passphrase envelope",
                e.key_id,
                json!({"purpose": e.purpose.to_string(), "argon2_memory_kib": e.params.memory_kib,
                       "argon2_passes": e.params.passes, "argon2_lanes": e.params.lanes}),
            )
        }
        Detected::KeyEnvelope => {
            let e = KeyEnvelope::decode(&bytes).map_err(|e| CliError::from(e).context(&name))?;
            (
                "key envelope",
                e.key_id,
                json!({"purpose": e.purpose.to_string(), "kek_id": e.kek_id.to_string()}),
            )
        }
        Detected::Stream => {
            let h = StreamHeader::decode(&bytes).map_err(|e| CliError::from(e).context(&name))?;
            ("sealed stream", h.key_id, json!({}))
        }
        Detected::Unknown => {
            return Err(CliError::Corrupt(format!(
                "{name}: not a key file, recovery kit, envelope or sealed file"
            )))
        }
    };
    let mut value = json!({"file": name, "kind": kind, "key_id": key_id.to_string()});
    if let (Some(v), Some(e)) = (value.as_object_mut(), extra.as_object()) {
        v.extend(e.clone());
    }
    let text = match value.get("kek_id").and_then(|v| v.as_str()) {
        Some(kek) => format!("{key_id} ({kind}, wrapped under KEK {kek})"),
        None => format!("{key_id} ({kind})"),
    };
    emit(json, value, &text)
}

fn export(args: &ExportArgs, json: bool) -> Result<()> {
    let key = keys::read_key_file(&args.key_file)?;
    let id = key.id().to_string();
    match args.format {
        ExportFormat::Text => {
            let kit = keys::recovery_kit(&key);
            match &args.out {
                Some(out) if !is_dash(out) => {
                    keys::write_private_file(out, kit.as_bytes())?;
                    emit(json, json!({"key_id": id, "recovery_kit": shown(out)}), "")
                }
                _ if json => emit(
                    true,
                    json!({"key_id": id, "recovery_kit": kit.as_str()}),
                    "",
                ),
                _ => emit(false, json!({}), kit.trim_end()),
            }
        }
        ExportFormat::Passphrase | ExportFormat::Kek => {
            let Some(out) = args.out.as_deref().filter(|o| !is_dash(o)) else {
                return Err(CliError::Usage(
                    "an envelope export needs --out FILE".into(),
                ));
            };
            let envelope = if args.format == ExportFormat::Kek {
                let Some(kek_file) = &args.kek_file else {
                    return Err(CliError::Usage("--format kek needs --kek-file".into()));
                };
                let kek = keys::read_key_file(kek_file)?;
                keys::wrap_kek(&key, &kek, Purpose::MasterKey, ENVELOPE_CONTEXT)?
            } else {
                let phrase = secrets::passphrase(PassphraseSpec {
                    file: args.passphrase_file.as_deref(),
                    env: NEW_PASSPHRASE_ENV,
                    prompt: "New passphrase for the exported key",
                    confirm: true,
                })?;
                keys::wrap_passphrase(&key, &phrase, Purpose::MasterKey, ENVELOPE_CONTEXT)?
            };
            keys::write_private_file(out, &envelope)?;
            emit(json, json!({"key_id": id, "envelope": shown(out)}), "")
        }
    }
}

fn import(args: &ImportArgs, json: bool) -> Result<()> {
    let bytes = read_input(&args.input)?;
    let name = shown(&args.input);
    let key = match keys::detect(&bytes) {
        Detected::RecoveryKit => keys::parse_recovery_kit(&bytes)?,
        Detected::KeyFile => keys::parse_key_file(&bytes)?,
        Detected::PassphraseEnvelope => {
            let phrase = secrets::passphrase(PassphraseSpec {
                file: args.passphrase_file.as_deref(),
                env: PASSPHRASE_ENV,
                prompt: "Passphrase of the exported key",
                confirm: false,
            })?;
            keys::unwrap_passphrase(&bytes, &phrase, Purpose::MasterKey, ENVELOPE_CONTEXT)
                .map_err(|e| e.context(&name))?
        }
        Detected::KeyEnvelope => {
            let Some(kek_file) = &args.kek_file else {
                return Err(CliError::Usage(format!(
                    "{name} is wrapped under a key file: give --kek-file"
                )));
            };
            let kek = keys::read_key_file(kek_file)?;
            keys::unwrap_kek(&bytes, &kek, Purpose::MasterKey, ENVELOPE_CONTEXT)
                .map_err(|e| e.context(&name))?
        }
        Detected::Stream | Detected::Unknown => {
            return Err(CliError::Corrupt(format!(
                "{name}: not a recovery kit or key envelope"
            )))
        }
    };
    keys::write_private_file(&args.out, keys::key_file_text(&key).as_bytes())?;
    let id = key.id().to_string();
    emit(
        json,
        json!({"key_file": shown(&args.out), "key_id": id}),
        &id,
    )
}

/// Opens any envelope with the old secret the arguments name.
pub(crate) fn unwrap_any(
    envelope: &[u8],
    passphrase_file: Option<&Path>,
    kek_file: Option<&Path>,
    name: &str,
) -> Result<(SecretKey, Purpose)> {
    let purpose = keys::envelope_purpose(envelope).map_err(|e| e.context(name))?;
    let key = match keys::detect(envelope) {
        Detected::KeyEnvelope => {
            let Some(kek_file) = kek_file else {
                let kek = KeyEnvelope::decode(envelope)?.kek_id;
                return Err(CliError::Usage(format!(
                    "{name} is wrapped under the key file with ID {kek}: give --kek-file"
                )));
            };
            keys::unwrap_kek(
                envelope,
                &keys::read_key_file(kek_file)?,
                purpose,
                ENVELOPE_CONTEXT,
            )
        }
        _ => {
            let phrase = secrets::passphrase(PassphraseSpec {
                file: passphrase_file,
                env: PASSPHRASE_ENV,
                prompt: "Current passphrase",
                confirm: false,
            })?;
            keys::unwrap_passphrase(envelope, &phrase, purpose, ENVELOPE_CONTEXT)
        }
    }
    .map_err(|e| e.context(name))?;
    Ok((key, purpose))
}

/// Wraps `key` anew under the new secret the arguments name.
pub(crate) fn wrap_new(
    key: &SecretKey,
    purpose: Purpose,
    new_passphrase_file: Option<&Path>,
    new_kek_file: Option<&Path>,
) -> Result<Vec<u8>> {
    match new_kek_file {
        Some(path) => keys::wrap_kek(key, &keys::read_key_file(path)?, purpose, ENVELOPE_CONTEXT),
        None => {
            let phrase = secrets::passphrase(PassphraseSpec {
                file: new_passphrase_file,
                env: NEW_PASSPHRASE_ENV,
                prompt: "New passphrase",
                confirm: true,
            })?;
            keys::wrap_passphrase(key, &phrase, purpose, ENVELOPE_CONTEXT)
        }
    }
}

fn rewrap(args: &RewrapArgs, json: bool) -> Result<()> {
    if args.repo.is_some() {
        return crate::repo_cmd::rewrap(args, json);
    }
    let Some(path) = &args.envelope else {
        return Err(CliError::Usage("give an envelope file or --repo".into()));
    };
    let name = shown(path);
    let old = secrets::read_secret_file(path)?;
    let (key, purpose) = unwrap_any(
        &old,
        args.passphrase_file.as_deref(),
        args.kek_file.as_deref(),
        &name,
    )?;
    let new = wrap_new(
        &key,
        purpose,
        args.new_passphrase_file.as_deref(),
        args.new_kek_file.as_deref(),
    )?;
    replace_file(path, &new)?;
    emit(
        json,
        json!({"envelope": name, "key_id": key.id().to_string()}),
        &format!("rewrapped {name} (key {})", key.id()),
    )
}

/// Atomically replaces `path` with `bytes` (temporary in the same folder, sync, rename).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let what = || format!("writing {}", shown(path));
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffer-rewrap-")
        .tempfile_in(dir)
        .map_err(|e| CliError::io(what(), e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| CliError::io(what(), e))?;
    tmp.persist(path)
        .map_err(|e| CliError::io(what(), e.error))?;
    Ok(())
}
