//! The alert set and the resend ledger, with plain values.

use super::*;
use crate::checks::Threshold;
use crate::daemon::state::Judgement;
use crate::release::labels::Storage;
use crate::release::rollback_target::TargetBasis;
use crate::release::{ReleaseKey, ReleaseStatus};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn view(verdict: Verdict, is_final: bool, results: Vec<CheckResult>) -> ReleaseView {
    ReleaseView {
        release: ReleaseKey::new("gim", "gim"),
        storage: Storage::Secret,
        revision: 3,
        status: ReleaseStatus::Deployed,
        event: "upgraded",
        chart: None,
        started: Some(t(0)),
        judgement: Some(Judgement {
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
    let alerts = desired(
        [&v].into_iter(),
        Some("https://grafana/d/ug?var-namespace={{namespace}}&var-release={{release}}"),
    );
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    let labels: Vec<(&str, &str)> = a.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
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
    // Progressing and a degraded bake still running fire nothing.
    assert!(
        desired(
            [&view(Verdict::Progressing, false, vec![])].into_iter(),
            None
        )
        .is_empty()
    );
    let degraded = view(Verdict::Degraded, false, vec![lag(Outcome::Warn, 1.0)]);
    assert!(desired([&degraded].into_iter(), None).is_empty());
    let degraded = view(Verdict::Degraded, true, vec![lag(Outcome::Warn, 1.0)]);
    assert_eq!(
        desired([&degraded].into_iter(), None)[0].labels["severity"],
        "warning"
    );
}

#[test]
fn the_ledger_resends_refreshes_ends_at_and_resolves_for_five_minutes() {
    let resend = Duration::from_secs(60);
    let mut ledger = Ledger::new(resend);
    let failing = || {
        desired(
            [&view(Verdict::Failed, false, vec![lag(Outcome::Fail, 2.5)])].into_iter(),
            None,
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
        None,
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
