//! Kubernetes API errors sorted into the causes an operator and a retry policy tell apart
//! (pure): refused credentials, RBAC, a missing object, a write that lost a race, throttling,
//! a server fault, a broken connection. Every place that reads a status code asks here.

/// What a failed Kubernetes API call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 401: the credentials were refused.
    Unauthorized,
    /// 403: RBAC does not allow the call.
    Forbidden,
    /// 404: the object (or its namespace) does not exist.
    NotFound,
    /// 409: an optimistic-concurrency write lost to another writer, or the object exists.
    Conflict,
    /// 429: the API server asked to slow down.
    Throttled,
    /// 5xx from the API server.
    Server,
    /// The connection failed (no answer at all).
    Connection,
    /// Anything else (another status, a body that does not decode, ...).
    Other,
}

impl ApiErrorKind {
    /// The kind of `e`.
    pub fn of(e: &kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => match s.code {
                401 => Self::Unauthorized,
                403 => Self::Forbidden,
                404 => Self::NotFound,
                409 => Self::Conflict,
                429 => Self::Throttled,
                500..=599 => Self::Server,
                _ => Self::Other,
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
                Self::Connection
            }
            _ => Self::Other,
        }
    }

    /// Refused credentials or RBAC: retrying cannot help until someone changes them.
    pub fn is_permission(self) -> bool {
        matches!(self, Self::Unauthorized | Self::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("x", "y")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn status_codes_become_causes() {
        let cases = [
            (401, ApiErrorKind::Unauthorized),
            (403, ApiErrorKind::Forbidden),
            (404, ApiErrorKind::NotFound),
            (409, ApiErrorKind::Conflict),
            (429, ApiErrorKind::Throttled),
            (503, ApiErrorKind::Server),
            (422, ApiErrorKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(ApiErrorKind::of(&api(code)), kind, "{code}");
        }
        assert!(ApiErrorKind::Forbidden.is_permission());
        assert!(!ApiErrorKind::Conflict.is_permission());
    }
}
