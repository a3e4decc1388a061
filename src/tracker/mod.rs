//! The release tracker (I/O): metadata-only watches of Helm's release records (Secrets, and
//! ConfigMaps when enabled) feed one [`ReleaseBook`] per storage driver; for each revision
//! that needs an event the [`fetch::Scheduler`] GETs and decodes that one record, and the
//! completed [`ReleaseEvent`]s leave on a channel, in order per release.
//!
//! Costs: no object cache (labels only), one LIST per (re)list, one WATCH per watch timeout,
//! one GET per announced revision. A revision is announced only once its record was read; a
//! read that fails is retried, counted and reported, never dropped. The watch loop never
//! waits for a read or for the consumer: completed events queue until the channel has room.
//!
//! Dead connections: the API server ends every watch after `watch_timeout`; a watch that
//! delivers nothing for `watch_timeout` + 5 s is dropped and resumed by kube's watcher, and
//! every request (list, watch start, GET) fails after `idle_timeout` without a byte (the
//! client's read timeout, set by [`client_config`]). A half-open connection is therefore
//! noticed within `watch_timeout` + 5 s while watching, within `idle_timeout` otherwise.

pub mod error;
pub mod fetch;
pub mod metrics;
pub mod read;

use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::WatchConfig;
use crate::config::defaults;
use crate::release::ReleaseKey;
use crate::release::decode::DecodeLimits;
use crate::release::event::ReleaseEvent;
use crate::release::history::{Action, ReleaseBook, Scope};
use crate::release::labels::{HELM_OWNER_SELECTOR, RevisionMeta, Storage, revision_from_meta};
use fetch::{FetchRetry, Scheduler};
use metrics::{TrackerMetrics, WatchEventKind};

/// A release's bake window, for announcing again after a restart a revision still inside
/// it; `None`: never.
pub type BakeWindow = std::sync::Arc<dyn Fn(&ReleaseKey) -> Option<Duration> + Send + Sync>;

/// Tracker settings.
#[derive(Clone)]
pub struct TrackerConfig {
    /// Namespaces to watch; empty means all namespaces (one cluster-wide watch).
    pub namespaces: Vec<String>,
    /// Helm storage drivers whose records are watched.
    pub storage: Vec<Storage>,
    /// A newest revision `pending-*` for longer than this is reported as stuck.
    pub stuck_pending_after: Duration,
    /// Limits for decoding payloads.
    pub decode_limits: DecodeLimits,
    /// Server-side watch timeout; the watch is re-established (not relisted) after it.
    pub watch_timeout: Duration,
    /// Revisions read at once (events still leave in order per release).
    pub fetch_concurrency: usize,
    /// The first listing emits a `Listed` event for every release it does not announce.
    pub list_settled: bool,
    /// Deadline and retry pacing of reads.
    pub fetch_retry: FetchRetry,
    /// Bake window per release: on the first listing, a newest revision whose upgrade
    /// began less than this ago is announced (resumed).
    pub bake_window: BakeWindow,
}

impl std::fmt::Debug for TrackerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerConfig")
            .field("namespaces", &self.namespaces)
            .field("storage", &self.storage)
            .field("stuck_pending_after", &self.stuck_pending_after)
            .field("decode_limits", &self.decode_limits)
            .field("watch_timeout", &self.watch_timeout)
            .field("fetch_concurrency", &self.fetch_concurrency)
            .field("fetch_retry", &self.fetch_retry)
            .finish_non_exhaustive()
    }
}

