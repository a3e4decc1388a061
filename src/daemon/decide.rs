//! What the daemon does about a release event and about a judgement (pure): the state is
//! updated here, and what must follow (end an evaluation, read the history and start one,
//! tell the remediator, look for the export-views reminder, record a final verdict) is
//! returned as data for the driver (`handle.rs`) to carry out.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::config::{Mode, ReleasePolicy};
use crate::release::ReleaseKey;
use crate::release::event::{EventName, ReleaseEvent, ReleaseEventKind};
use crate::release::rollback_target::BakeRecord;
use crate::release::summary::ReleaseSummary;
use crate::state::{ReleaseView, State};
use crate::units::plus;
use crate::verdict::{RecommendedAction, Report, Verdict};

/// What follows a release event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSteps {
    /// The release was uninstalled: end its evaluation, tell the uninstall notice, forget it.
    pub uninstalled: bool,
    /// `mode: auto`: load the release's action records and show what automation knows.
    pub automate: bool,
    /// Evaluate this revision (read its history and bake records, then begin).
    pub evaluate: Option<Arc<ReleaseSummary>>,
}

/// Applies a release event to the state (with the release's mode) and says what follows.
pub fn event(state: &mut State, event: &ReleaseEvent, mode: Mode) -> EventSteps {
    let evaluate = state.event(event);
    state.set_mode(&event.release, mode);
    if let ReleaseEventKind::Uninstalled { .. } = event.kind {
        return EventSteps {
            uninstalled: true,
            automate: false,
            evaluate: None,
        };
    }
    EventSteps {
        uninstalled: false,
        // A release only listed after a restart has nothing new to act on (what a previous
        // process left unfinished is resumed separately).
        automate: mode == Mode::Auto && !matches!(event.kind, ReleaseEventKind::Listed),
        evaluate: event.summary.clone().filter(|_| evaluate),
    }
}

/// Whether a revision whose evaluation ends with `report` is watched after its bake: one
/// that ended healthy, degraded or inconclusive; a failed one stays alerted as failed.
pub fn watched_after_bake(report: &Report) -> bool {
    report.verdict != Verdict::Failed
}

/// What a revision announced again after a restart (`resumed`) still needs, from its bake
/// record and where `now` stands against its bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// No verdict yet and its evaluation would still run: evaluate it (again).
    Evaluate,
    /// It ended its bake healthy or degraded and its watch after the bake still runs:
    /// watch it, never judge its bake again.
    Watch,
    /// Nothing more: its verdict stands (a failure or inconclusive is served from its
    /// record), or its time is over.
    Nothing,
}

/// Decides [`Resume`] for a revision whose upgrade started at `started`; `records_read`
/// says whether the bake records could be read (if not, a revision past its bake is never
/// judged again: it may have a verdict nobody can see).
pub fn resume(
    record: Option<BakeRecord>,
    records_read: bool,
    started: Timestamp,
    policy: &ReleasePolicy,
    now: Timestamp,
) -> Resume {
    let bake_ends = plus(started, policy.bake_window);
    match record {
        None if now < bake_ends => Resume::Evaluate,
        None if records_read && now < plus(bake_ends, policy.inconclusive_grace) => {
            Resume::Evaluate
        }
        Some(BakeRecord::Healthy | BakeRecord::Degraded)
            if !policy.after_bake.watch_for.is_zero()
                && now < plus(bake_ends, policy.after_bake.watch_for) =>
        {
            Resume::Watch
        }
        _ => Resume::Nothing,
    }
}

/// How long after its upgrade a revision is announced again after a restart: as long as
/// its evaluation, or its watch after the bake, may still run.
pub fn resume_window(policy: &ReleasePolicy) -> std::time::Duration {
    policy.bake_window + policy.inconclusive_grace.max(policy.after_bake.watch_for)
}

/// What follows a judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSteps {
    /// The evaluation ends with this verdict: record it and stop evaluating.
    pub is_final: bool,
    /// The verdict differs from the last one shown (worth a log line).
    pub verdict_changed: bool,
    /// Look for the export-views reminder: an upgrade that ended its bake healthy or
    /// degraded, for a release whose Data Export views must follow its version.
    pub export_views: bool,
    /// `mode: auto`: verify a rollback's revision, decide about a failure.
    pub automate: bool,
}

/// What follows `report`, given the release's view before it and its policy.
pub fn report(
    report: &Report,
    before: Option<&ReleaseView>,
    policy: &ReleasePolicy,
) -> ReportSteps {
    let is_final = report.is_final();
    ReportSteps {
        is_final,
        verdict_changed: before
            .and_then(|v| v.judgement.as_ref())
            .is_none_or(|j| j.verdict != report.verdict),
        export_views: is_final
            && policy.export_views.enabled
            && matches!(report.verdict, Verdict::Healthy | Verdict::Degraded)
            && before.is_some_and(|v| v.event == EventName::Upgraded),
        automate: policy.mode == Mode::Auto,
    }
}

/// Whether a final verdict must not end its evaluation yet: `mode: auto` holds its action
/// for a passing reason (not the leader, a source failing, the history unreadable, a Helm
/// operation under way), and `retry_for` after the bake has not passed. The evaluation goes
/// on, and the action is decided again each round, rather than lost for good.
pub fn retry_hold(
    report: &Report,
    hold: Option<&crate::remediation::plan::Hold>,
    retry_for: std::time::Duration,
    now: jiff::Timestamp,
) -> bool {
    report.verdict == Verdict::Failed
        && hold.is_some_and(|h| h.reason.is_transient())
        && now < crate::units::plus(report.bake_ends, retry_for)
}

/// Per release, the last action proposed for a revision and what it became once guarded
/// against the history: the history is read again only when the proposal changes, not every
/// round (a new revision arrives as an event and replaces the evaluation anyway).
#[derive(Debug, Default)]
pub struct Guards {
    decided: BTreeMap<ReleaseKey, (u32, RecommendedAction, RecommendedAction)>,
}

impl Guards {
    /// What the same proposal for the same revision became, if it was guarded before.
    pub fn cached(&self, report: &Report) -> Option<RecommendedAction> {
        self.decided
            .get(&report.release)
            .filter(|(r, proposed, _)| *r == report.revision && *proposed == report.action)
            .map(|(_, _, decided)| decided.clone())
    }

    /// Remembers what the report's proposal became.
    pub fn remember(&mut self, report: &Report, decided: RecommendedAction) {
        self.decided.insert(
            report.release.clone(),
            (report.revision, report.action.clone(), decided),
        );
    }

    /// Forgets a release (uninstalled).
    pub fn forget(&mut self, key: &ReleaseKey) {
        self.decided.remove(key);
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
