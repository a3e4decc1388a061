//! Table tests of the workload checks with plain values.

use super::*;
use crate::checks::observe::PodProblem;
use crate::release::ReleaseStatus;
use crate::test_support::*;

/// Judges `w` once at minute `now` with a fresh memory, its pods as its counts say.
fn once(
    s: &crate::release::summary::ReleaseSummary,
    p: &crate::config::ReleasePolicy,
    now: i64,
    w: &WorkloadObs,
) -> CheckResult {
    let mut memory = BTreeMap::new();
    rollout(
        &rev(s, p, now, ReleaseStatus::Deployed),
        std::slice::from_ref(w),
        &counted(w),
        &mut memory,
    )
    .remove(0)
}

/// The pods of the new template as `w`'s counts describe them: the new ready ones Ready,
/// the other updated ones crash-looping since the upgrade.
fn counted(w: &WorkloadObs) -> Vec<PodObs> {
    let p = Progress::of(w);
    (0..w.updated)
        .map(|i| {
            let name = format!("app-{i}");
            let pod = if i < p.new_ready {
                ready_pod(&name, 0, 0)
            } else {
                pod(&name, PodProblem::CrashLoopBackOff, 0)
            };
            PodObs {
                workload: w.id(),
                ..pod
            }
        })
        .collect()
}

/// A round at minute `now` whose pods are as `w`'s counts say.
fn at_min(now: i64, w: WorkloadObs) -> (i64, WorkloadObs, Vec<PodObs>) {
    let pods = counted(&w);
    (now, w, pods)
}

fn outcomes_of(results: &[CheckResult]) -> Vec<Outcome> {
    results.iter().map(|r| r.outcome).collect()
}

