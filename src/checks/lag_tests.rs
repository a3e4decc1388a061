//! Tests of the lag check with plain answers.

use super::*;
use crate::release::ReleaseStatus;
use crate::test_support::*;

const SCRAPE: Duration = Duration::from_secs(30);

fn lag_policy() -> LagPolicy {
    LagPolicy {
        query: "max(gim_kafka_timestamp_behind)".into(),
        window: 10 * MIN,
        max_slope: 0.5,
        max_level: Some(600.0),
        min_samples: 5,
        hold: MIN,
    }
}

/// (slope, recent slope, level, points in the window)
fn now(slope: f64, recent: f64, level: f64, points: f64) -> LagAnswers {
    LagAnswers {
        slope: vec![slope],
        recent_slope: vec![recent],
        level: vec![level],
        samples: vec![points],
        // Prometheus scraped all along (20 scrapes in the 10m window at 30s).
        scrapes: vec![20.0],
        recent_scrapes: vec![5.0],
    }
}

fn before(slope: f64, level: f64) -> LagBaseline {
    LagBaseline {
        slope: vec![slope],
        level: vec![level],
    }
}

fn ctx(ready: bool) -> LagContext {
    LagContext {
        scrape_interval: SCRAPE,
        scraping_at_upgrade: true,
        workloads_ready: ready,
        dependencies: Vec::new(),
    }
}

#[test]
fn the_recent_window_is_a_quarter_but_holds_the_minimum_samples() {
    assert_eq!(
        recent_window(&lag_policy(), SCRAPE),
        Duration::from_secs(150)
    );
    let p = LagPolicy {
        min_samples: 10,
        ..lag_policy()
    };
    assert_eq!(recent_window(&p, SCRAPE), 5 * MIN);
}

#[test]
fn lag_table() {
    let mut p = policy();
    p.readiness_deadline = 15 * MIN;
    let s = summary(&[], &[]);
    let flat = before(0.0, 20.0);
    let cases: Vec<(
        &str,
        LagBaseline,
        LagAnswers,
        LagContext,
        i64,
        Outcome,
        &str,
    )> = vec![
        (
            "too early",
            flat.clone(),
            now(2.0, 2.0, 300.0, 20.0),
            ctx(true),
            5,
            Outcome::Pending,
            "full 10m window",
        ),
        (
            "growing",
            flat.clone(),
            now(2.0, 2.1, 300.0, 20.0),
            ctx(true),
            11,
            Outcome::Fail,
            "backlog growing: +2/s over 10m, +2.1/s over the last 2m30s (limit +0.5/s; before the upgrade: +0/s, level 20)",
        ),
        (
            "already growing before",
            before(2.1, 200.0),
            now(2.0, 2.0, 300.0, 20.0),
            ctx(true),
            11,
            Outcome::Warn,
            "so before the upgrade already",
        ),
        (
            "rose during a restart, now draining",
            flat.clone(),
            now(2.0, -3.0, 300.0, 20.0),
            ctx(true),
            11,
            Outcome::Pass,
            "no growing backlog",
        ),
        (
            "above the ceiling, not draining",
            flat.clone(),
            now(0.01, 0.01, 900.0, 20.0),
            ctx(true),
            11,
            Outcome::Fail,
            "backlog 900 above its ceiling 600 and not draining",
        ),
        (
            "above the ceiling, draining",
            flat.clone(),
            now(0.01, -1.0, 900.0, 20.0),
            ctx(true),
            11,
            Outcome::Warn,
            "above its ceiling 600 but draining",
        ),
        (
            "above the ceiling before",
            before(0.0, 800.0),
            now(0.01, 0.0, 900.0, 20.0),
            ctx(true),
            11,
            Outcome::Warn,
            "so before the upgrade already",
        ),
        (
            "growing while not Ready yet",
            flat.clone(),
            now(1.0, 1.0, 300.0, 20.0),
            ctx(false),
            11,
            Outcome::Pending,
            "app is not Ready yet",
        ),
        (
            "growing, not Ready past the deadline",
            flat.clone(),
            now(1.0, 1.0, 300.0, 20.0),
            ctx(false),
            15,
            Outcome::Fail,
            "backlog growing",
        ),
        (
            "flat",
            flat.clone(),
            now(0.01, 0.3, 12.0, 20.0),
            ctx(true),
            11,
            Outcome::Pass,
            "no growing backlog: +0.01/s over 10m, +0.3/s over the last 2m30s, level 12",
        ),
        (
            "too few samples",
            flat.clone(),
            now(2.0, 2.0, 300.0, 3.0),
            ctx(true),
            11,
            Outcome::Pending,
            "only 3 points in the 10m window at the 30s scrape interval; a slope needs at least 5",
        ),
        (
            "too few samples for long",
            flat.clone(),
            now(2.0, 2.0, 300.0, 3.0),
            ctx(true),
            21,
            Outcome::Inconclusive,
            "is prometheus.scrape_interval right",
        ),
        (
            "NaN",
            flat.clone(),
            now(2.0, 2.0, f64::NAN, 20.0),
            ctx(true),
            11,
            Outcome::Inconclusive,
            "NaN",
        ),
        (
            "no data now, had data before",
            flat.clone(),
            LagAnswers::default(),
            ctx(true),
            11,
            Outcome::Inconclusive,
            "it had data before the upgrade",
        ),
        (
            "never existed",
            LagBaseline::default(),
            LagAnswers::default(),
            ctx(true),
            11,
            Outcome::Warn,
            "not judged: the lag query has no series, neither before the upgrade nor now",
        ),
        (
            "unknown before",
            LagBaseline::default(),
            LagAnswers::default(),
            LagContext {
                scraping_at_upgrade: false,
                ..ctx(true)
            },
            11,
            Outcome::Inconclusive,
            "recorded no scrape before the upgrade",
        ),
    ];
    for (name, b, a, c, minutes, outcome, words) in cases {
        let r = lag(
            &rev(&s, &p, minutes, ReleaseStatus::Deployed),
            &lag_policy(),
            &b,
            &a,
            &c,
        );
        assert_eq!(r.outcome, outcome, "{name}: {}", r.summary);
        assert!(r.summary.contains(words), "{name}: {}", r.summary);
        if outcome == Outcome::Fail {
            assert_eq!(r.on_fail, FailClass::Rollback, "{name}");
            assert!(r.value.is_some() && r.threshold.is_some(), "{name}");
        }
        if outcome == Outcome::Inconclusive {
            assert_eq!(r.on_fail, FailClass::Investigate, "{name}");
        }
    }
}

