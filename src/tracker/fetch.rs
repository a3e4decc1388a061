//! Reading the revisions the release book asked for: one GET of one record per attempt, with a
//! deadline; per release in order, across releases concurrently (bounded); failed reads
//! retried with jittered exponential backoff (`backon`), counted by reason, and reported as an
//! `unreadable` event when the fast retries are used up (reading then goes on, slower, until
//! it succeeds or the record is gone). Nothing here blocks the watch loop: the scheduler is
//! polled by it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::FetchErrorReason;
use super::metrics::TrackerMetrics;
use crate::config::defaults;
use crate::release::ReleaseKey;
use crate::release::decode::{DecodeLimits, decode_release};
use crate::release::error::DecodeError;
use crate::release::event::{PendingEvent, ReleaseEvent};
use crate::release::history::Action;
use crate::release::labels::{Storage, disagreement, revision_from_meta};
use crate::release::summary::ReleaseSummary;

/// Retry pacing of failed reads.
#[derive(Debug, Clone, Copy)]
pub struct FetchRetry {
    /// Deadline of one GET.
    pub timeout: Duration,
    /// First delay after a failure (doubled each time, with jitter).
    pub min_delay: Duration,
    /// Longest delay between fast retries.
    pub max_delay: Duration,
    /// Fast retries before the revision is reported `unreadable`.
    pub attempts: usize,
    /// Delay between retries once reported (until the read succeeds).
    pub slow_delay: Duration,
}

impl Default for FetchRetry {
    fn default() -> Self {
        Self {
            timeout: defaults::FETCH_TIMEOUT,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(15),
            attempts: 8,
            slow_delay: Duration::from_secs(60),
        }
    }
}

/// What one attempt gave.
enum Attempt {
    Read(ReleaseEvent),
    Gone,
    Undecodable(DecodeError),
    Failed(FetchErrorReason, String),
}

/// Releases queue per (storage, release): one read in flight per release keeps its events in
/// order; different releases do not wait for each other.
type QueueKey = (Storage, ReleaseKey);

struct Queue {
    items: VecDeque<Action>,
    state: State,
    /// Failures of the read at the head of the queue.
    retry: Option<Retry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the ready list.
    Ready,
    /// Its head is being read.
    Busy,
    /// Its head failed; read again at this time.
    Waiting(Instant),
}

struct Retry {
    backoff: ExponentialBackoff,
    failures: u32,
    reported: bool,
}

/// Reads revisions for the watch loop. Completed events come out of [`Scheduler::take_ready`]
/// in per-release order.
pub struct Scheduler {
    client: Client,
    limits: DecodeLimits,
    retry: FetchRetry,
    metrics: TrackerMetrics,
    concurrency: usize,
    queues: HashMap<QueueKey, Queue>,
    ready: VecDeque<QueueKey>,
    in_flight: FuturesUnordered<BoxFuture<'static, (QueueKey, Attempt)>>,
    done: VecDeque<ReleaseEvent>,
}

impl Scheduler {
    /// A scheduler reading with `client`, at most `concurrency` reads at once.
    pub fn new(
        client: Client,
        limits: DecodeLimits,
        retry: FetchRetry,
        concurrency: usize,
        metrics: TrackerMetrics,
    ) -> Self {
        Self {
            client,
            limits,
            retry,
            metrics,
            concurrency: concurrency.max(1),
            queues: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            done: VecDeque::new(),
        }
    }

    /// Queues what the release book decided, behind the release's earlier actions.
    pub fn push(&mut self, storage: Storage, action: Action) {
        let release = match &action {
            Action::Fetch(p) => p.release.clone(),
            Action::Emit(e) => e.release.clone(),
        };
        let key = (storage, release);
        match self.queues.get_mut(&key) {
            Some(queue) => queue.items.push_back(action),
            None => {
                self.queues.insert(
                    key.clone(),
                    Queue {
                        items: VecDeque::from([action]),
                        state: State::Ready,
                        retry: None,
                    },
                );
                self.ready.push_back(key);
            }
        }
        self.start();
    }

