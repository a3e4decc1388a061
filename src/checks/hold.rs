//! `for:` durations (pure), like a Prometheus alert rule: a Prometheus-based check whose
//! condition fails is `pending` until the condition has held for the check's `for`, judged
//! from successful answers only. One sample never decides. A round without an answer (a
//! provider error) neither starts nor resets the clock; an answer in which the condition
//! does not hold resets it.

use std::time::Duration;

use jiff::Timestamp;

use super::{CheckResult, Outcome};
use crate::units::{between, human};

/// Since when a check's condition has been failing, in successful answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    /// The first answer of the current failing streak.
    pub failing_since: Option<Timestamp>,
}

impl Hold {
    /// Applies `hold` to a result judged from a successful answer at `now`: a `fail` that has
    /// not held long enough becomes `pending`, with the time it has held in words.
    pub fn apply(&mut self, result: CheckResult, hold: Duration, now: Timestamp) -> CheckResult {
        if result.outcome != Outcome::Fail {
            self.failing_since = None;
            return result;
        }
        let since = *self.failing_since.get_or_insert(now);
        let held = between(since, now);
        if held >= hold {
            return CheckResult {
                summary: format!("{} (for {})", result.summary, human(held)),
                ..result
            };
        }
        CheckResult {
            outcome: Outcome::Pending,
            summary: format!(
                "{}; failing for {} of the {} it must hold before it counts",
                result.summary,
                human(held),
                human(hold)
            ),
            ..result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn r(outcome: Outcome) -> CheckResult {
        CheckResult::new(
            "dependency:kafka",
            outcome,
            "kafka is 0 (must be at least 1)",
        )
    }

    const FOR: Duration = Duration::from_secs(60);

    #[test]
    fn a_failure_counts_only_once_it_has_held() {
        let mut h = Hold::default();
        let first = h.apply(r(Outcome::Fail), FOR, at(0));
        assert_eq!(first.outcome, Outcome::Pending, "one sample never decides");
        assert!(
            first
                .summary
                .contains("failing for 0s of the 1m it must hold"),
            "{}",
            first.summary
        );
        assert_eq!(
            h.apply(r(Outcome::Fail), FOR, at(30)).outcome,
            Outcome::Pending
        );
        let held = h.apply(r(Outcome::Fail), FOR, at(60));
        assert_eq!(held.outcome, Outcome::Fail);
        assert!(held.summary.ends_with("(for 1m)"), "{}", held.summary);
    }

    #[test]
    fn an_answer_where_the_condition_holds_resets_the_clock() {
        let mut h = Hold::default();
        h.apply(r(Outcome::Fail), FOR, at(0));
        assert_eq!(
            h.apply(r(Outcome::Pass), FOR, at(30)).outcome,
            Outcome::Pass
        );
        assert_eq!(h.failing_since, None);
        assert_eq!(
            h.apply(r(Outcome::Fail), FOR, at(70)).outcome,
            Outcome::Pending
        );
        assert_eq!(
            h.apply(r(Outcome::Fail), FOR, at(130)).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn other_outcomes_pass_through_untouched() {
        for o in [
            Outcome::Pass,
            Outcome::Pending,
            Outcome::Warn,
            Outcome::Inconclusive,
        ] {
            let mut h = Hold::default();
            assert_eq!(h.apply(r(o), FOR, at(0)), r(o));
        }
    }
}
