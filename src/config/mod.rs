//! Configuration: one YAML file read into raw serde structs (unknown fields refused), then
//! validated into typed values with units. Errors name the field and, where the parser knows
//! it, the line. Without a file the built-in Genesys Info Mart profile (`default.yaml`, the
//! text `upgrade-guard config default` prints) is used.

mod raw;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::release::ReleaseKey;
use raw::{RawConfig, RawRelease};

/// The built-in profile, exactly as printed by `upgrade-guard config default`.
pub const DEFAULT_PROFILE: &str = include_str!("default.yaml");

/// What upgrade-guard may do for a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Export metrics only.
    Observe,
    /// Alert with the exact command to run.
    Recommend,
    /// Also run the rollback, under the safety rules.
    Auto,
}

/// What a PromQL check concludes when the query succeeds with no series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoData {
    /// No data is a failure.
    Fail,
    /// No data cannot be judged.
    Inconclusive,
    /// No data is fine.
    Pass,
}

/// What a failing custom check recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailAction {
    /// Roll back the release.
    Rollback,
    /// Look into it; no automatic action.
    Investigate,
}

/// Prometheus access.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL of the HTTP API.
    pub url: String,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Retry delay after a failed query.
    pub retry_interval: Duration,
    /// Failed queries in a row before a check reports an error.
    pub errors_before_inconclusive: u32,
    /// Scrape interval of the judged metrics.
    pub scrape_interval: Duration,
}

/// What to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Namespaces; empty means all.
    pub namespaces: Vec<String>,
    /// Pending revisions older than this are reported stuck.
    pub stuck_pending_after: Duration,
    /// Largest decompressed release payload accepted.
    pub max_payload_bytes: usize,
}

/// Migration check settings.
#[derive(Debug, Clone)]
pub struct MigrationPolicy {
    /// Jobs (or hooks) whose name matches are the release's migration.
    pub job_name_pattern: regex::Regex,
    /// A migration must be found.
    pub required: bool,
    /// Workload named in the restart command (default: the release's first workload).
    pub restart: Option<String>,
}

/// A series that must not vanish after an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresencePolicy {
    /// Name shown to the operator.
    pub name: String,
    /// PromQL selecting the series (placeholders not yet substituted).
    pub query: String,
}

/// Lag-trend check settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LagPolicy {
    /// PromQL of the lag level (placeholders not yet substituted).
    pub query: String,
    /// Window of `deriv()`.
    pub window: Duration,
    /// Largest acceptable growth, per second.
    pub max_slope: f64,
    /// Largest acceptable level.
    pub max_level: Option<f64>,
}

/// A PromQL check with bounds (dependency health or custom).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdPolicy {
    /// Name shown to the operator (and the `check` label).
    pub name: String,
    /// PromQL (placeholders not yet substituted).
    pub query: String,
    /// Lowest acceptable value.
    pub min: Option<f64>,
    /// Highest acceptable value.
    pub max: Option<f64>,
    /// What an empty answer means.
    pub on_no_data: OnNoData,
    /// What a failure recommends (custom checks).
    pub action: FailAction,
}

/// Everything that decides how one release is judged.
#[derive(Debug, Clone)]
pub struct ReleasePolicy {
    /// What upgrade-guard may do.
    pub mode: Mode,
    /// Watch time before a revision is declared healthy.
    pub bake_window: Duration,
    /// Workloads must be Ready this long after the upgrade.
    pub readiness_deadline: Duration,
    /// A pod not Ready this long fails the revision.
    pub pending_timeout: Duration,
    /// `--timeout` of the recommended `helm rollback`.
    pub rollback_timeout: Duration,
    /// Minimum wait before a metric counts as absent.
    pub metrics_grace: Duration,
    /// Judge Helm hook results.
    pub hooks: bool,
    /// The migration check, if any.
    pub migration: Option<MigrationPolicy>,
    /// Series that must stay present.
    pub metrics_presence: Vec<PresencePolicy>,
    /// The lag-trend check, if any.
    pub lag: Option<LagPolicy>,
    /// Dependency health checks.
    pub dependencies: Vec<ThresholdPolicy>,
    /// Custom PromQL checks.
    pub custom: Vec<ThresholdPolicy>,
}

