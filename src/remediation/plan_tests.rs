//! The planner's rules with plain values: prechecks, targets, budget, cooldown and every hold.

use super::*;
use crate::checks::{CheckResult, FailClass, Outcome};
use crate::config::Config;
use crate::records::action::Phase;
use crate::release::ReleaseStatus::*;

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
}

fn key() -> ReleaseKey {
    ReleaseKey::new("gim", "gim")
}

fn config() -> Config {
    Config::parse("defaults: {mode: auto, rollback_timeout: 15m}", "t").unwrap()
}

fn rollback_action() -> RecommendedAction {
    RecommendedAction::Rollback {
        target: 1,
        basis: TargetBasis::PassedBake,
        command: "helm rollback gim 1 -n gim --timeout 15m".into(),
    }
}

fn failing() -> Vec<CheckResult> {
    vec![
        CheckResult::new("readiness", Outcome::Fail, "not Ready for 10m")
            .on_fail(FailClass::Rollback),
        CheckResult::new("lag", Outcome::Pass, "draining"),
    ]
}

fn record(bad: u32, phase: Phase, started: i64, new_revision: Option<u32>) -> ActionRecord {
    ActionRecord {
        bad_revision: bad,
        attempt: 1,
        action: ActionKind::Rollback,
        target: Some(1),
        command: "helm rollback gim 1 -n gim --wait --timeout 15m".into(),
        holder: "a".into(),
        started: at(started),
        phase,
        finished: None,
        new_revision,
        detail: None,
        process: None,
        taken_over_from: None,
        about: None,
    }
}

struct Case {
    history: Vec<(u32, ReleaseStatus)>,
    rollbacks: BTreeMap<u32, u32>,
    bakes: BTreeMap<u32, BakeRecord>,
    records: Vec<ActionRecord>,
    recent: u32,
    in_progress: bool,
    revision: u32,
    manager: Option<crate::remediation::gitops::Manager>,
    refused: Vec<(u32, String)>,
    reapplied: Option<Reapplied>,
}

impl Case {
    /// Revision 1 passed its bake (as judged by upgrade-guard).
    fn new(history: &[(u32, ReleaseStatus)], revision: u32) -> Self {
        Self {
            history: history.to_vec(),
            rollbacks: BTreeMap::new(),
            bakes: BTreeMap::from([(1, BakeRecord::Healthy)]),
            records: vec![],
            recent: 0,
            in_progress: false,
            revision,
            manager: None,
            refused: vec![],
            reapplied: None,
        }
    }

    fn plan(&self) -> Plan {
        let c = config();
        let facts = Facts {
            release: &key(),
            revision: self.revision,
            storage: Storage::Secret,
            history: &self.history,
            rollbacks: &self.rollbacks,
            bakes: &self.bakes,
            refused: &self.refused,
            reapplied: self.reapplied.as_ref(),
            records: &self.records,
            recent_actions: self.recent,
            in_progress: self.in_progress,
            restart_workload: Some("deployment/gim".into()),
            manager: self.manager.clone(),
            now: at(100),
        };
        plan(
            ActionKind::Rollback,
            &facts,
            &c.policy_for(&key()),
            &c.actions,
        )
    }

    fn reason(&self) -> Option<HoldReason> {
        match self.plan() {
            Plan::Hold(h) => Some(h.reason),
            _ => None,
        }
    }
}

