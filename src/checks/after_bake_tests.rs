//! Table tests of the watch after the bake with plain values.

use super::*;
use crate::checks::observe::PodProblem;
use crate::release::ReleaseStatus;
use crate::test_support::*;

/// Issue 19.13: after a bake that ended at minute 60, a pod that starts crash-looping at
/// minute 70 is a finding once past its timeout; one broken before the bake ended was judged
/// by the bake; one slow to start (unschedulable after an eviction) is the cluster's.
#[test]
fn pods_that_broke_after_the_bake_are_findings() {
    let p = policy();
    let s = summary(&[], &[]);
    let judged = |now: i64, pods: &[PodObs]| {
        let r = rev(&s, &p, now, ReleaseStatus::Deployed);
        broken_pods(&from_bake_end(&r, at(60)), pods)
    };
    let crash = [pod("app-1", PodProblem::CrashLoopBackOff, 70)];
    let r = judged(72, &crash);
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
    let r = judged(76, &crash);
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
    assert!(
        r.summary.contains(
            "1 pod(s) not Ready past their timeout: CrashLoopBackOff 1 (longest app-1, 6m"
        ),
        "{}",
        r.summary
    );
    for quiet in [
        pod("app-1", PodProblem::CrashLoopBackOff, 50),
        pod("app-1", PodProblem::Unschedulable, 70),
    ] {
        let r = judged(300, &[quiet]);
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
        assert_eq!(r.summary, "no pod broke since the bake ended");
    }
}

/// Restarts count from the end of the bake: those a pod had during the bake were judged by
/// it; beyond `max_restarts` since, a finding.
#[test]
fn restarts_count_from_the_end_of_the_bake() {
    let p = policy();
    let s = summary(&[], &[]);
    let mut baseline = RestartBaseline::default();
    let mut judged = |now: i64, restarts_now: i32| {
        let r = rev(&s, &p, now, ReleaseStatus::Deployed);
        restarts(
            &from_bake_end(&r, at(60)),
            &[ready_pod("app-1", 0, restarts_now)],
            &mut baseline,
        )
    };
    let r = judged(61, 2);
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    assert_eq!(r.summary, "no container restarted since the bake ended");
    let r = judged(90, 5);
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    let r = judged(120, 6);
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Fail, Some(4.0)),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains(
            "4 container restart(s) since the bake ended, more than the 3 tolerated: app-1 4"
        ),
        "{}",
        r.summary
    );
}
