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
    /// When this judgement was made.
    pub evaluated_at: Timestamp,
}

impl Report {
    /// Whether an evaluation ends with this report: the bake window passed and the verdict is
    /// a judgement (healthy, degraded, failed). Inconclusive goes on being evaluated.
    pub fn is_final(&self) -> bool {
        self.evaluated_at >= self.bake_ends && self.verdict.bake_record().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::report;

    #[test]
    fn an_evaluation_ends_after_the_bake_with_a_judgement() {
        assert!(!report(2, Verdict::Failed, 50, 100).is_final());
        assert!(report(2, Verdict::Failed, 100, 100).is_final());
        assert!(report(2, Verdict::Healthy, 101, 100).is_final());
        assert!(!report(2, Verdict::Inconclusive, 500, 100).is_final());
        assert!(!report(2, Verdict::Progressing, 500, 100).is_final());
    }
}
