//! Aggregation and action tables, and the property that provider errors never fail.

use proptest::prelude::*;

use super::*;
use crate::checks::provider::{ProviderError, ProviderState};
use crate::release::rollback_target::TargetBasis;

fn r(outcome: Outcome) -> CheckResult {
    CheckResult::new("c", outcome, format!("{outcome:?}"))
}

fn with(outcome: Outcome, class: FailClass, summary: &str) -> CheckResult {
    CheckResult::new("c", outcome, summary).on_fail(class)
}

#[test]
fn verdict_table() {
    use Outcome::*;
    let cases: [(&[Outcome], bool, Verdict); 10] = [
        (&[Pass, Pass], true, Verdict::Healthy),
        (&[Pass, Pass], false, Verdict::Progressing),
        (&[Pass, Pending], true, Verdict::Progressing),
        (&[Pass, Warn], true, Verdict::Degraded),
        (&[Pass, Warn], false, Verdict::Progressing),
        (&[Warn, Pending], true, Verdict::Progressing),
        (&[Pass, Inconclusive, Pending], false, Verdict::Inconclusive),
        (&[Inconclusive, Fail], false, Verdict::Failed),
        (&[Pending, Fail], false, Verdict::Failed),
        (&[], true, Verdict::Healthy),
    ];
    for (outcomes, bake_over, expected) in cases {
        let results: Vec<_> = outcomes.iter().map(|o| r(*o)).collect();
        assert_eq!(
            verdict(&results, bake_over),
            expected,
            "{outcomes:?} bake_over={bake_over}"
        );
    }
}

static NO_ROLLBACKS: BTreeMap<u32, u32> = BTreeMap::new();

fn ctx<'a>(
    key: &'a ReleaseKey,
    history: &'a [(u32, ReleaseStatus)],
    bakes: &'a BTreeMap<u32, BakeRecord>,
) -> ActionContext<'a> {
    ActionContext {
        release: key,
        revision: 4,
        history,
        rollbacks: &NO_ROLLBACKS,
        bakes,
        rollback_timeout: Duration::from_secs(15 * 60),
        storage: Storage::Secret,
        restart_command: "kubectl rollout restart statefulset/gim -n gim".into(),
    }
}

