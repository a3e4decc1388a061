//! Action records (I/O): every automatic action upgrade-guard starts is written to a
//! ConfigMap in its own namespace before it runs (the intent) and again when its outcome is
//! known, so a restart, a second replica or a new leader never repeats it. The record itself
//! is `action.rs`.
//!
//! One ConfigMap `upgrade-guard.actions.<namespace>.<release>` per release, one key
//! `<bad revision>.<attempt>` per action. Every write is a read-modify-replace with the
//! ConfigMap's `resourceVersion` (optimistic concurrency): an intent is written only if no
//! other writer changed the records since they were read, so two deciders can never both
//! start an action for the same bad revision.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};

use super::action::{ActionRecord, KEPT_FOR, pruned};
use super::store::{ConfigMaps, StoreError, record_labels, release_of};
use crate::api_error::ApiErrorKind;
use crate::release::ReleaseKey;

/// Label telling action records from bake records.
pub const RECORD_LABEL: (&str, &str) = ("upgrade-guard.dev/record", "actions");

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
    split(data).0
}

/// The records, oldest first, and the entries that do not parse, verbatim (reported, and
/// kept by every rewrite: an entry written by a newer version or damaged by hand is
/// evidence of an action, never dropped).
fn split(data: &BTreeMap<String, String>) -> (Vec<ActionRecord>, BTreeMap<String, String>) {
    let mut unreadable = BTreeMap::new();
    let mut out: Vec<ActionRecord> = data
        .iter()
        .filter_map(|(k, v)| match serde_json::from_str::<ActionRecord>(v) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(key = %k, "an action record cannot be read (kept as written, not acted on): {e}");
                unreadable.insert(k.clone(), v.clone());
                None
            }
        })
        .collect();
    out.sort_by_key(|r| (r.started, r.bad_revision, r.attempt));
    (out, unreadable)
}

/// Records as read, with the version they were read at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The records, oldest first.
    pub records: Vec<ActionRecord>,
    /// Entries that do not parse, as written: carried over by every write.
    pub unreadable: BTreeMap<String, String>,
    resource_version: Option<String>,
}

/// The action records of every release, in upgrade-guard's namespace.
#[derive(Clone)]
pub struct RecordStore {
    maps: ConfigMaps,
}

impl RecordStore {
    /// Records in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            maps: ConfigMaps::new(client, namespace),
        }
    }

    /// A release's records.
    pub async fn load(&self, release: &ReleaseKey) -> Result<Snapshot, StoreError> {
        let cm = self.maps.get(&configmap_name(release)).await?;
        Ok(match cm {
            None => Snapshot::default(),
            Some(cm) => {
                let (records, unreadable) = split(&cm.data.unwrap_or_default());
                Snapshot {
                    resource_version: cm.metadata.resource_version.clone(),
                    records,
                    unreadable,
                }
            }
        })
    }

    /// Every release's records (one LIST).
    pub async fn all(&self) -> Result<BTreeMap<ReleaseKey, Vec<ActionRecord>>, StoreError> {
        let list = self.maps.labelled(RECORD_LABEL).await?;
        Ok(list
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
        let mut data: BTreeMap<String, String> = read.unreadable.clone();
        let drop = pruned(&read.records, jiff::Timestamp::now(), KEPT_FOR);
        data.extend(
            read.records
                .iter()
                .filter(|r| !drop.contains(&r.key()))
                .map(|r| (r.key(), serde_json::to_string(r).unwrap_or_default())),
        );
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
            None => self.maps.api.create(&pp, &cm).await.map(|_| ()),
            Some(_) => self
                .maps
                .api
                .replace(&configmap_name(release), &pp, &cm)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => {
                Err(RecordError::Conflict(release.clone()))
            }
            Err(e) => Err(RecordError::Store(self.maps.error("write", e))),
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

/// Watches the action records of `namespace` and sends each release's records as they
/// change (none when its ConfigMap is deleted): every replica serves the records as the
/// cluster holds them, not as it last wrote or read them. The API server ends each watch
/// after `timeout` seconds (shorter than the client's read timeout; it is resumed). Runs
/// until `tx` closes.
pub async fn watch(
    client: kube::Client,
    namespace: &str,
    timeout: u32,
    tx: tokio::sync::mpsc::Sender<(ReleaseKey, Vec<ActionRecord>)>,
) {
    super::store::watch_labelled(
        client,
        namespace,
        RECORD_LABEL,
        timeout,
        "the action records",
        parse,
        tx,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::action::{ActionKind, Phase};

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
            process: None,
            taken_over_from: None,
            about: None,
        };
        let a = r(2, 1, "2026-11-25T12:00:00Z");
        let b = r(4, 1, "2026-11-25T11:00:00Z");
        let data = BTreeMap::from([
            (a.key(), serde_json::to_string(&a).unwrap()),
            (b.key(), serde_json::to_string(&b).unwrap()),
            ("9.1".into(), "{broken".into()),
        ]);
        assert_eq!(parse(&data), vec![b.clone(), a.clone()]);
        let (_, unreadable) = split(&data);
        assert_eq!(
            unreadable,
            BTreeMap::from([("9.1".into(), "{broken".into())])
        );
        assert_eq!(a.key(), "2.1");
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"phase\":\"running\""), "{json}");
        assert!(!json.contains("finished"), "{json}");
    }
}
