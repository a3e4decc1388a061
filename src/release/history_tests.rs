//! Table and sequence tests of the release book: Helm's real write sequences (see DESIGN §3)
//! applied as label changes, asserting the planned actions.

use std::time::Duration;

use super::*;
use ReleaseStatus::*;

const STUCK_AFTER: Duration = Duration::from_secs(300);

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn meta(ns: &str, name: &str, revision: u32, status: ReleaseStatus, created: i64) -> RevisionMeta {
    RevisionMeta {
        key: ReleaseKey::new(ns, name),
        revision,
        status,
        created: Some(t(created)),
        uid: u64::from(revision),
    }
}

fn gim(revision: u32, status: ReleaseStatus) -> RevisionMeta {
    meta("gim", "gim", revision, status, i64::from(revision) * 1000)
}

/// A book synced on `initial` (the first listing of all namespaces).
fn synced(initial: &[RevisionMeta]) -> ReleaseBook {
    let mut book = ReleaseBook::new(STUCK_AFTER);
    book.init(&None);
    for m in initial {
        book.init_apply(&None, m, t(0));
    }
    assert_eq!(
        book.init_done(&None, t(0), &|_| None),
        vec![],
        "the first listing announces nothing"
    );
    assert!(book.is_synced(&[None]));
    book
}

/// (revision, status, draft) of each Fetch; panics on Emit.
fn fetches(actions: Vec<Action>) -> Vec<(u32, ReleaseStatus, Draft)> {
    actions
        .into_iter()
        .map(|a| match a {
            Action::Fetch(p) => (p.revision, p.status, p.draft),
            Action::Emit(e) => panic!("unexpected emit {e:?}"),
        })
        .collect()
}

fn settled_draft(before: Option<u32>, prev: Option<ReleaseStatus>, rolling_back: bool) -> Draft {
    Draft::Settled {
        last_deployed_before: before,
        previous_status: prev,
        seen_rolling_back: rolling_back,
    }
}

#[test]
fn install_announces_once_when_deployed() {
    let mut book = synced(&[]);
    assert_eq!(book.apply(&gim(1, PendingInstall), t(1)), vec![]);
    assert_eq!(
        fetches(book.apply(&gim(1, Deployed), t(2))),
        vec![(1, Deployed, settled_draft(None, None, false))]
    );
    // Re-delivery of the same state says nothing more.
    assert_eq!(book.apply(&gim(1, Deployed), t(3)), vec![]);
}

#[test]
fn helm_upgrade_sequence_gives_one_event() {
    let mut book = synced(&[gim(1, Deployed)]);
    assert_eq!(book.apply(&gim(2, PendingUpgrade), t(1)), vec![]);
    assert_eq!(book.apply(&gim(1, Superseded), t(2)), vec![]);
    assert_eq!(
        fetches(book.apply(&gim(2, Deployed), t(3))),
        vec![(2, Deployed, settled_draft(Some(1), Some(Superseded), false))]
    );
}

#[test]
fn failed_upgrade_then_rollback() {
    let mut book = synced(&[gim(1, Superseded), gim(2, Deployed)]);
    book.apply(&gim(3, PendingUpgrade), t(1));
    assert_eq!(
        fetches(book.apply(&gim(3, Failed), t(2))),
        vec![(3, Failed, settled_draft(Some(2), Some(Deployed), false))]
    );
    // helm rollback gim 2: new revision 4, deployed ones superseded, 4 deployed.
    assert_eq!(book.apply(&gim(4, PendingRollback), t(3)), vec![]);
    assert_eq!(book.apply(&gim(2, Superseded), t(4)), vec![]);
    assert_eq!(
        fetches(book.apply(&gim(4, Deployed), t(5))),
        vec![(4, Deployed, settled_draft(Some(2), Some(Failed), true))]
    );
    assert_eq!(
        book.history(&ReleaseKey::new("gim", "gim")),
        vec![(1, Superseded), (2, Superseded), (3, Failed), (4, Deployed)]
    );
}

