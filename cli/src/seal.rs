//! `coffer seal` and `coffer open`: one file or pipe, under a key file or a passphrase.
//!
//! Under a key file the output is a sealed stream (`COFFER/S`) with context
//! `coffer/file`. Under a passphrase it is a passphrase envelope (`COFFER/P`, 168
//! bytes) wrapping a fresh random file key, followed by the sealed stream under that
//! key with context `coffer/file\0` ‖ the envelope, so the two cannot be separated.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use coffer_adapters::bridge::relay::{Failure, Relay, Relayed};
use coffer_core::envelope::Purpose;
use coffer_core::passphrase::PASSPHRASE_ENVELOPE_LEN;
use coffer_core::provider::ChunkCipher;
use coffer_core::stream::{StreamHeader, STREAM_HEADER_LEN};
use coffer_core::{SecretKey, Suite};
use serde_json::json;

use crate::args::{OpenArgs, SealArgs, SecretArgs, SuiteArg};
use crate::exit::{CliError, Result};
use crate::keys::{self, Detected, ENVELOPE_CONTEXT};
use crate::output::{emit_beside, is_dash, shown, with_suffix};
use crate::progress::{self, Counting};
use crate::secrets::{self, PassphraseSpec, PASSPHRASE_ENV};

const FILE_CONTEXT: &[u8] = b"coffer/file";

/// Seals `args.input` into `args.out`.
///
/// # Errors
/// Usage, I/O and secret errors, named; an output file is never left half written.
pub(crate) fn seal(args: &SealArgs, json: bool) -> Result<()> {
    let out_path = match (&args.out, is_dash(&args.input)) {
        (Some(p), _) => p.clone(),
        (None, false) => with_suffix(&args.input, ".coffer"),
        (None, true) => return Err(CliError::Usage("sealing stdin needs --out".into())),
    };
    let (key, envelope) = match &args.secret.key_file {
        Some(path) => (keys::read_key_file(path)?, None),
        None => {
            let phrase = secrets::passphrase(PassphraseSpec {
                file: args.secret.passphrase_file.as_deref(),
                env: PASSPHRASE_ENV,
                prompt: "New passphrase for the sealed file",
                confirm: true,
            })?;
            let file_key = SecretKey::generate(&mut rand_core::OsRng);
            let envelope =
                keys::wrap_passphrase(&file_key, &phrase, Purpose::MasterKey, ENVELOPE_CONTEXT)?;
            (file_key, Some(envelope))
        }
    };
    let (input, total) = open_input(&args.input)?;
    let bar = progress::bar(total, "sealing", !json);
    let suite = match args.suite {
        SuiteArg::Aes256Gcm => Suite::Aes256Gcm,
        SuiteArg::ChaCha20Poly1305 => Suite::ChaCha20Poly1305,
    };
    let relay = Relay::seal(
        &coffer_adapters::default_provider(),
        suite,
        &key,
        &file_context(envelope.as_deref()),
        Counting {
            inner: input,
            bar: bar.clone(),
        },
    )?;
    let mut out = Output::create(&out_path)?;
    if let Some(envelope) = &envelope {
        out.write_all(envelope)
            .map_err(|e| CliError::io(format!("writing {}", shown(&out_path)), e))?;
    }
    let Relayed { read, written } = run(relay, &mut out, &args.input, &out_path)?;
    out.commit()?;
    bar.finish_and_clear();
    let prefix = envelope.as_ref().map_or(0, Vec::len) as u64;
    emit_beside(
        json,
        json!({"sealed": shown(&args.input), "output": shown(&out_path),
               "key_id": key.id().to_string(), "passphrase": envelope.is_some(),
               "plaintext_bytes": read, "sealed_bytes": written + prefix}),
        is_dash(&out_path),
    )
}

