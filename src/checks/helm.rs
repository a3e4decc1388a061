//! Checks of Helm's own record and of the release's Jobs (pure): the revision's status, its
//! hooks, its migration and the other Jobs of its manifest.
//!
//! Jobs are scoped to the release: named in its manifest or hooks, annotated by Helm as the
//! release's, or labelled `app.kubernetes.io/instance=<release>`; two releases sharing a
//! namespace (GIM and gim-monitoring) never see each other's. Of several attempts the latest
//! is judged, so a failed attempt followed by a successful retry passes. A hook that runs
//! before the manifest is applied (`pre-upgrade`, ...) and failed means the new version never
//! ran: a rollback or a pod restart would not help; the action is to fix the hook's cause.

use std::collections::BTreeMap;

use super::observe::JobObs;
use super::{Bound, CheckId, CheckResult, FailClass, Outcome, Revision};
use crate::release::ReleaseStatus;
use crate::release::summary::{Hook, HookPhase, WorkloadKind};
use crate::units::{between, human};

impl Revision<'_> {
    fn migration_matches(&self, name: &str) -> bool {
        self.policy
            .migration
            .as_ref()
            .and_then(|m| m.job_name_pattern.as_ref())
            .is_some_and(|p| p.is_match(name))
    }

    /// Hooks of this revision whose last run failed.
    fn failed_hooks(&self) -> impl Iterator<Item = &Hook> {
        self.summary
            .hooks
            .iter()
            .filter(|h| h.last_run == Some(HookPhase::Failed))
    }

    /// A failed hook that ran before the manifest was applied, if any.
    fn failed_pre_hook(&self) -> Option<&Hook> {
        let operation = self.summary.operation();
        self.failed_hooks().find(|h| h.runs_before_apply(operation))
    }

    /// The result of a failed hook that ran before the manifest was applied.
    fn pre_hook_failure(&self, check: &CheckId, h: &Hook) -> CheckResult {
        let logs = format!(
            "kubectl logs {}/{} -n {}",
            h.kind.to_lowercase(),
            h.name,
            h.namespace
        );
        let op = self.summary.operation().as_str();
        CheckResult::new(
            check,
            Outcome::Fail,
            format!(
                "the pre-{op} hook {} failed, so helm never applied revision {}: the previous version is still running. Read its logs ({logs}), fix the cause and run the {op} again; neither a rollback nor a pod restart would help",
                h.name, self.summary.revision
            ),
        )
        .on_fail(FailClass::FixHook {
            hook: h.name.clone(),
            logs_command: logs,
        })
    }

    /// The Job belongs to this release (not to another release of the namespace).
    fn owns(&self, j: &JobObs) -> bool {
        let s = self.summary;
        let named = s
            .workloads
            .iter()
            .any(|w| w.kind == WorkloadKind::Job && w.name == j.name)
            || s.hooks.iter().any(|h| h.kind == "Job" && h.name == j.name);
        named
            || j.helm_release
                .as_ref()
                .is_some_and(|(name, ns)| *name == s.name && *ns == s.namespace)
            || j.instance.as_deref() == Some(s.name.as_str())
    }

    /// Jobs of this release run by this revision: named in its manifest or hooks, or
    /// created since the upgrade started. Oldest first.
    fn jobs_of_this_revision<'j>(&self, jobs: &'j [JobObs]) -> Vec<&'j JobObs> {
        let s = self.summary;
        let named = |n: &str| {
            s.workloads
                .iter()
                .any(|w| w.kind == WorkloadKind::Job && w.name == n)
                || s.hooks.iter().any(|h| h.name == n)
        };
        // Kubernetes keeps creation times to the second: a Job created in the second the
        // upgrade started is this upgrade's.
        let started =
            jiff::Timestamp::from_second(self.started.as_second()).unwrap_or(self.started);
        let mut ours: Vec<&JobObs> = jobs
            .iter()
            .filter(|j| self.owns(j))
            .filter(|j| named(&j.name) || j.created.is_some_and(|c| c >= started))
            .collect();
        ours.sort_by_key(|j| j.created);
        ours
    }
}

impl Revision<'_> {
    /// The Job was created before this upgrade started (creation times are truncated to
    /// the second: one created in the second the upgrade started is the upgrade's).
    fn created_before_upgrade(&self, j: &JobObs) -> bool {
        j.created
            .is_some_and(|c| c.as_second() < self.started.as_second())
    }
}