impl TrackerConfig {
    /// The settings of a configuration's `watch` section; `bake_window` tells, per release,
    /// how long after its upgrade a revision is announced again after a restart.
    pub fn from_settings(watch: &WatchConfig, bake_window: BakeWindow) -> Self {
        Self {
            namespaces: watch.namespaces.clone(),
            storage: watch.storage.clone(),
            stuck_pending_after: watch.stuck_pending_after,
            decode_limits: DecodeLimits {
                max_decompressed_bytes: watch.max_payload_bytes,
            },
            watch_timeout: watch.watch_timeout,
            fetch_retry: FetchRetry {
                timeout: watch.fetch_timeout,
                ..FetchRetry::default()
            },
            bake_window,
            ..Self::default()
        }
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            storage: vec![Storage::Secret],
            stuck_pending_after: defaults::STUCK_PENDING_AFTER,
            decode_limits: DecodeLimits::default(),
            watch_timeout: defaults::WATCH_TIMEOUT,
            fetch_concurrency: 8,
            list_settled: false,
            fetch_retry: FetchRetry::default(),
            bake_window: std::sync::Arc::new(|_| None),
        }
    }
}

/// Sets the timeouts that bound how long a dead connection can go unnoticed: connecting
/// within 10 s, and a read timeout of `idle_timeout` (no byte for that long fails the
/// request; counted from the request's last write, so an idle pooled connection does not
/// eat into it). Keep `idle_timeout` above the watch timeout, or healthy quiet watches
/// fail.
pub fn client_config(mut config: kube::Config, idle_timeout: Duration) -> kube::Config {
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(idle_timeout);
    config.reset_reader_on_write = true;
    config
}

/// Watches Helm release records and emits release events.
pub struct Tracker {
    client: Client,
    config: TrackerConfig,
    metrics: TrackerMetrics,
}

/// One watch's part: a storage driver in one namespace (or all).
#[derive(Debug, Clone, PartialEq, Eq)]
struct WatchScope {
    storage: Storage,
    scope: Scope,
}

/// A watch event reduced to the metadata the book needs.
enum Seen {
    Apply(ObjectMeta),
    Delete(ObjectMeta),
    Init,
    InitApply(ObjectMeta),
    InitDone,
}

impl<K> From<Event<PartialObjectMeta<K>>> for Seen {
    fn from(event: Event<PartialObjectMeta<K>>) -> Self {
        match event {
            Event::Apply(o) => Self::Apply(o.metadata),
            Event::Delete(o) => Self::Delete(o.metadata),
            Event::Init => Self::Init,
            Event::InitApply(o) => Self::InitApply(o.metadata),
            Event::InitDone => Self::InitDone,
        }
    }
}

type WatchItem = (WatchScope, Result<Seen, watcher::Error>);

/// The metadata-only watch of one kind of record (`Api<PartialObjectMeta<_>>`: no payload
/// crosses) in one scope, with kube's default backoff.
fn metadata_watch<K>(
    client: Client,
    ws: WatchScope,
    cfg: watcher::Config,
) -> futures::stream::BoxStream<'static, WatchItem>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = match &ws.scope {
        None => Api::all(client),
        Some(ns) => Api::namespaced(client, ns),
    };
    watch_stream(api, cfg)
        .default_backoff()
        .map(move |e| (ws.clone(), e.map(Seen::from)))
        .boxed()
}

/// What woke the loop.
enum Wake {
    Closed,
    Watch(Option<Box<WatchItem>>),
    Stuck,
    Retry,
    Read,
    Sent,
    /// The listing's events took too long to be read and sent: synced anyway.
    ListingLate,
}

/// How long after the first listing its events may take to be read and sent before the
/// listing counts as synced anyway (a revision whose read keeps failing must not keep the
/// daemon unready).
const LISTING_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

impl Tracker {
    /// A tracker using `client` (see [`client_config`] for its timeouts), counting into
    /// `metrics`.
    pub fn new(client: Client, config: TrackerConfig, metrics: TrackerMetrics) -> Self {
        Self {
            client,
            config,
            metrics,
        }
    }

