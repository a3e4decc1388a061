//! The release tracker (I/O): a metadata-only watch of Helm's release Secrets feeds the
//! [`ReleaseBook`]; for each revision that needs an event it GETs and decodes that one
//! Secret, and sends the completed [`ReleaseEvent`]s, in order, on a channel.
//!
//! Costs: no object cache (labels only), one LIST per (re)list, one WATCH per watch timeout,
//! one GET per announced revision. Decode failures and malformed labels are counted and
//! logged, and the revision is skipped; other releases keep being tracked.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::metrics::{TrackerMetrics, watch_kind};
use crate::release::decode::{DecodeLimits, decode_release};
use crate::release::event::{PendingEvent, ReleaseEvent};
use crate::release::history::{Action, ReleaseBook, Scope};
use crate::release::labels::{
    HELM_OWNER_SELECTOR, HELM_SECRET_TYPE_SELECTOR, RevisionMeta, revision_from_meta,
};

/// Tracker settings.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Namespaces to watch; empty means all namespaces (one cluster-wide watch).
    pub namespaces: Vec<String>,
    /// A newest revision `pending-*` for longer than this is reported as stuck.
    pub stuck_pending_after: Duration,
    /// Limits for decoding payloads.
    pub decode_limits: DecodeLimits,
    /// Server-side watch timeout; the watch is re-established (not relisted) after it.
    pub watch_timeout: Duration,
    /// Revisions fetched and decoded at once (events still leave in order).
    pub fetch_concurrency: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            stuck_pending_after: Duration::from_secs(15 * 60),
            decode_limits: DecodeLimits::default(),
            watch_timeout: Duration::from_secs(290),
            fetch_concurrency: 4,
        }
    }
}

/// How long a fetch keeps retrying a transient API failure before dropping the event.
const FETCH_RETRY_BUDGET: Duration = Duration::from_secs(300);
const FETCH_BACKOFF_START: Duration = Duration::from_millis(200);
const FETCH_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Watches release Secrets and emits release events.
pub struct Tracker {
    client: Client,
    config: TrackerConfig,
    metrics: TrackerMetrics,
}

type WatchItem = (
    Scope,
    Result<Event<PartialObjectMeta<Secret>>, watcher::Error>,
);

impl Tracker {
    /// A tracker using `client`, counting into `metrics`.
    pub fn new(client: Client, config: TrackerConfig, metrics: TrackerMetrics) -> Self {
        Self {
            client,
            config,
            metrics,
        }
    }

    fn scopes(&self) -> Vec<Scope> {
        if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config.namespaces.iter().cloned().map(Some).collect()
        }
    }

    fn watch_streams(&self) -> impl Stream<Item = WatchItem> + Send + use<> {
        let timeout = u32::try_from(self.config.watch_timeout.as_secs()).unwrap_or(290);
        let cfg = watcher::Config::default()
            .labels(HELM_OWNER_SELECTOR)
            .fields(HELM_SECRET_TYPE_SELECTOR)
            .timeout(timeout);
        let streams = self.scopes().into_iter().map(|scope| {
            // Api<PartialObjectMeta<_>> makes metadata-only requests: no payloads cross.
            let api: Api<PartialObjectMeta<Secret>> = match &scope {
                None => Api::all(self.client.clone()),
                Some(ns) => Api::namespaced(self.client.clone(), ns),
            };
            watch_stream(api, cfg.clone())
                .default_backoff()
                .map(move |event| (scope.clone(), event))
                .boxed()
        });
        futures::stream::select_all(streams)
    }

    /// Runs until the event receiver is dropped. `synced` turns `true` once the first
    /// listing of every watched namespace completed.
    pub async fn run(self, events: mpsc::Sender<ReleaseEvent>, synced: watch::Sender<bool>) {
        let scopes = self.scopes();
        let mut book = ReleaseBook::new(self.config.stuck_pending_after);
        let (action_tx, action_rx) = mpsc::channel::<Action>(1024);
        let fetcher = tokio::spawn(fetch_loop(
            self.client.clone(),
            self.config.clone(),
            self.metrics.clone(),
            action_rx,
            events.clone(),
        ));
        let mut watch = std::pin::pin!(self.watch_streams());
        'watching: loop {
            let deadline = book.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep(until(at)).await,
                    None => futures::future::pending().await,
                }
            };
            let actions = tokio::select! {
                _ = events.closed() => break 'watching,
                item = watch.next() => match item {
                    Some((scope, event)) => self.handle(&mut book, &scope, event, &scopes, &synced),
                    None => break 'watching,
                },
                () = sleep => book.due(Timestamp::now()),
            };
            for action in actions {
                if action_tx.send(action).await.is_err() {
                    break 'watching;
                }
            }
        }
        drop(action_tx);
        let _ = fetcher.await;
    }

    fn handle(
        &self,
        book: &mut ReleaseBook,
        scope: &Scope,
        event: Result<Event<PartialObjectMeta<Secret>>, watcher::Error>,
        scopes: &[Scope],
        synced: &watch::Sender<bool>,
    ) -> Vec<Action> {
        let now = Timestamp::now();
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                self.metrics.watch_event(watch_kind::ERROR);
                warn!(namespace = scope.as_deref().unwrap_or("*"), error = %e,
                    "watch of Helm release Secrets failed; retrying with backoff");
                return Vec::new();
            }
        };
        match event {
            Event::Apply(obj) => {
                self.metrics.watch_event(watch_kind::APPLY);
                self.revision(&obj)
                    .map_or_else(Vec::new, |m| book.apply(&m, now))
            }
            Event::Delete(obj) => {
                self.metrics.watch_event(watch_kind::DELETE);
                self.revision(&obj)
                    .map_or_else(Vec::new, |m| book.delete(&m))
            }
            Event::Init => {
                self.metrics.watch_event(watch_kind::RELIST);
                debug!(
                    namespace = scope.as_deref().unwrap_or("*"),
                    "listing release Secrets"
                );
                book.init(scope);
                Vec::new()
            }
            Event::InitApply(obj) => {
                if let Some(m) = self.revision(&obj) {
                    book.init_apply(scope, &m, now);
                }
                Vec::new()
            }
            Event::InitDone => {
                let actions = book.init_done(scope);
                if book.is_synced(scopes) && !*synced.borrow() {
                    info!(
                        releases = book.len(),
                        "release Secrets listed; watching for changes"
                    );
                    self.metrics.watch_synced.set(1);
                    synced.send_replace(true);
                }
                actions
            }
        }
    }

    fn revision(&self, obj: &PartialObjectMeta<Secret>) -> Option<RevisionMeta> {
        match revision_from_meta(&obj.metadata) {
            Ok(m) => Some(m),
            Err(e) => {
                self.metrics.decode_error(e.reason);
                warn!(reason = e.reason.as_str(), "skipping a release Secret: {e}");
                None
            }
        }
    }
}

