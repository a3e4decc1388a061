//! `mode: auto` deciding about a failed revision (I/O around the pure planner): the precheck,
//! fresh reads of the history and the records, the plan, and for an action its intent
//! written before its task starts.

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;
use tracing::{info, warn};

use super::plan::{self, Facts, Hold, HoldReason, Plan, Precheck};
use super::{Decision, REPLAN_AFTER, Remediator, restart, trust};
use crate::config::{Mode, ReleasePolicy};
use crate::records::action::{AboutRevision, ActionKind, ActionRecord, Phase};
use crate::records::actions::{RecordError, Snapshot};
use crate::release::labels::Storage;
use crate::release::record::rollbacks_of;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::tracker::read::read_history;
use crate::verdict::Report;

impl Remediator {
    /// Decides about a judged revision (any verdict; only `failed` in `mode: auto` does
    /// anything) and, when the plan is an action, starts it.
    pub async fn decide(&mut self, report: &Report, policy: &ReleasePolicy, storage: Storage) {
        let key = &report.release;
        if policy.mode != Mode::Auto {
            return;
        }
        let leader = self.is_leader();
        let kind = match plan::precheck(
            report.verdict,
            &report.action,
            &report.results,
            leader,
            policy.auto.restart_migration_pod,
        ) {
            Precheck::Nothing => {
                self.plans.remove(key);
                return;
            }
            Precheck::Hold(h) => return self.held(key, report.revision, h, None),
            Precheck::Candidate(kind) => kind,
        };
        if let Some(h) = plan::settling(
            report.status,
            report.status_since,
            report.evaluated_at,
            self.actions.settle_after_failed,
        ) {
            return self.held(key, report.revision, h, None);
        }
        let in_progress = self.running.contains_key(key);
        if let Some(d) = self.plans.get(key)
            && d.revision == report.revision
        {
            match (&d.plan, d.planned_at) {
                // A recent hold from fresh reads stands; time- and record-based ones are
                // taken again later. A precheck's hold says nothing once the precheck passes.
                (Plan::Hold(_), Some(at)) if at.elapsed() < REPLAN_AFTER => return,
                (Plan::Hold(_), _) => {}
                // Started (its record holds it back from now on) or reported as a dry run.
                _ => return,
            }
        }
        match self
            .fresh_plan(kind, report, policy, storage, in_progress)
            .await
        {
            Ok((Plan::Hold(h), _, _)) | Err(h) => {
                self.held(key, report.revision, h, Some(Instant::now()));
            }
            // The records read for the decision are the base of the intent's write: if
            // anyone wrote since, the write is refused.
            Ok((action, snapshot, about)) => {
                self.start(report, policy, storage, action, snapshot, about)
                    .await;
            }
        }
    }

    fn held(&mut self, key: &ReleaseKey, revision: u32, hold: Hold, planned_at: Option<Instant>) {
        let changed = !matches!(
            self.plans.get(key),
            Some(Decision { revision: r, plan: Plan::Hold(h), .. }) if *r == revision && *h == hold
        );
        if changed {
            info!(release = %key, revision, reason = hold.reason.as_str(), detail = %hold.detail,
                "automatic action held");
            self.metrics.held(hold.reason);
        }
        self.plans.insert(
            key.clone(),
            Decision {
                revision,
                plan: Plan::Hold(hold),
                planned_at,
            },
        );
    }

