//! Release events: what happened to a release, classified from its revision history and the
//! decoded payload of the revision concerned (pure).

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::labels::Storage;
use super::summary::{ReleaseSummary, rollback_target_in};
use super::{ReleaseKey, ReleaseStatus};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleaseEventKind {
    /// A first revision (or one after an uninstall kept in history) was deployed.
    Installed,
    /// Such an install failed.
    InstallFailed,
    /// A new revision was deployed over the one running before.
    Upgraded {
        /// Revision that ran before.
        from: u32,
        /// The new revision.
        to: u32,
    },
    /// A new revision failed to deploy; `from` keeps running.
    UpgradeFailed {
        /// Revision that ran before, when known.
        from: Option<u32>,
        /// The failed revision.
        to: u32,
    },
    /// `helm rollback` deployed a new revision with the content of `target`.
    RolledBack {
        /// The new revision written by the rollback.
        to: u32,
        /// The revision rolled back to.
        target: u32,
    },
    /// `helm rollback` failed.
    RollbackFailed {
        /// The failed revision written by the rollback.
        to: u32,
        /// The revision it tried to roll back to, when known.
        target: Option<u32>,
    },
    /// The release was uninstalled.
    Uninstalled {
        /// `true` for `--keep-history` (status `uninstalled`), `false` when its Secrets are gone.
        kept_history: bool,
    },
    /// The newest revision has been `pending-*` for longer than the configured threshold:
    /// a Helm process was probably killed and the release is locked.
    StuckPending {
        /// The pending status.
        status: ReleaseStatus,
        /// Since when (the revision Secret's creation).
        since: Timestamp,
    },
    /// Already settled when watching started, and outside the window in which its evaluation
    /// would still run: nothing happened, the release is known (the daemon lists every
    /// release after a restart).
    Listed,
    /// The revision's record could not be read or decoded, so what happened to it is not
    /// known yet. A read that keeps failing is still retried (the event for the revision
    /// follows once it succeeds); a payload that cannot be decoded is not.
    Unreadable {
        /// Bounded cause (`forbidden`, `timeout`, `gzip`, ...), as in the metrics.
        reason: &'static str,
        /// What went wrong, in words.
        detail: String,
        /// Whether reading is still retried.
        retrying: bool,
    },
}

impl ReleaseEventKind {
    /// The kind without its details (log field, metric label, the daemon's view).
    pub fn name(&self) -> EventName {
        match self {
            Self::Installed => EventName::Installed,
            Self::InstallFailed => EventName::InstallFailed,
            Self::Upgraded { .. } => EventName::Upgraded,
            Self::UpgradeFailed { .. } => EventName::UpgradeFailed,
            Self::RolledBack { .. } => EventName::RolledBack,
            Self::RollbackFailed { .. } => EventName::RollbackFailed,
            Self::Uninstalled { .. } => EventName::Uninstalled,
            Self::StuckPending { .. } => EventName::StuckPending,
            Self::Unreadable { .. } => EventName::Unreadable,
            Self::Listed => EventName::Listed,
        }
    }
}

/// What happened to a revision, as a bounded word: the kind of a release event without its
/// details, or `restored` for what the daemon rebuilt from its records after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    /// [`ReleaseEventKind::Installed`].
    Installed,
    /// [`ReleaseEventKind::InstallFailed`].
    InstallFailed,
    /// [`ReleaseEventKind::Upgraded`].
    Upgraded,
    /// [`ReleaseEventKind::UpgradeFailed`].
    UpgradeFailed,
    /// [`ReleaseEventKind::RolledBack`].
    RolledBack,
    /// [`ReleaseEventKind::RollbackFailed`].
    RollbackFailed,
    /// [`ReleaseEventKind::Uninstalled`].
    Uninstalled,
    /// [`ReleaseEventKind::StuckPending`].
    StuckPending,
    /// [`ReleaseEventKind::Unreadable`].
    Unreadable,
    /// No event: the daemon's view of the revision, restored from its records after a
    /// restart.
    Restored,
    /// [`ReleaseEventKind::Listed`].
    Listed,
}

impl EventName {
    /// The word (`upgraded`, `upgrade_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::InstallFailed => "install_failed",
            Self::Upgraded => "upgraded",
            Self::UpgradeFailed => "upgrade_failed",
            Self::RolledBack => "rolled_back",
            Self::RollbackFailed => "rollback_failed",
            Self::Uninstalled => "uninstalled",
            Self::StuckPending => "stuck_pending",
            Self::Unreadable => "unreadable",
            Self::Restored => "restored",
            Self::Listed => "listed",
        }
    }
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One release event, with the summary of the revision it is about (absent when the
/// release's records are gone or the revision could not be read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseEvent {
    /// The release.
    pub release: ReleaseKey,
    /// The revision the event is about.
    pub revision: u32,
    /// That revision's status when the event was decided.
    pub status: ReleaseStatus,
    /// Helm's storage driver holding the release.
    pub storage: Storage,
    /// Announced again after a restart of the tracker because the revision is still inside
    /// its bake window (its start time is the summary's `last_deployed`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// What happened.
    #[serde(flatten)]
    pub kind: ReleaseEventKind,
    /// The decoded revision (no user values).
    pub summary: Option<Arc<ReleaseSummary>>,
}

