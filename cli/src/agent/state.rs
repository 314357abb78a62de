//! What an enrolled agent keeps on disk, in its state folder (mode 0700):
//!
//! - `agent.json`: the server URL, the agent, tenant, destination and repository IDs
//!   (no secret);
//! - `api-key` (0600): the agent's API key;
//! - `repository.key` (0600): the repository key, as a key file;
//! - `pending/RUN_ID.json`: a run's result, written before it is sent and removed once
//!   the server took it, so a restart never loses a result.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coffer_core::SecretKey;
use coffer_protocol::enrol::{Destination, KeyAccess};
use coffer_protocol::report::Completion;
use coffer_protocol::{AgentId, RepositoryId, RunId, Suite, TenantId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::exit::{CliError, Result};
use crate::keys;
use crate::secrets::read_secret_file;

/// `agent.json`: who this agent is and where its server and storage are (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AgentRecord {
    /// The server's base URL.
    pub(crate) server: String,
    /// This agent.
    pub(crate) agent_id: AgentId,
    /// Its tenant.
    pub(crate) tenant_id: TenantId,
    /// Where its objects go.
    pub(crate) destination: Destination,
    /// The repository there.
    pub(crate) repository: RepositoryRecord,
}

/// The repository an agent writes to, without its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RepositoryRecord {
    /// The repository.
    pub(crate) id: RepositoryId,
    /// Its key's ID (32 hex digits).
    pub(crate) key_id: String,
    /// Its suite.
    pub(crate) suite: Suite,
    /// What this agent's key opens (write-only, unless the server said otherwise).
    pub(crate) access: KeyAccess,
}

/// A result waiting to be delivered.
#[derive(Serialize, Deserialize)]
struct PendingRecord {
    run_id: RunId,
    body: Completion,
}

