//! The bounded queue in front of a delivery worker (one per Alertmanager, one for SMTP, one
//! per webhook): sending never waits; when the queue is full the oldest item is dropped (the
//! caller counts and says so); the worker waits for work, delivers the item at the front and
//! then removes exactly that item, even if it was dropped meanwhile to make room for a newer
//! one. [`deliver`] is the retry rule the SMTP and webhook workers share.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Items waiting for one worker.
#[derive(Debug)]
pub struct Queue<T> {
    items: Mutex<VecDeque<(u64, T)>>,
    next: Mutex<u64>,
    wake: Notify,
    capacity: usize,
}

/// An item taken by the worker, to be marked delivered (or given up) with [`Queue::done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken<T> {
    id: u64,
    /// The item.
    pub item: T,
}

impl<T: Clone> Queue<T> {
    /// A queue keeping at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            next: Mutex::new(0),
            wake: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn items(&self) -> MutexGuard<'_, VecDeque<(u64, T)>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an item and wakes the worker; returns the items dropped to make room, oldest
    /// first.
    pub fn push(&self, item: T) -> Vec<T> {
        let id = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        let mut dropped = Vec::new();
        {
            let mut items = self.items();
            while items.len() >= self.capacity {
                dropped.extend(items.pop_front().map(|(_, old)| old));
            }
            items.push_back((id, item));
        }
        self.wake.notify_one();
        dropped
    }

    /// The item at the front, waiting until there is one.
    pub async fn front(&self) -> Taken<T> {
        loop {
            let front = self.items().front().cloned();
            match front {
                Some((id, item)) => return Taken { id, item },
                None => self.wake.notified().await,
            }
        }
    }

    /// Removes a taken item, if it is still in the queue.
    pub fn done(&self, taken: &Taken<T>) {
        self.items().retain(|(id, _)| *id != taken.id);
    }

    /// Items waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.items().len()
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Accepted.
    Delivered,
    /// Refused in a way asking again cannot change (counted `rejected`, not retried).
    Refused(String),
    /// Anything else: retried.
    Failed(String),
}

/// How a delivery ended, each attempt counted in `metrics` for `channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted.
    Yes,
    /// Refused for good (why).
    Refused(String),
    /// Still failing after `give_up_after` (counted `dropped`).
    GaveUp,
}

/// Tries `attempt` until it delivers, is refused for good, or `give_up_after` has passed,
/// with a growing pause between tries (1 s up to a minute, jittered); `failed` hears each
/// failure's words.
pub async fn deliver<F, Fut>(
    give_up_after: std::time::Duration,
    metrics: &super::metrics::NotifyMetrics,
    channel: super::metrics::Channel,
    mut attempt: F,
    mut failed: impl FnMut(&str),
) -> Delivered
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    use super::metrics::Delivery;
    use backon::{BackoffBuilder, ExponentialBuilder};
    let first = tokio::time::Instant::now();
    let mut backoff = ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(std::time::Duration::from_secs(1))
        .with_max_delay(std::time::Duration::from_secs(60))
        .without_max_times()
        .build();
    loop {
        match attempt().await {
            Attempt::Delivered => {
                metrics.notification(channel, Delivery::Sent);
                return Delivered::Yes;
            }
            Attempt::Refused(why) => {
                metrics.notification(channel, Delivery::Rejected);
                return Delivered::Refused(why);
            }
            Attempt::Failed(why) => {
                metrics.notification(channel, Delivery::Failed);
                failed(&why);
                match backoff.next() {
                    Some(delay) if first.elapsed() + delay < give_up_after => {
                        tokio::time::sleep(delay).await;
                    }
                    _ => {
                        metrics.notification(channel, Delivery::Dropped);
                        return Delivered::GaveUp;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_is_dropped_when_full_and_only_the_delivered_item_is_removed() {
        let q = Queue::new(2);
        assert_eq!(q.push("a"), Vec::<&str>::new());
        assert_eq!(q.push("b"), Vec::<&str>::new());
        let taken = q.front().await;
        assert_eq!(taken.item, "a");
        // While "a" is being delivered the queue fills up: "a" is dropped to make room.
        assert_eq!(q.push("c"), vec!["a"]);
        // Delivering "a" must not remove "b", which is now at the front.
        q.done(&taken);
        assert_eq!(q.len(), 2);
        assert_eq!(q.front().await.item, "b");
        let b = q.front().await;
        q.done(&b);
        assert_eq!(q.front().await.item, "c");
    }

    #[tokio::test(start_paused = true)]
    async fn the_worker_waits_for_work() {
        let q = std::sync::Arc::new(Queue::new(4));
        let worker = tokio::spawn({
            let q = q.clone();
            async move { q.front().await.item }
        });
        tokio::task::yield_now().await;
        assert!(!worker.is_finished(), "nothing to deliver yet");
        q.push(7);
        assert_eq!(worker.await.unwrap(), 7);
    }
}