/// What the history alone says about a revision that needs an event; the payload's
/// description completes it (see [`PendingEvent::complete`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Draft {
    /// The revision reached a settled status (deployed, failed, superseded, uninstalled,
    /// unknown).
    Settled {
        /// Newest revision below it that was deployed (`deployed` or `superseded`).
        last_deployed_before: Option<u32>,
        /// Status of the revision right below it, if any.
        previous_status: Option<ReleaseStatus>,
        /// The revision was seen in `pending-rollback`.
        seen_rolling_back: bool,
    },
    /// The revision has been pending for too long.
    StuckPending {
        /// Since when.
        since: Timestamp,
    },
}

/// A revision to fetch and decode before its event can be emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// The release.
    pub release: ReleaseKey,
    /// The revision to fetch.
    pub revision: u32,
    /// Its status (label) when the event was decided.
    pub status: ReleaseStatus,
    /// Helm's storage driver holding the release.
    pub storage: Storage,
    /// Announced again after a restart, inside its bake window.
    pub resumed: bool,
    /// What the history says.
    pub draft: Draft,
}

impl PendingEvent {
    /// Classifies the event with the decoded payload of the revision.
    pub fn complete(self, summary: Arc<ReleaseSummary>) -> ReleaseEvent {
        let to = self.revision;
        let kind = match self.draft {
            Draft::StuckPending { since } => ReleaseEventKind::StuckPending {
                status: self.status,
                since,
            },
            Draft::Settled {
                last_deployed_before,
                previous_status,
                seen_rolling_back,
            } => {
                let target = rollback_target_in(&summary.description);
                let fresh_install = previous_status.is_none_or(|s| s == ReleaseStatus::Uninstalled);
                // Helm overwrites a failed rollback's description: `Rollback "x" failed:`
                // when applying failed, `Release "x" failed:` when its --wait gave up (an
                // upgrade says `Upgrade "x" failed:`, an install is a fresh install).
                let rollback = target.is_some()
                    || seen_rolling_back
                    || summary.description.starts_with("Rollback \"")
                    || (self.status == ReleaseStatus::Failed
                        && !fresh_install
                        && summary.description.starts_with("Release \""));
                match self.status {
                    ReleaseStatus::Uninstalled => {
                        ReleaseEventKind::Uninstalled { kept_history: true }
                    }
                    ReleaseStatus::Failed if rollback => {
                        ReleaseEventKind::RollbackFailed { to, target }
                    }
                    ReleaseStatus::Failed if fresh_install => ReleaseEventKind::InstallFailed,
                    ReleaseStatus::Failed => ReleaseEventKind::UpgradeFailed {
                        from: last_deployed_before,
                        to,
                    },
                    _ if rollback => match target {
                        Some(target) => ReleaseEventKind::RolledBack { to, target },
                        None => ReleaseEventKind::Upgraded {
                            from: last_deployed_before.unwrap_or(to.saturating_sub(1)),
                            to,
                        },
                    },
                    _ if fresh_install => ReleaseEventKind::Installed,
                    _ => ReleaseEventKind::Upgraded {
                        from: last_deployed_before.unwrap_or(to.saturating_sub(1)),
                        to,
                    },
                }
            }
        };
        ReleaseEvent {
            release: self.release,
            revision: to,
            status: self.status,
            storage: self.storage,
            resumed: self.resumed,
            kind,
            summary: Some(summary),
        }
    }

