//! What the automatic plan may trust (pure). A rollback target in `mode: auto` is a revision
//! whose bake upgrade-guard itself judged healthy, in this install of the release, with the
//! content it judged: a Helm record rewritten since (anyone allowed to write Secrets in the
//! namespace could plant one) is refused and named. Records of an earlier install of the
//! release (same revision numbers after `helm uninstall` and `install`) are set aside. And a
//! new revision that applies again the version upgrade-guard rolled back is recognised, so
//! it is not rolled back again in a loop with whoever applies it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::records::action::{AboutRevision, ActionKind, ActionRecord, Phase};
use crate::records::bakes::BakeEntry;
use crate::release::record::{HistoryRow, RowDetail};
use crate::release::rollback_target::BakeRecord;
use crate::release::summary::ReleaseSummary;
use crate::units::plus;

/// The bake records the plan may use, and the healthy ones it refused, with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    /// Verdicts by revision, of this install, bound to the content each judged.
    pub bakes: BTreeMap<u32, BakeRecord>,
    /// Healthy records refused as targets: (revision, why).
    pub refused: Vec<(u32, String)>,
}

fn decoded(rows: &[HistoryRow], revision: u32) -> Option<&ReleaseSummary> {
    match &rows.iter().find(|r| r.revision == revision)?.detail {
        RowDetail::Decoded(s) => Some(s),
        RowDetail::Undecodable { .. } => None,
    }
}

/// The install the history belongs to: the newest decoded revision's first deployment.
pub fn install_of(rows: &[HistoryRow]) -> Option<Timestamp> {
    rows.iter().rev().find_map(|r| match &r.detail {
        RowDetail::Decoded(s) => s.first_deployed,
        RowDetail::Undecodable { .. } => None,
    })
}

/// Which bake records hold for the history as read now. A `failed` record of this install
/// always holds (distrusting it could only make a bad revision a target). A record that
/// says a revision ran well holds only when the revision's Helm record still applies what
/// was judged.
pub fn trusted(entries: &BTreeMap<u32, BakeEntry>, rows: &[HistoryRow]) -> Trusted {
    let install = install_of(rows);
    let mut out = Trusted::default();
    for (&revision, entry) in entries {
        if !entry.of_install(install) {
            continue;
        }
        if entry.verdict != BakeRecord::Healthy {
            out.bakes.insert(revision, entry.verdict);
            continue;
        }
        let why = match decoded(rows, revision) {
            None if !rows.iter().any(|r| r.revision == revision) => continue,
            None => Some("its Helm record cannot be read".to_string()),
            Some(_) if entry.content.is_empty() => Some(
                "its bake record was written by an older upgrade-guard that did not bind it to the revision's content"
                    .to_string(),
            ),
            Some(s) if s.fingerprint.content != entry.content => Some(format!(
                "its Helm record changed after upgrade-guard judged it healthy at {}: what a rollback to it would apply is not what was judged (edited by hand or forged; see who wrote {})",
                entry.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                crate::release::ReleaseKey::new(&s.namespace, &s.name).secret_name(revision)
            )),
            Some(_) => None,
        };
        match why {
            None => {
                out.bakes.insert(revision, entry.verdict);
            }
            Some(why) => out.refused.push((revision, why)),
        }
    }
    out
}

/// The action records that concern the install the history belongs to (records without
/// an install, from older versions, are assumed to).
pub fn of_install(records: &[ActionRecord], rows: &[HistoryRow]) -> Vec<ActionRecord> {
    let install = install_of(rows);
    records
        .iter()
        .filter(
            |r| match (r.about.as_ref().and_then(|a| a.install), install) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            },
        )
        .cloned()
        .collect()
}

/// What a revision is, for its action record.
pub fn about(rows: &[HistoryRow], revision: u32) -> Option<AboutRevision> {
    let s = decoded(rows, revision)?;
    Some(AboutRevision {
        install: s.first_deployed,
        chart: s.chart.name.clone(),
        version: s.chart.version.clone(),
        app_version: s.chart.app_version.clone(),
    })
}

/// A revision that applies again what upgrade-guard rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reapplied {
    /// The revision rolled back.
    pub rolled_back: u32,
    /// When that rollback started.
    pub at: Timestamp,
    /// `chart-version (app V)`.
    pub version: String,
    /// Whether the values were compared too (both revisions still in Helm's history).
    pub values_compared: bool,
}

impl Reapplied {
    /// What the operator reads.
    pub fn words(&self, revision: u32) -> String {
        format!(
            "revision {revision} applies again the version upgrade-guard rolled back at {} (revision {}: {}{}): whoever upgraded (a CI job, a GitOps controller, a person; Helm does not record who) applied the rolled-back version again, and rolling it back again would loop; fix the source of the upgrade, then roll back by hand if needed",
            self.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            self.rolled_back,
            self.version,
            if self.values_compared {
                ", same values"
            } else {
                "; its values could not be compared, it is no longer in Helm's history"
            }
        )
    }
}

fn version_words(a: &AboutRevision) -> String {
    match &a.app_version {
        Some(v) => format!("{}-{} (app {v})", a.chart, a.version),
        None => format!("{}-{}", a.chart, a.version),
    }
}

/// Whether `revision` applies again the chart, app version and values of a revision that
/// upgrade-guard rolled back within `within` before `now` (records of this install).
pub fn reapplied(
    revision: u32,
    rows: &[HistoryRow],
    records: &[ActionRecord],
    within: Duration,
    now: Timestamp,
) -> Option<Reapplied> {
    let new = decoded(rows, revision)?;
    let now_about = about(rows, revision)?;
    records
        .iter()
        .filter(|r| {
            r.action == ActionKind::Rollback
                && r.bad_revision != revision
                && r.phase.counts()
                && r.phase != Phase::Running
                && plus(r.started, within) > now
        })
        .filter_map(|r| {
            let old = about(rows, r.bad_revision).or_else(|| r.about.clone())?;
            let same_version = old.chart == now_about.chart
                && old.version == now_about.version
                && old.app_version == now_about.app_version;
            if !same_version {
                return None;
            }
            let values_compared = match decoded(rows, r.bad_revision) {
                Some(s) if s.fingerprint.values != new.fingerprint.values => return None,
                Some(_) => true,
                None => false,
            };
            Some(Reapplied {
                rolled_back: r.bad_revision,
                at: r.started,
                version: version_words(&old),
                values_compared,
            })
        })
        .max_by_key(|r| r.at)
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
