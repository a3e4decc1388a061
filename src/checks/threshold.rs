//! Bounded checks (pure): dependencies, custom checks and the migration's database check
//! compare every value of their query (PromQL or SQL) with `min`/`max` (`equals` is both).
//! An empty answer is judged by `on_no_data`; a NaN is `inconclusive` (a 0/0 is not a
//! pass). The `for:` duration is applied by the caller
//! (`super::hold`), so a value out of bounds in one answer never fails the check.
//!
//! A custom check describes the release's own health: while its workloads are still
//! starting (not Ready, readiness deadline not passed) a failure is expected — a Flink job
//! restores its state, a consumer catches up — and is `pending` ([`while_starting`]).
//! Dependencies are outside the release and are not held back.

use super::{Bound, CheckId, CheckResult, FailClass, Outcome, Revision, Samples};
use crate::config::{OnNoData, ThresholdPolicy};
use crate::units::{human, num};

/// A bounded PromQL check; `class` is what a failure recommends.
pub fn threshold(
    check: impl Into<CheckId>,
    p: &ThresholdPolicy,
    samples: &Samples,
    class: FailClass,
) -> CheckResult {
    let check: CheckId = check.into();
    let bounds = match (p.min, p.max) {
        (Some(min), Some(max)) if min == max => format!("equal to {}", num(min)),
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
            check.clone(),
            outcome,
            format!("{}: the query returned no data", p.name),
        )
        .on_fail(class);
    }
    if samples.iter().any(|v| v.is_nan()) {
        return CheckResult::new(
            check.clone(),
            Outcome::Inconclusive,
            format!(
                "{}: the query returned NaN (not a number, for example 0/0): cannot judge; it must be {bounds}",
                p.name
            ),
        )
        .on_fail(FailClass::Investigate);
    }
    let low = samples.iter().copied().reduce(f64::min);
    let high = samples.iter().copied().reduce(f64::max);
    let below = p.min.zip(low).filter(|(min, v)| v < min);
    let above = p.max.zip(high).filter(|(max, v)| v > max);
    let result = match (below, above) {
        (Some((min, v)), _) => CheckResult::new(
            check.clone(),
            Outcome::Fail,
            format!("{} is {} (must be {bounds})", p.name, num(v)),
        )
        .value(v)
        .threshold(Bound::Min, min),
        (None, Some((max, v))) => CheckResult::new(
            check.clone(),
            Outcome::Fail,
            format!("{} is {} (must be {bounds})", p.name, num(v)),
        )
        .value(v)
        .threshold(Bound::Max, max),
        (None, None) => {
            let (v, bound, limit) = match (p.min, p.max, low, high) {
                (Some(min), _, Some(v), _) => (v, Bound::Min, min),
                (None, Some(max), _, Some(v)) => (v, Bound::Max, max),
                _ => (high.unwrap_or_default(), Bound::Max, 0.0),
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

/// A failure of the release's own health while its workloads are still starting (not
/// Ready, readiness deadline not passed) is `pending`, judged once they are Ready.
pub fn while_starting(result: CheckResult, r: &Revision<'_>, workloads_ready: bool) -> CheckResult {
    if result.outcome != Outcome::Fail || workloads_ready || r.past_readiness_deadline() {
        return result;
    }
    CheckResult {
        outcome: Outcome::Pending,
        summary: format!(
            "{}; {} is not Ready yet, so this is expected while it starts: judged once it is Ready (readiness deadline {})",
            result.summary,
            r.summary.name,
            human(r.policy.readiness_deadline)
        ),
        ..result
    }
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
