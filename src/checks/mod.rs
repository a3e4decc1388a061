//! Checks (pure): each takes gathered observations, the release's policy and the current
//! time, and returns a [`CheckResult`] carrying its numbers (value, threshold, window) and a
//! sentence for the operator — never a bare boolean. Gathering lives in `crate::evaluation`.

pub mod after_bake;
pub mod helm;
pub mod hold;
pub mod id;
pub mod lag;
pub mod observe;
pub mod pods;
pub mod presence;
pub mod provider;
pub mod sql;
pub mod threshold;
pub mod workload;

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::ReleasePolicy;
use crate::release::ReleaseStatus;
use crate::release::summary::ReleaseSummary;

pub use id::CheckId;

/// The values of a successful instant query, one per series; empty means "no series".
pub type Samples = Vec<f64>;

/// What every check of one revision shares.
#[derive(Debug, Clone, Copy)]
pub struct Revision<'a> {
    /// Evaluation time.
    pub now: Timestamp,
    /// When the upgrade started (the revision's `last_deployed`).
    pub started: Timestamp,
    /// The decoded revision.
    pub summary: &'a ReleaseSummary,
    /// Its current status.
    pub status: ReleaseStatus,
    /// Since when it has had that status.
    pub status_since: Timestamp,
    /// The release's policy.
    pub policy: &'a ReleasePolicy,
    /// A pending status older than this is stuck.
    pub stuck_pending_after: Duration,
}

impl Revision<'_> {
    /// Time since the upgrade started.
    pub fn elapsed(&self) -> Duration {
        crate::units::between(self.started, self.now)
    }

    /// The readiness deadline has passed.
    pub fn past_readiness_deadline(&self) -> bool {
        self.elapsed() >= self.policy.readiness_deadline
    }
}

/// The result of one check, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Healthy.
    Pass,
    /// Not yet decided (still inside its deadline or grace).
    Pending,
    /// Not healthy, but not worth an action.
    Warn,
    /// Cannot be judged: no data, or the metrics provider failed.
    Inconclusive,
    /// Unhealthy: an action is recommended.
    Fail,
}

impl Outcome {
    /// Every outcome, best first.
    pub const ALL: [Outcome; 5] = [
        Self::Pass,
        Self::Pending,
        Self::Warn,
        Self::Inconclusive,
        Self::Fail,
    ];

    /// The word used in tables, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Pending => "pending",
            Self::Warn => "warn",
            Self::Inconclusive => "inconclusive",
            Self::Fail => "fail",
        }
    }
}

/// Which bound a threshold is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The value must be at least this.
    Min,
    /// The value must be at most this.
    Max,
}

/// A threshold a value is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Which bound.
    pub bound: Bound,
    /// The bound's value.
    pub value: f64,
}

/// What a failure of this check calls for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailClass {
    /// The new revision is bad: roll back.
    Rollback,
    /// The migration did not complete: restart the pod, it resumes.
    RestartPod,
    /// A dependency is down: fix it first; a rollback would not help.
    FixDependency {
        /// The dependency's name.
        name: String,
    },
    /// A hook that runs before the manifest is applied failed: the new version never ran,
    /// so neither a rollback nor a restart helps; fix the hook's cause and upgrade again.
    FixHook {
        /// The hook's name.
        hook: String,
        /// The command that shows its logs.
        logs_command: String,
    },
    /// Someone has to look.
    Investigate,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable identifier (`rollout:Deployment/gim`, `lag`, `dependency:kafka`, ...).
    pub check: CheckId,
    /// The outcome.
    pub outcome: Outcome,
    /// The measured value, when there is one.
    pub value: Option<f64>,
    /// What the value is compared with.
    pub threshold: Option<Threshold>,
    /// Time window the value covers or the deadline it is measured against.
    #[serde(with = "duration_secs")]
    pub window: Option<Duration>,
    /// What was found, in words.
    pub summary: String,
    /// What a failure here recommends.
    pub on_fail: FailClass,
    /// Counts behind the result by kind (for `pending_pods`: pods not Ready, by reason).
    /// Not read back from JSON (the API's readers show the summary instead).
    #[serde(
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        skip_deserializing
    )]
    pub counts: std::collections::BTreeMap<&'static str, u32>,
    /// Not judged from a current answer: its provider (Prometheus, the API server) failed
    /// this round and the result is the last answer or a wait. Good enough for a verdict,
    /// never for an unattended action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl CheckResult {
    /// A result with only the essentials; numbers are added with the builder methods.
    pub fn new(check: impl Into<CheckId>, outcome: Outcome, summary: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            outcome,
            value: None,
            threshold: None,
            window: None,
            summary: summary.into(),
            on_fail: FailClass::Rollback,
            counts: std::collections::BTreeMap::new(),
            stale: false,
        }
    }

    /// Marks the result as not judged from a current answer.
    pub fn stale(mut self) -> Self {
        self.stale = true;
        self
    }

    /// Sets the counts by kind.
    pub fn counts(mut self, counts: std::collections::BTreeMap<&'static str, u32>) -> Self {
        self.counts = counts;
        self
    }

    /// Sets the measured value.
    pub fn value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// Sets the threshold.
    pub fn threshold(mut self, bound: Bound, value: f64) -> Self {
        self.threshold = Some(Threshold { bound, value });
        self
    }

    /// Sets the window or deadline.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// Sets what a failure recommends.
    pub fn on_fail(mut self, class: FailClass) -> Self {
        self.on_fail = class;
        self
    }
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_order_from_best_to_worst() {
        let mut all = Outcome::ALL.to_vec();
        all.reverse();
        all.sort();
        assert_eq!(all, Outcome::ALL);
        assert!(Outcome::Inconclusive < Outcome::Fail);
        assert!(Outcome::Warn < Outcome::Inconclusive);
    }
}
