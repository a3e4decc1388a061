//! The daemon's own metrics: its version, the alerts it keeps firing, evaluation rounds, the
//! revisions under evaluation and the Kubernetes objects it holds for the checks.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::{Durations, buckets};
use crate::verdict::Verdict;

/// Metrics of the daemon loop.
#[derive(Debug, Clone)]
pub struct DaemonMetrics {
    /// `alerts_firing`.
    pub firing: Gauge,
    /// `evaluation_rounds_total`.
    pub rounds: Counter,
    /// `kube_store_objects`.
    pub store_objects: Gauge,
    /// `evaluations_active`.
    pub evaluations_active: Gauge,
    /// `evaluation_round_duration_seconds`.
    pub round_duration: Histogram,
    /// `upgrade_final_verdict_duration_seconds{verdict}`.
    pub to_final_verdict: Durations<Vec<(String, String)>>,
    /// `config_checks_total`.
    pub config_checks: Counter,
    /// `config_check_duration_seconds`.
    pub config_check_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for DaemonMetrics {
    fn default() -> Self {
        Self {
            firing: Gauge::default(),
            rounds: Counter::default(),
            store_objects: Gauge::default(),
            evaluations_active: Gauge::default(),
            round_duration: Histogram::new(buckets::ROUND),
            to_final_verdict: Family::new_with_constructor(|| Histogram::new(buckets::VERDICT)),
            config_checks: Counter::default(),
            config_check_duration: Gauge::default(),
        }
    }
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
                (
                    "version".to_string(),
                    crate::metrics::BUILD.version.to_string(),
                ),
                // Set by the image build (deploy/Dockerfile's GIT_REVISION).
                (
                    "revision".to_string(),
                    crate::metrics::BUILD.revision.to_string(),
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
        registry.register_with_unit(
            "evaluation_round_duration",
            "How long each evaluation round took: every revision under evaluation gathered, judged, and acted on",
            Unit::Seconds,
            m.round_duration.clone(),
        );
        registry.register(
            "config_checks",
            "Passes of the configuration's check against the live cluster (every query of every release tried)",
            m.config_checks.clone(),
        );
        registry.register_with_unit(
            "config_check_duration",
            "How long the last pass of the configuration's check took",
            Unit::Seconds,
            m.config_check_duration.clone(),
        );
        // Every verdict an evaluation can end with, from the start (an empty histogram is a
        // series a dashboard can show).
        for v in Verdict::ALL
            .into_iter()
            .filter(|v| *v != Verdict::Progressing)
        {
            let _ = m.to_final_verdict.get_or_create(&Self::verdict_label(v));
        }
        registry.register_with_unit(
            "upgrade_final_verdict_duration",
            "From an upgrade's start to its final verdict (the end of its bake window, or later when it could not be judged), by verdict",
            Unit::Seconds,
            m.to_final_verdict.clone(),
        );
        m
    }

    /// A revision's evaluation ended with `verdict`, `took` after its upgrade started.
    pub fn final_verdict(&self, verdict: Verdict, took: std::time::Duration) {
        self.to_final_verdict
            .get_or_create(&Self::verdict_label(verdict))
            .observe(took.as_secs_f64());
    }

    fn verdict_label(verdict: Verdict) -> Vec<(String, String)> {
        vec![("verdict".to_string(), verdict.as_str().to_string())]
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
