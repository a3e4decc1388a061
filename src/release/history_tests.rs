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
        book.init_done(&None),
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
    let actions = book.init_done(&None);
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
        assert_eq!(book.init_done(scope), vec![]);
    }
    assert!(book.is_synced(&scopes));
    book.init(&scopes[0]);
    book.init_apply(&scopes[0], &gim(1, Deployed), t(5));
    assert_eq!(book.init_done(&scopes[0]), vec![]);
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
