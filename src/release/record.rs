//! A release's history as rows (pure): each revision's status and decoded summary, or why it
//! could not be decoded; which revisions are rollbacks and to what, and which revision a
//! rollback created.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::ReleaseStatus;
use super::decode::{DecodeLimits, decode_release};
use super::labels::{Storage, disagreement, revision_from_meta};
use super::summary::ReleaseSummary;

/// One row of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// Revision number.
    pub revision: u32,
    /// Helm's storage driver holding the revision (shown when not `secret`).
    #[serde(skip_serializing_if = "is_secret")]
    pub storage: Storage,
    /// Status from the payload (or the label when the payload cannot be decoded).
    pub status: ReleaseStatus,
    /// The decoded revision, or why it could not be decoded.
    #[serde(flatten)]
    pub detail: RowDetail,
}

/// What is known of a revision beyond its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RowDetail {
    /// Decoded.
    Decoded(Box<ReleaseSummary>),
    /// Not decodable.
    Undecodable {
        /// The reason, in words.
        decode_error: String,
    },
}

fn is_secret(s: &Storage) -> bool {
    *s == Storage::Secret
}

/// A history row from a record's metadata and payload; `None` (with a warning) when its
/// labels name no revision.
pub fn row_from(metadata: &ObjectMeta, storage: Storage, data: &[u8]) -> Option<HistoryRow> {
    let meta = match revision_from_meta(metadata) {
        Ok(meta) => meta,
        Err(e) => {
            tracing::warn!("skipping a Helm release record: {e}");
            return None;
        }
    };
    let decoded = decode_release(data, DecodeLimits::default()).and_then(|summary| {
        match disagreement(metadata, &meta, &summary) {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    });
    Some(match decoded {
        Ok(summary) => HistoryRow {
            revision: meta.revision,
            storage,
            status: summary.status,
            detail: RowDetail::Decoded(Box::new(ReleaseSummary {
                recorded: metadata.creation_timestamp.as_ref().map(|t| t.0),
                ..summary
            })),
        },
        Err(e) => HistoryRow {
            revision: meta.revision,
            storage,
            status: meta.status,
            detail: RowDetail::Undecodable {
                decode_error: format!("cannot decode: {e}"),
            },
        },
    })
}

/// Rollback revisions and the revision each rolled back to ("Rollback to N").
pub fn rollbacks_of(rows: &[HistoryRow]) -> BTreeMap<u32, u32> {
    rows.iter()
        .filter_map(|r| match &r.detail {
            RowDetail::Decoded(s) => s.rollback_to().map(|t| (r.revision, t)),
            RowDetail::Undecodable { .. } => None,
        })
        .collect()
}

/// The revision a rollback of `bad` to `target` wrote, whatever Helm called it: the newest
/// `Rollback to <target>` after `bad`; else the revision right after `bad` when it can only
/// be a rollback: `pending-rollback`, or `failed` with the words Helm writes over a rollback
/// it gave up on (`Rollback "x" failed: ...` when applying failed, `Release "x" failed: ...`
/// when its `--wait` did; an upgrade that fails says `Upgrade "x" failed`). `bad` was the
/// latest revision when the rollback started, so the next one is the rollback's.
pub fn rollback_revision(
    rows: &[HistoryRow],
    bad: u32,
    target: u32,
) -> Option<(u32, ReleaseStatus)> {
    let rollbacks = rollbacks_of(rows);
    let described = rows
        .iter()
        .filter(|r| r.revision > bad && rollbacks.get(&r.revision) == Some(&target))
        .map(|r| (r.revision, r.status))
        .next_back();
    described.or_else(|| {
        let next = rows
            .iter()
            .filter(|r| r.revision > bad)
            .min_by_key(|r| r.revision)?;
        let gave_up = match &next.detail {
            RowDetail::Decoded(s) => {
                s.status == ReleaseStatus::Failed
                    && (s.description.starts_with("Rollback \"")
                        || s.description.starts_with("Release \""))
            }
            RowDetail::Undecodable { .. } => false,
        };
        (next.status == ReleaseStatus::PendingRollback || gave_up)
            .then_some((next.revision, next.status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::row;

    #[test]
    fn the_revision_a_rollback_wrote_is_found_whatever_helm_called_it() {
        use ReleaseStatus::*;
        let base = [
            row(1, Superseded, "Install complete"),
            row(2, Failed, "Upgrade \"app\" failed: x"),
        ];
        let with = |next: HistoryRow| {
            let mut rows = base.to_vec();
            rows.push(next);
            rows
        };
        let cases = [
            (row(3, Deployed, "Rollback to 1"), Some((3, Deployed))),
            (
                row(3, PendingRollback, "Preparing rollback"),
                Some((3, PendingRollback)),
            ),
            // Helm gave up waiting, or could not apply: its own words, no target.
            (
                row(
                    3,
                    Failed,
                    "Release \"app\" failed: context deadline exceeded",
                ),
                Some((3, Failed)),
            ),
            (
                row(3, Failed, "Rollback \"app\" failed: boom"),
                Some((3, Failed)),
            ),
            // Somebody else's revision, or a rollback elsewhere.
            (row(3, Deployed, "Upgrade complete"), None),
            (row(3, Failed, "Upgrade \"app\" failed: x"), None),
            (row(3, Deployed, "Rollback to 2"), None),
        ];
        for (next, want) in cases {
            let d = format!("{:?}", next.detail);
            assert_eq!(rollback_revision(&with(next), 2, 1), want, "{d}");
        }
        assert_eq!(rollback_revision(&base, 2, 1), None, "nothing written");
        // A later rollback to the target is the one described.
        let rows = [
            base.to_vec(),
            vec![
                row(3, Failed, "Release \"app\" failed: x"),
                row(4, Deployed, "Rollback to 1"),
            ],
        ]
        .concat();
        assert_eq!(rollback_revision(&rows, 2, 1), Some((4, Deployed)));
    }
}
