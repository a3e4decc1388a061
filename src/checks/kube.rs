//! Checks judged from Kubernetes and Helm state (pure): release status, workload rollout
//! against the readiness deadline, pods not Ready past the pending timeout, the migration
//! job, Helm hooks and the Jobs of the manifest.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::observe::{JobObs, PodObs, WorkloadObs};
use super::{Bound, CheckResult, FailClass, Outcome, human};
use crate::config::ReleasePolicy;
use crate::release::ReleaseStatus;
use crate::release::decode::{HookPhase, ReleaseSummary, WorkloadKind};

/// What every check of one revision shares.
#[derive(Debug, Clone, Copy)]
pub struct Revision<'a> {
    /// Evaluation time.
    pub now: Timestamp,
    /// When the upgrade started (the revision's `last_deployed`).
    pub started: Timestamp,
    /// The decoded revision.
    pub summary: &'a ReleaseSummary,
    /// Its current status.
    pub status: ReleaseStatus,
    /// Since when it has had that status.
    pub status_since: Timestamp,
    /// The release's policy.
    pub policy: &'a ReleasePolicy,
    /// A pending status older than this is stuck.
    pub stuck_pending_after: Duration,
}

/// Time from `since` to `now`, zero if negative.
pub fn between(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

impl Revision<'_> {
    /// Time since the upgrade started.
    pub fn elapsed(&self) -> Duration {
        between(self.started, self.now)
    }

    fn past_readiness_deadline(&self) -> bool {
        self.elapsed() >= self.policy.readiness_deadline
    }

    fn migration_matches(&self, name: &str) -> bool {
        self.policy
            .migration
            .as_ref()
            .is_some_and(|m| m.job_name_pattern.is_match(name))
    }
}

