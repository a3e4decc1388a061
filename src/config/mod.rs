//! Configuration: one YAML file read into raw serde structs (unknown fields refused), then
//! validated into typed values with units. Errors name the field and, where the parser knows
//! it, the line. Without a file the built-in Genesys Info Mart profile (`default.yaml`, the
//! text `upgrade-guard config default` prints) is used.

mod database;
pub mod defaults;
mod raw;
mod resolve;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::release::ReleaseKey;
use raw::{RawConfig, RawRelease};

pub use database::{DatabaseConfig, PasswordSource, TlsMode};
pub use resolve::DEFAULT_LAG_MIN_SAMPLES;

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

impl Mode {
    /// The word used in the configuration, JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Recommend => "recommend",
            Self::Auto => "auto",
        }
    }
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
    /// Helm storage drivers whose records are watched.
    pub storage: Vec<crate::release::labels::Storage>,
    /// Pending revisions older than this are reported stuck.
    pub stuck_pending_after: Duration,
    /// Largest decompressed release payload accepted.
    pub max_payload_bytes: usize,
    /// The API server ends each watch after this long (it is then resumed, not relisted).
    pub watch_timeout: Duration,
    /// A request with no byte received for this long fails (dead connection).
    pub idle_timeout: Duration,
    /// Deadline of one read of a revision's record.
    pub fetch_timeout: Duration,
}

/// Smallest accepted `watch.max_payload_bytes`.
pub const MIN_PAYLOAD_BYTES: usize = 1024;

impl WatchConfig {
    /// What is wrong with these settings, as (field, reason); the same rules apply to the
    /// file and to command-line overrides.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let zero = |d: Duration| d.is_zero();
        if zero(self.stuck_pending_after) {
            return Some(("stuck_pending_after", "must be greater than 0".into()));
        }
        if self.max_payload_bytes < MIN_PAYLOAD_BYTES {
            return Some((
                "max_payload_bytes",
                format!("must be at least {MIN_PAYLOAD_BYTES}"),
            ));
        }
        if self.storage.is_empty() {
            return Some(("storage", "name at least one of secret, configmap".into()));
        }
        if self.watch_timeout < Duration::from_secs(1) {
            return Some(("watch_timeout", "must be at least 1s".into()));
        }
        if self.idle_timeout <= self.watch_timeout {
            return Some((
                "idle_timeout",
                format!(
                    "must be longer than watch_timeout ({}), or quiet healthy watches would be cut",
                    crate::units::human(self.watch_timeout)
                ),
            ));
        }
        if zero(self.fetch_timeout) {
            return Some(("fetch_timeout", "must be greater than 0".into()));
        }
        None
    }
}

/// Migration check settings.
#[derive(Debug, Clone)]
pub struct MigrationPolicy {
    /// Jobs (or hooks) whose name matches are the release's migration.
    pub job_name_pattern: Option<regex::Regex>,
    /// A migration Job must be found.
    pub required: bool,
    /// Workload named in the restart command (default: the release's first workload).
    pub restart: Option<String>,
    /// A database query confirming the migration (its `source` is SQL).
    pub sql: Option<ThresholdPolicy>,
}

/// A read-only query against one of the configured databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SqlSource {
    /// The entry of `databases` it runs against.
    pub database: String,
    /// The query, run as written.
    pub query: String,
}

/// Where a bounded check's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A PromQL expression (placeholders not yet substituted).
    PromQL(String),
    /// A SQL query.
    Sql(SqlSource),
}

impl Source {
    /// The PromQL expression, if the value comes from Prometheus.
    pub fn promql(&self) -> Option<&str> {
        match self {
            Self::PromQL(q) => Some(q),
            Self::Sql(_) => None,
        }
    }

    /// The SQL query, if the value comes from a database.
    pub fn sql(&self) -> Option<&SqlSource> {
        match self {
            Self::Sql(s) => Some(s),
            Self::PromQL(_) => None,
        }
    }
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
    /// Points (at the scrape interval) the window must hold before a slope is trusted.
    pub min_samples: u32,
    /// How long a failing condition must hold before it counts (`for:`).
    pub hold: Duration,
}

