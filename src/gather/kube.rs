//! Gathering from Kubernetes (I/O): the workloads of the revision's manifest, the pods of
//! their current templates (by each workload's selector, `matchExpressions` included, then
//! by controller and template: a Deployment's new ReplicaSet, found among its ReplicaSets), and the
//! Jobs of the release namespace (the checks keep those of the release). Returns plain
//! observations for the checks. The daemon reads them from its reflector stores (no
//! request per round); `check` asks the API.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, ListParams};

use super::stores::{Lookup, Stores};
use crate::checks::observe::{self, WorkloadObs};
use crate::release::summary::{ReleaseSummary, WorkloadKind};

/// Where Kubernetes state comes from.
#[derive(Clone)]
pub enum Source {
    /// Requests per round (one-shot commands).
    Api(Client),
    /// The daemon's reflector stores; the client serves namespaces they do not cover.
    Stores(Arc<Stores>, Client),
    /// The past, from kube-state-metrics series in Prometheus (a replay).
    History(Box<super::history::KubeHistory>, Client),
}

impl Source {
    /// The API client (for what the stores or the history do not hold).
    pub fn client(&self) -> &Client {
        match self {
            Self::Api(c) | Self::Stores(_, c) | Self::History(_, c) => c,
        }
    }

    /// Why the Kubernetes state cannot be trusted now (a watch of the stores failed
    /// recently: what they hold may be stale), if so.
    pub fn trouble(&self) -> Option<String> {
        self.stores().and_then(Stores::trouble)
    }

    /// Whether the workloads and pods of namespace `ns` are read from the stores, without
    /// a request.
    pub fn stored(&self, ns: &str) -> bool {
        self.stores().is_some_and(|s| s.covers(ns))
    }

    fn stores(&self) -> Option<&Stores> {
        match self {
            Self::Api(_) | Self::History(..) => None,
            Self::Stores(s, _) => Some(s),
        }
    }
}

pub use crate::checks::observe::KubeObservations;

async fn workload(
    source: &Source,
    kind: WorkloadKind,
    ns: &str,
    name: &str,
) -> Result<Option<WorkloadObs>, kube::Error> {
    if let Some(stores) = source.stores() {
        let found = match kind {
            WorkloadKind::Deployment => match stores.deployment(ns, name) {
                Lookup::Covered(Some(d)) => Some(Some(deployment(source, ns, &d).await?)),
                Lookup::Covered(None) => Some(None),
                Lookup::NotWatched => None,
            },
            WorkloadKind::StatefulSet => match stores.stateful_set(ns, name) {
                Lookup::Covered(s) => Some(s.map(|s| observe::stateful_set(&s))),
                Lookup::NotWatched => None,
            },
            WorkloadKind::DaemonSet => match stores.daemon_set(ns, name) {
                Lookup::Covered(d) => Some(d.map(|d| observe::daemon_set(&d))),
                Lookup::NotWatched => None,
            },
            WorkloadKind::Job => Some(None),
        };
        if let Some(found) = found {
            return Ok(found);
        }
    }
    let client = source.client();
    Ok(match kind {
        WorkloadKind::Deployment => {
            match Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
            {
                Some(d) => Some(deployment(source, ns, &d).await?),
                None => None,
            }
        }
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

/// A Deployment with the template label of its new ReplicaSet's pods.
async fn deployment(source: &Source, ns: &str, d: &Deployment) -> Result<WorkloadObs, kube::Error> {
    let mut obs = observe::deployment(d);
    let Some(selector) = &obs.selector else {
        return Ok(obs);
    };
    let stored = source.stores().map(|s| s.replica_sets(ns, selector));
    // Metadata is all that is read: the stores' objects are borrowed, the API is asked for
    // metadata only.
    let listed;
    let metas: Vec<&ObjectMeta> = match &stored {
        Some(Lookup::Covered(rs)) => rs.iter().map(|r| &r.metadata).collect(),
        _ => {
            listed = Api::<ReplicaSet>::namespaced(source.client().clone(), ns)
                .list_metadata(&ListParams::default().labels_from(selector))
                .await?
                .items;
            listed.iter().map(|m| &m.metadata).collect()
        }
    };
    obs.template = observe::new_replica_set_template(d, &metas);
    Ok(obs)
}

/// [`gather`], or the past's state for a replay; every failure a monitoring error.
pub async fn observe(
    source: &Source,
    summary: &ReleaseSummary,
    jobs: bool,
    now: Timestamp,
) -> Result<KubeObservations, crate::checks::provider::ProviderError> {
    match source {
        Source::History(history, _) => history.observe(summary, now).await,
        _ => gather(source, summary, jobs, now)
            .await
            .map_err(|e| crate::checks::provider::ProviderError::Kubernetes(e.to_string())),
    }
}

/// Reads the revision's workloads, their current pods and, when `jobs` is set (a migration
/// check or Jobs in the manifest), the namespace's Jobs.
pub async fn gather(
    source: &Source,
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
        let found = workload(source, w.kind, &w.namespace, &w.name).await?;
        let found = found.unwrap_or_else(|| WorkloadObs::missing(w.kind, &w.name));
        if let Some(selector) = &found.selector {
            let stored = source.stores().map(|s| s.pods(&w.namespace, selector));
            let pods: Vec<Pod> = match stored {
                Some(Lookup::Covered(pods)) => pods,
                _ => {
                    Api::<Pod>::namespaced(source.client().clone(), &w.namespace)
                        .list(&ListParams::default().labels_from(selector))
                        .await?
                        .items
                }
            };
            // Only the current template's pods are the revision's: old ones are on their
            // way out.
            for p in pods.iter().filter(|p| {
                observe::controlled_by(p, w.kind, &w.name)
                    && observe::of_current_template(p, &found)
            }) {
                if let Some(mut o) = observe::pod(p, now)
                    && seen_pods.insert(o.name.clone())
                {
                    o.workload = found.id();
                    obs.pods.push(o);
                }
            }
        }
        obs.workloads.push(found);
    }
    if jobs {
        let stored = source.stores().map(|s| s.jobs(&summary.namespace));
        obs.jobs = match stored {
            Some(Lookup::Covered(jobs)) => jobs.iter().map(observe::job).collect(),
            _ => Api::<Job>::namespaced(source.client().clone(), &summary.namespace)
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(observe::job)
                .collect(),
        };
    }
    Ok(obs)
}
