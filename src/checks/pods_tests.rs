//! Table tests of the pod checks with plain values.

use super::*;
use crate::release::ReleaseStatus;
use crate::test_support::*;

/// A pod that is Running and not Ready with no crash, or waiting for an image or a node,
/// is starting: judged against the readiness deadline. A crash, a pull error or a config
/// error is broken: the pending timeout.
#[test]
fn slow_starters_get_the_readiness_deadline_broken_pods_the_pending_timeout() {
    let mut p = policy();
    p.readiness_deadline = 45 * MIN;
    p.pending_timeout = 5 * MIN;
    let s = summary(&[], &[]);
    let at_min = |m| rev(&s, &p, m, ReleaseStatus::Deployed);
    for slow in [
        PodProblem::NotReady,
        PodProblem::Initializing,
        PodProblem::ContainerCreating,
        PodProblem::Unschedulable,
        PodProblem::Pending,
    ] {
        assert!(slow.is_slow_start());
        let pods = [pod("gim-0", slow, 0)];
        let r = pending_pods(&at_min(30), &pods);
        assert_eq!(r.outcome, Outcome::Pending, "{slow:?}: {}", r.summary);
        assert!(
            r.summary.contains(&format!(
                "1 starting ({} 1), nearest its timeout gim-0 (30m of its 45m {} timeout)",
                slow.as_str(),
                slow.as_str()
            )),
            "{}",
            r.summary
        );
        assert_eq!(r.window, Some(45 * MIN));
        let r = pending_pods(&at_min(45), &pods);
        assert_eq!(r.outcome, Outcome::Fail, "{slow:?}");
        assert!(
            r.summary.contains("not Ready past their timeout"),
            "{}",
            r.summary
        );
    }
    for broken in [
        PodProblem::ImagePullBackOff,
        PodProblem::ErrImagePull,
        PodProblem::CreateContainerConfigError,
        PodProblem::CrashLoopBackOff,
        PodProblem::OomKilled,
        PodProblem::InitContainerFailing,
    ] {
        assert!(!broken.is_slow_start());
        let r = pending_pods(&at_min(5), &[pod("gim-0", broken, 0)]);
        assert_eq!(r.outcome, Outcome::Fail, "{broken:?}");
        assert!(
            r.summary
                .contains(&format!("{} for {}, timeout 5m", "5m", broken.as_str())),
            "{}",
            r.summary
        );
        assert_eq!(r.window, Some(5 * MIN));
    }
}

/// Issue 19.2: each reason has its own timeout; an unlisted one takes the readiness deadline
/// (slow start) or the pending timeout (broken).
#[test]
fn each_reason_has_its_own_timeout() {
    let mut p = policy();
    p.pods
        .timeouts
        .insert(PodProblem::ImagePullBackOff, 15 * MIN);
    p.pods.timeouts.insert(PodProblem::Unschedulable, 3 * MIN);
    let s = summary(&[], &[]);
    let judge = |problem, minute| {
        pending_pods(
            &rev(&s, &p, minute, ReleaseStatus::Deployed),
            &[pod("a", problem, 0)],
        )
        .outcome
    };
    assert_eq!(judge(PodProblem::ImagePullBackOff, 14), Outcome::Pending);
    assert_eq!(judge(PodProblem::ImagePullBackOff, 15), Outcome::Fail);
    assert_eq!(judge(PodProblem::Unschedulable, 3), Outcome::Fail);
    assert_eq!(judge(PodProblem::ErrImagePull, 4), Outcome::Pending);
    assert_eq!(judge(PodProblem::ErrImagePull, 5), Outcome::Fail);
    assert_eq!(judge(PodProblem::ContainerCreating, 9), Outcome::Pending);
    assert_eq!(judge(PodProblem::ContainerCreating, 10), Outcome::Fail);
}

#[test]
fn pods_are_counted_by_reason_after_their_timeout() {
    let p = policy();
    let s = summary(&[], &[]);
    let pods = [
        pod("a", PodProblem::ImagePullBackOff, 0),
        pod("b", PodProblem::ImagePullBackOff, 1),
        pod("c", PodProblem::CrashLoopBackOff, 0),
        pod("d", PodProblem::CrashLoopBackOff, 4),
        pod("e", PodProblem::NotReady, 0),
        ready_pod("f", 0, 0),
    ];
    let r = pending_pods(&rev(&s, &p, 6, ReleaseStatus::Deployed), &pods);
    assert_eq!(r.outcome, Outcome::Fail);
    assert_eq!(r.value, Some(3.0));
    assert!(
        r.summary
            .contains("3 pod(s) not Ready past their timeout: CrashLoopBackOff 1, ImagePullBackOff 2 (longest a, 6m"),
        "{}",
        r.summary
    );
    assert_eq!(r.on_fail, crate::checks::FailClass::Rollback);
    assert_eq!(r.counts.get("ImagePullBackOff"), Some(&2));
    assert_eq!(r.counts.get("NotReady"), Some(&1));

    let r = pending_pods(&rev(&s, &p, 3, ReleaseStatus::Deployed), &pods);
    assert_eq!(r.outcome, Outcome::Pending);
    assert!(
        r.summary.contains(
            "4 broken (CrashLoopBackOff 2, ImagePullBackOff 2), nearest its timeout a (3m of its 5m ImagePullBackOff timeout); 1 starting (NotReady 1), nearest its timeout e (3m of its 10m NotReady timeout)"
        ),
        "{}",
        r.summary
    );
    assert_eq!(
        pending_pods(
            &rev(&s, &p, 3, ReleaseStatus::Deployed),
            &[ready_pod("f", 0, 0)]
        )
        .outcome,
        Outcome::Pass
    );
}