/// A check with bounds on a PromQL or SQL value (dependency health, custom, migration).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdPolicy {
    /// Name shown to the operator (and the `check` label).
    pub name: String,
    /// Where the value comes from.
    pub source: Source,
    /// Lowest acceptable value.
    pub min: Option<f64>,
    /// Highest acceptable value.
    pub max: Option<f64>,
    /// What an empty answer means.
    pub on_no_data: OnNoData,
    /// What a failure recommends (custom checks).
    pub action: FailAction,
    /// How long a failing condition must hold before it counts (`for:`).
    pub hold: Duration,
}

/// The reminder to update Data Export's views after an upgrade that changed the chart or
/// app version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportViewsPolicy {
    /// Data Export is used: remind.
    pub enabled: bool,
    /// What to run in the release's pod.
    pub command: Option<String>,
}

/// Limits on what `mode: auto` does for a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPolicy {
    /// Automatic rollbacks at most per bad revision (counted in the cluster, across restarts).
    pub max_per_revision: u32,
    /// No automatic action on the release sooner than this after the previous one started.
    pub cooldown: Duration,
    /// After a failed migration, delete the release's pod once (it restarts and the
    /// migration resumes). Off by default.
    pub restart_migration_pod: bool,
}

/// Everything that decides how one release is judged.
#[derive(Debug, Clone)]
pub struct ReleasePolicy {
    /// What upgrade-guard may do.
    pub mode: Mode,
    /// Limits of `mode: auto`.
    pub auto: AutoPolicy,
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
    /// The export-views reminder after a version change (Data Export users).
    pub export_views: ExportViewsPolicy,
    /// Label selector of the ConfigMaps an uninstall leaves behind (`{{release}}` filled in).
    pub uninstall_leftovers: Option<String>,
    /// Series that must stay present.
    pub metrics_presence: Vec<PresencePolicy>,
    /// The lag-trend check, if any.
    pub lag: Option<LagPolicy>,
    /// Dependency health checks.
    pub dependencies: Vec<ThresholdPolicy>,
    /// Custom PromQL checks.
    pub custom: Vec<ThresholdPolicy>,
}

impl ReleasePolicy {
    /// The SQL queries of the policy's checks (migration, dependencies, custom).
    pub fn sql_sources(&self) -> impl Iterator<Item = &SqlSource> {
        self.migration
            .iter()
            .filter_map(|m| m.sql.as_ref())
            .chain(&self.dependencies)
            .chain(&self.custom)
            .filter_map(|t| t.source.sql())
    }
}

/// An entry of `releases`: which release it applies to and what it sets.
#[derive(Debug)]
struct Override {
    name: String,
    namespace: Option<String>,
    raw: RawRelease,
}

impl Override {
    fn matches(&self, key: &ReleaseKey) -> bool {
        self.name == *key.name
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == &*key.namespace)
    }
}

/// Where upgrade-guard keeps its own records (bake results) in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// Namespace of upgrade-guard's ConfigMaps (never Helm's Secrets).
    pub namespace: String,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// STARTTLS, required: a server that does not offer it gets no mail.
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// Plain text: only for a relay on the same host or network, by explicit choice.
    None,
}

/// Email notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// SMTP server.
    pub smtp_host: String,
    /// SMTP port (default: 587 for starttls, 465 for tls, 25 for none).
    pub smtp_port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// `From:` address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// File holding the SMTP user name (a mounted Secret); else `UPGRADE_GUARD_SMTP_USERNAME`.
    pub username_file: Option<std::path::PathBuf>,
    /// File holding the SMTP password; else `UPGRADE_GUARD_SMTP_PASSWORD`.
    pub password_file: Option<std::path::PathBuf>,
    /// Deadline of one delivery attempt.
    pub timeout: Duration,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationsConfig {
    /// Base URLs of every Alertmanager (each one is posted to; not a load balancer).
    pub alertmanager_urls: Vec<String>,
    /// Firing alerts are sent again this often (`endsAt` = now + 4 × this).
    pub resend_interval: Duration,
    /// Batches kept per Alertmanager while it cannot be reached (the oldest is dropped).
    pub queue_size: usize,
    /// Link to a dashboard in each alert, with `{{namespace}}` and `{{release}}`.
    pub dashboard_url: Option<String>,
    /// Email, when configured.
    pub email: Option<EmailConfig>,
}

