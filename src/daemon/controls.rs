//! The operator's controls, carried out (I/O): a suspension is shown and honoured where
//! the daemon acts and tells (`handle.rs`, `tell.rs`); an acceptance is written to the
//! revision's bake record (healthy, a valid rollback target from then on) and shown; a
//! re-check starts a new evaluation of the latest revision with a fresh bake window. Each is
//! carried out once per process, and again after a restart only when the records do not
//! show it done.

use std::sync::Arc;

use jiff::Timestamp;
use tracing::{info, warn};

use super::handle::Daemon;
use crate::evaluation::{Evaluator, Start};
use crate::records::bakes::BakeEntry;
use crate::records::control::{Acceptance, Controls, RECHECK_KEY, Recheck, accept_key};
use crate::release::ReleaseKey;
use crate::release::record::{HistoryRow, RowDetail};
use crate::release::rollback_target::BakeRecord;
use crate::release::summary::ReleaseSummary;
use crate::tracker::read::{read_revision, read_statuses};

impl Daemon {
    /// A release's controls changed in the cluster (any replica sees every change).
    pub async fn controls_changed(
        &mut self,
        evaluator: &mut Evaluator,
        key: ReleaseKey,
        controls: Controls,
    ) {
        let now = Timestamp::now();
        let before = self
            .state
            .read()
            .controls(&key)
            .cloned()
            .unwrap_or_default();
        log_changes(&key, &before, &controls, now);
        self.state_mut().set_controls(&key, controls, now);
        if self.listed {
            self.apply_controls_of(evaluator, &key).await;
        }
    }

    /// Carries out the acceptances and re-checks not carried out yet (after the releases
    /// are listed, and after each release event).
    pub async fn apply_controls(&mut self, evaluator: &mut Evaluator) {
        let keys: Vec<ReleaseKey> = self
            .state
            .read()
            .all_controls()
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.apply_controls_of(evaluator, &key).await;
        }
    }

    async fn apply_controls_of(&mut self, evaluator: &mut Evaluator, key: &ReleaseKey) {
        let (controls, current) = {
            let state = self.state.read();
            let Some(controls) = state.controls(key).cloned() else {
                return;
            };
            (controls, state.get(key).map(|v| v.revision))
        };
        for (revision, acceptance) in &controls.accepted {
            // A re-check asked after the acceptance is what stands.
            if controls.accepted_over_recheck(*revision) {
                self.accept(evaluator, key, *revision, acceptance, current)
                    .await;
            }
        }
        if let Some(recheck) = controls
            .recheck
            .as_ref()
            .filter(|r| Some(r.revision) == current)
        {
            self.recheck(evaluator, key, recheck).await;
        }
    }

    /// `revision` accepted as good: its bake record says `healthy` (bound to what its Helm
    /// record applies now), and, when it is the latest, its evaluation ends and it is shown
    /// healthy.
    async fn accept(
        &mut self,
        evaluator: &mut Evaluator,
        key: &ReleaseKey,
        revision: u32,
        acceptance: &Acceptance,
        current: Option<u32>,
    ) {
        let id = (key.clone(), accept_key(revision), acceptance.set.at);
        if self.applied.contains(&id) {
            return;
        }
        let records = match self.store.load(key).await {
            Ok(r) => r,
            Err(e) => {
                warn!(release = %key, revision, "the acceptance is not carried out yet (tried again): {e}");
                return;
            }
        };
        let existing = records.get(&revision);
        if existing.and_then(|e| e.accepted.as_ref()) != Some(acceptance) {
            let summary = match self.summary(key, revision).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    warn!(release = %key, revision, "revision accepted {} does not exist or cannot be read: nothing to accept", acceptance.set.words());
                    self.applied.insert(id);
                    return;
                }
                Err(e) => {
                    warn!(release = %key, revision, "the acceptance is not carried out yet (tried again): {e}");
                    return;
                }
            };
            let was = existing.map(|e| e.verdict).or_else(|| {
                let state = self.state.read();
                state
                    .get(key)
                    .filter(|v| v.revision == revision)
                    .and_then(|v| v.judgement.as_ref())
                    .and_then(|j| j.verdict.bake_record())
            });
            let entry = accepted_entry(&summary, existing, acceptance, was);
            if let Err(e) = self.store.record(key, revision, &entry).await {
                warn!(release = %key, revision, "the acceptance is not recorded yet (tried again): {e}");
                return;
            }
        }
        evaluator.record_bake(key, revision, BakeRecord::Healthy);
        if current == Some(revision) {
            if evaluator.active().contains(&(key.clone(), revision)) {
                evaluator.end(key);
            }
            self.retrying.remove(&(key.clone(), revision));
            self.state_mut().accepted(key, revision, acceptance);
        }
        info!(release = %key, revision, "accepted as good {}: healthy, a valid rollback target", acceptance.set.words());
        self.applied.insert(id);
    }

    /// The latest revision judged again from now, unless a final verdict was recorded
    /// since the request.
    async fn recheck(&mut self, evaluator: &mut Evaluator, key: &ReleaseKey, recheck: &Recheck) {
        let id = (key.clone(), RECHECK_KEY.to_string(), recheck.set.at);
        if self.applied.contains(&id) {
            return;
        }
        let revision = recheck.revision;
        match self.store.load(key).await {
            Ok(records)
                if records
                    .get(&revision)
                    .is_some_and(|e| e.at > recheck.set.at && !e.during_bake) =>
            {
                // Judged again before a restart: its verdict stands.
                self.applied.insert(id);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(release = %key, revision, "bake records not available: the re-check is judged as asked: {e}");
            }
        }
        let row = match read_revision(self.client.clone(), &key.namespace, &key.name, revision)
            .await
        {
            Ok(Some(row)) => row,
            Ok(None) => {
                warn!(release = %key, revision, "the revision to re-check no longer exists");
                self.applied.insert(id);
                return;
            }
            Err(e) => {
                warn!(release = %key, revision, "the re-check waits (tried again): cannot read the revision: {e}");
                return;
            }
        };
        let HistoryRow {
            status,
            storage,
            detail: RowDetail::Decoded(summary),
            ..
        } = row
        else {
            warn!(release = %key, revision, "the revision to re-check cannot be decoded: not judged again");
            self.applied.insert(id);
            return;
        };
        let history = read_statuses(self.client.clone(), &key.namespace, &key.name)
            .await
            .unwrap_or_else(|_| vec![(revision, status)]);
        let start = Start {
            release: key.clone(),
            status,
            status_since: recheck.set.at,
            history,
            rollbacks: self.rollbacks.get(key).cloned().unwrap_or_default(),
            storage,
            summary: Arc::new(*summary),
        };
        let policy = self.config.policy_for(key);
        evaluator.recheck(start, policy, recheck.set.at);
        // Its watch after the bake ended with the old evaluation: no longer shown.
        self.state_mut().after_bake_ended(key, revision);
        self.retrying.remove(&(key.clone(), revision));
        self.failed_during_bake.remove(&(key.clone(), revision));
        self.guards.forget(key);
        info!(release = %key, revision, "re-check asked {}: judged again with a bake window from then", recheck.set.words());
        self.applied.insert(id);
    }

    /// The decoded revision, `None` when it does not exist or cannot be decoded.
    async fn summary(
        &self,
        key: &ReleaseKey,
        revision: u32,
    ) -> Result<Option<ReleaseSummary>, kube::Error> {
        let row = read_revision(self.client.clone(), &key.namespace, &key.name, revision).await?;
        Ok(match row.map(|r| r.detail) {
            Some(RowDetail::Decoded(s)) => Some(*s),
            _ => None,
        })
    }
}

