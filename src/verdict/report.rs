//! The judgement of one revision at one time (pure): what every consumer of an evaluation
//! reads (the daemon's state, the bake records, the remediator, `check` and `status`).

use jiff::Timestamp;
use serde::Serialize;

use super::{RecommendedAction, Verdict};
use crate::checks::CheckResult;
use crate::release::{ReleaseKey, ReleaseStatus};

/// The judgement of one revision at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The release.
    pub release: ReleaseKey,
    /// The revision judged.
    pub revision: u32,
    /// Its status at the time.
    pub status: ReleaseStatus,
    /// Since when it has had that status.
    pub status_since: Timestamp,
    /// `chart-version`.
    pub chart: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What to do about it.
    pub action: RecommendedAction,
    /// Every check's result.
    pub results: Vec<CheckResult>,
    /// Facts the operator should know about the configuration against this release (for
    /// example a progress deadline shorter than the readiness deadline).
    pub notes: Vec<String>,
    /// When the upgrade started.
    pub started: Timestamp,
    /// When the bake window ends.
    pub bake_ends: Timestamp,
    /// When the evaluation ends at the latest: a revision still without a verdict then is
    /// final `inconclusive` (the bake window plus `inconclusive_grace`).
    pub closes_at: Timestamp,
    /// When this judgement was made.
    pub evaluated_at: Timestamp,
    /// The SHA-256 of what the revision applies (see `release::fingerprint`); what its
    /// bake record is bound to. Not shown.
    #[serde(skip)]
    pub content: String,
    /// When the release was first deployed: which install of it this is. Not shown.
    #[serde(skip)]
    pub install: Option<Timestamp>,
}

impl Report {
    /// Whether an evaluation ends with this report: the bake window passed and the verdict is
    /// a judgement (healthy, degraded, failed), or `closes_at` passed without one (the judge
    /// then says `inconclusive`). Inconclusive goes on being evaluated until then.
    pub fn is_final(&self) -> bool {
        self.evaluated_at >= self.bake_ends
            && (self.verdict.bake_record().is_some() || self.closed_inconclusive())
    }

    /// Inconclusive at `closes_at`: the evaluation ends without a verdict.
    fn closed_inconclusive(&self) -> bool {
        self.verdict == Verdict::Inconclusive && self.evaluated_at >= self.closes_at
    }

    /// Whether the only failures are dependencies' (a Kafka or PostgreSQL that is down):
    /// nothing says the revision itself is bad.
    pub fn only_dependencies_failed(&self) -> bool {
        let mut failed = self
            .results
            .iter()
            .filter(|r| r.outcome == crate::checks::Outcome::Fail)
            .peekable();
        failed.peek().is_some()
            && failed.all(|r| matches!(r.on_fail, crate::checks::FailClass::FixDependency { .. }))
    }

    /// The bake record this report leaves, if its verdict is a judgement. A revision failed
    /// only by its dependencies is recorded degraded (healthy, with dependency trouble):
    /// it stays a rollback target and is not alerted again as failed after a restart.
    pub fn bake_record(&self) -> Option<crate::release::rollback_target::BakeRecord> {
        if self.verdict == Verdict::Failed && self.only_dependencies_failed() {
            return Some(crate::release::rollback_target::BakeRecord::Degraded);
        }
        if self.closed_inconclusive() {
            return Some(crate::release::rollback_target::BakeRecord::Inconclusive);
        }
        self.verdict.bake_record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::report;

    /// Issue 19.9: a healthy revision whose only failures are dependency checks is recorded
    /// degraded, never failed for ever.
    #[test]
    fn a_revision_failed_only_by_its_dependencies_is_recorded_degraded() {
        use crate::checks::{CheckResult, FailClass, Outcome};
        use crate::release::rollback_target::BakeRecord;
        let mut r = report(2, Verdict::Failed, 100, 100);
        let kafka = CheckResult::new("dependency:kafka", Outcome::Fail, "kafka is 0").on_fail(
            FailClass::FixDependency {
                name: "kafka".into(),
            },
        );
        r.results = vec![kafka.clone()];
        assert!(r.only_dependencies_failed());
        assert_eq!(r.bake_record(), Some(BakeRecord::Degraded));
        r.results
            .push(CheckResult::new("pending_pods", Outcome::Fail, "broken"));
        assert_eq!(r.bake_record(), Some(BakeRecord::Failed));
        r.results = vec![];
        assert_eq!(r.bake_record(), Some(BakeRecord::Failed));
        assert_eq!(
            report(2, Verdict::Healthy, 100, 100).bake_record(),
            Some(BakeRecord::Healthy)
        );
    }

    #[test]
    fn an_evaluation_ends_after_the_bake_with_a_judgement() {
        assert!(!report(2, Verdict::Failed, 50, 100).is_final());
        assert!(report(2, Verdict::Failed, 100, 100).is_final());
        assert!(report(2, Verdict::Healthy, 101, 100).is_final());
        assert!(!report(2, Verdict::Inconclusive, 500, 100).is_final());
        assert!(!report(2, Verdict::Progressing, 500, 100).is_final());
    }

    /// Issue 19.14: an inconclusive that outlasts the bake and its grace ends the
    /// evaluation, with a record of its own (neither good nor failed).
    #[test]
    fn an_inconclusive_ends_at_the_close_with_its_own_record() {
        use crate::release::rollback_target::BakeRecord;
        let open = report(2, Verdict::Inconclusive, 3699, 100);
        assert!(!open.is_final());
        assert_eq!(open.bake_record(), None);
        let closed = report(2, Verdict::Inconclusive, 3700, 100);
        assert!(closed.is_final());
        assert_eq!(closed.bake_record(), Some(BakeRecord::Inconclusive));
        assert!(!report(2, Verdict::Progressing, 3700, 100).is_final());
    }
}
