//! Why a command could not do its job, and the exit code of each cause: verdicts use 0–5,
//! errors the BSD `sysexits` codes, so a script never mistakes "could not judge" for a
//! verdict.

use crate::api_error::ApiErrorKind;

/// Exit codes. Verdicts use 0–5; errors use the BSD `sysexits` codes, so a script never
/// mistakes "could not judge because the cluster was unreachable" for a verdict.
pub mod exit {
    /// The revision is healthy (bake passed).
    pub const HEALTHY: i32 = 0;
    /// The revision failed: an action is recommended.
    pub const FAILED: i32 = 1;
    /// The revision cannot be judged (monitoring error or no data).
    pub const INCONCLUSIVE: i32 = 2;
    /// Still inside the bake window, nothing wrong so far.
    pub const PROGRESSING: i32 = 3;
    /// The bake passed with warnings.
    pub const DEGRADED: i32 = 4;
    /// The release was uninstalled: nothing to judge.
    pub const UNINSTALLED: i32 = 5;
    /// Bad command-line arguments (EX_USAGE).
    pub const USAGE: i32 = 64;
    /// The release's payload cannot be decoded (EX_DATAERR).
    pub const DATA: i32 = 65;
    /// The release does not exist (EX_NOINPUT).
    pub const NO_RELEASE: i32 = 66;
    /// The cluster cannot be reached or the API failed (EX_UNAVAILABLE).
    pub const UNAVAILABLE: i32 = 69;
    /// An internal error (EX_SOFTWARE).
    pub const SOFTWARE: i32 = 70;
    /// The API refused the request: credentials or RBAC (EX_NOPERM).
    pub const NO_PERMISSION: i32 = 77;
    /// The configuration file or kubeconfig cannot be used (EX_CONFIG).
    pub const CONFIG: i32 = 78;
    /// `run` stopped by a second SIGTERM or SIGINT while it drained (128 + SIGTERM).
    pub const SIGNALLED: i32 = 143;
}

/// Why a command could not do its job; each cause has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration file is missing or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The kubeconfig cannot be read or used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `prometheus.url` cannot be used.
    #[error(transparent)]
    Prometheus(#[from] crate::gather::prometheus::ClientError),
    /// The API server did not answer, or answered with an error.
    #[error("the Kubernetes API server: {0}")]
    Cluster(#[source] kube::Error),
    /// The release has no revision in the namespace.
    #[error("release {release:?} not found in namespace {namespace:?}")]
    ReleaseNotFound {
        /// Release name.
        release: String,
        /// Namespace searched.
        namespace: String,
    },
    /// The latest revision cannot be decoded.
    #[error("cannot judge revision {revision} of {release}: {reason}")]
    Undecodable {
        /// `namespace/name`.
        release: String,
        /// The revision.
        revision: u32,
        /// Why.
        reason: String,
    },
    /// The arguments do not name something that exists.
    #[error("{0}")]
    Usage(String),
    /// The daemon named with `--url` did not answer as expected.
    #[error("the upgrade-guard daemon: {what}: {source}")]
    Daemon {
        /// What was asked of it (and what went wrong).
        what: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A service the command needs (Prometheus) does not answer.
    #[error("{0}")]
    Unavailable(String),
    /// upgrade-guard's own records cannot be read or written.
    #[error(transparent)]
    Records(#[from] crate::records::StoreError),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The documented exit code of this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) | Self::Kubeconfig(_) | Self::Prometheus(_) => exit::CONFIG,
            Self::Cluster(e) if ApiErrorKind::of(e).is_permission() => exit::NO_PERMISSION,
            Self::Cluster(_) => exit::UNAVAILABLE,
            Self::ReleaseNotFound { .. } => exit::NO_RELEASE,
            Self::Undecodable { .. } => exit::DATA,
            Self::Usage(_) => exit::USAGE,
            Self::Daemon { .. } | Self::Unavailable(_) => exit::UNAVAILABLE,
            Self::Records(crate::records::StoreError::Forbidden { .. }) => exit::NO_PERMISSION,
            Self::Records(_) => exit::UNAVAILABLE,
            Self::Other(_) => exit::SOFTWARE,
        }
    }
}

/// A kubeconfig file that cannot be read, with its path.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct KubeconfigFile {
    /// The file.
    pub path: std::path::PathBuf,
    /// Why.
    #[source]
    pub source: kube::config::KubeconfigError,
}

impl From<kube::Error> for CliError {
    fn from(e: kube::Error) -> Self {
        Self::Cluster(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn errors_say_what_and_keep_their_cause() {
        let missing = kube::config::Kubeconfig::read_from("/nonexistent-kubeconfig").unwrap_err();
        let e = CliError::Kubeconfig(Box::new(KubeconfigFile {
            path: "/nonexistent-kubeconfig".into(),
            source: missing,
        }));
        assert!(
            e.to_string()
                .starts_with("kubeconfig: cannot read /nonexistent-kubeconfig: "),
            "{e}"
        );
        let file = e.source().expect("the file's error");
        assert!(file.source().is_some(), "and the reader's below it");
        assert_eq!(e.exit_code(), exit::CONFIG);
    }
}
