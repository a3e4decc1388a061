//! Lag trend (pure): "validate that there is no growing backlog".
//!
//! Judged with the semantics of a consumer that restarts: while its pods are down or starting
//! the backlog rises, and once it processes again the backlog drains. So:
//! - nothing is judged before a full `window` after the upgrade, nor with fewer than
//!   `min_samples` points (at the scrape interval) in the window;
//! - "growing" means the slope over the window **and** over its recent part (a quarter of the
//!   window, at least `min_samples` scrapes) both exceed `max_slope`: a backlog that rose
//!   during a restart and now drains is not growing; a level above `max_level` counts only
//!   while it is not draining;
//! - while the release's workloads are not yet Ready and the readiness deadline has not
//!   passed, a growing backlog is reported as `pending` (it is expected during a restart);
//! - when a dependency failed or had no data within the window, the failure recommends fixing
//!   that dependency (or investigating), never a rollback;
//! - a metric with no series before the upgrade nor now is `warn` ("not judged"), never
//!   `inconclusive` for ever; NaN is `inconclusive`, never a pass.
//!
//! The `for:` duration is applied by the caller (`super::hold`).

use std::time::Duration;

use jiff::Timestamp;

use super::{Bound, CheckId, CheckResult, FailClass, Outcome, Revision, Samples};
use crate::config::LagPolicy;
use crate::units::{human, num};

/// The recent part of the window whose slope must also exceed the limit.
pub fn recent_window(p: &LagPolicy, scrape_interval: Duration) -> Duration {
    (p.window / 4)
        .max(scrape_interval * p.min_samples)
        .min(p.window)
}

/// The lag at the upgrade, read once per revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagBaseline {
    /// Slope over the window ending at the upgrade.
    pub slope: Samples,
    /// Last level within the look-back ending at the upgrade (empty: no series then).
    pub level: Samples,
}

/// This round's answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagAnswers {
    /// Slope over the window.
    pub slope: Samples,
    /// Slope over the recent part of the window.
    pub recent_slope: Samples,
    /// The level now.
    pub level: Samples,
    /// Points with a value in the window, at the scrape interval, per series (steps of a
    /// subquery: Prometheus' look-back fills them from older samples).
    pub samples: Samples,
    /// Scrapes Prometheus really took within the window (empty: it has no `up` to tell).
    pub scrapes: Samples,
    /// The same within the recent part of the window.
    pub recent_scrapes: Samples,
}

/// Why a dependency cannot be ruled out as the cause of a growing backlog.
#[derive(Debug, Clone, PartialEq)]
pub enum DependencyTrouble {
    /// Outside its bounds within the window; the last time it was.
    OutOfBounds {
        /// The dependency.
        name: String,
        /// The last point at which it was outside its bounds.
        last: Timestamp,
    },
    /// No data at some points of the window.
    NoData {
        /// The dependency.
        name: String,
        /// Points with data.
        points: f64,
        /// Points expected.
        expected: f64,
    },
    /// Its state within the window could not be read.
    Unknown {
        /// The dependency.
        name: String,
        /// Why.
        error: String,
    },
}

impl DependencyTrouble {
    fn words(&self) -> String {
        match self {
            Self::OutOfBounds { name, last } => format!(
                "{name} was outside its bounds within the lag window (last at {})",
                last.strftime("%H:%M:%S UTC")
            ),
            Self::NoData {
                name,
                points,
                expected,
            } => format!(
                "{name} had data at only {} of {} points within the lag window",
                num(*points),
                num(*expected)
            ),
            Self::Unknown { name, error } => {
                format!("{name}'s state within the lag window is unknown ({error})")
            }
        }
    }
}

/// What judging the lag needs beyond the answers.
#[derive(Debug, Clone, PartialEq)]
pub struct LagContext {
    /// Scrape interval of the lag metric.
    pub scrape_interval: Duration,
    /// Whether Prometheus recorded any successful scrape in the look-back before the upgrade.
    pub scraping_at_upgrade: bool,
    /// Every workload of the release has rolled out (vacuously true without workloads).
    pub workloads_ready: bool,
    /// Dependencies that cannot be ruled out as the cause.
    pub dependencies: Vec<DependencyTrouble>,
}

fn worst_high(s: &Samples) -> Option<f64> {
    s.iter().copied().reduce(f64::max)
}

