//! One automatic action's record (pure): what was done (a rollback to a target, a migration
//! pod restart) because which revision failed, where it stands, and the words for it; and
//! which record concerns a revision (the action taken because it failed, or the rollback
//! that created it).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What an automatic action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `helm rollback` to a known-good revision.
    Rollback,
    /// Delete the migration pod once.
    RestartPod,
}

impl ActionKind {
    /// The word used in JSON, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::RestartPod => "restart_pod",
        }
    }
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Intent written; the action runs (or ran and its process died before saying).
    Running,
    /// Not started after all: the history changed after the intent was written.
    Cancelled,
    /// The action completed; its revision is being evaluated.
    Done,
    /// The action failed (helm exited with an error or its deadline passed).
    Failed,
    /// The process that ran it is gone; what happened is in the detail.
    Interrupted,
    /// The rollback's revision passed its bake.
    Verified,
    /// The rollback's revision failed its bake.
    VerificationFailed,
}

impl Phase {
    /// Whether the attempt counts against `max_per_revision`, the cooldown and the budget:
    /// everything that ran or may have run.
    pub fn counts(self) -> bool {
        self != Self::Cancelled
    }

    /// How far along a record is: running, then an outcome, then a verification. A record
    /// is never written back to an earlier stage.
    pub fn stage(self) -> u8 {
        match self {
            Self::Running => 0,
            Self::Cancelled | Self::Done | Self::Failed | Self::Interrupted => 1,
            Self::Verified | Self::VerificationFailed => 2,
        }
    }

    /// The word used in JSON, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Verified => "verified",
            Self::VerificationFailed => "verification_failed",
        }
    }
}

/// One automatic action. Never any release values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The revision that failed.
    pub bad_revision: u32,
    /// 1 for the first attempt on that revision.
    pub attempt: u32,
    /// What was done.
    pub action: ActionKind,
    /// The revision rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// The command, as an operator would type it.
    pub command: String,
    /// The replica that started it (`actions.leader_election` identity).
    pub holder: String,
    /// When the intent was written.
    pub started: Timestamp,
    /// Where it stands.
    pub phase: Phase,
    /// When the outcome was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// The revision the rollback created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_revision: Option<u32>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where the process that holds it runs, so that another one can prove it gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessMark>,
    /// The holder that started it and died, when another process completed it (the same
    /// attempt, never a second one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<String>,
    /// Which install of the release and which version the bad revision was: records of an
    /// earlier install never speak for a reinstall's revisions of the same number, and a
    /// version rolled back is recognised when it is applied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<AboutRevision>,
}

/// Which install and which version a revision was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AboutRevision {
    /// When the release was first deployed (Helm's `first_deployed`, kept across upgrades
    /// and rollbacks, new after an uninstall and install).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<Timestamp>,
    /// Chart name.
    pub chart: String,
    /// Chart version.
    pub version: String,
    /// The packaged application's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

/// Where a process runs, as another process can check it: on the same machine and `/proc`,
/// its pid and start time; in Kubernetes, its pod and the restart count of its container.
/// Whatever is unknown stays `None`, and proves nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessMark {
    /// The machine's boot (`/proc/sys/kernel/random/boot_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The device of the `/proc` it sees: processes that see the same `/proc` see each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_dev: Option<u64>,
    /// Its pid in that `/proc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// When it started, in clock ticks after boot (`/proc/<pid>/stat`): a reused pid is not
    /// taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// It is the first process of its PID namespace (pid 1, as in a container): when it
    /// exits, the kernel stops every process it started.
    #[serde(default)]
    pub namespace_init: bool,
    /// Its pod, when it runs in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodMark>,
}

/// The pod a process runs in, and the restarts of its container when it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMark {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (a pod recreated under the same name has another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The container it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// That container's restart count when the process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i32>,
}

/// How long an action record is kept (the last one of each bad revision is kept for as
/// long as the ConfigMap exists: what `max_per_revision` counts).
pub const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 60 * 60);

/// The keys of the records a rewrite drops: finished more than `kept_for` before `now`
/// (started, when no finish is known), never one still `running`, never the last attempt of
/// its bad revision.
pub fn pruned(
    records: &[ActionRecord],
    now: Timestamp,
    kept_for: std::time::Duration,
) -> Vec<String> {
    let last: std::collections::BTreeMap<u32, u32> =
        records.iter().fold(Default::default(), |mut m, r| {
            let e = m.entry(r.bad_revision).or_insert(r.attempt);
            *e = (*e).max(r.attempt);
            m
        });
    records
        .iter()
        .filter(|r| {
            r.phase != Phase::Running
                && last.get(&r.bad_revision) != Some(&r.attempt)
                && crate::units::plus(r.finished.unwrap_or(r.started), kept_for) < now
        })
        .map(ActionRecord::key)
        .collect()
}

impl ActionRecord {
    /// The ConfigMap key.
    pub fn key(&self) -> String {
        format!("{}.{}", self.bad_revision, self.attempt)
    }

