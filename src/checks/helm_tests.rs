//! Table tests of the Helm and Job checks with plain values.

use super::*;
use crate::config::MigrationPolicy;
use crate::release::summary::{Hook, ReleaseSummary};
use crate::test_support::*;
use std::time::Duration;

fn with_migration(required: bool) -> crate::config::ReleasePolicy {
    let mut p = policy();
    p.migration = Some(MigrationPolicy {
        job_name_pattern: Some(regex::Regex::new("(?i)migrat").unwrap()),
        required,
        restart: None,
        sql: None,
    });
    p
}

/// A Job of release `app` (by Helm's instance label), created at minute `created`.
fn job(name: &str, created: i64, ok: bool, failed: Option<&str>) -> JobObs {
    JobObs {
        name: name.into(),
        instance: Some("app".into()),
        created: Some(at(created)),
        succeeded: ok,
        failed: failed.map(String::from),
        ..JobObs::default()
    }
}

fn hook_summary(name: &str, events: &[&str], description: &str) -> ReleaseSummary {
    let mut s = summary(&[], &[]);
    s.description = description.into();
    s.hooks = vec![Hook {
        name: name.into(),
        kind: "Job".into(),
        namespace: "ns".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        last_run: Some(HookPhase::Failed),
    }];
    s
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
fn a_failed_post_upgrade_migration_hook_makes_a_failed_release_a_restart() {
    let p = with_migration(false);
    let s = hook_summary(
        "app-migrate",
        &["post-upgrade"],
        "Upgrade \"app\" failed: post-upgrade hooks failed",
    );
    let r = release_status(&rev(&s, &p, 1, ReleaseStatus::Failed));
    assert_eq!(
        (r.outcome, r.on_fail),
        (Outcome::Fail, FailClass::RestartPod)
    );
    let m = migration(&rev(&s, &p, 1, ReleaseStatus::Failed), &[], "restart it").unwrap();
    assert_eq!(m.on_fail, FailClass::RestartPod);
}

/// Issue 7.7: a failed pre-upgrade hook means the new manifest was never applied; neither a
/// rollback nor a restart helps.
#[test]
fn a_failed_pre_upgrade_hook_recommends_fixing_the_hook() {
    let desc = "Upgrade \"app\" failed: pre-upgrade hooks failed: job app-migrate failed";
    for p in [with_migration(false), policy()] {
        let s = hook_summary("app-migrate", &["post-install", "pre-upgrade"], desc);
        let r = rev(&s, &p, 1, ReleaseStatus::Failed);
        let mut results = vec![release_status(&r)];
        results.extend(migration(
            &r,
            &[],
            "kubectl rollout restart deployment/app -n ns",
        ));
        results.extend(hooks(&r));
        let failed: Vec<_> = results
            .iter()
            .filter(|r| r.outcome != Outcome::Pass)
            .collect();
        assert!(failed.iter().any(|r| r.check == "release_status"));
        assert!(failed.len() >= 2, "{results:?}");
        for result in failed {
            assert_eq!(result.outcome, Outcome::Fail, "{}", result.summary);
            assert_eq!(
                result.on_fail,
                FailClass::FixHook {
                    hook: "app-migrate".into(),
                    logs_command: "kubectl logs job/app-migrate -n ns".into()
                },
                "{}: {}",
                result.check,
                result.summary
            );
            assert!(
                result.summary.contains(
                    "the pre-upgrade hook app-migrate failed, so helm never applied revision 3"
                ),
                "{}",
                result.summary
            );
        }
    }
    // The same hook failing on install (post-install) ran after the manifest: not a pre-hook.
    let s = hook_summary(
        "app-migrate",
        &["post-install", "pre-upgrade"],
        "Release \"app\" failed: post-install hooks failed",
    );
    let mut s1 = s.clone();
    s1.revision = 1;
    let r = release_status(&rev(&s1, &policy(), 1, ReleaseStatus::Failed));
    assert_eq!(r.on_fail, FailClass::Rollback);
}

#[test]
fn migration_table() {
    let p = with_migration(true);
    let s = summary(&[(WorkloadKind::Deployment, "app")], &[]);
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
    let p = with_migration(false);
    let r = migration(&rev(&s, &p, 30, ReleaseStatus::Deployed), &[], cmd).unwrap();
    assert_eq!(r.outcome, Outcome::Pass);
    assert!(migration(&rev(&s, &policy(), 1, ReleaseStatus::Deployed), &[], cmd).is_none());
}

/// Issue 7.7: GIM and gim-monitoring share a namespace; one's migration Job is not the
/// other's.
#[test]
fn jobs_of_another_release_in_the_namespace_are_not_ours() {
    let p = with_migration(false);
    let s = summary(&[(WorkloadKind::Deployment, "app")], &[]);
    let theirs = |j: JobObs| vec![j];
    let other_instance = JobObs {
        instance: Some("app-monitoring".into()),
        ..job(
            "app-monitoring-migrate",
            1,
            false,
            Some("BackoffLimitExceeded"),
        )
    };
    let other_helm = JobObs {
        instance: None,
        helm_release: Some(("app-monitoring".into(), "ns".into())),
        ..job("monitoring-migrate", 1, false, Some("BackoffLimitExceeded"))
    };
    let unlabelled = JobObs {
        instance: None,
        ..job("db-migrate", 1, false, Some("BackoffLimitExceeded"))
    };
    for jobs in [
        theirs(other_instance),
        theirs(other_helm),
        theirs(unlabelled),
    ] {
        let r = migration(&rev(&s, &p, 2, ReleaseStatus::Deployed), &jobs, "x").unwrap();
        assert_eq!(r.outcome, Outcome::Pass, "{jobs:?}: {}", r.summary);
    }
    // Ours by Helm's annotations, and by name in the hooks.
    let ours = JobObs {
        instance: None,
        helm_release: Some(("app".into(), "ns".into())),
        ..job("schema-migrate", 1, false, Some("BackoffLimitExceeded"))
    };
    let r = migration(&rev(&s, &p, 2, ReleaseStatus::Deployed), &[ours], "x").unwrap();
    assert_eq!(r.outcome, Outcome::Fail);
    let hooked = summary(&[], &[("app-migrate", Some(HookPhase::Succeeded))]);
    let by_name = JobObs {
        instance: None,
        ..job("app-migrate", 1, true, None)
    };
    let r = migration(
        &rev(&hooked, &p, 2, ReleaseStatus::Deployed),
        &[by_name],
        "x",
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Pass);
    assert!(r.summary.contains("app-migrate completed"), "{}", r.summary);
}

/// Issue 7.7: the latest attempt is judged.
#[test]
fn a_failed_attempt_followed_by_a_successful_retry_passes() {
    let p = with_migration(true);
    let s = summary(&[(WorkloadKind::Deployment, "app")], &[]);
    let jobs = [
        job("app-migrate-2", 3, true, None),
        job("app-migrate-1", 1, false, Some("BackoffLimitExceeded")),
    ];
    let r = migration(&rev(&s, &p, 4, ReleaseStatus::Deployed), &jobs, "x").unwrap();
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    assert!(
        r.summary
            .contains("app-migrate-2 completed (after 1 failed attempt(s))"),
        "{}",
        r.summary
    );
    let jobs = [
        job("app-migrate-1", 1, true, None),
        job("app-migrate-2", 3, false, Some("DeadlineExceeded")),
    ];
    let r = migration(&rev(&s, &p, 4, ReleaseStatus::Deployed), &jobs, "x").unwrap();
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
}

/// A migration whose Job object is gone is judged by Helm's record of the hook, or is
/// inconclusive: never "it never ran".
#[test]
fn a_migration_job_that_is_gone_is_not_a_migration_that_never_ran() {
    let p = with_migration(true);
    // A hook deleted on success (`hook-delete-policy: hook-succeeded`).
    let s = summary(&[], &[("app-migrate", Some(HookPhase::Succeeded))]);
    let r = migration(&rev(&s, &p, 30, ReleaseStatus::Deployed), &[], "x").unwrap();
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    assert!(r.summary.contains("migration hook app-migrate succeeded"));
    let s = summary(&[], &[("app-migrate", Some(HookPhase::Running))]);
    let r = migration(&rev(&s, &p, 30, ReleaseStatus::Deployed), &[], "x").unwrap();
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
    // A Job of the manifest deleted after it finished.
    let s = summary(&[(WorkloadKind::Job, "app-migrate")], &[]);
    let r = migration(&rev(&s, &p, 30, ReleaseStatus::Deployed), &[], "x").unwrap();
    assert_eq!(r.outcome, Outcome::Inconclusive, "{}", r.summary);
    let r = migration(&rev(&s, &p, 2, ReleaseStatus::Deployed), &[], "x").unwrap();
    assert_eq!(r.outcome, Outcome::Pending, "{}", r.summary);
}

/// Kubernetes creation times are whole seconds; the upgrade's start is not.
#[test]
fn a_job_created_in_the_second_the_upgrade_started_is_this_upgrade_s() {
    let p = with_migration(false);
    let s = summary(&[(WorkloadKind::Deployment, "app")], &[]);
    let mut r = rev(&s, &p, 2, ReleaseStatus::Deployed);
    r.started = at(0) + jiff::SignedDuration::from_millis(700);
    let failed = job("app-migrate", 0, false, Some("BackoffLimitExceeded"));
    let result = migration(&r, &[failed], "x").unwrap();
    assert_eq!(result.outcome, Outcome::Fail, "{}", result.summary);
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
        failed: Some("DeadlineExceeded".into()),
        ..JobObs::default()
    };
    let r = &manifest_jobs(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[failed])[0];
    assert_eq!(
        (r.outcome, r.check.to_string()),
        (Outcome::Fail, "job:seed".into())
    );
    let running = JobObs {
        name: "seed".into(),
        ..JobObs::default()
    };
    let r = &manifest_jobs(
        &rev(&s, &p, 11, ReleaseStatus::Deployed),
        std::slice::from_ref(&running),
    )[0];
    assert_eq!(r.outcome, Outcome::Fail, "still running at the deadline");
    let r = &manifest_jobs(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[running])[0];
    assert_eq!(r.outcome, Outcome::Pending);
    // Gone (a finished Job deleted by its TTL): not evidence of anything.
    let r = &manifest_jobs(&rev(&s, &p, 11, ReleaseStatus::Deployed), &[])[0];
    assert_eq!(r.outcome, Outcome::Inconclusive, "{}", r.summary);
    assert!(
        r.summary.contains("cannot tell whether it completed"),
        "{}",
        r.summary
    );
    let r = &manifest_jobs(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[])[0];
    assert_eq!(r.outcome, Outcome::Pending);
}

