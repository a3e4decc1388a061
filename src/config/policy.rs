//! How one release is judged and acted on (pure data): the policy each check reads, as the
//! defaults and the matching `releases` entries resolve it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::release::ReleaseKey;

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

/// The watch after the bake: the revision's pods (from the daemon's stores, no new
/// Kubernetes request) and its `metrics_presence` series, alerted, never acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterBakePolicy {
    /// How long after the bake; zero switches the watch off.
    pub watch_for: Duration,
    /// How often the watched revision is looked at.
    pub interval: Duration,
}

/// Limits on what `mode: auto` does for a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPolicy {
    /// Automatic rollbacks at most per bad revision (counted in the cluster, across restarts).
    pub max_per_revision: u32,
    /// No automatic action on the release sooner than this after the previous one started.
    pub cooldown: Duration,
    /// A new revision applying again the chart, app version and values of a revision
    /// upgrade-guard rolled back within this long is held, not rolled back again (whoever
    /// applies it would apply it again: a loop).
    pub reapplied_within: Duration,
    /// After a failed migration, delete the release's pod once (it restarts and the
    /// migration resumes). Off by default.
    pub restart_migration_pod: bool,
}

/// Why a pod is not Ready, as a kubelet or the scheduler reports it. Its own timeout
/// (`pod_timeouts`) says how long a pod may stay so before it fails the revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PodProblem {
    /// The scheduler found no node (`PodScheduled=False, Unschedulable`): waiting for a
    /// node, which a cluster autoscaler may be adding.
    Unschedulable,
    /// Scheduled, its containers being created: an image pulling, a volume attaching.
    ContainerCreating,
    /// The image cannot be pulled (back-off).
    ImagePullBackOff,
    /// The image cannot be pulled.
    ErrImagePull,
    /// A referenced ConfigMap or Secret is missing or wrong.
    CreateContainerConfigError,
    /// The container keeps crashing.
    CrashLoopBackOff,
    /// The container was killed for using too much memory.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// An init container keeps failing.
    InitContainerFailing,
    /// Init containers are running (not failing): the pod is starting.
    Initializing,
    /// Running but not Ready (readiness probe), without a crash or restart loop.
    NotReady,
    /// Pending for no reason the kubelet or scheduler gives (not scheduled yet).
    Pending,
}

impl PodProblem {
    /// The word used in the configuration, sentences and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unschedulable => "Unschedulable",
            Self::ContainerCreating => "ContainerCreating",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::ErrImagePull => "ErrImagePull",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::OomKilled => "OOMKilled",
            Self::InitContainerFailing => "InitContainerFailing",
            Self::Initializing => "Initializing",
            Self::NotReady => "NotReady",
            Self::Pending => "Pending",
        }
    }

    /// A pod that is starting, however slowly: waiting for a node, an image, a volume, its
    /// init containers or its readiness probe, with no crash, restart loop or error. By
    /// default judged against the readiness deadline, because a service may legitimately
    /// take long to become Ready. Every other reason is a broken pod, by default judged
    /// against the pending timeout.
    pub fn is_slow_start(self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::Unschedulable
                | Self::ContainerCreating
                | Self::Initializing
                | Self::NotReady
        )
    }
}

/// How the release's workloads and pods are judged, beyond the two deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPolicy {
    /// Per reason, how long a pod may stay not Ready for it; a reason not listed takes the
    /// readiness deadline (slow start) or the pending timeout (broken).
    pub timeouts: std::collections::BTreeMap<PodProblem, Duration>,
    /// Past the readiness deadline, a rollout that has not moved for this long fails.
    pub stall_timeout: Duration,
    /// Restarts of the new revision's containers during the bake tolerated; one more fails.
    pub max_restarts: u32,
    /// How long a Kubernetes finding must hold, seen by successive rounds, before it counts.
    pub hold: Duration,
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
    /// After the bake window, a revision still without a verdict (inconclusive, or still
    /// pending) is judged this long more; then its evaluation ends `inconclusive`.
    pub inconclusive_grace: Duration,
    /// Workloads must be Ready this long after the upgrade.
    pub readiness_deadline: Duration,
    /// A broken pod not Ready this long fails the revision.
    pub pending_timeout: Duration,
    /// Per-reason timeouts, the stall timeout, restarts, the Kubernetes `for:`.
    pub pods: PodPolicy,
    /// `--timeout` of the recommended `helm rollback`.
    pub rollback_timeout: Duration,
    /// What is watched after the bake, and how long.
    pub after_bake: AfterBakePolicy,
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
    /// How long a pod may stay not Ready for `problem` before it fails the revision.
    pub fn pod_timeout(&self, problem: PodProblem) -> Duration {
        match self.pods.timeouts.get(&problem) {
            Some(t) => *t,
            None if problem.is_slow_start() => self.readiness_deadline,
            None => self.pending_timeout,
        }
    }

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

/// Substitutes `{{namespace}}` and `{{release}}` in a query.
pub fn render_query(query: &str, key: &ReleaseKey) -> String {
    query
        .replace("{{namespace}}", &key.namespace)
        .replace("{{release}}", &key.name)
}
