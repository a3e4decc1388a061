//! The watch after the bake (pure): the revision's pods judged from the end of its bake
//! instead of from the upgrade. A pod that broke after the bake (a crash loop, an OOM kill,
//! an image or configuration error, a failing init container) past its reason's timeout, and
//! container restarts since the bake beyond `max_restarts`, are findings to alert on. A pod
//! merely slow to start after the bake (waiting for a node or an image after an eviction or a
//! scale-up) is the cluster's doing, not the revision's, and a pod already broken when the
//! bake ended was judged by the bake.

use jiff::Timestamp;

use super::observe::PodObs;
use super::pods::{RestartBaseline, broken_before_upgrade, pending_pods, restarts_since};
use super::{CheckResult, Outcome, Revision};

/// `r` with every clock started at the end of its bake.
pub fn from_bake_end<'a>(r: &Revision<'a>, bake_ended: Timestamp) -> Revision<'a> {
    Revision {
        started: bake_ended,
        ..*r
    }
}

/// The pods that broke after the bake, each against its reason's timeout (the `for:` is
/// applied by the caller); `r` from [`from_bake_end`].
pub fn broken_pods(r: &Revision<'_>, pods: &[PodObs]) -> CheckResult {
    let broke_after: Vec<PodObs> = pods
        .iter()
        .filter(|p| p.problem.is_some_and(|k| !k.is_slow_start()) && !broken_before_upgrade(r, p))
        .cloned()
        .collect();
    let result = pending_pods(r, &broke_after);
    match result.outcome {
        Outcome::Pass => CheckResult {
            summary: "no pod broke since the bake ended".to_string(),
            ..result
        },
        _ => result,
    }
}

/// Container restarts since the bake ended, beyond `max_restarts` a finding; `r` from
/// [`from_bake_end`].
pub fn restarts(r: &Revision<'_>, pods: &[PodObs], baseline: &mut RestartBaseline) -> CheckResult {
    restarts_since(r, pods, baseline, "the bake ended")
}

#[cfg(test)]
#[path = "after_bake_tests.rs"]
mod tests;
