//! What one revision's evaluation remembers between rounds (pure data): what started it, its
//! policy and bake window, the values at the time of its upgrade, and each check's provider
//! failures and `for:` clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::checks::hold::Hold;
use crate::checks::lag::LagBaseline;
use crate::checks::pods::RestartBaseline;
use crate::checks::presence::PresenceBaseline;
use crate::checks::provider::{ProviderError, ProviderState};
use crate::checks::workload::RolloutMemory;
use crate::checks::{CheckId, CheckResult};
use crate::config::{ReleasePolicy, render_query};
use crate::release::labels::Storage;
use crate::release::summary::{ReleaseSummary, WorkloadKind};
use crate::release::{ReleaseKey, ReleaseStatus};

/// What starts an evaluation.
#[derive(Debug, Clone)]
pub struct Start {
    /// The release.
    pub release: ReleaseKey,
    /// The decoded revision.
    pub summary: Arc<ReleaseSummary>,
    /// Its status.
    pub status: ReleaseStatus,
    /// Since when it has that status.
    pub status_since: Timestamp,
    /// The release history (revision, status).
    pub history: Vec<(u32, ReleaseStatus)>,
    /// Rollback revisions and the revision each rolled back to ("Rollback to N").
    pub rollbacks: BTreeMap<u32, u32>,
    /// Helm's storage driver holding the release.
    pub storage: Storage,
}

/// What was known at the upgrade, per item: a query Prometheus rejected stays that item's
/// error (its check reports it), without holding back the other items.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Baseline {
    pub presence: Vec<Result<PresenceBaseline, ProviderError>>,
    pub lag: Result<LagBaseline, ProviderError>,
    /// Prometheus recorded a successful scrape in the look-back before the upgrade.
    pub scraping_at_upgrade: bool,
}

/// Per check: provider failures and the `for:` clock.
#[derive(Debug, Clone, Default)]
pub(super) struct CheckState {
    pub provider: ProviderState,
    pub hold: Hold,
}

/// Kubernetes API failures in a row, the last results judged from real answers, and what
/// the Kubernetes checks remember between rounds.
#[derive(Debug, Clone, Default)]
pub(super) struct KubeState {
    pub errors_in_a_row: u32,
    pub last_good: Option<Vec<CheckResult>>,
    /// Per workload (`Deployment/gim`), when its rollout was last seen moving.
    pub rollouts: BTreeMap<String, RolloutMemory>,
    /// Restarts that pods predating the upgrade already had.
    pub restart_baseline: RestartBaseline,
    /// `for:` of the rollout, pods and restarts findings, per check.
    pub holds: BTreeMap<CheckId, Hold>,
    /// Finished Jobs seen, by name: kept when Kubernetes deletes them.
    pub finished_jobs: BTreeMap<String, crate::checks::observe::JobObs>,
}

/// One revision under evaluation: what started it, its policy, its bake window, and what
/// its checks remember between rounds.
#[derive(Debug)]
pub(super) struct Evaluation {
    pub start: Start,
    pub started: Timestamp,
    pub policy: ReleasePolicy,
    pub bake_ends: Timestamp,
    pub baseline: Option<Baseline>,
    pub checks: BTreeMap<CheckId, CheckState>,
    pub kube: KubeState,
    /// SQL dependencies: the last time each was seen out of bounds or unreachable.
    pub sql_troubles: BTreeMap<String, Timestamp>,
}

impl Evaluation {
    /// A fresh evaluation whose bake window starts at `started`.
    pub fn new(start: Start, policy: ReleasePolicy, started: Timestamp) -> Self {
        Self {
            bake_ends: crate::units::plus(started, policy.bake_window),
            started,
            policy,
            baseline: None,
            checks: BTreeMap::new(),
            kube: KubeState::default(),
            sql_troubles: BTreeMap::new(),
            start,
        }
    }

    pub fn key(&self) -> &ReleaseKey {
        &self.start.release
    }

    /// When the evaluation ends at the latest (the bake window plus `inconclusive_grace`).
    pub fn closes_at(&self) -> Timestamp {
        crate::units::plus(self.bake_ends, self.policy.inconclusive_grace)
    }

    pub fn query(&self, q: &str) -> String {
        render_query(q, self.key())
    }

    pub fn restart_command(&self) -> String {
        let s = &self.start.summary;
        let named = self
            .policy
            .migration
            .as_ref()
            .and_then(|m| m.restart.clone());
        let workload = s
            .workloads
            .iter()
            .filter(|w| w.kind != WorkloadKind::Job)
            .find(|w| named.as_ref().is_none_or(|n| *n == w.name));
        match workload {
            Some(w) => format!(
                "kubectl rollout restart {}/{} -n {}",
                w.kind.resource(),
                w.name,
                w.namespace
            ),
            None => format!(
                "kubectl delete pod -l app.kubernetes.io/instance={} -n {}",
                s.name, s.namespace
            ),
        }
    }
}

/// What judging needs from the global configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub errors_before_inconclusive: u32,
    pub scrape_interval: Duration,
    pub stuck_pending_after: Duration,
}

/// The watch after the bake of a revision whose evaluation ended: its span, when it looks
/// next, and what its pod checks remember.
#[derive(Debug, Clone)]
pub(super) struct AfterBake {
    /// The end of the bake: every clock of the watch starts there.
    pub since: Timestamp,
    pub until: Timestamp,
    pub next: Timestamp,
    /// Restarts the pods had when the watch first saw them.
    pub restarts: RestartBaseline,
    /// `for:` of the pod findings, per check.
    pub holds: BTreeMap<CheckId, Hold>,
}
