//! Rollout checks (pure): each Deployment, StatefulSet and DaemonSet of the manifest, judged
//! on progress rather than one sample.
//!
//! Until `readiness_deadline` a rollout that is not done is pending (a Deployment's own
//! `ProgressDeadlineExceeded` then is reported, not failed). After it, a rollout still
//! moving (updated or ready counts rising, the wanted replicas changing) is not failed, nor
//! one waiting for replicas still within their own time (a scale-up, a replacement after an
//! eviction: judged by `pending_pods` from their own age); it fails once it has not moved
//! for `stall_timeout`, as seen by successive rounds, and the pods agree: the counts are
//! the controller's summary, so a controller that has not caught up with Ready pods, or a
//! view that does not show the pods it counts, is pending, never failed. A paused rollout,
//! or old pods left by an `OnDelete` strategy, is reported, not failed.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::observe::{PodObs, WorkloadObs};
use super::pods::{broken_before_upgrade, coming_up};
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

/// The numbers by which a rollout is seen to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    found: bool,
    generation: i64,
    observed_generation: i64,
    desired: i32,
    updated: i32,
    new_ready: i32,
    new_available: i32,
    old: i32,
    complete: bool,
}

impl Counts {
    fn of(p: &Progress<'_>) -> Self {
        let w = p.w;
        Self {
            found: w.found,
            generation: w.generation,
            observed_generation: w.observed_generation,
            desired: w.desired,
            updated: w.updated,
            new_ready: p.new_ready,
            new_available: p.new_available,
            old: p.old,
            complete: p.complete(),
        }
    }

    /// Whether `next` changes what is wanted: the object appeared or went, its spec or its
    /// wanted replicas changed.
    fn wants_other(&self, next: &Self) -> bool {
        next.found != self.found
            || next.generation != self.generation
            || next.desired != self.desired
    }

    /// Whether `next` goes beyond `best` toward done (a new high of updated, ready or
    /// available new replicas, a new low of old ones): a replica that flaps Ready and back is
    /// no progress.
    fn beyond(best: &Self, next: &Self) -> bool {
        next.observed_generation > best.observed_generation
            || next.updated > best.updated
            || next.new_ready > best.new_ready
            || next.new_available > best.new_available
            || next.old < best.old
    }

    /// The best of both, count by count.
    fn best_of(self, other: &Self) -> Self {
        Self {
            observed_generation: self.observed_generation.max(other.observed_generation),
            updated: self.updated.max(other.updated),
            new_ready: self.new_ready.max(other.new_ready),
            new_available: self.new_available.max(other.new_available),
            old: self.old.min(other.old),
            ..self
        }
    }
}

/// What a workload's rollout check remembers between rounds: the numbers last seen, the best
/// ones since it was last complete or last wanted something else, and when it was last seen
/// moving (or complete, or first seen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutMemory {
    last: Option<Counts>,
    best: Option<Counts>,
    moved_at: Option<Timestamp>,
}

impl RolloutMemory {
    /// Records this round's numbers; returns since when the rollout has not moved. The
    /// first observation starts the clock: a stall is always seen by successive rounds.
    fn observe(&mut self, counts: Counts, now: Timestamp) -> Timestamp {
        let restart = self
            .last
            .is_none_or(|last| last.complete || last.wants_other(&counts));
        let moved = match (restart, self.best) {
            (true, _) | (_, None) => true,
            (false, Some(best)) => Counts::beyond(&best, &counts),
        };
        self.best = Some(match (restart, self.best) {
            (false, Some(best)) => best.best_of(&counts),
            _ => counts,
        });
        self.last = Some(counts);
        if moved || self.moved_at.is_none() {
            self.moved_at = Some(now);
        }
        self.moved_at.unwrap_or(now)
    }
}

/// One result per Deployment, StatefulSet and DaemonSet of the manifest; `pods` are the
/// current templates' pods (with their workload), `memory` what each rollout remembers.
pub fn rollout(
    r: &Revision<'_>,
    workloads: &[WorkloadObs],
    pods: &[PodObs],
    memory: &mut BTreeMap<String, RolloutMemory>,
) -> Vec<CheckResult> {
    memory.retain(|id, _| workloads.iter().any(|w| &w.id() == id));
    workloads
        .iter()
        .filter(|w| w.kind != WorkloadKind::Job)
        .map(|w| {
            let id = w.id();
            let own: Vec<&PodObs> = pods.iter().filter(|p| p.workload == id).collect();
            rollout_one(r, w, &own, memory.entry(id).or_default())
        })
        .collect()
}