#[test]
fn uninstall_without_history_is_announced_when_the_last_secret_goes() {
    let mut book = synced(&[gim(1, Superseded), gim(2, Deployed)]);
    assert_eq!(book.apply(&gim(2, Uninstalling), t(1)), vec![]);
    assert_eq!(book.delete(&gim(1, Superseded)), vec![]);
    let actions = book.delete(&gim(2, Uninstalling));
    assert_eq!(actions.len(), 1);
    match &actions[0] {
        Action::Emit(e) => {
            assert_eq!(
                e.kind,
                ReleaseEventKind::Uninstalled {
                    kept_history: false
                }
            );
            assert_eq!(e.revision, 2);
            assert_eq!(e.summary, None);
        }
        other => panic!("expected an emit, got {other:?}"),
    }
    assert!(book.is_empty());
}

#[test]
fn uninstall_keeping_history_is_announced_from_the_status() {
    let mut book = synced(&[gim(1, Superseded), gim(2, Deployed)]);
    assert_eq!(book.apply(&gim(2, Uninstalling), t(1)), vec![]);
    assert_eq!(
        fetches(book.apply(&gim(2, Uninstalled), t(2))),
        vec![(
            2,
            Uninstalled,
            settled_draft(Some(1), Some(Superseded), false)
        )]
    );
}

#[test]
fn a_pending_revision_is_reported_stuck_once_after_the_threshold() {
    let mut book = synced(&[gim(1, Deployed)]);
    let created = 2000;
    book.apply(&meta("gim", "gim", 2, PendingUpgrade, created), t(created));
    let deadline = t(created + 300);
    assert_eq!(book.next_deadline(), Some(deadline));
    assert_eq!(book.due(t(created + 299)), vec![]);
    assert_eq!(
        fetches(book.due(deadline)),
        vec![(2, PendingUpgrade, Draft::StuckPending { since: t(created) })]
    );
    assert_eq!(book.due(t(created + 10_000)), vec![]);
    assert_eq!(book.next_deadline(), None);
    // Unlocking by hand (deleting the stuck revision) announces nothing ...
    assert_eq!(book.delete(&gim(2, PendingUpgrade)), vec![]);
    // ... and the next upgrade is announced normally.
    book.apply(&gim(2, PendingUpgrade), t(3000));
    assert_eq!(fetches(book.apply(&gim(2, Deployed), t(3001))).len(), 1);
}

#[test]
fn a_killed_upgrade_rolled_back_over_is_skipped() {
    let mut book = synced(&[gim(1, Deployed), gim(2, PendingUpgrade)]);
    book.apply(&gim(3, PendingRollback), t(1));
    book.apply(&gim(1, Superseded), t(2));
    assert_eq!(
        fetches(book.apply(&gim(3, Deployed), t(3))),
        vec![(
            3,
            Deployed,
            settled_draft(Some(1), Some(PendingUpgrade), true)
        )]
    );
}

#[test]
fn restart_does_not_reannounce_but_reports_an_old_pending_revision() {
    // Watching starts while revision 2 has been pending for an hour.
    let mut book = synced(&[
        meta("gim", "gim", 1, Deployed, 0),
        meta("gim", "gim", 2, PendingUpgrade, 0),
        meta("gsp", "gsp", 7, Deployed, 0),
    ]);
    let now = t(3600);
    assert_eq!(
        fetches(book.due(now)),
        vec![(2, PendingUpgrade, Draft::StuckPending { since: t(0) })]
    );
    // When it settles after the restart, it is announced.
    assert_eq!(
        fetches(book.apply(&meta("gim", "gim", 2, Failed, 0), now)).len(),
        1
    );
}

