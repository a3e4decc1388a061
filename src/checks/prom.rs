//! Checks judged from Prometheus answers (pure): metrics presence, lag trend, and bounded
//! PromQL checks (dependencies and custom). They only ever see successful answers; a failed
//! query is handled by `super::provider` and can never make a check fail.

use std::time::Duration;

use super::kube::Revision;
use super::{Bound, CheckResult, FailClass, Outcome, human, num};
use crate::config::{LagPolicy, OnNoData, PresencePolicy, ThresholdPolicy};

/// The values of a successful instant query, one per series; empty means "no series".
pub type Samples = Vec<f64>;

fn worst_high(s: &Samples) -> Option<f64> {
    s.iter().copied().filter(|v| !v.is_nan()).reduce(f64::max)
}

fn worst_low(s: &Samples) -> Option<f64> {
    s.iter().copied().filter(|v| !v.is_nan()).reduce(f64::min)
}

/// A rate with its sign (`+2`, `-0.5`, `+0`).
fn signed(v: f64) -> String {
    if v < 0.0 {
        num(v)
    } else {
        format!("+{}", num(v))
    }
}

/// Grace before a series counts as absent: the configured grace, but at least two scrapes.
pub fn absence_grace(metrics_grace: Duration, scrape_interval: Duration) -> Duration {
    metrics_grace.max(scrape_interval * 2)
}

/// A series that existed before the upgrade must still exist after the grace.
/// `before` and `now` are answers of `count(<query>)`.
pub fn presence(
    r: &Revision<'_>,
    p: &PresencePolicy,
    before: &Samples,
    now: &Samples,
    scrape_interval: Duration,
) -> CheckResult {
    let check = format!("metrics_presence:{}", p.name);
    let grace = absence_grace(r.policy.metrics_grace, scrape_interval);
    let before_count = worst_high(before).unwrap_or(0.0);
    let now_count = worst_high(now).unwrap_or(0.0);
    let result = |outcome, summary: String| {
        CheckResult::new(check.clone(), outcome, summary)
            .value(now_count)
            .threshold(Bound::Min, 1.0)
            .window(grace)
    };
    if before_count < 1.0 {
        return result(
            Outcome::Pass,
            format!(
                "{}: no series before the upgrade, nothing to compare",
                p.name
            ),
        );
    }
    if now_count >= 1.0 {
        return result(
            Outcome::Pass,
            format!(
                "{}: {} series (before the upgrade: {})",
                p.name,
                num(now_count),
                num(before_count)
            ),
        );
    }
    if r.elapsed() < grace {
        return result(
            Outcome::Pending,
            format!(
                "{}: no series yet; absent only after {}",
                p.name,
                human(grace)
            ),
        );
    }
    result(
        Outcome::Fail,
        format!(
            "no metrics: {} had {} series before the upgrade and none {} after it; was the image pulled?",
            p.name,
            num(before_count),
            human(r.elapsed())
        ),
    )
}

/// Answers needed by the lag check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagAnswers {
    /// `deriv()` over the window, now.
    pub slope_now: Samples,
    /// The level, now.
    pub level_now: Samples,
    /// `deriv()` over the window ending at the upgrade.
    pub slope_before: Samples,
    /// The level at the upgrade.
    pub level_before: Samples,
}

