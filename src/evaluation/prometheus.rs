//! Prometheus access (I/O) through `prometheus-http-query`: instant queries with a timeout,
//! errors sorted into "unavailable" (never a failure) and "bad query" (a configuration
//! error), every query counted in `prometheus_queries_total{outcome}`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use prometheus_http_query::response::Data;

use super::promql::{self, Series};
use crate::checks::prom::Samples;
use crate::checks::provider::ProviderError;
use crate::config::PrometheusConfig;
use crate::metrics::PrometheusMetrics;

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    client: prometheus_http_query::Client,
    metrics: PrometheusMetrics,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.client.base_url().as_str())
            .finish()
    }
}

/// One answer per key of a batch.
pub type Answers = BTreeMap<String, Result<Samples, ProviderError>>;

impl Prometheus {
    /// A client for `config.url` whose requests time out after `config.timeout`.
    pub fn new(config: &PrometheusConfig, metrics: PrometheusMetrics) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let client = prometheus_http_query::Client::from(http, &config.url)
            .map_err(|e| format!("prometheus.url {:?}: {e}", config.url))?;
        Ok(Self { client, metrics })
    }

    /// Runs one instant query at `at` (default: now).
    pub async fn instant(
        &self,
        query: &str,
        at: Option<Timestamp>,
    ) -> Result<Vec<Series>, ProviderError> {
        let mut builder = self.client.query(query);
        if let Some(t) = at {
            // Sub-second precision: an upgrade seconds after the first scrape still has a
            // "before" (the builder's `at` takes whole seconds only).
            builder = builder.query("time", format!("{:.3}", t.as_millisecond() as f64 / 1000.0));
        }
        let result = builder.get().await;
        tracing::debug!(query, at = ?at, ok = result.is_ok(), "prometheus query");
        let outcome = match &result {
            Ok(_) => "success",
            Err(prometheus_http_query::Error::Prometheus(e)) if e.is_bad_data() => "bad_query",
            Err(_) => "error",
        };
        self.metrics.query(outcome);
        let answer = result.map_err(|e| match e {
            prometheus_http_query::Error::Prometheus(p) if p.is_bad_data() => {
                ProviderError::BadQuery(p.message().to_string())
            }
            other => ProviderError::Unavailable(other.to_string()),
        })?;
        match answer.data() {
            Data::Vector(v) => Ok(v
                .iter()
                .map(|s| (s.metric().clone(), s.sample().value()))
                .collect()),
            Data::Scalar(s) => Ok(vec![(Default::default(), s.value())]),
            Data::Matrix(_) => Err(ProviderError::BadQuery(
                "the query returns a range vector; an instant value is needed".into(),
            )),
        }
    }

    /// Runs `items` (key, expression) as one batched query. If Prometheus rejects the batch
    /// (one bad expression), each item is run on its own so only the bad one is affected.
    pub async fn batch(&self, items: &[(String, String)], at: Option<Timestamp>) -> Answers {
        if items.is_empty() {
            return Answers::new();
        }
        let keys = items.iter().map(|(k, _)| k);
        match self.instant(&promql::batch(items), at).await {
            Ok(series) => promql::split(keys, &series)
                .into_iter()
                .map(|(k, s)| (k, Ok(s)))
                .collect(),
            Err(ProviderError::BadQuery(_)) if items.len() > 1 => {
                let mut answers = Answers::new();
                for (key, expr) in items {
                    // Untagged, so a scalar expression works too.
                    let answer = self
                        .instant(expr, at)
                        .await
                        .map(|series| series.into_iter().map(|(_, v)| v).collect());
                    answers.insert(key.clone(), answer);
                }
                answers
            }
            Err(e) => keys.map(|k| (k.clone(), Err(e.clone()))).collect(),
        }
    }
}
