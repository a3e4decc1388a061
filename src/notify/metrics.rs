//! The notification channels' metrics: attempts by channel and outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::metrics::label_value;

/// A notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Alertmanager's v2 API.
    Alertmanager,
    /// SMTP.
    Email,
    /// Kubernetes Events (`events.k8s.io`).
    KubernetesEvents,
    /// Webhooks (`notifications.webhooks`).
    Webhook,
}

impl Channel {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Email => "email",
            Self::KubernetesEvents => "kubernetes_events",
            Self::Webhook => "webhook",
        }
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Accepted.
    Sent,
    /// Failed; retried.
    Failed,
    /// Refused for good.
    Rejected,
    /// Dropped: the queue was full.
    Dropped,
}

impl Delivery {
    /// Every outcome (exported from the start).
    pub const ALL: [Delivery; 4] = [Self::Sent, Self::Failed, Self::Rejected, Self::Dropped];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Dropped => "dropped",
        }
    }
}

label_value!(Channel, Delivery);

/// `{channel, outcome}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelOutcome {
    /// The channel.
    pub channel: Channel,
    /// How the attempt ended.
    pub outcome: Delivery,
}

/// Metrics of notifications.
#[derive(Debug, Clone, Default)]
pub struct NotifyMetrics {
    /// `notifications_total{channel,outcome}`.
    pub notifications: Family<ChannelOutcome, Counter>,
}

impl NotifyMetrics {
    /// Creates the metrics (every channel and outcome from the start) and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for channel in [
            Channel::Alertmanager,
            Channel::Email,
            Channel::KubernetesEvents,
            Channel::Webhook,
        ] {
            for outcome in Delivery::ALL {
                let _ = m
                    .notifications
                    .get_or_create(&ChannelOutcome { channel, outcome });
            }
        }
        registry.register(
            "notifications",
            "Notifications by channel and outcome (failed ones are retried)",
            m.notifications.clone(),
        );
        m
    }

    /// Counts one notification attempt.
    pub fn notification(&self, channel: Channel, outcome: Delivery) {
        self.notifications
            .get_or_create(&ChannelOutcome { channel, outcome })
            .inc();
    }

    /// Attempts so far with `outcome` on `channel`.
    pub fn count(&self, channel: Channel, outcome: Delivery) -> u64 {
        self.notifications
            .get_or_create(&ChannelOutcome { channel, outcome })
            .get()
    }
}
