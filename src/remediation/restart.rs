//! The release's workloads as the executor reads them (I/O): for the migration restart, the
//! pods of the release's workload are deleted once, so its controller starts new ones and
//! GIM's migration resumes (what the recommended `kubectl rollout restart` achieves,
//! without changing the workload's spec behind Helm); before a rollback, the controller
//! that manages them, if any ([`super::gitops`]).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

use crate::config::ReleasePolicy;
use crate::release::record::{HistoryRow, RowDetail};
use crate::release::summary::WorkloadKind;

/// `kind/name` of the workload whose pods restart the migration: the one named by
/// `migration.restart`, else the release's first Deployment or StatefulSet.
pub fn workload(rows: &[HistoryRow], revision: u32, policy: &ReleasePolicy) -> Option<String> {
    let row = rows.iter().find(|r| r.revision == revision)?;
    let RowDetail::Decoded(summary) = &row.detail else {
        return None;
    };
    let named = policy.migration.as_ref().and_then(|m| m.restart.clone());
    summary
        .workloads
        .iter()
        .filter(|w| matches!(w.kind, WorkloadKind::Deployment | WorkloadKind::StatefulSet))
        .find(|w| named.as_ref().is_none_or(|n| *n == w.name))
        .map(|w| format!("{}/{}", w.kind.resource(), w.name))
}

/// The controller that manages the release, from the metadata of the workloads of
/// `revision` (the first one that shows one). A workload that cannot be read shows none.
pub async fn manager(
    client: kube::Client,
    rows: &[HistoryRow],
    revision: u32,
) -> Option<super::gitops::Manager> {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let row = rows.iter().find(|r| r.revision == revision)?;
    let RowDetail::Decoded(summary) = &row.detail else {
        return None;
    };
    let ns = summary.namespace.as_str();
    for w in &summary.workloads {
        let meta = match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
                .get_metadata(&w.name)
                .await
                .map(|o| o.metadata),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_metadata(&w.name)
                .await
                .map(|o| o.metadata),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), ns)
                .get_metadata(&w.name)
                .await
                .map(|o| o.metadata),
            _ => continue,
        };
        let Ok(meta) = meta else { continue };
        let managers: Vec<&str> = meta
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|f| f.manager.as_deref())
            .collect();
        let found = super::gitops::manager_of(
            meta.labels.as_ref().unwrap_or(&Default::default()),
            meta.annotations.as_ref().unwrap_or(&Default::default()),
            &managers,
        );
        if found.is_some() {
            return found;
        }
    }
    None
}

fn owned_by(meta: &kube::api::ObjectMeta, uids: &[String]) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| uids.contains(&o.uid))
}

/// The pods the workload owns (through its ReplicaSets for a Deployment), never other pods
/// its selector happens to match (a migration Job's, say).
pub async fn pods_of(
    client: kube::Client,
    namespace: &str,
    workload: &str,
) -> Result<Vec<String>, kube::Error> {
    let (kind, name) = workload.split_once('/').unwrap_or(("deployment", workload));
    let owners: Vec<String> = if kind == "statefulset" {
        let sts = Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get(name)
            .await?;
        sts.metadata.uid.into_iter().collect()
    } else {
        let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(name)
            .await?;
        let uid: Vec<String> = deployment.metadata.uid.into_iter().collect();
        Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|rs| owned_by(&rs.metadata, &uid))
            .filter_map(|rs| rs.metadata.uid)
            .collect()
    };
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut names: Vec<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| owned_by(&p.metadata, &owners) && p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Deletes the pods the workload owns ([`pods_of`]); returns their names.
pub async fn delete_pods(
    client: kube::Client,
    namespace: &str,
    workload: &str,
) -> Result<Vec<String>, kube::Error> {
    let names = pods_of(client.clone(), namespace, workload).await?;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    for name in &names {
        pods.delete(name, &DeleteParams::default()).await?;
    }
    Ok(names)
}
