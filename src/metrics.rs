//! The metrics registry and its conventions (pure): upgrade-guard's prefix, the text
//! encoding, and bounded label values. Each subsystem registers its own metrics next to its
//! code (`tracker/metrics.rs`, `evaluation/metrics.rs`, `notify/metrics.rs`,
//! `remediation/metrics.rs`, `daemon/metrics.rs`); label values are enums, never messages,
//! timestamps or values.

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
