//! A release's history as rows (pure): each revision's status and decoded summary, or why it
//! could not be decoded; which revisions are rollbacks and to what, and which revision a
//! rollback created.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::ReleaseStatus;
use super::decode::{DecodeLimits, decode_release};
use super::labels::{Storage, revision_from_meta};
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
    Some(match decode_release(data, DecodeLimits::default()) {
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

/// The revision a rollback to `target` created after `bad`, from the history.
pub fn rollback_revision(
    rows: &[HistoryRow],
    bad: u32,
    target: u32,
) -> Option<(u32, ReleaseStatus)> {
    let rollbacks = rollbacks_of(rows);
    rows.iter()
        .filter(|r| r.revision > bad && rollbacks.get(&r.revision) == Some(&target))
        .map(|r| (r.revision, r.status))
        .next_back()
}
