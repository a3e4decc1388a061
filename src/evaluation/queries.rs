//! The queries of a round (pure): which PromQL expressions each revision under evaluation
//! adds to the batched query of each check type, and how the batch's answers (and the `sql`
//! checks' answers) are read back into one plain [`RevisionAnswers`] per revision, the
//! inputs of its checks. Keys: `b<i>-…` for the baseline of revision `i` (evaluated with `@`
//! at its upgrade), `r<i>-…` for this round.

use std::time::Duration;

use jiff::Timestamp;

use std::collections::BTreeMap;

use super::revision::{Baseline, Evaluation};
use crate::checks::Samples;
use crate::checks::lag::{DependencyTrouble, LagAnswers, LagBaseline, recent_window};
use crate::checks::presence::{PresenceAnswers, PresenceBaseline, absence_grace, lookback};
use crate::checks::provider::ProviderError;
use crate::config::{OnNoData, Source, SqlSource};
use crate::gather::postgres::{SqlAnswer, SqlError};
use crate::gather::prometheus::{Answers, answer, values};
use crate::gather::promql;

fn key(prefix: char, i: usize, item: &str) -> String {
    format!("{prefix}{i}-{item}")
}

/// The baseline expressions of revision `i`.
pub(super) fn baseline_items(i: usize, e: &Evaluation, scrape: Duration) -> Vec<(String, String)> {
    let at = Some(e.started);
    let back = lookback(scrape);
    let mut items: Vec<(String, String)> = e
        .policy
        .metrics_presence
        .iter()
        .enumerate()
        .map(|(j, p)| {
            (
                key('b', i, &format!("p{j}")),
                promql::existed_by_job(&e.query(&p.query), back, scrape, at),
            )
        })
        .collect();
    if let Some(lag) = &e.policy.lag {
        let q = e.query(&lag.query);
        items.push((key('b', i, "ls"), promql::slope(&q, lag.window, scrape, at)));
        items.push((key('b', i, "ll"), promql::last_within(&q, back, scrape, at)));
    }
    if !items.is_empty() {
        items.push((
            key('b', i, "up"),
            promql::successful_scrapes(&[], &[], back, at),
        ));
    }
    items
}

fn samples(answers: &Answers, key: &str) -> Result<Samples, ProviderError> {
    answer(answers, key).map(|s| values(&s))
}

/// An item's answer, except that an unavailable Prometheus fails the whole baseline (it is
/// read again next round).
fn item<T>(r: Result<T, ProviderError>) -> Result<Result<T, ProviderError>, ProviderError> {
    match r {
        Err(e @ ProviderError::Unavailable(_)) => Err(e),
        other => Ok(other),
    }
}

/// Reads the baseline of revision `i`; `Err` only while Prometheus is unavailable.
pub(super) fn baseline_from(
    i: usize,
    e: &Evaluation,
    answers: &Answers,
) -> Result<Baseline, ProviderError> {
    let mut presence = Vec::new();
    for j in 0..e.policy.metrics_presence.len() {
        let by_job = answer(answers, &key('b', i, &format!("p{j}"))).map(|series| {
            let mut baseline = PresenceBaseline::default();
            for (labels, v) in series {
                let job = labels.get("job").cloned().unwrap_or_default();
                *baseline.by_job.entry(job).or_default() += v;
                if let Some(ns) = labels.get("namespace").filter(|ns| !ns.is_empty()) {
                    baseline.namespaces.insert(ns.clone());
                }
            }
            baseline
        });
        presence.push(item(by_job)?);
    }
    let lag = if e.policy.lag.is_some() {
        let slope = item(samples(answers, &key('b', i, "ls")))?;
        let level = item(samples(answers, &key('b', i, "ll")))?;
        slope.and_then(|slope| level.map(|level| LagBaseline { slope, level }))
    } else {
        Ok(LagBaseline::default())
    };
    let scraping_at_upgrade = if presence.is_empty() && e.policy.lag.is_none() {
        false
    } else {
        item(samples(answers, &key('b', i, "up")))?.is_ok_and(|up| up.iter().any(|v| *v >= 1.0))
    };
    Ok(Baseline {
        presence,
        lag,
        scraping_at_upgrade,
    })
}

/// This round's expressions, per check type.
#[derive(Debug, Default)]
pub(super) struct RoundItems {
    pub presence: Vec<(String, String)>,
    pub lag: Vec<(String, String)>,
    pub dependencies: Vec<(String, String)>,
    pub custom: Vec<(String, String)>,
}

impl RoundItems {
    /// Adds the expressions of revision `i`.
    pub fn add(&mut self, i: usize, e: &Evaluation, scrape: Duration) {
        self.add_presence(i, e, scrape);
        self.add_others(i, e, scrape);
    }

