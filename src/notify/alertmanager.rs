//! Delivery to Alertmanager's v2 API (I/O): every configured Alertmanager gets each batch
//! (`POST /api/v2/alerts`), through its own bounded queue and worker, so one that is down
//! neither blocks the others nor the daemon. A full queue drops its oldest batch (each batch
//! carries every active alert, so a newer one supersedes it) and counts the drop; a failed
//! POST is retried with backoff; a 400 is permanent for that batch (logged with the reason).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tracing::{debug, info, warn};

use super::alerts::PostableAlert;
use super::metrics::{Channel, Delivery, NotifyMetrics};
use super::queue::Queue;
use crate::config::HttpClientConfig;
use crate::http_client::HttpClientError;

/// One batch of every active alert, shared by the queues of all Alertmanagers.
type Batch = Arc<Vec<PostableAlert>>;

/// The channel label of these notifications.
pub const CHANNEL: Channel = Channel::Alertmanager;

/// Sends batches to every configured Alertmanager.
pub struct Alertmanagers {
    queues: Vec<(String, Arc<Queue<Batch>>)>,
    metrics: NotifyMetrics,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Alertmanagers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Alertmanagers {
    /// Starts one worker per URL, each request authenticated as `client` says;
    /// `capacity` batches are kept per Alertmanager. Fails only when the client cannot be
    /// built (its TLS files).
    pub fn start(
        urls: &[String],
        client: &HttpClientConfig,
        capacity: usize,
        timeout: Duration,
        metrics: NotifyMetrics,
    ) -> Result<Self, HttpClientError> {
        let http = crate::http_client::build(client, timeout)?;
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for url in urls {
            let queue = Arc::new(Queue::new(capacity));
            let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
            tasks.push(tokio::spawn(worker(
                http.clone(),
                client.clone(),
                endpoint,
                queue.clone(),
                metrics.clone(),
            )));
            queues.push((url.clone(), queue));
        }
        Ok(Self {
            queues,
            metrics,
            tasks,
        })
    }

    /// Queues a batch for every Alertmanager; never waits.
    pub fn send(&self, batch: Vec<PostableAlert>) {
        let batch = Arc::new(batch);
        for (url, queue) in &self.queues {
            for _ in queue.push(batch.clone()) {
                self.metrics.notification(CHANNEL, Delivery::Dropped);
                warn!(alertmanager = %url, "Alertmanager queue full: dropped the oldest batch of alerts");
            }
        }
    }

    /// Whether any Alertmanager is configured.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

async fn worker(
    http: reqwest::Client,
    client: HttpClientConfig,
    endpoint: String,
    queue: Arc<Queue<Batch>>,
    metrics: NotifyMetrics,
) {
    let new_backoff = || {
        ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .without_max_times()
            .build()
    };
    let mut backoff = new_backoff();
    let mut failing = false;
    loop {
        let taken = queue.front().await;
        let batch = &taken.item;
        // Credentials are read at each attempt: a rotated token is used at once, a missing
        // one is said in words and retried like an outage.
        let outcome = match crate::http_client::headers(&client) {
            Ok(headers) => http
                .post(&endpoint)
                .headers(headers)
                .json(&**batch)
                .send()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let done = match outcome {
            Ok(r) if r.status().is_success() => {
                metrics.notification(CHANNEL, Delivery::Sent);
                if failing {
                    info!(alertmanager = %endpoint, "Alertmanager reachable again: alerts delivered");
                }
                debug!(alertmanager = %endpoint, alerts = batch.len(), "alerts sent");
                failing = false;
                backoff = new_backoff();
                true
            }
            Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST => {
                let reason = r.text().await.unwrap_or_default();
                metrics.notification(CHANNEL, Delivery::Rejected);
                warn!(alertmanager = %endpoint, reason = %reason.trim(),
                    "Alertmanager refused the alerts (400); this batch is not sent again");
                true
            }
            Ok(r) => {
                metrics.notification(CHANNEL, Delivery::Failed);
                let status = r.status();
                if !failing {
                    warn!(alertmanager = %endpoint, %status, "cannot deliver alerts; retrying with backoff");
                }
                failing = true;
                false
            }
            Err(e) => {
                metrics.notification(CHANNEL, Delivery::Failed);
                if !failing {
                    warn!(alertmanager = %endpoint, error = %e, "cannot reach Alertmanager; retrying with backoff");
                }
                failing = true;
                false
            }
        };
        if done {
            queue.done(&taken);
        } else {
            let delay = backoff.next().unwrap_or(Duration::from_secs(30));
            tokio::time::sleep(delay).await;
        }
    }
}
