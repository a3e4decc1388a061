//! Restoring what the daemon knew after a restart (pure parts): a revision whose bake ended
//! `failed` is shown failed again, with the checks that failed, until a new revision comes.

use crate::checks::{CheckResult, Outcome};
use crate::records::bakes::BakeEntry;

/// The results of a revision whose bake ended `failed` before a restart, as recorded: one
/// failing result per recorded check (the same names, so the same alerts), saying so.
pub fn recorded_failure(entry: &BakeEntry) -> Vec<CheckResult> {
    let at = entry.at.strftime("%Y-%m-%d %H:%M:%S UTC");
    let words = format!(
        "failed at the end of its bake ({at}, recorded); judged again when a new revision comes"
    );
    let names = if entry.failed_checks.is_empty() {
        vec!["recorded_verdict".to_string()]
    } else {
        entry.failed_checks.clone()
    };
    names
        .into_iter()
        .map(|check| CheckResult::new(check, Outcome::Fail, words.clone()))
        .collect()
}
