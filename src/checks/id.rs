//! Which check a result is (pure): a bounded kind, with the name the operator or the manifest
//! gave where there is one. Its text (`rollout:Deployment/gim`, `dependency:kafka`, `lag`) is
//! the `check` label of metrics and alerts and the key in JSON; decisions match on the kind,
//! never on the text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The identity of a check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckId {
    /// `release_status`: the revision's Helm status.
    ReleaseStatus,
    /// `rollout:<Kind>/<name>`: one workload's rollout.
    Rollout(String),
    /// `pending_pods`: pods not Ready, by reason.
    PendingPods,
    /// `restarts`: container restarts of the revision's pods since the upgrade.
    Restarts,
    /// `hooks`: the release's Helm hooks.
    Hooks,
    /// `job:<name>`: a Job of the manifest.
    Job(String),
    /// `migration`: the migration Job or hook.
    Migration,
    /// `migration:sql`: the migration confirmed in the database.
    MigrationSql,
    /// `kubernetes`: the Kubernetes API could not be read.
    Kubernetes,
    /// `metrics_presence:<name>`: a series that must not vanish.
    MetricsPresence(String),
    /// `lag`: the backlog's trend.
    Lag,
    /// `dependency:<name>`: a dependency's health.
    Dependency(String),
    /// `custom:<name>`: a custom bounded check.
    Custom(String),
    /// `recorded_verdict`: a failure restored from a bake record that names no check.
    RecordedVerdict,
    /// Any other name (read back from a record written by another version).
    Other(String),
}

impl CheckId {
    /// Reads a check's text back (the inverse of `Display`).
    pub fn parse(text: &str) -> Self {
        let named = |prefix: &str| text.strip_prefix(prefix).map(str::to_string);
        if let Some(n) = named("rollout:") {
            return Self::Rollout(n);
        }
        if let Some(n) = named("job:") {
            return Self::Job(n);
        }
        if let Some(n) = named("metrics_presence:") {
            return Self::MetricsPresence(n);
        }
        if let Some(n) = named("dependency:") {
            return Self::Dependency(n);
        }
        if let Some(n) = named("custom:") {
            return Self::Custom(n);
        }
        match text {
            "release_status" => Self::ReleaseStatus,
            "pending_pods" => Self::PendingPods,
            "restarts" => Self::Restarts,
            "hooks" => Self::Hooks,
            "migration" => Self::Migration,
            "migration:sql" => Self::MigrationSql,
            "kubernetes" => Self::Kubernetes,
            "lag" => Self::Lag,
            "recorded_verdict" => Self::RecordedVerdict,
            other => Self::Other(other.to_string()),
        }
    }

    /// The dependency this check is about, if it is a dependency's.
    pub fn dependency(&self) -> Option<&str> {
        match self {
            Self::Dependency(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReleaseStatus => f.write_str("release_status"),
            Self::Rollout(w) => write!(f, "rollout:{w}"),
            Self::PendingPods => f.write_str("pending_pods"),
            Self::Restarts => f.write_str("restarts"),
            Self::Hooks => f.write_str("hooks"),
            Self::Job(n) => write!(f, "job:{n}"),
            Self::Migration => f.write_str("migration"),
            Self::MigrationSql => f.write_str("migration:sql"),
            Self::Kubernetes => f.write_str("kubernetes"),
            Self::MetricsPresence(n) => write!(f, "metrics_presence:{n}"),
            Self::Lag => f.write_str("lag"),
            Self::Dependency(n) => write!(f, "dependency:{n}"),
            Self::Custom(n) => write!(f, "custom:{n}"),
            Self::RecordedVerdict => f.write_str("recorded_verdict"),
            Self::Other(n) => f.write_str(n),
        }
    }
}

impl From<&str> for CheckId {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<String> for CheckId {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl From<&String> for CheckId {
    fn from(text: &String) -> Self {
        Self::parse(text)
    }
}

impl From<&CheckId> for CheckId {
    fn from(id: &CheckId) -> Self {
        id.clone()
    }
}

impl PartialEq<str> for CheckId {
    fn eq(&self, text: &str) -> bool {
        *self == Self::parse(text)
    }
}

impl PartialEq<&str> for CheckId {
    fn eq(&self, text: &&str) -> bool {
        *self == Self::parse(text)
    }
}

impl Serialize for CheckId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_reads_back_as_itself() {
        for id in [
            CheckId::ReleaseStatus,
            CheckId::Rollout("Deployment/gim".into()),
            CheckId::PendingPods,
            CheckId::Hooks,
            CheckId::Job("gim-migrate".into()),
            CheckId::Migration,
            CheckId::MigrationSql,
            CheckId::Kubernetes,
            CheckId::MetricsPresence("gim_up".into()),
            CheckId::Lag,
            CheckId::Dependency("kafka".into()),
            CheckId::Custom("errors".into()),
            CheckId::RecordedVerdict,
            CheckId::Other("something_else".into()),
        ] {
            let text = id.to_string();
            assert_eq!(CheckId::parse(&text), id, "{text}");
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<CheckId>(&json).unwrap(), id);
        }
        assert_eq!(CheckId::Dependency("kafka".into()), "dependency:kafka");
        assert_eq!(
            CheckId::Dependency("kafka".into()).dependency(),
            Some("kafka")
        );
        assert_eq!(CheckId::Lag.dependency(), None);
    }
}
