//! The migration restart (I/O): the pods of the release's workload are deleted once, so its
//! controller starts new ones and GIM's migration resumes (what the recommended
//! `kubectl rollout restart` achieves, without changing the workload's spec behind Helm).

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
