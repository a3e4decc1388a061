//! Which Kubernetes Events are published, once per fact, with plain values.

use super::*;
use crate::checks::{CheckResult, Outcome};
use crate::remediation::automation::Automation;
use crate::remediation::plan::{Hold, HoldReason, Plan};
use crate::test_support::{action_record, view};

fn reasons(events: &[KubeEvent]) -> Vec<(&str, bool)> {
    events.iter().map(|e| (e.reason, e.warning)).collect()
}

#[test]
fn each_verdict_change_is_published_once_about_the_newest_record() {
    let mut book = EventBook::default();
    let progressing = view(Verdict::Progressing, false, vec![]);
    let events = book.new_events([&progressing].into_iter());
    assert_eq!(reasons(&events), [("UpgradeEvaluating", false)]);
    assert_eq!(events[0].record_name(), "sh.helm.release.v1.app.v3");
    assert_eq!(events[0].record_kind(), "Secret");
    // The same fact again, round after round: nothing new.
    assert!(book.new_events([&progressing].into_iter()).is_empty());
    let failed = view(
        Verdict::Failed,
        false,
        vec![
            CheckResult::new("pending_pods", Outcome::Fail, "2 pods Unschedulable for 6m"),
            CheckResult::new("lag", Outcome::Pass, "fine"),
        ],
    );
    let events = book.new_events([&failed].into_iter());
    assert_eq!(reasons(&events), [("UpgradeFailed", true)]);
    assert_eq!(
        events[0].note,
        "revision 3 failed: pending_pods: 2 pods Unschedulable for 6m. Recommended: roll back to revision 2: helm rollback app 2 -n ns --timeout 5m"
    );
    assert!(book.new_events([&failed].into_iter()).is_empty());
    // Failed to the end of the bake: still the one failure.
    let final_failed = view(
        Verdict::Failed,
        true,
        failed.judgement.clone().unwrap().results,
    );
    assert!(book.new_events([&final_failed].into_iter()).is_empty());
    // Judged again healthy (a fix applied in place): a new fact.
    let healthy = view(Verdict::Healthy, true, vec![]);
    assert_eq!(
        reasons(&book.new_events([&healthy].into_iter())),
        [("UpgradeHealthy", false)]
    );
}

#[test]
fn holds_and_automatic_actions_are_published_with_their_outcome() {
    let mut book = EventBook::default();
    let mut v = view(Verdict::Failed, false, vec![]);
    v.automation = Some(Box::new(Automation {
        dry_run: false,
        plan: Some(Plan::Hold(Hold {
            reason: HoldReason::DependencyDown,
            detail: "the dependency kafka fails".into(),
        })),
        record: None,
    }));
    let events = book.new_events([&v].into_iter());
    assert_eq!(
        reasons(&events),
        [("UpgradeFailed", true), ("AutomaticActionHeld", true)]
    );
    assert_eq!(
        events[1].note,
        "dependency_down: the dependency kafka fails"
    );
    for (phase, reason, warning) in [
        (Phase::Running, "RollbackStarted", false),
        (Phase::Done, "RollbackDone", false),
        (Phase::Verified, "RollbackVerified", false),
    ] {
        v.automation = Some(Box::new(Automation {
            dry_run: false,
            plan: None,
            record: Some(action_record(3, phase)),
        }));
        assert_eq!(
            reasons(&book.new_events([&v].into_iter())),
            [(reason, warning)],
            "{phase:?}"
        );
    }
    // A failed attempt is a warning; published once.
    let mut failed = v.clone();
    failed.automation = Some(Box::new(Automation {
        dry_run: false,
        plan: None,
        record: Some(action_record(4, Phase::Failed)),
    }));
    assert_eq!(
        reasons(&book.new_events([&failed].into_iter())),
        [("RollbackFailed", true)]
    );
    assert!(book.new_events([&failed].into_iter()).is_empty());
}

#[test]
fn a_release_gone_is_forgotten_and_a_new_leader_publishes_only_what_changes() {
    let mut book = EventBook::default();
    let v = view(Verdict::Progressing, false, vec![]);
    book.seen([&v].into_iter());
    assert!(book.new_events([&v].into_iter()).is_empty());
    // Uninstalled (no longer shown), then installed again: published anew.
    assert!(book.new_events(std::iter::empty()).is_empty());
    assert_eq!(book.new_events([&v].into_iter()).len(), 1);
    // A long note is cut to what the API takes.
    let long = view(
        Verdict::Failed,
        false,
        vec![CheckResult::new("x", Outcome::Fail, "é".repeat(800))],
    );
    let events = book.new_events([&long].into_iter());
    assert!(events[0].note.len() <= 1024 && events[0].note.ends_with("..."));
}

#[test]
fn the_operators_controls_are_published_once_with_who_and_why() {
    use crate::records::control::{Acceptance, SetBy, Suspension};
    let set = |by: &str, at: &str| SetBy {
        by: by.into(),
        at: at.parse().unwrap(),
        reason: "INC-1234".into(),
    };
    let mut book = EventBook::default();
    let mut v = view(Verdict::Failed, true, vec![]);
    let _ = book.new_events([&v].into_iter());
    v.controls.suspended = Some(Suspension {
        set: set("alice", "2026-12-03T10:00:00Z"),
        until: "2026-12-03T12:00:00Z".parse().unwrap(),
    });
    let events = book.new_events([&v].into_iter());
    assert_eq!(reasons(&events), [("ReleaseSuspended", false)]);
    assert_eq!(
        events[0].note,
        "suspended until 2026-12-03 12:00:00 UTC by alice at 2026-12-03 10:00:00 UTC: INC-1234: judged and shown, neither alerted nor acted on"
    );
    assert!(book.new_events([&v].into_iter()).is_empty());
    // Suspended again later (another suspension): a new fact.
    v.controls.suspended = Some(Suspension {
        set: set("bob", "2026-12-03T11:00:00Z"),
        until: "2026-12-03T13:00:00Z".parse().unwrap(),
    });
    v.controls.accepted = Some(Acceptance {
        set: set("bob", "2026-12-03T11:00:00Z"),
    });
    let events = book.new_events([&v].into_iter());
    assert_eq!(
        reasons(&events),
        [("ReleaseSuspended", false), ("RevisionAccepted", false)]
    );
    assert!(
        events[1]
            .note
            .starts_with("revision 3 accepted as good by bob"),
        "{}",
        events[1].note
    );
}
