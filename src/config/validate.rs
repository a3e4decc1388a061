//! The rules a resolved configuration must follow (pure): what cannot work is refused with the
//! field's path, and what is valid but defeats its purpose becomes a warning in words.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::database::DatabaseConfig;
use super::error::FieldError;
use super::policy::{FailAction, Mode, OnNoData, ReleasePolicy, ThresholdPolicy};
use crate::units::human;

/// Fewer points than this make a slope meaningless.
const LAG_MIN_SAMPLES_FLOOR: u32 = 3;

pub(super) fn positive(path: &str, d: Duration) -> Result<(), FieldError> {
    if d.is_zero() {
        Err(FieldError::new(
            path.to_string(),
            "must be longer than zero",
        ))
    } else {
        Ok(())
    }
}

/// A `for:` shorter than one scrape interval lets a single sample decide.
fn hold_long_enough(
    path: &str,
    hold: Duration,
    scrape_interval: Duration,
) -> Result<(), FieldError> {
    if hold < scrape_interval {
        return Err(FieldError::new(
            format!("{path}.for"),
            format!(
                "{} is shorter than one scrape interval ({}): a single sample would decide; use at least {}",
                human(hold),
                human(scrape_interval),
                human(scrape_interval)
            ),
        ));
    }
    Ok(())
}

/// Every SQL check of a policy, with its path.
fn sql_checks<'p>(path: &str, p: &'p ReleasePolicy) -> Vec<(String, &'p ThresholdPolicy)> {
    let mut out = Vec::new();
    if let Some(t) = p.migration.as_ref().and_then(|m| m.sql.as_ref()) {
        out.push((format!("{path}.migration"), t));
    }
    for (kind, list) in [("dependencies", &p.dependencies), ("custom", &p.custom)] {
        for (i, t) in list.iter().enumerate() {
            if t.source.sql().is_some() {
                out.push((format!("{path}.{kind}[{i}]"), t));
            }
        }
    }
    out
}

