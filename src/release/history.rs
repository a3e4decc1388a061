//! The watched state (pure): per release, a compact history of revision → status built from
//! Secret labels, and the decisions it implies. Watch events go in through
//! [`ReleaseBook::apply`], [`ReleaseBook::delete`] and the relist trio
//! ([`ReleaseBook::init`], [`ReleaseBook::init_apply`], [`ReleaseBook::init_done`]); what must
//! happen comes out as [`Action`]s. No payload is held here.
//!
//! Guarantees: an event is decided once per revision reaching a settled status; revisions
//! already settled when watching starts are not announced, except the newest one of a
//! release when its upgrade is still inside its bake window (it is announced again, marked
//! `resumed`, so a restart loses no evaluation); a relist (after a lost watch) announces every
//! revision that settled meanwhile, in order, the releases that vanished, and a release
//! uninstalled and installed again (told by the records' UIDs) as both.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};

use super::event::{Draft, PendingEvent, ReleaseEvent, ReleaseEventKind};
use super::labels::{RevisionMeta, Storage};
use super::{ReleaseKey, ReleaseStatus};

/// What the tracker must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// GET and decode this revision, then emit its completed event.
    Fetch(PendingEvent),
    /// Emit this event as is (nothing left to fetch).
    Emit(ReleaseEvent),
}

/// The part of a watch that a relist covers: one namespace, or all (`None`).
pub type Scope = Option<String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    status: ReleaseStatus,
    /// Secret creation, or when first seen if the API did not say.
    since: Timestamp,
    /// Hash of the record's UID (0: unknown).
    uid: u64,
}

#[derive(Debug, Default)]
struct Release {
    revisions: BTreeMap<u32, Entry>,
    /// Newest revision whose settled status has been announced (or was settled before
    /// watching started), with that status.
    announced: Option<(u32, ReleaseStatus)>,
    /// Newest revision seen in `pending-rollback`.
    seen_rolling_back: Option<u32>,
    /// Revision for which `StuckPending` was already decided.
    stuck_reported: Option<u32>,
    /// Revision announced again after a restart because it is inside its bake window.
    resumed: Option<u32>,
}

fn settled(status: ReleaseStatus) -> bool {
    !status.is_pending() && status != ReleaseStatus::Uninstalling
}

impl Release {
    fn newest(&self) -> Option<(u32, Entry)> {
        self.revisions.last_key_value().map(|(r, e)| (*r, *e))
    }

    /// After the first list: everything settled counts as announced, except a newest
    /// revision whose upgrade began less than its bake window before `now`, which
    /// [`Release::evaluate`] then announces again (resumed).
    fn mark_settled_as_announced(&mut self, now: Timestamp, bake: Option<SignedDuration>) {
        let mut settled_revisions = self
            .revisions
            .iter()
            .rev()
            .filter(|(_, e)| settled(e.status));
        self.announced = settled_revisions.next().map(|(r, e)| (*r, e.status));
        if let Some((r, e)) = self.newest() {
            if e.status == ReleaseStatus::PendingRollback {
                self.seen_rolling_back = Some(r);
            }
            let in_bake =
                bake.is_some_and(|b| e.since.saturating_add(b).is_ok_and(|end| end > now));
            if settled(e.status) && e.status != ReleaseStatus::Uninstalled && in_bake {
                self.announced = settled_revisions.next().map(|(r, e)| (*r, e.status));
                self.resumed = Some(r);
            }
        }
    }

    fn draft_for(&self, revision: u32) -> Draft {
        let below = self.revisions.range(..revision);
        Draft::Settled {
            last_deployed_before: below
                .clone()
                .rev()
                .find(|(_, e)| e.status.was_deployed())
                .map(|(r, _)| *r),
            previous_status: below.last().map(|(_, e)| e.status),
            seen_rolling_back: self.seen_rolling_back == Some(revision),
        }
    }

    /// The events the current history implies beyond what was announced.
    fn evaluate(&mut self, key: &ReleaseKey, storage: Storage) -> Vec<Action> {
        let Some((newest, newest_entry)) = self.newest() else {
            return Vec::new();
        };
        if newest_entry.status == ReleaseStatus::PendingRollback {
            self.seen_rolling_back = Some(newest);
        }
        let mut actions = Vec::new();
        match self.announced {
            // The announced revision was deleted (for example a stuck pending revision
            // removed by hand): nothing was deployed, follow silently.
            Some((announced, _)) if newest < announced => {
                self.announced =
                    settled(newest_entry.status).then_some((newest, newest_entry.status));
            }
            // Same revision, new status: only an uninstall kept in history is news.
            Some((announced, status)) if newest == announced => {
                if newest_entry.status != status && settled(newest_entry.status) {
                    if newest_entry.status == ReleaseStatus::Uninstalled {
                        actions.push(self.fetch(key, storage, newest, newest_entry.status));
                    }
                    self.announced = Some((newest, newest_entry.status));
                }
            }
            _ => {
                let first = self.announced.map_or(0, |(r, _)| r + 1);
                let todo: Vec<(u32, Entry)> = self
                    .revisions
                    .range(first..)
                    .map(|(r, e)| (*r, *e))
                    .collect();
                for (revision, entry) in todo {
                    if !settled(entry.status) {
                        // The newest waits for its outcome; an older one stays pending
                        // forever (a killed helm later rolled back over): skip it.
                        continue;
                    }
                    actions.push(self.fetch(key, storage, revision, entry.status));
                    self.announced = Some((revision, entry.status));
                }
            }
        }
        actions
    }

