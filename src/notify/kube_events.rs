//! Publishing Kubernetes Events (I/O), off the daemon's path: a bounded queue and one task
//! that publishes through kube's event recorder (which folds a repeated Event into a
//! series). A refusal (RBAC, a bad object) is counted and logged, an unreachable API
//! server retried a few times; nothing waits for it.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tracing::warn;

use super::events::KubeEvent;
use super::metrics::{Channel, Delivery, NotifyMetrics};

/// Events waiting to be published; more are dropped (and counted).
const QUEUE: usize = 256;
/// Attempts for an Event the API server did not answer.
const ATTEMPTS: u32 = 3;

/// Where the daemon hands its Events.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<KubeEvent>,
    metrics: NotifyMetrics,
}

impl EventSink {
    /// Starts the publishing task; `instance` names this replica in each Event.
    pub fn start(client: kube::Client, instance: String, metrics: NotifyMetrics) -> Self {
        let (tx, mut rx) = mpsc::channel::<KubeEvent>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "upgrade-guard".into(),
                instance: Some(instance),
            },
        );
        let counted = metrics.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let outcome = publish(&recorder, &e).await;
                counted.notification(Channel::KubernetesEvents, outcome);
            }
        });
        Self { tx, metrics }
    }

    /// Queues one Event; never waits.
    pub fn send(&self, event: KubeEvent) {
        if let Err(e) = self.tx.try_send(event) {
            warn!("a Kubernetes Event is dropped: {e}");
            self.metrics
                .notification(Channel::KubernetesEvents, Delivery::Dropped);
        }
    }
}

async fn publish(recorder: &Recorder, e: &KubeEvent) -> Delivery {
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(e.record_kind().into()),
        name: Some(e.record_name()),
        namespace: Some(e.release.namespace.to_string()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.into(),
        note: Some(e.note.clone()),
        action: e.action.into(),
        secondary: None,
    };
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        match recorder.publish(&event, &reference).await {
            Ok(()) => return Delivery::Sent,
            Err(kube::Error::Api(status)) => {
                warn!(release = %e.release, reason = e.reason,
                    "the API server refused a Kubernetes Event ({} {}): check that upgrade-guard may create events.k8s.io Events in {}",
                    status.code, status.message, e.release.namespace);
                return Delivery::Rejected;
            }
            Err(err) if attempt < ATTEMPTS => {
                warn!(release = %e.release, reason = e.reason, "a Kubernetes Event could not be published, trying again: {err}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(err) => {
                warn!(release = %e.release, reason = e.reason, "a Kubernetes Event could not be published: {err}");
            }
        }
    }
    Delivery::Failed
}
