//! What the daemon shows again after a restart (pure): a release whose latest revision ended
//! its bake `failed` or its evaluation `inconclusive` (and that nothing newer replaced) is
//! served and alerted again from its bake record, with the checks that failed or could not
//! be judged and the action guarded against the history, so a restart never resolves a
//! failure nor forgets a revision nobody could judge.

use std::collections::BTreeMap;

use crate::checks::{CheckId, CheckResult, Outcome};
use crate::config::{Mode, ReleasePolicy};
use crate::records::bakes::BakeEntry;
use crate::release::ReleaseKey;
use crate::release::event::EventName;
use crate::release::record::{HistoryRow, RowDetail, rollbacks_of};
use crate::release::rollback_target::BakeRecord;
use crate::state::{ChartView, Judgement, ReleaseView};
use crate::verdict::{ActionContext, Verdict, guard, recommend};

/// The revision whose recorded bake ended `failed` or `inconclusive`, if it is the
/// release's latest record.
pub fn recorded_failure_of(records: &BTreeMap<u32, BakeEntry>) -> Option<(u32, &BakeEntry)> {
    records
        .iter()
        .next_back()
        .filter(|(_, entry)| matches!(entry.verdict, BakeRecord::Failed | BakeRecord::Inconclusive))
        .map(|(revision, entry)| (*revision, entry))
}

/// The view of a release whose latest record is a failure, from its records and its history
/// as read now; `None` when the failed revision is no longer the latest (or cannot be read).
pub fn restored_view(
    key: &ReleaseKey,
    records: &BTreeMap<u32, BakeEntry>,
    rows: &[HistoryRow],
    policy: &ReleasePolicy,
    mode: Mode,
) -> Option<ReleaseView> {
    let (revision, entry) = recorded_failure_of(records)?;
    let row = rows.last().filter(|r| r.revision == revision)?;
    let RowDetail::Decoded(summary) = &row.detail else {
        return None;
    };
    // Records of an earlier install of the release say nothing about this one.
    if !entry.of_install(summary.first_deployed) {
        return None;
    }
    let history: Vec<_> = rows.iter().map(|r| (r.revision, r.status)).collect();
    let rollbacks = rollbacks_of(rows);
    let (verdict, results) = match entry.verdict {
        BakeRecord::Inconclusive => (Verdict::Inconclusive, recorded_inconclusive(entry)),
        _ => (Verdict::Failed, recorded_failure(entry)),
    };
    let bakes: BTreeMap<u32, BakeRecord> = records
        .iter()
        .filter(|(_, e)| e.of_install(summary.first_deployed))
        .map(|(r, e)| (*r, e.verdict))
        .collect();
    let action = recommend(
        verdict,
        &results,
        &ActionContext {
            release: key,
            revision,
            history: &history,
            rollbacks: &rollbacks,
            bakes: &bakes,
            rollback_timeout: policy.rollback_timeout,
            storage: row.storage,
            restart_command: String::new(),
        },
    );
    Some(ReleaseView {
        release: key.clone(),
        storage: row.storage,
        revision,
        status: row.status,
        event: EventName::Restored,
        chart: Some(ChartView::of(&summary.chart)),
        previous_chart: None,
        started: summary.last_deployed,
        judgement: Some(Judgement {
            inconclusive_since: (verdict == Verdict::Inconclusive).then_some(entry.at),
            overdue: verdict == Verdict::Inconclusive,
            verdict,
            action: guard(action, &history, revision),
            results,
            notes: vec![if entry.during_bake {
                "restored from the bake record after a restart: judged failed during its bake, which never ended (upgrade-guard stopped)".into()
            } else {
                "restored from the bake record after a restart".into()
            }],
            bake_ends: entry.at,
            evaluated_at: entry.at,
            is_final: true,
        }),
        problem: None,
        mode: Some(mode),
        automation: None,
        after_bake: None,
        controls: Default::default(),
    })
}

/// The results of a revision whose bake ended `failed` before a restart, as recorded: one
/// failing result per recorded check (the same names, so the same alerts), saying so.
pub fn recorded_failure(entry: &BakeEntry) -> Vec<CheckResult> {
    recorded_results(
        &entry.failed_checks,
        Outcome::Fail,
        &format!(
            "failed at the end of its bake ({}, recorded); judged again when a new revision comes",
            recorded_at(entry)
        ),
    )
}

/// The results of a revision whose evaluation ended `inconclusive` before a restart, as
/// recorded: one inconclusive result per check that could not be judged.
pub fn recorded_inconclusive(entry: &BakeEntry) -> Vec<CheckResult> {
    recorded_results(
        &entry.unanswered_checks,
        Outcome::Inconclusive,
        &format!(
            "could not be judged by the end of its evaluation ({}, recorded); judged again when a new revision comes",
            recorded_at(entry)
        ),
    )
}

fn recorded_at(entry: &BakeEntry) -> String {
    entry.at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One result per recorded check (or one `recorded_verdict` when none was named).
fn recorded_results(checks: &[String], outcome: Outcome, words: &str) -> Vec<CheckResult> {
    let checks = if checks.is_empty() {
        vec![CheckId::RecordedVerdict]
    } else {
        checks.iter().map(CheckId::from).collect()
    };
    checks
        .into_iter()
        .map(|check| CheckResult::new(check, outcome, words.to_string()))
        .collect()
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
