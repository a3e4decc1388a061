//! Gathering from Kubernetes (I/O): the workloads of the revision's manifest, their pods
//! (by each workload's selector, `matchExpressions` included, then by controller), and the
//! Jobs of the release namespace (the checks keep those of the release). Returns plain
//! observations for the checks.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::checks::observe::{self, JobObs, PodObs, WorkloadObs};
use crate::release::decode::{ReleaseSummary, WorkloadKind};

/// What the Kubernetes checks need about one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeObservations {
    /// One per Deployment/StatefulSet/DaemonSet of the manifest.
    pub workloads: Vec<WorkloadObs>,
    /// Pods of those workloads that are not Ready.
    pub pods: Vec<PodObs>,
    /// Jobs of the release namespace (scoped to the release by the checks).
    pub jobs: Vec<JobObs>,
}

async fn workload(
    client: &Client,
    kind: WorkloadKind,
    ns: &str,
    name: &str,
) -> Result<Option<WorkloadObs>, kube::Error> {
    Ok(match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .map(|d| observe::deployment(&d)),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .map(|s| observe::stateful_set(&s)),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .map(|d| observe::daemon_set(&d)),
        WorkloadKind::Job => None,
    })
}

/// Reads the revision's workloads, their not-Ready pods and, when `jobs` is set (a migration
/// check or Jobs in the manifest), the namespace's Jobs.
pub async fn gather(
    client: &Client,
    summary: &ReleaseSummary,
    jobs: bool,
    now: Timestamp,
) -> Result<KubeObservations, kube::Error> {
    let mut obs = KubeObservations::default();
    let mut seen_pods = BTreeSet::new();
    for w in summary
        .workloads
        .iter()
        .filter(|w| w.kind != WorkloadKind::Job)
    {
        let found = workload(client, w.kind, &w.namespace, &w.name).await?;
        let found = found.unwrap_or_else(|| WorkloadObs::missing(w.kind, &w.name));
        if let Some(selector) = &found.selector {
            let pods = Api::<Pod>::namespaced(client.clone(), &w.namespace)
                .list(&ListParams::default().labels_from(selector))
                .await?;
            for p in pods
                .items
                .iter()
                .filter(|p| observe::controlled_by(p, w.kind, &w.name))
            {
                if let Some(o) = observe::pod(p, now)
                    && seen_pods.insert(o.name.clone())
                {
                    obs.pods.push(o);
                }
            }
        }
        obs.workloads.push(found);
    }
    if jobs {
        let list = Api::<Job>::namespaced(client.clone(), &summary.namespace)
            .list(&ListParams::default())
            .await?;
        obs.jobs = list.items.iter().map(observe::job).collect();
    }
    Ok(obs)
}