/// Opens `args.input` into `args.out`.
///
/// # Errors
/// [`CliError::WrongKey`], [`CliError::Corrupt`] and the rest, named; a file output is
/// renamed into place only after the whole stream verified, and removed otherwise.
pub(crate) fn open(args: &OpenArgs, json: bool) -> Result<()> {
    let out_path = match (&args.out, is_dash(&args.input)) {
        (Some(p), _) => p.clone(),
        (None, false) => match args.input.to_str().and_then(|s| s.strip_suffix(".coffer")) {
            Some(stem) if !stem.is_empty() => PathBuf::from(stem),
            _ => {
                return Err(CliError::Usage(format!(
                    "{} does not end in .coffer: give --out",
                    shown(&args.input)
                )))
            }
        },
        (None, true) => return Err(CliError::Usage("opening stdin needs --out".into())),
    };
    let (mut input, total) = open_input(&args.input)?;
    let name = shown(&args.input);
    let mut head = Vec::with_capacity(PASSPHRASE_ENVELOPE_LEN);
    (&mut input)
        .take(STREAM_HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| CliError::io(format!("reading {name}"), e))?;
    let (key, context) = match keys::detect(&head) {
        Detected::PassphraseEnvelope => {
            (&mut input)
                .take((PASSPHRASE_ENVELOPE_LEN - head.len()) as u64)
                .read_to_end(&mut head)
                .map_err(|e| CliError::io(format!("reading {name}"), e))?;
            let key = unlock_passphrase_file(&args.secret, &head, &name)?;
            let context = file_context(Some(&head));
            head.clear();
            (key, context)
        }
        Detected::Stream => {
            let Some(key_file) = &args.secret.key_file else {
                let id = StreamHeader::decode(&head)
                    .map(|h| h.key_id.to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(CliError::Usage(format!(
                    "{name} is sealed under key {id}: give --key-file"
                )));
            };
            (keys::read_key_file(key_file)?, file_context(None))
        }
        _ if head.is_empty() => {
            return Err(CliError::Corrupt(format!(
                "{name} is empty: not a sealed Coffer file"
            )))
        }
        _ => {
            return Err(CliError::Corrupt(format!(
                "{name} is not a sealed Coffer file (bad magic)"
            )))
        }
    };
    let bar = progress::bar(total, "opening", !json);
    let source = Counting {
        inner: io::Cursor::new(head).chain(input),
        bar: bar.clone(),
    };
    let relay = Relay::open(&coffer_adapters::default_provider(), &key, &context, source)
        .map_err(|e| CliError::from(e).context(&name))?;
    let mut out = Output::create(&out_path)?;
    let written = run(relay, &mut out, &args.input, &out_path)?.written;
    out.commit()?;
    bar.finish_and_clear();
    emit_beside(
        json,
        json!({"opened": name, "output": shown(&out_path), "key_id": key.id().to_string(),
               "plaintext_bytes": written}),
        is_dash(&out_path),
    )
}

fn unlock_passphrase_file(secret: &SecretArgs, envelope: &[u8], name: &str) -> Result<SecretKey> {
    if secret.key_file.is_some() {
        return Err(CliError::Usage(format!(
            "{name} is sealed under a passphrase, not a key file: give --passphrase-file \
             or set {PASSPHRASE_ENV}"
        )));
    }
    let phrase = secrets::passphrase(PassphraseSpec {
        file: secret.passphrase_file.as_deref(),
        env: PASSPHRASE_ENV,
        prompt: "Passphrase",
        confirm: false,
    })?;
    keys::unwrap_passphrase(envelope, &phrase, Purpose::MasterKey, ENVELOPE_CONTEXT)
        .map_err(|e| e.context(name))
}

fn file_context(envelope: Option<&[u8]>) -> Vec<u8> {
    match envelope {
        None => FILE_CONTEXT.to_vec(),
        Some(env) => [FILE_CONTEXT, b"\0", env].concat(),
    }
}

/// Stdin or a file, with its length when known (for the progress bar).
fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    if is_dash(path) {
        return Ok((Box::new(io::stdin()), None));
    }
    let file = File::open(path).map_err(|e| CliError::io(format!("opening {}", shown(path)), e))?;
    let len = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), len))
}

/// Seals or opens on every core, telling read errors (named after the input,
/// classified: wrong key, corrupted...) from write errors (named after the output:
/// disk full...).
fn run<R: Read + Send, C: ChunkCipher + Sync>(
    relay: Relay<R, C>,
    out: &mut Output,
    input: &Path,
    output: &Path,
) -> Result<Relayed> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    relay.run(out, threads).map_err(|f| match f {
        Failure::Input(e) => CliError::io(shown(input), e),
        Failure::Output(e) => CliError::io(format!("writing {}", shown(output)), e),
    })
}

/// Stdout, or a file written under a temporary name in its folder and linked into
/// place by [`Output::commit`] (never replacing anything); dropped uncommitted, the
/// temporary is removed, so a failure leaves nothing behind.
pub(crate) enum Output {
    /// Standard output.
    Stdout(File),
    /// A file being written.
    File {
        /// The temporary.
        tmp: tempfile::NamedTempFile,
        /// Where it goes.
        dest: PathBuf,
    },
}

impl Output {
    /// Starts writing `path` ('-' for stdout).
    pub(crate) fn create(path: &Path) -> Result<Self> {
        if is_dash(path) {
            // A descriptor of its own: `io::Stdout` is line-buffered, and would look for
            // newlines in every batch of binary output.
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| CliError::io("writing stdout", e))?;
            return Ok(Output::Stdout(File::from(fd)));
        }
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(CliError::Exists(format!(
                "{} already exists; not overwriting it",
                shown(path)
            )));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".coffer-partial-")
            .tempfile_in(dir)
            .map_err(|e| CliError::io(format!("creating a file in {}", shown(dir)), e))?;
        Ok(Output::File {
            tmp,
            dest: path.to_owned(),
        })
    }

    /// Syncs and moves the file into place (flushes stdout).
    pub(crate) fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(mut s) => s.flush().map_err(|e| CliError::io("writing stdout", e)),
            Output::File { tmp, dest } => {
                let what = || format!("writing {}", shown(&dest));
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| CliError::io(what(), e))?;
                // The file keeps tempfile's mode 0600: opened plaintext is as private
                // as the key that sealed it.
                tmp.persist_noclobber(&dest)
                    .map_err(|e| CliError::io(what(), e.error))?;
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(s) => s.write(buf),
            Output::File { tmp, .. } => tmp.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Output::Stdout(s) => s.write_vectored(bufs),
            Output::File { tmp, .. } => tmp.as_file_mut().write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.flush(),
            Output::File { tmp, .. } => tmp.flush(),
        }
    }
}
