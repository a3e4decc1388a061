//! The automatic actions' metrics: rollbacks and migration restarts by final outcome, holds by
//! reason, and whether this replica leads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::plan::HoldReason;
use crate::metrics::{Durations, label_value};
use crate::records::action::{ActionKind, ActionRecord, Phase};

/// The final outcome of an automatic rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollbackOutcome {
    /// The rollback's revision passed its bake.
    Verified,
    /// The rollback's revision failed its bake.
    VerificationFailed,
    /// `helm rollback` failed or passed its deadline.
    HelmFailed,
    /// The process running it died.
    Interrupted,
    /// Not started: the history changed after the intent was written.
    Cancelled,
    /// `dry_run`: shown, not run.
    DryRun,
}

impl RollbackOutcome {
    /// Every outcome (exported from the start).
    pub const ALL: [RollbackOutcome; 6] = [
        Self::Verified,
        Self::VerificationFailed,
        Self::HelmFailed,
        Self::Interrupted,
        Self::Cancelled,
        Self::DryRun,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::VerificationFailed => "verification_failed",
            Self::HelmFailed => "helm_failed",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
            Self::DryRun => "dry_run",
        }
    }
}

/// The final outcome of an automatic migration restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestartOutcome {
    /// The pods were deleted.
    Done,
    /// Deleting them failed.
    Failed,
    /// The process running it died.
    Interrupted,
    /// Not started: the history changed after the intent was written.
    Cancelled,
    /// `dry_run`: shown, not run.
    DryRun,
}

impl RestartOutcome {
    /// Every outcome (exported from the start).
    pub const ALL: [RestartOutcome; 5] = [
        Self::Done,
        Self::Failed,
        Self::Interrupted,
        Self::Cancelled,
        Self::DryRun,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
            Self::DryRun => "dry_run",
        }
    }
}

label_value!(RollbackOutcome, RestartOutcome, HoldReason);

/// `{outcome}` of a rollback.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackLabel {
    /// How it ended.
    pub outcome: RollbackOutcome,
}

/// `{outcome}` of a migration restart.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabel {
    /// How it ended.
    pub outcome: RestartOutcome,
}

/// `{reason}` of a hold.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HoldLabel {
    /// Why nothing was done.
    pub reason: HoldReason,
}

/// Metrics of automatic actions.
#[derive(Debug, Clone)]
pub struct ActionMetrics {
    /// `rollbacks_total{outcome}`.
    pub rollbacks: Family<RollbackLabel, Counter>,
    /// `rollback_duration_seconds{outcome}`: from the intent to the final outcome.
    pub rollback_duration: Durations<RollbackLabel>,
    /// `migration_restarts_total{outcome}`.
    pub restarts: Family<RestartLabel, Counter>,
    /// `action_holds_total{reason}`.
    pub holds: Family<HoldLabel, Counter>,
    /// `leader` (1 while this replica holds the Lease).
    pub leader: Gauge,
    /// `namespace_claimed_elsewhere{namespace}`.
    pub claimed_elsewhere: Family<NamespaceLabel, Gauge>,
    /// `record_writes_total{kind, outcome}`: records whose first write failed.
    pub record_writes: Family<WriteLabel, Counter>,
    /// `records_unwritten`: records waiting to be written again.
    pub records_unwritten: Gauge,
    /// `records_unwritten_oldest_seconds`.
    pub records_unwritten_oldest: Gauge,
}

impl Default for ActionMetrics {
    fn default() -> Self {
        Self {
            rollbacks: Family::default(),
            rollback_duration: Family::new_with_constructor(|| {
                prometheus_client::metrics::histogram::Histogram::new(
                    crate::metrics::buckets::ROLLBACK,
                )
            }),
            restarts: Family::default(),
            holds: Family::default(),
            leader: Gauge::default(),
            claimed_elsewhere: Family::default(),
            record_writes: Family::default(),
            records_unwritten: Gauge::default(),
            records_unwritten_oldest: Gauge::default(),
        }
    }
}

/// `{kind, outcome}` of a record write that did not succeed at once.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    /// `bake` or `action`.
    pub kind: String,
    /// `failed` (kept to be written again), `written_late`, `given_up`.
    pub outcome: String,
}

/// `{namespace}` of a watched namespace.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabel {
    /// The namespace.
    pub namespace: String,
}

