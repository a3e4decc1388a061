//! Bake records (I/O): each revision's final verdict, kept in a ConfigMap per release in
//! upgrade-guard's own namespace (never in Helm's Secrets), so rollback targets are chosen
//! from what actually passed its bake, across restarts and from `check`.
//!
//! One ConfigMap `upgrade-guard.bakes.<namespace>.<release>` (a namespace has no dots, so
//! the name is unambiguous) with one key per revision; each write is a JSON merge patch of
//! its own key, so concurrent writers never overwrite each other's revisions. At most
//! [`MAX_RECORDS`] revisions are kept, the oldest dropped first.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};

use super::store::{ConfigMaps, MANAGED_BY, StoreError, record_labels, release_of};
use crate::api_error::ApiErrorKind;
use crate::checks::Outcome;
use crate::release::ReleaseKey;
use crate::release::rollback_target::BakeRecord;
use crate::verdict::Report;

/// Revisions kept per release (Helm keeps 10 by default with `--history-max`).
pub const MAX_RECORDS: usize = 64;

/// What is kept about one revision. Never any release values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BakeEntry {
    /// The final verdict.
    pub verdict: BakeRecord,
    /// When it was reached.
    pub at: Timestamp,
    /// `chart-version` of the revision.
    pub chart: String,
    /// The checks that failed (for a `failed` verdict), so that a restarted daemon tells
    /// Alertmanager about the same alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<String>,
    /// The checks that could not be judged (for an `inconclusive` verdict), for the same
    /// reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered_checks: Vec<String>,
    /// SHA-256 of what the revision applied when it was judged (see
    /// `release::fingerprint`): a Helm record rewritten since no longer matches, and is
    /// never trusted as a rollback target. Empty in records of older versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
    /// Which install of the release (its first deployment): the revisions of a reinstall
    /// that bear the same numbers are other revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<Timestamp>,
    /// Written when the revision was judged failed during its bake, before a final
    /// verdict: it stays known bad if a newer revision supersedes it (or the daemon stops)
    /// before its bake ends. A final verdict replaces it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub during_bake: bool,
    /// An operator accepted the revision as good (`upgrade-guard accept`): `verdict` is
    /// `healthy` from then on, whatever was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<crate::records::control::Acceptance>,
    /// The verdict it had when it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_over: Option<BakeRecord>,
}

