//! The automatic-action planner (pure): from the verdict, the release history as re-read
//! just now, upgrade-guard's action records, the policy and the time, decide to roll back
//! (to which revision), to restart the migration pod, or to hold, and why.
//!
//! [`precheck`] takes what the evaluation knows and needs no I/O: a hold it returns is final
//! for this round, so most rounds never read the cluster. [`plan`] takes the fresh history
//! and records and applies every rule of DESIGN §5. Every hold has a stable reason (a metric
//! label) and words for the operator.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::gitops::Manager;
use super::trust::Reapplied;
use crate::checks::{CheckResult, Outcome};
use crate::config::{ActionsConfig, ReleasePolicy};
use crate::records::action::{ActionKind, ActionRecord};
use crate::release::labels::Storage;
use crate::release::rollback_target::{
    BakeRecord, RollbackTarget, TargetBasis, select_rollback_target,
};
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::units::human;
use crate::units::plus;
use crate::verdict::{RecommendedAction, Verdict, rollback_command};

/// Why no automatic action is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Another replica holds the Lease.
    NotLeader,
    /// A dependency fails or is not confirmed healthy: a rollback would not work.
    DependencyDown,
    /// A check could not be judged (monitoring error, no data): no unattended action on
    /// partial evidence.
    EvidenceIncomplete,
    /// The failure has no automatic remedy (a hook, something to investigate).
    NeedsOperator,
    /// The judged revision is no longer the latest.
    NotLatest,
    /// A Helm operation holds the release (`pending-*`).
    ReleaseLocked,
    /// Helm marked the revision failed moments ago: helm itself (`--atomic`,
    /// `--rollback-on-failure`) or a controller may be rolling it back.
    Settling,
    /// The release is gone.
    Uninstalled,
    /// The bad revision is itself a rollback: rolling back a rollback is how loops start.
    RollbackRevision,
    /// A GitOps controller manages the release and would upgrade it again: the operator
    /// reverts in Git or suspends it.
    #[serde(rename = "gitops_managed")]
    GitOpsManaged,
    /// The revision applies again the version upgrade-guard rolled back: whoever applied
    /// it would apply it again.
    Reapplied,
    /// The target a rollback would take had its Helm record rewritten after it was judged
    /// (or it cannot be read): never rolled back to.
    TargetRefused,
    /// Another upgrade-guard installation acts on the release's namespace.
    AnotherInstallation,
    /// The automatic attempts for this bad revision are used up.
    AlreadyAttempted,
    /// The previous automatic action on this release is too recent.
    Cooldown,
    /// The automatic actions across all releases within the window are used up.
    Budget,
    /// No earlier revision is known to have run well.
    NoTarget,
    /// An action on this release is running.
    InProgress,
    /// The history or the records could not be read: nothing is done blind.
    Unreadable,
}

impl HoldReason {
    /// Every reason (for metrics).
    pub const ALL: [HoldReason; 19] = [
        Self::NotLeader,
        Self::DependencyDown,
        Self::EvidenceIncomplete,
        Self::NeedsOperator,
        Self::NotLatest,
        Self::ReleaseLocked,
        Self::Settling,
        Self::Uninstalled,
        Self::RollbackRevision,
        Self::GitOpsManaged,
        Self::Reapplied,
        Self::TargetRefused,
        Self::AnotherInstallation,
        Self::AlreadyAttempted,
        Self::Cooldown,
        Self::Budget,
        Self::NoTarget,
        Self::InProgress,
        Self::Unreadable,
    ];

    /// A hold that passes by itself (leadership, a source failing, the history unreadable,
    /// another party's Helm operation): the decision is worth taking again.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::NotLeader
                | Self::EvidenceIncomplete
                | Self::Unreadable
                | Self::ReleaseLocked
                | Self::Settling
        )
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotLeader => "not_leader",
            Self::DependencyDown => "dependency_down",
            Self::EvidenceIncomplete => "evidence_incomplete",
            Self::NeedsOperator => "needs_operator",
            Self::NotLatest => "not_latest",
            Self::ReleaseLocked => "release_locked",
            Self::Settling => "settling",
            Self::Uninstalled => "uninstalled",
            Self::RollbackRevision => "rollback_revision",
            Self::GitOpsManaged => "gitops_managed",
            Self::Reapplied => "reapplied",
            Self::TargetRefused => "target_refused",
            Self::AnotherInstallation => "another_installation",
            Self::AlreadyAttempted => "already_attempted",
            Self::Cooldown => "cooldown",
            Self::Budget => "budget",
            Self::NoTarget => "no_target",
            Self::InProgress => "in_progress",
            Self::Unreadable => "unreadable",
        }
    }
}