    /// Adds the `metrics_presence` expressions of revision `i` (all the watch after the bake
    /// asks Prometheus).
    pub fn add_presence(&mut self, i: usize, e: &Evaluation, scrape: Duration) {
        let grace = absence_grace(e.policy.metrics_grace, scrape);
        for (j, p) in e.policy.metrics_presence.iter().enumerate() {
            let q = e.query(&p.query);
            self.presence
                .push((key('r', i, &format!("p{j}n")), promql::count(&q)));
            self.presence.push((
                key('r', i, &format!("p{j}s")),
                promql::seen_within(&q, grace, scrape),
            ));
            let before = e
                .baseline
                .as_ref()
                .and_then(|b| b.presence.get(j))
                .and_then(|b| b.as_ref().ok());
            let jobs = before.map(PresenceBaseline::jobs).unwrap_or_default();
            let namespaces = before.map(PresenceBaseline::namespaces).unwrap_or_default();
            if !jobs.is_empty() {
                self.presence.push((
                    key('r', i, &format!("p{j}u")),
                    promql::successful_scrapes(&jobs, &namespaces, grace, None),
                ));
            }
        }
    }

    fn add_others(&mut self, i: usize, e: &Evaluation, scrape: Duration) {
        if let Some(l) = &e.policy.lag {
            let q = e.query(&l.query);
            self.lag
                .push((key('r', i, "ls"), promql::slope(&q, l.window, scrape, None)));
            self.lag.push((
                key('r', i, "lr"),
                promql::slope(&q, recent_window(l, scrape), scrape, None),
            ));
            self.lag.push((key('r', i, "ll"), q.clone()));
            self.lag.push((
                key('r', i, "ln"),
                promql::points_within(&q, l.window, scrape),
            ));
            self.lag
                .push((key('r', i, "lu"), promql::scrapes_taken(l.window)));
            self.lag.push((
                key('r', i, "lq"),
                promql::scrapes_taken(recent_window(l, scrape)),
            ));
        }
        for (j, d) in e.policy.dependencies.iter().enumerate() {
            let Some(q) = d.source.promql().map(|q| e.query(q)) else {
                continue;
            };
            if let Some(l) = &e.policy.lag {
                if let Some(bad) = promql::last_out_of_bounds(&q, d.min, d.max, l.window, scrape) {
                    self.dependencies
                        .push((key('r', i, &format!("d{j}b")), bad));
                }
                self.dependencies.push((
                    key('r', i, &format!("d{j}n")),
                    promql::steps_with_data(&q, l.window, scrape),
                ));
            }
            self.dependencies.push((key('r', i, &format!("d{j}")), q));
        }
        for (j, c) in e.policy.custom.iter().enumerate() {
            if let Some(q) = c.source.promql() {
                self.custom
                    .push((key('r', i, &format!("c{j}")), e.query(q)));
            }
        }
    }
}

fn baseline_missing() -> ProviderError {
    ProviderError::Unavailable("the values at the time of the upgrade could not be read yet".into())
}

/// Everything a revision's checks judge from this round's answers, in the order of its
/// policy: each item the answer it got, or the provider error it met.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RevisionAnswers {
    /// Per `metrics_presence` item: the baseline and this round's answers.
    pub presence: Vec<Result<(PresenceBaseline, PresenceAnswers), ProviderError>>,
    /// The migration query's answer, when the migration is confirmed in a database.
    pub migration: Option<SqlAnswer>,
    /// The lag's baseline and this round's answers, when the policy has a lag check.
    pub lag: Option<Result<(LagBaseline, LagAnswers), ProviderError>>,
    /// Dependencies (read from Prometheus) in trouble within the lag window.
    pub dependency_troubles: Vec<DependencyTrouble>,
    /// Per dependency: its value this round.
    pub dependencies: Vec<Bounded>,
    /// Per custom check: its value this round.
    pub custom: Vec<Bounded>,
}

/// A bounded check's value this round, from where the policy reads it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bounded {
    /// A PromQL answer.
    PromQL(Result<Samples, ProviderError>),
    /// A database's answer.
    Sql(SqlAnswer),
}

/// The answer of a SQL query this round (a query that was not run has none).
fn sql_answer(sql: &BTreeMap<SqlSource, SqlAnswer>, query: &SqlSource) -> SqlAnswer {
    sql.get(query).cloned().unwrap_or_else(|| {
        Err(SqlError::Unavailable(format!(
            "database {}: no answer this round",
            query.database
        )))
    })
}

