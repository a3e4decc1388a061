//! What a restart shows again, from records and history as plain values.

use super::*;
use crate::release::ReleaseStatus;
use crate::release::labels::Storage;
use crate::test_support::{policy, summary};
use crate::verdict::RecommendedAction;

fn entry(verdict: BakeRecord, failed: &[&str]) -> BakeEntry {
    BakeEntry {
        verdict,
        at: "2026-11-25T12:00:00Z".parse().unwrap(),
        chart: "app-1.0.0".into(),
        failed_checks: failed.iter().map(ToString::to_string).collect(),
        unanswered_checks: vec![],
        content: String::new(),
        install: None,
        during_bake: false,
        accepted: None,
        accepted_over: None,
    }
}

fn row(revision: u32, status: ReleaseStatus) -> HistoryRow {
    let mut s = summary(&[], &[]);
    s.revision = revision;
    s.status = status;
    HistoryRow {
        revision,
        storage: Storage::Secret,
        status,
        detail: RowDetail::Decoded(Box::new(s)),
    }
}

fn key() -> ReleaseKey {
    ReleaseKey::new("ns", "app")
}

#[test]
fn a_failure_recorded_last_is_shown_failed_again_with_its_checks_and_a_rollback() {
    let records = BTreeMap::from([
        (1, entry(BakeRecord::Healthy, &[])),
        (2, entry(BakeRecord::Failed, &["pending_pods", "lag"])),
    ]);
    let rows = [
        row(1, ReleaseStatus::Superseded),
        row(2, ReleaseStatus::Deployed),
    ];
    let v = restored_view(&key(), &records, &rows, &policy(), Mode::Auto).unwrap();
    assert_eq!(
        (v.revision, v.event, v.mode),
        (2, EventName::Restored, Some(Mode::Auto))
    );
    let j = v.judgement.unwrap();
    assert_eq!((j.verdict, j.is_final), (Verdict::Failed, true));
    let checks: Vec<String> = j.results.iter().map(|r| r.check.to_string()).collect();
    assert_eq!(checks, ["pending_pods", "lag"]);
    assert!(j.results.iter().all(|r| r.outcome == Outcome::Fail));
    match j.action {
        RecommendedAction::Rollback { target, .. } => assert_eq!(target, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_is_restored_unless_the_latest_record_is_a_failure_of_the_latest_revision() {
    let failed = BTreeMap::from([(2, entry(BakeRecord::Failed, &[]))]);
    let healthy = BTreeMap::from([(2, entry(BakeRecord::Healthy, &[]))]);
    let at_2 = [
        row(1, ReleaseStatus::Superseded),
        row(2, ReleaseStatus::Deployed),
    ];
    let at_3 = [
        row(2, ReleaseStatus::Superseded),
        row(3, ReleaseStatus::Deployed),
    ];
    assert!(restored_view(&key(), &healthy, &at_2, &policy(), Mode::Recommend).is_none());
    assert!(
        restored_view(&key(), &failed, &at_3, &policy(), Mode::Recommend).is_none(),
        "a newer revision replaced it"
    );
    let undecodable = [HistoryRow {
        detail: RowDetail::Undecodable {
            decode_error: "gzip".into(),
        },
        ..row(2, ReleaseStatus::Deployed)
    }];
    assert!(restored_view(&key(), &failed, &undecodable, &policy(), Mode::Recommend).is_none());
    // Without the names of the checks, one result says the verdict was recorded.
    let v = restored_view(&key(), &failed, &at_2, &policy(), Mode::Recommend).unwrap();
    let checks: Vec<String> = v
        .judgement
        .unwrap()
        .results
        .into_iter()
        .map(|r| r.check.to_string())
        .collect();
    assert_eq!(checks, ["recorded_verdict"]);
}

#[test]
fn a_restored_failure_whose_release_is_held_by_helm_recommends_nothing_now() {
    let records = BTreeMap::from([(2, entry(BakeRecord::Failed, &["lag"]))]);
    let rows = [
        row(1, ReleaseStatus::Superseded),
        row(2, ReleaseStatus::PendingRollback),
    ];
    let v = restored_view(&key(), &records, &rows, &policy(), Mode::Recommend).unwrap();
    assert!(
        matches!(v.judgement.unwrap().action, RecommendedAction::Hold { .. }),
        "a Helm operation holds the release"
    );
}

/// Issue 19.14: an evaluation that ended `inconclusive` is served again after a restart,
/// inconclusive and overdue (alerted), with the checks that could not be judged.
#[test]
fn an_inconclusive_recorded_last_is_shown_and_alerted_again() {
    let mut closed = entry(BakeRecord::Inconclusive, &[]);
    closed.unanswered_checks = vec!["custom:errors".into()];
    let records = BTreeMap::from([(1, entry(BakeRecord::Healthy, &[])), (2, closed)]);
    let rows = [
        row(1, ReleaseStatus::Superseded),
        row(2, ReleaseStatus::Deployed),
    ];
    let v = restored_view(&key(), &records, &rows, &policy(), Mode::Recommend).unwrap();
    let j = v.judgement.unwrap();
    assert_eq!(
        (j.verdict, j.is_final, j.overdue),
        (Verdict::Inconclusive, true, true)
    );
    assert_eq!(j.results.len(), 1);
    assert_eq!(j.results[0].check.to_string(), "custom:errors");
    assert_eq!(j.results[0].outcome, Outcome::Inconclusive);
    assert!(
        j.results[0]
            .summary
            .contains("could not be judged by the end of its evaluation"),
        "{}",
        j.results[0].summary
    );
}
