//! Table tests of the workload checks with plain values.

use super::*;
use crate::checks::observe::PodProblem;
use crate::release::ReleaseStatus;
use crate::test_support::*;

fn deploy(ready: i32, desired: i32) -> WorkloadObs {
    WorkloadObs {
        generation: 2,
        observed_generation: 2,
        desired,
        updated: desired,
        total: desired,
        ready,
        available: ready,
        found: true,
        progress_deadline: Some(Duration::from_secs(600)),
        ..WorkloadObs::missing(WorkloadKind::Deployment, "app")
    }
}

#[test]
fn rollout_against_the_readiness_deadline() {
    let p = policy();
    let s = summary(&[], &[]);
    let cases = [
        (
            deploy(2, 2),
            1,
            Outcome::Pass,
            "rolled out: 2/2 updated, 2/2 new ready, 2/2 new available",
        ),
        (deploy(0, 2), 9, Outcome::Pending, "1m left"),
        (
            deploy(1, 2),
            10,
            Outcome::Fail,
            "not Ready 10m after the upgrade (readiness deadline 10m): 2/2 updated, 1/2 new ready",
        ),
        (
            WorkloadObs {
                observed_generation: 1,
                ..deploy(2, 2)
            },
            1,
            Outcome::Pending,
            "the controller has not seen the new spec yet",
        ),
        (
            WorkloadObs::missing(WorkloadKind::StatefulSet, "db"),
            1,
            Outcome::Pending,
            "StatefulSet/db not created yet",
        ),
        (
            WorkloadObs::missing(WorkloadKind::StatefulSet, "db"),
            11,
            Outcome::Fail,
            "does not exist",
        ),
    ];
    for (w, now, outcome, words) in cases {
        let r = &rollout(&rev(&s, &p, now, ReleaseStatus::Deployed), &[w])[0];
        assert_eq!(r.outcome, outcome, "{}", r.summary);
        assert!(r.summary.contains(words), "{}", r.summary);
        assert_eq!(r.window, Some(10 * MIN));
    }
}

/// A rolling update stuck on its new pod: the old one still serves, so "ready" counts it;
/// the line must say that no *new* replica is ready, as `kubectl rollout status` does.
#[test]
fn the_rollout_line_counts_new_replicas_not_old_ones() {
    let p = policy();
    let s = summary(&[], &[]);
    let stuck = WorkloadObs {
        total: 2,
        ..deploy(1, 1)
    };
    let r = &rollout(
        &rev(&s, &p, 11, ReleaseStatus::Deployed),
        std::slice::from_ref(&stuck),
    )[0];
    assert_eq!(r.outcome, Outcome::Fail);
    assert!(
        r.summary.contains(
            "1/1 updated, 0/1 new ready, 0/1 new available, 1 old replica(s) still running"
        ),
        "{}",
        r.summary
    );
    let r = &rollout(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[stuck])[0];
    assert_eq!((r.outcome, r.value), (Outcome::Pending, Some(0.0)));
    let done = &rollout(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[deploy(2, 2)])[0];
    assert_eq!((done.outcome, done.value), (Outcome::Pass, Some(2.0)));
}

/// Issue 7.1: a Deployment's default progress deadline (600 s) is shorter than GIM's
/// readiness deadline; Kubernetes' condition is reported, not failed, before the deadline.
#[test]
fn progress_deadline_exceeded_before_the_readiness_deadline_is_reported_not_failed() {
    let mut p = policy();
    p.readiness_deadline = 45 * MIN;
    let s = summary(&[], &[]);
    let slow = WorkloadObs {
        progress_deadline_exceeded: true,
        ..deploy(0, 1)
    };
    let r = &rollout(
        &rev(&s, &p, 11, ReleaseStatus::Deployed),
        std::slice::from_ref(&slow),
    )[0];
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
    assert!(
        r.summary.contains("ProgressDeadlineExceeded (progressDeadlineSeconds 10m), before the readiness deadline: reported, not failed"),
        "{}",
        r.summary
    );
    let r = &rollout(
        &rev(&s, &p, 45, ReleaseStatus::Deployed),
        std::slice::from_ref(&slow),
    )[0];
    assert_eq!(r.outcome, Outcome::Fail);
    assert!(
        r.summary.contains("ProgressDeadlineExceeded"),
        "{}",
        r.summary
    );
    let note = progress_deadline_note(&slow, p.readiness_deadline).unwrap();
    assert!(
        note.contains(
            "Deployment/app: progressDeadlineSeconds (10m) is shorter than readiness_deadline (45m)"
        ),
        "{note}"
    );
    assert_eq!(progress_deadline_note(&slow, 5 * MIN), None);
}

