//! The alerts the daemon pushes, by name, and the links each carries: its runbook page in
//! `docs/alerts.md` and the API answer about its release (`generatorURL`).

use crate::release::ReleaseKey;

/// Every alert the daemon pushes to Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertName {
    /// A failing check of a failed revision.
    UpgradeFailed,
    /// A warning of a revision whose bake ended degraded.
    UpgradeDegraded,
    /// A finding of the watch after the bake.
    UpgradeRegressedAfterBake,
    /// A check that cannot be judged, for too long.
    UpgradeInconclusive,
    /// The newest revision pending past `watch.stuck_pending_after`.
    HelmReleaseStuckPending,
    /// A record that cannot be read.
    HelmReleaseUnreadable,
    /// `mode: auto` does not act on a failed revision.
    UpgradeAutoActionHeld,
    /// An automatic action failed, was interrupted or its revision failed.
    UpgradeRollbackFailed,
    /// A verified automatic rollback: the upgrade still has to be fixed.
    UpgradeRolledBack,
    /// A suite's releases upgraded out of order.
    UpgradeOutOfOrder,
    /// The Data Export views to update.
    UpgradeExportViews,
    /// A release was uninstalled.
    HelmReleaseUninstalled,
    /// An operator suspended a release: judged, neither alerted nor acted on.
    HelmReleaseSuspended,
}

impl AlertName {
    /// Every name, in the order of `docs/alerts.md`.
    pub const ALL: [Self; 13] = [
        Self::UpgradeFailed,
        Self::UpgradeDegraded,
        Self::UpgradeRegressedAfterBake,
        Self::UpgradeInconclusive,
        Self::HelmReleaseStuckPending,
        Self::HelmReleaseUnreadable,
        Self::UpgradeAutoActionHeld,
        Self::UpgradeRollbackFailed,
        Self::UpgradeRolledBack,
        Self::UpgradeOutOfOrder,
        Self::UpgradeExportViews,
        Self::HelmReleaseUninstalled,
        Self::HelmReleaseSuspended,
    ];

    /// The `alertname` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpgradeFailed => "UpgradeFailed",
            Self::UpgradeDegraded => "UpgradeDegraded",
            Self::UpgradeRegressedAfterBake => "UpgradeRegressedAfterBake",
            Self::UpgradeInconclusive => "UpgradeInconclusive",
            Self::HelmReleaseStuckPending => "HelmReleaseStuckPending",
            Self::HelmReleaseUnreadable => "HelmReleaseUnreadable",
            Self::UpgradeAutoActionHeld => "UpgradeAutoActionHeld",
            Self::UpgradeRollbackFailed => "UpgradeRollbackFailed",
            Self::UpgradeRolledBack => "UpgradeRolledBack",
            Self::UpgradeOutOfOrder => "UpgradeOutOfOrder",
            Self::UpgradeExportViews => "UpgradeExportViews",
            Self::HelmReleaseUninstalled => "HelmReleaseUninstalled",
            Self::HelmReleaseSuspended => "HelmReleaseSuspended",
        }
    }
}

/// The anchor of an alert's section in `docs/alerts.md` (a heading's anchor as GitHub and
/// most Markdown renderers make it: the name in lower case).
pub fn anchor(alertname: &str) -> String {
    alertname.to_ascii_lowercase()
}

/// The links put on every pushed alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// `notifications.dashboard_url`, `{{namespace}}` and `{{release}}` to fill in.
    pub dashboard: Option<String>,
    /// `notifications.runbook_url`: the page whose sections are the alerts.
    pub runbook: Option<String>,
    /// Where this daemon's API is reached (`notifications.external_url`, no trailing `/`).
    pub external: Option<String>,
}

impl Links {
    /// The dashboard link for `release`.
    pub fn dashboard(&self, release: &ReleaseKey) -> Option<String> {
        self.dashboard.as_ref().map(|url| {
            url.replace("{{namespace}}", &release.namespace)
                .replace("{{release}}", &release.name)
        })
    }

    /// The runbook section of `name`.
    pub fn runbook(&self, name: AlertName) -> Option<String> {
        self.runbook
            .as_ref()
            .map(|base| format!("{base}#{}", anchor(name.as_str())))
    }

    /// The API's answer about `release`: what caused the alert (`generatorURL`).
    pub fn generator(&self, release: &ReleaseKey) -> Option<String> {
        // Release names and namespaces are DNS labels: nothing to escape.
        self.external.as_ref().map(|base| {
            format!(
                "{}/api/v1/releases?namespace={}&release={}",
                base.trim_end_matches('/'),
                release.namespace,
                release.name
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_its_own_and_its_anchor_is_lower_case() {
        let names: std::collections::BTreeSet<&str> =
            AlertName::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(names.len(), AlertName::ALL.len());
        assert_eq!(anchor("UpgradeFailed"), "upgradefailed");
    }

    #[test]
    fn links_are_filled_for_the_release() {
        let links = Links {
            dashboard: Some(
                "https://g/d?var-namespace={{namespace}}&var-release={{release}}".into(),
            ),
            runbook: Some("https://docs/alerts.md".into()),
            external: Some("http://ug.monitoring.svc:8080/".into()),
        };
        let key = ReleaseKey::new("gim", "gim-a");
        assert_eq!(
            links.dashboard(&key).as_deref(),
            Some("https://g/d?var-namespace=gim&var-release=gim-a")
        );
        assert_eq!(
            links.runbook(AlertName::HelmReleaseStuckPending).as_deref(),
            Some("https://docs/alerts.md#helmreleasestuckpending")
        );
        assert_eq!(
            links.generator(&key).as_deref(),
            Some("http://ug.monitoring.svc:8080/api/v1/releases?namespace=gim&release=gim-a")
        );
        assert_eq!(Links::default().generator(&key), None);
    }
}