/// Judges `w` at each minute of `rounds` (its state at that round) with one memory; returns
/// the results.
fn rounds(
    p: &crate::config::ReleasePolicy,
    rounds: &[(i64, WorkloadObs, Vec<PodObs>)],
) -> Vec<CheckResult> {
    let s = summary(&[], &[]);
    let mut memory = BTreeMap::new();
    rounds
        .iter()
        .map(|(now, w, pods)| {
            rollout(
                &rev(&s, p, *now, ReleaseStatus::Deployed),
                std::slice::from_ref(w),
                pods,
                &mut memory,
            )
            .remove(0)
        })
        .collect()
}

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
        template: Some(("pod-template-hash".into(), "new".into())),
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
            Outcome::Pending,
            "not done 10m after the upgrade (readiness deadline 10m), last seen moving 0s ago; fails after 5m without progress: 2/2 updated, 1/2 new ready",
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
            Outcome::Pending,
            "it does not exist",
        ),
    ];
    for (w, now, outcome, words) in cases {
        let r = once(&s, &p, now, &w);
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
    let r = &rounds(&p, &[at_min(11, stuck.clone()), at_min(16, stuck.clone())])[1];
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
    assert!(
        r.summary.contains(
            "1/1 updated, 0/1 new ready, 0/1 new available, 1 old replica(s) still running"
        ),
        "{}",
        r.summary
    );
    let r = once(&s, &p, 1, &stuck);
    assert_eq!((r.outcome, r.value), (Outcome::Pending, Some(0.0)));
    let done = once(&s, &p, 1, &deploy(2, 2));
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
    let r = once(&s, &p, 11, &slow);
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
    assert!(
        r.summary.contains("ProgressDeadlineExceeded (progressDeadlineSeconds 10m), before the readiness deadline: reported, not failed"),
        "{}",
        r.summary
    );
    let r = &rounds(&p, &[at_min(44, slow.clone()), at_min(50, slow.clone())])[1];
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
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

/// Issue 19.1: past the readiness deadline one sample never fails a rollout. A scale-up, an
/// eviction or a readiness blip at minute 50 is judged on progress and on the new
/// replicas' own age; only a rollout that stopped moving for the stall timeout fails.
#[test]
fn past_the_deadline_a_rollout_fails_only_when_it_stopped_moving() {
    let p = policy();
    let young = |since| vec![pod("app-new", PodProblem::ContainerCreating, since)];
    // Complete until minute 50, then an HPA adds a replica that takes its time.
    let results = rounds(
        &p,
        &[
            at_min(12, deploy(2, 2)),
            (50, deploy(2, 3), young(50)),
            (58, deploy(2, 3), young(50)),
            at_min(59, deploy(3, 3)),
        ],
    );
    let outcomes = outcomes_of(&results);
    assert_eq!(
        outcomes,
        [
            Outcome::Pass,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pass
        ],
        "{results:#?}"
    );
    assert!(
        results[2]
            .summary
            .contains("1 replica(s) are still within their own time"),
        "{}",
        results[2].summary
    );
    // An eviction whose replacement is never created (a quota, say): the stall clock starts
    // at the first round that sees the rollout incomplete, and fails only after the stall
    // timeout, the one pod left agreeing with the counts.
    let evicted = WorkloadObs {
        updated: 1,
        total: 1,
        ..deploy(1, 2)
    };
    let results = rounds(
        &p,
        &[
            at_min(20, deploy(2, 2)),
            at_min(21, evicted.clone()),
            at_min(25, evicted.clone()),
            at_min(26, evicted),
        ],
    );
    let outcomes = outcomes_of(&results);
    assert_eq!(
        outcomes,
        [
            Outcome::Pass,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Fail
        ],
        "{results:#?}"
    );
    assert!(
        results[3]
            .summary
            .contains("not moving for 5m (stall timeout 5m)"),
        "{}",
        results[3].summary
    );
    // A first round after a restart of upgrade-guard that sees a stalled rollout does not
    // decide: it starts the clock.
    let r = once(&summary(&[], &[]), &p, 40, &deploy(1, 2));
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
}

/// Issue 19.8: a long ordered rollout (six replicas, three minutes each) moves past an
/// absolute deadline and is not failed; it fails once nothing moved for the stall timeout.
#[test]
fn a_long_ordered_rollout_is_judged_on_progress_not_wall_time() {
    let p = policy();
    let sts = |updated: i32, ready: i32| WorkloadObs {
        kind: WorkloadKind::StatefulSet,
        updated,
        ready,
        available: ready,
        total: 6,
        ..deploy(0, 6)
    };
    let mut plan = Vec::new();
    for i in 0..=6 {
        // Minute 3i: i replicas updated and ready.
        plan.push(at_min(3 * i64::from(i), sts(i, 6)));
    }
    let results = rounds(&p, &plan);
    assert!(
        results.iter().all(|r| r.outcome != Outcome::Fail),
        "{results:#?}"
    );
    assert_eq!(results.last().unwrap().outcome, Outcome::Pass);
    // Stuck at 4 of 6 from minute 12 on: failed at 17, not before.
    let stuck: Vec<_> = [9, 12, 14, 16, 17]
        .iter()
        .map(|m| at_min(*m, sts(if *m == 9 { 3 } else { 4 }, 5)))
        .collect();
    let outcomes = outcomes_of(&rounds(&p, &stuck));
    assert_eq!(
        outcomes,
        [
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Fail
        ]
    );
}

/// Issue 19.8: a paused Deployment and the old pods of an `OnDelete` StatefulSet are
/// reported, not failed.
#[test]
fn a_paused_or_on_delete_rollout_is_reported_not_failed() {
    let p = policy();
    let paused = WorkloadObs {
        paused: true,
        updated: 0,
        ..deploy(2, 2)
    };
    let on_delete = WorkloadObs {
        kind: WorkloadKind::StatefulSet,
        on_delete: true,
        updated: 1,
        total: 3,
        ..deploy(3, 3)
    };
    for (w, words) in [
        (paused, "is paused"),
        (on_delete, "updates OnDelete: 2 old pod(s)"),
    ] {
        let results = rounds(&p, &[at_min(11, w.clone()), at_min(30, w.clone())]);
        assert_eq!(results[1].outcome, Outcome::Warn, "{}", results[1].summary);
        assert!(results[1].summary.contains(words), "{}", results[1].summary);
    }
}

/// Issue 19.3: a values-only upgrade of a release whose one pod was crash-looping before it:
/// the rollout is short of that replica, which is reported, not charged.
#[test]
fn a_replica_broken_before_the_upgrade_is_reported_not_charged() {
    let p = policy();
    let old = vec![pod("app-old", PodProblem::CrashLoopBackOff, -60)];
    let results = rounds(
        &p,
        &[
            (11, deploy(0, 1), old.clone()),
            (30, deploy(0, 1), old.clone()),
        ],
    );
    assert_eq!(results[1].outcome, Outcome::Warn, "{}", results[1].summary);
    assert!(
        results[1].summary.contains(
            "short of 1 Ready replica(s) whose pods have not been Ready since before the upgrade"
        ),
        "{}",
        results[1].summary
    );
    // A second replica that the upgrade broke is the revision's.
    let mut both = old.clone();
    both.push(pod("app-new", PodProblem::CrashLoopBackOff, 0));
    let results = rounds(
        &p,
        &[(11, deploy(0, 2), both.clone()), (30, deploy(0, 2), both)],
    );
    assert_eq!(results[1].outcome, Outcome::Fail, "{}", results[1].summary);
}

/// A replica that flaps Ready and back is no progress: past the deadline the stall clock
/// keeps running and the rollout fails after the stall timeout.
#[test]
fn a_flapping_replica_is_no_progress() {
    let p = policy();
    // Ready 1, 2, 1, 2 ... of 3: the best (2) was reached at minute 12.
    let flaps: Vec<_> = [11, 12, 13, 14, 15, 16, 17]
        .iter()
        .map(|m| at_min(*m, deploy(if m % 2 == 0 { 2 } else { 1 }, 3)))
        .collect();
    let outcomes = outcomes_of(&rounds(&p, &flaps));
    assert_eq!(
        outcomes,
        [
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Fail
        ]
    );
}

/// Rollout counts are the controller's summary of the pods; a failure rests on the pods. A
/// controller behind its Ready pods (a loaded control plane, `minReadySeconds`), a view that
/// does not show the pods the controller counts, a new ReplicaSet not visible, a controller
/// that has not acted on the spec: each is pending past the stall timeout, never failed.
#[test]
fn a_stall_the_pods_do_not_show_is_not_failed() {
    let p = policy();
    // The CI case: the new pod is Ready, the controller still counts the old one as the
    // ready replica and has not scaled it down.
    let lagging = WorkloadObs {
        total: 2,
        ..deploy(1, 1)
    };
    let new_ready = vec![PodObs {
        workload: lagging.id(),
        ..ready_pod("app-new", 1, 0)
    }];
    let unseen = deploy(1, 2);
    let one_ready = vec![ready_pod("app-0", 0, 0)];
    let no_rs = WorkloadObs {
        template: None,
        ..deploy(1, 2)
    };
    let unobserved = WorkloadObs {
        generation: 3,
        ..deploy(1, 2)
    };
    for (w, pods, words) in [
        (
            lagging,
            new_ready,
            "its 1 pod(s) of the new template are Ready and the controller's rollout status has not caught up",
        ),
        (
            unseen,
            one_ready.clone(),
            "Kubernetes counts 2 pod(s) on the new template and only 1 are visible",
        ),
        (
            no_rs,
            one_ready.clone(),
            "its ReplicaSet is not visible: which pods are new is unknown",
        ),
        (
            unobserved,
            one_ready,
            "the Deployment controller has not acted on the new spec (observedGeneration 2 of 3)",
        ),
    ] {
        let results = rounds(
            &p,
            &[(11, w.clone(), pods.clone()), (30, w.clone(), pods.clone())],
        );
        assert_eq!(
            results[1].outcome,
            Outcome::Pending,
            "{}",
            results[1].summary
        );
        assert!(results[1].summary.contains(words), "{}", results[1].summary);
        assert!(
            results[1].summary.contains("not moving for 19m, but"),
            "{}",
            results[1].summary
        );
    }
}
