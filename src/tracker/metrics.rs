//! The release tracker's metrics: watch events, release events, failed reads and decodes, the
//! read backlog and whether the first listing is done.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::error::FetchErrorReason;
use crate::metrics::label_value;
use crate::release::error::DecodeErrorReason;
use crate::release::event::EventName;

/// Kinds of raw watch events counted in `watch_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchEventKind {
    /// A release record was created or changed.
    Apply,
    /// A release record was deleted.
    Delete,
    /// A (re)list started.
    Relist,
    /// The watch failed and is being retried.
    Error,
}

impl WatchEventKind {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
            Self::Relist => "relist",
            Self::Error => "error",
        }
    }
}

label_value!(
    WatchEventKind,
    EventName,
    DecodeErrorReason,
    FetchErrorReason
);

/// `{reason}` of a decode error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecodeReason {
    /// Why the payload could not be decoded.
    pub reason: DecodeErrorReason,
}

/// `{reason}` of a failed read.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchReason {
    /// Why the read failed.
    pub reason: FetchErrorReason,
}

/// `{kind}` of a raw watch event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchKind {
    /// The kind.
    pub kind: WatchEventKind,
}

/// `{kind}` of a release event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventKind {
    /// The kind.
    pub kind: EventName,
}

/// Metrics of the release tracker.
#[derive(Debug, Clone, Default)]
pub struct TrackerMetrics {
    /// `release_decode_errors_total{reason}`.
    pub decode_errors: Family<DecodeReason, Counter>,
    /// `watch_events_total{kind}`.
    pub watch_events: Family<WatchKind, Counter>,
    /// `release_events_total{kind}`.
    pub release_events: Family<EventKind, Counter>,
    /// `watch_synced`: 1 once the first listing of every watched namespace completed.
    pub watch_synced: Gauge,
    /// `release_fetch_errors_total{reason}`: failed reads of a revision's record.
    pub fetch_errors: Family<FetchReason, Counter>,
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
            let _ = m.decode_errors.get_or_create(&DecodeReason { reason });
        }
        for reason in FetchErrorReason::ALL {
            let _ = m.fetch_errors.get_or_create(&FetchReason { reason });
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
            .get_or_create(&DecodeReason { reason })
            .inc();
    }

    /// Current count of decode errors for `reason`.
    pub fn decode_errors_for(&self, reason: DecodeErrorReason) -> u64 {
        self.decode_errors
            .get_or_create(&DecodeReason { reason })
            .get()
    }

    /// Counts one failed read.
    pub fn fetch_error(&self, reason: FetchErrorReason) {
        self.fetch_errors
            .get_or_create(&FetchReason { reason })
            .inc();
    }

    /// Current count of failed reads for `reason`.
    pub fn fetch_errors_for(&self, reason: FetchErrorReason) -> u64 {
        self.fetch_errors
            .get_or_create(&FetchReason { reason })
            .get()
    }

    /// Current count of raw watch events of `kind`.
    pub fn watch_events_of(&self, kind: WatchEventKind) -> u64 {
        self.watch_events.get_or_create(&WatchKind { kind }).get()
    }

    /// Current count of release events of `kind`.
    pub fn release_events_of(&self, kind: EventName) -> u64 {
        self.release_events.get_or_create(&EventKind { kind }).get()
    }

    /// Counts one raw watch event.
    pub fn watch_event(&self, kind: WatchEventKind) {
        self.watch_events.get_or_create(&WatchKind { kind }).inc();
    }

    /// Counts one release event.
    pub fn release_event(&self, kind: EventName) {
        self.release_events.get_or_create(&EventKind { kind }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, registry};

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

    #[test]
    fn label_values_are_the_enums_words() {
        let mut registry = registry();
        let m = TrackerMetrics::register(&mut registry);
        m.watch_event(WatchEventKind::Relist);
        m.release_event(EventName::UpgradeFailed);
        m.fetch_error(FetchErrorReason::ServerError);
        let text = encode(&registry).unwrap();
        for line in [
            "upgrade_guard_watch_events_total{kind=\"relist\"} 1",
            "upgrade_guard_release_events_total{kind=\"upgrade_failed\"} 1",
            "upgrade_guard_release_fetch_errors_total{reason=\"server_error\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