/// A hold: the reason and the words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Stable reason.
    pub reason: HoldReason,
    /// What the operator reads.
    pub detail: String,
}

fn hold(reason: HoldReason, detail: impl Into<String>) -> Hold {
    Hold {
        reason,
        detail: detail.into(),
    }
}

/// What the planner decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Plan {
    /// `helm rollback` to `target`.
    Rollback {
        /// The revision rolled back to.
        target: u32,
        /// Why that one.
        basis: TargetBasis,
        /// The command run.
        command: String,
    },
    /// Delete the pods of `workload` once (the migration resumes).
    RestartPod {
        /// `kind/name` of the workload.
        workload: String,
    },
    /// Nothing is done, and why.
    Hold(Hold),
}

/// The outcome of [`precheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// Nothing to do (the revision did not fail).
    Nothing,
    /// Hold, without reading anything.
    Hold(Hold),
    /// Worth reading the history and the records for.
    Candidate(ActionKind),
}

/// The first rules, from what the evaluation knows: the verdict, its action, the checks and
/// the leadership. `restart_allowed` is the release's `auto.restart_migration_pod`.
pub fn precheck(
    verdict: Verdict,
    action: &RecommendedAction,
    results: &[CheckResult],
    leader: bool,
    restart_allowed: bool,
) -> Precheck {
    if verdict != Verdict::Failed {
        return Precheck::Nothing;
    }
    if let RecommendedAction::FixDependency { name } = action {
        return Precheck::Hold(hold(
            HoldReason::DependencyDown,
            format!(
                "the dependency {name} fails: a rollback does not work while it is down; fix it first"
            ),
        ));
    }
    if let Some((dep, name)) = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .find_map(|r| Some((r, r.check.dependency()?)))
    {
        return Precheck::Hold(hold(
            HoldReason::DependencyDown,
            format!(
                "the dependency {name} is not confirmed healthy ({}: {}): a rollback does not work while it is down",
                dep.outcome.as_str(),
                dep.summary
            ),
        ));
    }
    if let Some(r) = results.iter().find(|r| r.stale) {
        return Precheck::Hold(hold(
            HoldReason::EvidenceIncomplete,
            format!(
                "the check {} was not judged from a current answer ({}): no unattended action while its monitoring source fails",
                r.check, r.summary
            ),
        ));
    }
    // A check that cannot be judged although its source answers (a Job deleted by its TTL,
    // no data, a presence that cannot be proven) never will be: it does not hold the
    // failure the other checks established, or one such check would turn `auto` into
    // `recommend` for good. Only a source failing now (stale, above) holds.
    let kind = match action {
        RecommendedAction::Rollback { .. } => ActionKind::Rollback,
        RecommendedAction::RestartPod { command } => {
            if !restart_allowed {
                return Precheck::Hold(hold(
                    HoldReason::NeedsOperator,
                    format!(
                        "restarting the migration pod automatically is off (auto.restart_migration_pod); run: {command}"
                    ),
                ));
            }
            ActionKind::RestartPod
        }
        RecommendedAction::Hold { reason } => {
            return Precheck::Hold(hold(HoldReason::NotLatest, reason.clone()));
        }
        other => {
            return Precheck::Hold(hold(
                HoldReason::NeedsOperator,
                format!("this failure has no automatic remedy: {}", other.words()),
            ));
        }
    };
    if !leader {
        return Precheck::Hold(hold(
            HoldReason::NotLeader,
            "another replica holds the leader Lease; it decides and acts",
        ));
    }
    Precheck::Candidate(kind)
}

