//! The verdict engine (pure): check results + bake state → the revision's verdict, and the
//! verdict + what failed + the release history → the recommended action with its exact
//! command.
//!
//! Rules (DESIGN §4): any failed check fails the revision; otherwise an inconclusive check
//! makes it inconclusive; otherwise it is progressing until every check has decided and the
//! bake window is over; then a warning makes it degraded, else it is healthy. A dependency
//! failure wins over everything for the action (a rollback would not work), then a hook that
//! failed before the manifest was applied, then a rollback, then a pod restart for a
//! migration that did not complete. No action is recommended for a revision that is no
//! longer the latest, while a Helm operation holds the release, or after an uninstall.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checks::{CheckId, CheckResult, FailClass, Outcome};
use crate::release::ReleaseKey;
use crate::release::ReleaseStatus;
use crate::release::labels::Storage;
use crate::release::rollback_target::{BakeRecord, select_rollback_target};

mod action;
mod report;

pub use action::{RecommendedAction, rollback_args, rollback_command};
pub use report::Report;

/// A revision's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Inside the bake window, nothing wrong so far.
    Progressing,
    /// The bake window passed and every check passed.
    Healthy,
    /// The bake window passed with warnings.
    Degraded,
    /// A check failed: an action is recommended.
    Failed,
    /// Cannot judge: monitoring error or no data.
    Inconclusive,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 5] = [
        Self::Progressing,
        Self::Healthy,
        Self::Degraded,
        Self::Failed,
        Self::Inconclusive,
    ];

    /// The word used in tables, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "progressing",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// The verdict of a set of results.
pub fn verdict(results: &[CheckResult], bake_over: bool) -> Verdict {
    let has = |o: Outcome| results.iter().any(|r| r.outcome == o);
    if has(Outcome::Fail) {
        Verdict::Failed
    } else if has(Outcome::Inconclusive) {
        Verdict::Inconclusive
    } else if has(Outcome::Pending) || !bake_over {
        Verdict::Progressing
    } else if has(Outcome::Warn) {
        Verdict::Degraded
    } else {
        Verdict::Healthy
    }
}

impl Verdict {
    /// The bake record a final verdict leaves (healthy, degraded, failed); `None` for a
    /// verdict that is no judgement (progressing, inconclusive).
    pub fn bake_record(self) -> Option<BakeRecord> {
        match self {
            Self::Healthy => Some(BakeRecord::Healthy),
            Self::Degraded => Some(BakeRecord::Degraded),
            Self::Failed => Some(BakeRecord::Failed),
            Self::Progressing | Self::Inconclusive => None,
        }
    }
}

/// What the action needs to know about the release.
#[derive(Debug, Clone)]
pub struct ActionContext<'a> {
    /// The release.
    pub release: &'a ReleaseKey,
    /// The revision judged.
    pub revision: u32,
    /// The release history (revision, status), as last read.
    pub history: &'a [(u32, ReleaseStatus)],
    /// Rollback revisions and the revision each rolled back to.
    pub rollbacks: &'a BTreeMap<u32, u32>,
    /// Bake records of earlier revisions.
    pub bakes: &'a BTreeMap<u32, BakeRecord>,
    /// `--timeout` for `helm rollback`.
    pub rollback_timeout: Duration,
    /// Helm's storage driver holding the release (the command must name a non-default one).
    pub storage: Storage,
    /// The command that restarts the release's pods.
    pub restart_command: String,
}

fn first(results: &[CheckResult], outcome: Outcome) -> Option<&CheckResult> {
    results.iter().find(|r| r.outcome == outcome)
}

/// Why no action may be taken on `revision` given the history as last read: it is no longer
/// the latest revision, the latest is `pending-*` (a Helm operation holds the release), or
/// the release was uninstalled (with or without its history). `None` when the revision is
/// still current.
pub fn stale(history: &[(u32, ReleaseStatus)], revision: u32) -> Option<String> {
    let Some((latest, status)) = history.iter().max_by_key(|(r, _)| *r) else {
        return Some(format!(
            "the release has no revision any more (uninstalled): nothing to do for revision {revision}"
        ));
    };
    if *latest != revision {
        return Some(format!(
            "revision {revision} is no longer the latest: revision {latest} is {status}; no action on a superseded revision"
        ));
    }
    if status.is_pending() {
        return Some(format!(
            "revision {latest} is {status}: a Helm operation holds the release; no action while it runs"
        ));
    }
    if matches!(
        status,
        ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
    ) {
        return Some(format!(
            "the release is {status} (revision {latest}): nothing to do"
        ));
    }
    None
}

/// Replaces an action by a hold when the history (re-read just before) says the revision is
/// no longer current.
pub fn guard(
    action: RecommendedAction,
    history: &[(u32, ReleaseStatus)],
    revision: u32,
) -> RecommendedAction {
    match (&action, stale(history, revision)) {
        (RecommendedAction::None, _) | (_, None) => action,
        (_, Some(reason)) => RecommendedAction::Hold { reason },
    }
}