fn worst_low(s: &Samples) -> Option<f64> {
    s.iter().copied().reduce(f64::min)
}

/// A rate with its sign (`+2`, `-0.5`, `+0`).
fn signed(v: f64) -> String {
    if v < 0.0 {
        num(v)
    } else {
        format!("+{}", num(v))
    }
}

/// Judges the backlog.
pub fn lag(
    r: &Revision<'_>,
    p: &LagPolicy,
    before: &LagBaseline,
    a: &LagAnswers,
    ctx: &LagContext,
) -> CheckResult {
    let check = &CheckId::Lag;
    let plain = |outcome, summary: String| {
        let class = if outcome == Outcome::Inconclusive {
            FailClass::Investigate
        } else {
            FailClass::Rollback
        };
        CheckResult::new(check, outcome, summary)
            .window(p.window)
            .on_fail(class)
    };
    if r.elapsed() < p.window {
        return plain(
            Outcome::Pending,
            format!(
                "judged once a full {} window after the upgrade is available",
                human(p.window)
            ),
        );
    }
    let all = [&a.slope, &a.recent_slope, &a.level, &a.samples];
    if all.iter().any(|s| s.iter().any(|v| v.is_nan())) {
        return plain(
            Outcome::Inconclusive,
            "the lag query returned NaN (not a number): cannot judge the backlog".to_string(),
        );
    }
    if let Some(result) = not_scraping(p, a, ctx.scrape_interval) {
        return plain(Outcome::Pending, result);
    }
    let level = worst_high(&a.level);
    if level.is_none() && a.slope.is_empty() {
        return plain(no_data_outcome(before, ctx), no_data_words(p, before, ctx));
    }
    let points = worst_low(&a.samples).unwrap_or(0.0);
    let (Some(slope), Some(recent)) = (worst_high(&a.slope), worst_high(&a.recent_slope)) else {
        return too_few(r, p, points, ctx, plain);
    };
    if points < f64::from(p.min_samples) {
        return too_few(r, p, points, ctx, plain);
    }
    let slope_before = worst_high(&before.slope).filter(|v| !v.is_nan());
    let level_before = worst_high(&before.level).filter(|v| !v.is_nan());
    let before_words = format!(
        "before the upgrade: {}{}",
        slope_before.map_or("no slope".to_string(), |s| format!("{}/s", signed(s))),
        level_before.map_or(String::new(), |l| format!(", level {}", num(l)))
    );
    let recent_window = recent_window(p, ctx.scrape_interval);
    let trend = format!(
        "{}/s over {}, {}/s over the last {}",
        signed(slope),
        human(p.window),
        signed(recent),
        human(recent_window)
    );
    let growing = slope > p.max_slope && recent > p.max_slope;
    let ceiling = p.max_level.zip(level).filter(|(c, l)| l > c);
    let with_numbers = |outcome, summary: String, value: f64, limit: f64| {
        plain(outcome, summary)
            .value(value)
            .threshold(Bound::Max, limit)
    };
    let (finding, value, limit, already) = if growing {
        (
            format!(
                "backlog growing: {trend} (limit {}/s; {before_words})",
                signed(p.max_slope)
            ),
            slope,
            p.max_slope,
            slope_before.is_some_and(|b| b > p.max_slope && b >= slope * 0.9),
        )
    } else if let Some((c, l)) = ceiling {
        if recent < 0.0 {
            return with_numbers(
                Outcome::Warn,
                format!(
                    "backlog {} above its ceiling {} but draining: {trend} ({before_words})",
                    num(l),
                    num(c)
                ),
                l,
                c,
            );
        }
        (
            format!(
                "backlog {} above its ceiling {} and not draining: {trend} ({before_words})",
                num(l),
                num(c)
            ),
            l,
            c,
            level_before.is_some_and(|b| b > c),
        )
    } else {
        return with_numbers(
            Outcome::Pass,
            format!(
                "no growing backlog: {trend}{} ({before_words})",
                level.map_or(String::new(), |l| format!(", level {}", num(l)))
            ),
            slope,
            p.max_slope,
        );
    };
    if already {
        return with_numbers(
            Outcome::Warn,
            format!("{finding}; it was so before the upgrade already"),
            value,
            limit,
        );
    }
    if !ctx.workloads_ready && !r.past_readiness_deadline() {
        return with_numbers(
            Outcome::Pending,
            format!(
                "{finding}; {} is not Ready yet and a restarting service's backlog rises until it processes again: judged once it is Ready (readiness deadline {})",
                r.summary.name,
                human(r.policy.readiness_deadline)
            ),
            value,
            limit,
        );
    }
    let failed = with_numbers(Outcome::Fail, finding, value, limit);
    attribute(failed, &ctx.dependencies)
}

