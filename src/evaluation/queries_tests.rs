//! The batched queries of a round and how their answers are read back, with plain values.

use std::time::Duration;

use super::*;
use crate::checks::provider::ProviderError;
use crate::config::{FailAction, LagPolicy, PresencePolicy, ReleasePolicy, ThresholdPolicy};
use crate::evaluation::revision::{Evaluation, KubeState, Start};
use crate::gather::promql::Series;
use crate::release::labels::Storage;
use crate::release::summary::WorkloadKind;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::test_support::{MIN, at, policy, summary};

const SCRAPE: Duration = Duration::from_secs(15);

fn pg() -> SqlSource {
    SqlSource {
        database: "infomart".into(),
        query: "select 1".into(),
    }
}

fn bound(name: &str, source: Source) -> ThresholdPolicy {
    ThresholdPolicy {
        name: name.into(),
        source,
        min: Some(1.0),
        max: None,
        on_no_data: OnNoData::Inconclusive,
        action: FailAction::Rollback,
        hold: MIN,
    }
}

/// A policy with one check of every kind reading Prometheus, and a dependency probed in
/// PostgreSQL.
fn every_check() -> ReleasePolicy {
    let mut p = policy();
    p.metrics_presence = vec![PresencePolicy {
        name: "up".into(),
        query: "app_up{namespace=\"{{namespace}}\"}".into(),
    }];
    p.lag = Some(LagPolicy {
        query: "lag{release=\"{{release}}\"}".into(),
        window: 10 * MIN,
        max_slope: 0.0,
        max_level: None,
        min_samples: 5,
        hold: MIN,
    });
    p.dependencies = vec![
        bound("kafka", Source::PromQL("kafka_up".into())),
        bound("postgresql", Source::Sql(pg())),
    ];
    p.custom = vec![bound("errors", Source::PromQL("errors".into()))];
    p
}

fn evaluation(policy: ReleasePolicy) -> Evaluation {
    Evaluation {
        start: Start {
            release: ReleaseKey::new("ns", "app"),
            summary: std::sync::Arc::new(summary(&[(WorkloadKind::Deployment, "app")], &[])),
            status: ReleaseStatus::Deployed,
            status_since: at(0),
            history: vec![(3, ReleaseStatus::Deployed)],
            rollbacks: BTreeMap::new(),
            storage: Storage::Secret,
        },
        started: at(0),
        bake_ends: at(15),
        policy,
        baseline: None,
        checks: BTreeMap::new(),
        kube: KubeState::default(),
        sql_troubles: BTreeMap::new(),
    }
}

fn keys(items: &[(String, String)]) -> Vec<&str> {
    items.iter().map(|(k, _)| k.as_str()).collect()
}

fn series(v: f64) -> Result<Vec<Series>, ProviderError> {
    Ok(vec![(Default::default(), v)])
}

#[test]
fn each_check_adds_its_expressions_under_its_revisions_keys_with_placeholders_filled() {
    let e = evaluation(every_check());
    let mut items = RoundItems::default();
    items.add(7, &e, SCRAPE);
    assert_eq!(keys(&items.presence), ["r7-p0n", "r7-p0s"]);
    assert_eq!(
        keys(&items.lag),
        ["r7-ls", "r7-lr", "r7-ll", "r7-ln", "r7-lu", "r7-lq"]
    );
    // The database probe has no PromQL: only kafka is in the batch.
    assert_eq!(keys(&items.dependencies), ["r7-d0b", "r7-d0n", "r7-d0"]);
    assert_eq!(keys(&items.custom), ["r7-c0"]);
    assert_eq!(items.lag[2].1, "lag{release=\"app\"}");
    assert!(
        items.presence[0].1.contains("app_up{namespace=\"ns\"}"),
        "{:?}",
        items.presence
    );
    let baseline = baseline_items(7, &e, SCRAPE);
    assert_eq!(keys(&baseline), ["b7-p0", "b7-ls", "b7-ll", "b7-up"]);
}