/// The backlog must not grow faster than allowed, nor sit above its ceiling, when it did
/// not before the upgrade.
pub fn lag(r: &Revision<'_>, p: &LagPolicy, a: &LagAnswers) -> CheckResult {
    let check = "lag";
    if r.elapsed() < p.window {
        return CheckResult::new(
            check,
            Outcome::Pending,
            format!(
                "judged once a full {} window after the upgrade is available",
                human(p.window)
            ),
        )
        .window(p.window);
    }
    let (Some(slope), level) = (worst_high(&a.slope_now), worst_high(&a.level_now)) else {
        return CheckResult::new(check, Outcome::Inconclusive, "no data for the lag query")
            .window(p.window)
            .on_fail(FailClass::Investigate);
    };
    let slope_before = worst_high(&a.slope_before);
    let level_before = worst_high(&a.level_before);
    let before = format!(
        "before the upgrade: {}{}",
        slope_before.map_or("no slope".to_string(), |s| format!("{}/s", signed(s))),
        level_before.map_or(String::new(), |l| format!(", level {}", num(l)))
    );
    let base = |outcome, summary: String| {
        CheckResult::new(check, outcome, summary)
            .value(slope)
            .threshold(Bound::Max, p.max_slope)
            .window(p.window)
    };
    if slope > p.max_slope {
        let already = slope_before.is_some_and(|b| b > p.max_slope && b >= slope * 0.9);
        let words = format!(
            "backlog growing: {}/s over {} (limit {}/s; {before})",
            signed(slope),
            human(p.window),
            signed(p.max_slope)
        );
        return if already {
            base(
                Outcome::Warn,
                format!("{words}; it was already growing before the upgrade"),
            )
        } else {
            base(Outcome::Fail, words)
        };
    }
    if let (Some(ceiling), Some(level)) = (p.max_level, level)
        && level > ceiling
    {
        let words = format!(
            "backlog {} above its ceiling {} ({before})",
            num(level),
            num(ceiling)
        );
        let result = CheckResult::new(check, Outcome::Fail, words.clone())
            .value(level)
            .threshold(Bound::Max, ceiling)
            .window(p.window);
        return if level_before.is_some_and(|b| b > ceiling) {
            CheckResult {
                outcome: Outcome::Warn,
                summary: format!("{words}; it was already above before the upgrade"),
                ..result
            }
        } else {
            result
        };
    }
    base(
        Outcome::Pass,
        format!(
            "no growing backlog: {}/s over {}{} ({before})",
            signed(slope),
            human(p.window),
            level.map_or(String::new(), |l| format!(", level {}", num(l)))
        ),
    )
}

/// A bounded PromQL check; `class` is what a failure recommends.
pub fn threshold(
    check: &str,
    p: &ThresholdPolicy,
    samples: &Samples,
    class: FailClass,
) -> CheckResult {
    let bounds = match (p.min, p.max) {
        (Some(min), Some(max)) => format!("between {} and {}", num(min), num(max)),
        (Some(min), None) => format!("at least {}", num(min)),
        (None, Some(max)) => format!("at most {}", num(max)),
        (None, None) => "unbounded".to_string(),
    };
    if samples.is_empty() {
        let outcome = match p.on_no_data {
            OnNoData::Fail => Outcome::Fail,
            OnNoData::Inconclusive => Outcome::Inconclusive,
            OnNoData::Pass => Outcome::Pass,
        };
        return CheckResult::new(
            check,
            outcome,
            format!("{}: the query returned no data", p.name),
        )
        .on_fail(class);
    }
    let low = worst_low(samples);
    let high = worst_high(samples);
    let below = p.min.zip(low).filter(|(min, v)| v < min);
    let above = p.max.zip(high).filter(|(max, v)| v > max);
    let result = match (below, above) {
        (Some((min, v)), _) => CheckResult::new(
            check,
            Outcome::Fail,
            format!("{} is {} (must be {bounds})", p.name, num(v)),
        )
        .value(v)
        .threshold(Bound::Min, min),
        (None, Some((max, v))) => CheckResult::new(
            check,
            Outcome::Fail,
            format!("{} is {} (must be {bounds})", p.name, num(v)),
        )
        .value(v)
        .threshold(Bound::Max, max),
        (None, None) => {
            let (v, bound, limit) = match (p.min, p.max, low, high) {
                (Some(min), _, Some(v), _) => (v, Bound::Min, min),
                (None, Some(max), _, Some(v)) => (v, Bound::Max, max),
                _ => (high.unwrap_or(f64::NAN), Bound::Max, f64::NAN),
            };
            CheckResult::new(
                check,
                Outcome::Pass,
                format!("{} is {} ({bounds})", p.name, num(v)),
            )
            .value(v)
            .threshold(bound, limit)
        }
    };
    result.on_fail(class)
}

#[cfg(test)]
#[path = "prom_tests.rs"]
mod tests;
