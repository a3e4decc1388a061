//! What `mode: auto` shows about a release's current revision (pure): whether it only
//! reports (`dry_run`), the latest decision, the action taken, and all of it in words for
//! the `automatic_action` annotation and the email.

use serde::{Deserialize, Serialize};

use super::plan::{Hold, Plan};
use crate::records::action::ActionRecord;

/// What the daemon shows about automatic actions for a release's current revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Automation {
    /// `actions.dry_run`: plans are reported, nothing runs.
    pub dry_run: bool,
    /// The latest decision about the current revision's failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The action taken for this revision, or the rollback that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<ActionRecord>,
}

impl Automation {
    /// The hold, if the decision is one.
    pub fn hold(&self) -> Option<&Hold> {
        match &self.plan {
            Some(Plan::Hold(h)) => Some(h),
            _ => None,
        }
    }

    /// What `mode: auto` does about the failure, in words (for the `automatic_action`
    /// annotation and the email).
    pub fn words(&self) -> Option<String> {
        let a = self;
        if let Some(r) = &a.record {
            return Some(r.words());
        }
        match a.plan.as_ref()? {
            Plan::Hold(h) => Some(format!("held ({}): {}", h.reason.as_str(), h.detail)),
            Plan::Rollback { command, .. } | Plan::RestartPod { workload: command }
                if a.dry_run =>
            {
                Some(format!("dry run: would run {command}"))
            }
            Plan::Rollback { command, .. } => Some(format!("running: {command}")),
            Plan::RestartPod { workload } => Some(format!("restarting the pods of {workload}")),
        }
    }
}
