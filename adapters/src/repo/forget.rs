//! Retention (forget): which snapshots a policy keeps, per host and set of paths.
//!
//! As restic and Borg read such policies: `keep_last` keeps the newest N; `keep_hourly`
//! (daily, weekly, monthly, yearly) keeps the newest snapshot of each of the newest N
//! hours (days, ISO weeks, months, years) that have one; `keep_within` keeps every
//! snapshot younger than that, counted back from the group's newest. A snapshot any
//! rule keeps is kept. Calendar periods are UTC (jiff's civil time), so a policy gives
//! the same answer on every machine.

use std::collections::{BTreeMap, HashSet};

use super::snapshot::Snapshot;

/// A retention policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Newest N.
    pub keep_last: u32,
    /// One a hour, for N hours.
    pub keep_hourly: u32,
    /// One a day, for N days.
    pub keep_daily: u32,
    /// One an ISO week, for N weeks.
    pub keep_weekly: u32,
    /// One a month, for N months.
    pub keep_monthly: u32,
    /// One a year, for N years.
    pub keep_yearly: u32,
    /// Everything younger than this many seconds before the newest.
    pub keep_within_secs: u64,
}

impl Policy {
    /// Whether the policy keeps nothing at all (a mistake: forgetting everything is
    /// refused by callers).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub id: [u8; 16],
    /// Kept or not.
    pub keep: bool,
    /// The rules that keep it (`last`, `daily`, ...).
    pub reasons: Vec<&'static str>,
}

/// Snapshots are judged within their group: host and paths.
type Group = (String, Vec<Vec<u8>>);
/// A calendar rule: how many periods, its name, and the period a time falls in.
type Period = (u32, &'static str, fn(i64) -> String);

/// Applies `policy` to `snapshots` (any order), group by group (host and paths).
pub fn apply(policy: &Policy, snapshots: &[([u8; 16], Snapshot)]) -> Vec<Decision> {
    let mut groups: BTreeMap<Group, Vec<&([u8; 16], Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups
            .entry((s.1.host.clone(), s.1.paths.clone()))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|(_, s)| std::cmp::Reverse((s.time, s.time_ns)));
        let newest = group.first().map_or(0, |(_, s)| s.time);
        let mut reasons: Vec<Vec<&'static str>> = vec![Vec::new(); group.len()];
        for (i, r) in reasons
            .iter_mut()
            .enumerate()
            .take(policy.keep_last as usize)
        {
            let _ = i;
            r.push("last");
        }
        let periods: [Period; 5] = [
            (policy.keep_hourly, "hourly", |t| period(t, "%Y-%m-%d %H")),
            (policy.keep_daily, "daily", |t| period(t, "%Y-%m-%d")),
            (policy.keep_weekly, "weekly", |t| period(t, "%G-%V")),
            (policy.keep_monthly, "monthly", |t| period(t, "%Y-%m")),
            (policy.keep_yearly, "yearly", |t| period(t, "%Y")),
        ];
        for (count, name, key) in periods {
            let mut seen = HashSet::new();
            for (i, (_, s)) in group.iter().enumerate() {
                if seen.len() >= count as usize {
                    break;
                }
                // The newest snapshot of a period is the first one met.
                if seen.insert(key(s.time)) {
                    reasons[i].push(name);
                }
            }
        }
        if policy.keep_within_secs > 0 {
            let horizon =
                newest.saturating_sub(i64::try_from(policy.keep_within_secs).unwrap_or(i64::MAX));
            for (i, (_, s)) in group.iter().enumerate() {
                if s.time >= horizon {
                    reasons[i].push("within");
                }
            }
        }
        for ((id, _), r) in group.iter().zip(reasons) {
            out.push(Decision {
                id: *id,
                keep: !r.is_empty(),
                reasons: r,
            });
        }
    }
    out
}

/// Applies `policy` to the repository's snapshots and, unless `dry_run`, deletes the
/// snapshots it does not keep (their data stays until `prune`). Returns every decision.
///
/// # Errors
/// [`Error::RepoFormat`] for an empty policy (it would forget everything);
/// [`Error::WriteOnlyKey`]; storage errors.
pub fn forget(
    repo: &super::Repository,
    policy: &Policy,
    dry_run: bool,
) -> Result<Vec<Decision>, crate::Error> {
    if policy.is_empty() {
        return Err(crate::Error::RepoFormat {
            object: "snapshots".to_owned(),
            reason: "a retention policy that keeps nothing: give at least one keep rule".to_owned(),
        });
    }
    let decisions = apply(policy, &repo.snapshots()?);
    if !dry_run {
        for d in decisions.iter().filter(|d| !d.keep) {
            let name = super::config::names::snapshot(&d.id);
            repo.store().delete(&repo.object(&name)?)?;
        }
    }
    Ok(decisions)
}

fn period(unix: i64, format: &str) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::snapshot::{Summary, SNAPSHOT_VERSION};

    fn snap(time: i64, host: &str) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time,
            time_ns: 0,
            host: host.into(),
            user: String::new(),
            paths: vec![b"/data".to_vec()],
            tags: vec![],
            parent: None,
            tree: [0; 32],
            program: String::new(),
            command: None,
            summary: Summary::default(),
        }
    }

    #[test]
    fn daily_weekly_and_last_keep_what_they_say() {
        // 2026-11-30T12:00:00Z, and one snapshot every 6 hours for 30 days back.
        let base = 1_796_040_000;
        let all: Vec<([u8; 16], Snapshot)> = (0..120)
            .map(|i| {
                let mut id = [0u8; 16];
                id[0] = i as u8;
                (id, snap(base - i64::from(i) * 6 * 3600, "nas"))
            })
            .collect();
        let kept = |p: Policy| {
            apply(&p, &all)
                .into_iter()
                .filter(|d| d.keep)
                .map(|d| d.id[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kept(Policy {
                keep_last: 3,
                ..Policy::default()
            })
            .len(),
            3
        );
        // 7 days: the newest of each of the 7 newest days (one is today, at 12:00).
        let daily = kept(Policy {
            keep_daily: 7,
            ..Policy::default()
        });
        assert_eq!(daily.len(), 7);
        assert!(daily.contains(&0));
        let weekly = kept(Policy {
            keep_weekly: 3,
            ..Policy::default()
        });
        assert_eq!(weekly.len(), 3);
        // Rules combine: anything kept by one is kept.
        let both = kept(Policy {
            keep_last: 2,
            keep_daily: 2,
            ..Policy::default()
        });
        assert!(both.len() >= 2 && both.len() <= 4);
        let within = kept(Policy {
            keep_within_secs: 24 * 3600,
            ..Policy::default()
        });
        assert_eq!(within.len(), 5);
        // Groups are separate: another host's snapshots have their own last.
        let mut two = all.clone();
        two.push(([0xee; 16], snap(base - 1_000_000_000, "other")));
        let decisions = apply(
            &Policy {
                keep_last: 1,
                ..Policy::default()
            },
            &two,
        );
        assert!(decisions.iter().any(|d| d.id == [0xee; 16] && d.keep));
        assert!(Policy::default().is_empty());
    }
}