fn rollout_one(
    r: &Revision<'_>,
    w: &WorkloadObs,
    pods: &[&PodObs],
    memory: &mut RolloutMemory,
) -> CheckResult {
    let deadline = r.policy.readiness_deadline;
    let stall_timeout = r.policy.pods.stall_timeout;
    let check = CheckId::Rollout(w.id());
    let p = Progress::of(w);
    let still_since = memory.observe(Counts::of(&p), r.now);
    let still = between(still_since, r.now);
    let base = |outcome, summary: String| {
        CheckResult::new(check.clone(), outcome, summary)
            .value(f64::from(p.new_available))
            .threshold(Bound::Min, f64::from(w.desired))
            .window(deadline)
    };
    let elapsed = human(r.elapsed());
    if w.found && p.complete() {
        return base(
            Outcome::Pass,
            format!("{} rolled out: {}", w.id(), p.words()),
        );
    }
    let state = if w.found {
        p.words()
    } else {
        "it does not exist".to_string()
    };
    if !r.past_readiness_deadline() {
        let left = human(deadline.saturating_sub(r.elapsed()));
        let what = if w.found {
            "rolling out"
        } else {
            "not created yet"
        };
        let pde = if w.progress_deadline_exceeded {
            format!(
                "; Kubernetes reports ProgressDeadlineExceeded (progressDeadlineSeconds {}), before the readiness deadline: reported, not failed",
                w.progress_deadline.map_or_else(|| "?".into(), human)
            )
        } else {
            String::new()
        };
        let words = if w.found {
            format!(": {state}")
        } else {
            String::new()
        };
        return base(
            Outcome::Pending,
            format!(
                "{} {what}{words}; {left} left before the readiness deadline{pde}",
                w.id()
            ),
        );
    }
    if w.paused {
        return base(
            Outcome::Warn,
            format!(
                "{} is paused {elapsed} after the upgrade ({state}): its rollout waits for `kubectl rollout resume`; reported, not failed",
                w.id()
            ),
        );
    }
    if w.on_delete && p.old > 0 {
        return base(
            Outcome::Warn,
            format!(
                "{} updates OnDelete: {} old pod(s) run until someone deletes them ({state}); reported, not failed",
                w.id(),
                p.old
            ),
        );
    }
    let before = pods.iter().filter(|p| broken_before_upgrade(r, p)).count();
    let before = i32::try_from(before).unwrap_or(i32::MAX);
    if before > 0 && p.old == 0 && w.updated >= w.desired && p.new_ready + before >= w.desired {
        return base(
            Outcome::Warn,
            format!(
                "{} is short of {before} Ready replica(s) whose pods have not been Ready since before the upgrade (see pending_pods): reported, not charged to this revision: {state}",
                w.id()
            ),
        );
    }
    let coming: Vec<&&PodObs> = pods.iter().filter(|p| coming_up(r, p)).collect();
    if !coming.is_empty() {
        return base(
            Outcome::Pending,
            format!(
                "{} past the readiness deadline but {} replica(s) are still within their own time (judged by pending_pods): {state}",
                w.id(),
                coming.len()
            ),
        );
    }
    if still < stall_timeout {
        return base(
            Outcome::Pending,
            format!(
                "{} not done {elapsed} after the upgrade (readiness deadline {}), last seen moving {} ago; fails after {} without progress: {state}",
                w.id(),
                human(deadline),
                human(still),
                human(stall_timeout)
            ),
        );
    }
    if let Some(why) = not_the_revisions(w, pods) {
        return base(
            Outcome::Pending,
            format!(
                "{} not done {elapsed} after the upgrade and not moving for {}, but {why}: not failed; {state}",
                w.id(),
                human(still),
            ),
        );
    }
    let pde = if w.progress_deadline_exceeded {
        "; Kubernetes reports ProgressDeadlineExceeded"
    } else {
        ""
    };
    base(
        Outcome::Fail,
        format!(
            "{} not done {elapsed} after the upgrade (readiness deadline {}) and not moving for {} (stall timeout {}): {state}{pde}",
            w.id(),
            human(deadline),
            human(still),
            human(stall_timeout)
        ),
    )
}

/// Why a rollout that stopped moving is not, on the evidence, stuck on the revision:
/// rollout counts are the controller's summary of the pods, and a failure must rest on the
/// pods themselves. `None` when the pods agree with the counts (a pod of the new template
/// not Ready past its own time, or fewer pods than wanted and the controller not making
/// more, as under a quota).
fn not_the_revisions(w: &WorkloadObs, pods: &[&PodObs]) -> Option<String> {
    if !w.found {
        return None;
    }
    if w.observed_generation < w.generation {
        return Some(format!(
            "the {} controller has not acted on the new spec (observedGeneration {} of {}): the control plane is not working, not the revision",
            w.kind.as_str(),
            w.observed_generation,
            w.generation
        ));
    }
    if w.template.is_none() {
        // A Deployment whose new ReplicaSet is not visible: its pods cannot be told from
        // the old ones.
        return (w.updated > 0).then(|| {
            format!(
                "Kubernetes counts {} pod(s) on the new template and its ReplicaSet is not visible: which pods are new is unknown",
                w.updated
            )
        });
    }
    let seen = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let ready = pods.iter().filter(|p| p.problem.is_none()).count();
    let ready = i32::try_from(ready).unwrap_or(i32::MAX);
    if ready >= w.desired {
        return Some(format!(
            "its {ready} pod(s) of the new template are Ready and the controller's rollout status has not caught up with them"
        ));
    }
    (seen < w.updated).then(|| {
        format!(
            "Kubernetes counts {} pod(s) on the new template and only {seen} are visible: the view of the pods lags",
            w.updated
        )
    })
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
