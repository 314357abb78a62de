//! User and group names for IDs and back, cached for one run.

use std::collections::HashMap;

/// Looks up user and group names for IDs (backup) and IDs for names (restore), and
/// remembers every answer, misses included.
///
/// A lookup can be slow (NSS may ask LDAP or SSSD) and a backup asks about the same
/// few owners for every file, so answers are cached; keep one `Owners` per backup or
/// restore run rather than for the life of a process, so that a long-running server
/// sees users added or renamed since its last run.
#[derive(Debug, Default)]
pub struct Owners {
    user_names: HashMap<u32, String>,
    group_names: HashMap<u32, String>,
    uids: HashMap<String, Option<u32>>,
    gids: HashMap<String, Option<u32>>,
}

impl Owners {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name of user `uid`, or "" if it has none here or it is not UTF-8.
    pub fn user_name(&mut self, uid: u32) -> String {
        self.user_names
            .entry(uid)
            .or_insert_with(|| {
                uzers::get_user_by_uid(uid)
                    .and_then(|u| u.name().to_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The name of group `gid`, or "" if it has none here or it is not UTF-8.
    pub fn group_name(&mut self, gid: u32) -> String {
        self.group_names
            .entry(gid)
            .or_insert_with(|| {
                uzers::get_group_by_gid(gid)
                    .and_then(|g| g.name().to_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The ID user `name` has on this machine, if it exists; `None` for "".
    pub fn uid(&mut self, name: &str) -> Option<u32> {
        if name.is_empty() {
            return None;
        }
        *self
            .uids
            .entry(name.to_owned())
            .or_insert_with(|| uzers::get_user_by_name(name).map(|u| u.uid()))
    }

    /// The ID group `name` has on this machine, if it exists; `None` for "".
    pub fn gid(&mut self, name: &str) -> Option<u32> {
        if name.is_empty() {
            return None;
        }
        *self
            .gids
            .entry(name.to_owned())
            .or_insert_with(|| uzers::get_group_by_name(name).map(|g| g.gid()))
    }
}
