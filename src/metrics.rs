//! The metrics registry and its conventions (pure): upgrade-guard's prefix, the text
//! encoding, and bounded label values. Each subsystem registers its own metrics next to its
//! code (`tracker/metrics.rs`, `evaluation/metrics.rs`, `notify/metrics.rs`,
//! `remediation/metrics.rs`, `daemon/metrics.rs`); label values are enums, never messages,
//! timestamps or values.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Metric name prefix.
pub const PREFIX: &str = "upgrade_guard";

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

/// What this build is: its version and the git revision it was built from (`unknown`
/// unless the image build sets `UPGRADE_GUARD_GIT_REVISION`), as `build_info`, `version`
/// and `/api/v1/version` tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Build<'a> {
    /// The crate's version.
    pub version: &'a str,
    /// The git revision.
    pub revision: &'a str,
}

/// This build.
pub const BUILD: Build<'static> = Build {
    version: env!("CARGO_PKG_VERSION"),
    revision: match option_env!("UPGRADE_GUARD_GIT_REVISION") {
        Some(r) if !r.is_empty() => r,
        _ => "unknown",
    },
};

/// A family of duration histograms (seconds), one per label set, every one with the
/// buckets its constructor gives.
pub type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// Bucket bounds, in seconds, of the duration histograms: each spans what its operation
/// takes on a healthy system and on a struggling one.
pub mod buckets {
    /// One query to Prometheus: milliseconds to its timeout.
    pub const QUERY: [f64; 11] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    /// One evaluation round: every revision under evaluation gathered and judged.
    pub const ROUND: [f64; 12] = [
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    /// An automatic rollback, from its intent to its outcome (helm's timeout is minutes,
    /// its verification a bake window).
    pub const ROLLBACK: [f64; 11] = [
        5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    /// An upgrade's start to its final verdict: a bake window and its grace, minutes to
    /// hours.
    pub const VERDICT: [f64; 12] = [
        60.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 10800.0, 21600.0,
    ];
}

/// Makes a bounded enum with `fn as_str(self) -> &'static str` a metric label value, so that
/// a label can only take one of its variants' words (a typo cannot create a new series).
macro_rules! label_value {
    ($($t:ty),+ $(,)?) => {$(
        impl prometheus_client::encoding::EncodeLabelValue for $t {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, (*self).as_str())
            }
        }
    )+};
}
pub(crate) use label_value;