#[derive(Debug)]
struct Override {
    name: String,
    namespace: Option<String>,
    raw: RawRelease,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Prometheus access.
    pub prometheus: PrometheusConfig,
    /// What to watch.
    pub watch: WatchConfig,
    /// Re-judging interval.
    pub evaluation_interval: Duration,
    defaults: ReleasePolicy,
    overrides: Vec<Override>,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    /// The file (or "built-in profile").
    pub source_name: String,
    /// Field path, reason and line.
    pub message: String,
}

/// Path of the `defaults` section in error messages.
const DEFAULTS_PATH: &str = "defaults";

fn hard_defaults() -> ReleasePolicy {
    ReleasePolicy {
        mode: Mode::Recommend,
        bake_window: Duration::from_secs(15 * 60),
        readiness_deadline: Duration::from_secs(10 * 60),
        pending_timeout: Duration::from_secs(5 * 60),
        rollback_timeout: Duration::from_secs(5 * 60),
        metrics_grace: Duration::from_secs(2 * 60),
        hooks: true,
        migration: None,
        metrics_presence: Vec::new(),
        lag: None,
        dependencies: Vec::new(),
        custom: Vec::new(),
    }
}

fn thresholds(raw: &[raw::RawThreshold]) -> Vec<ThresholdPolicy> {
    raw.iter()
        .map(|t| ThresholdPolicy {
            name: t.name.clone(),
            query: t.query.0.clone(),
            min: t.min,
            max: t.max,
            on_no_data: t.on_no_data,
            action: t.action,
        })
        .collect()
}

/// Applies the fields set in `raw` over `base`.
fn overlay(mut base: ReleasePolicy, raw: &RawRelease) -> ReleasePolicy {
    if let Some(v) = raw.mode {
        base.mode = v;
    }
    let set = |field: &mut Duration, v: &Option<raw::Dur>| {
        if let Some(d) = v {
            *field = d.0;
        }
    };
    set(&mut base.bake_window, &raw.bake_window);
    set(&mut base.readiness_deadline, &raw.readiness_deadline);
    set(&mut base.pending_timeout, &raw.pending_timeout);
    set(&mut base.rollback_timeout, &raw.rollback_timeout);
    set(&mut base.metrics_grace, &raw.metrics_grace);
    if let Some(v) = raw.hooks {
        base.hooks = v;
    }
    if let Some(m) = &raw.migration {
        base.migration = Some(MigrationPolicy {
            job_name_pattern: m.job_name_pattern.0.clone(),
            required: m.required,
            restart: m.restart.clone(),
        });
    }
    if let Some(p) = &raw.metrics_presence {
        base.metrics_presence = p
            .iter()
            .map(|p| PresencePolicy {
                name: p.name.clone(),
                query: p.query.0.clone(),
            })
            .collect();
    }
    if let Some(l) = &raw.lag {
        base.lag = Some(LagPolicy {
            query: l.query.0.clone(),
            window: l.window.0,
            max_slope: l.max_slope,
            max_level: l.max_level,
        });
    }
    if let Some(d) = &raw.dependencies {
        base.dependencies = thresholds(d);
    }
    if let Some(c) = &raw.custom {
        base.custom = thresholds(c);
    }
    base
}

fn positive(path: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() {
        Err(format!("{path}: must be longer than zero"))
    } else {
        Ok(())
    }
}