    /// The event saying this revision could not be read or decoded.
    pub fn unreadable(&self, reason: &'static str, detail: String, retrying: bool) -> ReleaseEvent {
        ReleaseEvent {
            release: self.release.clone(),
            revision: self.revision,
            status: self.status,
            storage: self.storage,
            resumed: self.resumed,
            kind: ReleaseEventKind::Unreadable {
                reason,
                detail,
                retrying,
            },
            summary: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::summary::ChartRef;

    fn summary(revision: u32, status: ReleaseStatus, description: &str) -> Arc<ReleaseSummary> {
        Arc::new(ReleaseSummary {
            name: "gim".into(),
            namespace: "gim".into(),
            revision,
            status,
            description: description.into(),
            first_deployed: None,
            last_deployed: None,
            recorded: None,
            chart: ChartRef {
                name: "gim".into(),
                version: "100.0.116+2900".into(),
                app_version: None,
            },
            hooks: vec![],
            workloads: vec![],
            manifest_problems: vec![],
            fingerprint: Default::default(),
        })
    }

    fn settled(
        revision: u32,
        status: ReleaseStatus,
        last_deployed_before: Option<u32>,
        previous_status: Option<ReleaseStatus>,
        seen_rolling_back: bool,
        description: &str,
    ) -> ReleaseEventKind {
        PendingEvent {
            release: ReleaseKey::new("gim", "gim"),
            revision,
            status,
            storage: Storage::Secret,
            resumed: false,
            draft: Draft::Settled {
                last_deployed_before,
                previous_status,
                seen_rolling_back,
            },
        }
        .complete(summary(revision, status, description))
        .kind
    }

    use ReleaseStatus::*;

    #[test]
    fn classification_table() {
        let cases = [
            (
                settled(1, Deployed, None, None, false, "Install complete"),
                ReleaseEventKind::Installed,
            ),
            (
                settled(1, Failed, None, None, false, "Release \"gim\" failed"),
                ReleaseEventKind::InstallFailed,
            ),
            (
                settled(
                    5,
                    Deployed,
                    None,
                    Some(Uninstalled),
                    false,
                    "Install complete",
                ),
                ReleaseEventKind::Installed,
            ),
            (
                settled(
                    2,
                    Deployed,
                    Some(1),
                    Some(Superseded),
                    false,
                    "Upgrade complete",
                ),
                ReleaseEventKind::Upgraded { from: 1, to: 2 },
            ),
            (
                settled(
                    4,
                    Deployed,
                    Some(2),
                    Some(Failed),
                    false,
                    "Upgrade complete",
                ),
                ReleaseEventKind::Upgraded { from: 2, to: 4 },
            ),
            (
                settled(
                    3,
                    Failed,
                    Some(2),
                    Some(Deployed),
                    false,
                    "Upgrade \"gim\" failed: timed out",
                ),
                ReleaseEventKind::UpgradeFailed {
                    from: Some(2),
                    to: 3,
                },
            ),
            (
                settled(4, Deployed, Some(2), Some(Failed), true, "Rollback to 2"),
                ReleaseEventKind::RolledBack { to: 4, target: 2 },
            ),
            (
                settled(
                    4,
                    Failed,
                    Some(2),
                    Some(Failed),
                    true,
                    "Rollback \"gim\" failed: boom",
                ),
                ReleaseEventKind::RollbackFailed {
                    to: 4,
                    target: None,
                },
            ),
            (
                // A rollback whose --wait gave up: Helm writes `Release "x" failed`.
                settled(
                    3,
                    Failed,
                    Some(2),
                    Some(Deployed),
                    false,
                    "Release \"gim\" failed: context deadline exceeded",
                ),
                ReleaseEventKind::RollbackFailed {
                    to: 3,
                    target: None,
                },
            ),
            (
                // A rollback we did not see pending is still told by its description.
                settled(
                    4,
                    Failed,
                    Some(2),
                    Some(Failed),
                    false,
                    "Rollback \"gim\" failed: boom",
                ),
                ReleaseEventKind::RollbackFailed {
                    to: 4,
                    target: None,
                },
            ),
            (
                settled(
                    4,
                    Uninstalled,
                    Some(3),
                    Some(Superseded),
                    false,
                    "Uninstallation complete",
                ),
                ReleaseEventKind::Uninstalled { kept_history: true },
            ),
            (
                // Seen only after it was superseded (missed while disconnected): still an upgrade.
                settled(
                    3,
                    Superseded,
                    Some(2),
                    Some(Superseded),
                    false,
                    "Upgrade complete",
                ),
                ReleaseEventKind::Upgraded { from: 2, to: 3 },
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn rollback_descriptions() {
        assert_eq!(rollback_target_in("Rollback to 7"), Some(7));
        assert_eq!(rollback_target_in("Rollback to x"), None);
        // A rollback upgrade-guard unlocked keeps Helm's words first.
        assert_eq!(
            rollback_target_in("Rollback to 12 interrupted: unlocked by upgrade-guard"),
            Some(12)
        );
        assert_eq!(rollback_target_in("Upgrade complete"), None);
    }

    #[test]
    fn stuck_pending_keeps_status_and_since() {
        let since: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let event = PendingEvent {
            release: ReleaseKey::new("gim", "gim"),
            revision: 3,
            status: PendingUpgrade,
            storage: Storage::Secret,
            resumed: false,
            draft: Draft::StuckPending { since },
        }
        .complete(summary(3, PendingUpgrade, "Preparing upgrade"));
        assert_eq!(
            event.kind,
            ReleaseEventKind::StuckPending {
                status: PendingUpgrade,
                since
            }
        );
        assert_eq!(event.kind.name().as_str(), "stuck_pending");
    }
}
