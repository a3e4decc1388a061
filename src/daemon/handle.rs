//! The daemon's handlers (I/O): a release event, an evaluation round, a finished automatic
//! action, a change of leader, a restart. Each reads what it needs, lets the pure steps
//! (`decide`, `restore`, the state) decide, and carries out what they return.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLockWriteGuard};

use jiff::Timestamp;
use tracing::{info, warn};

use super::{decide, notices, restore};
use crate::config::{Config, Mode};
use crate::evaluation::{Evaluator, Start};
use crate::records::action::ActionRecord;
use crate::records::bakes::BakeStore;
use crate::records::outbox::Unwritten;
use crate::release::ReleaseKey;
use crate::release::event::{ReleaseEvent, ReleaseEventKind};
use crate::release::labels::Storage;
use crate::remediation::{Finished, Remediator};
use crate::state::{Shared, State};
use crate::tracker::read::{read_history, read_statuses};
use crate::verdict::{RecommendedAction, Report, guard};

/// Release histories read at once to guard a round's proposed actions.
const GUARD_READS: usize = 16;

/// What the handlers share: the cluster, the configuration, the state everyone reads, the
/// bake records and the remediator.
pub(super) struct Daemon {
    pub client: kube::Client,
    pub config: Arc<Config>,
    pub state: Shared,
    pub store: BakeStore,
    /// Per release, rollback revisions seen and their targets.
    pub rollbacks: BTreeMap<ReleaseKey, BTreeMap<u32, u32>>,
    /// What proposed actions became once guarded against the history.
    pub guards: decide::Guards,
    /// Rounds run, how long they take, and how long upgrades take to their final verdict.
    pub metrics: super::metrics::DaemonMetrics,
    /// Automatic actions.
    pub remediator: Remediator,
    /// Revisions with a final verdict still judged because their action is held for a
    /// passing reason (their bake record is written once).
    pub retrying: std::collections::BTreeSet<(ReleaseKey, u32)>,
    /// Revisions judged failed during their bake whose record says so already.
    pub failed_during_bake: std::collections::BTreeSet<(ReleaseKey, u32)>,
    /// The release records are listed: the operator's controls can be carried out.
    pub listed: bool,
    /// The controls carried out by this process: (release, control key, when it was set).
    pub applied: std::collections::BTreeSet<(ReleaseKey, String, Timestamp)>,
}

