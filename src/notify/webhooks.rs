//! Webhook delivery (I/O): one worker and bounded queue per webhook, off the daemon's path.
//! Each request is a POST of the hook's JSON with its id and event headers (and, for a
//! generic webhook with a secret, its signature, the secret read from its file at each
//! delivery); a 2xx is delivered; a 4xx other than 408 and 429 is refused for good (counted
//! `rejected`, not retried); anything else is retried with a growing pause (up to a minute)
//! for `give_up_after`, then dropped. The same rules as email.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::metrics::{Channel, Delivery, NotifyMetrics};
use super::queue::{Attempt, Delivered, Queue, deliver};
use super::webhook::{EVENT_HEADER, Hook, ID_HEADER, SIGNATURE_HEADER, signature};
use crate::config::webhooks::{Webhook, WebhookFormat, WebhookUrl};

const CHANNEL: Channel = Channel::Webhook;

/// The webhooks' workers, by name.
pub struct Webhooks {
    queues: BTreeMap<String, Arc<Queue<Hook>>>,
    metrics: NotifyMetrics,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Webhooks {
    /// Starts one worker per webhook, each keeping `capacity` requests while its receiver
    /// cannot be reached.
    pub fn start(webhooks: &[Webhook], capacity: usize, metrics: NotifyMetrics) -> Self {
        let mut queues = BTreeMap::new();
        let mut tasks = Vec::new();
        for w in webhooks {
            let queue = Arc::new(Queue::new(capacity));
            queues.insert(w.name.clone(), queue.clone());
            tasks.push(tokio::spawn(worker(w.clone(), queue, metrics.clone())));
        }
        Self {
            queues,
            metrics,
            tasks,
        }
    }

    /// Whether no webhook is configured.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queues a request for its webhook; never waits.
    pub fn send(&self, hook: Hook) {
        let Some(queue) = self.queues.get(&hook.webhook) else {
            return;
        };
        for old in queue.push(hook) {
            self.metrics.notification(CHANNEL, Delivery::Dropped);
            warn!(webhook = %old.webhook, release = %old.release, id = %old.id,
                "webhook queue full: dropped the oldest request");
        }
    }
}

async fn worker(webhook: Webhook, queue: Arc<Queue<Hook>>, metrics: NotifyMetrics) {
    let client = match reqwest::Client::builder()
        .timeout(webhook.timeout)
        .connect_timeout(webhook.timeout.min(Duration::from_secs(5)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(webhook = %webhook.name, "the webhook's HTTP client cannot be built; nothing is sent to it: {e}");
            return;
        }
    };
    loop {
        let taken = queue.front().await;
        let hook = &taken.item;
        let failed = |e: &str| {
            warn!(webhook = %webhook.name, release = %hook.release, "cannot deliver the webhook (retried): {e}");
        };
        let tries = || attempt(&client, &webhook, hook);
        match deliver(webhook.give_up_after, &metrics, CHANNEL, tries, failed).await {
            Delivered::Yes => {
                info!(webhook = %webhook.name, release = %hook.release, id = %hook.id, "webhook delivered");
            }
            Delivered::Refused(e) => {
                warn!(webhook = %webhook.name, release = %hook.release, id = %hook.id,
                "the webhook refuses this request for good, not retried: {e}")
            }
            Delivered::GaveUp => {
                warn!(webhook = %webhook.name, release = %hook.release, id = %hook.id,
                "giving up this webhook request after {} of failures",
                crate::units::human(webhook.give_up_after))
            }
        }
        queue.done(&taken);
    }
}

async fn attempt(client: &reqwest::Client, webhook: &Webhook, hook: &Hook) -> Attempt {
    let url = match &webhook.url {
        WebhookUrl::Given(u) => u.clone(),
        WebhookUrl::File(path) => match std::fs::read_to_string(path) {
            Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
            Ok(_) => return Attempt::Failed(format!("{} is empty", path.display())),
            Err(e) => return Attempt::Failed(format!("cannot read {}: {e}", path.display())),
        },
    };
    let mut request = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, &hook.id)
        .header(EVENT_HEADER, hook.event);
    if let (WebhookFormat::Generic, Some(path)) = (webhook.format, &webhook.secret_file) {
        match std::fs::read(path) {
            Ok(secret) => {
                let secret = secret.trim_ascii();
                if secret.is_empty() {
                    return Attempt::Failed(format!("the secret file {} is empty", path.display()));
                }
                request = request.header(SIGNATURE_HEADER, signature(secret, hook.body.as_bytes()));
            }
            Err(e) => {
                return Attempt::Failed(format!(
                    "cannot read the secret file {}: {e}",
                    path.display()
                ));
            }
        }
    }
    // The URL may hold a credential (chat webhooks): errors name the host only.
    let host = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    match request.body(hook.body.clone()).send().await {
        Ok(r) if r.status().is_success() => Attempt::Delivered,
        Ok(r) => {
            let status = r.status();
            let why = format!("{host} answered {status}");
            if status.is_client_error() && status != 408 && status != 429 {
                Attempt::Refused(why)
            } else {
                Attempt::Failed(why)
            }
        }
        Err(e) => Attempt::Failed(format!("{host}: {}", e.without_url())),
    }
}