    /// The read of `revision`; marked resumed once, for the revision announced again after
    /// a restart.
    fn fetch(
        &mut self,
        key: &ReleaseKey,
        storage: Storage,
        revision: u32,
        status: ReleaseStatus,
    ) -> Action {
        Action::Fetch(PendingEvent {
            release: key.clone(),
            revision,
            status,
            storage,
            resumed: self.resumed.take_if(|r| *r == revision).is_some(),
            draft: self.draft_for(revision),
        })
    }

    /// Whether `listed` is the history of another install of the release (uninstalled and
    /// installed again while the watch was down): no revision it shares with the known
    /// history has the same record UID, or it restarts numbering below what was known.
    fn replaced_by(&self, listed: &BTreeMap<u32, Entry>) -> bool {
        let mut shared = listed
            .iter()
            .filter_map(|(r, e)| self.revisions.get(r).map(|known| known.uid == e.uid))
            .peekable();
        if shared.peek().is_some() {
            return !shared.any(|same| same);
        }
        match (listed.keys().next(), self.revisions.keys().next_back()) {
            (Some(first_listed), Some(last_known)) => first_listed <= last_known,
            _ => false,
        }
    }

    /// When the newest revision becomes stuck, if it is pending and not yet reported.
    fn stuck_deadline(&self, stuck_after: SignedDuration) -> Option<Timestamp> {
        let (newest, entry) = self.newest()?;
        (entry.status.is_pending() && self.stuck_reported != Some(newest))
            .then(|| entry.since.saturating_add(stuck_after).ok())
            .flatten()
    }
}

/// Every tracked release and what has been announced about it.
#[derive(Debug)]
pub struct ReleaseBook {
    releases: HashMap<ReleaseKey, Release>,
    storage: Storage,
    stuck_after: SignedDuration,
    /// Per scope, the listing in progress (between `init` and `init_done`).
    relisting: HashMap<Scope, HashMap<ReleaseKey, BTreeMap<u32, Entry>>>,
    /// Scopes whose first listing completed.
    synced: Vec<Scope>,
    /// The first listing emits a `Listed` event for every release it does not announce.
    list_settled: bool,
}

fn in_scope(scope: &Scope, key: &ReleaseKey) -> bool {
    scope.as_deref().is_none_or(|ns| ns == &*key.namespace)
}

impl ReleaseBook {
    /// An empty book; a pending revision older than `stuck_after` is reported as stuck.
    pub fn new(stuck_after: std::time::Duration) -> Self {
        Self {
            releases: HashMap::new(),
            list_settled: false,
            storage: Storage::Secret,
            stuck_after: SignedDuration::try_from(stuck_after).unwrap_or(SignedDuration::MAX),
            relisting: HashMap::new(),
            synced: Vec::new(),
        }
    }

    /// The same book for releases kept by Helm's `storage` driver.
    pub fn with_storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// The first listing emits a `Listed` event for the newest revision of every release
    /// it does not announce (the daemon shows every release, not only those it evaluates).
    pub fn listing_settled(mut self, list: bool) -> Self {
        self.list_settled = list;
        self
    }

    fn entry(meta: &RevisionMeta, now: Timestamp) -> Entry {
        Entry {
            status: meta.status,
            since: meta.created.unwrap_or(now),
            uid: meta.uid,
        }
    }

    /// A revision Secret was created or changed.
    pub fn apply(&mut self, meta: &RevisionMeta, now: Timestamp) -> Vec<Action> {
        let release = self.releases.entry(meta.key.clone()).or_default();
        let entry = Self::entry(meta, now);
        release
            .revisions
            .entry(meta.revision)
            .and_modify(|e| e.status = entry.status)
            .or_insert(entry);
        release.evaluate(&meta.key, self.storage)
    }

    /// A revision Secret was deleted.
    pub fn delete(&mut self, meta: &RevisionMeta) -> Vec<Action> {
        let Some(release) = self.releases.get_mut(&meta.key) else {
            return Vec::new();
        };
        release.revisions.remove(&meta.revision);
        if release.revisions.is_empty() {
            self.releases.remove(&meta.key);
            return vec![uninstalled(
                &meta.key,
                self.storage,
                meta.revision,
                meta.status,
            )];
        }
        release.evaluate(&meta.key, self.storage)
    }

    /// A (re)list of `scope` starts.
    pub fn init(&mut self, scope: &Scope) {
        self.relisting.insert(scope.clone(), HashMap::new());
    }