fn until(at: Timestamp) -> Duration {
    let wait = at.duration_since(Timestamp::now());
    Duration::try_from(wait).unwrap_or(Duration::ZERO)
}

async fn fetch_loop(
    client: Client,
    config: TrackerConfig,
    metrics: TrackerMetrics,
    actions: mpsc::Receiver<Action>,
    events: mpsc::Sender<ReleaseEvent>,
) {
    let completed = tokio_stream_from(actions)
        .map(|action| {
            let client = client.clone();
            let metrics = metrics.clone();
            async move {
                match action {
                    Action::Emit(event) => Some(event),
                    Action::Fetch(pending) => {
                        fetch(&client, pending, config.decode_limits, &metrics).await
                    }
                }
            }
        })
        .buffered(config.fetch_concurrency.max(1));
    let mut completed = std::pin::pin!(completed);
    while let Some(event) = completed.next().await {
        let Some(event) = event else { continue };
        metrics.release_event(event.kind.name());
        info!(release = %event.release, revision = event.revision, status = %event.status,
            event = event.kind.name(), "release event");
        if events.send(event).await.is_err() {
            return;
        }
    }
}

fn tokio_stream_from<T>(mut rx: mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// GETs and decodes one revision and completes its event; `None` when the Secret is gone,
/// cannot be decoded, or cannot be read within the retry budget.
async fn fetch(
    client: &Client,
    pending: PendingEvent,
    limits: DecodeLimits,
    metrics: &TrackerMetrics,
) -> Option<ReleaseEvent> {
    let release = pending.release.clone();
    let secret_name = release.secret_name(pending.revision);
    let api: Api<Secret> = Api::namespaced(client.clone(), &release.namespace);
    let started = tokio::time::Instant::now();
    let mut backoff = FETCH_BACKOFF_START;
    let secret = loop {
        match api.get_opt(&secret_name).await {
            Ok(Some(secret)) => break secret,
            Ok(None) => {
                debug!(%release, revision = pending.revision, "revision Secret gone before it could be read");
                return None;
            }
            Err(e) if transient(&e) && started.elapsed() < FETCH_RETRY_BUDGET => {
                debug!(%release, revision = pending.revision, error = %e, "reading the revision failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(FETCH_BACKOFF_MAX);
            }
            Err(e) => {
                warn!(%release, revision = pending.revision, error = %e,
                    "cannot read Secret {secret_name}; the event for this revision is dropped");
                return None;
            }
        }
    };
    let data = secret
        .data
        .and_then(|mut d| d.remove("release"))
        .map(|b| b.0)
        .unwrap_or_default();
    let decoded = tokio::task::spawn_blocking(move || decode_release(&data, limits)).await;
    match decoded {
        Ok(Ok(summary)) => Some(pending.complete(Arc::new(summary))),
        Ok(Err(e)) => {
            metrics.decode_error(e.reason);
            warn!(%release, revision = pending.revision, reason = e.reason.as_str(),
                "cannot decode the release payload of Secret {secret_name} ({e}); skipping this revision");
            None
        }
        Err(e) => {
            warn!(%release, revision = pending.revision, error = %e, "decoding task failed");
            None
        }
    }
}

/// Errors worth retrying: connection problems, timeouts, 429 and 5xx.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => true,
        _ => false,
    }
}
