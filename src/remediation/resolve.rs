//! What an action's record becomes once its outcome is known without running anything
//! (pure): a rollback's revision judged (verified or not), and a record left `running` by a
//! process that is gone, resolved from the history once its deadline passed (never by
//! running the action again).

use jiff::Timestamp;

use crate::records::action::{ActionKind, ActionRecord, Phase, created};
use crate::release::ReleaseStatus;
use crate::release::record::{HistoryRow, rollback_revision};
use crate::verdict::{Report, Verdict};

/// What a judgement of a rollback's revision means for the rollback: `failed` fails it,
/// `healthy`/`degraded` at the end of its bake verify it, anything else says nothing yet.
pub fn verification(verdict: Verdict, is_final: bool) -> Option<Phase> {
    match verdict {
        Verdict::Failed => Some(Phase::VerificationFailed),
        Verdict::Healthy | Verdict::Degraded if is_final => Some(Phase::Verified),
        _ => None,
    }
}

/// The record of the rollback that created the judged revision (`rolled_back_to`: the
/// revision it rolled back to, from Helm's description), if one is waiting to be verified.
pub fn awaiting_verification(
    records: &[ActionRecord],
    revision: u32,
    rolled_back_to: Option<u32>,
) -> Option<&ActionRecord> {
    records.iter().rev().find(|r| {
        created(r, revision, rolled_back_to)
            && match r.phase {
                Phase::Done | Phase::Running | Phase::Interrupted => true,
                // Helm said the rollback failed, yet wrote the revision: its own --wait
                // timing out is no evidence (DESIGN §4), the revision's evaluation is.
                Phase::Failed => r.new_revision == Some(revision),
                _ => false,
            }
    })
}

/// The record once `report` (of the revision it created) verified it or not.
pub fn verified(
    record: &ActionRecord,
    report: &Report,
    phase: Phase,
    now: Timestamp,
) -> ActionRecord {
    let failing: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome == crate::checks::Outcome::Fail)
        .map(|r| format!("{}: {}", r.check, r.summary))
        .collect();
    let judged = match phase {
        Phase::Verified => format!(
            "revision {} passed its evaluation ({})",
            report.revision,
            report.verdict.as_str()
        ),
        _ if failing.is_empty() => format!(
            "revision {} failed its evaluation ({})",
            report.revision,
            report.verdict.as_str()
        ),
        _ => format!(
            "revision {} failed its evaluation ({})",
            report.revision,
            failing.join("; ")
        ),
    };
    let detail = match (&record.phase, &record.detail) {
        (Phase::Failed, Some(helm)) => format!("helm reported a failure ({helm}); {judged}"),
        _ => judged,
    };
    ActionRecord {
        phase,
        new_revision: Some(report.revision),
        finished: Some(now),
        detail: Some(detail),
        ..record.clone()
    }
}

/// What a record left `running` by a gone process became, from the history as read now:
/// the rollback's revision settled (done: evaluated like any other), still pending past the
/// deadline (interrupted: the release is locked), or nothing in the history past the
/// deadline (interrupted: never run again). `None` while the deadline has not passed and
/// nothing settled.
pub fn unfinished(
    record: &ActionRecord,
    rows: &[HistoryRow],
    deadline: Timestamp,
    now: Timestamp,
) -> Option<ActionRecord> {
    let found = record
        .target
        .and_then(|t| rollback_revision(rows, record.bad_revision, t));
    let (phase, new_revision, detail) = match found {
        Some((rev, status)) if status.is_pending() => {
            if now < deadline {
                return None;
            }
            (
                Phase::Interrupted,
                Some(rev),
                format!(
                    "the process running the rollback ({}) is gone and revision {rev} is still {status}: the release is locked; resolve it by hand (see docs/actions.md), upgrade-guard never touches it",
                    record.holder
                ),
            )
        }
        Some((rev, status)) => (
            Phase::Done,
            Some(rev),
            format!(
                "the process running the rollback ({}) is gone; the rollback wrote revision {rev} ({status}), which is evaluated like any other",
                record.holder
            ),
        ),
        None if now < deadline => return None,
        None => (
            Phase::Interrupted,
            None,
            format!(
                "the process that recorded this action ({}) is gone and nothing in the history shows it ran; it is not run again",
                record.holder
            ),
        ),
    };
    Some(ActionRecord {
        phase,
        new_revision,
        finished: Some(now),
        detail: Some(detail),
        ..record.clone()
    })
}

/// What becomes of a record left `running` by a holder that is provably gone (`why`).
#[derive(Debug, Clone, PartialEq)]
pub enum Takeover {
    /// Settled from the history, nothing run.
    Resolved(Box<ActionRecord>),
    /// The same rollback run again as the same attempt, after unlocking the revision the
    /// dead helm left pending (if it got that far).
    Complete {
        /// The `pending-rollback` revision to unlock first.
        unlock: Option<u32>,
    },
}

/// The decision for a record whose holder is gone, from the history as read now: the
/// rollback's revision settled (done: evaluated like any other); pending and the latest
/// (completed: unlocked and run again); nothing written and the bad revision still the
/// latest (completed: run); anything else (the history moved on, a restart of pods)
/// interrupted and never run again.
pub fn after_death(
    record: &ActionRecord,
    rows: &[HistoryRow],
    why: &str,
    now: Timestamp,
) -> Takeover {
    let holder = &record.holder;
    let interrupted = |new_revision: Option<u32>, detail: String| {
        Takeover::Resolved(Box::new(ActionRecord {
            phase: Phase::Interrupted,
            new_revision,
            finished: Some(now),
            detail: Some(detail),
            ..record.clone()
        }))
    };
    let latest = rows.iter().max_by_key(|r| r.revision);
    let Some(target) = record
        .target
        .filter(|_| record.action == ActionKind::Rollback)
    else {
        return interrupted(
            None,
            format!(
                "the process that started it ({holder}) is gone ({why}); whether it finished is not known, and it is not run again"
            ),
        );
    };
    match rollback_revision(rows, record.bad_revision, target) {
        Some((rev, status)) if status.is_pending() => {
            if latest.is_some_and(|l| l.revision == rev) {
                Takeover::Complete { unlock: Some(rev) }
            } else {
                interrupted(
                    Some(rev),
                    format!(
                        "the process that ran it ({holder}) is gone ({why}); revision {rev} is still {status} but is no longer the latest: left for an operator"
                    ),
                )
            }
        }
        Some((rev, status)) => Takeover::Resolved(Box::new(ActionRecord {
            phase: Phase::Done,
            new_revision: Some(rev),
            finished: Some(now),
            detail: Some(format!(
                "the process running the rollback ({holder}) is gone; the rollback wrote revision {rev} ({status}), which is evaluated like any other"
            )),
            ..record.clone()
        })),
        None => match latest {
            Some(l)
                if l.revision == record.bad_revision
                    && !l.status.is_pending()
                    && !matches!(
                        l.status,
                        ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
                    ) =>
            {
                Takeover::Complete { unlock: None }
            }
            Some(l) => interrupted(
                None,
                format!(
                    "the process that started it ({holder}) is gone ({why}) before helm wrote anything, and the history moved on (revision {} is {}): it is not run again",
                    l.revision, l.status
                ),
            ),
            None => interrupted(
                None,
                format!(
                    "the process that started it ({holder}) is gone ({why}) and the release has no revision any more: it is not run again"
                ),
            ),
        },
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