/// A lag failure while a dependency was in trouble: the dependency, not the release.
fn attribute(failed: CheckResult, troubles: &[DependencyTrouble]) -> CheckResult {
    if troubles.is_empty() {
        return failed;
    }
    let words: Vec<String> = troubles.iter().map(DependencyTrouble::words).collect();
    let down = troubles.iter().find_map(|t| match t {
        DependencyTrouble::OutOfBounds { name, .. } => Some(name.clone()),
        _ => None,
    });
    let (class, advice) = match down {
        Some(name) => (
            FailClass::FixDependency { name: name.clone() },
            format!(
                "the backlog is likely its consequence: fix {name} first, a rollback would not help"
            ),
        ),
        None => (
            FailClass::Investigate,
            "it cannot be ruled out as the cause: investigate before any rollback".to_string(),
        ),
    };
    CheckResult {
        summary: format!("{}; {}: {advice}", failed.summary, words.join("; ")),
        ..failed
    }
    .on_fail(class)
}

fn no_data_outcome(before: &LagBaseline, ctx: &LagContext) -> Outcome {
    if before.level.is_empty() && ctx.scraping_at_upgrade {
        Outcome::Warn
    } else {
        Outcome::Inconclusive
    }
}

fn no_data_words(p: &LagPolicy, before: &LagBaseline, ctx: &LagContext) -> String {
    if !before.level.is_empty() {
        "no data for the lag query now (it had data before the upgrade; metrics_presence judges an absence)".to_string()
    } else if ctx.scraping_at_upgrade {
        format!(
            "not judged: the lag query has no series, neither before the upgrade nor now (is the metric scraped? query: {})",
            p.query
        )
    } else {
        "no data for the lag query now, and Prometheus recorded no scrape before the upgrade"
            .to_string()
    }
}

/// Why the window cannot be judged yet because Prometheus itself was not scraping during
/// much of it (down, restarting, its targets not yet rediscovered), if so. Its look-back
/// would fill the missing steps with the last sample from before: a backlog that grew during
/// the outage would read flat. Judged from scrapes it really took: at least half the
/// window's and `min_samples` in the recent part.
fn not_scraping(p: &LagPolicy, a: &LagAnswers, scrape_interval: Duration) -> Option<String> {
    let taken = worst_high(&a.scrapes)?;
    let recent = worst_high(&a.recent_scrapes).unwrap_or(taken);
    let expected = p.window.as_secs_f64() / scrape_interval.as_secs_f64().max(0.001);
    let needed = (expected / 2.0).max(f64::from(p.min_samples));
    let recent_needed = f64::from(p.min_samples);
    (taken < needed || recent < recent_needed).then(|| {
        format!(
            "Prometheus took only {} scrape(s) in the last {} ({} in the recent {}): it was not scraping (down, restarting, or rediscovering its targets), and its look-back would fill the gap with samples from before; the backlog is judged from real samples once it has scraped at least {} of the window and {} recently",
            num(taken),
            human(p.window),
            num(recent),
            human(recent_window(p, scrape_interval)),
            num(needed.ceil()),
            p.min_samples
        )
    })
}

fn too_few(
    r: &Revision<'_>,
    p: &LagPolicy,
    points: f64,
    ctx: &LagContext,
    plain: impl Fn(Outcome, String) -> CheckResult,
) -> CheckResult {
    let words = format!(
        "only {} points in the {} window at the {} scrape interval; a slope needs at least {}",
        num(points),
        human(p.window),
        human(ctx.scrape_interval),
        p.min_samples
    );
    if r.elapsed() < p.window * 2 {
        plain(Outcome::Pending, words)
    } else {
        plain(
            Outcome::Inconclusive,
            format!("{words} (is prometheus.scrape_interval right, and is the metric scraped?)"),
        )
    }
}

#[cfg(test)]
#[path = "lag_tests.rs"]
mod tests;