/// Issue 19.3: a pod not Ready since before the upgrade (a values-only or fix-forward
/// upgrade of a release with one crash-looping pod) is reported, never charged; a pod the
/// upgrade created within the second its timestamps are truncated to is the revision's.
#[test]
fn a_pod_broken_before_the_upgrade_is_reported_not_charged() {
    let p = policy();
    let s = summary(&[], &[]);
    let old = [pod("app-old", PodProblem::CrashLoopBackOff, -60)];
    for minute in [0, 6, 60] {
        let r = pending_pods(&rev(&s, &p, minute, ReleaseStatus::Deployed), &old);
        assert_eq!(r.outcome, Outcome::Warn, "{}", r.summary);
        assert!(
            r.summary.contains(
                "1 pod(s) not Ready since before the upgrade (CrashLoopBackOff 1): not charged to this revision"
            ),
            "{}",
            r.summary
        );
    }
    let mut truncated = pod("app-new", PodProblem::CrashLoopBackOff, 0);
    truncated.not_ready_since = at(0) - jiff::SignedDuration::from_millis(900);
    let r = pending_pods(&rev(&s, &p, 5, ReleaseStatus::Deployed), &[truncated]);
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
}

/// Issue 19.1: a replica added or replaced late in the bake has its own full time.
#[test]
fn a_new_replica_is_judged_by_its_own_age() {
    let p = policy();
    let s = summary(&[], &[]);
    let late = [pod("app-late", PodProblem::ContainerCreating, 50)];
    let r = pending_pods(&rev(&s, &p, 58, ReleaseStatus::Deployed), &late);
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
    assert!(coming_up(
        &rev(&s, &p, 58, ReleaseStatus::Deployed),
        &late[0]
    ));
    let r = pending_pods(&rev(&s, &p, 60, ReleaseStatus::Deployed), &late);
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
}

/// Issue 19.12: restarts are read. A pod OOM-killed every few minutes and Ready again in
/// seconds fails the revision once its restarts since the upgrade pass `max_restarts`;
/// restarts a pod had before the upgrade do not count.
#[test]
fn restarts_since_the_upgrade_beyond_the_limit_fail() {
    let p = policy();
    assert_eq!(p.pods.max_restarts, 3);
    let s = summary(&[], &[]);
    let mut baseline = RestartBaseline::default();
    let judge = |minute, pods: &[PodObs], baseline: &mut RestartBaseline| {
        restarts(
            &rev(&s, &p, minute, ReleaseStatus::Deployed),
            pods,
            baseline,
        )
    };
    let r = judge(1, &[ready_pod("new", 0, 3)], &mut baseline);
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    assert!(
        r.summary
            .contains("3 container restart(s) since the upgrade, within the 3 tolerated: new 3"),
        "{}",
        r.summary
    );
    let r = judge(9, &[ready_pod("new", 0, 4)], &mut baseline);
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
    assert_eq!(
        (r.value, r.threshold.map(|t| t.value)),
        (Some(4.0), Some(3.0))
    );
    // A pod from before the upgrade with 40 restarts then: only the new ones count.
    let mut baseline = RestartBaseline::default();
    let r = judge(1, &[ready_pod("old", -600, 40)], &mut baseline);
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Pass, Some(0.0)),
        "{}",
        r.summary
    );
    assert_eq!(r.summary, "no container restarted since the upgrade");
    let r = judge(5, &[ready_pod("old", -600, 42)], &mut baseline);
    assert_eq!((r.outcome, r.value), (Outcome::Pass, Some(2.0)));
    let r = judge(9, &[ready_pod("old", -600, 44)], &mut baseline);
    assert_eq!((r.outcome, r.value), (Outcome::Fail, Some(4.0)));
}

/// Issue 19.3: the restarts of a pod crash-looping since before the upgrade are not the
/// revision's.
#[test]
fn restarts_of_a_pod_broken_before_the_upgrade_do_not_count() {
    let p = policy();
    let s = summary(&[], &[]);
    let mut baseline = RestartBaseline::default();
    let mut old = pod("old", PodProblem::CrashLoopBackOff, -60);
    for (minute, n) in [(1, 10), (9, 30)] {
        old.restarts = n;
        let r = restarts(
            &rev(&s, &p, minute, ReleaseStatus::Deployed),
            std::slice::from_ref(&old),
            &mut baseline,
        );
        assert_eq!(
            (r.outcome, r.value),
            (Outcome::Pass, Some(0.0)),
            "{}",
            r.summary
        );
    }
}
