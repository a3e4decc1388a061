//! Why reading a revision's record failed: the bounded reasons of the fetch metrics and logs.

use crate::api_error::ApiErrorKind;

/// Why reading a revision's record failed (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchErrorReason {
    /// No answer within the fetch deadline.
    Timeout,
    /// 401: the credentials were refused.
    Unauthorized,
    /// 403: RBAC does not allow `get` on the record.
    Forbidden,
    /// 429: the API server asked to slow down.
    Throttled,
    /// 5xx from the API server.
    ServerError,
    /// The connection failed.
    Connection,
    /// Any other error.
    Other,
}

impl FetchErrorReason {
    /// Every reason (exported from the start).
    pub const ALL: [FetchErrorReason; 7] = [
        Self::Timeout,
        Self::Unauthorized,
        Self::Forbidden,
        Self::Throttled,
        Self::ServerError,
        Self::Connection,
        Self::Other,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Connection => "connection",
            Self::Other => "other",
        }
    }

    /// Retrying soon cannot help: someone must change credentials or RBAC first.
    pub fn needs_an_operator(self) -> bool {
        matches!(self, Self::Unauthorized | Self::Forbidden)
    }

    /// The reason of a failed read.
    pub fn of(e: &kube::Error) -> Self {
        match ApiErrorKind::of(e) {
            ApiErrorKind::Unauthorized => Self::Unauthorized,
            ApiErrorKind::Forbidden => Self::Forbidden,
            ApiErrorKind::Throttled => Self::Throttled,
            ApiErrorKind::Server => Self::ServerError,
            ApiErrorKind::Connection => Self::Connection,
            ApiErrorKind::NotFound | ApiErrorKind::Conflict | ApiErrorKind::Other => Self::Other,
        }
    }
}
