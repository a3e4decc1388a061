//! The alert set and the resend ledger, with plain values.

use super::*;
use crate::checks::Threshold;
use crate::records::action::{ActionKind, ActionRecord};
use crate::release::labels::Storage;
use crate::release::rollback_target::TargetBasis;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::state::Judgement;
use crate::verdict::RecommendedAction;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn view(verdict: Verdict, is_final: bool, results: Vec<CheckResult>) -> ReleaseView {
    ReleaseView {
        release: ReleaseKey::new("gim", "gim"),
        storage: Storage::Secret,
        revision: 3,
        status: ReleaseStatus::Deployed,
        event: crate::release::event::EventName::Upgraded,
        chart: None,
        previous_chart: None,
        started: Some(t(0)),
        judgement: Some(Judgement {
            inconclusive_since: None,
            overdue: false,
            verdict,
            action: RecommendedAction::Rollback {
                target: 2,
                basis: TargetBasis::PassedBake,
                command: "helm rollback gim 2 -n gim --timeout 15m".into(),
            },
            results,
            notes: vec![],
            bake_ends: t(3600),
            evaluated_at: t(60),
            is_final,
        }),
        problem: None,
        mode: None,
        automation: None,
        after_bake: None,
        controls: Default::default(),
    }
}

fn lag(outcome: Outcome, value: f64) -> CheckResult {
    let mut r = CheckResult::new("lag", outcome, "the backlog keeps growing");
    r.value = Some(value);
    r.threshold = Some(Threshold {
        bound: Bound::Max,
        value: 0.5,
    });
    r
}

#[test]
fn a_failed_revision_fires_one_critical_alert_per_failing_check_with_stable_labels() {
    let v = view(
        Verdict::Failed,
        false,
        vec![
            lag(Outcome::Fail, 2.5),
            CheckResult::new("pending_pods", Outcome::Pass, "none"),
        ],
    );
    let links = Links {
        dashboard: Some(
            "https://grafana/d/ug?var-namespace={{namespace}}&var-release={{release}}".into(),
        ),
        runbook: Some("https://docs.example/alerts.md".into()),
        external: Some("http://ug:8080".into()),
    };
    let alerts = desired([&v].into_iter(), &links);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    let labels: Vec<(&str, &str)> = a
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("alertname", "UpgradeFailed"),
            ("check", "lag"),
            ("namespace", "gim"),
            ("release", "gim"),
            ("revision", "3"),
            ("severity", "critical"),
        ]
    );
    assert_eq!(
        a.annotations["recommended_action"],
        "roll back to revision 2: helm rollback gim 2 -n gim --timeout 15m"
    );
    assert_eq!(
        a.annotations["description"],
        "the backlog keeps growing (value 2.5, threshold <= 0.5)"
    );
    assert_eq!(
        a.annotations["dashboard_url"],
        "https://grafana/d/ug?var-namespace=gim&var-release=gim"
    );
    assert_eq!(
        a.annotations["runbook_url"],
        "https://docs.example/alerts.md#upgradefailed"
    );
    assert_eq!(
        a.generator_url.as_deref(),
        Some("http://ug:8080/api/v1/releases?namespace=gim&release=gim")
    );
    // Sent to Alertmanager as its `generatorURL`.
    let sent = Ledger::new(Duration::from_secs(60))
        .update(alerts.clone(), t(0))
        .unwrap();
    let json = serde_json::to_value(&sent[0]).unwrap();
    assert_eq!(
        json["generatorURL"],
        "http://ug:8080/api/v1/releases?namespace=gim&release=gim"
    );
    // Progressing and a degraded bake still running fire nothing.
    assert!(
        desired(
            [&view(Verdict::Progressing, false, vec![])].into_iter(),
            &Links::default()
        )
        .is_empty()
    );
    let degraded = view(Verdict::Degraded, false, vec![lag(Outcome::Warn, 1.0)]);
    assert!(desired([&degraded].into_iter(), &Links::default()).is_empty());
    let degraded = view(Verdict::Degraded, true, vec![lag(Outcome::Warn, 1.0)]);
    assert_eq!(
        desired([&degraded].into_iter(), &Links::default())[0].labels["severity"],
        "warning"
    );
}

