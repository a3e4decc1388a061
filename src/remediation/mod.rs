//! Automatic actions (`mode: auto`): the planner's decision carried out under DESIGN §5.
//! For a failed revision the [`Remediator`] runs [`plan::precheck`] (no I/O), then re-reads
//! the release history and the action records and runs [`plan::plan`]; a rollback or a
//! migration-pod restart is written as an intent record (optimistic concurrency) before it
//! runs, checked against the history once more, run in its own task, and its outcome
//! recorded. The revision a rollback creates is evaluated like any other; its verdict
//! verifies the rollback ([`Remediator::verify`]). A record left `running` by a process that
//! is gone is never run again: once its deadline passed it is resolved from the history.

pub mod automation;
pub mod claim;
mod decide;
pub mod gitops;
pub mod helm;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod plan;
pub mod process;
mod resolve;
pub mod restart;
mod task;
pub mod trust;
mod unlock;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::ActionsConfig;
use crate::records::action::{ActionRecord, Phase, ProcessMark, record_for};
use crate::records::actions::RecordStore;
use crate::records::bakes::BakeStore;
use crate::records::outbox::{Outbox, Unwritten};
use crate::release::ReleaseKey;
use crate::tracker::read::read_history;
use crate::units::plus;
use crate::verdict::Report;
use automation::Automation;
use helm::HelmRunner;
use helm::kill_deadline;
use leader::Leadership;
use liveness::Liveness;
use metrics::ActionMetrics;
use plan::Plan;
use task::Task;

pub use task::Finished;

/// How often a held decision is taken again (holds that depend on time or on the records).
const REPLAN_AFTER: Duration = Duration::from_secs(60);

/// The last decision about a release's revision.
#[derive(Debug, Clone)]
struct Decision {
    revision: u32,
    plan: Plan,
    /// Taken from fresh reads of the history and records (not by the precheck), when.
    planned_at: Option<Instant>,
}

/// Carries out automatic actions.
pub struct Remediator {
    client: kube::Client,
    store: RecordStore,
    bakes: BakeStore,
    helm: HelmRunner,
    actions: ActionsConfig,
    leadership: Leadership,
    metrics: ActionMetrics,
    running: BTreeMap<ReleaseKey, JoinHandle<()>>,
    finished_tx: mpsc::UnboundedSender<Finished>,
    /// The last decision per release.
    plans: BTreeMap<ReleaseKey, Decision>,
    /// Records known per release (loaded at each release event, updated on writes).
    known: BTreeMap<ReleaseKey, Vec<ActionRecord>>,
    /// Rollback revisions seen, per release: revision → the revision it rolled back to.
    rollbacks: BTreeMap<ReleaseKey, BTreeMap<u32, u32>>,
    dry_runs: BTreeSet<(ReleaseKey, u32)>,
    last_resume: Option<Instant>,
    /// This process as a successor can check it (read once, when first needed).
    mark: Option<ProcessMark>,
    /// The namespaces this installation acts on, claimed against other installations.
    claims: claim::Claims,
    /// Records whose write failed, written again until they are.
    outbox: Outbox,
    /// Judgements of rollback revisions that came while this process's task for the
    /// release still ran (per revision, the last): applied once the task has written its
    /// outcome, so that the outcome never overwrites a verification, and a revision the
    /// task did not write (one a dead helm left, unlocked) never verifies it.
    deferred: BTreeMap<ReleaseKey, BTreeMap<u32, (Report, bool)>>,
}

