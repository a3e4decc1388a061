//! Prometheus access (I/O) through `prometheus-http-query`: instant queries sent by POST (a
//! batch for hundreds of releases exceeds URL limits of Prometheus and of proxies), with a
//! timeout; errors sorted into "unavailable" (never a failure) and "bad query" (a
//! configuration error); every query counted in `prometheus_queries_total{outcome}`. A
//! client may be fixed at a time in the past (`at`), for replays.

use std::collections::BTreeMap;

use prometheus_http_query::response::Data;

use super::metrics::{PrometheusMetrics, QueryOutcome};
use super::promql::{self, Series};
use crate::checks::Samples;
use crate::checks::provider::ProviderError;
use crate::config::PrometheusConfig;

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    client: prometheus_http_query::Client,
    metrics: PrometheusMetrics,
    /// The credentials and headers of each request (files read at each one).
    auth: crate::config::HttpClientConfig,
    /// The time queries are evaluated at (a replay of the past); now when `None`.
    at: Option<jiff::Timestamp>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.client.base_url().as_str())
            .finish()
    }
}

/// The client cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be set up (TLS files, TLS backend).
    #[error("prometheus: {0}")]
    Http(#[from] crate::http_client::HttpClientError),
    /// `prometheus.url` is not a usable URL.
    #[error("prometheus.url {url:?}: {source}")]
    Url {
        /// The URL as configured.
        url: String,
        /// Why it is unusable.
        #[source]
        source: prometheus_http_query::Error,
    },
}

/// Words for a failed query. An answer that is not Prometheus' JSON is what a refusal
/// (401, 403) or a proxy's error page looks like to the client: say what to check.
fn unavailable(e: &prometheus_http_query::Error) -> String {
    let words = e.to_string();
    if words.contains("invalid media type") {
        format!(
            "{words}: the server did not answer as Prometheus does (credentials refused, or not Prometheus' API at that URL): check prometheus.url, authorization, basic_auth and tls_config"
        )
    } else {
        words
    }
}

/// One answer per key of a batch: the series (labels without the batch key) or the error.
pub type Answers = BTreeMap<String, Result<Vec<Series>, ProviderError>>;

/// The answer of `key` in a batch's answers; a key without one is Prometheus not answering.
pub fn answer(answers: &Answers, key: &str) -> Result<Vec<Series>, ProviderError> {
    answers
        .get(key)
        .cloned()
        .unwrap_or_else(|| Err(ProviderError::Unavailable("no answer".into())))
}

/// The values of an answer, for checks that do not need labels.
pub fn values(series: &[Series]) -> Samples {
    series.iter().map(|(_, v)| *v).collect()
}

impl Prometheus {
    /// A client for `config.url` whose requests time out after `config.timeout`.
    pub fn new(config: &PrometheusConfig, metrics: PrometheusMetrics) -> Result<Self, ClientError> {
        let http = crate::http_client::build(&config.client, config.timeout)?;
        let client = prometheus_http_query::Client::from(http, &config.url).map_err(|source| {
            ClientError::Url {
                url: config.url.clone(),
                source,
            }
        })?;
        Ok(Self {
            client,
            metrics,
            auth: config.client.clone(),
            at: None,
        })
    }

    /// The same client, its queries evaluated at `t` (Prometheus' `time` parameter) instead
    /// of now: the past as Prometheus recorded it.
    pub fn at(&self, t: jiff::Timestamp) -> Self {
        Self {
            at: Some(t),
            ..self.clone()
        }
    }

    /// Runs one instant query, now, by POST.
    pub async fn instant(&self, query: &str) -> Result<Vec<Series>, ProviderError> {
        let headers = match crate::http_client::headers(&self.auth) {
            Ok(h) => h,
            Err(e) => {
                self.metrics.query(QueryOutcome::Error);
                return Err(ProviderError::Unavailable(e.to_string()));
            }
        };
        let mut request = self.client.query(query);
        if let Some(t) = self.at {
            // To the millisecond: replayed rounds are not on whole seconds.
            let seconds = format!("{:.3}", t.as_millisecond() as f64 / 1000.0);
            request = request.query("time", seconds);
        }
        for (name, value) in &headers {
            request = request.header(name.clone(), value.clone());
        }
        let sent = std::time::Instant::now();
        let result = request.post().await;
        let took = sent.elapsed();
        tracing::debug!(bytes = query.len(), ok = result.is_ok(), "prometheus query");
        let outcome = match &result {
            Ok(_) => QueryOutcome::Success,
            Err(prometheus_http_query::Error::Prometheus(e)) if e.is_bad_data() => {
                QueryOutcome::BadQuery
            }
            Err(_) => QueryOutcome::Error,
        };
        self.metrics.timed_query(outcome, took);
        let answer = result.map_err(|e| match e {
            prometheus_http_query::Error::Prometheus(p) if p.is_bad_data() => {
                ProviderError::BadQuery(p.message().to_string())
            }
            other => ProviderError::Unavailable(unavailable(&other)),
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
    pub async fn batch(&self, items: &[(String, String)]) -> Answers {
        if items.is_empty() {
            return Answers::new();
        }
        let keys = items.iter().map(|(k, _)| k);
        match self.instant(&promql::batch(items)).await {
            Ok(series) => promql::split(keys, series)
                .into_iter()
                .map(|(k, s)| (k, Ok(s)))
                .collect(),
            Err(ProviderError::BadQuery(_)) if items.len() > 1 => {
                let mut answers = Answers::new();
                for (key, expr) in items {
                    // Untagged, so a scalar expression works too.
                    answers.insert(key.clone(), self.instant(expr).await);
                }
                answers
            }
            Err(e) => keys.map(|k| (k.clone(), Err(e.clone()))).collect(),
        }
    }
}
