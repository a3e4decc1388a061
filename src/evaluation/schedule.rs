//! Pacing of evaluation rounds: every `interval`, or every `retry_interval` while Prometheus
//! fails, until a final verdict or a deadline. Timed with tokio's clock, so tests run it with
//! paused time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often rounds run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Normal interval between rounds.
    pub interval: Duration,
    /// Interval after a round in which a query failed.
    pub retry_interval: Duration,
}

impl Pacing {
    /// The pause before the next round.
    pub fn pause(&self, provider_trouble: bool) -> Duration {
        if provider_trouble {
            self.retry_interval.min(self.interval)
        } else {
            self.interval
        }
    }
}

/// Something that can run a round: returns its report and whether a query failed.
pub trait Rounds {
    /// What a round produces.
    type Report;
    /// Runs one round.
    fn round(&mut self) -> impl Future<Output = Self::Report>;
    /// Whether the last round had a provider failure.
    fn provider_trouble(&self) -> bool;
}

/// Runs rounds until `done` accepts a report or `wait` has passed (at least one round runs);
/// returns the last report.
pub async fn until<R: Rounds>(
    rounds: &mut R,
    pacing: Pacing,
    wait: Duration,
    mut done: impl FnMut(&R::Report) -> bool,
) -> R::Report {
    let deadline = Instant::now() + wait;
    loop {
        let report = rounds.round().await;
        if done(&report) {
            return report;
        }
        let pause = pacing.pause(rounds.provider_trouble());
        if Instant::now() + pause > deadline {
            return report;
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::provider::{ProviderError, ProviderState};
    use crate::checks::{CheckResult, Outcome};

    /// Seconds since the first round.
    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    /// A check whose Prometheus answers as scripted; records when each round ran.
    struct Scripted {
        answers: Vec<bool>,
        state: ProviderState,
        started: Instant,
        ran_at: Vec<Duration>,
        trouble: bool,
    }

    impl Scripted {
        fn new(answers: &[bool]) -> Self {
            Self {
                answers: answers.iter().rev().copied().collect(),
                state: ProviderState::default(),
                started: Instant::now(),
                ran_at: Vec::new(),
                trouble: false,
            }
        }
    }

    impl Rounds for Scripted {
        type Report = CheckResult;

        async fn round(&mut self) -> CheckResult {
            self.ran_at.push(Instant::now() - self.started);
            let ok = self.answers.pop().unwrap_or(true);
            self.trouble = !ok;
            if ok {
                self.state
                    .success(CheckResult::new("lag", Outcome::Pass, "fine"))
            } else {
                self.state.failure(
                    "lag",
                    &ProviderError::Unavailable("connection refused".into()),
                    4,
                )
            }
        }

        fn provider_trouble(&self) -> bool {
            self.trouble
        }
    }

    const PACING: Pacing = Pacing {
        interval: Duration::from_secs(30),
        retry_interval: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_every_10s_and_inconclusive_at_the_4th() {
        let mut s = Scripted::new(&[true, false, false, false, false]);
        let report = until(&mut s, PACING, Duration::from_secs(600), |r| {
            r.outcome == Outcome::Inconclusive
        })
        .await;
        assert_eq!(report.outcome, Outcome::Inconclusive);
        // A normal interval after the good round, then the 10 s retry.
        assert_eq!(s.ran_at, secs(&[0, 30, 40, 50, 60]));
    }

    #[tokio::test(start_paused = true)]
    async fn recovery_goes_back_to_the_normal_interval() {
        let mut s = Scripted::new(&[false, false, true, true]);
        until(&mut s, PACING, Duration::from_secs(75), |_| false).await;
        assert_eq!(s.ran_at, secs(&[0, 10, 20, 50]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_bounds_the_rounds_and_one_round_always_runs() {
        let mut s = Scripted::new(&[]);
        until(&mut s, PACING, Duration::ZERO, |_| false).await;
        assert_eq!(s.ran_at, secs(&[0]));
        let mut s = Scripted::new(&[]);
        until(&mut s, PACING, Duration::from_secs(65), |_| false).await;
        assert_eq!(s.ran_at, secs(&[0, 30, 60]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_verdict_ends_at_once() {
        let mut s = Scripted::new(&[true]);
        until(&mut s, PACING, Duration::from_secs(600), |r| {
            r.outcome == Outcome::Pass
        })
        .await;
        assert_eq!(s.ran_at, secs(&[0]));
    }
}
