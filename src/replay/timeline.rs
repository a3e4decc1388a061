//! A release's past as a replay reads it (pure): each revision's status over time as Helm
//! recorded it, what happened after it (rolled back, replaced, still running), and the
//! summary of a replay: the revisions upgrade-guard would have rolled back that then ran
//! for days, and the failures it would have caught before the people did.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::release::ReleaseStatus;
use crate::release::summary::Operation;
use crate::units::between;
use crate::verdict::Verdict;

/// A revision that ran this long without being rolled back was good enough for its users:
/// a failure upgrade-guard would have found in it is likely a false alarm.
pub const RAN_FOR_DAYS: Duration = Duration::from_secs(24 * 3600);

/// One revision of the history, as a replay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Past {
    /// Revision number.
    pub revision: u32,
    /// Its status now.
    pub status: ReleaseStatus,
    /// When its operation started.
    pub started: Timestamp,
    /// When Helm last changed its record, if it said so (`modifiedAt`).
    pub modified: Option<Timestamp>,
    /// The operation that wrote it.
    pub operation: Operation,
    /// The revision it rolled back to, for a rollback.
    pub rollback_to: Option<u32>,
}

/// The status revision `p` had at `t`, and since when. Helm writes a revision `pending-*`
/// and changes it once its operation ends: to `deployed` or `failed` at its `modifiedAt`.
/// A revision superseded since was deployed (when its operation ended is not kept once a
/// later revision replaced it: taken as its start); one uninstalled since (with
/// `--keep-history`) was deployed until its `modifiedAt`.
pub fn status_at(p: &Past, t: Timestamp) -> (ReleaseStatus, Timestamp) {
    let pending = match p.operation {
        Operation::Install => ReleaseStatus::PendingInstall,
        Operation::Upgrade => ReleaseStatus::PendingUpgrade,
        Operation::Rollback => ReleaseStatus::PendingRollback,
    };
    match p.status {
        ReleaseStatus::Superseded => (ReleaseStatus::Deployed, p.started),
        ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling => match p.modified {
            Some(m) if t >= m => (p.status, m),
            _ => (ReleaseStatus::Deployed, p.started),
        },
        ReleaseStatus::Deployed | ReleaseStatus::Failed => match p.modified {
            Some(m) if m > p.started && t < m => (pending, p.started),
            Some(m) if m > p.started => (p.status, m),
            _ => (p.status, p.started),
        },
        other => (other, p.started),
    }
}

/// What happened after a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Next {
    /// Someone rolled it back.
    RolledBack {
        /// The rollback's revision.
        revision: u32,
        /// The revision it went back to.
        to: u32,
        /// How long after the revision's start.
        #[serde(rename = "after_seconds", serialize_with = "crate::units::seconds")]
        after: Duration,
    },
    /// A newer revision replaced it (an upgrade).
    Replaced {
        /// The newer revision.
        revision: u32,
        /// How long after the revision's start.
        #[serde(rename = "after_seconds", serialize_with = "crate::units::seconds")]
        after: Duration,
    },
    /// The release was uninstalled (its history kept).
    Uninstalled {
        /// How long after the revision's start, when Helm said (`modifiedAt`).
        #[serde(
            rename = "after_seconds",
            serialize_with = "option_seconds",
            skip_serializing_if = "Option::is_none"
        )]
        after: Option<Duration>,
    },
    /// It is still the latest revision.
    Latest {
        /// For how long so far.
        #[serde(rename = "running_seconds", serialize_with = "crate::units::seconds")]
        running: Duration,
    },
}

impl Next {
    /// What happened, from the revision's start.
    pub fn ran_for(&self) -> Duration {
        match self {
            Self::RolledBack { after, .. } | Self::Replaced { after, .. } => *after,
            Self::Uninstalled { after } => after.unwrap_or_default(),
            Self::Latest { running } => *running,
        }
    }

    /// In words.
    pub fn words(&self) -> String {
        let h = long;
        match self {
            Self::RolledBack {
                revision,
                to,
                after,
            } => format!(
                "rolled back to {to} after {} (revision {revision})",
                h(*after)
            ),
            Self::Replaced { revision, after } => {
                format!("replaced by revision {revision} after {}", h(*after))
            }
            Self::Uninstalled { after: Some(after) } => {
                format!("uninstalled after {}", h(*after))
            }
            Self::Uninstalled { after: None } => "uninstalled".into(),
            Self::Latest { running } => format!("still the latest, for {}", h(*running)),
        }
    }
}

