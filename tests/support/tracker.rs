//! The release tracker running inside a test, with its events and metrics at hand.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use upgrade_guard::metrics::registry;
use upgrade_guard::release::event::ReleaseEvent;
use upgrade_guard::tracker::metrics::TrackerMetrics;
use upgrade_guard::tracker::{Tracker, TrackerConfig};

/// How long a test waits for the tracker to sync or for an event.
pub const WAIT: Duration = Duration::from_secs(90);

/// A tracker running in this test; stopped when dropped.
pub struct Watching {
    /// Its events.
    pub events: mpsc::Receiver<ReleaseEvent>,
    /// Its metrics.
    pub metrics: TrackerMetrics,
    task: tokio::task::JoinHandle<()>,
}

impl Watching {
    /// Starts a tracker and waits until its first listing completed.
    pub async fn start(client: kube::Client, config: TrackerConfig) -> Self {
        Self::start_with_room(client, config, 64).await
    }

    /// The same with an event channel of `room` events.
    pub async fn start_with_room(client: kube::Client, config: TrackerConfig, room: usize) -> Self {
        let mut reg = registry();
        let metrics = TrackerMetrics::register(&mut reg);
        let (tx, events) = mpsc::channel(room);
        let (synced_tx, mut synced) = watch::channel(false);
        let task = tokio::spawn(Tracker::new(client, config, metrics.clone()).run(tx, synced_tx));
        tokio::time::timeout(WAIT, synced.wait_for(|s| *s))
            .await
            .expect("tracker synced in time")
            .expect("tracker alive");
        Self {
            events,
            metrics,
            task,
        }
    }

    /// The next event (panics after [`WAIT`]).
    pub async fn next(&mut self) -> ReleaseEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("a release event in time")
            .expect("tracker alive")
    }

    /// The next `n` events, as `release vN kind` lines.
    pub async fn next_lines(&mut self, n: usize) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..n {
            lines.push(line(&self.next().await));
        }
        lines
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `release vN kind`.
pub fn line(e: &ReleaseEvent) -> String {
    format!("{} v{} {}", e.release.name, e.revision, e.kind.name())
}