#[test]
fn relist_announces_what_changed_while_disconnected() {
    let mut book = synced(&[
        gim(1, Superseded),
        gim(2, Deployed),
        meta("gsp", "gsp", 1, Deployed, 0),
    ]);
    book.init(&None);
    for m in [
        gim(1, Superseded),
        gim(2, Superseded),
        gim(3, Superseded),
        gim(4, Deployed),
        meta("gca", "gca", 1, Deployed, 0),
    ] {
        book.init_apply(&None, &m, t(10));
    }
    let actions = book.init_done(&None, t(0), &|_| None);
    let described: Vec<String> = actions
        .iter()
        .map(|a| match a {
            Action::Fetch(p) => format!("fetch {} v{} {}", p.release, p.revision, p.status),
            Action::Emit(e) => format!("{} {} v{}", e.kind.name(), e.release, e.revision),
        })
        .collect();
    assert_eq!(
        described,
        vec![
            "uninstalled gsp/gsp v1",
            "fetch gca/gca v1 deployed",
            "fetch gim/gim v3 superseded",
            "fetch gim/gim v4 deployed",
        ]
    );
}

#[test]
fn relist_of_one_namespace_leaves_the_others_alone() {
    let mut book = ReleaseBook::new(STUCK_AFTER);
    let scopes = [Some("gim".to_string()), Some("gsp".to_string())];
    for (scope, m) in scopes
        .iter()
        .zip([gim(1, Deployed), meta("gsp", "gsp", 1, Deployed, 0)])
    {
        book.init(scope);
        book.init_apply(scope, &m, t(0));
        assert!(!book.is_synced(&scopes) || scope == &scopes[1]);
        assert_eq!(book.init_done(scope, t(0), &|_| None), vec![]);
    }
    assert!(book.is_synced(&scopes));
    book.init(&scopes[0]);
    book.init_apply(&scopes[0], &gim(1, Deployed), t(5));
    assert_eq!(book.init_done(&scopes[0], t(0), &|_| None), vec![]);
    assert_eq!(book.len(), 2);
}

#[test]
fn unsettled_statuses_never_announce() {
    for status in [
        PendingInstall,
        PendingUpgrade,
        PendingRollback,
        Uninstalling,
    ] {
        let mut book = synced(&[]);
        assert_eq!(book.apply(&gim(1, status), t(1)), vec![], "{status}");
    }
}

fn described(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Fetch(p) => format!(
                "fetch {} v{} {}{}",
                p.release,
                p.revision,
                p.status,
                if p.resumed { " resumed" } else { "" }
            ),
            Action::Emit(e) => format!("{} {} v{}", e.kind.name(), e.release, e.revision),
        })
        .collect()
}

#[test]
fn a_restart_inside_the_bake_window_announces_the_newest_revision_again() {
    let mut book = ReleaseBook::new(STUCK_AFTER);
    book.init(&None);
    // gim v3 upgraded at t=3000 (bake 1h); gsp v2 at t=2000 (bake 10m); gca v2 is an
    // upgrade still under way over v1; gone v2 was uninstalled keeping history.
    for m in [
        gim(2, Superseded),
        gim(3, Deployed),
        meta("gsp", "gsp", 1, Superseded, 100),
        meta("gsp", "gsp", 2, Deployed, 2000),
        meta("gca", "gca", 1, Deployed, 2900),
        meta("gca", "gca", 2, PendingUpgrade, 3000),
        meta("gone", "gone", 1, Superseded, 100),
        meta("gone", "gone", 2, Uninstalled, 3000),
    ] {
        book.init_apply(&None, &m, t(3100));
    }
    let bake = |key: &ReleaseKey| {
        Some(Duration::from_secs(if &*key.name == "gim" {
            3600
        } else {
            600
        }))
    };
    let actions = book.init_done(&None, t(3100), &bake);
    assert_eq!(
        described(&actions),
        vec!["fetch gim/gim v3 deployed resumed"]
    );
    let Action::Fetch(p) = &actions[0] else {
        unreachable!()
    };
    assert_eq!(p.draft, settled_draft(Some(2), Some(Superseded), false));
    // Once announced it is not announced again, and later news about it is plain news.
    assert_eq!(book.apply(&gim(3, Deployed), t(3200)), vec![]);
    assert_eq!(
        described(&book.apply(&gim(3, Uninstalled), t(3300))),
        vec!["fetch gim/gim v3 uninstalled"]
    );
    assert_eq!(
        described(&book.apply(&meta("gca", "gca", 2, Deployed, 3000), t(3200))),
        vec!["fetch gca/gca v2 deployed"]
    );
    // Past the window, a restart announces nothing.
    let mut later = ReleaseBook::new(STUCK_AFTER);
    later.init(&None);
    later.init_apply(&None, &gim(3, Deployed), t(9000));
    assert_eq!(later.init_done(&None, t(3000 + 3600), &bake), vec![]);
}