/// Issue 19.7: a plain Job of the manifest that failed weeks ago (Helm leaves an unchanged
/// Job alone) is not this revision's run: reported, never charged. One created by this
/// upgrade, even in the second it started, is judged.
#[test]
fn a_job_that_ran_before_the_upgrade_is_reported_not_charged() {
    let p = policy();
    let s = summary(&[(WorkloadKind::Job, "seed")], &[]);
    let weeks_ago = job("seed", -30 * 24 * 60, false, Some("BackoffLimitExceeded"));
    for minute in [1, 11] {
        let r = &manifest_jobs(
            &rev(&s, &p, minute, ReleaseStatus::Deployed),
            std::slice::from_ref(&weeks_ago),
        )[0];
        assert_eq!(r.outcome, Outcome::Warn, "{}", r.summary);
        assert!(
            r.summary.contains(
                "Job seed was created before this upgrade (720h before it) and failed (BackoffLimitExceeded): not this revision's run"
            ),
            "{}",
            r.summary
        );
    }
    let done_before = job("seed", -60, true, None);
    let r = &manifest_jobs(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[done_before])[0];
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    let mut this_upgrade = job("seed", 0, false, Some("BackoffLimitExceeded"));
    this_upgrade.created = Some(at(0) + jiff::SignedDuration::from_millis(100));
    let mut s_started = rev(&s, &p, 1, ReleaseStatus::Deployed);
    s_started.started = at(0) + jiff::SignedDuration::from_millis(300);
    let r = &manifest_jobs(&s_started, &[this_upgrade])[0];
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.summary);
}

