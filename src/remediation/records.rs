//! Action records (I/O): every automatic action upgrade-guard starts is written to a
//! ConfigMap in its own namespace before it runs (the intent) and again when its outcome is
//! known, so a restart, a second replica or a new leader never repeats it.
//!
//! One ConfigMap `upgrade-guard.actions.<namespace>.<release>` per release, one key
//! `<bad revision>.<attempt>` per action. Every write is a read-modify-replace with the
//! ConfigMap's `resourceVersion` (optimistic concurrency): an intent is written only if no
//! other writer changed the records since they were read, so two deciders can never both
//! start an action for the same bad revision.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use crate::bakes::{StoreError, record_labels, release_of, status_code as code};
use crate::release::ReleaseKey;

/// Label telling action records from bake records.
pub const RECORD_LABEL: (&str, &str) = ("upgrade-guard.dev/record", "actions");

/// What an automatic action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `helm rollback` to a known-good revision.
    Rollback,
    /// Delete the migration pod once.
    RestartPod,
}

impl ActionKind {
    /// The word used in JSON, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::RestartPod => "restart_pod",
        }
    }
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Intent written; the action runs (or ran and its process died before saying).
    Running,
    /// Not started after all: the history changed after the intent was written.
    Cancelled,
    /// The action completed; its revision is being evaluated.
    Done,
    /// The action failed (helm exited with an error or its deadline passed).
    Failed,
    /// The process that ran it is gone; what happened is in the detail.
    Interrupted,
    /// The rollback's revision passed its bake.
    Verified,
    /// The rollback's revision failed its bake.
    VerificationFailed,
}

impl Phase {
    /// Whether the attempt counts against `max_per_revision`, the cooldown and the budget:
    /// everything that ran or may have run.
    pub fn counts(self) -> bool {
        self != Self::Cancelled
    }

    /// The word used in JSON, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Verified => "verified",
            Self::VerificationFailed => "verification_failed",
        }
    }
}

/// One automatic action. Never any release values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The revision that failed.
    pub bad_revision: u32,
    /// 1 for the first attempt on that revision.
    pub attempt: u32,
    /// What was done.
    pub action: ActionKind,
    /// The revision rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// The command, as an operator would type it.
    pub command: String,
    /// The replica that started it (`actions.leader_election` identity).
    pub holder: String,
    /// When the intent was written.
    pub started: Timestamp,
    /// Where it stands.
    pub phase: Phase,
    /// When the outcome was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// The revision the rollback created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_revision: Option<u32>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ActionRecord {
    /// The ConfigMap key.
    pub fn key(&self) -> String {
        format!("{}.{}", self.bad_revision, self.attempt)
    }
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Someone else changed the records since they were read: read again and decide again.
    #[error("the action records of {0} changed since they were read")]
    Conflict(ReleaseKey),
    /// The API refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Name of the ConfigMap holding a release's action records.
pub fn configmap_name(release: &ReleaseKey) -> String {
    format!(
        "upgrade-guard.actions.{}.{}",
        release.namespace, release.name
    )
}

/// Parses the records; unreadable entries are skipped with a warning.
pub fn parse(data: &BTreeMap<String, String>) -> Vec<ActionRecord> {
    let mut out: Vec<ActionRecord> = data
        .iter()
        .filter_map(|(k, v)| match serde_json::from_str::<ActionRecord>(v) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(key = %k, "ignoring an unreadable action record: {e}");
                None
            }
        })
        .collect();
    out.sort_by_key(|r| (r.started, r.bad_revision, r.attempt));
    out
}

/// Records as read, with the version they were read at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The records, oldest first.
    pub records: Vec<ActionRecord>,
    resource_version: Option<String>,
}

/// The action records of every release, in upgrade-guard's namespace.
#[derive(Clone)]
pub struct RecordStore {
    api: Api<ConfigMap>,
    namespace: String,
}