    async fn fresh_plan(
        &mut self,
        kind: ActionKind,
        report: &Report,
        policy: &ReleasePolicy,
        storage: Storage,
        in_progress: bool,
    ) -> Result<(Plan, Snapshot, Option<AboutRevision>), Hold> {
        let key = &report.release;
        let unreadable = |what: &str, e: &dyn std::fmt::Display| Hold {
            reason: HoldReason::Unreadable,
            detail: format!("cannot read {what}: {e}; nothing is done blind"),
        };
        let rows = read_history(self.client.clone(), &key.namespace, &key.name)
            .await
            .map_err(|e| unreadable("the release history", &e))?;
        let snapshot = self
            .store
            .load(key)
            .await
            .map_err(|e| unreadable("upgrade-guard's action records", &e))?;
        self.known.insert(key.clone(), snapshot.records.clone());
        let all = self
            .store
            .all()
            .await
            .map_err(|e| unreadable("the action records of all releases", &e))?;
        let now = Timestamp::now();
        let since = now
            .checked_sub(SignedDuration::try_from(self.actions.budget_window).unwrap_or_default())
            .unwrap_or(now);
        let recent = all
            .values()
            .flatten()
            .filter(|r| r.phase.counts() && r.started >= since)
            .count();
        let trusted = trust::trusted(
            &self
                .bakes
                .load(key)
                .await
                .map_err(|e| unreadable("the bake records", &e))?,
            &rows,
        );
        for (revision, why) in &trusted.refused {
            warn!(release = %key, revision, "a bake record is not trusted as a rollback target: {why}");
        }
        // Records of an earlier install of the release (same revision numbers) say nothing
        // about this one.
        let records = trust::of_install(&snapshot.records, &rows);
        let reapplied = trust::reapplied(
            report.revision,
            &rows,
            &records,
            policy.auto.reapplied_within,
            now,
        );
        let history: Vec<(u32, ReleaseStatus)> =
            rows.iter().map(|r| (r.revision, r.status)).collect();
        let rollbacks = rollbacks_of(&rows);
        let restart_workload = restart::workload(&rows, report.revision, policy);
        let manager = restart::manager(self.client.clone(), &rows, report.revision).await;
        let facts = Facts {
            release: key,
            revision: report.revision,
            storage,
            history: &history,
            rollbacks: &rollbacks,
            bakes: &trusted.bakes,
            refused: &trusted.refused,
            reapplied: reapplied.as_ref(),
            records: &records,
            recent_actions: u32::try_from(recent).unwrap_or(u32::MAX),
            in_progress,
            restart_workload: restart_workload.map(|w| w.to_string()),
            manager,
            now,
        };
        let plan = plan::plan(kind, &facts, policy, &self.actions);
        // An action is taken only on a namespace this installation holds against others.
        if !matches!(plan, Plan::Hold(_)) && !self.actions.dry_run {
            let claim = self.claim_one(&key.namespace).await;
            let elsewhere = matches!(claim, super::claim::Claim::Other { .. });
            if let Some(detail) = claim.words(&key.namespace, self.claims.own()) {
                return Err(Hold {
                    reason: if elsewhere {
                        HoldReason::AnotherInstallation
                    } else {
                        HoldReason::Unreadable
                    },
                    detail,
                });
            }
        }
        Ok((plan, snapshot, trust::about(&rows, report.revision)))
    }

    async fn start(
        &mut self,
        report: &Report,
        policy: &ReleasePolicy,
        storage: Storage,
        plan: Plan,
        snapshot: Snapshot,
        about: Option<AboutRevision>,
    ) {
        let key = report.release.clone();
        let revision = report.revision;
        let (kind, target, command) = match &plan {
            Plan::Rollback {
                target, command, ..
            } => (ActionKind::Rollback, Some(*target), command.clone()),
            Plan::RestartPod { workload } => (
                ActionKind::RestartPod,
                None,
                format!("delete the pods of {workload} once (the migration resumes)"),
            ),
            Plan::Hold(_) => return,
        };
        self.plans.insert(
            key.clone(),
            Decision {
                revision,
                plan: plan.clone(),
                planned_at: Some(Instant::now()),
            },
        );
        if self.actions.dry_run {
            if self.dry_runs.insert((key.clone(), revision)) {
                info!(release = %key, revision, command = %command, "dry run: would run");
                self.metrics.dry_run(kind);
            }
            return;
        }
        // Leadership is checked again after the reads: losing the Lease stops new actions.
        if !self.is_leader() {
            return self.held(
                &key,
                revision,
                Hold {
                    reason: HoldReason::NotLeader,
                    detail: "the leader Lease was lost while deciding".into(),
                },
                None,
            );
        }
        let attempt = snapshot
            .records
            .iter()
            .filter(|r| r.bad_revision == revision)
            .map(|r| r.attempt)
            .max()
            .unwrap_or(0)
            + 1;
        let record = ActionRecord {
            bad_revision: revision,
            attempt,
            action: kind,
            target,
            command: command.clone(),
            holder: self.leadership.identity().to_string(),
            started: Timestamp::now(),
            phase: Phase::Running,
            finished: None,
            new_revision: None,
            detail: None,
            process: Some(self.mark().await),
            taken_over_from: None,
            about,
        };
        if let Err(e) = self.intent(&key, &snapshot, &record).await {
            return self.held(&key, revision, e, Some(Instant::now()));
        }
        self.remember(&key, record.clone());
        info!(release = %key, revision, command = %command, "automatic action: intent recorded, starting");
        self.spawn_task(&key, storage, policy.rollback_timeout, plan, record, None);
    }

    /// Writes the intent; any write by someone else since the read is a conflict (their
    /// decision wins; this one is taken again from fresh reads next round).
    async fn intent(
        &self,
        key: &ReleaseKey,
        snapshot: &Snapshot,
        record: &ActionRecord,
    ) -> Result<(), Hold> {
        match self.store.write_if_unchanged(key, snapshot, record).await {
            Ok(()) => Ok(()),
            Err(RecordError::Conflict(_)) => Err(Hold {
                reason: HoldReason::InProgress,
                detail: "another replica wrote an action record for this release meanwhile; deciding again from fresh records".into(),
            }),
            Err(RecordError::Store(e)) => Err(Hold {
                reason: HoldReason::Unreadable,
                detail: format!("the intent could not be recorded, so nothing runs: {e}"),
            }),
        }
    }
}