/// An optional duration in JSON: seconds, or null.
pub(super) fn option_seconds<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => crate::units::seconds(d, s),
        None => s.serialize_none(),
    }
}

/// A duration in words, in days from two days up (`12d`, `2d3h`).
pub fn long(d: Duration) -> String {
    const DAY: u64 = 86400;
    let secs = d.as_secs();
    if secs < 2 * DAY {
        return crate::units::human(d);
    }
    match (secs % DAY) / 3600 {
        0 => format!("{}d", secs / DAY),
        hours => format!("{}d{hours}h", secs / DAY),
    }
}

/// What happened after `history[i]` (oldest first), as of `now`.
pub fn next(history: &[Past], i: usize, now: Timestamp) -> Next {
    let p = &history[i];
    match history.get(i + 1) {
        Some(n) => {
            let after = between(p.started, n.started);
            match n.rollback_to {
                Some(to) => Next::RolledBack {
                    revision: n.revision,
                    to,
                    after,
                },
                None => Next::Replaced {
                    revision: n.revision,
                    after,
                },
            }
        }
        None if matches!(
            p.status,
            ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
        ) =>
        {
            Next::Uninstalled {
                after: p.modified.map(|m| between(p.started, m)),
            }
        }
        None => Next::Latest {
            running: between(p.started, now),
        },
    }
}

/// How a replayed revision ended, the verdict aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// A final verdict (or the first `failed`, when an action would have started).
    Verdict,
    /// A newer revision came before a verdict.
    Replaced,
    /// Its bake had not ended by the time of the replay.
    Baking,
    /// The release was uninstalled before a verdict.
    Uninstalled,
}

/// What the summary needs of one replayed revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The release (`namespace/name`) and revision.
    pub what: String,
    /// The verdict.
    pub verdict: Verdict,
    /// When, from the revision's start.
    pub after: Duration,
    /// What actually happened next.
    pub next: Next,
    /// Whether the action would have been a rollback.
    pub rollback: bool,
}

/// The counts of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Revisions replayed.
    pub revisions: usize,
    /// Per verdict.
    pub healthy: usize,
    /// Per verdict.
    pub degraded: usize,
    /// Per verdict.
    pub failed: usize,
    /// Per verdict.
    pub inconclusive: usize,
    /// Replaced before a verdict, or still baking.
    pub unfinished: usize,
    /// Failed revisions it would have rolled back that then ran for days (likely false
    /// alarms).
    pub likely_false_alarms: Vec<String>,
    /// Failed revisions the people rolled back or replaced later, and how much earlier.
    pub caught_earlier: Vec<Earlier>,
    /// Time saved in total.
    #[serde(rename = "saved_seconds", serialize_with = "crate::units::seconds")]
    pub saved: Duration,
}

/// A failure upgrade-guard would have caught before the people acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Earlier {
    /// The release and revision.
    pub what: String,
    /// How much earlier.
    #[serde(rename = "saved_seconds", serialize_with = "crate::units::seconds")]
    pub saved: Duration,
}

/// Sums up the replayed revisions (those that ended without a verdict count as
/// unfinished).
pub fn summarize(judged: &[Option<Judged>]) -> Summary {
    let mut s = Summary {
        revisions: judged.len(),
        ..Summary::default()
    };
    for j in judged {
        let Some(j) = j else {
            s.unfinished += 1;
            continue;
        };
        match j.verdict {
            Verdict::Healthy => s.healthy += 1,
            Verdict::Degraded => s.degraded += 1,
            Verdict::Failed => s.failed += 1,
            Verdict::Inconclusive | Verdict::Progressing => s.inconclusive += 1,
        }
        if j.verdict != Verdict::Failed {
            continue;
        }
        let ran = j.next.ran_for();
        let rolled_back = matches!(j.next, Next::RolledBack { .. });
        // The people reacted: they rolled it back, or replaced it (a fix forward) before
        // it had run for days.
        let reacted =
            rolled_back || (matches!(j.next, Next::Replaced { .. }) && ran < RAN_FOR_DAYS);
        if j.rollback && !rolled_back && ran >= RAN_FOR_DAYS {
            s.likely_false_alarms.push(j.what.clone());
        } else if reacted && ran > j.after {
            let saved = ran - j.after;
            s.saved += saved;
            s.caught_earlier.push(Earlier {
                what: j.what.clone(),
                saved,
            });
        }
    }
    s
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
