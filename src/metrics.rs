//! upgrade-guard's own metrics, registered in one place per subsystem. Label values are
//! bounded (enums rendered as static strings); no timestamps, messages or values in labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::release::decode::DecodeErrorReason;
use crate::tracker::fetch::FetchErrorReason;

/// Metric name prefix.
pub const PREFIX: &str = "upgrade_guard";

/// `{reason}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A [`DecodeErrorReason`] as its metric string.
    pub reason: &'static str,
}

/// `{kind}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Bounded kind name.
    pub kind: &'static str,
}

/// Kinds of raw watch events counted in `watch_events_total`.
pub mod watch_kind {
    /// A release Secret was created or changed.
    pub const APPLY: &str = "apply";
    /// A release Secret was deleted.
    pub const DELETE: &str = "delete";
    /// A (re)list started.
    pub const RELIST: &str = "relist";
    /// The watch failed and is being retried.
    pub const ERROR: &str = "error";
}

/// Metrics of the release tracker.
#[derive(Debug, Clone, Default)]
pub struct TrackerMetrics {
    /// `release_decode_errors_total{reason}`.
    pub decode_errors: Family<ReasonLabel, Counter>,
    /// `watch_events_total{kind}`.
    pub watch_events: Family<KindLabel, Counter>,
    /// `release_events_total{kind}`.
    pub release_events: Family<KindLabel, Counter>,
    /// `watch_synced`: 1 once the first listing of every watched namespace completed.
    pub watch_synced: Gauge,
    /// `release_fetch_errors_total{reason}`: failed reads of a revision's record.
    pub fetch_errors: Family<ReasonLabel, Counter>,
    /// `release_fetch_backlog`: revisions decided but not yet read (queued, in flight or
    /// waiting to retry).
    pub fetch_backlog: Gauge,
}

