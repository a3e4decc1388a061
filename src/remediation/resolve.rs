//! What an action's record becomes once its outcome is known without running anything
//! (pure): a rollback's revision judged (verified or not), and a record left `running` by a
//! process that is gone, resolved from the history once its deadline passed (never by
//! running the action again).

use jiff::Timestamp;

use crate::records::action::{ActionRecord, Phase, created};
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

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