/// The bake record of an accepted revision: healthy, bound to what its Helm record applies
/// now (a later edit of that record makes it untrusted again), keeping what was found.
fn accepted_entry(
    summary: &ReleaseSummary,
    existing: Option<&BakeEntry>,
    acceptance: &Acceptance,
    was: Option<BakeRecord>,
) -> BakeEntry {
    BakeEntry {
        verdict: BakeRecord::Healthy,
        at: acceptance.set.at,
        chart: format!("{}-{}", summary.chart.name, summary.chart.version),
        failed_checks: existing
            .map(|e| e.failed_checks.clone())
            .unwrap_or_default(),
        unanswered_checks: existing
            .map(|e| e.unanswered_checks.clone())
            .unwrap_or_default(),
        content: summary.fingerprint.content.clone(),
        install: summary.first_deployed,
        during_bake: false,
        accepted: Some(acceptance.clone()),
        accepted_over: was,
    }
}

/// Logs what changed, with who and why.
fn log_changes(key: &ReleaseKey, before: &Controls, now_: &Controls, now: Timestamp) {
    match (before.suspended(now), now_.suspended(now)) {
        (_, Some(s)) if before.suspension.as_ref() != Some(s) => {
            info!(release = %key, until = %s.until, "suspended {}: watched and shown, neither acted on nor alerted", s.set.words());
        }
        (Some(_), None) => info!(release = %key, "resumed: acted on and alerted again"),
        _ => {}
    }
    for key_ in now_.unreadable.keys() {
        if !before.unreadable.contains_key(key_) {
            warn!(release = %key, key = %key_, "a control cannot be read (ignored): {}", now_.unreadable[key_]);
        }
    }
}