impl TrackerMetrics {
    /// Creates the metrics and registers them (under the `upgrade_guard` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        // Every reason exists from the start, so rate() works on the first error.
        for reason in DecodeErrorReason::ALL {
            let _ = m.decode_errors.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for reason in FetchErrorReason::ALL {
            let _ = m.fetch_errors.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        registry.register(
            "release_fetch_errors",
            "Failed reads of a release revision's record (retried until read), by reason",
            m.fetch_errors.clone(),
        );
        registry.register(
            "release_fetch_backlog",
            "Release revisions decided but not yet read (queued, in flight or waiting to retry)",
            m.fetch_backlog.clone(),
        );
        registry.register(
            "release_decode_errors",
            "Release Secrets that could not be decoded, by reason",
            m.decode_errors.clone(),
        );
        registry.register(
            "watch_events",
            "Watch events on Helm release Secrets, by kind",
            m.watch_events.clone(),
        );
        registry.register(
            "release_events",
            "Release events decided (installed, upgraded, ...), by kind",
            m.release_events.clone(),
        );
        registry.register(
            "watch_synced",
            "1 once the first listing of every watched namespace completed",
            m.watch_synced.clone(),
        );
        m
    }

    /// Counts one decode error.
    pub fn decode_error(&self, reason: DecodeErrorReason) {
        self.decode_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Current count of decode errors for `reason`.
    pub fn decode_errors_for(&self, reason: DecodeErrorReason) -> u64 {
        self.decode_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .get()
    }

    /// Counts one failed read.
    pub fn fetch_error(&self, reason: FetchErrorReason) {
        self.fetch_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Current count of failed reads for `reason`.
    pub fn fetch_errors_for(&self, reason: FetchErrorReason) -> u64 {
        self.fetch_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .get()
    }

    /// Current count of raw watch events of `kind`.
    pub fn watch_events_of(&self, kind: &'static str) -> u64 {
        self.watch_events.get_or_create(&KindLabel { kind }).get()
    }

    /// Current count of release events of `kind`.
    pub fn release_events_of(&self, kind: &'static str) -> u64 {
        self.release_events.get_or_create(&KindLabel { kind }).get()
    }

    /// Counts one raw watch event.
    pub fn watch_event(&self, kind: &'static str) {
        self.watch_events.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts one release event.
    pub fn release_event(&self, kind: &'static str) {
        self.release_events.get_or_create(&KindLabel { kind }).inc();
    }
}

/// `{outcome}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// Bounded outcome name.
    pub outcome: &'static str,
}

/// Metrics of Prometheus access.
#[derive(Debug, Clone, Default)]
pub struct PrometheusMetrics {
    /// `prometheus_queries_total{outcome}`: success, error (unavailable, timeout, 5xx, error
    /// status) or bad_query (rejected as invalid).
    pub queries: Family<OutcomeLabel, Counter>,
}

impl PrometheusMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for outcome in ["success", "error", "bad_query"] {
            let _ = m.queries.get_or_create(&OutcomeLabel { outcome });
        }
        registry.register(
            "prometheus_queries",
            "Queries sent to Prometheus, by outcome",
            m.queries.clone(),
        );
        m
    }

    /// Counts one query.
    pub fn query(&self, outcome: &'static str) {
        self.queries.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Queries sent so far with `outcome`.
    pub fn queries_with(&self, outcome: &'static str) -> u64 {
        self.queries.get_or_create(&OutcomeLabel { outcome }).get()
    }
}

/// `{database, outcome}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseOutcome {
    /// The name under `databases` (bounded by the configuration).
    pub database: String,
    /// Bounded outcome name.
    pub outcome: &'static str,
}

/// Metrics of the database checks.
#[derive(Debug, Clone, Default)]
pub struct DatabaseMetrics {
    /// `database_queries_total{database, outcome}`: success, unreachable (no connection),
    /// error (authentication, TLS, timeout, ...) or bad_query (refused by the database).
    pub queries: Family<DatabaseOutcome, Counter>,
}

impl DatabaseMetrics {
    /// Creates the metrics (every outcome of each of `databases` at zero) and registers them.
    pub fn register<'a>(
        registry: &mut Registry,
        databases: impl IntoIterator<Item = &'a String>,
    ) -> Self {
        let m = Self::default();
        for database in databases {
            for outcome in ["success", "unreachable", "error", "bad_query"] {
                let _ = m.queries.get_or_create(&DatabaseOutcome {
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
    pub fn query(&self, database: &str, outcome: &'static str) {
        self.queries
            .get_or_create(&DatabaseOutcome {
                database: database.to_string(),
                outcome,
            })
            .inc();
    }
}

/// `{channel, outcome}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelOutcome {
    /// `alertmanager` or `email`.
    pub channel: &'static str,
    /// `sent`, `failed` (retried), `rejected` (permanent) or `dropped` (queue full).
    pub outcome: &'static str,
}

/// Metrics of notifications.
#[derive(Debug, Clone, Default)]
pub struct NotifyMetrics {
    /// `notifications_total{channel,outcome}`.
    pub notifications: Family<ChannelOutcome, Counter>,
}

impl NotifyMetrics {
    /// Creates the metrics (every channel and outcome from the start) and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for channel in ["alertmanager", "email"] {
            for outcome in ["sent", "failed", "rejected", "dropped"] {
                let _ = m
                    .notifications
                    .get_or_create(&ChannelOutcome { channel, outcome });
            }
        }
        registry.register(
            "notifications",
            "Notifications by channel and outcome (failed ones are retried)",
            m.notifications.clone(),
        );
        m
    }

    /// Counts one notification attempt.
    pub fn notification(&self, channel: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&ChannelOutcome { channel, outcome })
            .inc();
    }

    /// Attempts so far with `outcome` on `channel`.
    pub fn count(&self, channel: &'static str, outcome: &'static str) -> u64 {
        self.notifications
            .get_or_create(&ChannelOutcome { channel, outcome })
            .get()
    }
}

/// Outcomes of automatic rollbacks.
pub const ROLLBACK_OUTCOMES: [&str; 6] = [
    "verified",
    "verification_failed",
    "helm_failed",
    "interrupted",
    "cancelled",
    "dry_run",
];

/// Metrics of automatic actions.
#[derive(Debug, Clone, Default)]
pub struct ActionMetrics {
    /// `rollbacks_total{outcome}`.
    pub rollbacks: Family<OutcomeLabel, Counter>,
    /// `migration_restarts_total{outcome}`.
    pub restarts: Family<OutcomeLabel, Counter>,
    /// `action_holds_total{reason}`.
    pub holds: Family<ReasonLabel, Counter>,
    /// `leader` (1 while this replica holds the Lease).
    pub leader: Gauge,
}

impl ActionMetrics {
    /// Creates the metrics (every outcome and reason from the start) and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for outcome in ROLLBACK_OUTCOMES {
            let _ = m.rollbacks.get_or_create(&OutcomeLabel { outcome });
        }
        for outcome in ["done", "failed", "interrupted", "cancelled", "dry_run"] {
            let _ = m.restarts.get_or_create(&OutcomeLabel { outcome });
        }
        for reason in crate::remediation::plan::HoldReason::ALL {
            let _ = m.holds.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        registry.register(
            "rollbacks",
            "Automatic rollbacks by final outcome (verified, verification_failed, helm_failed, interrupted, cancelled before running, dry_run)",
            m.rollbacks.clone(),
        );
        registry.register(
            "migration_restarts",
            "Automatic migration-pod restarts by outcome",
            m.restarts.clone(),
        );
        registry.register(
            "action_holds",
            "Automatic actions held, by reason (counted when a release's hold starts or changes)",
            m.holds.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (only the leader alerts and acts)",
            m.leader.clone(),
        );
        m
    }

    /// Counts a final outcome.
    pub fn count(&self, action: crate::remediation::records::ActionKind, outcome: &'static str) {
        let family = match action {
            crate::remediation::records::ActionKind::Rollback => &self.rollbacks,
            crate::remediation::records::ActionKind::RestartPod => &self.restarts,
        };
        family.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts a hold.
    pub fn held(&self, reason: crate::remediation::plan::HoldReason) {
        self.holds
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }
}

/// A registry with upgrade-guard's prefix.
pub fn registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// The registry in Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_are_exported_with_every_reason() {
        let mut registry = registry();
        let m = TrackerMetrics::register(&mut registry);
        m.decode_error(DecodeErrorReason::Gzip);
        m.decode_error(DecodeErrorReason::Gzip);
        let text = encode(&registry).unwrap();
        assert!(
            text.contains("upgrade_guard_release_decode_errors_total{reason=\"gzip\"} 2"),
            "{text}"
        );
        assert!(text.contains("upgrade_guard_release_decode_errors_total{reason=\"too_large\"} 0"));
        assert_eq!(m.decode_errors_for(DecodeErrorReason::Gzip), 2);
    }
}