#[test]
fn a_baseline_waits_for_prometheus_but_keeps_a_rejected_query_as_that_items_error() {
    let e = evaluation(every_check());
    let mut answers = Answers::from([
        ("b0-p0".to_string(), series(1.0)),
        ("b0-ls".to_string(), series(0.0)),
        ("b0-ll".to_string(), series(10.0)),
        ("b0-up".to_string(), series(1.0)),
    ]);
    let b = baseline_from(0, &e, &answers).unwrap();
    assert!(b.scraping_at_upgrade);
    assert_eq!(b.lag.as_ref().map(|l| l.level.clone()), Ok(vec![10.0]));
    answers.insert(
        "b0-ls".into(),
        Err(ProviderError::BadQuery("parse error".into())),
    );
    let b = baseline_from(0, &e, &answers).unwrap();
    assert_eq!(b.lag, Err(ProviderError::BadQuery("parse error".into())));
    assert!(b.presence[0].is_ok(), "the other items keep their answers");
    answers.insert(
        "b0-p0".into(),
        Err(ProviderError::Unavailable("timeout".into())),
    );
    assert!(
        baseline_from(0, &e, &answers).is_err(),
        "read again next round"
    );
}

#[test]
fn a_revisions_answers_are_read_back_per_item_in_the_order_of_its_policy() {
    let mut e = evaluation(every_check());
    let answers = Answers::from([
        ("r0-d0".to_string(), series(3.0)),
        ("r0-c0".to_string(), series(0.5)),
        ("r0-p0n".to_string(), series(1.0)),
        ("r0-p0s".to_string(), series(1.0)),
    ]);
    let sql = BTreeMap::from([(pg(), Ok(Some(1.0)))]);
    // No baseline yet: the checks that need it cannot be judged this round.
    let a = revision_answers(0, &e, &answers, &sql, SCRAPE);
    assert!(matches!(
        a.presence[..],
        [Err(ProviderError::Unavailable(_))]
    ));
    assert!(matches!(a.lag, Some(Err(ProviderError::Unavailable(_)))));
    assert_eq!(
        a.dependencies,
        vec![Bounded::PromQL(Ok(vec![3.0])), Bounded::Sql(Ok(Some(1.0)))]
    );
    assert_eq!(a.custom, vec![Bounded::PromQL(Ok(vec![0.5]))]);
    assert_eq!(a.migration, None);
    e.baseline = Some(Baseline {
        presence: vec![Ok(Default::default())],
        lag: Ok(Default::default()),
        scraping_at_upgrade: true,
    });
    let a = revision_answers(0, &e, &answers, &BTreeMap::new(), SCRAPE);
    assert!(a.presence[0].is_ok(), "{:?}", a.presence);
    // A query that did not run this round has no answer: a provider error, not data.
    assert!(matches!(
        a.dependencies[1],
        Bounded::Sql(Err(SqlError::Unavailable(_)))
    ));
}

#[test]
fn a_dependency_out_of_bounds_within_the_lag_window_is_a_trouble_of_the_backlog() {
    let e = evaluation(every_check());
    // kafka was last out of bounds at minute 5 (Prometheus answers in seconds).
    let out = at(5).as_second() as f64;
    let answers = Answers::from([
        ("r0-d0b".to_string(), series(out)),
        ("r0-d0n".to_string(), series(40.0)),
    ]);
    let a = revision_answers(0, &e, &answers, &BTreeMap::new(), SCRAPE);
    assert_eq!(
        a.dependency_troubles,
        vec![DependencyTrouble::OutOfBounds {
            name: "kafka".into(),
            last: at(5)
        }]
    );
    // In bounds all along, with too few points in the window: no data.
    let answers = Answers::from([
        ("r0-d0b".to_string(), Ok(vec![])),
        ("r0-d0n".to_string(), series(3.0)),
    ]);
    let a = revision_answers(0, &e, &answers, &BTreeMap::new(), SCRAPE);
    assert!(
        matches!(&a.dependency_troubles[..], [DependencyTrouble::NoData { name, .. }] if name == "kafka"),
        "{:?}",
        a.dependency_troubles
    );
}