/// A Job of the manifest that ran before this upgrade: reported, never charged.
fn earlier_job(r: &Revision<'_>, check: CheckId, j: &JobObs) -> CheckResult {
    let ago = j.created.map_or_else(String::new, |c| {
        format!(" ({} before it)", human(between(c, r.started)))
    });
    let (outcome, how) = match (&j.failed, j.succeeded) {
        (Some(reason), _) => (Outcome::Warn, format!("failed ({reason})")),
        (None, true) => (Outcome::Pass, "completed".to_string()),
        (None, false) => (Outcome::Warn, "has not finished".to_string()),
    };
    CheckResult::new(
        check,
        outcome,
        format!(
            "Job {} was created before this upgrade{ago} and {how}: not this revision's run, not charged to it",
            j.name
        ),
    )
    .on_fail(FailClass::Investigate)
}

/// Helm's description of a failed operation, when it says only that its `--wait` (or
/// `--timeout`) ran out and no hook failed: the manifest was applied, helm stopped waiting
/// for it. Helm 3 writes `Upgrade "x" failed: context deadline exceeded` (older waiters:
/// `timed out waiting for the condition`).
fn helm_wait_timed_out<'r>(r: &Revision<'r>) -> Option<&'r str> {
    let first_line = r.summary.description.lines().next().unwrap_or("").trim();
    let (_, cause) = first_line.split_once(" failed: ")?;
    let timeout = matches!(
        cause.trim(),
        "context deadline exceeded" | "timed out waiting for the condition"
    );
    (r.status == ReleaseStatus::Failed && timeout && r.failed_hooks().next().is_none())
        .then_some(first_line)
}

/// A note for the operator when Helm marked the revision failed because its own `--wait`
/// ran out, `None` otherwise.
pub fn helm_timeout_note(r: &Revision<'_>) -> Option<String> {
    helm_wait_timed_out(r).map(|first_line| {
        format!(
            "helm's own --wait timed out ({first_line}): Helm's timeout is shorter than this release needs to become Ready (readiness_deadline {}); the revision is judged against the readiness deadline, not Helm's timeout",
            human(r.policy.readiness_deadline)
        )
    })
}

/// The revision's Helm status.
pub fn release_status(r: &Revision<'_>) -> CheckResult {
    let check = &CheckId::ReleaseStatus;
    let rev = r.summary.revision;
    match r.status {
        ReleaseStatus::Failed => {
            if let Some(h) = r.failed_pre_hook() {
                return r.pre_hook_failure(check, h);
            }
            if let Some(first_line) = helm_wait_timed_out(r) {
                return CheckResult::new(
                    check,
                    Outcome::Pass,
                    format!(
                        "helm marked revision {rev} failed when its own --wait timed out ({first_line}); the revision is applied and judged like any other, against the readiness deadline"
                    ),
                );
            }
            let migration_hook_failed = r.failed_hooks().any(|h| r.migration_matches(&h.name));
            let first_line = r.summary.description.lines().next().unwrap_or("").trim();
            let result = CheckResult::new(
                check,
                Outcome::Fail,
                format!("helm marked revision {rev} failed: {first_line}"),
            );
            if migration_hook_failed {
                result.on_fail(FailClass::RestartPod)
            } else {
                result
            }
        }
        s if s.is_pending() => {
            let pending_for = between(r.status_since, r.now);
            let result = CheckResult::new(
                check,
                Outcome::Pending,
                format!("revision {rev} is {s} since {}", human(pending_for)),
            )
            .value(pending_for.as_secs_f64())
            .threshold(Bound::Max, r.stuck_pending_after.as_secs_f64())
            .window(r.stuck_pending_after);
            if pending_for >= r.stuck_pending_after {
                CheckResult {
                    outcome: Outcome::Fail,
                    summary: format!(
                        "revision {rev} has been {s} for {} (limit {}): the helm process is probably gone and the release is locked",
                        human(pending_for),
                        human(r.stuck_pending_after)
                    ),
                    ..result
                }
            } else {
                result
            }
        }
        s => CheckResult::new(check, Outcome::Pass, format!("revision {rev} is {s}")),
    }
}