/// Issue 19.13: what broke after the bake fires `UpgradeRegressedAfterBake` (critical) per
/// finding, with the command and the words that nothing is done automatically; a healthy
/// bake verdict fires nothing of its own, nor a watch that found nothing.
#[test]
fn a_revision_that_broke_after_its_bake_fires_its_own_alert() {
    let mut v = view(Verdict::Healthy, true, vec![]);
    let watch = |verdict, outcome| crate::state::AfterBakeView {
        since: t(3600),
        until: t(3600 + 6 * 3600),
        judgement: Judgement {
            verdict,
            results: vec![CheckResult::new(
                "restarts",
                outcome,
                "5 container restart(s) since the bake ended, more than the 3 tolerated: gim-0 5",
            )],
            evaluated_at: t(3600 + 7200),
            ..v.judgement.clone().unwrap()
        },
    };
    v.after_bake = Some(Box::new(watch(Verdict::Healthy, Outcome::Pass)));
    assert!(desired([&v].into_iter(), &Links::default()).is_empty());
    v.after_bake = Some(Box::new(watch(Verdict::Failed, Outcome::Fail)));
    let alerts = desired([&v].into_iter(), &Links::default());
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        (
            a.labels["alertname"].as_str(),
            a.labels["severity"].as_str(),
            a.labels["check"].as_str(),
            a.labels["revision"].as_str()
        ),
        ("UpgradeRegressedAfterBake", "critical", "restarts", "3")
    );
    assert_eq!(
        a.annotations["summary"],
        "gim/gim revision 3 broke 2h after its bake: restarts"
    );
    assert!(
        a.annotations["description"].contains("upgrade-guard does not act on this automatically"),
        "{}",
        a.annotations["description"]
    );
    assert_eq!(
        a.annotations["recommended_action"],
        "roll back to revision 2: helm rollback gim 2 -n gim --timeout 15m"
    );
}

#[test]
fn the_ledger_resends_refreshes_ends_at_and_resolves_for_five_minutes() {
    let resend = Duration::from_secs(60);
    let mut ledger = Ledger::new(resend);
    let failing = || {
        desired(
            [&view(Verdict::Failed, false, vec![lag(Outcome::Fail, 2.5)])].into_iter(),
            &Links::default(),
        )
    };
    // Fires at once.
    let batch = ledger.update(failing(), t(0)).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!((batch[0].starts_at, batch[0].ends_at), (t(0), t(240)));
    // Nothing new within the resend interval: nothing sent.
    assert_eq!(ledger.update(failing(), t(30)), None);
    // Re-sent after it, same start, endsAt moved on.
    let batch = ledger.update(failing(), t(60)).unwrap();
    assert_eq!((batch[0].starts_at, batch[0].ends_at), (t(0), t(300)));
    // A changed value (annotation) is sent at once, still the same alert.
    let changed = desired(
        [&view(Verdict::Failed, false, vec![lag(Outcome::Fail, 3.5)])].into_iter(),
        &Links::default(),
    );
    let batch = ledger.update(changed, t(70)).unwrap();
    assert_eq!(batch[0].starts_at, t(0));
    assert!(batch[0].annotations["description"].contains("3.5"));
    // Resolved: sent at once with endsAt = now, then re-sent for 5 minutes, then dropped.
    let batch = ledger.update(vec![], t(100)).unwrap();
    assert_eq!(batch[0].ends_at, t(100));
    assert_eq!(ledger.firing(), 0);
    assert_eq!(ledger.update(vec![], t(130)), None);
    assert_eq!(ledger.update(vec![], t(160)).unwrap()[0].ends_at, t(100));
    assert_eq!(ledger.update(vec![], t(400)), None);
    // Firing again later is a new alert (new start).
    let batch = ledger.update(failing(), t(500)).unwrap();
    assert_eq!(batch[0].starts_at, t(500));
}

