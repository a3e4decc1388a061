//! Notices (I/O to build them): an uninstalled release, reported once with the ConfigMaps it
//! left behind (GSP's state) and the command that deletes them, nothing deleted; and, after
//! an upgrade that changed the chart or app version and ended its bake healthy, the
//! reminder to update Data Export's views with the exact `kubectl exec` command.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use crate::config::{ReleasePolicy, render_query};
use crate::release::ReleaseKey;
use crate::release::record::{HistoryRow, RowDetail};
use crate::remediation::restart;
use crate::state::{Notice, NoticeKind};
use crate::tracker::read::read_history;
use crate::units::plus;

/// How long an uninstall is told (its alert then resolves).
pub const UNINSTALL_NOTICE_FOR: Duration = Duration::from_secs(3600);
/// How long the export-views reminder is told.
pub const EXPORT_VIEWS_NOTICE_FOR: Duration = Duration::from_secs(24 * 3600);

/// The notice of an uninstall: the ConfigMaps matching the policy's leftover selector, listed
/// with the command that deletes them (never deleted here).
pub async fn uninstalled(
    client: &kube::Client,
    key: &ReleaseKey,
    revision: u32,
    policy: &ReleasePolicy,
    now: Timestamp,
) -> Notice {
    let mut words = format!("{key} was uninstalled (its last revision was {revision}).");
    let mut command = None;
    if let Some(selector) = &policy.uninstall_leftovers {
        let selector = render_query(selector, key);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &key.namespace);
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) if list.items.is_empty() => {
                words.push_str(&format!(" No ConfigMap with {selector} is left behind."));
            }
            Ok(list) => {
                let names: Vec<String> =
                    list.items.into_iter().filter_map(|c| c.metadata.name).collect();
                words.push_str(&format!(
                    " {} ConfigMap(s) with {selector} are left behind: {}. Delete them before installing it again (upgrade-guard deletes nothing).",
                    names.len(),
                    names.join(", ")
                ));
                command = Some(format!(
                    "kubectl delete cm --selector={selector} -n {}",
                    key.namespace
                ));
            }
            Err(e) => words.push_str(&format!(
                " The ConfigMaps with {selector} it may leave behind could not be listed ({e}); check with: kubectl get cm --selector={selector} -n {}",
                key.namespace
            )),
        }
    }
    Notice {
        release: key.clone(),
        revision,
        kind: NoticeKind::Uninstalled,
        words,
        command,
        at: now,
        until: plus(now, UNINSTALL_NOTICE_FOR),
    }
}

fn version_of(row: &HistoryRow) -> Option<(String, Option<String>)> {
    match &row.detail {
        RowDetail::Decoded(s) => Some((s.chart.version.clone(), s.chart.app_version.clone())),
        RowDetail::Undecodable { .. } => None,
    }
}

/// The export-views reminder for `revision`, when its chart or app version differs from
/// the revision before it (`None` otherwise, or when the history cannot be read).
pub async fn export_views(
    client: &kube::Client,
    key: &ReleaseKey,
    revision: u32,
    policy: &ReleasePolicy,
    now: Timestamp,
) -> Option<Notice> {
    let run = policy.export_views.command.as_deref()?;
    let rows = match read_history(client.clone(), &key.namespace, &key.name).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(release = %key, "cannot read the history for the export-views reminder: {e}");
            return None;
        }
    };
    let new = version_of(rows.iter().find(|r| r.revision == revision)?)?;
    let old = version_of(rows.iter().rev().find(|r| r.revision < revision)?)?;
    if new == old {
        return None;
    }
    let workload = restart::workload(&rows, revision, policy);
    let pod = match &workload {
        Some(w) => restart::pods_of(client.clone(), &key.namespace, w)
            .await
            .ok()
            .and_then(|pods| pods.into_iter().next())
            .unwrap_or_else(|| w.clone()),
        None => format!("<{} pod>", key.name),
    };
    let describe = |(v, app): &(String, Option<String>)| match app {
        Some(a) => format!("chart {v}, app {a}"),
        None => format!("chart {v}"),
    };
    Some(Notice {
        release: key.clone(),
        revision,
        kind: NoticeKind::ExportViews,
        words: format!(
            "{key} was upgraded ({} → {}) and its bake ended healthy. If the upgrade changed the Info Mart schema and you use Data Export, update the export views: Data Export keeps using the views in effect before the upgrade until you do.",
            describe(&old),
            describe(&new)
        ),
        command: Some(format!("kubectl exec -n {} {pod} -- {run}", key.namespace)),
        at: now,
        until: plus(now, EXPORT_VIEWS_NOTICE_FOR),
    })
}