fn check_policy(path: &str, p: &ReleasePolicy) -> Result<(), String> {
    positive(&format!("{path}.bake_window"), p.bake_window)?;
    positive(&format!("{path}.pending_timeout"), p.pending_timeout)?;
    positive(&format!("{path}.rollback_timeout"), p.rollback_timeout)?;
    if let Some(lag) = &p.lag {
        positive(&format!("{path}.lag.window"), lag.window)?;
        if !lag.max_slope.is_finite() {
            return Err(format!("{path}.lag.max_slope: must be a number"));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (kind, list) in [("dependencies", &p.dependencies), ("custom", &p.custom)] {
        for t in list {
            if !names.insert(t.name.clone()) {
                return Err(format!(
                    "{path}.{kind}: the name {:?} is used twice",
                    t.name
                ));
            }
        }
    }
    Ok(())
}

impl Config {
    /// The built-in Genesys Info Mart profile.
    pub fn default_profile() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_PROFILE, "built-in profile")
    }

    /// Reads and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: path.display().to_string(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            source_name: source_name.to_string(),
            message,
        };
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = strip_yaml_path(&e.into_inner().to_string()).to_string();
            if path.is_empty() || path == "." {
                error(inner)
            } else {
                error(format!("{path}: {inner}"))
            }
        })?;
        Self::validate(raw).map_err(error)
    }

    fn validate(raw: RawConfig) -> Result<Self, String> {
        let p = &raw.prometheus;
        let prometheus = PrometheusConfig {
            url: p
                .url
                .clone()
                .unwrap_or_else(|| "http://localhost:9090".to_string()),
            timeout: p.timeout.map_or(Duration::from_secs(10), |d| d.0),
            retry_interval: p.retry_interval.map_or(Duration::from_secs(10), |d| d.0),
            errors_before_inconclusive: p.errors_before_inconclusive.unwrap_or(4),
            scrape_interval: p.scrape_interval.map_or(Duration::from_secs(30), |d| d.0),
        };
        if !(prometheus.url.starts_with("http://") || prometheus.url.starts_with("https://")) {
            return Err(format!(
                "prometheus.url: {:?} must start with http:// or https://",
                prometheus.url
            ));
        }
        positive("prometheus.timeout", prometheus.timeout)?;
        positive("prometheus.retry_interval", prometheus.retry_interval)?;
        positive("prometheus.scrape_interval", prometheus.scrape_interval)?;
        if prometheus.errors_before_inconclusive == 0 {
            return Err("prometheus.errors_before_inconclusive: must be at least 1".into());
        }
        let watch = WatchConfig {
            namespaces: raw.watch.namespaces.clone().unwrap_or_default(),
            stuck_pending_after: raw
                .watch
                .stuck_pending_after
                .map_or(Duration::from_secs(15 * 60), |d| d.0),
            max_payload_bytes: raw
                .watch
                .max_payload_bytes
                .unwrap_or(crate::release::decode::DEFAULT_MAX_DECOMPRESSED_BYTES),
        };
        positive("watch.stuck_pending_after", watch.stuck_pending_after)?;
        if watch.max_payload_bytes < 1024 {
            return Err("watch.max_payload_bytes: must be at least 1024".into());
        }
        let evaluation_interval = raw
            .evaluation
            .interval
            .map_or(Duration::from_secs(30), |d| d.0);
        positive("evaluation.interval", evaluation_interval)?;

        if raw.defaults.name.is_some() || raw.defaults.namespace.is_some() {
            return Err("defaults: name and namespace belong to entries under releases".into());
        }
        let defaults = overlay(hard_defaults(), &raw.defaults);
        check_policy(DEFAULTS_PATH, &defaults)?;
        let mut overrides = Vec::new();
        for (i, r) in raw.releases.into_iter().enumerate() {
            let path = format!("releases[{i}]");
            let Some(name) = r.name.clone().filter(|n| !n.is_empty()) else {
                return Err(format!(
                    "{path}: needs the name of the release it applies to"
                ));
            };
            check_policy(&path, &overlay(defaults.clone(), &r))?;
            overrides.push(Override {
                name,
                namespace: r.namespace.clone(),
                raw: r,
            });
        }
        Ok(Self {
            prometheus,
            watch,
            evaluation_interval,
            defaults,
            overrides,
        })
    }

    /// The policy for a release: the defaults, then every matching entry in file order.
    pub fn policy_for(&self, key: &ReleaseKey) -> ReleasePolicy {
        self.overrides
            .iter()
            .filter(|o| {
                o.name == *key.name
                    && o.namespace
                        .as_deref()
                        .is_none_or(|ns| ns == &*key.namespace)
            })
            .fold(self.defaults.clone(), |policy, o| overlay(policy, &o.raw))
    }
}

/// The YAML parser prefixes its messages with a coarser path of its own; the precise one
/// from serde_path_to_error replaces it.
fn strip_yaml_path(message: &str) -> &str {
    match message.split_once(": ") {
        Some((head, rest))
            if !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_[].".contains(c)) =>
        {
            rest
        }
        _ => message,
    }
}

/// Parses a duration such as `90s`, `15m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 90s, 15m or 1h30m ({e})"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} must not be negative"))
}

/// Substitutes `{{namespace}}` and `{{release}}` in a query.
pub fn render_query(query: &str, key: &ReleaseKey) -> String {
    query
        .replace("{{namespace}}", &key.namespace)
        .replace("{{release}}", &key.name)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