/// The agent's state folder.
pub(crate) struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// `dir`, or `$XDG_STATE_HOME/coffer/agent` (`~/.local/state/coffer/agent`).
    pub(crate) fn new(dir: Option<&Path>) -> Result<StateDir> {
        let dir = match dir {
            Some(d) => d.to_owned(),
            None => std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .ok_or_else(|| {
                    CliError::Usage(
                        "no state folder ($XDG_STATE_HOME, $HOME): give --state-dir".into(),
                    )
                })?
                .join("coffer/agent"),
        };
        Ok(StateDir { dir })
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether an agent is enrolled here.
    pub(crate) fn enrolled(&self) -> bool {
        self.file("agent.json").exists()
    }

    /// Saves a new enrolment: secrets first, `agent.json` (which marks the folder as
    /// enrolled) last.
    pub(crate) fn save_enrolment(
        &self,
        agent: &AgentRecord,
        api_key: &str,
        repository_key: &SecretKey,
    ) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .and_then(|()| fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)))
            .map_err(|e| CliError::io(format!("creating {}", self.dir.display()), e))?;
        keys::write_private_file(&self.file("api-key"), api_key.as_bytes())?;
        keys::write_private_file(
            &self.file("repository.key"),
            keys::key_file_text(repository_key).as_bytes(),
        )?;
        let text = serde_json::to_string(agent).map_err(|e| CliError::Other(e.to_string()))?;
        keys::write_private_file(&self.file("agent.json"), text.as_bytes())
    }

    /// The enrolment's public part.
    pub(crate) fn agent(&self) -> Result<AgentRecord> {
        let path = self.file("agent.json");
        if !path.exists() {
            return Err(CliError::NotFound(format!(
                "no agent enrolled in {}: run coffer agent enroll",
                self.dir.display()
            )));
        }
        let bytes = read_secret_file(&path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::Corrupt(format!("{}: {e}", path.display())))
    }

    /// The agent's API key.
    pub(crate) fn api_key(&self) -> Result<Zeroizing<String>> {
        let bytes = read_secret_file(&self.file("api-key"))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| CliError::Corrupt("the stored API key is not text".into()))?;
        Ok(Zeroizing::new(text.trim().to_owned()))
    }

    /// The repository key, if stored.
    pub(crate) fn repository_key(&self) -> Result<Option<SecretKey>> {
        let path = self.file("repository.key");
        if !path.exists() {
            return Ok(None);
        }
        keys::read_key_file(&path).map(Some)
    }

    /// Stores a run's result until it is delivered (atomically: whole or absent).
    pub(crate) fn save_pending(&self, run_id: RunId, body: &Completion) -> Result<()> {
        let dir = self.file("pending");
        fs::create_dir_all(&dir)
            .map_err(|e| CliError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{run_id}.json"));
        let what = || format!("writing {}", path.display());
        let mut tmp = tempfile::Builder::new()
            .prefix(".pending-")
            .tempfile_in(&dir)
            .map_err(|e| CliError::io(what(), e))?;
        let record = serde_json::to_string(&PendingRecord {
            run_id,
            body: body.clone(),
        })
        .map_err(|e| CliError::Other(e.to_string()))?;
        tmp.write_all(record.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| CliError::io(what(), e))?;
        tmp.persist(&path)
            .map_err(|e| CliError::io(what(), e.error))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CliError::io(what(), e))
    }

    /// Results not yet delivered: `(run_id, body)`, oldest name first.
    pub(crate) fn pending(&self) -> Result<Vec<(RunId, Completion)>> {
        let dir = self.file("pending");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            let bytes = fs::read(&path).map_err(|e| CliError::io(path.display(), e))?;
            let record: PendingRecord = serde_json::from_slice(&bytes)
                .map_err(|e| CliError::Corrupt(format!("{}: {e}", path.display())))?;
            out.push((record.run_id, record.body));
        }
        Ok(out)
    }

    /// Forgets a delivered result.
    pub(crate) fn delivered(&self, run_id: RunId) -> Result<()> {
        let path = self.file("pending").join(format!("{run_id}.json"));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CliError::io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_and_pending_results_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(Some(&dir.path().join("agent"))).unwrap();
        assert!(!state.enrolled());
        assert!(state.agent().is_err());
        let key = SecretKey::from_bytes([8; 32]);
        let agent = AgentRecord {
            server: "http://127.0.0.1:1".into(),
            agent_id: "41".parse().unwrap(),
            tenant_id: "7".parse().unwrap(),
            destination: Destination {
                id: "3".parse().unwrap(),
                bucket: "b".into(),
                prefix: "t7/ab".into(),
            },
            repository: RepositoryRecord {
                id: "5".parse().unwrap(),
                key_id: "00".repeat(16),
                suite: Suite::ChaCha20Poly1305,
                access: KeyAccess::WriteOnly,
            },
        };
        state.save_enrolment(&agent, "cfg_secret", &key).unwrap();
        let mode = |p: &str| {
            fs::metadata(state.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            (mode(""), mode("api-key"), mode("repository.key")),
            (0o700, 0o600, 0o600)
        );
        // A second enrolment into the same folder is refused, nothing replaced.
        assert!(state.save_enrolment(&agent, "cfg_other", &key).is_err());
        // "Restart": a new handle on the same folder.
        let again = StateDir::new(Some(state.path())).unwrap();
        assert!(again.enrolled());
        assert_eq!(again.agent().unwrap(), agent);
        assert_eq!(again.api_key().unwrap().as_str(), "cfg_secret");
        assert_eq!(again.repository_key().unwrap().unwrap(), key);
        let body = Completion::failed(5, 1, "disk full".into());
        let run: RunId = "12".parse().unwrap();
        again.save_pending(run, &body).unwrap();
        let third = StateDir::new(Some(state.path())).unwrap();
        assert_eq!(third.pending().unwrap(), vec![(run, body)]);
        third.delivered(run).unwrap();
        assert!(third.pending().unwrap().is_empty());
        third.delivered(run).unwrap();
    }
}