/// Issue 7.6: a dependency that was down within the lag window takes the blame.
#[test]
fn a_dependency_in_trouble_within_the_window_is_blamed_not_the_release() {
    let p = policy();
    let s = summary(&[], &[]);
    let r = rev(&s, &p, 11, ReleaseStatus::Deployed);
    let growing = now(2.0, 2.0, 300.0, 20.0);
    let down = DependencyTrouble::OutOfBounds {
        name: "kafka".into(),
        last: "2026-11-25T12:03:10Z".parse().unwrap(),
    };
    let c = LagContext {
        dependencies: vec![down],
        ..ctx(true)
    };
    let result = lag(&r, &lag_policy(), &before(0.0, 20.0), &growing, &c);
    assert_eq!(result.outcome, Outcome::Fail);
    assert_eq!(
        result.on_fail,
        FailClass::FixDependency {
            name: "kafka".into()
        }
    );
    assert!(
        result
            .summary
            .contains("kafka was outside its bounds within the lag window (last at 12:03:10 UTC)"),
        "{}",
        result.summary
    );
    assert!(
        result.summary.contains("fix kafka first"),
        "{}",
        result.summary
    );

    for trouble in [
        DependencyTrouble::NoData {
            name: "postgresql".into(),
            points: 12.0,
            expected: 20.0,
        },
        DependencyTrouble::Unknown {
            name: "postgresql".into(),
            error: "Prometheus did not answer".into(),
        },
    ] {
        let c = LagContext {
            dependencies: vec![trouble],
            ..ctx(true)
        };
        let result = lag(&r, &lag_policy(), &before(0.0, 20.0), &growing, &c);
        assert_eq!(result.on_fail, FailClass::Investigate, "{}", result.summary);
        assert!(result.summary.contains("postgresql"), "{}", result.summary);
        assert!(
            result.summary.contains("investigate before any rollback"),
            "{}",
            result.summary
        );
    }
}

/// Issue 19.11: right after a monitoring outage Prometheus' look-back fills every step of
/// the window with the last sample from before it: the backlog reads flat with all its
/// points. The window is judged only once Prometheus has really scraped half of it and
/// `min_samples` recently; without `up` at all (remote-written data), nothing changes.
#[test]
fn a_window_filled_by_look_back_after_an_outage_is_not_judged() {
    let p = lag_policy();
    let s = summary(&[], &[]);
    let release = policy();
    let r = rev(&s, &release, 30, ReleaseStatus::Deployed);
    let flat = |scrapes: f64, recent: f64| LagAnswers {
        scrapes: vec![scrapes],
        recent_scrapes: vec![recent],
        ..now(0.0, 0.0, 10.0, 20.0)
    };
    for (scrapes, recent) in [(0.0, 0.0), (9.0, 5.0), (15.0, 4.0)] {
        let result = lag(
            &r,
            &p,
            &before(0.0, 10.0),
            &flat(scrapes, recent),
            &ctx(true),
        );
        assert_eq!(result.outcome, Outcome::Pending, "{}", result.summary);
        assert!(
            result.summary.contains("it was not scraping")
                && result
                    .summary
                    .contains("at least 10 of the window and 5 recently"),
            "{}",
            result.summary
        );
    }
    let result = lag(&r, &p, &before(0.0, 10.0), &flat(10.0, 5.0), &ctx(true));
    assert_eq!(result.outcome, Outcome::Pass, "{}", result.summary);
    let remote_written = LagAnswers {
        scrapes: vec![],
        recent_scrapes: vec![],
        ..now(0.0, 0.0, 10.0, 20.0)
    };
    let result = lag(&r, &p, &before(0.0, 10.0), &remote_written, &ctx(true));
    assert_eq!(result.outcome, Outcome::Pass, "{}", result.summary);
}
