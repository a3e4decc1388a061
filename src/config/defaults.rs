//! What upgrade-guard uses where the file says nothing (pure): the one place each default is
//! written, read by the validation and by the modules that run with them (the tracker).

use std::time::Duration;

use super::policy::{
    AfterBakePolicy, AutoPolicy, ExportViewsPolicy, Mode, PodPolicy, ReleasePolicy,
};

/// Server-side watch timeout: each watch is resumed (not relisted) after it.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Read timeout of the tracker's API connections: a connection with no byte for this long is
/// dead (longer than [`WATCH_TIMEOUT`], or quiet healthy watches would be cut).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// Deadline of one read of a revision's record.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// A newest revision `pending-*` for longer than this is reported as stuck: longer than a
/// normal `helm upgrade --wait --timeout 15m`, which is pending all that time.
pub const STUCK_PENDING_AFTER: Duration = Duration::from_secs(20 * 60);

/// Where `docs/alerts.md` is published: the default of `notifications.runbook_url` and of
/// the `runbook_url` of every alert rule under `alerts/`.
pub const RUNBOOK_URL: &str =
    "https://github.com/upgrade-guard/upgrade-guard/blob/main/docs/alerts.md";

/// Points a lag window must hold by default before its slope is trusted.
pub const LAG_MIN_SAMPLES: u32 = 5;

/// Past the readiness deadline, a rollout that moved nothing for this long fails.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Restarts of a revision's containers during its bake tolerated by default.
pub const MAX_RESTARTS: u32 = 3;

/// Namespace of upgrade-guard's own records unless the file says otherwise.
pub const STATE_NAMESPACE: &str = "upgrade-guard";

/// The policy of a release the file says nothing about.
pub fn release_policy() -> ReleasePolicy {
    ReleasePolicy {
        mode: Mode::Recommend,
        auto: AutoPolicy {
            max_per_revision: 1,
            cooldown: Duration::from_secs(60 * 60),
            reapplied_within: Duration::from_secs(24 * 60 * 60),
            restart_migration_pod: false,
        },
        bake_window: Duration::from_secs(15 * 60),
        inconclusive_grace: Duration::from_secs(60 * 60),
        readiness_deadline: Duration::from_secs(10 * 60),
        pending_timeout: Duration::from_secs(5 * 60),
        pods: PodPolicy {
            timeouts: Default::default(),
            stall_timeout: STALL_TIMEOUT,
            max_restarts: MAX_RESTARTS,
            // Replaced by two evaluation intervals when the configuration is resolved.
            hold: Duration::from_secs(60),
        },
        rollback_timeout: Duration::from_secs(5 * 60),
        after_bake: AfterBakePolicy {
            watch_for: Duration::from_secs(6 * 60 * 60),
            interval: Duration::from_secs(60),
        },
        metrics_grace: Duration::from_secs(2 * 60),
        hooks: true,
        migration: None,
        export_views: ExportViewsPolicy::default(),
        uninstall_leftovers: None,
        metrics_presence: Vec::new(),
        lag: None,
        dependencies: Vec::new(),
        custom: Vec::new(),
    }
}