#[test]
fn a_failed_revision_with_every_rule_met_is_rolled_back_to_the_revision_that_passed_its_bake() {
    let mut c = Case::new(&[(1, Superseded), (2, Superseded), (3, Deployed)], 3);
    c.bakes = BTreeMap::from([(1, BakeRecord::Healthy)]);
    match c.plan() {
        Plan::Rollback {
            target,
            basis,
            command,
        } => {
            assert_eq!((target, basis), (1, TargetBasis::PassedBake));
            assert_eq!(command, "helm rollback gim 1 -n gim --wait --timeout 15m");
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 20.6 and 20.7: in `auto`, a target is a revision upgrade-guard judged healthy;
/// "the newest that ran" is named to the operator with its command, never run.
#[test]
fn without_a_healthy_bake_record_there_is_no_automatic_target() {
    let mut c = Case::new(&[(1, Superseded), (2, Failed), (3, Deployed)], 3);
    c.bakes.clear();
    let Plan::Hold(h) = c.plan() else {
        panic!("{:?}", c.plan())
    };
    assert_eq!(h.reason, HoldReason::NoTarget);
    assert!(
        h.detail.contains("revision 1 ran")
            && h.detail
                .contains("helm rollback gim 1 -n gim --wait --timeout 15m"),
        "{}",
        h.detail
    );
    // A degraded bake ran but did not pass.
    c.bakes = BTreeMap::from([(1, BakeRecord::Degraded)]);
    assert_eq!(c.reason(), Some(HoldReason::NoTarget));
}

/// Issue 20.6: the record that would be the target was rewritten after its bake: held with
/// its own reason, even though an older trusted one exists.
#[test]
fn a_refused_record_that_would_be_the_target_holds() {
    let mut c = Case::new(&[(1, Superseded), (2, Superseded), (3, Deployed)], 3);
    c.refused = vec![(
        2,
        "its Helm record changed after upgrade-guard judged it healthy".into(),
    )];
    let Plan::Hold(h) = c.plan() else {
        panic!("{:?}", c.plan())
    };
    assert_eq!(h.reason, HoldReason::TargetRefused);
    assert!(
        h.detail
            .contains("revision 2 would be the rollback target, but its Helm record changed"),
        "{}",
        h.detail
    );
    // A refused record older than the target is no matter.
    let mut c = Case::new(&[(1, Superseded), (2, Superseded), (3, Deployed)], 3);
    c.bakes = BTreeMap::from([(2, BakeRecord::Healthy)]);
    c.refused = vec![(1, "changed".into())];
    assert!(matches!(c.plan(), Plan::Rollback { target: 2, .. }));
}

/// Issue 20.4: the version upgrade-guard rolled back, applied again, is held with words.
#[test]
fn the_rolled_back_version_applied_again_is_held() {
    let mut c = Case::new(
        &[
            (1, Superseded),
            (2, Superseded),
            (3, Superseded),
            (4, Deployed),
        ],
        4,
    );
    c.records = vec![record(2, Phase::Verified, 0, Some(3))];
    c.rollbacks = BTreeMap::from([(3, 1)]);
    c.reapplied = Some(Reapplied {
        rolled_back: 2,
        at: at(0),
        version: "gim-2".into(),
        values_compared: true,
    });
    let Plan::Hold(h) = c.plan() else {
        panic!("{:?}", c.plan())
    };
    assert_eq!(h.reason, HoldReason::Reapplied);
    assert!(
        h.detail.contains("revision 4 applies again"),
        "{}",
        h.detail
    );
    c.reapplied = None;
    assert!(matches!(c.plan(), Plan::Rollback { target: 1, .. }));
}

#[test]
fn each_rule_holds_with_its_reason() {
    let h = [(1, Superseded), (2, Deployed)];
    // A newer revision was written since the verdict.
    let c = Case::new(&[(1, Superseded), (2, Superseded), (3, Deployed)], 2);
    assert_eq!(c.reason(), Some(HoldReason::NotLatest));
    // Someone else's Helm operation holds the release.
    let c = Case::new(&[(1, Superseded), (2, Deployed), (3, PendingRollback)], 2);
    assert_eq!(c.reason(), Some(HoldReason::ReleaseLocked));
    let c = Case::new(&[(1, Superseded), (2, PendingUpgrade)], 2);
    assert_eq!(c.reason(), Some(HoldReason::ReleaseLocked));
    assert_eq!(Case::new(&[], 2).reason(), Some(HoldReason::Uninstalled));
    // Already attempted once for this bad revision (whatever came of it).
    for phase in [
        Phase::Running,
        Phase::Failed,
        Phase::Interrupted,
        Phase::Done,
    ] {
        let mut c = Case::new(&h, 2);
        c.records = vec![record(2, phase, 0, None)];
        assert_eq!(c.reason(), Some(HoldReason::AlreadyAttempted), "{phase:?}");
    }
    // A cancelled attempt (never ran) does not count, and neither does its start time.
    let mut c = Case::new(&h, 2);
    c.records = vec![record(2, Phase::Cancelled, 99, None)];
    assert!(matches!(c.plan(), Plan::Rollback { .. }));
    // Cooldown: an action on another revision of this release 30 minutes ago (1h).
    let mut c = Case::new(&[(1, Superseded), (5, Superseded), (6, Deployed)], 6);
    c.records = vec![record(4, Phase::Verified, 70, Some(5))];
    assert_eq!(c.reason(), Some(HoldReason::Cooldown));
    c.records = vec![record(4, Phase::Verified, 30, Some(5))];
    assert!(matches!(c.plan(), Plan::Rollback { .. }), "cooldown over");
    // Budget across releases.
    let mut c = Case::new(&h, 2);
    c.recent = 3;
    assert_eq!(c.reason(), Some(HoldReason::Budget));
    // Something runs already.
    let mut c = Case::new(&h, 2);
    c.in_progress = true;
    assert_eq!(c.reason(), Some(HoldReason::InProgress));
    // Nothing ran before.
    let mut c = Case::new(&[(1, Failed), (2, Deployed)], 2);
    c.bakes.clear();
    assert_eq!(c.reason(), Some(HoldReason::NoTarget));
}

#[test]
fn a_rollback_revision_is_never_rolled_back_automatically() {
    // upgrade-guard's own rollback (3 = rollback of 2 to 1) failed in turn.
    let mut c = Case::new(&[(1, Superseded), (2, Superseded), (3, Deployed)], 3);
    c.records = vec![record(2, Phase::Done, 0, Some(3))];
    c.rollbacks = BTreeMap::from([(3, 1)]);
    let Plan::Hold(h) = c.plan() else {
        panic!("rolled back a rollback")
    };
    assert_eq!(h.reason, HoldReason::RollbackRevision);
    assert!(
        h.detail
            .contains("upgrade-guard's own rollback of revision 2"),
        "{}",
        h.detail
    );
    // Someone's manual rollback, likewise.
    let mut c = Case::new(&[(1, Superseded), (2, Superseded), (3, Deployed)], 3);
    c.rollbacks = BTreeMap::from([(3, 1)]);
    assert_eq!(c.reason(), Some(HoldReason::RollbackRevision));
}

#[test]
fn a_revision_abandoned_by_an_earlier_rollback_is_never_the_target() {
    // 1 ran, 2 was rolled back (3 = rollback to 1), 4 is the new failure: 3 runs the
    // content of 1; 2 was abandoned.
    let mut c = Case::new(
        &[
            (1, Superseded),
            (2, Superseded),
            (3, Superseded),
            (4, Deployed),
        ],
        4,
    );
    c.rollbacks = BTreeMap::from([(3, 1)]);
    c.bakes = BTreeMap::from([(2, BakeRecord::Failed), (3, BakeRecord::Healthy)]);
    assert!(
        matches!(c.plan(), Plan::Rollback { target: 3, .. }),
        "{:?}",
        c.plan()
    );
    // Even with no record at all of 2's bake, and 3 failed.
    let mut c = Case::new(
        &[(1, Superseded), (2, Superseded), (3, Failed), (4, Deployed)],
        4,
    );
    c.rollbacks = BTreeMap::from([(3, 1)]);
    assert!(
        matches!(c.plan(), Plan::Rollback { target: 1, .. }),
        "{:?}",
        c.plan()
    );
}

#[test]
fn max_per_revision_above_one_allows_that_many() {
    let c = Case::new(&[(1, Superseded), (2, Deployed)], 2);
    let config = Config::parse(
        "defaults: {mode: auto, auto: {max_per_revision: 2, cooldown: 1m}}",
        "t",
    )
    .unwrap();
    let policy = config.policy_for(&key());
    let records = vec![record(2, Phase::Failed, 0, None)];
    let facts = Facts {
        release: &key(),
        revision: 2,
        storage: Storage::Secret,
        history: &c.history,
        rollbacks: &c.rollbacks,
        bakes: &c.bakes,
        refused: &[],
        reapplied: None,
        records: &records,
        recent_actions: 0,
        in_progress: false,
        restart_workload: None,
        manager: None,
        now: at(100),
    };
    assert!(matches!(
        plan(ActionKind::Rollback, &facts, &policy, &config.actions),
        Plan::Rollback { .. }
    ));
    let records = vec![record(2, Phase::Failed, 0, None), {
        let mut r = record(2, Phase::Failed, 10, None);
        r.attempt = 2;
        r
    }];
    let facts = Facts {
        records: &records,
        ..facts
    };
    assert!(matches!(
        plan(ActionKind::Rollback, &facts, &policy, &config.actions),
        Plan::Hold(Hold {
            reason: HoldReason::AlreadyAttempted,
            ..
        })
    ));
}

#[test]
fn the_precheck_decides_without_reading_anything() {
    let results = failing();
    let action = rollback_action();
    assert_eq!(
        precheck(Verdict::Failed, &action, &results, true, false),
        Precheck::Candidate(ActionKind::Rollback)
    );
    for v in [
        Verdict::Healthy,
        Verdict::Progressing,
        Verdict::Degraded,
        Verdict::Inconclusive,
    ] {
        assert_eq!(
            precheck(v, &action, &results, true, false),
            Precheck::Nothing
        );
    }
    let reason = |p: Precheck| match p {
        Precheck::Hold(h) => Some((h.reason, h.detail)),
        _ => None,
    };
    // Not the leader.
    assert_eq!(
        reason(precheck(Verdict::Failed, &action, &results, false, false)).map(|r| r.0),
        Some(HoldReason::NotLeader)
    );
    // A dependency down, named.
    let dep = RecommendedAction::FixDependency {
        name: "kafka".into(),
    };
    let (r, detail) = reason(precheck(Verdict::Failed, &dep, &results, true, false)).unwrap();
    assert_eq!(r, HoldReason::DependencyDown);
    assert!(detail.contains("kafka"), "{detail}");
    // A dependency not confirmed healthy (within its `for:`), even with a rollback action.
    let mut with_dep = failing();
    with_dep.push(CheckResult::new(
        "dependency:postgresql",
        Outcome::Pending,
        "pg_up is 0",
    ));
    let (r, detail) = reason(precheck(Verdict::Failed, &action, &with_dep, true, false)).unwrap();
    assert_eq!(r, HoldReason::DependencyDown);
    assert!(detail.contains("postgresql"), "{detail}");
    // Prometheus down: a check that cannot be judged because its source fails now holds
    // any unattended action.
    let mut partial = failing();
    partial[1] =
        CheckResult::new("lag", Outcome::Inconclusive, "Prometheus did not answer").stale();
    let (r, detail) = reason(precheck(Verdict::Failed, &action, &partial, true, false)).unwrap();
    assert_eq!(r, HoldReason::EvidenceIncomplete);
    assert!(detail.contains("Prometheus did not answer"), "{detail}");
    // Issue 19.15: a check that can never answer although its source does (a Job deleted by
    // its TTL) does not hold the failure the other checks established.
    let mut unanswerable = failing();
    unanswerable[1] = CheckResult::new(
        "job:seed",
        Outcome::Inconclusive,
        "Job seed not found (deleted after it finished?)",
    );
    assert_eq!(
        precheck(Verdict::Failed, &action, &unanswerable, true, false),
        Precheck::Candidate(ActionKind::Rollback)
    );
    // A query that failed this round: the check replays its last answer (a pass) for the
    // verdict, but an unattended action waits for a current one.
    let mut replayed = failing();
    replayed[1] = crate::checks::provider::replay(&replayed[1], "query failed (1 of 4)");
    assert_eq!(replayed[1].outcome, Outcome::Pass);
    let (r, detail) = reason(precheck(Verdict::Failed, &action, &replayed, true, false)).unwrap();
    assert_eq!(r, HoldReason::EvidenceIncomplete);
    assert!(
        detail.contains("not judged from a current answer"),
        "{detail}"
    );
    // No automatic remedy.
    let hook = RecommendedAction::FixHook {
        hook: "pre".into(),
        command: "kubectl logs job/pre".into(),
    };
    assert_eq!(
        reason(precheck(Verdict::Failed, &hook, &results, true, false)).map(|r| r.0),
        Some(HoldReason::NeedsOperator)
    );
    // The migration restart only when switched on.
    let restart = RecommendedAction::RestartPod {
        command: "kubectl rollout restart deployment/gim -n gim".into(),
    };
    assert_eq!(
        reason(precheck(Verdict::Failed, &restart, &results, true, false)).map(|r| r.0),
        Some(HoldReason::NeedsOperator)
    );
    assert_eq!(
        precheck(Verdict::Failed, &restart, &results, true, true),
        Precheck::Candidate(ActionKind::RestartPod)
    );
    // The verdict engine's own hold (the revision is no longer current).
    let stale = RecommendedAction::Hold {
        reason: "revision 2 is no longer the latest".into(),
    };
    assert_eq!(
        reason(precheck(Verdict::Failed, &stale, &results, true, false)).map(|r| r.0),
        Some(HoldReason::NotLatest)
    );
}

#[test]
fn every_reason_has_a_distinct_label() {
    let labels: std::collections::BTreeSet<_> =
        HoldReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), HoldReason::ALL.len());
}

/// Issue 19.4: right after helm marked a revision failed, helm itself (`--atomic`) or a
/// controller may be rolling it back: no automatic action races it, for the settle period.
#[test]
fn a_revision_helm_just_marked_failed_settles_before_any_action() {
    use crate::release::ReleaseStatus;
    let t = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
    let settle = std::time::Duration::from_secs(60);
    let h = settling(ReleaseStatus::Failed, t(0), t(10), settle).unwrap();
    assert_eq!(h.reason, HoldReason::Settling);
    assert!(h.reason.is_transient());
    assert!(h.detail.contains("10s ago"), "{}", h.detail);
    assert_eq!(settling(ReleaseStatus::Failed, t(0), t(60), settle), None);
    assert_eq!(settling(ReleaseStatus::Deployed, t(0), t(10), settle), None);
}

#[test]
fn a_release_a_gitops_controller_manages_is_never_rolled_back_behind_it() {
    use crate::remediation::gitops::Manager;
    let mut c = Case::new(&[(1, Superseded), (2, Failed)], 2);
    c.bakes = BTreeMap::from([(1, BakeRecord::Healthy)]);
    assert!(matches!(c.plan(), Plan::Rollback { target: 1, .. }));
    c.manager = Some(Manager::Flux {
        namespace: "flux-system".into(),
        name: "gim".into(),
    });
    let Plan::Hold(h) = c.plan() else {
        panic!("rolled back behind Flux")
    };
    assert_eq!(h.reason, HoldReason::GitOpsManaged);
    assert!(
        h.detail
            .contains("flux suspend helmrelease gim -n flux-system"),
        "{}",
        h.detail
    );
    assert!(!HoldReason::GitOpsManaged.is_transient());
}