fn record(phase: Phase, new_revision: Option<u32>) -> ActionRecord {
    ActionRecord {
        bad_revision: 2,
        attempt: 1,
        action: ActionKind::Rollback,
        target: Some(1),
        command: "helm rollback gim 1 -n gim --wait --timeout 15m".into(),
        holder: "upgrade-guard-0".into(),
        started: t(0),
        phase,
        finished: None,
        new_revision,
        detail: Some("what happened".into()),
        process: None,
        taken_over_from: None,
        about: None,
    }
}

fn names(alerts: &[Alert]) -> Vec<(&str, &str)> {
    alerts
        .iter()
        .map(|a| (a.labels["alertname"].as_str(), a.labels["check"].as_str()))
        .collect()
}

#[test]
fn automatic_actions_are_alerted_held_running_failed_and_verified() {
    use crate::remediation::automation::Automation;
    use crate::remediation::plan::{Hold, HoldReason, Plan};
    // Held: the failure alert says why, and a warning names the reason.
    let mut v = view(Verdict::Failed, false, vec![lag(Outcome::Fail, 2.5)]);
    v.automation = Some(Box::new(Automation {
        dry_run: false,
        plan: Some(Plan::Hold(Hold {
            reason: HoldReason::DependencyDown,
            detail: "the dependency kafka fails".into(),
        })),
        record: None,
    }));
    let alerts = desired([&v].into_iter(), &Links::default());
    assert_eq!(
        names(&alerts),
        [
            ("UpgradeAutoActionHeld", "automatic_action"),
            ("UpgradeFailed", "lag")
        ]
    );
    assert_eq!(alerts[0].annotations["hold_reason"], "dependency_down");
    assert_eq!(
        alerts[1].annotations["automatic_action"],
        "held (dependency_down): the dependency kafka fails"
    );
    // Running (revision 2 is the bad one here): only the failure, saying so.
    v.revision = 2;
    v.automation = Some(Box::new(Automation {
        dry_run: false,
        plan: None,
        record: Some(record(Phase::Running, None)),
    }));
    let alerts = desired([&v].into_iter(), &Links::default());
    assert_eq!(names(&alerts), [("UpgradeFailed", "lag")]);
    assert!(
        alerts[0].annotations["automatic_action"]
            .starts_with("automatic rollback of revision 2 to revision 1: running"),
        "{:?}",
        alerts[0].annotations
    );
    // Failed: critical, whatever the verdict of the revision now.
    for phase in [Phase::Failed, Phase::Interrupted, Phase::VerificationFailed] {
        let mut v = view(Verdict::Progressing, false, vec![]);
        v.automation = Some(Box::new(Automation {
            dry_run: false,
            plan: None,
            record: Some(record(phase, Some(3))),
        }));
        let alerts = desired([&v].into_iter(), &Links::default());
        assert_eq!(
            names(&alerts),
            [("UpgradeRollbackFailed", "rollback")],
            "{phase:?}"
        );
        assert_eq!(alerts[0].labels["severity"], "critical");
        assert!(alerts[0].annotations["description"].contains("what happened"));
    }
    // The revision the failed rollback wrote (helm marked it failed): the rollback's
    // failure, never an `UpgradeFailed` recommending one more rollback.
    for phase in [Phase::Failed, Phase::Interrupted, Phase::VerificationFailed] {
        let mut v = view(Verdict::Failed, false, vec![lag(Outcome::Fail, 2.5)]);
        v.automation = Some(Box::new(Automation {
            dry_run: false,
            plan: None,
            record: Some(record(phase, Some(v.revision))),
        }));
        let alerts = desired([&v].into_iter(), &Links::default());
        assert_eq!(
            names(&alerts),
            [("UpgradeRollbackFailed", "rollback")],
            "{phase:?}"
        );
    }
    // Verified: a warning while the rollback's revision is the latest (the upgrade has to be
    // fixed; `info` would be hidden by kube-prometheus-stack's InfoInhibitor).
    let mut v = view(Verdict::Healthy, true, vec![]);
    v.automation = Some(Box::new(Automation {
        dry_run: false,
        plan: None,
        record: Some(record(Phase::Verified, Some(3))),
    }));
    let alerts = desired([&v].into_iter(), &Links::default());
    assert_eq!(names(&alerts), [("UpgradeRolledBack", "rollback")]);
    assert_eq!(alerts[0].labels["severity"], "warning");
    // Dry run: says what would run.
    let mut v = view(Verdict::Failed, false, vec![lag(Outcome::Fail, 2.5)]);
    v.automation = Some(Box::new(Automation {
        dry_run: true,
        plan: Some(Plan::Rollback {
            target: 1,
            basis: TargetBasis::PassedBake,
            command: "helm rollback gim 1 -n gim --wait --timeout 15m".into(),
        }),
        record: None,
    }));
    let alerts = desired([&v].into_iter(), &Links::default());
    assert_eq!(
        alerts[0].annotations["automatic_action"],
        "dry run: would run helm rollback gim 1 -n gim --wait --timeout 15m"
    );
}