    fn scopes(&self) -> Vec<WatchScope> {
        let namespaces: Vec<Scope> = if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config.namespaces.iter().cloned().map(Some).collect()
        };
        self.storages()
            .into_iter()
            .flat_map(|storage| {
                namespaces.iter().map(move |scope| WatchScope {
                    storage,
                    scope: scope.clone(),
                })
            })
            .collect()
    }

    fn storages(&self) -> Vec<Storage> {
        let mut storages = self.config.storage.clone();
        storages.sort();
        storages.dedup();
        if storages.is_empty() {
            storages.push(Storage::Secret);
        }
        storages
    }

    fn watch_streams(&self) -> impl Stream<Item = WatchItem> + Send + use<> {
        let timeout = u32::try_from(self.config.watch_timeout.as_secs())
            .unwrap_or(290)
            .max(1);
        let streams = self.scopes().into_iter().map(|ws| {
            let mut cfg = watcher::Config::default().timeout(timeout);
            cfg = match ws.storage.field_selector() {
                Some(fields) => cfg.labels(HELM_OWNER_SELECTOR).fields(fields),
                // ConfigMaps have no type: the labels every Helm record carries narrow it.
                None => cfg.labels("owner=helm,name,status,version"),
            };
            match ws.storage {
                Storage::Secret => metadata_watch::<Secret>(self.client.clone(), ws, cfg),
                Storage::ConfigMap => metadata_watch::<ConfigMap>(self.client.clone(), ws, cfg),
            }
        });
        futures::stream::select_all(streams)
    }

    /// Runs until the event receiver is dropped. `synced` turns `true` once the first
    /// listing of every watched namespace completed.
    pub async fn run(self, events: mpsc::Sender<ReleaseEvent>, synced: watch::Sender<bool>) {
        let scopes = self.scopes();
        let mut books: Vec<(Storage, ReleaseBook)> = self
            .storages()
            .into_iter()
            .map(|s| {
                (
                    s,
                    ReleaseBook::new(self.config.stuck_pending_after)
                        .with_storage(s)
                        .listing_settled(self.config.list_settled),
                )
            })
            .collect();
        let mut reads = Scheduler::new(
            self.client.clone(),
            self.config.decode_limits,
            self.config.fetch_retry,
            self.config.fetch_concurrency,
            self.metrics.clone(),
        );
        let mut watch = std::pin::pin!(self.watch_streams());
        // When the first listing completed: synced once its events were all sent (every
        // release shown before the daemon says ready), or after LISTING_GRACE.
        let mut listed: Option<tokio::time::Instant> = None;
        loop {
            let grace = listed
                .filter(|_| !*synced.borrow())
                .map(|at| at + LISTING_GRACE);
            let stuck_at = books.iter().filter_map(|(_, b)| b.next_deadline()).min();
            let retry_at = reads.next_retry();
            let has_ready = reads.has_ready();
            let wake = tokio::select! {
                _ = events.closed() => Wake::Closed,
                item = watch.next() => Wake::Watch(item.map(Box::new)),
                () = sleep_until_timestamp(stuck_at) => Wake::Stuck,
                () = sleep_until_instant(retry_at) => Wake::Retry,
                () = reads.progress() => Wake::Read,
                () = sleep_until_instant(grace), if grace.is_some() => Wake::ListingLate,
                permit = events.reserve(), if has_ready => match permit {
                    Ok(permit) => {
                        if let Some(event) = reads.take_ready() {
                            self.announce(&event);
                            permit.send(event);
                        }
                        Wake::Sent
                    }
                    Err(_) => Wake::Closed,
                },
            };
            match wake {
                Wake::Closed | Wake::Watch(None) => break,
                Wake::Watch(Some(item)) => {
                    let (ws, event) = *item;
                    let Some((storage, book)) = books.iter_mut().find(|(s, _)| *s == ws.storage)
                    else {
                        continue;
                    };
                    let storage = *storage;
                    let actions = self.handle(book, &ws, event);
                    for action in actions {
                        reads.push(storage, action);
                    }
                    let all_synced = || {
                        books.iter().all(|(s, b)| {
                            let mine: Vec<Scope> = scopes
                                .iter()
                                .filter(|w| w.storage == *s)
                                .map(|w| w.scope.clone())
                                .collect();
                            b.is_synced(&mine)
                        })
                    };
                    if listed.is_none() && all_synced() {
                        info!(
                            releases = books.iter().map(|(_, b)| b.len()).sum::<usize>(),
                            "Helm release records listed; watching for changes"
                        );
                        self.metrics.watch_synced.set(1);
                        listed = Some(tokio::time::Instant::now());
                    }
                }
                Wake::Stuck => {
                    let now = Timestamp::now();
                    for (storage, book) in &mut books {
                        for action in book.due(now) {
                            reads.push(*storage, action);
                        }
                    }
                }
                Wake::Retry => reads.wake(tokio::time::Instant::now()),
                Wake::Read | Wake::Sent => {}
                Wake::ListingLate => {
                    warn!(
                        waiting = reads.backlog(),
                        "the listing's events are not all read after {}s; ready anyway, the rest follows",
                        LISTING_GRACE.as_secs()
                    );
                    synced.send_replace(true);
                }
            }
            // Every event of the listing sent: the daemon may show every release, then say
            // it is ready.
            if listed.is_some() && !*synced.borrow() && reads.backlog() == 0 && !reads.has_ready() {
                synced.send_replace(true);
            }
            self.metrics
                .fetch_backlog
                .set(i64::try_from(reads.backlog()).unwrap_or(i64::MAX));
        }
    }

    fn announce(&self, event: &ReleaseEvent) {
        self.metrics.release_event(event.kind.name());
        info!(release = %event.release, revision = event.revision, status = %event.status,
            event = %event.kind.name(), resumed = event.resumed, "release event");
    }

    fn handle(
        &self,
        book: &mut ReleaseBook,
        ws: &WatchScope,
        event: Result<Seen, watcher::Error>,
    ) -> Vec<Action> {
        let now = Timestamp::now();
        let scope = &ws.scope;
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                self.metrics.watch_event(WatchEventKind::Error);
                warn!(namespace = scope.as_deref().unwrap_or("*"), storage = %ws.storage, error = %e,
                    "watch of Helm release records failed; retrying with backoff");
                return Vec::new();
            }
        };
        match event {
            Seen::Apply(meta) => {
                self.metrics.watch_event(WatchEventKind::Apply);
                self.revision(&meta, ws.storage)
                    .map_or_else(Vec::new, |m| book.apply(&m, now))
            }
            Seen::Delete(meta) => {
                self.metrics.watch_event(WatchEventKind::Delete);
                self.revision(&meta, ws.storage)
                    .map_or_else(Vec::new, |m| book.delete(&m))
            }
            Seen::Init => {
                self.metrics.watch_event(WatchEventKind::Relist);
                debug!(
                    namespace = scope.as_deref().unwrap_or("*"),
                    storage = %ws.storage,
                    "listing Helm release records"
                );
                book.init(scope);
                Vec::new()
            }
            Seen::InitApply(meta) => {
                if let Some(m) = self.revision(&meta, ws.storage) {
                    book.init_apply(scope, &m, now);
                }
                Vec::new()
            }
            Seen::InitDone => {
                let bake = &self.config.bake_window;
                book.init_done(scope, now, &|key| bake(key))
            }
        }
    }

    fn revision(&self, meta: &ObjectMeta, storage: Storage) -> Option<RevisionMeta> {
        match revision_from_meta(meta) {
            Ok(m) => Some(m),
            Err(e) => {
                self.metrics.decode_error(e.reason);
                warn!(reason = e.reason.as_str(), %storage, "skipping a Helm release record: {e}");
                None
            }
        }
    }
}

async fn sleep_until_timestamp(at: Option<Timestamp>) {
    match at {
        Some(at) => {
            let wait = at.duration_since(Timestamp::now());
            tokio::time::sleep(Duration::try_from(wait).unwrap_or(Duration::ZERO)).await;
        }
        None => futures::future::pending().await,
    }
}

async fn sleep_until_instant(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}