/// SQL checks name a configured database and hold for at least one evaluation interval
/// (their answers come once per round).
pub(super) fn check_sql(
    path: &str,
    p: &ReleasePolicy,
    databases: &BTreeMap<String, DatabaseConfig>,
    evaluation_interval: Duration,
) -> Result<(), FieldError> {
    for (at, t) in sql_checks(path, p) {
        let Some(sql) = t.source.sql() else { continue };
        if !databases.contains_key(&sql.database) {
            let known: Vec<&str> = databases.keys().map(String::as_str).collect();
            return Err(FieldError::new(
                format!("{at}.sql.database"),
                format!(
                    "{:?} is not under databases (defined: {})",
                    sql.database,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if t.hold < evaluation_interval {
            return Err(FieldError::new(
                format!("{at}.for"),
                format!(
                    "{} is shorter than the evaluation interval ({}): a single answer would decide; use at least {}",
                    human(t.hold),
                    human(evaluation_interval),
                    human(evaluation_interval)
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_policy(
    path: &str,
    p: &ReleasePolicy,
    scrape_interval: Duration,
) -> Result<(), FieldError> {
    if p.export_views.enabled && p.export_views.command.as_deref().is_none_or(str::is_empty) {
        return Err(FieldError::new(
            format!("{path}.export_views.command"),
            "export_views is enabled, so name the command to run in the pod",
        ));
    }
    positive(&format!("{path}.bake_window"), p.bake_window)?;
    positive(&format!("{path}.inconclusive_grace"), p.inconclusive_grace)?;
    positive(&format!("{path}.pending_timeout"), p.pending_timeout)?;
    positive(&format!("{path}.stall_timeout"), p.pods.stall_timeout)?;
    for (reason, t) in &p.pods.timeouts {
        positive(&format!("{path}.pod_timeouts.{}", reason.as_str()), *t)?;
    }
    positive(&format!("{path}.rollback_timeout"), p.rollback_timeout)?;
    if !p.after_bake.watch_for.is_zero() {
        positive(
            &format!("{path}.after_bake.interval"),
            p.after_bake.interval,
        )?;
    }
    if let Some(lag) = &p.lag {
        positive(&format!("{path}.lag.window"), lag.window)?;
        if !lag.max_slope.is_finite() {
            return Err(FieldError::new(
                format!("{path}.lag.max_slope"),
                "must be a number",
            ));
        }
        if lag.min_samples < LAG_MIN_SAMPLES_FLOOR {
            return Err(FieldError::new(
                format!("{path}.lag.min_samples"),
                format!(
                    "{} is too few for a slope; use at least {LAG_MIN_SAMPLES_FLOOR}",
                    lag.min_samples
                ),
            ));
        }
        let needed = scrape_interval * lag.min_samples;
        if lag.window < needed {
            return Err(FieldError::new(
                format!("{path}.lag.window"),
                format!(
                    "{} holds fewer than the {} points a slope needs at the {} scrape interval; use at least {}",
                    human(lag.window),
                    lag.min_samples,
                    human(scrape_interval),
                    human(needed)
                ),
            ));
        }
        hold_long_enough(&format!("{path}.lag"), lag.hold, scrape_interval)?;
    }
    if p.mode == Mode::Auto
        && let Some((i, c)) = rollback_on_no_data(p).next()
    {
        return Err(FieldError::new(
            format!("{path}.custom[{i}].on_no_data"),
            format!(
                "on_no_data: fail with action: rollback under mode: auto would roll {:?} back whenever Prometheus lost its data; use inconclusive (or pass), or action: investigate",
                c.name
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for (kind, list) in [("dependencies", &p.dependencies), ("custom", &p.custom)] {
        for (i, t) in list.iter().enumerate() {
            if !names.insert(t.name.clone()) {
                return Err(FieldError::new(
                    format!("{path}.{kind}"),
                    format!("the name {:?} is used twice", t.name),
                ));
            }
            if t.source.promql().is_some() {
                hold_long_enough(&format!("{path}.{kind}[{i}]"), t.hold, scrape_interval)?;
            }
        }
    }
    Ok(())
}

/// Custom checks whose empty answer is a failure that recommends a rollback.
fn rollback_on_no_data(p: &ReleasePolicy) -> impl Iterator<Item = (usize, &ThresholdPolicy)> {
    p.custom
        .iter()
        .enumerate()
        .filter(|(_, c)| c.on_no_data == OnNoData::Fail && c.action == FailAction::Rollback)
}

/// Whether a PromQL query's outermost expression is an aggregation (`sum(...)`,
/// `max by (x) (...)`): its series carry no `job` label.
fn aggregates(query: &str) -> bool {
    const AGGREGATIONS: [&str; 13] = [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "group",
        "count_values",
        "limitk",
    ];
    let q = query.trim_start();
    let word: String = q
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rest = q[word.len()..].trim_start();
    AGGREGATIONS.contains(&word.as_str())
        && (rest.starts_with('(') || rest.starts_with("by") || rest.starts_with("without"))
}

/// Valid settings that defeat their purpose, in words (without the field path).
pub(super) fn warnings(p: &ReleasePolicy) -> Vec<String> {
    let mut out = Vec::new();
    for (j, m) in p.metrics_presence.iter().enumerate() {
        if aggregates(&m.query) {
            out.push(format!(
                "metrics_presence[{j}] ({}): the query aggregates, so its series carry no job label and their absence can never be proven against a scraped target: the check can never fail, only stay pending and then inconclusive; select the raw series",
                m.name
            ));
        }
    }
    for (i, c) in rollback_on_no_data(p) {
        out.push(format!(
            "custom[{i}] ({}): on_no_data: fail with action: rollback recommends a rollback whenever Prometheus answers without data (lost its data, or the series renamed); prefer inconclusive. mode: auto refuses it",
            c.name
        ));
    }
    if p.readiness_deadline + p.pods.stall_timeout > p.bake_window {
        out.push(format!(
            "readiness_deadline ({}) plus stall_timeout ({}) is longer than bake_window ({}): a rollout that stops moving is failed only after the bake window, so the verdict stays progressing until then",
            human(p.readiness_deadline),
            human(p.pods.stall_timeout),
            human(p.bake_window)
        ));
    }
    if let Some(lag) = &p.lag
        && lag.window > p.bake_window
    {
        out.push(format!(
            "lag.window ({}) is longer than bake_window ({}): the lag is judged only once a full window has passed, so the verdict stays progressing until then",
            human(lag.window),
            human(p.bake_window)
        ));
    }
    out
}
