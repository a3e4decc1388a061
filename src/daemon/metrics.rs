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
    /// Creates the metrics and registers them, with `build_info{version, revision}` at 1.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "alerts_firing",
            "Alerts upgrade-guard currently tells Alertmanager are firing",
            m.firing.clone(),
        );
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build
            .get_or_create(&vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                // Set by the image build (deploy/Dockerfile's GIT_REVISION).
                (
                    "revision".to_string(),
                    option_env!("UPGRADE_GUARD_GIT_REVISION")
                        .filter(|r| !r.is_empty())
                        .unwrap_or("unknown")
                        .to_string(),
                ),
            ])
            .set(1);
        registry.register(
            "build_info",
            "upgrade-guard's version and the git revision it was built from (always 1)",
            build,
        );
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

/// How the costly HTTP answers were served: `http_answers_total{path, answer="built" |
/// "shared"}` (a flood of reads shows as many shared answers, few builds).
#[derive(Debug, Clone, Default)]
pub struct HttpMetrics {
    answers: Family<Vec<(String, String)>, Counter>,
}

impl HttpMetrics {
    /// Creates the metric and registers it.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "http_answers",
            "Answers to /metrics and /api/v1/releases, built for the request or shared with requests waiting for the same build",
            m.answers.clone(),
        );
        m
    }

    /// One answer to `path` (a costly path: a fixed, small set).
    pub fn answered(&self, path: &str, source: super::answers::Source) {
        let answer = match source {
            super::answers::Source::Built => "built",
            super::answers::Source::Shared => "shared",
        };
        self.answers
            .get_or_create(&vec![
                ("path".to_string(), path.to_string()),
                ("answer".to_string(), answer.to_string()),
            ])
            .inc();
    }
}
