//! Reading a release revision from a record's metadata alone (pure): the labels Helm's
//! storage driver writes (`owner=helm`, `name`, `status`, `version`) are enough to track
//! history without fetching payloads.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::error::{DecodeError, DecodeErrorReason};
use super::summary::ReleaseSummary;
use super::{ReleaseKey, ReleaseStatus};

/// Label selector for Helm's release Secrets and ConfigMaps.
pub const HELM_OWNER_SELECTOR: &str = "owner=helm";
/// Field selector for the Secret type Helm's storage driver uses.
pub const HELM_SECRET_TYPE_SELECTOR: &str = "type=helm.sh/release.v1";

/// Where Helm keeps release records: its `secret` (default) or `configmap` storage driver
/// (`HELM_DRIVER`). Both write one object per revision, named
/// `sh.helm.release.v1.<release>.v<revision>`, labelled `owner=helm`, `name`, `status`,
/// `version`, with the encoded release in `data.release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Secrets of type `helm.sh/release.v1` (Helm's default).
    Secret,
    /// ConfigMaps (`HELM_DRIVER=configmap`).
    #[serde(rename = "configmap")]
    ConfigMap,
}

impl Storage {
    /// The `HELM_DRIVER` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configmap",
        }
    }

    /// The Kubernetes kind of the records.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        }
    }

    /// The field selector that narrows a listing to release records (none for ConfigMaps,
    /// whose records are told by their labels alone).
    pub fn field_selector(self) -> Option<&'static str> {
        match self {
            Self::Secret => Some(HELM_SECRET_TYPE_SELECTOR),
            Self::ConfigMap => None,
        }
    }
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One release revision as told by a Secret's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionMeta {
    /// The release.
    pub key: ReleaseKey,
    /// Revision number (`version` label).
    pub revision: u32,
    /// Status (`status` label).
    pub status: ReleaseStatus,
    /// When the Secret was created (Kubernetes `creationTimestamp`).
    pub created: Option<Timestamp>,
    /// A hash of the object's UID (0 when absent): a revision number reused by a new
    /// install after an uninstall has another UID.
    pub uid: u64,
}

fn uid_hash(uid: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(uid) = uid.filter(|u| !u.is_empty()) else {
        return 0;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    h.finish().max(1)
}

/// Reads the revision from a release Secret's metadata. An error names what is wrong.
pub fn revision_from_meta(meta: &ObjectMeta) -> Result<RevisionMeta, DecodeError> {
    let bad = |detail: String| DecodeError::new(DecodeErrorReason::Labels, detail);
    let secret = meta.name.as_deref().unwrap_or("<unnamed>");
    let namespace = meta
        .namespace
        .as_deref()
        .ok_or_else(|| bad(format!("Secret {secret} has no namespace")))?;
    let labels = meta
        .labels
        .as_ref()
        .ok_or_else(|| bad(format!("Secret {namespace}/{secret} has no labels")))?;
    let label = |key: &str| {
        labels
            .get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("Secret {namespace}/{secret} has no {key:?} label")))
    };
    let name = label("name")?;
    let revision = label("version")?.parse::<u32>().map_err(|_| {
        bad(format!(
            "Secret {namespace}/{secret}: label version={:?} is not a revision number",
            labels
                .get("version")
                .map(String::as_str)
                .unwrap_or_default()
        ))
    })?;
    let status = label("status")?
        .parse::<ReleaseStatus>()
        .map_err(|e| bad(format!("Secret {namespace}/{secret}: {e}")))?;
    Ok(RevisionMeta {
        key: ReleaseKey::new(namespace, name),
        revision,
        status,
        created: meta.creation_timestamp.as_ref().map(|t| t.0),
        uid: uid_hash(meta.uid.as_deref()),
    })
}