    /// The record in one sentence, its command last: what was done, where it stands, why.
    pub fn words(&self) -> String {
        let r = self;
        let what = match (r.action, r.target) {
            (ActionKind::Rollback, Some(t)) => format!(
                "automatic rollback of revision {} to revision {t}",
                r.bad_revision
            ),
            _ => format!(
                "automatic restart of the migration pod (revision {})",
                r.bad_revision
            ),
        };
        let phase = match r.phase {
            Phase::Running => "running".to_string(),
            Phase::Cancelled => "cancelled before it ran".to_string(),
            Phase::Done if r.action == ActionKind::Rollback => "done, verifying".to_string(),
            Phase::Done => "done".to_string(),
            Phase::Failed => "FAILED".to_string(),
            Phase::Interrupted => "INTERRUPTED".to_string(),
            Phase::Verified => "verified".to_string(),
            Phase::VerificationFailed => "FAILED its verification".to_string(),
        };
        match &r.detail {
            Some(d) => format!("{what}: {phase}: {d} ({})", r.command),
            None => format!("{what}: {phase} ({})", r.command),
        }
    }
}

/// Whether `r` is the rollback that created `revision` (a rollback to `rolled_back_to`,
/// from Helm's description): by the record's own account, or, while the record does not
/// know its revision yet (its process died before saying), by target.
pub fn created(r: &ActionRecord, revision: u32, rolled_back_to: Option<u32>) -> bool {
    r.action == ActionKind::Rollback
        && (r.new_revision == Some(revision)
            || (r.new_revision.is_none()
                && revision > r.bad_revision
                && rolled_back_to.is_some()
                && r.target == rolled_back_to))
}

/// The record that concerns `revision`: the action taken because it failed, or the
/// rollback that created it (`rolled_back_to`: the revision it rolled back to, if it is a
/// rollback).
pub fn record_for(
    records: &[ActionRecord],
    revision: u32,
    rolled_back_to: Option<u32>,
) -> Option<&ActionRecord> {
    records
        .iter()
        .rev()
        .find(|r| r.bad_revision == revision || created(r, revision, rolled_back_to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bad: u32, target: u32, new_revision: Option<u32>) -> ActionRecord {
        ActionRecord {
            bad_revision: bad,
            attempt: 1,
            action: ActionKind::Rollback,
            target: Some(target),
            command: String::new(),
            holder: "a".into(),
            started: Timestamp::from_second(1_800_000_000).unwrap(),
            phase: Phase::Running,
            finished: None,
            new_revision,
            detail: None,
            process: None,
            taken_over_from: None,
            about: None,
        }
    }

    #[test]
    fn a_record_concerns_its_bad_revision_and_the_rollback_it_created() {
        let known = [record(2, 1, Some(3))];
        assert_eq!(record_for(&known, 2, None), Some(&known[0]));
        assert_eq!(record_for(&known, 3, Some(1)), Some(&known[0]));
        assert_eq!(record_for(&known, 4, None), None);
        // A record whose process died before it knew its revision: by target, and only
        // for a later rollback to that target.
        let unknown = [record(2, 1, None)];
        assert_eq!(record_for(&unknown, 3, Some(1)), Some(&unknown[0]));
        assert_eq!(record_for(&unknown, 3, Some(2)), None, "another target");
        assert_eq!(record_for(&unknown, 3, None), None, "not a rollback");
        assert_eq!(record_for(&[record(5, 1, None)], 3, Some(1)), None, "older");
    }

    /// Issue 20.9: old records are pruned, never a running one nor the last attempt of a
    /// bad revision (what `max_per_revision` counts).
    #[test]
    fn old_records_are_pruned_keeping_the_last_per_revision() {
        let day = 24 * 60 * 60;
        let at = |days: i64| Timestamp::from_second(1_800_000_000 + days * day).unwrap();
        let r = |bad: u32, attempt: u32, phase: Phase, days: i64| ActionRecord {
            attempt,
            phase,
            started: at(days),
            finished: (phase != Phase::Running).then(|| at(days)),
            ..record(bad, 1, None)
        };
        let records = [
            r(2, 1, Phase::Failed, 0),
            r(2, 2, Phase::Verified, 1),
            r(4, 1, Phase::Verified, 2),
            r(6, 1, Phase::Running, 3),
            r(6, 2, Phase::Cancelled, 3),
            r(8, 1, Phase::Failed, 39),
            r(8, 2, Phase::Verified, 40),
        ];
        let kept_for = std::time::Duration::from_secs(30 * 24 * 60 * 60);
        assert_eq!(pruned(&records, at(40), kept_for), ["2.1"]);
        assert_eq!(pruned(&records, at(10), kept_for), Vec::<String>::new());
    }

    #[test]
    fn only_cancelled_attempts_do_not_count() {
        for p in [
            Phase::Running,
            Phase::Done,
            Phase::Failed,
            Phase::Interrupted,
            Phase::Verified,
            Phase::VerificationFailed,
        ] {
            assert!(p.counts(), "{p:?}");
        }
        assert!(!Phase::Cancelled.counts());
    }
}