#[test]
fn a_release_uninstalled_and_installed_again_while_disconnected_is_both() {
    let mut book = synced(&[gim(1, Superseded), gim(2, Deployed)]);
    let reinstalled = |revision: u32, status| RevisionMeta {
        uid: 1000 + u64::from(revision),
        ..meta("gim", "gim", revision, status, 5000)
    };
    book.init(&None);
    book.init_apply(&None, &reinstalled(1, Deployed), t(5000));
    assert_eq!(
        described(&book.init_done(&None, t(5000), &|_| None)),
        vec!["uninstalled gim/gim v2", "fetch gim/gim v1 deployed"]
    );
    // Reinstalled and upgraded past the old numbers: the shared revisions' UIDs tell.
    book.init(&None);
    for m in [
        gim(1, Superseded),
        RevisionMeta {
            uid: 77,
            ..gim(2, Superseded)
        },
        gim(3, Deployed),
    ] {
        book.init_apply(&None, &m, t(6000));
    }
    assert_eq!(
        described(&book.init_done(&None, t(6000), &|_| None)),
        vec![
            "uninstalled gim/gim v1",
            "fetch gim/gim v1 superseded",
            "fetch gim/gim v2 superseded",
            "fetch gim/gim v3 deployed"
        ]
    );
    // The same records listed again are no news.
    book.init(&None);
    for m in [
        gim(1, Superseded),
        RevisionMeta {
            uid: 77,
            ..gim(2, Superseded)
        },
        gim(3, Deployed),
    ] {
        book.init_apply(&None, &m, t(7000));
    }
    assert_eq!(book.init_done(&None, t(7000), &|_| None), vec![]);
}

/// Issue 19.14: with `listing_settled`, the first listing emits `Listed` for the newest
/// revision of each release it does not announce again (so a restarted daemon shows every
/// release), nothing for an uninstalled one, and the resumed one as a fetch.
#[test]
fn the_first_listing_lists_every_release_it_does_not_announce() {
    let mut book = ReleaseBook::new(STUCK_AFTER).listing_settled(true);
    book.init(&None);
    for m in [
        meta("gim", "gim", 1, Superseded, 0),
        meta("gim", "gim", 2, Deployed, 100),
        meta("gsp", "gsp", 1, Uninstalled, 0),
        meta("gca", "gca", 3, Deployed, 9_990),
        meta("app", "app", 1, Deployed, 0),
        meta("app", "app", 2, Failed, 100),
        meta("app", "app", 3, PendingRollback, 9_000),
    ] {
        book.init_apply(&None, &m, t(0));
    }
    let actions = book.init_done(&None, t(10_000), &|_| Some(Duration::from_secs(60)));
    let mut listed = Vec::new();
    let mut fetched = Vec::new();
    for a in actions {
        match a {
            Action::Emit(e) => {
                assert_eq!(e.kind, ReleaseEventKind::Listed);
                assert!(e.summary.is_none());
                listed.push((e.release.to_string(), e.revision, e.status));
            }
            Action::Fetch(p) => fetched.push((p.release.to_string(), p.revision)),
        }
    }
    // Issue 20.12: a rollback under way when the daemon restarted is shown at once.
    assert_eq!(
        listed,
        [
            ("app/app".to_string(), 3, PendingRollback),
            ("gim/gim".to_string(), 2, Deployed)
        ]
    );
    assert_eq!(
        fetched,
        [("gca/gca".to_string(), 3)],
        "inside its window: resumed"
    );
}
