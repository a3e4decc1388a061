//! Helm releases as upgrade-guard sees them: identities and statuses, the payload decoder,
//! the per-release revision history that turns label changes into release events, and the
//! choice of a rollback target. Everything here is pure; `crate::tracker` does the I/O.

pub mod decode;
pub mod error;
pub mod event;
pub mod fingerprint;
pub mod history;
pub mod labels;
mod manifest;
pub mod record;
pub mod rollback_target;
pub mod summary;
pub mod unlock;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A release is identified by its namespace and name (Helm's storage namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReleaseKey {
    /// Namespace holding the release's Secrets.
    pub namespace: Arc<str>,
    /// Release name (the `name` label).
    pub name: Arc<str>,
}

impl ReleaseKey {
    /// Builds a key from borrowed parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Name of the Secret Helm's storage driver writes for `revision`.
    pub fn secret_name(&self, revision: u32) -> String {
        format!("sh.helm.release.v1.{}.v{revision}", self.name)
    }
}

impl fmt::Display for ReleaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Helm's release statuses (`pkg/release/status.go`), as written in the `status` label and
/// in `info.status` of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// `unknown`: Helm could not tell.
    Unknown,
    /// `deployed`: the revision currently in use.
    Deployed,
    /// `uninstalled`: removed with `--keep-history`.
    Uninstalled,
    /// `superseded`: an older revision that was deployed before.
    Superseded,
    /// `failed`: the install, upgrade or rollback of this revision failed.
    Failed,
    /// `uninstalling`: `helm uninstall` is under way.
    Uninstalling,
    /// `pending-install`: `helm install` is under way.
    PendingInstall,
    /// `pending-upgrade`: `helm upgrade` is under way.
    PendingUpgrade,
    /// `pending-rollback`: `helm rollback` is under way.
    PendingRollback,
}

impl ReleaseStatus {
    /// Every status, in Helm's order.
    pub const ALL: [ReleaseStatus; 9] = [
        Self::Unknown,
        Self::Deployed,
        Self::Uninstalled,
        Self::Superseded,
        Self::Failed,
        Self::Uninstalling,
        Self::PendingInstall,
        Self::PendingUpgrade,
        Self::PendingRollback,
    ];

    /// The string Helm writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Deployed => "deployed",
            Self::Uninstalled => "uninstalled",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::Uninstalling => "uninstalling",
            Self::PendingInstall => "pending-install",
            Self::PendingUpgrade => "pending-upgrade",
            Self::PendingRollback => "pending-rollback",
        }
    }

    /// `pending-install`, `pending-upgrade` or `pending-rollback`: a Helm operation holds
    /// the release (Helm's `IsPending`).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Self::PendingInstall | Self::PendingUpgrade | Self::PendingRollback
        )
    }

    /// A revision in this status was, or is, running in the cluster.
    pub fn was_deployed(self) -> bool {
        matches!(self, Self::Deployed | Self::Superseded)
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of Helm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown release status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for ReleaseStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_helm_strings() {
        for status in ReleaseStatus::ALL {
            assert_eq!(status.as_str().parse::<ReleaseStatus>(), Ok(status));
        }
        assert!("Deployed".parse::<ReleaseStatus>().is_err());
        assert!("".parse::<ReleaseStatus>().is_err());
    }

    #[test]
    fn only_the_three_pending_statuses_are_pending() {
        let pending: Vec<_> = ReleaseStatus::ALL
            .into_iter()
            .filter(|s| s.is_pending())
            .collect();
        assert_eq!(
            pending,
            [
                ReleaseStatus::PendingInstall,
                ReleaseStatus::PendingUpgrade,
                ReleaseStatus::PendingRollback
            ]
        );
    }

    #[test]
    fn secret_name_follows_helm_storage() {
        assert_eq!(
            ReleaseKey::new("gim", "gim").secret_name(12),
            "sh.helm.release.v1.gim.v12"
        );
    }
}
