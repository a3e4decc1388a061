//! Why a release payload could not be decoded: a bounded reason (a metric label) and a
//! sentence for the operator.

use serde::Serialize;

/// Why a payload could not be decoded; bounded, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeErrorReason {
    /// The Secret has no `release` key or it is empty.
    Empty,
    /// The inner base64 text is invalid.
    Base64,
    /// The gzip stream is invalid (bad header, bad data, bad checksum).
    Gzip,
    /// The gzip stream or JSON document ends early.
    Truncated,
    /// The decompressed payload exceeds the configured cap.
    TooLarge,
    /// The JSON is invalid or has the wrong shape.
    Json,
    /// A required field (name, namespace, version, info.status, chart metadata) is absent.
    MissingField,
    /// The status is not one of Helm's.
    UnknownStatus,
    /// A manifest document is not valid YAML (counted; the revision is still announced,
    /// without that document's object).
    Manifest,
    /// The Secret's labels do not identify a release revision.
    Labels,
    /// The record's name, labels and payload disagree: Helm did not write it as it is
    /// (edited by hand, or forged).
    Inconsistent,
}

impl DecodeErrorReason {
    /// Every reason, for exporting zeroes.
    pub const ALL: [DecodeErrorReason; 11] = [
        Self::Empty,
        Self::Base64,
        Self::Gzip,
        Self::Truncated,
        Self::TooLarge,
        Self::Json,
        Self::MissingField,
        Self::UnknownStatus,
        Self::Manifest,
        Self::Labels,
        Self::Inconsistent,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Base64 => "base64",
            Self::Gzip => "gzip",
            Self::Truncated => "truncated",
            Self::TooLarge => "too_large",
            Self::Json => "json",
            Self::MissingField => "missing_field",
            Self::UnknownStatus => "unknown_status",
            Self::Manifest => "manifest",
            Self::Labels => "labels",
            Self::Inconsistent => "inconsistent",
        }
    }
}

/// A payload that could not be decoded, with the reason and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct DecodeError {
    /// Bounded reason (metric label).
    pub reason: DecodeErrorReason,
    /// What exactly is wrong.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(reason: DecodeErrorReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}