/// A hold while the revision's `failed` status is younger than `settle`: helm itself
/// (`--atomic`, `--rollback-on-failure`) or a GitOps controller may be rolling it back
/// right now, and upgrade-guard never races another party's operation. `None` otherwise.
pub fn settling(
    status: ReleaseStatus,
    status_since: Timestamp,
    now: Timestamp,
    settle: std::time::Duration,
) -> Option<Hold> {
    let age = crate::units::between(status_since, now);
    (status == ReleaseStatus::Failed && age < settle).then(|| {
        hold(
            HoldReason::Settling,
            format!(
                "helm marked the revision failed {} ago: helm itself (--atomic) or a controller may be rolling it back; upgrade-guard waits {} before acting, never racing it",
                human(age),
                human(settle)
            ),
        )
    })
}

/// What [`plan`] needs besides the precheck's inputs, read just before deciding.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The release.
    pub release: &'a ReleaseKey,
    /// The failed revision.
    pub revision: u32,
    /// Helm's storage driver of the release.
    pub storage: Storage,
    /// The release history as re-read now.
    pub history: &'a [(u32, ReleaseStatus)],
    /// Rollback revisions and their targets (from Helm's descriptions).
    pub rollbacks: &'a BTreeMap<u32, u32>,
    /// Bake records the plan trusts (this install's, bound to the content judged; see
    /// [`super::trust`]).
    pub bakes: &'a BTreeMap<u32, BakeRecord>,
    /// Healthy records refused as targets, and why.
    pub refused: &'a [(u32, String)],
    /// The revision applies again a version upgrade-guard rolled back.
    pub reapplied: Option<&'a Reapplied>,
    /// upgrade-guard's action records of this release.
    pub records: &'a [ActionRecord],
    /// Automatic actions started within the budget window, across all releases.
    pub recent_actions: u32,
    /// An action on this release is running in this process.
    pub in_progress: bool,
    /// The workload whose pods a migration restart deletes (`kind/name`), if known.
    pub restart_workload: Option<String>,
    /// A controller that manages the release (seen on its objects).
    pub manager: Option<Manager>,
    /// Now.
    pub now: Timestamp,
}

fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The rules that need the fresh history and records, once [`precheck`] named a candidate.
pub fn plan(
    kind: ActionKind,
    f: &Facts<'_>,
    policy: &ReleasePolicy,
    actions: &ActionsConfig,
) -> Plan {
    match decide(kind, f, policy, actions) {
        Ok(plan) => plan,
        Err(h) => Plan::Hold(h),
    }
}