impl Daemon {
    /// The state, for writing.
    pub fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write()
    }

    /// Shows what `mode: auto` knows about the release's revision.
    fn show_automation(&self, key: &ReleaseKey, revision: u32) {
        let automation = self.remediator.automation(key, revision);
        self.state_mut().automate(key, revision, automation);
    }

    /// Whether an operator suspended the release (and the suspension has not expired).
    fn suspended(&self, key: &ReleaseKey) -> bool {
        self.state
            .read()
            .get(key)
            .is_some_and(|v| v.controls.suspended.is_some())
    }

    /// Whether an operator accepted `revision` as good after any re-check they asked of it.
    fn accepted(&self, key: &ReleaseKey, revision: u32) -> bool {
        let state = self.state.read();
        let Some(c) = state.controls(key) else {
            return false;
        };
        c.accepted_over_recheck(revision)
    }

    /// A release event.
    pub async fn event(&mut self, evaluator: &mut Evaluator, event: ReleaseEvent) {
        let key = event.release.clone();
        // A new revision (or an uninstall) replaces whatever was still being retried.
        self.retrying
            .retain(|(k, r)| *k != key || *r == event.revision);
        self.failed_during_bake.retain(|(k, _)| *k != key);
        if let ReleaseEventKind::RolledBack { to, target } = event.kind {
            self.rollbacks
                .entry(key.clone())
                .or_default()
                .insert(to, target);
            self.remediator.rolled_back(&key, to, target);
        }
        let mode = self.config.mode_for(&key);
        let steps = decide::event(&mut self.state_mut(), &event, mode);
        if steps.uninstalled {
            if let Some(revision) = evaluator.end(&key) {
                info!(release = %key, revision, "uninstalled: evaluation ended");
            }
            let policy = self.config.policy_for(&key);
            let notice = notices::uninstalled(
                &self.client,
                &key,
                event.revision,
                &policy,
                Timestamp::now(),
            )
            .await;
            info!(release = %key, "{}", notice.words);
            self.state_mut().notice(notice);
            self.rollbacks.remove(&key);
            self.guards.forget(&key);
            let acting = self.remediator.runs(&key);
            self.remediator.forget(&key);
            if !acting {
                self.retire(&key).await;
            }
            return;
        }
        let listed = mode == Mode::Auto && event.kind == ReleaseEventKind::Listed;
        if listed && event.status == crate::release::ReleaseStatus::PendingRollback {
            // A rollback under way across a restart: which revision it rolls back to (its
            // description) ties it to the action record that started it.
            self.pending_rollback(&key, event.revision).await;
        }
        if steps.automate || listed {
            // The records say whether this revision is a rollback upgrade-guard made; a
            // release listed after a restart shows an unfinished action at once (shown,
            // never acted on from here).
            self.remediator.load(&key).await;
            self.show_automation(&key, event.revision);
        }
        let Some(summary) = steps.evaluate else {
            return;
        };
        let history = match read_statuses(self.client.clone(), &key.namespace, &key.name).await {
            Ok(h) => h,
            Err(e) => {
                warn!(release = %key, error = %e,
                    "cannot read the release history; judging with this revision alone");
                vec![(event.revision, event.status)]
            }
        };
        let mut recorded = None;
        let records_read = match self.store.load(&key).await {
            Ok(records) => {
                // Records of an earlier install of the release (the same revision numbers
                // after an uninstall and install) say nothing about this one.
                for (revision, entry) in records
                    .into_iter()
                    .filter(|(_, e)| e.of_install(summary.first_deployed))
                {
                    evaluator.record_bake(&key, revision, entry.verdict);
                    // A failure seen during a bake that never ended is no final verdict:
                    // the revision is judged again while its time allows.
                    if revision == event.revision && !entry.during_bake {
                        recorded = Some(entry);
                    }
                }
                true
            }
            Err(e) => {
                warn!(release = %key, "bake records not available: {e}");
                false
            }
        };
        let start = Start {
            release: key.clone(),
            status: event.status,
            // Helm records no time for a failure: it is the moment the event says so (what
            // the settle period before an automatic action counts from).
            status_since: if event.status == crate::release::ReleaseStatus::Failed {
                Timestamp::now()
            } else {
                summary.last_deployed.unwrap_or_else(Timestamp::now)
            },
            history,
            rollbacks: self.rollbacks.get(&key).cloned().unwrap_or_default(),
            storage: event.storage,
            summary,
        };
        let policy = self.config.policy_for(&key);
        if event.resumed {
            let now = Timestamp::now();
            let started = start.summary.started_at().unwrap_or(start.status_since);
            let resume = decide::resume(
                recorded.as_ref().map(|e| e.verdict),
                records_read,
                started,
                &policy,
                now,
            );
            match (resume, recorded) {
                (decide::Resume::Evaluate, _) => {}
                (decide::Resume::Watch, Some(entry)) => {
                    self.state_mut()
                        .recorded(&key, event.revision, entry.verdict, entry.at);
                    evaluator.begin(start, policy);
                    let until = evaluator.watch_after_bake(&key, now);
                    info!(release = %key, revision = event.revision,
                        verdict = ?entry.verdict, watched_until = ?until.map(|t| t.to_string()),
                        "after a restart: its bake verdict is recorded; watched after its bake");
                    return;
                }
                _ => {
                    info!(release = %key, revision = event.revision,
                        "after a restart: nothing to evaluate (its verdict is recorded, or its time is over)");
                    return;
                }
            }
        }
        let cancelled = evaluator.begin(start, policy);
        info!(release = %key, revision = event.revision, event = %event.kind.name(),
            resumed = event.resumed, cancelled = ?cancelled, "evaluating");
    }

    /// A release's action records changed in the cluster (any replica's write): shown as
    /// they are now.
    pub fn records_changed(&mut self, key: ReleaseKey, records: Vec<ActionRecord>) {
        if self.config.mode_for(&key) != Mode::Auto {
            return;
        }
        self.remediator.observed(key.clone(), records);
        let revision = self.state.read().get(&key).map(|v| v.revision);
        if let Some(revision) = revision {
            self.show_automation(&key, revision);
        }
    }

    /// Reads a `pending-rollback` revision (one GET) for the revision it rolls back to.
    async fn pending_rollback(&mut self, key: &ReleaseKey, revision: u32) {
        let row = crate::tracker::read::read_revision(
            self.client.clone(),
            &key.namespace,
            &key.name,
            revision,
        )
        .await;
        let target = match row {
            Ok(Some(crate::release::record::HistoryRow {
                detail: crate::release::record::RowDetail::Decoded(s),
                ..
            })) => crate::release::summary::rollback_target_in(&s.description),
            Ok(_) => None,
            Err(e) => {
                warn!(release = %key, revision, error = %e, "cannot read the pending rollback revision");
                None
            }
        };
        if let Some(target) = target {
            self.remediator.rolled_back(key, revision, target);
        }
    }

    /// An automatic action finished: its record is shown with the release.
    pub async fn finished(&mut self, done: Finished) {
        self.remediator.finished(&done).await;
        let key = done.0;
        let revision = self.state.read().get(&key).map(|v| v.revision);
        if let Some(revision) = revision {
            self.show_automation(&key, revision);
        }
    }

    /// This replica became the leader: actions left unfinished by another process are
    /// resolved (never run again).
    pub async fn resume(&mut self) {
        let config = self.config.clone();
        self.remediator
            .resume(|key| config.policy_for(key).rollback_timeout)
            .await;
        let views: Vec<(ReleaseKey, u32)> = self
            .state
            .read()
            .releases()
            .map(|v| (v.release.clone(), v.revision))
            .collect();
        let mut namespaces = std::collections::BTreeSet::new();
        for (key, revision) in views {
            if config.mode_for(&key) == Mode::Auto {
                self.show_automation(&key, revision);
                namespaces.insert(key.namespace.to_string());
            }
        }
        self.remediator.claim(&namespaces).await;
    }

    /// One evaluation round: every report guarded, shown, and acted on.
    pub async fn round(&mut self, evaluator: &mut Evaluator) {
        let began = std::time::Instant::now();
        let reports = evaluator.round(Timestamp::now()).await;
        self.metrics.rounds.inc();
        self.guard_all(&reports).await;
        for mut report in reports {
            if self.accepted(&report.release, report.revision) {
                // An operator accepted this revision (after any re-check they asked):
                // nothing judged of it overrides that.
                evaluator.end(&report.release);
                continue;
            }
            if report.action != RecommendedAction::None {
                // Guarded above ([`Self::guard_all`]); never shown unguarded.
                report.action =
                    self.guards
                        .cached(&report)
                        .unwrap_or_else(|| RecommendedAction::Hold {
                            reason:
                                "the release history was not re-read before recommending an action"
                                    .into(),
                        });
            }
            let policy = self.config.policy_for(&report.release);
            let (steps, storage) = {
                let state = self.state.read();
                let before = state.get(&report.release);
                (
                    decide::report(&report, before, &policy),
                    before.map_or(Storage::Secret, |v| v.storage),
                )
            };
            if steps.verdict_changed {
                info!(release = %report.release, revision = report.revision,
                    verdict = report.verdict.as_str(), "verdict");
            }
            self.state_mut().judged(
                &report,
                steps.is_final,
                self.config.notifications.inconclusive_after,
            );
            if steps.export_views
                && let Some(notice) = notices::export_views(
                    &self.client,
                    &report.release,
                    report.revision,
                    &policy,
                    Timestamp::now(),
                )
                .await
            {
                info!(release = %report.release, revision = report.revision, "{}", notice.words);
                self.state_mut().notice(notice);
            }
            self.record_failed_during_bake(&report).await;
            if steps.automate {
                self.remediator.verify(&report, steps.is_final).await;
                // A suspended release is judged and shown, never acted on.
                if !self.suspended(&report.release) {
                    self.remediator.decide(&report, &policy, storage).await;
                }
                self.show_automation(&report.release, report.revision);
            }
            if steps.is_final {
                let id = (report.release.clone(), report.revision);
                if !self.retrying.contains(&id) {
                    self.record(&report).await;
                    if let Ok(took) = report
                        .evaluated_at
                        .duration_since(report.started)
                        .try_into()
                    {
                        self.metrics.final_verdict(report.verdict, took);
                    }
                }
                let automation = self.remediator.automation(&report.release, report.revision);
                let retry = steps.automate
                    && decide::retry_hold(
                        &report,
                        automation.hold(),
                        self.config.actions.retry_holds_for,
                        Timestamp::now(),
                    );
                if retry {
                    if self.retrying.insert(id) {
                        info!(release = %report.release, revision = report.revision,
                            "final verdict failed, its automatic action held for a passing reason: judged and decided again for up to {}",
                            crate::units::human(self.config.actions.retry_holds_for));
                    }
                } else {
                    self.retrying.remove(&id);
                    let watched = if decide::watched_after_bake(&report) {
                        evaluator.watch_after_bake(&report.release, Timestamp::now())
                    } else {
                        evaluator.end(&report.release);
                        None
                    };
                    info!(release = %report.release, revision = report.revision,
                        verdict = report.verdict.as_str(),
                        watched_until = ?watched.map(|t| t.to_string()),
                        "evaluation ended with its final verdict");
                }
            }
        }
        self.after_bake(evaluator).await;
        self.metrics
            .round_duration
            .observe(began.elapsed().as_secs_f64());
    }

    /// The watch after the bake: what it finds is shown and told, never acted on.
    async fn after_bake(&mut self, evaluator: &mut Evaluator) {
        let round = evaluator.after_bake_round(Timestamp::now()).await;
        if round.reports.is_empty() && round.ended.is_empty() {
            return;
        }
        let mut state = self.state_mut();
        for (key, revision) in round.ended {
            info!(release = %key, revision, "watch after the bake ended");
            state.after_bake_ended(&key, revision);
        }
        for (report, since, until) in round.reports {
            let regressed = report.verdict == crate::verdict::Verdict::Failed;
            let before = state
                .get(&report.release)
                .and_then(|v| v.after_bake.as_deref())
                .is_some_and(crate::state::AfterBakeView::regressed);
            if regressed != before {
                info!(release = %report.release, revision = report.revision, regressed,
                    "after the bake: {}", if regressed { "something broke (alerted, never acted on)" } else { "nothing broken" });
            }
            state.after_bake(&report, since, until);
        }
    }

    /// After a restart: the failures and inconclusives recorded before it are served and
    /// alerted again.
    pub async fn restore(&mut self) {
        let all = match self.store.all().await {
            Ok(all) => all,
            Err(e) => {
                warn!(
                    "bake records not available; failures judged before the restart are not alerted again: {e}"
                );
                return;
            }
        };
        for (key, records) in all {
            let Some((revision, _)) = restore::recorded_failure_of(&records) else {
                continue;
            };
            // A release only listed so far (no judgement) is restored over; one judged
            // since, or at a newer revision, is not.
            if self
                .state_mut()
                .get(&key)
                .is_some_and(|v| v.judgement.is_some() || v.revision > revision)
            {
                continue;
            }
            let rows = match read_history(self.client.clone(), &key.namespace, &key.name).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(release = %key, error = %e, "cannot read the history of a recorded failure");
                    continue;
                }
            };
            let policy = self.config.policy_for(&key);
            let mode = self.config.mode_for(&key);
            let Some(view) = restore::restored_view(&key, &records, &rows, &policy, mode) else {
                continue;
            };
            if self.state_mut().restore(view) {
                info!(release = %key, revision, "failure or inconclusive recorded before the restart: served and alerted again");
            }
        }
    }

    /// Guards every action the round proposes that is not guarded yet, several histories
    /// read at once: when a shared outage fails hundreds of releases in one round, their
    /// verdicts are shown together, not one history read after another (10 a second).
    async fn guard_all(&mut self, reports: &[Report]) {
        use futures::StreamExt;
        let todo: Vec<(usize, ReleaseKey, u32, RecommendedAction)> = reports
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.action != RecommendedAction::None
                    && self.guards.cached(r).is_none()
                    && !self.accepted(&r.release, r.revision)
            })
            .map(|(i, r)| (i, r.release.clone(), r.revision, r.action.clone()))
            .collect();
        let client = self.client.clone();
        let decided: Vec<(usize, RecommendedAction)> = futures::stream::iter(todo)
            .map(move |(i, key, revision, action)| {
                let client = client.clone();
                async move { (i, guarded(client, &key, revision, action).await) }
            })
            .buffer_unordered(GUARD_READS)
            .collect()
            .await;
        for (i, action) in decided {
            self.guards.remember(&reports[i], action);
        }
    }

    /// The records of a release whose every Helm record is gone (`helm uninstall` without
    /// `--keep-history`) are retired: a later install of the same name starts clean. Kept
    /// while the history cannot be read or still shows a revision.
    async fn retire(&self, key: &ReleaseKey) {
        match read_statuses(self.client.clone(), &key.namespace, &key.name).await {
            Ok(rows) if rows.is_empty() => {}
            Ok(_) => return,
            Err(e) => {
                warn!(release = %key, error = %e, "cannot re-read the history of an uninstalled release: its records are kept");
                return;
            }
        }
        match crate::records::retire(self.client.clone(), &self.config.state.namespace, key).await {
            Ok(0) => {}
            Ok(n) => {
                info!(release = %key, configmaps = n, "uninstalled: its bake and action records are retired")
            }
            Err(e) => {
                warn!(release = %key, "the records of an uninstalled release were not retired (they stay bound to the install they judged): {e}")
            }
        }
    }

    /// A revision judged failed before its bake ends is recorded so at once: if a newer
    /// revision supersedes it, or upgrade-guard stops, before its bake ends, it stays known
    /// bad (never a rollback target). Written once; its final verdict replaces it.
    async fn record_failed_during_bake(&mut self, report: &Report) {
        let id = (report.release.clone(), report.revision);
        let Some(entry) = crate::records::bakes::BakeEntry::failed_during_bake(report) else {
            return;
        };
        if self.failed_during_bake.contains(&id) {
            return;
        }
        match self
            .store
            .record(&report.release, report.revision, &entry)
            .await
        {
            Ok(()) => {
                info!(release = %report.release, revision = report.revision,
                    "judged failed during its bake: recorded as known bad");
                self.failed_during_bake.insert(id);
            }
            Err(e) => {
                warn!(release = %report.release, revision = report.revision,
                    "the failure seen during the bake was not recorded (written again until it is): {e}");
                self.failed_during_bake.insert(id);
                self.remediator.unwritten(Unwritten::bake(report, entry));
            }
        }
    }

    async fn record(&mut self, report: &Report) {
        if let Err(e) = self.store.record_final(report).await {
            warn!(release = %report.release, revision = report.revision,
                "the final verdict was not recorded (written again until it is): {e}");
            if let Some(entry) = crate::records::bakes::BakeEntry::of(report) {
                self.remediator.unwritten(Unwritten::bake(report, entry));
            }
        }
    }
}

/// `action` for `revision` of `key`, held when the history as re-read now says the revision
/// is no longer current (or the history cannot be read).
async fn guarded(
    client: kube::Client,
    key: &ReleaseKey,
    revision: u32,
    action: RecommendedAction,
) -> RecommendedAction {
    match read_statuses(client, &key.namespace, &key.name).await {
        Ok(history) => guard(action, &history, revision),
        Err(e) => RecommendedAction::Hold {
            reason: format!(
                "cannot re-read the release history before recommending an action: {e}"
            ),
        },
    }
}
