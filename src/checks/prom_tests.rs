//! Table tests of the PromQL-based checks with plain answers.

use super::*;
use crate::checks::test_support::*;
use crate::config::FailAction;
use crate::release::ReleaseStatus;

const SCRAPE: Duration = Duration::from_secs(30);

#[test]
fn presence_table() {
    let mut p = policy();
    p.metrics_grace = Duration::from_secs(30);
    let s = summary(&[], &[]);
    let pol = PresencePolicy {
        name: "gim_kafka_timestamp_behind".into(),
        query: "x".into(),
    };
    // grace = max(30s, 2 × 30s) = 1m
    let cases: [(Samples, Samples, i64, Outcome, &str); 5] = [
        (
            vec![3.0],
            vec![3.0],
            2,
            Outcome::Pass,
            "3 series (before the upgrade: 3)",
        ),
        (
            vec![],
            vec![],
            2,
            Outcome::Pass,
            "no series before the upgrade",
        ),
        (
            vec![3.0],
            vec![],
            0,
            Outcome::Pending,
            "absent only after 1m",
        ),
        (
            vec![3.0],
            vec![],
            2,
            Outcome::Fail,
            "no metrics: gim_kafka_timestamp_behind had 3 series before the upgrade and none 2m after it; was the image pulled?",
        ),
        (vec![3.0], vec![1.0], 2, Outcome::Pass, "1 series"),
    ];
    for (before, now, minutes, outcome, words) in cases {
        let r = presence(
            &rev(&s, &p, minutes, ReleaseStatus::Deployed),
            &pol,
            &before,
            &now,
            SCRAPE,
        );
        assert_eq!(r.outcome, outcome, "{}", r.summary);
        assert!(r.summary.contains(words), "{}", r.summary);
        assert_eq!(r.window, Some(Duration::from_secs(60)));
    }
    assert_eq!(
        absence_grace(Duration::ZERO, Duration::from_secs(15)),
        Duration::from_secs(30)
    );
}

fn lag_policy() -> LagPolicy {
    LagPolicy {
        query: "x".into(),
        window: 10 * MIN,
        max_slope: 0.5,
        max_level: Some(600.0),
    }
}

#[test]
fn lag_table() {
    let p = policy();
    let s = summary(&[], &[]);
    let a = |sn: &[f64], ln: &[f64], sb: &[f64], lb: &[f64]| LagAnswers {
        slope_now: sn.to_vec(),
        level_now: ln.to_vec(),
        slope_before: sb.to_vec(),
        level_before: lb.to_vec(),
    };
    let cases = [
        (
            a(&[2.0], &[300.0], &[0.0], &[20.0]),
            5,
            Outcome::Pending,
            "full 10m window",
        ),
        (
            a(&[2.0], &[300.0], &[0.0], &[20.0]),
            11,
            Outcome::Fail,
            "backlog growing: +2/s over 10m (limit +0.5/s; before the upgrade: +0/s, level 20)",
        ),
        (
            a(&[2.0], &[300.0], &[2.1], &[200.0]),
            11,
            Outcome::Warn,
            "already growing before the upgrade",
        ),
        (
            a(&[0.01], &[900.0], &[0.0], &[20.0]),
            11,
            Outcome::Fail,
            "backlog 900 above its ceiling 600",
        ),
        (
            a(&[0.01], &[900.0], &[0.0], &[800.0]),
            11,
            Outcome::Warn,
            "already above before the upgrade",
        ),
        (
            a(&[0.01, 0.3], &[12.0], &[0.0], &[10.0]),
            11,
            Outcome::Pass,
            "no growing backlog: +0.3/s over 10m, level 12",
        ),
        (
            a(&[], &[], &[0.0], &[10.0]),
            11,
            Outcome::Inconclusive,
            "no data",
        ),
    ];
    for (answers, minutes, outcome, words) in cases {
        let r = lag(
            &rev(&s, &p, minutes, ReleaseStatus::Deployed),
            &lag_policy(),
            &answers,
        );
        assert_eq!(r.outcome, outcome, "{}", r.summary);
        assert!(r.summary.contains(words), "{}", r.summary);
    }
    let r = lag(
        &rev(&s, &p, 11, ReleaseStatus::Deployed),
        &lag_policy(),
        &a(&[2.0], &[300.0], &[0.0], &[20.0]),
    );
    assert_eq!(
        (r.value, r.threshold.map(|t| t.value), r.window),
        (Some(2.0), Some(0.5), Some(10 * MIN))
    );
}

#[test]
fn threshold_table() {
    let t = |min, max, on_no_data| ThresholdPolicy {
        name: "kafka".into(),
        query: "x".into(),
        min,
        max,
        on_no_data,
        action: FailAction::Rollback,
    };
    let dep = FailClass::FixDependency {
        name: "kafka".into(),
    };
    let cases: [(ThresholdPolicy, Samples, Outcome, &str); 7] = [
        (
            t(Some(1.0), None, OnNoData::Inconclusive),
            vec![3.0, 2.0],
            Outcome::Pass,
            "kafka is 2 (at least 1)",
        ),
        (
            t(Some(1.0), None, OnNoData::Inconclusive),
            vec![3.0, 0.0],
            Outcome::Fail,
            "kafka is 0 (must be at least 1)",
        ),
        (
            t(None, Some(5.0), OnNoData::Inconclusive),
            vec![7.0],
            Outcome::Fail,
            "kafka is 7 (must be at most 5)",
        ),
        (
            t(Some(1.0), Some(5.0), OnNoData::Inconclusive),
            vec![3.0],
            Outcome::Pass,
            "between 1 and 5",
        ),
        (
            t(Some(1.0), None, OnNoData::Inconclusive),
            vec![],
            Outcome::Inconclusive,
            "returned no data",
        ),
        (
            t(Some(1.0), None, OnNoData::Fail),
            vec![],
            Outcome::Fail,
            "returned no data",
        ),
        (
            t(Some(1.0), None, OnNoData::Pass),
            vec![],
            Outcome::Pass,
            "returned no data",
        ),
    ];
    for (policy, samples, outcome, words) in cases {
        let r = threshold("dependency:kafka", &policy, &samples, dep.clone());
        assert_eq!(r.outcome, outcome, "{}", r.summary);
        assert!(r.summary.contains(words), "{}", r.summary);
        assert_eq!(r.on_fail, dep);
    }
    let r = threshold(
        "dependency:kafka",
        &t(Some(1.0), None, OnNoData::Fail),
        &vec![0.0],
        dep,
    );
    assert_eq!(
        (r.value, r.threshold),
        (
            Some(0.0),
            Some(crate::checks::Threshold {
                bound: Bound::Min,
                value: 1.0
            })
        )
    );
}