impl BakeEntry {
    /// The entry a report leaves: `None` unless its verdict is a judgement (healthy,
    /// degraded, failed).
    pub fn of(report: &Report) -> Option<Self> {
        Some(Self {
            verdict: report.bake_record()?,
            at: report.evaluated_at,
            chart: report.chart.clone(),
            failed_checks: report
                .results
                .iter()
                .filter(|r| r.outcome == Outcome::Fail)
                .map(|r| r.check.to_string())
                .collect(),
            unanswered_checks: report
                .results
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Inconclusive | Outcome::Pending))
                .map(|r| r.check.to_string())
                .collect(),
            content: report.content.clone(),
            install: report.install,
            during_bake: false,
            accepted: None,
            accepted_over: None,
        })
    }

    /// The entry a report judged `failed` before the end of its bake leaves; `None` for
    /// any other report.
    pub fn failed_during_bake(report: &Report) -> Option<Self> {
        if report.is_final() || report.bake_record() != Some(BakeRecord::Failed) {
            return None;
        }
        Some(Self {
            during_bake: true,
            accepted: None,
            accepted_over: None,
            ..Self::of(report)?
        })
    }

    /// Whether it belongs to the install first deployed at `install` (unknown on either
    /// side: assumed so).
    pub fn of_install(&self, install: Option<Timestamp>) -> bool {
        match (self.install, install) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// The records of every release, in one namespace.
#[derive(Clone)]
pub struct BakeStore {
    maps: ConfigMaps,
}

/// Name of the ConfigMap holding a release's records.
pub fn configmap_name(release: &ReleaseKey) -> String {
    format!("upgrade-guard.bakes.{}.{}", release.namespace, release.name)
}

/// Parses the ConfigMap's data; entries that do not parse are skipped (with a warning).
pub fn parse(data: &BTreeMap<String, String>) -> BTreeMap<u32, BakeEntry> {
    data.iter()
        .filter_map(|(k, v)| {
            let revision = k.parse::<u32>().ok()?;
            match serde_json::from_str::<BakeEntry>(v) {
                Ok(entry) => Some((revision, entry)),
                Err(e) => {
                    tracing::warn!(revision, "ignoring an unreadable bake record: {e}");
                    None
                }
            }
        })
        .collect()
}

impl BakeStore {
    /// Records in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            maps: ConfigMaps::new(client, namespace),
        }
    }

    /// The records of a release (none when its ConfigMap does not exist).
    pub async fn load(&self, release: &ReleaseKey) -> Result<BTreeMap<u32, BakeEntry>, StoreError> {
        let cm = self.maps.get(&configmap_name(release)).await?;
        Ok(cm
            .and_then(|cm| cm.data)
            .map(|d| parse(&d))
            .unwrap_or_default())
    }

    /// The records of every release in the namespace (one LIST), by release.
    pub async fn all(&self) -> Result<BTreeMap<ReleaseKey, BTreeMap<u32, BakeEntry>>, StoreError> {
        let list = self.maps.labelled(MANAGED_BY).await?;
        Ok(list
            .into_iter()
            // Other records (automatic actions) carry the same label.
            .filter(|cm| {
                cm.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("upgrade-guard.bakes."))
            })
            .filter_map(|cm| Some((release_of(&cm)?, parse(&cm.data.unwrap_or_default()))))
            .collect())
    }

    /// Records a revision's final verdict (creating the ConfigMap on first use) and drops
    /// the oldest records beyond [`MAX_RECORDS`].
    pub async fn record(
        &self,
        release: &ReleaseKey,
        revision: u32,
        entry: &BakeEntry,
    ) -> Result<(), StoreError> {
        let name = configmap_name(release);
        let value = serde_json::to_string(entry).unwrap_or_default();
        let existing = self.maps.get(&name).await?;
        let Some(existing) = existing else {
            let cm: ConfigMap = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(record_labels(release)),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(revision.to_string(), value.clone())])),
                ..Default::default()
            };
            return match self.maps.api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                // Someone created it meanwhile: add our key to theirs.
                Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => {
                    self.patch(&name, revision, &value, &[]).await
                }
                Err(e) => Err(self.maps.error("write", e)),
            };
        };
        let mut revisions: Vec<u32> = existing
            .data
            .unwrap_or_default()
            .keys()
            .filter_map(|k| k.parse().ok())
            .filter(|r| *r != revision)
            .collect();
        revisions.sort_unstable();
        let excess = (revisions.len() + 1).saturating_sub(MAX_RECORDS);
        self.patch(&name, revision, &value, &revisions[..excess])
            .await
    }

    async fn patch(
        &self,
        name: &str,
        revision: u32,
        value: &str,
        drop: &[u32],
    ) -> Result<(), StoreError> {
        let mut data = serde_json::Map::new();
        data.insert(revision.to_string(), serde_json::Value::from(value));
        for r in drop {
            data.insert(r.to_string(), serde_json::Value::Null);
        }
        let patch = serde_json::json!({ "data": data });
        self.maps
            .api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| self.maps.error("write", e))
    }

    /// Records a report's final verdict; `Ok(false)` when its verdict is no judgement
    /// (progressing, inconclusive) and nothing was written.
    pub async fn record_final(&self, report: &Report) -> Result<bool, StoreError> {
        let Some(entry) = BakeEntry::of(report) else {
            return Ok(false);
        };
        self.record(&report.release, report.revision, &entry)
            .await
            .map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unambiguous_even_for_dotted_release_names() {
        assert_eq!(
            configmap_name(&ReleaseKey::new("gim", "gim")),
            "upgrade-guard.bakes.gim.gim"
        );
        assert_eq!(
            configmap_name(&ReleaseKey::new("prod", "a.b")),
            "upgrade-guard.bakes.prod.a.b"
        );
    }

    /// Issue 20.7: a failure judged before the end of the bake leaves a record marked so;
    /// a final verdict, or a verdict that is not a failure, leaves none of that kind.
    #[test]
    fn a_failure_during_the_bake_is_recorded_as_such() {
        use crate::checks::{CheckResult, FailClass};
        use crate::test_support::report;
        use crate::verdict::Verdict;
        let mut r = report(2, Verdict::Failed, 10, 100);
        r.results = vec![
            CheckResult::new("pending_pods", Outcome::Fail, "ImagePullBackOff")
                .on_fail(FailClass::Rollback),
        ];
        r.content = "c2".into();
        let e = BakeEntry::failed_during_bake(&r).unwrap();
        assert!(e.during_bake);
        assert_eq!(
            (e.verdict, e.content.as_str(), e.failed_checks.as_slice()),
            (
                BakeRecord::Failed,
                "c2",
                ["pending_pods".to_string()].as_slice()
            )
        );
        assert!(
            serde_json::to_string(&e)
                .unwrap()
                .contains("\"during_bake\":true")
        );
        let mut done = r.clone();
        done.evaluated_at = done.bake_ends;
        assert_eq!(BakeEntry::failed_during_bake(&done), None);
        assert!(!BakeEntry::of(&done).unwrap().during_bake);
        let healthy = report(2, Verdict::Progressing, 10, 100);
        assert_eq!(BakeEntry::failed_during_bake(&healthy), None);
    }

    #[test]
    fn records_round_trip_and_unreadable_entries_are_skipped() {
        let entry = BakeEntry {
            verdict: BakeRecord::Healthy,
            at: "2026-11-25T12:00:00Z".parse().unwrap(),
            chart: "gim-100.0.116+2900".into(),
            failed_checks: vec![],
            unanswered_checks: vec![],
            content: String::new(),
            install: None,
            during_bake: false,
            accepted: None,
            accepted_over: None,
        };
        let data = BTreeMap::from([
            ("7".to_string(), serde_json::to_string(&entry).unwrap()),
            ("8".to_string(), "{not json".to_string()),
            ("note".to_string(), "{}".to_string()),
        ]);
        assert_eq!(parse(&data), BTreeMap::from([(7, entry.clone())]));
        assert!(
            serde_json::to_string(&entry)
                .unwrap()
                .contains("\"verdict\":\"healthy\"")
        );
    }
}
