//! Workload checks (pure): the rollout of each Deployment, StatefulSet and DaemonSet of the
//! manifest against the readiness deadline, and the release's pods that are not Ready.
//!
//! Readiness follows the service: a pod that is starting normally (Running, or running its
//! init containers, without a crash, restart loop, pull or scheduling problem) is judged
//! against `readiness_deadline`, because a service such as GIM is legitimately not Ready
//! for a long time; `pending_timeout` is for broken pods. A Deployment's own
//! `ProgressDeadlineExceeded` raised before the readiness deadline is reported, not failed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::observe::{PodObs, WorkloadObs};
use super::{Bound, CheckId, CheckResult, Outcome, Revision};
use crate::release::summary::WorkloadKind;
use crate::units::{between, human};

/// The rollout numbers of a workload, as `kubectl rollout status` reads them.
struct Progress<'a> {
    w: &'a WorkloadObs,
    /// Replicas still on the old template.
    old: i32,
    /// Ready replicas on the new template (old replicas are assumed to be the ready ones
    /// until they are gone, as `kubectl rollout status` waits for them first).
    new_ready: i32,
    /// Available replicas on the new template.
    new_available: i32,
}

impl<'a> Progress<'a> {
    fn of(w: &'a WorkloadObs) -> Self {
        let old = (w.total - w.updated).max(0);
        Self {
            w,
            old,
            new_ready: (w.ready - old).clamp(0, w.updated.max(0)),
            new_available: (w.available - old).clamp(0, w.updated.max(0)),
        }
    }

    fn complete(&self) -> bool {
        let w = self.w;
        w.observed_generation >= w.generation
            && w.updated >= w.desired
            && self.old == 0
            && w.ready >= w.desired
            && w.available >= w.desired
    }

    fn words(&self) -> String {
        let w = self.w;
        let mut out = format!(
            "{}/{} updated, {}/{} new ready, {}/{} new available",
            w.updated, w.desired, self.new_ready, w.desired, self.new_available, w.desired
        );
        if self.old > 0 {
            out.push_str(&format!(", {} old replica(s) still running", self.old));
        }
        if w.observed_generation < w.generation {
            out.push_str(", the controller has not seen the new spec yet");
        }
        out
    }
}

/// One result per Deployment, StatefulSet and DaemonSet of the manifest.
pub fn rollout(r: &Revision<'_>, workloads: &[WorkloadObs]) -> Vec<CheckResult> {
    workloads
        .iter()
        .filter(|w| w.kind != WorkloadKind::Job)
        .map(|w| rollout_one(r, w))
        .collect()
}

fn rollout_one(r: &Revision<'_>, w: &WorkloadObs) -> CheckResult {
    let deadline = r.policy.readiness_deadline;
    let check = CheckId::Rollout(w.id());
    let p = Progress::of(w);
    let base = |outcome, summary: String| {
        CheckResult::new(check.clone(), outcome, summary)
            .value(f64::from(p.new_available))
            .threshold(Bound::Min, f64::from(w.desired))
            .window(deadline)
    };
    let elapsed = human(r.elapsed());
    if !w.found {
        return if r.past_readiness_deadline() {
            base(
                Outcome::Fail,
                format!("{} does not exist {elapsed} after the upgrade", w.id()),
            )
        } else {
            base(Outcome::Pending, format!("{} not created yet", w.id()))
        };
    }
    if p.complete() {
        return base(
            Outcome::Pass,
            format!("{} rolled out: {}", w.id(), p.words()),
        );
    }
    let pde = if w.progress_deadline_exceeded {
        format!(
            "; Kubernetes reports ProgressDeadlineExceeded (progressDeadlineSeconds {})",
            w.progress_deadline.map_or_else(|| "?".into(), human)
        )
    } else {
        String::new()
    };
    if r.past_readiness_deadline() {
        return base(
            Outcome::Fail,
            format!(
                "{} not Ready {elapsed} after the upgrade (readiness deadline {}): {}{pde}",
                w.id(),
                human(deadline),
                p.words()
            ),
        );
    }
    let left = human(deadline.saturating_sub(r.elapsed()));
    let pde_note = if pde.is_empty() {
        String::new()
    } else {
        format!("{pde}, before the readiness deadline: reported, not failed")
    };
    base(
        Outcome::Pending,
        format!(
            "{} rolling out: {}; {left} left before the readiness deadline{pde_note}",
            w.id(),
            p.words()
        ),
    )
}