    /// Starts reads while below the concurrency bound; passes `Emit`s through in order.
    fn start(&mut self) {
        while self.in_flight.len() < self.concurrency {
            let Some(key) = self.ready.pop_front() else {
                return;
            };
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            match queue.items.front() {
                None => {
                    self.queues.remove(&key);
                }
                Some(Action::Emit(event)) => {
                    self.done.push_back(event.clone());
                    queue.items.pop_front();
                    self.ready.push_back(key);
                }
                Some(Action::Fetch(pending)) => {
                    queue.state = State::Busy;
                    let read = read(
                        self.client.clone(),
                        key.0,
                        pending.clone(),
                        self.limits,
                        self.retry.timeout,
                    );
                    self.in_flight
                        .push(read.map(move |attempt| (key, attempt)).boxed());
                }
            }
        }
    }

    /// Waits for the next read to finish and files its outcome; pending forever when no
    /// read is in flight (for `select!`).
    pub async fn progress(&mut self) {
        match self.in_flight.next().await {
            Some((key, attempt)) => self.finish(key, attempt),
            None => futures::future::pending().await,
        }
    }

    /// When the earliest waiting retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|q| match q.state {
                State::Waiting(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Makes due retries ready.
    pub fn wake(&mut self, now: Instant) {
        for (key, queue) in &mut self.queues {
            if matches!(queue.state, State::Waiting(at) if at <= now) {
                queue.state = State::Ready;
                self.ready.push_back(key.clone());
            }
        }
        self.start();
    }

    /// Events completed so far, in per-release order.
    pub fn take_ready(&mut self) -> Option<ReleaseEvent> {
        self.done.pop_front()
    }

    /// Whether completed events wait to be sent.
    pub fn has_ready(&self) -> bool {
        !self.done.is_empty()
    }

    /// Reads not yet completed (queued, in flight or waiting to retry).
    pub fn backlog(&self) -> usize {
        self.queues.values().map(|q| q.items.len()).sum()
    }

    fn finish(&mut self, key: QueueKey, attempt: Attempt) {
        let Some(queue) = self.queues.get_mut(&key) else {
            return;
        };
        let Some(Action::Fetch(pending)) = queue.items.front() else {
            return;
        };
        let (release, revision) = (&pending.release, pending.revision);
        let kind = key.0.kind();
        let done = match attempt {
            Attempt::Read(event) => {
                if let Some(retry) = &queue.retry {
                    info!(%release, revision, failures = retry.failures,
                        "read the revision's {kind} after {} failed attempts", retry.failures);
                }
                if let Some(summary) = &event.summary
                    && !summary.manifest_problems.is_empty()
                {
                    for problem in &summary.manifest_problems {
                        self.metrics
                            .decode_error(crate::release::error::DecodeErrorReason::Manifest);
                        warn!(%release, revision, "{problem}");
                    }
                }
                Some(event)
            }
            Attempt::Gone => {
                debug!(%release, revision, "the revision's {kind} was deleted before it could be read");
                None
            }
            Attempt::Undecodable(e) => {
                self.metrics.decode_error(e.reason);
                warn!(%release, revision, reason = e.reason.as_str(),
                    "cannot decode the release payload of {kind} {} ({e}); this revision is not judged",
                    release.secret_name(revision));
                Some(pending.unreadable(
                    e.reason.as_str(),
                    format!("the release payload cannot be decoded: {e}"),
                    false,
                ))
            }
            Attempt::Failed(reason, detail) => {
                self.metrics.fetch_error(reason);
                let retry = queue.retry.get_or_insert_with(|| Retry {
                    backoff: ExponentialBuilder::new()
                        .with_jitter()
                        .with_min_delay(self.retry.min_delay)
                        .with_max_delay(self.retry.max_delay)
                        .with_max_times(self.retry.attempts)
                        .build(),
                    failures: 0,
                    reported: false,
                });
                retry.failures += 1;
                if retry.failures == 1 {
                    warn!(%release, revision, reason = reason.as_str(),
                        "cannot read {kind} {} ({detail}); retrying", release.secret_name(revision));
                } else {
                    debug!(%release, revision, reason = reason.as_str(), failures = retry.failures,
                        "reading the revision failed again ({detail})");
                }
                let fast = if reason.needs_an_operator() {
                    None
                } else {
                    retry.backoff.next()
                };
                let delay = match fast {
                    Some(delay) if !retry.reported => delay,
                    _ => {
                        let report = !retry.reported;
                        retry.reported = true;
                        if report {
                            warn!(%release, revision, reason = reason.as_str(), failures = retry.failures,
                                "giving up reading {kind} {} for now ({detail}): what happened to this revision is unknown; retrying every {}s",
                                release.secret_name(revision), self.retry.slow_delay.as_secs());
                            let event = pending.unreadable(
                                reason.as_str(),
                                format!(
                                    "cannot read {kind} {} after {} attempts: {detail}",
                                    release.secret_name(revision),
                                    retry.failures
                                ),
                                true,
                            );
                            self.done.push_back(event);
                        }
                        jittered(self.retry.slow_delay)
                    }
                };
                queue.state = State::Waiting(Instant::now() + delay);
                return;
            }
        };
        queue.retry = None;
        queue.items.pop_front();
        if let Some(event) = done {
            self.done.push_back(event);
        }
        if queue.items.is_empty() {
            self.queues.remove(&key);
        } else {
            queue.state = State::Ready;
            self.ready.push_back(key);
        }
        self.start();
    }
}

/// `base` plus up to half of it, so many releases failing together do not retry in step.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// One GET (with its deadline) and the decode of one revision's record.
async fn read(
    client: Client,
    storage: Storage,
    pending: PendingEvent,
    limits: DecodeLimits,
    timeout: Duration,
) -> Attempt {
    let ns = pending.release.namespace.clone();
    let name = pending.release.secret_name(pending.revision);
    // (payload, the record's metadata)
    let get = async {
        match storage {
            Storage::Secret => Api::<Secret>::namespaced(client, &ns)
                .get_opt(&name)
                .await
                .map(|s| {
                    s.map(|s| {
                        let data = s
                            .data
                            .and_then(|mut d| d.remove("release"))
                            .map(|b| b.0)
                            .unwrap_or_default();
                        (data, s.metadata)
                    })
                }),
            Storage::ConfigMap => Api::<ConfigMap>::namespaced(client, &ns)
                .get_opt(&name)
                .await
                .map(|c| {
                    c.map(|c| {
                        let data = c
                            .data
                            .and_then(|mut d| d.remove("release"))
                            .map(String::into_bytes)
                            .unwrap_or_default();
                        (data, c.metadata)
                    })
                }),
        }
    };
    let data = match tokio::time::timeout(timeout, get).await {
        Err(_) => {
            return Attempt::Failed(
                FetchErrorReason::Timeout,
                format!("no answer within {}s", timeout.as_secs_f64()),
            );
        }
        Ok(Err(e)) => return Attempt::Failed(FetchErrorReason::of(&e), e.to_string()),
        Ok(Ok(None)) => return Attempt::Gone,
        Ok(Ok(Some(read))) => read,
    };
    let (data, object) = data;
    let recorded = object.creation_timestamp.as_ref().map(|t| t.0);
    // A record whose name, labels and payload disagree was not written by Helm as it is.
    let decode = move || {
        let summary = decode_release(&data, limits)?;
        let meta = revision_from_meta(&object)?;
        match disagreement(&object, &meta, &summary) {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    };
    match tokio::task::spawn_blocking(decode).await {
        Ok(Ok(summary)) => Attempt::Read(pending.complete(Arc::new(ReleaseSummary {
            recorded,
            ..summary
        }))),
        Ok(Err(e)) => Attempt::Undecodable(e),
        Err(e) => Attempt::Failed(
            FetchErrorReason::Other,
            format!("decoding task failed: {e}"),
        ),
    }
}