/// Where a release record's object name, labels and payload disagree, in words: Helm
/// writes all three from one release, so a disagreement means the record was edited by
/// hand or forged (a "deployed" revision written to become a rollback target). `None`
/// when they agree.
pub fn disagreement(
    object: &ObjectMeta,
    meta: &RevisionMeta,
    summary: &ReleaseSummary,
) -> Option<DecodeError> {
    let object_name = object.name.as_deref().unwrap_or("<unnamed>");
    let expected = meta.key.secret_name(meta.revision);
    let mut found = Vec::new();
    if object_name != expected {
        found.push(format!(
            "its labels name revision {} of {}, which Helm stores as {expected}",
            meta.revision, meta.key.name
        ));
    }
    if summary.name != *meta.key.name || summary.namespace != *meta.key.namespace {
        found.push(format!(
            "its payload is release {}/{} and its labels say {}",
            summary.namespace, summary.name, meta.key
        ));
    }
    if summary.revision != meta.revision {
        found.push(format!(
            "its payload is revision {} and its labels say {}",
            summary.revision, meta.revision
        ));
    }
    if summary.status != meta.status {
        found.push(format!(
            "its payload says {} and its status label {}",
            summary.status, meta.status
        ));
    }
    (!found.is_empty()).then(|| {
        DecodeError::new(
            DecodeErrorReason::Inconsistent,
            format!(
                "the record {}/{object_name} is not as Helm writes it ({}): edited by hand or forged; it is refused as history and as a rollback target",
                meta.key.namespace,
                found.join("; ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("sh.helm.release.v1.gim.v3".into()),
            namespace: Some("gim".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    /// Issue 20.6: a record whose name, labels and payload disagree is refused, in words.
    #[test]
    fn a_record_whose_name_labels_and_payload_disagree_is_refused() {
        let object = meta(&[
            ("owner", "helm"),
            ("name", "gim"),
            ("status", "deployed"),
            ("version", "3"),
        ]);
        let m = revision_from_meta(&object).unwrap();
        let mut s = crate::test_support::summary(&[], &[]);
        s.name = "gim".into();
        s.namespace = "gim".into();
        s.revision = 3;
        assert_eq!(disagreement(&object, &m, &s), None);
        type Change = fn(&mut ReleaseSummary, &mut ObjectMeta);
        let cases: [(&str, Change); 5] = [
            ("its payload is revision 9", |s, _| s.revision = 9),
            ("its payload says failed", |s, _| {
                s.status = ReleaseStatus::Failed;
            }),
            ("its payload is release gim/other", |s, _| {
                s.name = "other".into();
            }),
            ("its payload is release prod/gim", |s, _| {
                s.namespace = "prod".into();
            }),
            ("which Helm stores as sh.helm.release.v1.gim.v3", |_, o| {
                o.name = Some("sh.helm.release.v1.gim.v4".into());
            }),
        ];
        for (words, change) in cases {
            let (mut s, mut o) = (s.clone(), object.clone());
            change(&mut s, &mut o);
            let e = disagreement(&o, &m, &s).expect(words);
            assert_eq!(e.reason, DecodeErrorReason::Inconsistent);
            assert!(e.detail.contains(words), "{words}: {}", e.detail);
            assert!(e.detail.contains("forged"), "{}", e.detail);
        }
    }

    #[test]
    fn reads_helm_labels() {
        let m = meta(&[
            ("owner", "helm"),
            ("name", "gim"),
            ("status", "pending-upgrade"),
            ("version", "3"),
        ]);
        let r = revision_from_meta(&m).unwrap();
        assert_eq!(r.key, ReleaseKey::new("gim", "gim"));
        assert_eq!(r.revision, 3);
        assert_eq!(r.status, ReleaseStatus::PendingUpgrade);
    }

    #[test]
    fn rejects_missing_or_malformed_labels_with_a_reason() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("name", "gim"), ("status", "deployed")],
                "no \"version\" label",
            ),
            (
                &[("name", "gim"), ("status", "deployed"), ("version", "x")],
                "is not a revision number",
            ),
            (
                &[("name", "gim"), ("status", "weird"), ("version", "1")],
                "unknown release status",
            ),
            (
                &[("status", "deployed"), ("version", "1")],
                "no \"name\" label",
            ),
        ];
        for (labels, expected) in cases {
            let err = revision_from_meta(&meta(labels)).unwrap_err();
            assert_eq!(err.reason, DecodeErrorReason::Labels);
            assert!(
                err.detail.contains(expected),
                "{} lacks {expected}",
                err.detail
            );
            assert!(
                err.detail.contains("gim/sh.helm.release.v1.gim.v3"),
                "{}",
                err.detail
            );
        }
    }
}