#[test]
fn action_table() {
    use ReleaseStatus::*;
    let key = ReleaseKey::new("gim", "gim");
    let history = [(1, Superseded), (2, Superseded), (3, Failed), (4, Deployed)];
    let bakes = BTreeMap::new();
    let c = ctx(&key, &history, &bakes);
    let kafka = FailClass::FixDependency {
        name: "kafka".into(),
    };

    let rollback = recommend(
        Verdict::Failed,
        &[with(Outcome::Fail, FailClass::Rollback, "pods stuck")],
        &c,
    );
    assert_eq!(
        rollback,
        RecommendedAction::Rollback {
            target: 2,
            basis: TargetBasis::NewestThatRan,
            command: "helm rollback gim 2 -n gim --timeout 15m".into(),
        }
    );
    // A dependency down wins over a workload failure.
    let both = [
        with(Outcome::Fail, FailClass::Rollback, "pods stuck"),
        with(Outcome::Fail, kafka.clone(), "kafka down"),
    ];
    assert_eq!(
        recommend(Verdict::Failed, &both, &c),
        RecommendedAction::FixDependency {
            name: "kafka".into()
        }
    );
    // A failed migration alone: restart, not rollback.
    assert_eq!(
        recommend(
            Verdict::Failed,
            &[with(
                Outcome::Fail,
                FailClass::RestartPod,
                "migration failed"
            )],
            &c
        ),
        RecommendedAction::RestartPod {
            command: "kubectl rollout restart statefulset/gim -n gim".into()
        }
    );
    // Pods failing too: the rollback wins over the restart.
    let pods_and_migration = [
        with(Outcome::Fail, FailClass::RestartPod, "migration failed"),
        with(Outcome::Fail, FailClass::Rollback, "pods stuck"),
    ];
    assert!(matches!(
        recommend(Verdict::Failed, &pods_and_migration, &c),
        RecommendedAction::Rollback { target: 2, .. }
    ));
    // Pods still starting (waiting for the migration), their rollout not done and the
    // backlog growing: consequences of the migration; the restart is the remedy.
    let starting = |check: &str, reasons: &[&'static str]| {
        let mut r = with(Outcome::Fail, FailClass::Rollback, "not Ready");
        r.check = check.into();
        r.counts = reasons.iter().map(|k| (*k, 1)).collect();
        r
    };
    let waiting_for_migration = [
        with(
            Outcome::Fail,
            FailClass::RestartPod,
            "migration not confirmed",
        ),
        starting("rollout:StatefulSet/gim", &[]),
        starting("pending_pods", &["NotReady"]),
        starting("lag", &[]),
    ];
    assert_eq!(
        recommend(Verdict::Failed, &waiting_for_migration, &c),
        RecommendedAction::RestartPod {
            command: "kubectl rollout restart statefulset/gim -n gim".into()
        }
    );
    // The migration not confirmed for its `for:` yet: no rollback meanwhile.
    let mut unconfirmed = waiting_for_migration.clone();
    unconfirmed[0] = with(
        Outcome::Pending,
        FailClass::RestartPod,
        "failing for 10s of 2m",
    );
    assert!(matches!(
        recommend(Verdict::Failed, &unconfirmed, &c),
        RecommendedAction::Investigate { reason }
            if reason.contains("failing for 10s of 2m") && reason.contains("kubectl rollout restart")
    ));
    // The database does not answer: the migration cannot be confirmed, and the pods may be
    // waiting for the database: no rollback from a database error.
    let mut no_answer = waiting_for_migration.clone();
    no_answer[0] = with(
        Outcome::Inconclusive,
        FailClass::Investigate,
        "PostgreSQL unreachable: database infomart",
    );
    no_answer[0].check = crate::checks::sql::MIGRATION_SQL.into();
    assert!(matches!(
        recommend(Verdict::Failed, &no_answer, &c),
        RecommendedAction::Investigate { reason } if reason.contains("PostgreSQL unreachable")
    ));
    // A crash-looping pod is not waiting for its migration: the rollback wins.
    let crashing = [
        with(
            Outcome::Fail,
            FailClass::RestartPod,
            "migration not confirmed",
        ),
        starting("rollout:StatefulSet/gim", &[]),
        starting("pending_pods", &["CrashLoopBackOff", "NotReady"]),
    ];
    assert!(matches!(
        recommend(Verdict::Failed, &crashing, &c),
        RecommendedAction::Rollback { target: 2, .. }
    ));
    // Nor is a rollout that fails with no pod starting (a workload missing).
    let missing = [
        with(
            Outcome::Fail,
            FailClass::RestartPod,
            "migration not confirmed",
        ),
        starting("rollout:StatefulSet/gim", &[]),
    ];
    assert!(matches!(
        recommend(Verdict::Failed, &missing, &c),
        RecommendedAction::Rollback { target: 2, .. }
    ));
    // Nothing to roll back to.
    let first_install = [(1, Deployed)];
    let c1 = ActionContext {
        revision: 1,
        ..ctx(&key, &first_install, &bakes)
    };
    assert!(matches!(
        recommend(Verdict::Failed, &[with(Outcome::Fail, FailClass::Rollback, "x")], &c1),
        RecommendedAction::Investigate { reason } if reason.contains("nothing safe to roll back to")
    ));
    assert_eq!(
        recommend(Verdict::Healthy, &[r(Outcome::Pass)], &c),
        RecommendedAction::None
    );
    assert_eq!(
        recommend(Verdict::Progressing, &[r(Outcome::Pending)], &c),
        RecommendedAction::None
    );
    assert!(matches!(
        recommend(Verdict::Inconclusive, &[with(Outcome::Inconclusive, FailClass::Investigate, "Prometheus did not answer")], &c),
        RecommendedAction::Investigate { reason } if reason.contains("cannot judge the revision: Prometheus did not answer")
    ));
}