fn decide(
    kind: ActionKind,
    f: &Facts<'_>,
    policy: &ReleasePolicy,
    actions: &ActionsConfig,
) -> Result<Plan, Hold> {
    let rev = f.revision;
    if f.in_progress {
        return Err(hold(
            HoldReason::InProgress,
            "an automatic action on this release is running",
        ));
    }
    let Some(&(latest, status)) = f.history.iter().max_by_key(|(r, _)| *r) else {
        return Err(hold(
            HoldReason::Uninstalled,
            "the release has no revision any more",
        ));
    };
    if status.is_pending() {
        return Err(hold(
            HoldReason::ReleaseLocked,
            format!(
                "revision {latest} is {status}: a Helm operation upgrade-guard did not start holds the release; it is never touched"
            ),
        ));
    }
    if latest != rev {
        return Err(hold(
            HoldReason::NotLatest,
            format!(
                "revision {rev} is no longer the latest: revision {latest} ({status}) was written since"
            ),
        ));
    }
    if matches!(
        status,
        ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
    ) {
        return Err(hold(
            HoldReason::Uninstalled,
            format!("the release is {status}"),
        ));
    }
    if let (ActionKind::Rollback, Some(m)) = (kind, &f.manager) {
        return Err(hold(HoldReason::GitOpsManaged, m.words()));
    }
    if let Some(r) = f
        .records
        .iter()
        .find(|r| r.new_revision == Some(rev) && r.action == ActionKind::Rollback)
    {
        return Err(hold(
            HoldReason::RollbackRevision,
            format!(
                "revision {rev} is upgrade-guard's own rollback of revision {} (to {}): it is never rolled back automatically; an operator decides",
                r.bad_revision,
                r.target.unwrap_or_default()
            ),
        ));
    }
    if let Some(to) = f.rollbacks.get(&rev) {
        return Err(hold(
            HoldReason::RollbackRevision,
            format!(
                "revision {rev} is a rollback to revision {to}: a rollback someone chose is not undone automatically; an operator decides"
            ),
        ));
    }
    if let (ActionKind::Rollback, Some(r)) = (kind, f.reapplied) {
        return Err(hold(HoldReason::Reapplied, r.words(rev)));
    }
    let attempts: Vec<&ActionRecord> = f
        .records
        .iter()
        .filter(|r| r.bad_revision == rev && r.phase.counts())
        .collect();
    if attempts.len() >= policy.auto.max_per_revision as usize {
        let last = attempts
            .iter()
            .max_by_key(|r| r.started)
            .map(|r| {
                format!(
                    "; the last one started {} and is {}",
                    stamp(r.started),
                    r.phase.as_str()
                )
            })
            .unwrap_or_default();
        return Err(hold(
            HoldReason::AlreadyAttempted,
            format!(
                "{} automatic action(s) already taken for revision {rev}, at most {} (auto.max_per_revision){last}",
                attempts.len(),
                policy.auto.max_per_revision
            ),
        ));
    }
    if let Some(last) = f
        .records
        .iter()
        .filter(|r| r.phase.counts())
        .map(|r| r.started)
        .max()
    {
        let until = plus(last, policy.auto.cooldown);
        if until > f.now {
            return Err(hold(
                HoldReason::Cooldown,
                format!(
                    "the previous automatic action on this release started {}; auto.cooldown ({}) allows the next one from {}",
                    stamp(last),
                    human(policy.auto.cooldown),
                    stamp(until)
                ),
            ));
        }
    }
    if f.recent_actions >= actions.budget {
        return Err(hold(
            HoldReason::Budget,
            format!(
                "{} automatic action(s) across all releases within {} already (actions.budget {}): the rest is left to operators",
                f.recent_actions,
                human(actions.budget_window),
                actions.budget
            ),
        ));
    }
    match kind {
        ActionKind::Rollback => {
            let t = target(f, policy)?;
            Ok(Plan::Rollback {
                target: t.revision,
                basis: t.basis,
                // Exactly what the executor runs.
                command: rollback_command(
                    f.release,
                    f.storage,
                    t.revision,
                    policy.rollback_timeout,
                    true,
                ),
            })
        }
        ActionKind::RestartPod => match &f.restart_workload {
            Some(w) => Ok(Plan::RestartPod {
                workload: w.clone(),
            }),
            None => Err(hold(
                HoldReason::NeedsOperator,
                "the release has no Deployment or StatefulSet whose pod could be restarted",
            )),
        },
    }
}

/// The target of an automatic rollback: only a revision upgrade-guard itself judged
/// healthy in its bake, with the content it judged. "The newest that ran" is a
/// recommendation for a person who can look, never a target in the night.
fn target(f: &Facts<'_>, policy: &ReleasePolicy) -> Result<RollbackTarget, Hold> {
    let rev = f.revision;
    // Had the refused records been trusted, would one of them have been the target?
    let mut naive = f.bakes.clone();
    naive.extend(f.refused.iter().map(|(r, _)| (*r, BakeRecord::Healthy)));
    if let Some(t) = select_rollback_target(f.history, rev, &naive, f.rollbacks)
        && let Some((_, why)) = f.refused.iter().find(|(r, _)| *r == t.revision)
    {
        return Err(hold(
            HoldReason::TargetRefused,
            format!(
                "revision {} would be the rollback target, but {why}; upgrade-guard never rolls back to it: check the release's records, then roll back by hand",
                t.revision
            ),
        ));
    }
    match select_rollback_target(f.history, rev, f.bakes, f.rollbacks) {
        Some(t) if t.basis == TargetBasis::PassedBake => Ok(t),
        Some(t) => Err(hold(
            HoldReason::NoTarget,
            format!(
                "no revision before {rev} passed a bake judged by upgrade-guard (in this install of the release); revision {} ran, but was installed before upgrade-guard watched or superseded before its bake ended: if it is good, roll back by hand: {}",
                t.revision,
                rollback_command(
                    f.release,
                    f.storage,
                    t.revision,
                    policy.rollback_timeout,
                    true
                )
            ),
        )),
        None => Err(hold(
            HoldReason::NoTarget,
            format!(
                "no revision before {rev} is known to have run well (none deployed, or failed, pending or abandoned by a rollback)"
            ),
        )),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