/// The revision's Helm status.
pub fn release_status(r: &Revision<'_>) -> CheckResult {
    let check = "release_status";
    let rev = r.summary.revision;
    match r.status {
        ReleaseStatus::Failed => {
            let migration_hook_failed = r
                .summary
                .hooks
                .iter()
                .any(|h| h.last_run == Some(HookPhase::Failed) && r.migration_matches(&h.name));
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

/// One result per Deployment, StatefulSet and DaemonSet of the manifest.
pub fn rollout(r: &Revision<'_>, workloads: &[WorkloadObs]) -> Vec<CheckResult> {
    let deadline = r.policy.readiness_deadline;
    workloads
        .iter()
        .filter(|w| w.kind != WorkloadKind::Job)
        .map(|w| {
            let check = format!("rollout:{}", w.id());
            // Old replicas still running count as available but are not the new version.
            let old = (w.total - w.updated).max(0);
            let new_available = (w.available - old).max(0);
            let base = |outcome, summary: String| {
                CheckResult::new(check.clone(), outcome, summary)
                    .value(f64::from(new_available))
                    .threshold(Bound::Min, f64::from(w.desired))
                    .window(deadline)
            };
            let left = deadline.saturating_sub(r.elapsed());
            if !w.found {
                return if r.past_readiness_deadline() {
                    base(
                        Outcome::Fail,
                        format!(
                            "{} does not exist {} after the upgrade",
                            w.id(),
                            human(r.elapsed())
                        ),
                    )
                } else {
                    base(Outcome::Pending, format!("{} not created yet", w.id()))
                };
            }
            if w.progress_deadline_exceeded {
                return base(
                    Outcome::Fail,
                    format!(
                        "{} exceeded its progress deadline: {}/{} updated, {}/{} ready",
                        w.id(),
                        w.updated,
                        w.desired,
                        w.ready,
                        w.desired
                    ),
                );
            }
            // As `kubectl rollout status`: every replica updated, no old replica left, and
            // the updated ones ready and available.
            let complete = w.observed_generation >= w.generation
                && w.updated >= w.desired
                && old == 0
                && w.ready >= w.desired
                && w.available >= w.desired;
            let mut progress = format!(
                "{}/{} updated, {}/{} ready, {}/{} available",
                w.updated, w.desired, w.ready, w.desired, w.available, w.desired
            );
            if old > 0 {
                progress.push_str(&format!(", {old} old replica(s) still running"));
            }
            if complete {
                base(Outcome::Pass, format!("{} rolled out: {progress}", w.id()))
            } else if r.past_readiness_deadline() {
                base(
                    Outcome::Fail,
                    format!(
                        "{} not Ready {} after the upgrade (readiness deadline {}): {progress}",
                        w.id(),
                        human(r.elapsed()),
                        human(deadline)
                    ),
                )
            } else {
                base(
                    Outcome::Pending,
                    format!(
                        "{} rolling out: {progress}; {} left before the readiness deadline",
                        w.id(),
                        human(left)
                    ),
                )
            }
        })
        .collect()
}

/// Pods not Ready for longer than the pending timeout, counted by reason.
pub fn pending_pods(r: &Revision<'_>, pods: &[PodObs]) -> CheckResult {
    let timeout = r.policy.pending_timeout;
    let not_ready: Vec<&PodObs> = pods.iter().filter(|p| p.problem.is_some()).collect();
    let stuck: Vec<&&PodObs> = not_ready
        .iter()
        .filter(|p| between(p.not_ready_since, r.now) >= timeout)
        .collect();
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &stuck {
        if let Some(problem) = p.problem {
            *by_reason.entry(problem.as_str()).or_default() += 1;
        }
    }
    let counts = by_reason
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let result = |outcome, summary| {
        CheckResult::new("pending_pods", outcome, summary)
            .value(stuck.len() as f64)
            .threshold(Bound::Max, 0.0)
            .window(timeout)
    };
    if let Some(oldest) = stuck.iter().min_by_key(|p| p.not_ready_since) {
        result(
            Outcome::Fail,
            format!(
                "{} pod(s) not Ready for more than {}: {counts} (oldest {}, {})",
                stuck.len(),
                human(timeout),
                oldest.name,
                human(between(oldest.not_ready_since, r.now))
            ),
        )
    } else if not_ready.is_empty() {
        result(Outcome::Pass, "every pod is Ready".to_string())
    } else {
        result(
            Outcome::Pending,
            format!(
                "{} pod(s) not Ready yet, within the {} pending timeout",
                not_ready.len(),
                human(timeout)
            ),
        )
    }
}

/// The migration job, if the policy has one: failed or never ran → restart the pod.
pub fn migration(r: &Revision<'_>, jobs: &[JobObs], restart_command: &str) -> Option<CheckResult> {
    let policy = r.policy.migration.as_ref()?;
    let check = "migration";
    let remedy = format!("restart the pod, the migration resumes: {restart_command}");
    let fail = |summary: String| {
        CheckResult::new(check, Outcome::Fail, summary).on_fail(FailClass::RestartPod)
    };
    if let Some(h) = r.summary.hooks.iter().find(|h| {
        h.last_run == Some(HookPhase::Failed) && policy.job_name_pattern.is_match(&h.name)
    }) {
        return Some(fail(format!("migration hook {} failed; {remedy}", h.name)));
    }
    // Jobs of this upgrade (created after it started, or named in the manifest/hooks).
    let named = |n: &str| {
        r.summary
            .workloads
            .iter()
            .any(|w| w.kind == WorkloadKind::Job && w.name == n)
            || r.summary.hooks.iter().any(|h| h.name == n)
    };
    let ours: Vec<&JobObs> = jobs
        .iter()
        .filter(|j| policy.job_name_pattern.is_match(&j.name))
        .filter(|j| named(&j.name) || j.created.is_some_and(|c| c >= r.started))
        .collect();
    if let Some(j) = ours.iter().find(|j| j.failed.is_some()) {
        return Some(fail(format!(
            "migration job {} failed ({}); {remedy}",
            j.name,
            j.failed.as_deref().unwrap_or("Failed")
        )));
    }
    if let Some(j) = ours.iter().find(|j| j.succeeded) {
        return Some(CheckResult::new(
            check,
            Outcome::Pass,
            format!("migration job {} completed", j.name),
        ));
    }
    if let Some(j) = ours.first() {
        return Some(CheckResult::new(
            check,
            Outcome::Pending,
            format!("migration job {} is running", j.name),
        ));
    }
    Some(if !policy.required {
        CheckResult::new(
            check,
            Outcome::Pass,
            "no migration job ran; none is required",
        )
    } else if r.past_readiness_deadline() {
        fail(format!(
            "the migration never ran ({} after the upgrade, no Job matching {:?}); {remedy}",
            human(r.elapsed()),
            policy.job_name_pattern.as_str()
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
    let hooks: Vec<_> = r
        .summary
        .hooks
        .iter()
        .filter(|h| !r.migration_matches(&h.name))
        .collect();
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
            "hooks",
            Outcome::Fail,
            format!("Helm hook(s) failed: {}", failed.join(", ")),
        )
        .value(failed.len() as f64)
        .threshold(Bound::Max, 0.0)
    } else if running > 0 {
        CheckResult::new(
            "hooks",
            Outcome::Pending,
            format!("{running} Helm hook(s) running"),
        )
    } else {
        CheckResult::new(
            "hooks",
            Outcome::Pass,
            format!("{} Helm hook(s), none failed", hooks.len()),
        )
    })
}

/// Jobs of the manifest that are not the migration: failed → fail.
pub fn manifest_jobs(r: &Revision<'_>, jobs: &[JobObs]) -> Vec<CheckResult> {
    r.summary
        .workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::Job && !r.migration_matches(&w.name))
        .map(|w| {
            let check = format!("job:{}", w.name);
            match jobs.iter().find(|j| j.name == w.name) {
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
                _ if r.past_readiness_deadline() => CheckResult::new(
                    check,
                    Outcome::Fail,
                    format!(
                        "Job {} not complete {} after the upgrade",
                        w.name,
                        human(r.elapsed())
                    ),
                )
                .window(r.policy.readiness_deadline),
                _ => CheckResult::new(check, Outcome::Pending, format!("Job {} running", w.name)),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "kube_tests.rs"]
mod tests;
