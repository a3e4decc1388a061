//! Records whose write failed, written again until they are (I/O). A final verdict (the
//! evidence that makes a rollback target) or an action's outcome (what keeps it from running
//! twice) that the API refused is not just logged: it waits here and is retried with a
//! growing pause, at most [`MAX_PENDING`] of them for at most [`GIVE_UP_AFTER`]; how many
//! wait and for how long is exported, so an alert fires when writes stay stuck.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::action::ActionRecord;
use super::actions::RecordStore;
use super::bakes::{BakeEntry, BakeStore};
use crate::release::ReleaseKey;

/// Records waiting at most.
pub const MAX_PENDING: usize = 1000;
/// A record not written after this long is given up (and counted so).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// A record to write.
#[derive(Debug, Clone)]
pub enum Unwritten {
    /// A revision's bake verdict.
    Bake {
        /// The release.
        release: ReleaseKey,
        /// The revision.
        revision: u32,
        /// What to record.
        entry: Box<BakeEntry>,
    },
    /// An action's record (its outcome).
    Action {
        /// The release.
        release: ReleaseKey,
        /// The record as it must be.
        record: Box<ActionRecord>,
    },
}

impl Unwritten {
    /// The bake record of `report`'s revision.
    pub fn bake(report: &crate::verdict::Report, entry: BakeEntry) -> Self {
        Self::Bake {
            release: report.release.clone(),
            revision: report.revision,
            entry: Box::new(entry),
        }
    }

    /// Its identity: a newer version of the same record replaces a waiting one.
    fn id(&self) -> String {
        match self {
            Self::Bake {
                release, revision, ..
            } => format!("bake {release} {revision}"),
            Self::Action { release, record } => format!("action {release} {}", record.key()),
        }
    }

    /// `bake` or `action` (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bake { .. } => "bake",
            Self::Action { .. } => "action",
        }
    }
}

struct Waiting {
    record: Unwritten,
    since: Instant,
    pause: Duration,
    next: Instant,
}

/// What a flush did, for the caller's metrics and log.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Kinds of the records written now.
    pub written: Vec<&'static str>,
    /// Records given up, with the last error.
    pub given_up: Vec<(Unwritten, String)>,
}

/// Writes a waiting record unless what is stored now went further (a final verdict over a
/// failure seen during the bake, an action's verification over its outcome): a late retry
/// never writes a record back.
async fn write(record: &Unwritten, bakes: &BakeStore, actions: &RecordStore) -> Result<(), String> {
    match record {
        Unwritten::Bake {
            release,
            revision,
            entry,
        } => {
            let stored = bakes.load(release).await.map_err(|e| e.to_string())?;
            if stored
                .get(revision)
                .is_some_and(|s| !s.during_bake && entry.during_bake)
            {
                return Ok(());
            }
            bakes
                .record(release, *revision, entry)
                .await
                .map_err(|e| e.to_string())
        }
        Unwritten::Action { release, record } => {
            let stored = actions.load(release).await.map_err(|e| e.to_string())?;
            if stored
                .records
                .iter()
                .any(|s| s.key() == record.key() && s.phase.stage() > record.phase.stage())
            {
                return Ok(());
            }
            actions
                .update(release, record)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// The records waiting to be written.
#[derive(Default)]
pub struct Outbox {
    waiting: BTreeMap<String, Waiting>,
}

impl Outbox {
    /// Keeps `record` for writing again; returns a record given up to make room, if any.
    pub fn push(&mut self, record: Unwritten) -> Option<Unwritten> {
        let id = record.id();
        let now = Instant::now();
        let since = self.waiting.get(&id).map_or(now, |w| w.since);
        let mut dropped = None;
        if !self.waiting.contains_key(&id) && self.waiting.len() >= MAX_PENDING {
            let oldest = self
                .waiting
                .iter()
                .min_by_key(|(_, w)| w.since)
                .map(|(k, _)| k.clone());
            dropped = oldest
                .and_then(|k| self.waiting.remove(&k))
                .map(|w| w.record);
        }
        self.waiting.insert(
            id,
            Waiting {
                record,
                since,
                pause: FIRST_PAUSE,
                next: now + FIRST_PAUSE,
            },
        );
        dropped
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How long the oldest record has waited.
    pub fn oldest(&self) -> Duration {
        self.waiting
            .values()
            .map(|w| w.since.elapsed())
            .max()
            .unwrap_or_default()
    }

    /// Writes every record whose pause is over; a failure doubles its pause (up to a
    /// minute), and a record waiting longer than [`GIVE_UP_AFTER`] is given up.
    pub async fn flush(&mut self, bakes: &BakeStore, actions: &RecordStore) -> Flushed {
        let mut out = Flushed::default();
        let now = Instant::now();
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.next <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            let Some(w) = self.waiting.get_mut(&id) else {
                continue;
            };
            let result = write(&w.record, bakes, actions).await;
            match result {
                Ok(()) => {
                    out.written.push(w.record.kind());
                    self.waiting.remove(&id);
                }
                Err(e) if w.since.elapsed() >= GIVE_UP_AFTER => {
                    if let Some(w) = self.waiting.remove(&id) {
                        out.given_up.push((w.record, e));
                    }
                }
                Err(_) => {
                    w.pause = (w.pause * 2).min(LONGEST_PAUSE);
                    w.next = Instant::now() + w.pause;
                }
            }
        }
        out
    }
}