    /// One Secret of the (re)list of `scope`.
    pub fn init_apply(&mut self, scope: &Scope, meta: &RevisionMeta, now: Timestamp) {
        let listing = self.relisting.entry(scope.clone()).or_default();
        listing
            .entry(meta.key.clone())
            .or_default()
            .insert(meta.revision, Self::entry(meta, now));
    }

    /// The (re)list of `scope` is complete: the listing replaces what the book held for the
    /// scope. The first listing announces only the revisions still inside their bake
    /// window (`bake` gives a release's window; `None`: never); a later one announces what
    /// changed.
    pub fn init_done(
        &mut self,
        scope: &Scope,
        now: Timestamp,
        bake: &dyn Fn(&ReleaseKey) -> Option<std::time::Duration>,
    ) -> Vec<Action> {
        let listing = self.relisting.remove(scope).unwrap_or_default();
        let first = !self.synced.contains(scope);
        if first {
            self.synced.push(scope.clone());
        }
        let mut actions = Vec::new();
        // Releases gone while the watch was down.
        let vanished: Vec<ReleaseKey> = self
            .releases
            .keys()
            .filter(|k| in_scope(scope, k) && !listing.contains_key(*k))
            .cloned()
            .collect();
        for key in vanished {
            if let Some(release) = self.releases.remove(&key)
                && let Some((revision, entry)) = release.newest()
            {
                actions.push(uninstalled(&key, self.storage, revision, entry.status));
            }
        }
        let mut listed: Vec<(ReleaseKey, BTreeMap<u32, Entry>)> = listing.into_iter().collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, revisions) in listed {
            // Uninstalled and installed again while the watch was down: both are news.
            if !first
                && let Some(old) = self.releases.get(&key)
                && old.replaced_by(&revisions)
                && let Some((revision, entry)) = old.newest()
            {
                actions.push(uninstalled(&key, self.storage, revision, entry.status));
                self.releases.remove(&key);
            }
            let release = self.releases.entry(key.clone()).or_default();
            release.revisions = revisions;
            if first {
                let window = bake(&key).and_then(|w| SignedDuration::try_from(w).ok());
                release.mark_settled_as_announced(now, window);
                // A release held by a Helm operation right now (a rollback under way when
                // the daemon restarted) is shown at once too, with its pending status: its
                // settled revision is announced when the operation ends.
                if self.list_settled
                    && release.resumed.is_none()
                    && let Some((revision, entry)) = release.newest()
                    && (settled(entry.status) || entry.status.is_pending())
                    && entry.status != ReleaseStatus::Uninstalled
                {
                    actions.push(Action::Emit(ReleaseEvent {
                        release: key.clone(),
                        revision,
                        status: entry.status,
                        storage: self.storage,
                        resumed: false,
                        kind: ReleaseEventKind::Listed,
                        summary: None,
                    }));
                }
            }
            actions.extend(release.evaluate(&key, self.storage));
        }
        actions
    }

    /// Whether the first listing of every scope in `scopes` completed.
    pub fn is_synced(&self, scopes: &[Scope]) -> bool {
        scopes.iter().all(|s| self.synced.contains(s))
    }

    /// Stuck-pending events due at `now`.
    pub fn due(&mut self, now: Timestamp) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut keys: Vec<ReleaseKey> = self.releases.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(release) = self.releases.get_mut(&key) else {
                continue;
            };
            let Some(deadline) = release.stuck_deadline(self.stuck_after) else {
                continue;
            };
            if deadline > now {
                continue;
            }
            if let Some((revision, entry)) = release.newest() {
                release.stuck_reported = Some(revision);
                actions.push(Action::Fetch(PendingEvent {
                    release: key.clone(),
                    revision,
                    status: entry.status,
                    storage: self.storage,
                    resumed: false,
                    draft: Draft::StuckPending { since: entry.since },
                }));
            }
        }
        actions
    }

    /// The earliest time at which [`ReleaseBook::due`] has something to say.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.releases
            .values()
            .filter_map(|r| r.stuck_deadline(self.stuck_after))
            .min()
    }

    /// Revisions of a release, oldest first.
    pub fn history(&self, key: &ReleaseKey) -> Vec<(u32, ReleaseStatus)> {
        self.releases
            .get(key)
            .map(|r| r.revisions.iter().map(|(n, e)| (*n, e.status)).collect())
            .unwrap_or_default()
    }

    /// Number of tracked releases.
    pub fn len(&self) -> usize {
        self.releases.len()
    }

    /// No release is tracked.
    pub fn is_empty(&self) -> bool {
        self.releases.is_empty()
    }
}

fn uninstalled(key: &ReleaseKey, storage: Storage, revision: u32, status: ReleaseStatus) -> Action {
    Action::Emit(ReleaseEvent {
        release: key.clone(),
        revision,
        status,
        storage,
        resumed: false,
        kind: ReleaseEventKind::Uninstalled {
            kept_history: false,
        },
        summary: None,
    })
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