/// Issue 7.8 and 7.9: no action for a revision that is no longer the latest, while a Helm
/// operation holds the release, or once it was uninstalled.
#[test]
fn no_action_unless_the_judged_revision_is_still_current() {
    use ReleaseStatus::*;
    let key = ReleaseKey::new("gim", "gim");
    let bakes = BTreeMap::new();
    let failing = [with(Outcome::Fail, FailClass::Rollback, "pods stuck")];
    let cases: [(&[(u32, ReleaseStatus)], &str); 4] = [
        (
            &[
                (2, Superseded),
                (3, Superseded),
                (4, Superseded),
                (5, Deployed),
            ],
            "revision 4 is no longer the latest: revision 5 is deployed",
        ),
        (
            &[
                (2, Superseded),
                (3, Superseded),
                (4, Deployed),
                (5, PendingUpgrade),
            ],
            "revision 4 is no longer the latest: revision 5 is pending-upgrade",
        ),
        (
            &[(2, Superseded), (3, Superseded), (4, PendingRollback)],
            "a Helm operation holds the release",
        ),
        (
            &[(2, Superseded), (3, Superseded), (4, Uninstalled)],
            "the release is uninstalled",
        ),
    ];
    for (history, words) in cases {
        let action = recommend(Verdict::Failed, &failing, &ctx(&key, history, &bakes));
        assert!(
            matches!(&action, RecommendedAction::Hold { reason } if reason.contains(words)),
            "{history:?}: {action:?}"
        );
    }
    // A later re-read can hold an action decided earlier; nothing stays nothing.
    let current = [(3, Superseded), (4, Deployed)];
    let action = recommend(Verdict::Failed, &failing, &ctx(&key, &current, &bakes));
    assert!(matches!(
        action,
        RecommendedAction::Rollback { target: 3, .. }
    ));
    let newer = [(3, Superseded), (4, Superseded), (5, PendingUpgrade)];
    assert!(matches!(
        guard(action, &newer, 4),
        RecommendedAction::Hold { .. }
    ));
    assert_eq!(
        guard(RecommendedAction::None, &newer, 4),
        RecommendedAction::None
    );
}

/// Issue 7.7: a failed pre-upgrade hook wins over the rollback that helm's `failed` status
/// would suggest.
#[test]
fn a_failed_pre_hook_recommends_fixing_it() {
    use ReleaseStatus::*;
    let key = ReleaseKey::new("gim", "gim");
    let history = [(3, Superseded), (4, Failed)];
    let bakes = BTreeMap::new();
    let hook = FailClass::FixHook {
        hook: "gim-migrate".into(),
        logs_command: "kubectl logs job/gim-migrate -n gim".into(),
    };
    let results = [
        with(Outcome::Fail, FailClass::Rollback, "failed"),
        with(Outcome::Fail, hook, "the pre-upgrade hook failed"),
    ];
    assert_eq!(
        recommend(Verdict::Failed, &results, &ctx(&key, &history, &bakes)),
        RecommendedAction::FixHook {
            hook: "gim-migrate".into(),
            command: "kubectl logs job/gim-migrate -n gim".into()
        }
    );
}

/// A dependency inside its `for:` (or not answering) may be the cause: no rollback yet.
#[test]
fn no_rollback_while_a_dependency_is_not_confirmed_healthy() {
    use ReleaseStatus::*;
    let key = ReleaseKey::new("gim", "gim");
    let history = [(3, Superseded), (4, Deployed)];
    let bakes = BTreeMap::new();
    let pods = with(Outcome::Fail, FailClass::Rollback, "pods crash");
    for dep in [Outcome::Pending, Outcome::Inconclusive] {
        let kafka = CheckResult::new(
            "dependency:kafka",
            dep,
            "kafka is 0 (must be at least 1); failing for 10s of the 1m",
        );
        let action = recommend(
            Verdict::Failed,
            &[pods.clone(), kafka],
            &ctx(&key, &history, &bakes),
        );
        assert!(
            matches!(&action, RecommendedAction::Investigate { reason }
                if reason.contains("kafka is not confirmed healthy")
                && reason.contains("helm rollback gim 3 -n gim --timeout 15m")),
            "{action:?}"
        );
    }
    let kafka_ok = CheckResult::new("dependency:kafka", Outcome::Pass, "kafka is 3");
    assert!(matches!(
        recommend(
            Verdict::Failed,
            &[pods, kafka_ok],
            &ctx(&key, &history, &bakes)
        ),
        RecommendedAction::Rollback { target: 3, .. }
    ));
}