/// The pods of the release that are not Ready: broken ones fail after `pending_timeout`,
/// counted from when each stopped being Ready; slow starters after `readiness_deadline`,
/// counted from then too but never from before the upgrade (the deadline is the upgrade's:
/// a pod created by it may look up to a second older, its creation time being truncated).
pub fn pending_pods(r: &Revision<'_>, pods: &[PodObs]) -> CheckResult {
    let pending_timeout = r.policy.pending_timeout;
    let readiness = r.policy.readiness_deadline;
    let limit = |p: &PodObs| {
        if p.problem.is_some_and(|k| k.is_slow_start()) {
            readiness
        } else {
            pending_timeout
        }
    };
    let waiting = |p: &PodObs| {
        if p.problem.is_some_and(|k| k.is_slow_start()) {
            between(p.not_ready_since.max(r.started), r.now)
        } else {
            between(p.not_ready_since, r.now)
        }
    };
    let not_ready: Vec<&PodObs> = pods.iter().filter(|p| p.problem.is_some()).collect();
    let stuck: Vec<&PodObs> = not_ready
        .iter()
        .copied()
        .filter(|p| waiting(p) >= limit(p))
        .collect();
    // The window is the limit that applies to what is reported.
    let window = if stuck
        .iter()
        .chain(&not_ready)
        .any(|p| limit(p) == pending_timeout)
    {
        pending_timeout
    } else {
        readiness
    };
    let mut counts = std::collections::BTreeMap::new();
    for p in &not_ready {
        if let Some(problem) = p.problem {
            *counts.entry(problem.as_str()).or_insert(0) += 1;
        }
    }
    let result = |outcome, summary| {
        CheckResult::new(CheckId::PendingPods, outcome, summary)
            .counts(counts.clone())
            .value(stuck.len() as f64)
            .threshold(Bound::Max, 0.0)
            .window(window)
    };
    if let Some(oldest) = stuck.iter().min_by_key(|p| p.not_ready_since) {
        let broken = stuck.iter().any(|p| limit(p) == pending_timeout);
        let which = if broken {
            format!(
                "not Ready for more than the {} pending timeout",
                human(pending_timeout)
            )
        } else {
            format!(
                "still not Ready after the {} readiness deadline",
                human(readiness)
            )
        };
        return result(
            Outcome::Fail,
            format!(
                "{} pod(s) {which}: {} (oldest {}, {})",
                stuck.len(),
                by_reason(&stuck),
                oldest.name,
                human(waiting(oldest))
            ),
        );
    }
    if not_ready.is_empty() {
        return result(Outcome::Pass, "every pod is Ready".to_string());
    }
    let (slow, broken): (Vec<&PodObs>, Vec<&PodObs>) = not_ready
        .iter()
        .partition(|p| p.problem.is_some_and(|k| k.is_slow_start()));
    let mut parts = Vec::new();
    if !broken.is_empty() {
        parts.push(format!(
            "{} broken ({}), within the {} pending timeout",
            broken.len(),
            by_reason(&broken),
            human(pending_timeout)
        ));
    }
    if !slow.is_empty() {
        parts.push(format!(
            "{} starting ({}), within the {} readiness deadline",
            slow.len(),
            by_reason(&slow),
            human(readiness)
        ));
    }
    result(
        Outcome::Pending,
        format!("pod(s) not Ready yet: {}", parts.join("; ")),
    )
}

/// `CrashLoopBackOff 2, Unschedulable 1`.
fn by_reason(pods: &[&PodObs]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        if let Some(problem) = p.problem {
            *counts.entry(problem.as_str()).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Deployment whose `progressDeadlineSeconds` is shorter than the readiness deadline:
/// Kubernetes will report `ProgressDeadlineExceeded` first. A note for the operator (the
/// condition is reported, not failed), `None` when the deadlines agree.
pub fn progress_deadline_note(w: &WorkloadObs, readiness_deadline: Duration) -> Option<String> {
    let pd = w.progress_deadline?;
    (pd < readiness_deadline).then(|| {
        format!(
            "{}: progressDeadlineSeconds ({}) is shorter than readiness_deadline ({}): Kubernetes will report ProgressDeadlineExceeded first; upgrade-guard reports it and keeps judging readiness against {}",
            w.id(),
            human(pd),
            human(readiness_deadline),
            human(readiness_deadline)
        )
    })
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