/// The migration Job, if the policy names one: its latest attempt failed or it never ran →
/// restart the pod (it resumes), unless it ran as a hook before the manifest was applied.
pub fn migration(r: &Revision<'_>, jobs: &[JobObs], restart_command: &str) -> Option<CheckResult> {
    let policy = r.policy.migration.as_ref()?;
    let pattern = policy.job_name_pattern.as_ref()?;
    let check = &CheckId::Migration;
    let remedy = format!("restart the pod, the migration resumes: {restart_command}");
    let fail = |summary: String| {
        CheckResult::new(check, Outcome::Fail, summary).on_fail(FailClass::RestartPod)
    };
    if let Some(h) = r.failed_hooks().find(|h| pattern.is_match(&h.name)) {
        if h.runs_before_apply(r.summary.operation()) {
            return Some(r.pre_hook_failure(check, h));
        }
        return Some(fail(format!("migration hook {} failed; {remedy}", h.name)));
    }
    let attempts: Vec<&JobObs> = r
        .jobs_of_this_revision(jobs)
        .into_iter()
        .filter(|j| pattern.is_match(&j.name))
        .collect();
    let earlier_failures = attempts.iter().filter(|j| j.failed.is_some()).count();
    if let Some(latest) = attempts.last() {
        let retried = if earlier_failures > 0 && latest.failed.is_none() {
            format!(" (after {earlier_failures} failed attempt(s))")
        } else {
            String::new()
        };
        return Some(if let Some(reason) = &latest.failed {
            fail(format!(
                "migration job {} failed ({reason}); {remedy}",
                latest.name
            ))
        } else if latest.succeeded {
            CheckResult::new(
                check,
                Outcome::Pass,
                format!("migration job {} completed{retried}", latest.name),
            )
        } else {
            CheckResult::new(
                check,
                Outcome::Pending,
                format!("migration job {} is running{retried}", latest.name),
            )
        });
    }
    // No Job object left: Helm's record of a migration hook still tells how it ended (a
    // hook with `hook-delete-policy: hook-succeeded` deletes its Job once it succeeded).
    let hook_run = |phase| {
        r.summary
            .hooks
            .iter()
            .find(|h| h.last_run == Some(phase) && pattern.is_match(&h.name))
    };
    if let Some(h) = hook_run(HookPhase::Succeeded) {
        return Some(CheckResult::new(
            check,
            Outcome::Pass,
            format!("migration hook {} succeeded", h.name),
        ));
    }
    if let Some(h) = hook_run(HookPhase::Running) {
        return Some(CheckResult::new(
            check,
            Outcome::Pending,
            format!("migration hook {} is running", h.name),
        ));
    }
    let named_in_manifest = r
        .summary
        .workloads
        .iter()
        .find(|w| w.kind == WorkloadKind::Job && pattern.is_match(&w.name));
    if let Some(w) = named_in_manifest {
        return Some(if r.past_readiness_deadline() {
            CheckResult::new(
                check,
                Outcome::Inconclusive,
                format!(
                    "migration job {} not found {} after the upgrade (deleted after it finished?): cannot tell whether it completed",
                    w.name,
                    human(r.elapsed())
                ),
            )
            .on_fail(FailClass::Investigate)
        } else {
            CheckResult::new(
                check,
                Outcome::Pending,
                format!("migration job {} not created yet", w.name),
            )
        });
    }
    Some(if !policy.required {
        CheckResult::new(
            check,
            Outcome::Pass,
            "no migration job ran; none is required",
        )
    } else if r.past_readiness_deadline() {
        fail(format!(
            "the migration never ran ({} after the upgrade, no Job of the release matching /{}/); {remedy}",
            human(r.elapsed()),
            pattern.as_str()
        ))
        .window(r.policy.readiness_deadline)
    } else {
        CheckResult::new(
            check,
            Outcome::Pending,
            "waiting for the migration job to start",
        )
        .window(r.policy.readiness_deadline)
    })
}

/// Helm hooks of the revision (other than the migration's).
pub fn hooks(r: &Revision<'_>) -> Option<CheckResult> {
    if !r.policy.hooks {
        return None;
    }
    let hooks: Vec<&Hook> = r
        .summary
        .hooks
        .iter()
        .filter(|h| !r.migration_matches(&h.name))
        .collect();
    let operation = r.summary.operation();
    if let Some(h) = hooks
        .iter()
        .find(|h| h.last_run == Some(HookPhase::Failed) && h.runs_before_apply(operation))
    {
        return Some(r.pre_hook_failure(&CheckId::Hooks, h));
    }
    let failed: Vec<&str> = hooks
        .iter()
        .filter(|h| h.last_run == Some(HookPhase::Failed))
        .map(|h| h.name.as_str())
        .collect();
    let running = hooks
        .iter()
        .filter(|h| h.last_run == Some(HookPhase::Running))
        .count();
    Some(if !failed.is_empty() {
        CheckResult::new(
            CheckId::Hooks,
            Outcome::Fail,
            format!("Helm hook(s) failed: {}", failed.join(", ")),
        )
        .value(failed.len() as f64)
        .threshold(Bound::Max, 0.0)
    } else if running > 0 {
        CheckResult::new(
            CheckId::Hooks,
            Outcome::Pending,
            format!("{running} Helm hook(s) running"),
        )
    } else {
        CheckResult::new(
            CheckId::Hooks,
            Outcome::Pass,
            format!("{} Helm hook(s), none failed", hooks.len()),
        )
    })
}