/// The answers of revision `i` (its index in this round's keys).
pub(super) fn revision_answers(
    i: usize,
    e: &Evaluation,
    answers: &Answers,
    sql: &BTreeMap<SqlSource, SqlAnswer>,
    scrape: Duration,
) -> RevisionAnswers {
    let bounded = |source: &Source, promql: Result<Samples, ProviderError>| match source {
        Source::PromQL(_) => Bounded::PromQL(promql),
        Source::Sql(s) => Bounded::Sql(sql_answer(sql, s)),
    };
    RevisionAnswers {
        presence: (0..e.policy.metrics_presence.len())
            .map(|j| presence_answers(i, j, e, answers))
            .collect(),
        migration: e
            .policy
            .migration
            .as_ref()
            .and_then(|m| m.sql.as_ref()?.source.sql())
            .map(|s| sql_answer(sql, s)),
        lag: e.policy.lag.as_ref().map(|_| lag_answers(i, e, answers)),
        dependency_troubles: dependency_troubles(i, e, answers, scrape),
        dependencies: e
            .policy
            .dependencies
            .iter()
            .enumerate()
            .map(|(j, d)| bounded(&d.source, dependency(i, j, answers)))
            .collect(),
        custom: e
            .policy
            .custom
            .iter()
            .enumerate()
            .map(|(j, c)| bounded(&c.source, custom(i, j, answers)))
            .collect(),
    }
}

/// The answers of presence item `j` of revision `i`, with its baseline. This round's
/// errors come first: a query Prometheus rejects is reported as such.
fn presence_answers(
    i: usize,
    j: usize,
    e: &Evaluation,
    answers: &Answers,
) -> Result<(PresenceBaseline, PresenceAnswers), ProviderError> {
    let now = samples(answers, &key('r', i, &format!("p{j}n")))?;
    let seen = samples(answers, &key('r', i, &format!("p{j}s")))?;
    let before = e
        .baseline
        .as_ref()
        .and_then(|b| b.presence.get(j).cloned())
        .ok_or_else(baseline_missing)??;
    let scrapes = if before.jobs().is_empty() {
        None
    } else {
        Some(samples(answers, &key('r', i, &format!("p{j}u")))?)
    };
    Ok((before, PresenceAnswers { now, seen, scrapes }))
}

/// The lag answers of revision `i`, with its baseline (this round's errors first).
fn lag_answers(
    i: usize,
    e: &Evaluation,
    answers: &Answers,
) -> Result<(LagBaseline, LagAnswers), ProviderError> {
    let now = LagAnswers {
        slope: samples(answers, &key('r', i, "ls"))?,
        recent_slope: samples(answers, &key('r', i, "lr"))?,
        level: samples(answers, &key('r', i, "ll"))?,
        samples: samples(answers, &key('r', i, "ln"))?,
        scrapes: samples(answers, &key('r', i, "lu"))?,
        recent_scrapes: samples(answers, &key('r', i, "lq"))?,
    };
    let before = e
        .baseline
        .as_ref()
        .map(|b| b.lag.clone())
        .ok_or_else(baseline_missing)??;
    Ok((before, now))
}

/// The answer of dependency `j` of revision `i`.
fn dependency(i: usize, j: usize, answers: &Answers) -> Result<Samples, ProviderError> {
    samples(answers, &key('r', i, &format!("d{j}")))
}

/// The answer of custom check `j` of revision `i`.
fn custom(i: usize, j: usize, answers: &Answers) -> Result<Samples, ProviderError> {
    samples(answers, &key('r', i, &format!("c{j}")))
}

/// Dependencies of revision `i` that were out of bounds, without data, or unreadable within
/// its lag window.
fn dependency_troubles(
    i: usize,
    e: &Evaluation,
    answers: &Answers,
    scrape: Duration,
) -> Vec<DependencyTrouble> {
    let Some(lag) = &e.policy.lag else {
        return Vec::new();
    };
    let expected = (lag.window.as_secs_f64() / scrape.as_secs_f64().max(0.001)).floor();
    let mut troubles = Vec::new();
    for (j, d) in e.policy.dependencies.iter().enumerate() {
        // SQL dependencies have no history in Prometheus: the rounds keep theirs.
        if d.source.promql().is_none() {
            continue;
        }
        let name = d.name.clone();
        // Every dependency has a bound (the configuration refuses one without).
        let bad = samples(answers, &key('r', i, &format!("d{j}b")));
        let points = samples(answers, &key('r', i, &format!("d{j}n")));
        match (bad, points) {
            (Err(e), _) | (_, Err(e)) => troubles.push(DependencyTrouble::Unknown {
                name,
                error: e.to_string(),
            }),
            (Ok(bad), Ok(points)) => {
                let last = bad
                    .iter()
                    .copied()
                    .filter(|t| t.is_finite())
                    .reduce(f64::max)
                    .and_then(|t| Timestamp::from_millisecond((t * 1000.0) as i64).ok());
                let points = points.first().copied().unwrap_or(0.0);
                if let Some(last) = last {
                    troubles.push(DependencyTrouble::OutOfBounds { name, last });
                } else if points + 1.0 < expected && d.on_no_data != OnNoData::Pass {
                    troubles.push(DependencyTrouble::NoData {
                        name,
                        points,
                        expected,
                    });
                }
            }
        }
    }
    troubles
}

#[cfg(test)]
#[path = "queries_tests.rs"]
mod tests;