#[test]
fn notices_and_order_warnings_are_info_and_warning_alerts_with_the_command() {
    use crate::state::{Notice, NoticeKind};
    use crate::suite::{OrderProblem, OrderWarning};
    let gsp = ReleaseKey::new("gsp", "gsp");
    let notices = [Notice {
        release: gsp.clone(),
        revision: 4,
        kind: NoticeKind::Uninstalled,
        words: "gsp/gsp was uninstalled".into(),
        command: Some("kubectl delete cm --selector=app=gsp -n gsp".into()),
        at: t(0),
        until: t(3600),
    }];
    let alerts = notice_alerts(&notices, &Links::default());
    assert_eq!(names(&alerts), [("HelmReleaseUninstalled", "uninstalled")]);
    // With the command that deletes its leftovers it asks someone to act: a warning.
    assert_eq!(alerts[0].labels["severity"], "warning");
    assert_eq!(alerts[0].labels["revision"], "4");
    assert_eq!(
        alerts[0].annotations["recommended_action"],
        "kubectl delete cm --selector=app=gsp -n gsp"
    );
    // Without a command it only informs.
    let quiet = [Notice {
        command: None,
        ..notices[0].clone()
    }];
    assert_eq!(
        notice_alerts(&quiet, &Links::default())[0].labels["severity"],
        "info"
    );
    let warnings = [OrderWarning {
        release: ReleaseKey::new("gca", "gca"),
        revision: 7,
        look_first: gsp,
        problem: OrderProblem::WrongOrder,
        words: "gca/gca was upgraded before gsp/gsp".into(),
    }];
    let alerts = order_alerts(&warnings, &Links::default());
    assert_eq!(names(&alerts), [("UpgradeOutOfOrder", "suite_order")]);
    assert_eq!(alerts[0].labels["severity"], "warning");
    assert_eq!(alerts[0].labels["namespace"], "gca");
    assert_eq!(alerts[0].annotations["look_first"], "gsp/gsp");
}

/// Issue 19.14: an `inconclusive` that lasts longer than `notifications.inconclusive_after`
/// fires a warning per check that cannot be judged, with the reason; before that, nothing.
#[test]
fn an_overdue_inconclusive_fires_a_warning_with_the_reason() {
    let cannot = CheckResult::new(
        "lag",
        Outcome::Inconclusive,
        "Prometheus did not answer (4 failures in a row)",
    );
    let mut v = view(Verdict::Inconclusive, false, vec![cannot]);
    assert!(desired([&v].into_iter(), &Links::default()).is_empty());
    if let Some(j) = v.judgement.as_mut() {
        j.overdue = true;
    }
    let alerts = desired([&v].into_iter(), &Links::default());
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].labels["alertname"], "UpgradeInconclusive");
    assert_eq!(alerts[0].labels["severity"], "warning");
    assert_eq!(alerts[0].labels["check"], "lag");
    assert!(
        alerts[0].annotations["description"].contains("Prometheus did not answer"),
        "{alerts:#?}"
    );
}
