//! The providers' metrics: queries sent to Prometheus and the database checks' queries, by
//! outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::label_value;

/// How a Prometheus query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryOutcome {
    /// Answered.
    Success,
    /// Unavailable, timed out, 5xx or an error status.
    Error,
    /// Rejected as invalid.
    BadQuery,
}

impl QueryOutcome {
    /// Every outcome (exported from the start).
    pub const ALL: [QueryOutcome; 3] = [Self::Success, Self::Error, Self::BadQuery];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::BadQuery => "bad_query",
        }
    }
}

/// How a database check's query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseOutcome {
    /// Answered.
    Success,
    /// No connection could be made.
    Unreachable,
    /// Authentication, TLS, a timeout, ...
    Error,
    /// Refused by the database.
    BadQuery,
}

impl DatabaseOutcome {
    /// Every outcome (exported from the start).
    pub const ALL: [DatabaseOutcome; 4] = [
        Self::Success,
        Self::Unreachable,
        Self::Error,
        Self::BadQuery,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Unreachable => "unreachable",
            Self::Error => "error",
            Self::BadQuery => "bad_query",
        }
    }
}

label_value!(QueryOutcome, DatabaseOutcome);

/// `{outcome}` of a Prometheus query.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabel {
    /// How it ended.
    pub outcome: QueryOutcome,
}

/// Metrics of Prometheus access.
#[derive(Debug, Clone)]
pub struct PrometheusMetrics {
    /// `prometheus_queries_total{outcome}`: success, error (unavailable, timeout, 5xx, error
    /// status) or bad_query (rejected as invalid).
    pub queries: Family<QueryLabel, Counter>,
    /// `prometheus_query_duration_seconds`: how long each query took, whatever its outcome.
    pub duration: Histogram,
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self {
            queries: Family::default(),
            duration: Histogram::new(crate::metrics::buckets::QUERY),
        }
    }
}

impl PrometheusMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for outcome in QueryOutcome::ALL {
            let _ = m.queries.get_or_create(&QueryLabel { outcome });
        }
        registry.register(
            "prometheus_queries",
            "Queries sent to Prometheus, by outcome",
            m.queries.clone(),
        );
        registry.register_with_unit(
            "prometheus_query_duration",
            "How long each query to Prometheus took, whatever its outcome",
            prometheus_client::registry::Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    /// Counts one query.
    pub fn query(&self, outcome: QueryOutcome) {
        self.queries.get_or_create(&QueryLabel { outcome }).inc();
    }

    /// Counts one query that took `took`.
    pub fn timed_query(&self, outcome: QueryOutcome, took: std::time::Duration) {
        self.query(outcome);
        self.duration.observe(took.as_secs_f64());
    }

    /// Queries sent so far with `outcome`.
    pub fn queries_with(&self, outcome: QueryOutcome) -> u64 {
        self.queries.get_or_create(&QueryLabel { outcome }).get()
    }
}

/// `{database, outcome}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseLabel {
    /// The name under `databases` (bounded by the configuration).
    pub database: String,
    /// How it ended.
    pub outcome: DatabaseOutcome,
}

/// Metrics of the database checks.
#[derive(Debug, Clone, Default)]
pub struct DatabaseMetrics {
    /// `database_queries_total{database, outcome}`: success, unreachable (no connection),
    /// error (authentication, TLS, timeout, ...) or bad_query (refused by the database).
    pub queries: Family<DatabaseLabel, Counter>,
}

impl DatabaseMetrics {
    /// Creates the metrics (every outcome of each of `databases` at zero) and registers them.
    pub fn register<'a>(
        registry: &mut Registry,
        databases: impl IntoIterator<Item = &'a String>,
    ) -> Self {
        let m = Self::default();
        for database in databases {
            for outcome in DatabaseOutcome::ALL {
                let _ = m.queries.get_or_create(&DatabaseLabel {
                    database: database.clone(),
                    outcome,
                });
            }
        }
        registry.register(
            "database_queries",
            "Queries of the sql checks, by database and outcome",
            m.queries.clone(),
        );
        m
    }

    /// Counts one query.
    pub fn query(&self, database: &str, outcome: DatabaseOutcome) {
        self.queries
            .get_or_create(&DatabaseLabel {
                database: database.to_string(),
                outcome,
            })
            .inc();
    }
}
