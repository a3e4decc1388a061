//! Metrics presence (pure): a series that existed before the upgrade must not vanish.
//!
//! Absence is a finding only with evidence that it is real, never from one empty answer:
//! - "existed before" is read over a look-back range ending at the upgrade, so a gap in
//!   Prometheus at the upgrade is not "never existed"; when Prometheus recorded no scrape at
//!   all in that range, whether the series existed is unknown;
//! - the series must have had no sample for the whole grace (at least two scrape intervals),
//!   counted from its last sample, from the upgrade, and from the last time Prometheus
//!   answered again after failing;
//! - Prometheus must have scraped the series' job successfully during that grace (`up == 1`,
//!   at least half of the expected scrapes): then the target answers and no longer exposes the
//!   series, a `fail`. When the job has no target Prometheus could scrape (the pods are not
//!   running, or not scraped), absence is explained by that, not proven: `pending` until the
//!   readiness deadline (the pod checks judge the pods), `inconclusive` after it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{Bound, CheckId, CheckResult, FailClass, Outcome, Revision, Samples};
use crate::config::PresencePolicy;
use crate::units::{between, human, num};

/// Grace before a series counts as absent: the configured grace, but at least two scrapes.
pub fn absence_grace(metrics_grace: Duration, scrape_interval: Duration) -> Duration {
    metrics_grace.max(scrape_interval * 2)
}

/// How far before the upgrade a series counts as "existing before": Prometheus' own
/// staleness window (5 m) or ten scrape intervals, whichever is longer.
pub fn lookback(scrape_interval: Duration) -> Duration {
    Duration::from_secs(300).max(scrape_interval * 10)
}

/// Successful scrapes of the job during the grace that prove Prometheus was scraping it:
/// half of those expected, at least two.
pub fn scrapes_needed(grace: Duration, scrape_interval: Duration) -> f64 {
    let expected = grace.as_secs_f64() / scrape_interval.as_secs_f64().max(0.001);
    (expected / 2.0).floor().max(2.0)
}

/// What was known at the upgrade, read once per revision over the look-back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceBaseline {
    /// Series per `job` label (`""` for series without one).
    pub by_job: BTreeMap<String, f64>,
    /// The `namespace` labels of the series (empty: none carried one).
    pub namespaces: std::collections::BTreeSet<String>,
}

impl PresenceBaseline {
    /// The jobs that exposed the series (non-empty `job` labels).
    pub fn jobs(&self) -> Vec<&str> {
        self.by_job
            .keys()
            .filter(|j| !j.is_empty())
            .map(String::as_str)
            .collect()
    }

    /// The namespaces of the series (non-empty `namespace` labels).
    pub fn namespaces(&self) -> Vec<&str> {
        self.namespaces.iter().map(String::as_str).collect()
    }

    fn total(&self) -> f64 {
        self.by_job.values().sum()
    }
}

/// This round's answers for one presence item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceAnswers {
    /// `count(q)` now.
    pub now: Samples,
    /// Series with a sample within the grace (`count(count_over_time((q)[grace:]))`).
    pub seen: Samples,
    /// Successful scrapes of the best target of the series' jobs within the grace
    /// (`max(sum_over_time(up{job=~"..."}[grace]))`); `None` when no job is known.
    pub scrapes: Option<Samples>,
}

/// What judging presence needs beyond the answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceContext {
    /// Scrape interval of the judged metrics.
    pub scrape_interval: Duration,
    /// Whether Prometheus recorded any successful scrape in the look-back before the upgrade.
    pub scraping_at_upgrade: bool,
    /// When Prometheus answered again after its last failure, if it failed.
    pub answering_since: Option<Timestamp>,
}

fn first(s: &Samples) -> f64 {
    s.iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(0.0, f64::max)
}

