//! Kubernetes state in the past (I/O): one batched query of the kube-state-metrics series
//! of a revision's namespace, evaluated at the replayed time, read into observations by
//! `ksm`. A replay's stand-in for the API server, which only knows the present.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::ksm;
use super::prometheus::Prometheus;
use crate::checks::observe::KubeObservations;
use crate::checks::provider::ProviderError;
use crate::release::summary::ReleaseSummary;

/// Reads the past from Prometheus.
#[derive(Debug, Clone)]
pub struct KubeHistory {
    prometheus: Prometheus,
    scrape_interval: Duration,
}

impl KubeHistory {
    /// Reads through `prometheus`, whose series are scraped every `scrape_interval`.
    pub fn new(prometheus: Prometheus, scrape_interval: Duration) -> Self {
        Self {
            prometheus,
            scrape_interval,
        }
    }

    /// The revision's workloads, their current pods and the namespace's Jobs as recorded at
    /// `at`. An unanswered query is Prometheus' error; nothing recorded is
    /// [`ProviderError::NoHistory`].
    pub async fn observe(
        &self,
        summary: &ReleaseSummary,
        at: Timestamp,
    ) -> Result<KubeObservations, ProviderError> {
        // A pod's last Ready is looked for since the upgrade: one not Ready throughout
        // counts as not Ready since the upgrade at most (never longer than seen).
        let started = summary.started_at().unwrap_or(at);
        let back = crate::units::between(started, at) + self.scrape_interval;
        let items = ksm::items(&summary.namespace, started, back, self.scrape_interval);
        let mut answers = BTreeMap::new();
        for (key, answer) in self.prometheus.at(at).batch(&items).await {
            answers.insert(key, answer?);
        }
        ksm::observations(summary, &answers, started).map_err(ProviderError::NoHistory)
    }
}