impl ActionMetrics {
    /// Creates the metrics (every outcome and reason from the start) and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        for outcome in RollbackOutcome::ALL {
            let _ = m.rollbacks.get_or_create(&RollbackLabel { outcome });
            let _ = m
                .rollback_duration
                .get_or_create(&RollbackLabel { outcome });
        }
        for outcome in RestartOutcome::ALL {
            let _ = m.restarts.get_or_create(&RestartLabel { outcome });
        }
        for reason in HoldReason::ALL {
            let _ = m.holds.get_or_create(&HoldLabel { reason });
        }
        registry.register(
            "rollbacks",
            "Automatic rollbacks by final outcome (verified, verification_failed, helm_failed, interrupted, cancelled before running, dry_run)",
            m.rollbacks.clone(),
        );
        registry.register_with_unit(
            "rollback_duration",
            "How long automatic rollbacks took from their intent to their final outcome (a verified rollback includes its verification), by outcome",
            prometheus_client::registry::Unit::Seconds,
            m.rollback_duration.clone(),
        );
        registry.register(
            "migration_restarts",
            "Automatic migration-pod restarts by outcome",
            m.restarts.clone(),
        );
        registry.register(
            "action_holds",
            "Automatic actions held, by reason (counted when a release's hold starts or changes)",
            m.holds.clone(),
        );
        for kind in ["bake", "action"] {
            for outcome in ["failed", "written_late", "given_up"] {
                let _ = m.record_writes.get_or_create(&WriteLabel {
                    kind: kind.into(),
                    outcome: outcome.into(),
                });
            }
        }
        registry.register(
            "record_writes",
            "Writes of upgrade-guard's own records (bake verdicts, action outcomes) that failed at first: failed (kept and written again), written_late, given_up",
            m.record_writes.clone(),
        );
        registry.register(
            "records_unwritten",
            "Records waiting to be written again after a failed write",
            m.records_unwritten.clone(),
        );
        registry.register(
            "records_unwritten_oldest_seconds",
            "How long the oldest record waiting to be written has waited (0 when none waits)",
            m.records_unwritten_oldest.clone(),
        );
        registry.register(
            "namespace_claimed_elsewhere",
            "1 while another upgrade-guard installation claims a namespace this one would act on in mode: auto (neither may act there twice; this one does not act)",
            m.claimed_elsewhere.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (only the leader alerts and acts)",
            m.leader.clone(),
        );
        m
    }

    /// Counts the final outcome a record reached; a record still running, or a rollback done
    /// but not yet verified, counts nothing yet.
    pub fn finished(&self, record: &ActionRecord) {
        let (rollback, restart) = match record.phase {
            Phase::Running => return,
            Phase::Cancelled => (RollbackOutcome::Cancelled, RestartOutcome::Cancelled),
            Phase::Done => (RollbackOutcome::Verified, RestartOutcome::Done),
            Phase::Failed => (RollbackOutcome::HelmFailed, RestartOutcome::Failed),
            Phase::Interrupted => (RollbackOutcome::Interrupted, RestartOutcome::Interrupted),
            // Only a rollback creates a revision to verify; a restart never reaches these.
            Phase::Verified => (RollbackOutcome::Verified, RestartOutcome::Done),
            Phase::VerificationFailed => {
                (RollbackOutcome::VerificationFailed, RestartOutcome::Failed)
            }
        };
        match record.action {
            // A rollback done is only an outcome once its revision is judged.
            ActionKind::Rollback if record.phase == Phase::Done => {}
            ActionKind::Rollback => {
                self.rollback(rollback);
                if let Some(took) = record
                    .finished
                    .and_then(|f| f.duration_since(record.started).try_into().ok())
                    .map(|d: std::time::Duration| d.as_secs_f64())
                {
                    self.rollback_duration
                        .get_or_create(&RollbackLabel { outcome: rollback })
                        .observe(took);
                }
            }
            ActionKind::RestartPod => self.restart(restart),
        }
    }

    /// Counts an action shown but not run (`dry_run`).
    pub fn dry_run(&self, action: ActionKind) {
        match action {
            ActionKind::Rollback => self.rollback(RollbackOutcome::DryRun),
            ActionKind::RestartPod => self.restart(RestartOutcome::DryRun),
        }
    }

    fn rollback(&self, outcome: RollbackOutcome) {
        self.rollbacks
            .get_or_create(&RollbackLabel { outcome })
            .inc();
    }

    fn restart(&self, outcome: RestartOutcome) {
        self.restarts.get_or_create(&RestartLabel { outcome }).inc();
    }

    /// The gauge saying whether another installation claims `namespace`.
    pub fn claimed_elsewhere(&self, namespace: &str) -> Gauge {
        self.claimed_elsewhere
            .get_or_create(&NamespaceLabel {
                namespace: namespace.to_string(),
            })
            .clone()
    }

    /// Counts a record write that did not succeed at once.
    pub fn record_write(&self, kind: &str, outcome: &str) {
        self.record_writes
            .get_or_create(&WriteLabel {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// How many records wait and for how long the oldest has.
    pub fn unwritten(&self, waiting: usize, oldest: std::time::Duration) {
        self.records_unwritten
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        self.records_unwritten_oldest
            .set(i64::try_from(oldest.as_secs()).unwrap_or(i64::MAX));
    }

    /// Counts a hold.
    pub fn held(&self, reason: HoldReason) {
        self.holds.get_or_create(&HoldLabel { reason }).inc();
    }
}
