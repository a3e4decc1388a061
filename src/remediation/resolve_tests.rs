//! Verification and the resolution of records left unfinished, with plain values.

use super::*;
use crate::records::action::ActionKind;
use crate::release::ReleaseStatus;
use crate::test_support::{at, report, row};

/// A rollback of bad revision 2 to revision 1, started at minute 0 by `a`.
fn rollback(phase: Phase, new_revision: Option<u32>) -> ActionRecord {
    ActionRecord {
        new_revision,
        ..crate::test_support::action_record(2, phase)
    }
}

#[test]
fn a_rollbacks_revision_verifies_it_at_the_end_of_its_bake_or_fails_it_at_once() {
    let cases = [
        (Verdict::Failed, false, Some(Phase::VerificationFailed)),
        (Verdict::Failed, true, Some(Phase::VerificationFailed)),
        (Verdict::Healthy, true, Some(Phase::Verified)),
        (Verdict::Degraded, true, Some(Phase::Verified)),
        (Verdict::Healthy, false, None),
        (Verdict::Progressing, false, None),
        (Verdict::Inconclusive, true, None),
    ];
    for (verdict, is_final, want) in cases {
        assert_eq!(
            verification(verdict, is_final),
            want,
            "{verdict:?} final={is_final}"
        );
    }
}

#[test]
fn the_record_awaiting_verification_is_the_rollback_that_created_the_revision() {
    let records = [rollback(Phase::Done, Some(3))];
    assert_eq!(
        awaiting_verification(&records, 3, Some(1)),
        Some(&records[0])
    );
    assert_eq!(awaiting_verification(&records, 4, None), None);
    let verified_already = [rollback(Phase::Verified, Some(3))];
    assert_eq!(awaiting_verification(&verified_already, 3, Some(1)), None);
    let mut r = report(3, Verdict::Healthy, 100, 100);
    r.verdict = Verdict::Healthy;
    let updated = verified(&records[0], &r, Phase::Verified, at(20));
    assert_eq!(
        (updated.phase, updated.new_revision, updated.finished),
        (Phase::Verified, Some(3), Some(at(20)))
    );
    assert_eq!(
        updated.detail.as_deref(),
        Some("revision 3 passed its evaluation (healthy)")
    );
    // Helm said the rollback failed (its --wait gave up) but wrote revision 3: the
    // revision's evaluation decides, and the record keeps helm's words.
    let mut helm_failed = rollback(Phase::Failed, Some(3));
    helm_failed.detail = Some("helm rollback exited with 1: context deadline exceeded".into());
    let records = [helm_failed];
    assert_eq!(awaiting_verification(&records, 3, None), Some(&records[0]));
    let updated = verified(&records[0], &r, Phase::Verified, at(20));
    assert_eq!(
        updated.detail.as_deref(),
        Some(
            "helm reported a failure (helm rollback exited with 1: context deadline exceeded); revision 3 passed its evaluation (healthy)"
        )
    );
    // A failed rollback that wrote nothing has nothing to verify.
    assert_eq!(
        awaiting_verification(&[rollback(Phase::Failed, None)], 3, Some(1)),
        None
    );
}

#[test]
fn a_record_left_running_is_resolved_from_the_history_never_run_again() {
    let running = rollback(Phase::Running, None);
    let deadline = at(10);
    let before = [
        row(1, ReleaseStatus::Superseded, "Install complete"),
        row(2, ReleaseStatus::Failed, "Upgrade failed"),
    ];
    // Nothing in the history: wait for the deadline, then interrupted.
    assert_eq!(unfinished(&running, &before, deadline, at(5)), None);
    let gone = unfinished(&running, &before, deadline, at(11)).unwrap();
    assert_eq!((gone.phase, gone.new_revision), (Phase::Interrupted, None));
    assert!(gone.detail.unwrap().contains("it is not run again"));
    // The rollback wrote its revision and it settled: done, evaluated like any other.
    let settled = [
        row(1, ReleaseStatus::Superseded, "Install complete"),
        row(2, ReleaseStatus::Superseded, "Upgrade failed"),
        row(3, ReleaseStatus::Deployed, "Rollback to 1"),
    ];
    let done = unfinished(&running, &settled, deadline, at(5)).unwrap();
    assert_eq!((done.phase, done.new_revision), (Phase::Done, Some(3)));
    // Still pending: the release is locked; only past the deadline is it said so.
    let locked = [
        row(1, ReleaseStatus::Superseded, "Install complete"),
        row(2, ReleaseStatus::Superseded, "Upgrade failed"),
        row(3, ReleaseStatus::PendingRollback, "Rollback to 1"),
    ];
    assert_eq!(unfinished(&running, &locked, deadline, at(5)), None);
    let interrupted = unfinished(&running, &locked, deadline, at(11)).unwrap();
    assert_eq!(
        (interrupted.phase, interrupted.new_revision),
        (Phase::Interrupted, Some(3))
    );
    assert!(
        interrupted
            .detail
            .unwrap()
            .contains("the release is locked")
    );
}

#[test]
fn a_rollback_whose_holder_is_gone_is_completed_once_or_settled_never_started_twice() {
    let running = rollback(Phase::Running, None);
    let base = || {
        vec![
            row(1, ReleaseStatus::Superseded, "Install complete"),
            row(2, ReleaseStatus::Deployed, "Upgrade complete"),
        ]
    };
    let with = |next: HistoryRow| {
        let mut rows = base();
        rows.push(next);
        rows
    };
    // helm died with it, mid-rollback: unlock the pending revision and run it again.
    assert_eq!(
        after_death(
            &running,
            &with(row(3, ReleaseStatus::PendingRollback, "Preparing rollback")),
            "pod deleted",
            at(5)
        ),
        Takeover::Complete { unlock: Some(3) }
    );
    // It died before helm wrote anything, and revision 2 is still the latest: run it.
    assert_eq!(
        after_death(&running, &base(), "pod deleted", at(5)),
        Takeover::Complete { unlock: None }
    );
    // helm finished before it died: settled, never run again.
    let Takeover::Resolved(done) = after_death(
        &running,
        &with(row(3, ReleaseStatus::Deployed, "Rollback to 1")),
        "x",
        at(5),
    ) else {
        panic!("settled")
    };
    assert_eq!((done.phase, done.new_revision), (Phase::Done, Some(3)));
    // The history moved on (someone upgraded): interrupted, never run.
    let Takeover::Resolved(moved) = after_death(
        &running,
        &with(row(3, ReleaseStatus::Deployed, "Upgrade complete")),
        "x",
        at(5),
    ) else {
        panic!("interrupted")
    };
    assert_eq!(moved.phase, Phase::Interrupted);
    assert!(moved.detail.unwrap().contains("not run again"));
    // A pending revision that is not the latest any more is left for an operator.
    let mut rows = with(row(3, ReleaseStatus::PendingRollback, "Preparing rollback"));
    rows.push(row(4, ReleaseStatus::Deployed, "Upgrade complete"));
    assert!(
        matches!(after_death(&running, &rows, "x", at(5)), Takeover::Resolved(r) if r.phase == Phase::Interrupted)
    );
    // A pod restart is never repeated.
    let restart = ActionRecord {
        action: ActionKind::RestartPod,
        target: None,
        ..running.clone()
    };
    assert!(
        matches!(after_death(&restart, &base(), "x", at(5)), Takeover::Resolved(r) if r.phase == Phase::Interrupted)
    );
}
