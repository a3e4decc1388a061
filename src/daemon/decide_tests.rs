//! What follows an event and a judgement, with plain values.

use super::*;
use crate::config::Config;
use crate::test_support::{event, policy, report};

fn upgraded(to: u32) -> ReleaseEventKind {
    ReleaseEventKind::Upgraded { from: to - 1, to }
}

#[test]
fn events_start_evaluations_tell_automation_and_end_with_an_uninstall() {
    let cases: [(&str, ReleaseEvent, Mode, EventSteps); 5] = [
        (
            "an upgrade with its summary is evaluated",
            event(2, upgraded(2), true),
            Mode::Recommend,
            EventSteps {
                uninstalled: false,
                automate: false,
                evaluate: event(2, upgraded(2), true).summary,
            },
        ),
        (
            "in mode auto the records are loaded too",
            event(2, upgraded(2), true),
            Mode::Auto,
            EventSteps {
                uninstalled: false,
                automate: true,
                evaluate: event(2, upgraded(2), true).summary,
            },
        ),
        (
            "an unreadable revision is not evaluated",
            event(
                2,
                ReleaseEventKind::Unreadable {
                    reason: "forbidden",
                    detail: "cannot read".into(),
                    retrying: true,
                },
                false,
            ),
            Mode::Recommend,
            EventSteps {
                uninstalled: false,
                automate: false,
                evaluate: None,
            },
        ),
        (
            "a revision without its summary is not evaluated",
            event(2, upgraded(2), false),
            Mode::Auto,
            EventSteps {
                uninstalled: false,
                automate: true,
                evaluate: None,
            },
        ),
        (
            "an uninstall ends everything, whatever the mode",
            event(
                2,
                ReleaseEventKind::Uninstalled {
                    kept_history: false,
                },
                false,
            ),
            Mode::Auto,
            EventSteps {
                uninstalled: true,
                automate: false,
                evaluate: None,
            },
        ),
    ];
    for (why, e, mode, want) in cases {
        let mut state = State::default();
        assert_eq!(event_steps(&mut state, &e, mode), want, "{why}");
    }
}

fn event_steps(state: &mut State, e: &ReleaseEvent, mode: Mode) -> EventSteps {
    super::event(state, e, mode)
}

#[test]
fn an_event_shows_the_release_with_its_mode_and_late_news_changes_nothing() {
    let mut state = State::default();
    event_steps(&mut state, &event(3, upgraded(3), true), Mode::Auto);
    let v = state.get(&ReleaseKey::new("ns", "app")).unwrap();
    assert_eq!((v.revision, v.mode), (3, Some(Mode::Auto)));
    let late = event_steps(&mut state, &event(2, upgraded(2), true), Mode::Auto);
    assert_eq!(late.evaluate, None, "an older revision is not evaluated");
}

#[test]
fn a_judgement_is_final_after_the_bake_and_logged_when_its_verdict_changes() {
    let p = policy();
    let mut state = State::default();
    state.event(&event(2, upgraded(2), true));
    let key = ReleaseKey::new("ns", "app");
    let steps = super::report(
        &report(2, Verdict::Progressing, 10, 100),
        state.get(&key),
        &p,
    );
    assert_eq!(
        steps,
        ReportSteps {
            is_final: false,
            verdict_changed: true,
            export_views: false,
            automate: false,
        }
    );
    state.judged(
        &report(2, Verdict::Progressing, 10, 100),
        false,
        std::time::Duration::from_secs(1800),
    );
    let steps = super::report(
        &report(2, Verdict::Progressing, 20, 100),
        state.get(&key),
        &p,
    );
    assert!(!steps.verdict_changed);
    let steps = super::report(&report(2, Verdict::Failed, 100, 100), state.get(&key), &p);
    assert!(steps.is_final && steps.verdict_changed);
}

#[test]
fn the_export_views_reminder_follows_a_healthy_or_degraded_end_of_an_upgrade_only() {
    let config = Config::default_profile().unwrap();
    let mut p = config.policy_for(&ReleaseKey::new("gim", "gim"));
    p.export_views.enabled = true;
    let mut state = State::default();
    state.event(&event(2, upgraded(2), true));
    let upgrade = state.get(&ReleaseKey::new("ns", "app")).cloned();
    let mut rollback = upgrade.clone().unwrap();
    rollback.event = EventName::RolledBack;
    for (verdict, at, view, want) in [
        (Verdict::Healthy, 100, upgrade.clone(), true),
        (Verdict::Degraded, 100, upgrade.clone(), true),
        (Verdict::Failed, 100, upgrade.clone(), false),
        (Verdict::Healthy, 50, upgrade.clone(), false),
        (Verdict::Healthy, 100, Some(rollback.clone()), false),
        (Verdict::Healthy, 100, None, false),
    ] {
        let steps = super::report(&report(2, verdict, at, 100), view.as_ref(), &p);
        assert_eq!(steps.export_views, want, "{verdict:?} at {at}, {view:?}");
    }
    p.export_views.enabled = false;
    let steps = super::report(&report(2, Verdict::Healthy, 100, 100), upgrade.as_ref(), &p);
    assert!(!steps.export_views);
}

