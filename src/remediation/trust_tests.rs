//! What the plan trusts, with plain values: bake records bound to their install and
//! content, and a rolled-back version applied again.

use super::*;
use crate::release::ReleaseStatus::{self, *};
use crate::release::fingerprint::ValuesDigest;
use crate::test_support::row;

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
}

/// A revision of the install first deployed at minute `install`, applying `content`
/// with `values`, of chart version `version`.
fn rev(
    revision: u32,
    status: ReleaseStatus,
    install: i64,
    content: &str,
    version: &str,
    values: &str,
) -> HistoryRow {
    let mut r = row(revision, status, "Upgrade complete");
    if let RowDetail::Decoded(s) = &mut r.detail {
        s.first_deployed = Some(at(install));
        s.fingerprint.content = content.into();
        s.fingerprint.values = serde_json::from_str::<ValuesDigest>(values).unwrap();
        s.chart.version = version.into();
    }
    r
}

fn entry(verdict: BakeRecord, content: &str, install: Option<i64>) -> BakeEntry {
    BakeEntry {
        verdict,
        at: at(30),
        chart: "app-1".into(),
        failed_checks: vec![],
        unanswered_checks: vec![],
        content: content.into(),
        install: install.map(at),
        during_bake: false,
        accepted: None,
        accepted_over: None,
    }
}

/// Issue 20.6: a healthy record holds only with the content it judged; a rewritten
/// record, an unreadable one, or one from before content binding is refused and named.
#[test]
fn a_healthy_record_holds_only_for_the_content_it_judged() {
    let rows = vec![
        rev(1, Superseded, 0, "c1", "1", "{}"),
        rev(2, Superseded, 0, "forged", "2", "{}"),
        rev(3, Superseded, 0, "c3", "3", "{}"),
        rev(4, Failed, 0, "c4", "4", "{}"),
    ];
    let entries = BTreeMap::from([
        (1, entry(BakeRecord::Healthy, "c1", Some(0))),
        (2, entry(BakeRecord::Healthy, "c2", Some(0))),
        (3, entry(BakeRecord::Healthy, "", Some(0))),
        (4, entry(BakeRecord::Failed, "other", Some(0))),
    ]);
    let t = trusted(&entries, &rows);
    assert_eq!(
        t.bakes,
        BTreeMap::from([(1, BakeRecord::Healthy), (4, BakeRecord::Failed)])
    );
    assert_eq!(t.refused.len(), 2, "{:?}", t.refused);
    assert_eq!(t.refused[0].0, 2);
    assert!(
        t.refused[0]
            .1
            .contains("changed after upgrade-guard judged it healthy")
    );
    assert!(t.refused[0].1.contains("sh.helm.release.v1.app.v2"));
    assert_eq!(t.refused[1].0, 3);
    assert!(t.refused[1].1.contains("older upgrade-guard"));
    let mut unreadable = rows.clone();
    unreadable[0].detail = RowDetail::Undecodable {
        decode_error: "inconsistent".into(),
    };
    let t = trusted(&entries, &unreadable);
    assert!(!t.bakes.contains_key(&1));
    assert!(
        t.refused
            .iter()
            .any(|(r, why)| *r == 1 && why.contains("cannot be read"))
    );
}

/// Issue 20.8: after `helm uninstall` and `install`, the records of the earlier install
/// (same revision numbers) neither make a target nor hold the new install.
#[test]
fn records_of_an_earlier_install_are_set_aside() {
    let rows = vec![
        rev(1, Superseded, 100, "n1", "1", "{}"),
        rev(2, Deployed, 100, "n2", "2", "{}"),
    ];
    let entries = BTreeMap::from([
        (1, entry(BakeRecord::Healthy, "n1", Some(0))),
        (2, entry(BakeRecord::Failed, "old", Some(0))),
    ]);
    assert_eq!(trusted(&entries, &rows), Trusted::default());
    let entries = BTreeMap::from([(1, entry(BakeRecord::Healthy, "n1", Some(100)))]);
    assert_eq!(
        trusted(&entries, &rows).bakes,
        BTreeMap::from([(1, BakeRecord::Healthy)])
    );
    let record = |install: Option<i64>| ActionRecord {
        about: Some(AboutRevision {
            install: install.map(at),
            ..AboutRevision::default()
        }),
        ..crate::test_support::action_record(2, Phase::Verified)
    };
    let kept = of_install(&[record(Some(0)), record(Some(100)), record(None)], &rows);
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .all(|r| r.about.as_ref().unwrap().install != Some(at(0)))
    );
}

/// Issue 20.4: the version upgrade-guard rolled back, applied again with the same values
/// within the window, is recognised; other values, another version, or too long ago is not.
#[test]
fn the_rolled_back_version_applied_again_is_recognised() {
    let v = r#"{"image":"bad"}"#;
    let rows = vec![
        rev(1, Superseded, 0, "c1", "1", "{}"),
        rev(2, Superseded, 0, "c2", "2", v),
        rev(3, Superseded, 0, "c1", "1", "{}"),
        rev(4, Deployed, 0, "c2", "2", v),
    ];
    let mut done = crate::test_support::action_record(2, Phase::Verified);
    done.started = at(10);
    done.about = about(&rows, 2);
    let found = reapplied(4, &rows, &[done.clone()], Duration::from_secs(3600), at(20)).unwrap();
    assert_eq!(found.rolled_back, 2);
    assert!(found.values_compared);
    assert!(found.words(4).contains("app-2"), "{}", found.words(4));
    assert!(found.words(4).contains("same values"));
    // Too long ago, or the rollback never ran.
    assert_eq!(
        reapplied(4, &rows, &[done.clone()], Duration::from_secs(300), at(20)),
        None
    );
    let mut cancelled = done.clone();
    cancelled.phase = Phase::Cancelled;
    assert_eq!(
        reapplied(4, &rows, &[cancelled], Duration::from_secs(3600), at(20)),
        None
    );
    // Other values: a fix by values is not the same version.
    let mut fixed = rows.clone();
    fixed[3] = rev(4, Deployed, 0, "c2b", "2", r#"{"image":"good"}"#);
    assert_eq!(
        reapplied(
            4,
            &fixed,
            &[done.clone()],
            Duration::from_secs(3600),
            at(20)
        ),
        None
    );
    // Another chart version.
    fixed[3] = rev(4, Deployed, 0, "c5", "3", v);
    assert_eq!(
        reapplied(
            4,
            &fixed,
            &[done.clone()],
            Duration::from_secs(3600),
            at(20)
        ),
        None
    );
    // The rolled-back revision pruned from Helm's history: its record names the version.
    let pruned: Vec<HistoryRow> = rows.iter().filter(|r| r.revision != 2).cloned().collect();
    let found = reapplied(4, &pruned, &[done], Duration::from_secs(3600), at(20)).unwrap();
    assert!(!found.values_compared);
    assert!(found.words(4).contains("could not be compared"));
}