/// Issue 19.4: Helm marks a revision failed when its own `--wait` runs out (GIM's guide asks
/// for a 15-minute Helm timeout, GIM may take 45 minutes to be Ready). Such a revision is
/// judged like any other, with Helm's timeout as a note; any other failure still fails.
#[test]
fn helms_own_wait_timeout_is_a_note_not_a_failure() {
    let mut p = policy();
    p.readiness_deadline = 45 * MIN;
    for description in [
        "Upgrade \"gim\" failed: context deadline exceeded",
        "Upgrade \"gim\" failed: timed out waiting for the condition",
    ] {
        let mut s = summary(&[], &[]);
        s.description = description.into();
        let r = rev(&s, &p, 16, ReleaseStatus::Failed);
        let result = release_status(&r);
        assert_eq!(result.outcome, Outcome::Pass, "{}", result.summary);
        assert!(
            result
                .summary
                .contains("judged like any other, against the readiness deadline"),
            "{}",
            result.summary
        );
        let note = helm_timeout_note(&r).unwrap();
        assert!(note.contains("(readiness_deadline 45m)"), "{note}");
    }
    for description in [
        "Upgrade \"gim\" failed: cannot patch \"gim\" with kind Deployment: context deadline exceeded",
        "Upgrade \"gim\" failed: pre-upgrade hooks failed: context deadline exceeded",
    ] {
        let mut s = summary(&[], &[]);
        s.description = description.into();
        let r = rev(&s, &p, 1, ReleaseStatus::Failed);
        assert_eq!(release_status(&r).outcome, Outcome::Fail, "{description}");
        assert_eq!(helm_timeout_note(&r), None);
    }
    // A failed hook is never explained by a timeout.
    let mut s = summary(&[], &[("smoke", Some(HookPhase::Failed))]);
    s.description = "Upgrade \"gim\" failed: context deadline exceeded".into();
    let r = rev(&s, &p, 1, ReleaseStatus::Failed);
    assert_eq!(release_status(&r).outcome, Outcome::Fail);
}

