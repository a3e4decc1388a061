//! Table tests of the bounded PromQL checks.

use std::time::Duration;

use super::*;
use crate::config::FailAction;
use crate::release::ReleaseStatus;
use crate::test_support::{policy, rev, summary};

#[test]
fn threshold_table() {
    let t = |min, max, on_no_data| ThresholdPolicy {
        name: "kafka".into(),
        source: crate::config::Source::PromQL("x".into()),
        min,
        max,
        on_no_data,
        action: FailAction::Rollback,
        hold: Duration::from_secs(60),
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

/// Issue 7.4: NaN is never a pass.
#[test]
fn nan_is_inconclusive_never_a_pass() {
    let p = ThresholdPolicy {
        name: "error_ratio".into(),
        source: crate::config::Source::PromQL("x".into()),
        min: None,
        max: Some(0.05),
        on_no_data: OnNoData::Pass,
        action: FailAction::Rollback,
        hold: Duration::from_secs(60),
    };
    for samples in [vec![f64::NAN], vec![0.01, f64::NAN]] {
        let r = threshold("custom:error_ratio", &p, &samples, FailClass::Rollback);
        assert_eq!(r.outcome, Outcome::Inconclusive, "{samples:?}");
        assert_eq!(r.on_fail, FailClass::Investigate);
        assert!(r.summary.contains("NaN"), "{}", r.summary);
    }
}

/// A release's own health failing while it is still starting is expected: pending until
/// it is Ready or its readiness deadline (10 m here) has passed.
#[test]
fn a_custom_failure_while_the_release_starts_is_pending() {
    let p = policy();
    let s = summary(&[], &[]);
    let failing = CheckResult::new(
        "custom:flink_running_jobs",
        Outcome::Fail,
        "flink_running_jobs is 0 (must be at least 1)",
    );
    let starting = while_starting(
        failing.clone(),
        &rev(&s, &p, 3, ReleaseStatus::Deployed),
        false,
    );
    assert_eq!(starting.outcome, Outcome::Pending);
    assert!(
        starting.summary.contains("app is not Ready yet"),
        "{}",
        starting.summary
    );
    assert_eq!(
        while_starting(
            failing.clone(),
            &rev(&s, &p, 3, ReleaseStatus::Deployed),
            true
        ),
        failing
    );
    assert_eq!(
        while_starting(
            failing.clone(),
            &rev(&s, &p, 10, ReleaseStatus::Deployed),
            false
        ),
        failing
    );
    let passing = CheckResult::new("custom:x", Outcome::Pass, "fine");
    assert_eq!(
        while_starting(
            passing.clone(),
            &rev(&s, &p, 3, ReleaseStatus::Deployed),
            false
        ),
        passing
    );
}
