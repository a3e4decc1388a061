//! Reading a release revision from a Secret's metadata alone (pure): the labels Helm's
//! storage driver writes (`owner=helm`, `name`, `status`, `version`) are enough to track
//! history without fetching payloads.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::decode::{DecodeError, DecodeErrorReason};
use super::{ReleaseKey, ReleaseStatus};

/// Label selector for Helm's release Secrets.
pub const HELM_OWNER_SELECTOR: &str = "owner=helm";
/// Field selector for the Secret type Helm's storage driver uses.
pub const HELM_SECRET_TYPE_SELECTOR: &str = "type=helm.sh/release.v1";

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