/// Issue 19.15: a Job deleted by its `ttlSecondsAfterFinished` after a round saw it
/// complete keeps its result: the check passes at the end of the bake instead of turning
/// inconclusive for good; a TTL shorter than the readiness deadline is noted.
#[test]
fn a_finished_job_deleted_by_its_ttl_keeps_its_result() {
    let p = policy();
    let s = summary(&[(WorkloadKind::Job, "seed")], &[]);
    let done = JobObs {
        ttl: Some(Duration::from_secs(60)),
        ..job("seed", 0, true, None)
    };
    let mut memory = BTreeMap::new();
    let seen = with_finished(&mut memory, vec![done.clone()]);
    assert_eq!(seen, std::slice::from_ref(&done));
    // Deleted by its TTL: the next rounds still see it completed.
    let later = with_finished(&mut memory, vec![]);
    assert_eq!(later, std::slice::from_ref(&done));
    let r = &manifest_jobs(&rev(&s, &p, 30, ReleaseStatus::Deployed), &later)[0];
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.summary);
    // A Job still running is not remembered: its absence stays unexplained.
    let mut memory = BTreeMap::new();
    let running = job("seed", 0, false, None);
    with_finished(&mut memory, vec![running]);
    assert!(with_finished(&mut memory, vec![]).is_empty());

    let notes = job_ttl_notes(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[done]);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with(
            "Job seed: ttlSecondsAfterFinished (1m) is shorter than readiness_deadline (10m)"
        ),
        "{}",
        notes[0]
    );
    let long = JobObs {
        ttl: Some(Duration::from_secs(3600)),
        ..job("seed", 0, true, None)
    };
    assert!(job_ttl_notes(&rev(&s, &p, 1, ReleaseStatus::Deployed), &[long]).is_empty());
}
