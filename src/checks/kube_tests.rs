//! Table tests of the Kubernetes/Helm checks with plain values.

use super::*;
use crate::checks::observe::PodProblem;
use crate::checks::test_support::*;
use crate::config::MigrationPolicy;

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
        ..WorkloadObs::missing(WorkloadKind::Deployment, "app")
    }
}

#[test]
fn release_status_table() {
    let p = policy();
    let s = summary(&[], &[]);
    let cases = [
        (
            ReleaseStatus::Deployed,
            1,
            Outcome::Pass,
            "revision 3 is deployed",
        ),
        (
            ReleaseStatus::Failed,
            1,
            Outcome::Fail,
            "helm marked revision 3 failed: Upgrade complete",
        ),
        (
            ReleaseStatus::PendingUpgrade,
            14,
            Outcome::Pending,
            "pending-upgrade since 14m",
        ),
        (
            ReleaseStatus::PendingUpgrade,
            15,
            Outcome::Fail,
            "release is locked",
        ),
    ];
    for (status, now, outcome, words) in cases {
        let r = release_status(&rev(&s, &p, now, status));
        assert_eq!(r.outcome, outcome, "{status}");
        assert!(r.summary.contains(words), "{status}: {}", r.summary);
    }
}

#[test]
fn a_failed_migration_hook_makes_a_failed_release_a_restart() {
    let mut p = policy();
    p.migration = Some(MigrationPolicy {
        job_name_pattern: regex::Regex::new("migrat").unwrap(),
        required: false,
        restart: None,
    });
    let s = summary(&[], &[("app-migrate", Some(HookPhase::Failed))]);
    let r = release_status(&rev(&s, &p, 1, ReleaseStatus::Failed));
    assert_eq!(
        (r.outcome, r.on_fail),
        (Outcome::Fail, FailClass::RestartPod)
    );
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
            "rolled out: 2/2 updated, 2/2 ready",
        ),
        (deploy(0, 2), 9, Outcome::Pending, "1m left"),
        (
            deploy(1, 2),
            10,
            Outcome::Fail,
            "not Ready 10m after the upgrade (readiness deadline 10m): 2/2 updated, 1/2 ready",
        ),
        (
            WorkloadObs {
                progress_deadline_exceeded: true,
                ..deploy(0, 1)
            },
            2,
            Outcome::Fail,
            "exceeded its progress deadline",
        ),
        (
            WorkloadObs {
                observed_generation: 1,
                ..deploy(2, 2)
            },
            1,
            Outcome::Pending,
            "rolling out",
        ),
        (
            WorkloadObs::missing(WorkloadKind::StatefulSet, "db"),
            1,
            Outcome::Pending,
            "StatefulSet/db not created yet",
        ),
        // A rolling update stuck on its new pod: the old one still serves, nothing rolled out.
        (
            WorkloadObs {
                total: 2,
                ..deploy(1, 1)
            },
            11,
            Outcome::Fail,
            "1/1 updated, 1/1 ready, 1/1 available, 1 old replica(s) still running",
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

#[test]
fn old_replicas_do_not_count_as_the_new_version_being_available() {
    let p = policy();
    let s = summary(&[], &[]);
    let stuck = WorkloadObs {
        total: 2,
        ..deploy(1, 1)
    };
    let r = &rollout(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[stuck])[0];
    assert_eq!((r.outcome, r.value), (Outcome::Pending, Some(0.0)));
    let done = &rollout(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[deploy(2, 2)])[0];
    assert_eq!((done.outcome, done.value), (Outcome::Pass, Some(2.0)));
}

#[test]
fn pending_pods_are_counted_by_reason_after_the_timeout() {
    let p = policy();
    let s = summary(&[], &[]);
    let pod = |name: &str, problem, since| PodObs {
        name: name.into(),
        problem: Some(problem),
        not_ready_since: at(since),
    };
    let pods = [
        pod("a", PodProblem::ImagePullBackOff, 0),
        pod("b", PodProblem::ImagePullBackOff, 1),
        pod("c", PodProblem::Unschedulable, 0),
        pod("d", PodProblem::CrashLoopBackOff, 4),
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
    assert_eq!(r.on_fail, FailClass::Rollback);

    let r = pending_pods(&rev(&s, &p, 3, ReleaseStatus::Deployed), &pods);
    assert_eq!(r.outcome, Outcome::Pending);
    assert_eq!(
        pending_pods(&rev(&s, &p, 3, ReleaseStatus::Deployed), &[]).outcome,
        Outcome::Pass
    );
}

#[test]
fn migration_table() {
    let mut p = policy();
    p.migration = Some(MigrationPolicy {
        job_name_pattern: regex::Regex::new("(?i)migrat").unwrap(),
        required: true,
        restart: None,
    });
    let s = summary(&[(WorkloadKind::Deployment, "app")], &[]);
    let job = |name: &str, created: i64, ok: bool, failed: Option<&str>| JobObs {
        name: name.into(),
        created: Some(at(created)),
        succeeded: ok,
        failed: failed.map(String::from),
    };
    let cmd = "kubectl rollout restart deployment/app -n ns";
    let cases = [
        (
            vec![job("app-migrate", 1, false, Some("BackoffLimitExceeded"))],
            2,
            Outcome::Fail,
            "migration job app-migrate failed (BackoffLimitExceeded); restart the pod, the migration resumes: kubectl rollout restart deployment/app -n ns",
        ),
        (
            vec![job("app-migrate", 1, true, None)],
            2,
            Outcome::Pass,
            "completed",
        ),
        (
            vec![job("app-migrate", 1, false, None)],
            2,
            Outcome::Pending,
            "running",
        ),
        // A failed migration from before this upgrade is not this upgrade's.
        (
            vec![job("app-migrate", -30, false, Some("BackoffLimitExceeded"))],
            2,
            Outcome::Pending,
            "waiting",
        ),
        (vec![], 11, Outcome::Fail, "never ran"),
        (
            vec![job("unrelated", 1, false, Some("x"))],
            2,
            Outcome::Pending,
            "waiting",
        ),
    ];
    for (jobs, now, outcome, words) in cases {
        let r = migration(&rev(&s, &p, now, ReleaseStatus::Deployed), &jobs, cmd).unwrap();
        assert_eq!(r.outcome, outcome, "{}", r.summary);
        assert!(r.summary.contains(words), "{}", r.summary);
        if outcome == Outcome::Fail {
            assert_eq!(r.on_fail, FailClass::RestartPod);
        }
    }
    p.migration.as_mut().unwrap().required = false;
    let r = migration(&rev(&s, &p, 30, ReleaseStatus::Deployed), &[], cmd).unwrap();
    assert_eq!(r.outcome, Outcome::Pass);
    let s = summary(&[], &[("app-migrate", Some(HookPhase::Failed))]);
    let r = migration(&rev(&s, &p, 1, ReleaseStatus::Failed), &[], cmd).unwrap();
    assert_eq!(
        (r.outcome, r.on_fail.clone()),
        (Outcome::Fail, FailClass::RestartPod)
    );
    assert!(migration(&rev(&s, &policy(), 1, ReleaseStatus::Deployed), &[], cmd).is_none());
}

#[test]
fn hooks_and_manifest_jobs() {
    let p = policy();
    let s = summary(
        &[(WorkloadKind::Job, "seed")],
        &[
            ("smoke", Some(HookPhase::Failed)),
            ("warm", Some(HookPhase::Succeeded)),
        ],
    );
    let r = hooks(&rev(&s, &p, 1, ReleaseStatus::Deployed)).unwrap();
    assert_eq!(
        (r.outcome, r.summary.as_str()),
        (Outcome::Fail, "Helm hook(s) failed: smoke")
    );
    let s2 = summary(&[], &[("warm", Some(HookPhase::Succeeded))]);
    assert_eq!(
        hooks(&rev(&s2, &p, 1, ReleaseStatus::Deployed))
            .unwrap()
            .outcome,
        Outcome::Pass
    );

    let failed = JobObs {
        name: "seed".into(),
        created: None,
        succeeded: false,
        failed: Some("DeadlineExceeded".into()),
    };
    let r = &manifest_jobs(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[failed])[0];
    assert_eq!((r.outcome, r.check.as_str()), (Outcome::Fail, "job:seed"));
    let r = &manifest_jobs(&rev(&s, &p, 11, ReleaseStatus::Deployed), &[])[0];
    assert_eq!(r.outcome, Outcome::Fail);
    let r = &manifest_jobs(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[])[0];
    assert_eq!(r.outcome, Outcome::Pending);
}