/// The recommended action for a verdict. Order for a failed revision: a dependency down
/// (a rollback would not work), a failed hook before the manifest (the new version never
/// ran), a pod restart for a migration that did not complete when the other failures are
/// its consequences (pods still starting, a rollout not done, a growing backlog), a
/// rollback (unless a dependency is not confirmed healthy: then investigate, with the
/// command), a pod restart for a migration that did not complete, else investigate.
/// Any action is held when the history says the revision is no longer current.
pub fn recommend(
    verdict: Verdict,
    results: &[CheckResult],
    ctx: &ActionContext<'_>,
) -> RecommendedAction {
    let action = match verdict {
        Verdict::Healthy | Verdict::Progressing => RecommendedAction::None,
        Verdict::Degraded => RecommendedAction::Investigate {
            reason: first(results, Outcome::Warn).map_or_else(String::new, |r| r.summary.clone()),
        },
        Verdict::Inconclusive => RecommendedAction::Investigate {
            reason: first(results, Outcome::Inconclusive).map_or_else(String::new, |r| {
                format!("cannot judge the revision: {}", r.summary)
            }),
        },
        Verdict::Failed => for_failure(results, ctx),
    };
    guard(action, ctx.history, ctx.revision)
}

/// Whether a rollback-class failure is what a migration that did not complete explains: the
/// release's pods are still starting (not Ready, with no crash, pull, scheduling or other
/// breakage: a pod waiting for its migration), so its rollout is not done and its backlog
/// grows. A broken pod, or any other failure, is not explained and calls for a rollback.
fn explained_by_migration(failure: &CheckResult, results: &[CheckResult]) -> bool {
    let symptom = matches!(
        failure.check,
        CheckId::Rollout(_) | CheckId::PendingPods | CheckId::Lag
    );
    let starting: [&str; 2] = [
        crate::checks::observe::PodProblem::NotReady.as_str(),
        crate::checks::observe::PodProblem::Initializing.as_str(),
    ];
    let pods_starting = results
        .iter()
        .find(|r| r.check == CheckId::PendingPods)
        .is_some_and(|p| !p.counts.is_empty() && p.counts.keys().all(|k| starting.contains(k)));
    symptom && pods_starting
}

fn for_failure(results: &[CheckResult], ctx: &ActionContext<'_>) -> RecommendedAction {
    let failed: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .collect();
    if let Some(name) = failed.iter().find_map(|r| match &r.on_fail {
        FailClass::FixDependency { name } => Some(name.clone()),
        _ => None,
    }) {
        return RecommendedAction::FixDependency { name };
    }
    if let Some((hook, command)) = failed.iter().find_map(|r| match &r.on_fail {
        FailClass::FixHook { hook, logs_command } => Some((hook.clone(), logs_command.clone())),
        _ => None,
    }) {
        return RecommendedAction::FixHook { hook, command };
    }
    if failed.iter().any(|r| r.on_fail == FailClass::RestartPod)
        && failed
            .iter()
            .filter(|r| r.on_fail == FailClass::Rollback)
            .all(|r| explained_by_migration(r, results))
    {
        return RecommendedAction::RestartPod {
            command: ctx.restart_command.clone(),
        };
    }
    let rollback_failures = || failed.iter().filter(|r| r.on_fail == FailClass::Rollback);
    // The migration not confirmed (yet: within its `for:`; or the database does not
    // answer), the pods waiting: they may wait for it, or for the database. Not a rollback.
    let unconfirmed = |r: &&CheckResult| {
        (r.outcome == Outcome::Pending && r.on_fail == FailClass::RestartPod)
            || (r.check == CheckId::MigrationSql
                && matches!(r.outcome, Outcome::Pending | Outcome::Inconclusive))
    };
    if let Some(m) = results.iter().find(unconfirmed)
        && rollback_failures().all(|r| explained_by_migration(r, results))
    {
        return RecommendedAction::Investigate {
            reason: format!(
                "the pods are still starting and the migration is not confirmed ({}): they may be waiting for it (or for the database), which a rollback would not fix; once the database answers, if the migration stays unconfirmed, restart the pod: {}",
                m.summary, ctx.restart_command
            ),
        };
    }
    if rollback_failures().next().is_some() {
        return match select_rollback_target(ctx.history, ctx.revision, ctx.bakes, ctx.rollbacks) {
            Some(t) => {
                let command = rollback_command(
                    ctx.release,
                    ctx.storage,
                    t.revision,
                    ctx.rollback_timeout,
                    false,
                );
                // A dependency not confirmed healthy (inside its `for:`, or not answering)
                // may be why the release fails, and a rollback does not work while it is
                // down: check it first.
                match results
                    .iter()
                    .filter(|r| r.outcome != Outcome::Pass)
                    .find_map(|r| Some((r, r.check.dependency()?)))
                {
                    Some((dep, name)) => RecommendedAction::Investigate {
                        reason: format!(
                            "{name} is not confirmed healthy ({}: {}); a rollback does not work while a dependency is down: check it first, and if it is healthy roll back with: {command}",
                            dep.outcome.as_str(),
                            dep.summary
                        ),
                    },
                    None => RecommendedAction::Rollback {
                        target: t.revision,
                        basis: t.basis,
                        command,
                    },
                }
            }
            None => RecommendedAction::Investigate {
                reason: format!(
                    "no earlier revision of {} is known to have run well (none deployed, or failed, pending or abandoned by a rollback): nothing safe to roll back to; fix forward or uninstall",
                    ctx.release
                ),
            },
        };
    }
    if failed.iter().any(|r| r.on_fail == FailClass::RestartPod) {
        return RecommendedAction::RestartPod {
            command: ctx.restart_command.clone(),
        };
    }
    RecommendedAction::Investigate {
        reason: failed
            .first()
            .map_or_else(String::new, |r| r.summary.clone()),
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