impl RecordStore {
    /// Records in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    fn error(&self, verb: &'static str, source: kube::Error) -> StoreError {
        StoreError::of(verb, &self.namespace, source)
    }

    /// A release's records.
    pub async fn load(&self, release: &ReleaseKey) -> Result<Snapshot, StoreError> {
        let cm = self
            .api
            .get_opt(&configmap_name(release))
            .await
            .map_err(|e| self.error("read", e))?;
        Ok(match cm {
            None => Snapshot::default(),
            Some(cm) => Snapshot {
                resource_version: cm.metadata.resource_version.clone(),
                records: parse(&cm.data.unwrap_or_default()),
            },
        })
    }

    /// Every release's records (one LIST).
    pub async fn all(&self) -> Result<BTreeMap<ReleaseKey, Vec<ActionRecord>>, StoreError> {
        let selector = format!("{}={}", RECORD_LABEL.0, RECORD_LABEL.1);
        let list = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error("list", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|cm| Some((release_of(&cm)?, parse(&cm.data.unwrap_or_default()))))
            .collect())
    }

    /// Writes `record` only if the records are still as in `read` (else
    /// [`RecordError::Conflict`]).
    pub async fn write_if_unchanged(
        &self,
        release: &ReleaseKey,
        read: &Snapshot,
        record: &ActionRecord,
    ) -> Result<(), RecordError> {
        let mut data: BTreeMap<String, String> = read
            .records
            .iter()
            .map(|r| (r.key(), serde_json::to_string(r).unwrap_or_default()))
            .collect();
        data.insert(
            record.key(),
            serde_json::to_string(record).unwrap_or_default(),
        );
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(configmap_name(release)),
                resource_version: read.resource_version.clone(),
                labels: Some({
                    let mut labels = record_labels(release);
                    labels.insert(RECORD_LABEL.0.to_string(), RECORD_LABEL.1.to_string());
                    labels
                }),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let pp = PostParams {
            field_manager: Some("upgrade-guard".into()),
            ..Default::default()
        };
        let result = match &read.resource_version {
            None => self.api.create(&pp, &cm).await.map(|_| ()),
            Some(_) => self
                .api
                .replace(&configmap_name(release), &pp, &cm)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if code(&e) == Some(409) => Err(RecordError::Conflict(release.clone())),
            Err(e) => Err(RecordError::Store(self.error("write", e))),
        }
    }

    /// Updates a record this process owns (its outcome), re-reading on conflicts: other
    /// keys written meanwhile are kept.
    pub async fn update(
        &self,
        release: &ReleaseKey,
        record: &ActionRecord,
    ) -> Result<(), RecordError> {
        let mut last = None;
        for _ in 0..5 {
            let read = self.load(release).await?;
            match self.write_if_unchanged(release, &read, record).await {
                Err(RecordError::Conflict(k)) => last = Some(k),
                other => return other,
            }
        }
        Err(RecordError::Conflict(
            last.unwrap_or_else(|| release.clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_sorted_and_unreadable_ones_are_skipped() {
        let r = |bad: u32, attempt: u32, at: &str| ActionRecord {
            bad_revision: bad,
            attempt,
            action: ActionKind::Rollback,
            target: Some(1),
            command: "helm rollback gim 1 -n gim --wait --timeout 15m".into(),
            holder: "upgrade-guard-0".into(),
            started: at.parse().unwrap(),
            phase: Phase::Running,
            finished: None,
            new_revision: None,
            detail: None,
        };
        let a = r(2, 1, "2026-11-25T12:00:00Z");
        let b = r(4, 1, "2026-11-25T11:00:00Z");
        let data = BTreeMap::from([
            (a.key(), serde_json::to_string(&a).unwrap()),
            (b.key(), serde_json::to_string(&b).unwrap()),
            ("9.1".into(), "{broken".into()),
        ]);
        assert_eq!(parse(&data), vec![b.clone(), a.clone()]);
        assert_eq!(a.key(), "2.1");
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"phase\":\"running\""), "{json}");
        assert!(!json.contains("finished"), "{json}");
    }

    #[test]
    fn only_cancelled_attempts_do_not_count() {
        for p in [
            Phase::Running,
            Phase::Done,
            Phase::Failed,
            Phase::Interrupted,
            Phase::Verified,
            Phase::VerificationFailed,
        ] {
            assert!(p.counts(), "{p:?}");
        }
        assert!(!Phase::Cancelled.counts());
    }
}
