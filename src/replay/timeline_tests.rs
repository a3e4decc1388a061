use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn past(revision: u32, status: ReleaseStatus, started: &str) -> Past {
    Past {
        revision,
        status,
        started: t(started),
        modified: None,
        operation: Operation::Upgrade,
        rollback_to: None,
    }
}

#[test]
fn a_revision_is_pending_until_helm_changed_its_record() {
    let mut p = past(3, ReleaseStatus::Failed, "2026-12-01T10:00:00Z");
    p.modified = Some(t("2026-12-01T10:05:00Z"));
    assert_eq!(
        status_at(&p, t("2026-12-01T10:04:59Z")),
        (ReleaseStatus::PendingUpgrade, t("2026-12-01T10:00:00Z"))
    );
    assert_eq!(
        status_at(&p, t("2026-12-01T10:05:00Z")),
        (ReleaseStatus::Failed, t("2026-12-01T10:05:00Z"))
    );
    p.operation = Operation::Rollback;
    assert_eq!(
        status_at(&p, t("2026-12-01T10:01:00Z")).0,
        ReleaseStatus::PendingRollback
    );
}

#[test]
fn a_superseded_revision_was_deployed_and_an_unmodified_one_had_its_status_from_the_start() {
    let mut p = past(2, ReleaseStatus::Superseded, "2026-12-01T10:00:00Z");
    // Its modifiedAt is when the next revision superseded it: not when it was deployed.
    p.modified = Some(t("2026-12-02T10:00:00Z"));
    assert_eq!(
        status_at(&p, t("2026-12-01T10:01:00Z")),
        (ReleaseStatus::Deployed, t("2026-12-01T10:00:00Z"))
    );
    let q = past(4, ReleaseStatus::Deployed, "2026-12-01T10:00:00Z");
    assert_eq!(
        status_at(&q, t("2026-12-01T10:00:01Z")),
        (ReleaseStatus::Deployed, t("2026-12-01T10:00:00Z"))
    );
}

fn history() -> Vec<Past> {
    let mut rollback = past(4, ReleaseStatus::Deployed, "2026-12-01T10:40:00Z");
    rollback.rollback_to = Some(2);
    rollback.operation = Operation::Rollback;
    vec![
        past(2, ReleaseStatus::Superseded, "2026-11-20T10:00:00Z"),
        past(3, ReleaseStatus::Superseded, "2026-12-01T10:00:00Z"),
        rollback,
    ]
}

#[test]
fn what_came_next_is_a_rollback_a_replacement_or_nothing_yet() {
    let h = history();
    let now = t("2026-12-03T10:40:00Z");
    assert_eq!(
        next(&h, 0, now),
        Next::Replaced {
            revision: 3,
            after: Duration::from_secs(11 * 86400)
        }
    );
    let rolled = next(&h, 1, now);
    assert_eq!(
        rolled,
        Next::RolledBack {
            revision: 4,
            to: 2,
            after: Duration::from_secs(40 * 60)
        }
    );
    assert_eq!(rolled.words(), "rolled back to 2 after 40m (revision 4)");
    assert_eq!(next(&h, 2, now).words(), "still the latest, for 2d");
}

fn judged(verdict: Verdict, after_min: u64, next: Next, rollback: bool) -> Option<Judged> {
    Some(Judged {
        what: "gim/gim 3".into(),
        verdict,
        after: Duration::from_secs(after_min * 60),
        next,
        rollback,
    })
}

#[test]
fn the_summary_counts_false_alarms_and_time_saved() {
    let days = Next::Replaced {
        revision: 9,
        after: Duration::from_secs(12 * 86400),
    };
    let rolled = Next::RolledBack {
        revision: 4,
        to: 2,
        after: Duration::from_secs(40 * 60),
    };
    let s = summarize(&[
        judged(Verdict::Healthy, 60, days.clone(), false),
        // Would have rolled back a revision that then ran for 12 days.
        judged(Verdict::Failed, 10, days.clone(), true),
        // Failed but only investigated: not a rollback, so not a false alarm of one.
        judged(Verdict::Failed, 10, days, false),
        // Caught at minute 12, rolled back by the people at minute 40.
        judged(Verdict::Failed, 12, rolled.clone(), true),
        // Found after the people had already rolled back: nothing saved.
        judged(Verdict::Failed, 50, rolled, true),
        None,
    ]);
    assert_eq!(s.revisions, 6);
    assert_eq!((s.healthy, s.failed, s.unfinished), (1, 4, 1));
    assert_eq!(s.likely_false_alarms, vec!["gim/gim 3".to_string()]);
    assert_eq!(
        s.caught_earlier,
        vec![Earlier {
            what: "gim/gim 3".into(),
            saved: Duration::from_secs(28 * 60)
        }]
    );
    assert_eq!(s.saved, Duration::from_secs(28 * 60));
}

#[test]
fn an_uninstalled_revision_was_deployed_until_its_uninstall() {
    let mut p = past(5, ReleaseStatus::Uninstalled, "2026-12-01T10:00:00Z");
    p.modified = Some(t("2026-12-01T12:00:00Z"));
    assert_eq!(
        status_at(&p, t("2026-12-01T11:00:00Z")).0,
        ReleaseStatus::Deployed
    );
    assert_eq!(
        status_at(&p, t("2026-12-01T12:00:00Z")),
        (ReleaseStatus::Uninstalled, t("2026-12-01T12:00:00Z"))
    );
    let next = next(&[p], 0, t("2026-12-03T10:00:00Z"));
    assert_eq!(
        next,
        Next::Uninstalled {
            after: Some(Duration::from_secs(7200))
        }
    );
    assert_eq!(next.words(), "uninstalled after 2h");
}