#[test]
fn automation_follows_the_policys_mode() {
    let mut p = policy();
    for (mode, want) in [
        (Mode::Observe, false),
        (Mode::Recommend, false),
        (Mode::Auto, true),
    ] {
        p.mode = mode;
        let steps = super::report(&report(2, Verdict::Failed, 10, 100), None, &p);
        assert_eq!(steps.automate, want, "{mode:?}");
    }
}

#[test]
fn a_guarded_action_is_reused_only_for_the_same_proposal_about_the_same_revision() {
    let mut guards = Guards::default();
    let mut r = report(2, Verdict::Failed, 10, 100);
    r.action = RecommendedAction::Investigate { reason: "x".into() };
    assert_eq!(guards.cached(&r), None);
    let held = RecommendedAction::Hold {
        reason: "revision 3 is the latest".into(),
    };
    guards.remember(&r, held.clone());
    assert_eq!(guards.cached(&r), Some(held));
    let mut other = r.clone();
    other.action = RecommendedAction::Investigate { reason: "y".into() };
    assert_eq!(guards.cached(&other), None, "another proposal");
    let newer = report(3, Verdict::Failed, 10, 100);
    assert_eq!(guards.cached(&newer), None, "another revision");
    guards.forget(&r.release);
    assert_eq!(guards.cached(&r), None);
}

/// Issue 19.16: a failure whose automatic action is held for a passing reason when the bake
/// ends is judged again (and its action decided again) for `retry_holds_for`, not lost.
#[test]
fn a_transient_hold_at_the_final_round_is_retried_for_a_while() {
    use crate::remediation::plan::{Hold, HoldReason};
    use crate::test_support::{MIN, at};
    let failed = report(2, Verdict::Failed, 100, 100);
    let hold = |reason| Hold {
        reason,
        detail: "words".into(),
    };
    let ends = failed.bake_ends;
    for reason in [
        HoldReason::NotLeader,
        HoldReason::EvidenceIncomplete,
        HoldReason::Unreadable,
        HoldReason::ReleaseLocked,
    ] {
        assert!(
            retry_hold(&failed, Some(&hold(reason)), 15 * MIN, ends),
            "{reason:?}"
        );
        assert!(!retry_hold(
            &failed,
            Some(&hold(reason)),
            15 * MIN,
            crate::units::plus(ends, 15 * MIN)
        ));
    }
    for reason in [
        HoldReason::NeedsOperator,
        HoldReason::AlreadyAttempted,
        HoldReason::Budget,
        HoldReason::NoTarget,
        HoldReason::DependencyDown,
    ] {
        assert!(
            !retry_hold(&failed, Some(&hold(reason)), 15 * MIN, ends),
            "{reason:?}"
        );
    }
    assert!(
        !retry_hold(&failed, None, 15 * MIN, ends),
        "acted: nothing to retry"
    );
    let healthy = report(2, Verdict::Healthy, 100, 100);
    assert!(!retry_hold(
        &healthy,
        Some(&hold(HoldReason::NotLeader)),
        15 * MIN,
        at(0)
    ));
}

/// Issue 19.14: a revision announced again after a restart is evaluated only while its
/// evaluation would still run and it has no verdict; one that ended its bake healthy or
/// degraded is watched after it (never re-baked); a recorded failure or inconclusive is
/// served from its record; without readable records a revision past its bake is left alone.
#[test]
fn a_revision_announced_again_after_a_restart_resumes_what_it_still_needs() {
    use crate::release::rollback_target::BakeRecord as R;
    let p = policy(); // bake 15m, grace 1h, watch after the bake 6h
    let at = |min: i64| jiff::Timestamp::from_second(min * 60).unwrap();
    let cases = [
        (None, true, 10, Resume::Evaluate),
        (None, false, 10, Resume::Evaluate),
        (None, true, 60, Resume::Evaluate),
        (None, false, 60, Resume::Nothing),
        (None, true, 80, Resume::Nothing),
        (Some(R::Healthy), true, 60, Resume::Watch),
        (Some(R::Degraded), true, 300, Resume::Watch),
        (Some(R::Healthy), true, 15 + 6 * 60, Resume::Nothing),
        (Some(R::Failed), true, 20, Resume::Nothing),
        (Some(R::Inconclusive), true, 90, Resume::Nothing),
    ];
    for (record, read, now, expected) in cases {
        assert_eq!(
            resume(record, read, at(0), &p, at(now)),
            expected,
            "{record:?} read {read} at minute {now}"
        );
    }
    assert_eq!(
        resume_window(&p),
        std::time::Duration::from_secs((15 + 6 * 60) * 60)
    );
}

/// Issue 19.13: only a revision that did not fail its bake is watched after it.
#[test]
fn a_failed_revision_is_not_watched_after_its_bake() {
    for (verdict, watched) in [
        (Verdict::Healthy, true),
        (Verdict::Degraded, true),
        (Verdict::Inconclusive, true),
        (Verdict::Failed, false),
    ] {
        assert_eq!(
            watched_after_bake(&report(2, verdict, 100, 100)),
            watched,
            "{verdict:?}"
        );
    }
}