/// Leader election among replicas (a Lease in `state.namespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// How long a holder's claim lasts without renewal.
    pub lease_duration: Duration,
    /// A holder that could not renew for this long stops acting (shorter than the duration).
    pub renew_deadline: Duration,
    /// How often the Lease is tried and renewed.
    pub retry_period: Duration,
}

/// Releases upgraded together, in a prescribed order (the Genesys Info Mart suite: GIM,
/// then GSP, then GCA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// Its name (`preflight --suite`).
    pub name: String,
    /// Steps in upgrade order; the releases of one step may go in any order.
    pub order: Vec<Vec<ReleaseKey>>,
    /// Upgrades within this long of each other belong to one upgrade cycle.
    pub cycle: Duration,
}

impl Suite {
    /// The step of `key` in this suite, if it belongs to it.
    pub fn step_of(&self, key: &ReleaseKey) -> Option<usize> {
        self.order.iter().position(|step| step.contains(key))
    }

    /// Every release of the suite, in order.
    pub fn releases(&self) -> impl Iterator<Item = &ReleaseKey> {
        self.order.iter().flatten()
    }
}

/// How automatic actions run, for every release in `mode: auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsConfig {
    /// Log and report what would run; run nothing.
    pub dry_run: bool,
    /// Automatic actions at most, across all releases, within `budget_window`.
    pub budget: u32,
    /// The window of `budget`.
    pub budget_window: Duration,
    /// The helm binary.
    pub helm: String,
    /// Leader election.
    pub leader_election: LeaderElectionConfig,
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
    /// upgrade-guard's own records.
    pub state: StateConfig,
    /// Where alerts go.
    pub notifications: NotificationsConfig,
    /// Automatic actions.
    pub actions: ActionsConfig,
    /// Suites of releases upgraded in order.
    pub suites: Vec<Suite>,
    /// PostgreSQL databases of the `sql` checks, by name.
    pub databases: std::collections::BTreeMap<String, DatabaseConfig>,
    /// Settings that are valid but probably not what the operator meant, in words.
    pub warnings: Vec<String>,
    defaults: ReleasePolicy,
    overrides: Vec<Override>,
    /// `for:` of checks that do not set one.
    default_hold: resolve::DefaultHold,
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
        resolve::validate(raw).map_err(error)
    }

    /// The suite `key` belongs to, if any.
    pub fn suite_of(&self, key: &ReleaseKey) -> Option<&Suite> {
        self.suites.iter().find(|s| s.step_of(key).is_some())
    }

    /// The bake window of a release (what [`Config::policy_for`] would say, without building
    /// the whole policy).
    pub fn bake_window(&self, key: &ReleaseKey) -> Duration {
        self.overrides
            .iter()
            .filter(|o| o.matches(key))
            .filter_map(|o| o.raw.bake_window)
            .next_back()
            .map_or(self.defaults.bake_window, |d| d.0)
    }

    /// The mode of a release (what [`Config::policy_for`] would say, without building the
    /// whole policy).
    pub fn mode_for(&self, key: &ReleaseKey) -> Mode {
        self.overrides
            .iter()
            .filter(|o| o.matches(key))
            .filter_map(|o| o.raw.mode)
            .next_back()
            .unwrap_or(self.defaults.mode)
    }

    /// The policy for a release: the defaults, then every matching entry in file order.
    pub fn policy_for(&self, key: &ReleaseKey) -> ReleasePolicy {
        self.overrides
            .iter()
            .filter(|o| o.matches(key))
            .fold(self.defaults.clone(), |policy, o| {
                resolve::overlay(policy, &o.raw, self.default_hold)
            })
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

/// Substitutes `{{namespace}}` and `{{release}}` in a query.
pub fn render_query(query: &str, key: &ReleaseKey) -> String {
    query
        .replace("{{namespace}}", &key.namespace)
        .replace("{{release}}", &key.name)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