/// Judges one presence item.
pub fn presence(
    r: &Revision<'_>,
    p: &PresencePolicy,
    before: &PresenceBaseline,
    a: &PresenceAnswers,
    ctx: PresenceContext,
) -> CheckResult {
    let check = CheckId::MetricsPresence(p.name.clone());
    let grace = absence_grace(r.policy.metrics_grace, ctx.scrape_interval);
    let now_count = first(&a.now);
    let result = |outcome, summary: String| {
        CheckResult::new(check.clone(), outcome, summary)
            .value(now_count)
            .threshold(Bound::Min, 1.0)
            .window(grace)
    };
    let before_count = before.total();
    let jobs = before.jobs();
    let jobs_words = if jobs.is_empty() {
        String::new()
    } else {
        format!(" (job {})", jobs.join(", "))
    };
    if now_count >= 1.0 {
        let before = if before_count >= 1.0 {
            format!("before the upgrade: {}", num(before_count))
        } else {
            "none before the upgrade".to_string()
        };
        return result(
            Outcome::Pass,
            format!("{}: {} series ({before})", p.name, num(now_count)),
        );
    }
    if before_count < 1.0 {
        return if ctx.scraping_at_upgrade {
            result(
                Outcome::Pass,
                format!(
                    "{}: no series in the {} before the upgrade nor now: nothing vanished",
                    p.name,
                    human(lookback(ctx.scrape_interval))
                ),
            )
        } else {
            unknown(
                r,
                result(
                    Outcome::Pending,
                    format!(
                        "{}: no series now, and Prometheus recorded no scrape in the {} before the upgrade, so whether it existed is unknown",
                        p.name,
                        human(lookback(ctx.scrape_interval))
                    ),
                ),
            )
        };
    }
    if r.elapsed() < grace {
        return result(
            Outcome::Pending,
            format!(
                "{}: no series yet; absent only after {} without a sample",
                p.name,
                human(grace)
            ),
        );
    }
    if let Some(back) = ctx.answering_since
        && between(back, r.now) < grace
    {
        return result(
            Outcome::Pending,
            format!(
                "{}: no series; Prometheus answers again since {}, absence counts from then ({} needed)",
                p.name,
                human(between(back, r.now)),
                human(grace)
            ),
        );
    }
    if first(&a.seen) >= 1.0 {
        return result(
            Outcome::Pending,
            format!(
                "{}: not in the latest answer but sampled within the last {}",
                p.name,
                human(grace)
            ),
        );
    }
    let needed = scrapes_needed(grace, ctx.scrape_interval);
    match &a.scrapes {
        Some(scrapes) if first(scrapes) >= needed => result(
            Outcome::Fail,
            format!(
                "no metrics: {} had {} series before the upgrade{jobs_words} and none for {}, although Prometheus scraped that job successfully {} times meanwhile: the new version no longer exposes it (was the right image deployed?)",
                p.name,
                num(before_count),
                human(grace),
                num(first(scrapes))
            ),
        ),
        Some(scrapes) => unknown(
            r,
            result(
                Outcome::Pending,
                format!(
                    "{}: absent for {}, but Prometheus scraped its job{jobs_words} successfully only {} times in that time (at least {} needed): the pods that exposed it are not running or not scraped; absence alone is not a failure, the pod checks judge the pods",
                    p.name,
                    human(grace),
                    num(first(scrapes)),
                    num(needed)
                ),
            ),
        ),
        None => unknown(
            r,
            result(
                Outcome::Pending,
                format!(
                    "{}: absent for {}, but its series carry no job label, so upgrade-guard cannot confirm that Prometheus scraped their target (select raw series, not an aggregation, to judge absence)",
                    p.name,
                    human(grace)
                ),
            ),
        ),
    }
}

/// Absence that cannot be proven: pending until the readiness deadline (the service may
/// still be starting), inconclusive after it.
fn unknown(r: &Revision<'_>, pending: CheckResult) -> CheckResult {
    if r.past_readiness_deadline() {
        CheckResult {
            outcome: Outcome::Inconclusive,
            summary: format!(
                "{}; cannot tell absence from a scrape problem {} after the upgrade",
                pending.summary,
                human(r.elapsed())
            ),
            on_fail: FailClass::Investigate,
            ..pending
        }
    } else {
        pending
    }
}

#[cfg(test)]
#[path = "presence_tests.rs"]
mod tests;