impl Remediator {
    /// A remediator writing its records in `namespace`, sending finished actions to the
    /// returned receiver.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        helm: HelmRunner,
        actions: ActionsConfig,
        leadership: Leadership,
        metrics: ActionMetrics,
    ) -> (Self, mpsc::UnboundedReceiver<Finished>) {
        let (finished_tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                store: RecordStore::new(client.clone(), namespace),
                bakes: BakeStore::new(client.clone(), namespace),
                claims: claim::Claims::new(
                    client.clone(),
                    namespace,
                    &actions.leader_election.lease_name,
                ),
                client,
                helm,
                actions,
                leadership,
                metrics,
                running: BTreeMap::new(),
                finished_tx,
                plans: BTreeMap::new(),
                known: BTreeMap::new(),
                rollbacks: BTreeMap::new(),
                dry_runs: BTreeSet::new(),
                last_resume: None,
                mark: None,
                outbox: Outbox::default(),
                deferred: BTreeMap::new(),
            },
            rx,
        )
    }

    /// This process leads.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// This process's mark, read once.
    async fn mark(&mut self) -> ProcessMark {
        if self.mark.is_none() {
            self.mark = Some(process::this_process(&self.client).await);
        }
        self.mark.clone().unwrap_or_default()
    }

    /// Reads a release's records (at each of its events) so that its view and the
    /// verification of a rollback revision know them.
    pub async fn load(&mut self, key: &ReleaseKey) {
        match self.store.load(key).await {
            Ok(s) => {
                self.known.insert(key.clone(), s.records);
            }
            Err(e) => warn!(release = %key, "action records not available: {e}"),
        }
    }

    /// The records of a release as the cluster holds them now (its ConfigMap watched).
    pub fn observed(&mut self, key: ReleaseKey, records: Vec<ActionRecord>) {
        self.known.insert(key, records);
    }

    /// Helm wrote `revision` as a rollback to `target`.
    pub fn rolled_back(&mut self, key: &ReleaseKey, revision: u32, target: u32) {
        self.rollbacks
            .entry(key.clone())
            .or_default()
            .insert(revision, target);
    }

    fn rolled_back_to(&self, key: &ReleaseKey, revision: u32) -> Option<u32> {
        self.rollbacks.get(key)?.get(&revision).copied()
    }

    /// The release was uninstalled.
    pub fn forget(&mut self, key: &ReleaseKey) {
        self.plans.remove(key);
        self.deferred.remove(key);
        self.known.remove(key);
        self.rollbacks.remove(key);
    }

    /// What to show for `revision` of `key`.
    pub fn automation(&self, key: &ReleaseKey, revision: u32) -> Automation {
        Automation {
            dry_run: self.actions.dry_run,
            plan: self
                .plans
                .get(key)
                .filter(|d| d.revision == revision)
                .map(|d| d.plan.clone()),
            record: self
                .known
                .get(key)
                .and_then(|rs| record_for(rs, revision, self.rolled_back_to(key, revision)))
                .cloned(),
        }
    }

    /// A finished action came back: known from now on (and its record written again until
    /// it is, if its task could not write it); the judgements that came while it ran
    /// verify it now, if they concern the revision it wrote.
    pub async fn finished(&mut self, (key, record, unwritten): &Finished) {
        self.running.remove(key);
        // Decided again next round, from the records (which now hold this attempt).
        self.plans.remove(key);
        self.remember(key, record.clone());
        self.metrics.finished(record);
        if unwritten.is_some() {
            self.unwritten(Unwritten::Action {
                release: key.clone(),
                record: Box::new(record.clone()),
            });
        }
        for (report, is_final) in self.deferred.remove(key).unwrap_or_default().into_values() {
            self.verify(&report, is_final).await;
        }
    }

    /// A record whose write failed: written again until it is (see
    /// [`crate::records::outbox`]).
    pub fn unwritten(&mut self, record: Unwritten) {
        self.metrics.record_write(record.kind(), "failed");
        if let Some(dropped) = self.outbox.push(record) {
            self.metrics.record_write(dropped.kind(), "given_up");
            error!(record = ?dropped, "too many records wait to be written: the oldest is given up");
        }
        self.metrics
            .unwritten(self.outbox.len(), self.outbox.oldest());
    }

    /// Writes the records that wait (each round; a failing one waits longer each time).
    pub async fn flush_records(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let done = self.outbox.flush(&self.bakes, &self.store).await;
        for kind in &done.written {
            self.metrics.record_write(kind, "written_late");
        }
        if !done.written.is_empty() {
            info!(
                written = done.written.len(),
                waiting = self.outbox.len(),
                "records written after failing before"
            );
        }
        for (record, e) in &done.given_up {
            self.metrics.record_write(record.kind(), "given_up");
            error!(record = ?record, "a record could not be written for {}, given up: {e}",
                crate::units::human(crate::records::outbox::GIVE_UP_AFTER));
        }
        self.metrics
            .unwritten(self.outbox.len(), self.outbox.oldest());
    }

    fn remember(&mut self, key: &ReleaseKey, record: ActionRecord) {
        let list = self.known.entry(key.clone()).or_default();
        list.retain(|r| r.key() != record.key());
        list.push(record);
        list.sort_by_key(|r| r.started);
    }

    /// A judgement of a revision that a rollback created: `healthy`/`degraded` at the end of
    /// its bake verify the rollback, `failed` fails it. Returns the updated record.
    pub async fn verify(&mut self, report: &Report, is_final: bool) -> Option<ActionRecord> {
        let key = &report.release;
        let outcome = resolve::verification(report.verdict, is_final)?;
        if !self.is_leader() {
            return None;
        }
        if self.running.contains_key(key) {
            // The task writes its outcome when helm returns: verified now, that write would
            // undo the verification; and a revision judged meanwhile may be one the task
            // does not write (a dead helm's, unlocked when taking over).
            self.deferred
                .entry(key.clone())
                .or_default()
                .insert(report.revision, (report.clone(), is_final));
            return None;
        }
        let rolled_back_to = self.rolled_back_to(key, report.revision);
        let record =
            resolve::awaiting_verification(self.known.get(key)?, report.revision, rolled_back_to)?;
        let updated = resolve::verified(record, report, outcome, Timestamp::now());
        if let Err(e) = self.store.update(key, &updated).await {
            warn!(release = %key, "the rollback's verification was not recorded (written again until it is): {e}");
            self.unwritten(Unwritten::Action {
                release: key.clone(),
                record: Box::new(updated.clone()),
            });
        }
        info!(release = %key, revision = report.revision, outcome = outcome.as_str(), "rollback verification");
        self.remember(key, updated.clone());
        self.metrics.finished(&updated);
        Some(updated)
    }

    /// Resolves records left `running` by another process (after a restart or a change of
    /// leader). When that process is provably gone (see [`liveness`]) its rollback is
    /// completed as the same attempt, once (unlocking what its helm left pending), or
    /// settled from the history; otherwise it is left alone until its deadline passed, then
    /// resolved from the history, never run again.
    pub async fn resume(&mut self, timeout_of: impl Fn(&ReleaseKey) -> Duration) {
        self.last_resume = Some(Instant::now());
        let all = match self.store.all().await {
            Ok(a) => a,
            Err(e) => return warn!("cannot read the action records: {e}"),
        };
        for (key, records) in all {
            self.known.insert(key.clone(), records.clone());
            for record in records.iter().filter(|r| r.phase == Phase::Running) {
                if record.holder == self.leadership.identity() || self.running.contains_key(&key) {
                    continue;
                }
                let rows = match read_history(self.client.clone(), &key.namespace, &key.name).await
                {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(release = %key, "cannot read the history of an unfinished action: {e}");
                        continue;
                    }
                };
                let seen = process::observe(&self.client, record.process.as_ref()).await;
                let updated = match liveness::judge(record.process.as_ref(), &seen) {
                    Liveness::Gone(why) => {
                        match resolve::after_death(record, &rows, &why, Timestamp::now()) {
                            resolve::Takeover::Resolved(updated) => *updated,
                            resolve::Takeover::Complete { unlock } => {
                                let timeout = timeout_of(&key);
                                self.take_over(&key, record, &rows, unlock, &why, timeout)
                                    .await;
                                continue;
                            }
                        }
                    }
                    _ => {
                        let deadline = plus(
                            record.started,
                            kill_deadline(timeout_of(&key)) + Duration::from_secs(60),
                        );
                        match resolve::unfinished(record, &rows, deadline, Timestamp::now()) {
                            Some(u) => u,
                            None => continue,
                        }
                    }
                };
                match self.store.update(&key, &updated).await {
                    Ok(()) => {
                        warn!(release = %key, bad_revision = record.bad_revision,
                            outcome = updated.phase.as_str(), "{}", updated.detail.as_deref().unwrap_or(""));
                        self.metrics.finished(&updated);
                        self.remember(&key, updated);
                    }
                    Err(e) => {
                        warn!(release = %key, "cannot record the outcome of an unfinished action: {e}")
                    }
                }
            }
        }
    }

    /// Completes the rollback of a holder that is gone, as the same attempt: the record is
    /// claimed (only if nobody changed it since it was read: two successors never both run
    /// it), then the task unlocks what the dead helm left pending and runs the rollback.
    async fn take_over(
        &mut self,
        key: &ReleaseKey,
        record: &ActionRecord,
        rows: &[crate::release::record::HistoryRow],
        unlock: Option<u32>,
        why: &str,
        timeout: Duration,
    ) {
        let Some(target) = record.target else { return };
        if self.actions.dry_run {
            return warn!(release = %key, bad_revision = record.bad_revision,
                "dry run: an unfinished rollback whose process is gone ({why}) would be completed; nothing runs");
        }
        let snapshot = match self.store.load(key).await {
            Ok(s) => s,
            Err(e) => return warn!(release = %key, "cannot read the action records: {e}"),
        };
        if snapshot.records.iter().find(|r| r.key() == record.key()) != Some(record)
            || !self.is_leader()
        {
            return;
        }
        let claimed = ActionRecord {
            holder: self.leadership.identity().to_string(),
            process: Some(self.mark().await),
            taken_over_from: Some(record.holder.clone()),
            about: record.about.clone(),
            detail: Some(format!(
                "taken over: the process that started it ({}) is gone: {why}",
                record.holder
            )),
            ..record.clone()
        };
        match self
            .store
            .write_if_unchanged(key, &snapshot, &claimed)
            .await
        {
            Ok(()) => {}
            Err(e) => return warn!(release = %key, "the unfinished action was not taken over: {e}"),
        }
        warn!(release = %key, bad_revision = record.bad_revision, from = %record.holder, unlock = ?unlock,
            "taking over an automatic action whose process is gone: {why}");
        let storage = rows
            .iter()
            .find(|r| Some(r.revision) == unlock || r.revision == record.bad_revision)
            .map_or(crate::release::labels::Storage::Secret, |r| r.storage);
        self.remember(key, claimed.clone());
        let plan = Plan::Rollback {
            target,
            // Not shown: the task needs the target only.
            basis: crate::release::rollback_target::TargetBasis::PassedBake,
            command: record.command.clone(),
        };
        self.spawn_task(key, storage, timeout, plan, claimed, Some(unlock));
    }

    /// Runs one action in its own task; its outcome comes back through `finished`.
    fn spawn_task(
        &mut self,
        key: &ReleaseKey,
        storage: crate::release::labels::Storage,
        timeout: Duration,
        plan: Plan,
        record: ActionRecord,
        taking_over: Option<Option<u32>>,
    ) {
        let task = Task {
            client: self.client.clone(),
            store: self.store.clone(),
            helm: self.helm.clone(),
            key: key.clone(),
            storage,
            timeout,
            plan,
            record,
            finished: self.finished_tx.clone(),
            taking_over,
        };
        self.running.insert(key.clone(), tokio::spawn(task.run()));
    }

    /// Whether unfinished records of other processes are due to be looked at again (every
    /// minute while leading).
    pub fn resume_due(&self) -> bool {
        self.last_resume.is_none_or(|t| t.elapsed() >= REPLAN_AFTER)
    }

    /// Claims (renews the claim on) each namespace this installation acts on, while it
    /// leads: another installation watching one of them sees it and never acts there.
    /// A namespace another installation claims is shown in the log and the metrics.
    pub async fn claim(&mut self, namespaces: &BTreeSet<String>) {
        // A dry run acts nowhere, so it claims nothing (it must not keep another
        // installation from acting).
        if !self.is_leader() || self.actions.dry_run {
            return;
        }
        for ns in namespaces {
            self.claim_one(ns).await;
        }
    }

    /// Claims `namespace` and exports whether another installation holds it (said in the
    /// log when that starts).
    async fn claim_one(&mut self, namespace: &str) -> claim::Claim {
        let claim = self.claims.claim(namespace).await;
        let elsewhere = matches!(claim, claim::Claim::Other { .. });
        let gauge = self.metrics.claimed_elsewhere(namespace);
        if elsewhere
            && gauge.get() == 0
            && let Some(words) = claim.words(namespace, self.claims.own())
        {
            warn!(namespace, "{words}");
        }
        gauge.set(i64::from(elsewhere));
        claim
    }

    /// Whether an action on `key` runs in this process.
    pub fn runs(&self, key: &ReleaseKey) -> bool {
        self.running.contains_key(key)
    }

    /// Actions running in this process.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Waits for the running actions (shutdown: a rollback is never abandoned halfway).
    pub async fn drain(&mut self) {
        let running = std::mem::take(&mut self.running);
        if !running.is_empty() {
            info!(
                count = running.len(),
                "waiting for running actions before exiting"
            );
        }
        for (_, task) in running {
            let _ = task.await;
        }
    }
}
