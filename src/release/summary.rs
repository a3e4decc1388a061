//! What upgrade-guard keeps of one release revision (pure): chart, status, description, hooks
//! and the workloads of its manifest, never the user's values; and what Helm's description
//! says about the operation that wrote it.

use jiff::Timestamp;
use serde::Serialize;

use super::ReleaseStatus;
use super::fingerprint::ValuesDigest;

/// What upgrade-guard keeps of one release revision. Holds no user values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseSummary {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Revision number (Helm's `version`).
    pub revision: u32,
    /// Status recorded in the payload.
    pub status: ReleaseStatus,
    /// Helm's description ("Upgrade complete", "Rollback to 3", ...).
    pub description: String,
    /// When the release was first deployed.
    pub first_deployed: Option<Timestamp>,
    /// When this revision was deployed, by the clock of the machine that ran helm.
    pub last_deployed: Option<Timestamp>,
    /// When its record was created, by the API server's clock (the record's
    /// `creationTimestamp`; helm writes it as the upgrade starts). Not in the payload: set
    /// by whoever read the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Timestamp>,
    /// Chart identity.
    pub chart: ChartRef,
    /// Hooks with the result of their last run.
    pub hooks: Vec<Hook>,
    /// Deployments, StatefulSets, DaemonSets and Jobs named in the manifest.
    pub workloads: Vec<ObjectRef>,
    /// Manifest documents that are not valid YAML, in words (which document, where): the
    /// summary lacks their objects. Never quotes the document's content.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifest_problems: Vec<String>,
    /// What identifies its content and values without keeping them. Never shown.
    #[serde(skip)]
    pub fingerprint: Fingerprint,
}

/// What identifies a revision's content and values (see [`super::fingerprint`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 (hex) of what `helm rollback` to it applies; empty when unknown.
    pub content: String,
    /// A keyed hash of its user values, comparable inside this process only.
    pub values: ValuesDigest,
}

/// Chart name and versions from `chart.metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartRef {
    /// Chart name.
    pub name: String,
    /// Chart version.
    pub version: String,
    /// Version of the packaged application, when the chart declares one.
    pub app_version: Option<String>,
}

/// A Helm hook and its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// Name of the hook's object.
    pub name: String,
    /// Kind of the hook's object (`Job`, `Pod`, ...).
    pub kind: String,
    /// Namespace of the hook's object (the release namespace unless the manifest says).
    pub namespace: String,
    /// Events the hook runs on (`pre-upgrade`, `post-install`, ...).
    pub events: Vec<String>,
    /// Phase of the last run; `None` when the hook never ran.
    pub last_run: Option<HookPhase>,
}

impl Hook {
    /// The hook runs before Helm applies the manifest of the operation that wrote `revision`
    /// (`pre-install` for an install, `pre-rollback` for a rollback, `pre-upgrade` otherwise):
    /// when it fails, the new manifest was never applied.
    pub fn runs_before_apply(&self, operation: Operation) -> bool {
        let event = match operation {
            Operation::Install => "pre-install",
            Operation::Upgrade => "pre-upgrade",
            Operation::Rollback => "pre-rollback",
        };
        self.events.iter().any(|e| e == event)
    }
}

/// The Helm operation that wrote a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `helm install` (revision 1).
    Install,
    /// `helm upgrade`.
    Upgrade,
    /// `helm rollback` (description `Rollback to N`).
    Rollback,
}

impl Operation {
    /// The hook event suffix Helm uses (`install`, `upgrade`, `rollback`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Upgrade => "upgrade",
            Self::Rollback => "rollback",
        }
    }
}

/// A difference between helm's clock and the API server's below this is not worth a word
/// (the record is written a moment after helm stamps `last_deployed`).
pub const CLOCK_SKEW_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(30);

impl ReleaseSummary {
    /// When the upgrade started: helm's `last_deployed` (to the nanosecond) while it agrees
    /// with the API server's clock (the record's creation, kept to the second) within
    /// [`CLOCK_SKEW_TOLERANCE`]; the record's creation when helm's clock is off (a laptop
    /// or CI runner minutes behind or ahead) or `last_deployed` is unknown.
    pub fn started_at(&self) -> Option<Timestamp> {
        match self.clock_skew() {
            Some(_) => self.recorded,
            None => self.last_deployed.or(self.recorded),
        }
    }