#[test]
fn the_rollback_prefers_a_revision_that_passed_its_bake() {
    use ReleaseStatus::*;
    let key = ReleaseKey::new("gim", "gim");
    let history = [
        (1, Superseded),
        (2, Superseded),
        (3, Superseded),
        (4, Deployed),
    ];
    let bakes = BTreeMap::from([(1, BakeRecord::Healthy), (3, BakeRecord::Failed)]);
    let action = recommend(
        Verdict::Failed,
        &[with(Outcome::Fail, FailClass::Rollback, "x")],
        &ctx(&key, &history, &bakes),
    );
    assert!(
        matches!(
            action,
            RecommendedAction::Rollback {
                target: 1,
                basis: TargetBasis::PassedBake,
                ..
            }
        ),
        "{action:?}"
    );
}

fn outcome_strategy() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Pass),
        Just(Outcome::Pending),
        Just(Outcome::Warn),
        Just(Outcome::Inconclusive)
    ]
}

proptest! {
    /// Any mix of checks that never failed on real data, plus any number of checks whose
    /// queries only ever failed, never yields a failed verdict or a rollback.
    #[test]
    fn provider_errors_never_yield_failed(
        judged in proptest::collection::vec(outcome_strategy(), 0..6),
        erroring in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 1..8), 1..5),
        bake_over in any::<bool>(),
    ) {
        let mut results: Vec<CheckResult> = judged.into_iter().map(r).collect();
        for (i, errors) in erroring.into_iter().enumerate() {
            let mut state = ProviderState::default();
            let mut last = None;
            for bad in errors {
                let e = if bad { ProviderError::BadQuery("x".into()) } else { ProviderError::Unavailable("down".into()) };
                last = Some(state.failure(format!("p{i}"), &e, 4));
            }
            results.extend(last);
        }
        let v = verdict(&results, bake_over);
        prop_assert_ne!(v, Verdict::Failed);
        let key = ReleaseKey::new("gim", "gim");
        let history = [(1, ReleaseStatus::Superseded), (2, ReleaseStatus::Deployed)];
        let bakes = BTreeMap::new();
        let c = ActionContext { revision: 2, ..ctx(&key, &history, &bakes) };
        let is_rollback = matches!(recommend(v, &results, &c), RecommendedAction::Rollback { .. });
        prop_assert!(!is_rollback);
    }
}

#[test]
fn the_rollback_command_names_a_non_default_storage_driver() {
    let key = ReleaseKey::new("gim", "gim");
    let timeout = Duration::from_secs(15 * 60);
    assert_eq!(
        rollback_command(&key, Storage::Secret, 3, timeout, false),
        "helm rollback gim 3 -n gim --timeout 15m"
    );
    assert_eq!(
        rollback_command(&key, Storage::ConfigMap, 3, timeout, false),
        "HELM_DRIVER=configmap helm rollback gim 3 -n gim --timeout 15m"
    );
}

#[test]
fn what_auto_mode_runs_always_names_its_target_and_waits() {
    let key = ReleaseKey::new("gim", "gim");
    let timeout = Duration::from_secs(900);
    assert_eq!(
        rollback_args(&key, 1, timeout, true).join(" "),
        "rollback gim 1 -n gim --wait --timeout 15m"
    );
    // The command shown in the record is the one that runs.
    assert_eq!(
        rollback_command(&key, Storage::Secret, 1, timeout, true),
        "helm rollback gim 1 -n gim --wait --timeout 15m"
    );
}