/// Jobs of the manifest that are not the migration: failed, or still running at the
/// readiness deadline → fail; not found then → inconclusive (a finished Job may be gone).
pub fn manifest_jobs(r: &Revision<'_>, jobs: &[JobObs]) -> Vec<CheckResult> {
    r.summary
        .workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::Job && !r.migration_matches(&w.name))
        .map(|w| {
            let check = CheckId::Job(w.name.clone());
            match jobs.iter().find(|j| j.name == w.name) {
                // Helm leaves an unchanged Job alone: one that ran before the upgrade is
                // not this revision's run, however it ended.
                Some(j) if r.created_before_upgrade(j) => earlier_job(r, check, j),
                Some(j) if j.failed.is_some() => CheckResult::new(
                    check,
                    Outcome::Fail,
                    format!(
                        "Job {} failed ({})",
                        j.name,
                        j.failed.as_deref().unwrap_or("Failed")
                    ),
                ),
                Some(j) if j.succeeded => {
                    CheckResult::new(check, Outcome::Pass, format!("Job {} completed", j.name))
                }
                Some(_) if r.past_readiness_deadline() => CheckResult::new(
                    check,
                    Outcome::Fail,
                    format!(
                        "Job {} not complete {} after the upgrade",
                        w.name,
                        human(r.elapsed())
                    ),
                )
                .window(r.policy.readiness_deadline),
                Some(_) => {
                    CheckResult::new(check, Outcome::Pending, format!("Job {} running", w.name))
                }
                // A finished Job may be deleted (ttlSecondsAfterFinished, a clean-up): its
                // absence says nothing about how it ended.
                None if r.past_readiness_deadline() => CheckResult::new(
                    check,
                    Outcome::Inconclusive,
                    format!(
                        "Job {} not found {} after the upgrade (deleted after it finished?): cannot tell whether it completed",
                        w.name,
                        human(r.elapsed())
                    ),
                )
                .on_fail(FailClass::Investigate)
                .window(r.policy.readiness_deadline),
                None => CheckResult::new(
                    check,
                    Outcome::Pending,
                    format!("Job {} not created yet", w.name),
                ),
            }
        })
        .collect()
}

/// This round's Jobs with the finished ones seen by earlier rounds of the evaluation that
/// are gone now (deleted by their `ttlSecondsAfterFinished` or a clean-up): a Job's result,
/// once seen, is evidence that its deletion does not erase. `memory` keeps, per name, the
/// latest finished Job seen.
pub fn with_finished(memory: &mut BTreeMap<String, JobObs>, jobs: Vec<JobObs>) -> Vec<JobObs> {
    for j in jobs.iter().filter(|j| j.finished()) {
        let newer = memory
            .get(&j.name)
            .is_none_or(|seen| seen.created <= j.created);
        if newer {
            memory.insert(j.name.clone(), j.clone());
        }
    }
    let gone: Vec<JobObs> = memory
        .values()
        .filter(|seen| !jobs.iter().any(|j| j.name == seen.name))
        .cloned()
        .collect();
    jobs.into_iter().chain(gone).collect()
}

/// Jobs of this revision that Kubernetes deletes sooner after they finish than the
/// readiness deadline: if upgrade-guard does not see one finished in time (its rounds
/// further apart, a restart), its check can only be inconclusive. A note for the operator.
pub fn job_ttl_notes(r: &Revision<'_>, jobs: &[JobObs]) -> Vec<String> {
    let deadline = r.policy.readiness_deadline;
    r.jobs_of_this_revision(jobs)
        .into_iter()
        .filter_map(|j| j.ttl.filter(|ttl| *ttl < deadline).map(|ttl| (j, ttl)))
        .map(|(j, ttl)| {
            format!(
                "Job {}: ttlSecondsAfterFinished ({}) is shorter than readiness_deadline ({}): Kubernetes deletes it soon after it finishes; upgrade-guard keeps the result it saw, but one it did not see in time (a restart meanwhile) leaves its check inconclusive. Keep finished Jobs at least as long as the readiness deadline",
                j.name,
                human(ttl),
                human(deadline)
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "helm_tests.rs"]
mod tests;
