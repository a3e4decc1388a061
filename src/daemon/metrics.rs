//! The daemon's own metrics: its version, the alerts it keeps firing, evaluation rounds, the
//! revisions under evaluation and the Kubernetes objects it holds for the checks.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics of the daemon loop.
#[derive(Debug, Clone, Default)]
pub struct DaemonMetrics {
    /// `alerts_firing`.
    pub firing: Gauge,
    /// `evaluation_rounds_total`.
    pub rounds: Counter,
    /// `kube_store_objects`.
    pub store_objects: Gauge,
    /// `evaluations_active`.
    pub evaluations_active: Gauge,
}

impl DaemonMetrics {
    /// Creates the metrics and registers them, with `build_info{version}` at 1.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "alerts_firing",
            "Alerts upgrade-guard currently tells Alertmanager are firing",
            m.firing.clone(),
        );
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build
            .get_or_create(&vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )])
            .set(1);
        registry.register("build_info", "upgrade-guard's version (always 1)", build);
        registry.register(
            "evaluation_rounds",
            "Evaluation rounds run (each re-judges every revision under evaluation)",
            m.rounds.clone(),
        );
        registry.register(
            "kube_store_objects",
            "Kubernetes objects held for the checks (workloads, pods, Jobs of the watched namespaces)",
            m.store_objects.clone(),
        );
        registry.register(
            "evaluations_active",
            "Revisions under evaluation",
            m.evaluations_active.clone(),
        );
        m
    }

    /// Sets a gauge from a count (saturating).
    pub fn set(gauge: &Gauge, count: usize) {
        gauge.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
