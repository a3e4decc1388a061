//! One automatic action, run in its own task (I/O): the history read once more just before
//! acting (anything written since the decision cancels it), then `helm rollback` or the
//! pods' deletion, then the outcome recorded and sent back to the remediator.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::helm::HelmRunner;
use super::plan::Plan;
use super::restart;
use super::unlock::unlock;
use crate::records::action::{ActionRecord, Phase};
use crate::records::actions::RecordStore;
use crate::release::ReleaseKey;
use crate::release::labels::Storage;
use crate::release::record::rollback_revision;
use crate::tracker::read::{read_history, read_statuses};

/// A finished action: the release, the record with its outcome, and why that record could
/// not be written (then the remediator writes it again until it is).
pub type Finished = (ReleaseKey, ActionRecord, Option<String>);

/// One action, run in its own task.
pub(super) struct Task {
    pub client: kube::Client,
    pub store: RecordStore,
    pub helm: HelmRunner,
    pub key: ReleaseKey,
    pub storage: Storage,
    pub timeout: Duration,
    pub plan: Plan,
    pub record: ActionRecord,
    pub finished: mpsc::UnboundedSender<Finished>,
    /// Completing the action of a holder that is gone (the same attempt), after unlocking
    /// the revision its helm left pending, if any.
    pub taking_over: Option<Option<u32>>,
}

impl Task {
    /// Runs the action, records its outcome and says it finished.
    pub async fn run(self) {
        let record = self.act().await;
        let unwritten = match self.store.update(&self.key, &record).await {
            Ok(()) => None,
            Err(e) => {
                warn!(release = %self.key, "the outcome of the automatic action was not recorded (written again until it is): {e}");
                Some(e.to_string())
            }
        };
        info!(release = %self.key, bad_revision = record.bad_revision, outcome = record.phase.as_str(),
            detail = record.detail.as_deref().unwrap_or(""), "automatic action finished");
        let _ = self.finished.send((self.key.clone(), record, unwritten));
    }

    fn outcome(&self, phase: Phase, new_revision: Option<u32>, detail: String) -> ActionRecord {
        ActionRecord {
            phase,
            new_revision,
            finished: Some(Timestamp::now()),
            detail: Some(detail),
            ..self.record.clone()
        }
    }

    async fn act(&self) -> ActionRecord {
        let bad = self.record.bad_revision;
        let unlocked = self.taking_over.flatten();
        if let (Some(rev), Plan::Rollback { target, .. }) = (unlocked, &self.plan) {
            let words = format!(
                "Rollback to {target} interrupted: the process that ran it ({}) is gone; unlocked by upgrade-guard",
                self.record.taken_over_from.as_deref().unwrap_or("?")
            );
            if let Err(e) = unlock(self.client.clone(), &self.key, self.storage, rev, &words).await
            {
                return self.outcome(
                    Phase::Interrupted,
                    Some(rev),
                    format!("revision {rev} is left pending and could not be unlocked ({e}): the release is locked, see docs/actions.md"),
                );
            }
            info!(release = %self.key, revision = rev, "unlocked the revision a dead helm left pending");
        }
        // Anything written since the decision (a newer revision, a Helm operation) stops
        // it: cancelled before a first run; interrupted when taking over (part of it ran).
        let stopped = if self.taking_over.is_some() {
            Phase::Interrupted
        } else {
            Phase::Cancelled
        };
        match read_statuses(self.client.clone(), &self.key.namespace, &self.key.name).await {
            Ok(mut history) => {
                history.retain(|(r, _)| Some(*r) != unlocked);
                if let Some(reason) = crate::verdict::stale(&history, bad) {
                    return self.outcome(stopped, unlocked, format!("not run: {reason}"));
                }
            }
            Err(e) => {
                return self.outcome(
                    stopped,
                    unlocked,
                    format!("not run: the history could not be read just before acting: {e}"),
                );
            }
        }
        match &self.plan {
            Plan::Rollback { target, .. } => {
                let out = self
                    .helm
                    .rollback(&self.key, self.storage, *target, self.timeout)
                    .await;
                // Whatever helm called the revision it wrote (it rewrites the description
                // of a rollback that fails), it is this rollback's.
                let rows = read_history(self.client.clone(), &self.key.namespace, &self.key.name)
                    .await
                    .unwrap_or_default();
                // After the revision a dead helm left (unlocked), when taking over.
                let written = rollback_revision(&rows, unlocked.unwrap_or(bad), *target);
                let new = written.map(|(r, _)| r);
                if out.success {
                    let detail = match new {
                        Some(r) => {
                            format!("rolled back to revision {target}: revision {r}; verifying")
                        }
                        None => format!(
                            "helm rollback to revision {target} succeeded; its revision is not in the history yet"
                        ),
                    };
                    return self.outcome(Phase::Done, new, detail);
                }
                let mut detail = out.detail;
                if let Some((r, status)) = written.filter(|(_, s)| s.is_pending() && out.gone) {
                    // Our helm is gone and left the release locked: nobody else will finish
                    // this rollback, and Helm refuses every operation until it is unlocked.
                    let words = format!(
                        "Rollback to {target} interrupted: helm was stopped before it finished; unlocked by upgrade-guard"
                    );
                    detail = match unlock(self.client.clone(), &self.key, self.storage, r, &words)
                        .await
                    {
                        Ok(()) => format!(
                            "{detail}; revision {r} was left {status} and has been unlocked (marked failed)"
                        ),
                        Err(e) => format!(
                            "{detail}; revision {r} is left {status} and could not be unlocked ({e}): the release is locked, see docs/actions.md"
                        ),
                    };
                }
                self.outcome(Phase::Failed, new, detail)
            }
            Plan::RestartPod { workload } => {
                match restart::delete_pods(self.client.clone(), &self.key.namespace, workload).await
                {
                    Ok(pods) => self.outcome(
                        Phase::Done,
                        None,
                        format!(
                            "deleted {} pod(s) of {workload}: {}",
                            pods.len(),
                            pods.join(", ")
                        ),
                    ),
                    Err(e) => self.outcome(
                        Phase::Failed,
                        None,
                        format!("could not delete the pods of {workload}: {e}"),
                    ),
                }
            }
            Plan::Hold(_) => self.outcome(Phase::Cancelled, None, "nothing to do".into()),
        }
    }
}