/// Issue 7.1: a pod that is Running and not Ready with no crash is judged against the
/// readiness deadline, not the pending timeout.
#[test]
fn slow_starters_get_the_readiness_deadline_broken_pods_the_pending_timeout() {
    let mut p = policy();
    p.readiness_deadline = 45 * MIN;
    p.pending_timeout = 5 * MIN;
    let s = summary(&[], &[]);
    let at_min = |m| rev(&s, &p, m, ReleaseStatus::Deployed);
    for slow in [PodProblem::NotReady, PodProblem::Initializing] {
        let pods = [pod("gim-0", slow, 0)];
        let r = pending_pods(&at_min(30), &pods);
        assert_eq!(r.outcome, Outcome::Pending, "{slow:?}: {}", r.summary);
        assert!(
            r.summary.contains("within the 45m readiness deadline"),
            "{}",
            r.summary
        );
        assert_eq!(r.window, Some(45 * MIN));
        let r = pending_pods(&at_min(45), &pods);
        assert_eq!(r.outcome, Outcome::Fail, "{slow:?}");
        assert!(
            r.summary
                .contains("still not Ready after the 45m readiness deadline"),
            "{}",
            r.summary
        );
    }
    for broken in [
        PodProblem::Unschedulable,
        PodProblem::ImagePullBackOff,
        PodProblem::ErrImagePull,
        PodProblem::CreateContainerConfigError,
        PodProblem::CrashLoopBackOff,
        PodProblem::OomKilled,
        PodProblem::InitContainerFailing,
        PodProblem::Pending,
    ] {
        let r = pending_pods(&at_min(5), &[pod("gim-0", broken, 0)]);
        assert_eq!(r.outcome, Outcome::Fail, "{broken:?}");
        assert!(r.summary.contains("pending timeout"), "{}", r.summary);
        assert_eq!(r.window, Some(5 * MIN));
    }
}

#[test]
fn pending_pods_are_counted_by_reason_after_the_timeout() {
    let p = policy();
    let s = summary(&[], &[]);
    let pods = [
        pod("a", PodProblem::ImagePullBackOff, 0),
        pod("b", PodProblem::ImagePullBackOff, 1),
        pod("c", PodProblem::Unschedulable, 0),
        pod("d", PodProblem::CrashLoopBackOff, 4),
        pod("e", PodProblem::NotReady, 0),
    ];
    let r = pending_pods(&rev(&s, &p, 6, ReleaseStatus::Deployed), &pods);
    assert_eq!(r.outcome, Outcome::Fail);
    assert_eq!(r.value, Some(3.0));
    assert_eq!(r.window, Some(5 * MIN));
    assert!(
        r.summary.contains("ImagePullBackOff 2, Unschedulable 1"),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("oldest a, 6m"), "{}", r.summary);
    assert_eq!(r.on_fail, crate::checks::FailClass::Rollback);

    let r = pending_pods(&rev(&s, &p, 3, ReleaseStatus::Deployed), &pods);
    assert_eq!(r.outcome, Outcome::Pending);
    assert!(
        r.summary.contains("4 broken (CrashLoopBackOff 1, ImagePullBackOff 2, Unschedulable 1), within the 5m pending timeout; 1 starting (NotReady 1)"),
        "{}",
        r.summary
    );
    assert_eq!(
        pending_pods(&rev(&s, &p, 3, ReleaseStatus::Deployed), &[]).outcome,
        Outcome::Pass
    );
}

#[test]
fn the_readiness_deadline_of_a_starting_pod_counts_from_the_upgrade_at_the_earliest() {
    let s = summary(&[], &[]);
    let p = policy();
    // Not Ready since a minute before the upgrade (its creation time rounded down, or an
    // old problem): the readiness deadline (10m) is the upgrade's.
    let starting = [pod("app-1", PodProblem::NotReady, -1)];
    let r = pending_pods(&rev(&s, &p, 9, ReleaseStatus::Deployed), &starting);
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
    let r = pending_pods(&rev(&s, &p, 10, ReleaseStatus::Deployed), &starting);
    assert_eq!(r.outcome, Outcome::Fail);
    assert!(r.summary.contains("(oldest app-1, 10m)"), "{}", r.summary);
    // A broken pod keeps its own clock.
    let broken = [pod("app-1", PodProblem::CrashLoopBackOff, -1)];
    let r = pending_pods(&rev(&s, &p, 4, ReleaseStatus::Deployed), &broken);
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
}