    /// How far ahead (positive) or behind (negative) helm's clock was of the API server's,
    /// when both times are known and they differ by more than [`CLOCK_SKEW_TOLERANCE`].
    pub fn clock_skew(&self) -> Option<jiff::SignedDuration> {
        let skew = self.last_deployed?.duration_since(self.recorded?);
        (skew.unsigned_abs() > CLOCK_SKEW_TOLERANCE).then_some(skew)
    }

    /// The revision this one rolled back to, when Helm's description says `Rollback to N`.
    pub fn rollback_to(&self) -> Option<u32> {
        rollback_target_in(&self.description)
    }

    /// The operation that wrote this revision, from Helm's description ("Install
    /// complete", "Upgrade \"x\" failed: ...", "Rollback to 3", "Rollback \"x\" failed:
    /// ..."), else its pending status, else its number (1 is an install).
    pub fn operation(&self) -> Operation {
        let d = self.description.as_str();
        if d.starts_with("Rollback ") || self.status == ReleaseStatus::PendingRollback {
            Operation::Rollback
        } else if d.starts_with("Upgrade ") || self.status == ReleaseStatus::PendingUpgrade {
            Operation::Upgrade
        } else if d.starts_with("Install")
            || d.contains("failed pre-install")
            || self.status == ReleaseStatus::PendingInstall
            || self.revision <= 1
        {
            Operation::Install
        } else {
            Operation::Upgrade
        }
    }
}

/// Helm's `HookPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookPhase {
    /// `Unknown`.
    Unknown,
    /// `Running`.
    Running,
    /// `Succeeded`.
    Succeeded,
    /// `Failed`.
    Failed,
}

/// Workload kinds upgrade-guard watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `batch/v1` Job.
    Job,
}

impl WorkloadKind {
    /// The kind as Kubernetes writes it (`Deployment`), for sentences and check names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Job => "Job",
        }
    }

    /// The resource as `kubectl` names it (`deployment`), for commands.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
            Self::Job => "job",
        }
    }

    /// The workload kind of a manifest object's `kind`, if upgrade-guard watches it.
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(Self::Deployment),
            "StatefulSet" => Some(Self::StatefulSet),
            "DaemonSet" => Some(Self::DaemonSet),
            "Job" => Some(Self::Job),
            _ => None,
        }
    }
}

/// A namespaced object named in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// Object kind.
    pub kind: WorkloadKind,
    /// Object name.
    pub name: String,
    /// Object namespace (the release namespace when the manifest omits it).
    pub namespace: String,
}

/// Parses Helm's rollback description `Rollback to N`.
pub fn rollback_target_in(description: &str) -> Option<u32> {
    // Helm writes exactly `Rollback to N`; an unlocked rollback keeps it as its prefix.
    let rest = description.strip_prefix("Rollback to ")?.trim_start();
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19.5: helm's nanosecond `last_deployed` times the upgrade while it agrees with
    /// the API server (the record's creation, kept to the second); the record's creation
    /// when helm's clock is off.
    #[test]
    fn the_upgrade_is_timed_by_helm_unless_its_clock_is_off() {
        let t = |s: &str| -> Timestamp { s.parse().unwrap() };
        let mut s = ReleaseSummary {
            name: "gim".into(),
            namespace: "gim".into(),
            revision: 2,
            status: ReleaseStatus::Deployed,
            description: String::new(),
            first_deployed: None,
            last_deployed: Some(t("2026-12-02T10:00:00.700Z")),
            recorded: Some(t("2026-12-02T10:00:01Z")),
            chart: ChartRef {
                name: "gim".into(),
                version: "1".into(),
                app_version: None,
            },
            hooks: vec![],
            workloads: vec![],
            manifest_problems: vec![],
            fingerprint: Fingerprint::default(),
        };
        assert_eq!(s.started_at(), s.last_deployed);
        assert_eq!(s.clock_skew(), None);
        s.last_deployed = Some(t("2026-12-02T09:55:00Z"));
        assert_eq!(s.started_at(), s.recorded);
        assert_eq!(s.clock_skew(), Some(jiff::SignedDuration::from_secs(-301)));
        s.recorded = None;
        assert_eq!(s.started_at(), s.last_deployed);
    }
}
