//! Kubernetes state for the daemon from watches, not per-round LISTs: one kube-runtime
//! reflector per kind (Deployments, StatefulSets, DaemonSets, ReplicaSets, Pods, Jobs) and watched
//! namespace (or one cluster-wide), so a round reads memory and costs no request. Objects are
//! decoded into slim types ([`super::slim`]: no pod spec, no workload pod template) and
//! trimmed before they are stored ([`Slim::trim`]: no managed fields, no annotations but the
//! ones the checks read, labels as sorted slices), which bounds memory.
//! Objects in a namespace that is not watched are read from the API (rare: a manifest that
//! names another namespace).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use super::slim::{
    Slim, SlimDaemonSet, SlimDeployment, SlimJob, SlimPod, SlimReplicaSet, SlimStatefulSet,
};
use tokio::task::JoinHandle;
use tracing::warn;

/// Objects per page of the initial listings (kube's default is 500): a page is held whole
/// while it is decoded, so smaller pages keep the listing's peak memory down.
const LIST_PAGE: u32 = 100;

/// Stores of one kind, per watched namespace (`None`: cluster-wide).
struct Kind<K: Slim + 'static> {
    stores: BTreeMap<Option<String>, Store<K>>,
}

/// When a watch of the stores last failed, and why: while that is recent, what the stores
/// hold may be stale, and the checks must not judge from it.
pub type LastWatchError =
    Arc<std::sync::Mutex<BTreeMap<(String, String), (std::time::Instant, String)>>>;

/// How long after a watch error the stores are not trusted, unless that watch has listed
/// its objects again since (a `410 Expired` is followed by a relist at once). Longer than
/// kube's largest retry backoff (30 s), so a watch that keeps failing keeps them distrusted.
pub const DISTRUST_AFTER_ERROR: std::time::Duration = std::time::Duration::from_secs(60);

impl<K> Kind<K>
where
    K: Slim + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    fn start(
        client: &Client,
        namespaces: &[Option<String>],
        tasks: &mut Vec<JoinHandle<()>>,
        last_error: &LastWatchError,
        watch_timeout: u32,
    ) -> Self {
        let mut stores = BTreeMap::new();
        for ns in namespaces {
            let api: Api<K> = match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let (reader, writer) = reflector::store();
            let kind = K::kind(&()).to_string();
            let scope = ns.clone().unwrap_or_else(|| "*".into());
            let last_error = last_error.clone();
            // Small pages: each page is held whole, untrimmed, while it is listed.
            // The API server ends each watch after `watch_timeout` (it is resumed): a quiet
            // namespace must never outlast the client's read timeout (`idle_timeout`),
            // which would fail the watch and make every check inconclusive.
            let config = watcher::Config::default()
                .page_size(LIST_PAGE)
                .timeout(watch_timeout);
            let stream = watcher(api, config)
                .default_backoff()
                .modify(K::trim)
                .reflect(writer);
            tasks.push(tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let key = (kind.clone(), scope.clone());
                while let Some(item) = stream.next().await {
                    match item {
                        Err(e) => {
                            warn!(kind, namespace = scope, error = %e,
                                "watch for the checks failed; retrying with backoff");
                            if let Ok(mut last) = last_error.lock() {
                                last.insert(
                                    key.clone(),
                                    (
                                        std::time::Instant::now(),
                                        format!("the watch of {kind} in {scope} failed: {e}"),
                                    ),
                                );
                            }
                        }
                        // Listed again after the error: this store is current.
                        Ok(watcher::Event::InitDone) => {
                            if let Ok(mut last) = last_error.lock() {
                                last.remove(&key);
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }));
            stores.insert(ns.clone(), reader);
        }
        Self { stores }
    }

    fn store_for(&self, namespace: &str) -> Option<&Store<K>> {
        self.stores
            .get(&Some(namespace.to_string()))
            .or_else(|| self.stores.get(&None))
    }

    async fn ready(&self) {
        for store in self.stores.values() {
            let _ = store.wait_until_ready().await;
        }
    }

    fn len(&self) -> usize {
        self.stores.values().map(Store::len).sum()
    }
}

/// The reflector stores of the watched namespaces.
pub struct Stores {
    deployments: Kind<SlimDeployment>,
    stateful_sets: Kind<SlimStatefulSet>,
    daemon_sets: Kind<SlimDaemonSet>,
    replica_sets: Kind<SlimReplicaSet>,
    pods: Kind<SlimPod>,
    jobs: Kind<SlimJob>,
    tasks: Vec<JoinHandle<()>>,
    last_error: LastWatchError,
}

impl Drop for Stores {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A namespaced object looked up in the stores: found, not there, or not covered by them.
pub enum Lookup<T> {
    /// The stores cover the namespace.
    Covered(T),
    /// No store covers the namespace: ask the API.
    NotWatched,
}

impl Stores {
    /// Starts the watches for `namespaces` (empty: cluster-wide); the API server ends each
    /// watch after `watch_timeout` (shorter than the client's read timeout).
    pub fn start(
        client: &Client,
        namespaces: &[String],
        watch_timeout: std::time::Duration,
    ) -> Arc<Self> {
        let t = u32::try_from(watch_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
        let scopes: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().cloned().map(Some).collect()
        };
        let mut tasks = Vec::new();
        let last_error = LastWatchError::default();
        let e = &last_error;
        Arc::new(Self {
            deployments: Kind::start(client, &scopes, &mut tasks, e, t),
            stateful_sets: Kind::start(client, &scopes, &mut tasks, e, t),
            daemon_sets: Kind::start(client, &scopes, &mut tasks, e, t),
            replica_sets: Kind::start(client, &scopes, &mut tasks, e, t),
            pods: Kind::start(client, &scopes, &mut tasks, e, t),
            jobs: Kind::start(client, &scopes, &mut tasks, e, t),
            tasks,
            last_error,
        })
    }

    /// Why the stores cannot be trusted now (a watch failed less than
    /// [`DISTRUST_AFTER_ERROR`] ago), if so.
    pub fn trouble(&self) -> Option<String> {
        let errors = self.last_error.lock().ok()?;
        errors
            .values()
            .filter(|(at, _)| at.elapsed() < DISTRUST_AFTER_ERROR)
            .max_by_key(|(at, _)| *at)
            .map(|(_, words)| words.clone())
    }

    /// Resolves once every store has its first listing.
    pub async fn ready(&self) {
        self.deployments.ready().await;
        self.stateful_sets.ready().await;
        self.daemon_sets.ready().await;
        self.replica_sets.ready().await;
        self.pods.ready().await;
        self.jobs.ready().await;
    }

    /// Objects held, all kinds together.
    pub fn len(&self) -> usize {
        self.deployments.len()
            + self.stateful_sets.len()
            + self.daemon_sets.len()
            + self.replica_sets.len()
            + self.pods.len()
            + self.jobs.len()
    }

    /// No object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get<K>(kind: &Kind<K>, ns: &str, name: &str) -> Lookup<Option<K::Full>>
    where
        K: Slim + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
    {
        match kind.store_for(ns) {
            Some(store) => Lookup::Covered(
                store
                    .get(&ObjectRef::new(name).within(ns))
                    .map(|o| o.full()),
            ),
            None => Lookup::NotWatched,
        }
    }

    /// The objects of namespace `ns` in `kind`'s store for which `keep` holds.
    fn filter<K>(kind: &Kind<K>, ns: &str, keep: impl Fn(&K) -> bool) -> Lookup<Vec<K::Full>>
    where
        K: Slim + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
    {
        match kind.store_for(ns) {
            Some(store) => Lookup::Covered(
                store
                    .state_filter(|o| o.meta().namespace.as_deref() == Some(ns) && keep(o))
                    .iter()
                    .map(|o| o.full())
                    .collect(),
            ),
            None => Lookup::NotWatched,
        }
    }

    /// Whether the stores watch namespace `ns` (its workloads, ReplicaSets and pods).
    pub fn covers(&self, ns: &str) -> bool {
        self.pods.store_for(ns).is_some()
            && self.replica_sets.store_for(ns).is_some()
            && self.deployments.store_for(ns).is_some()
    }

    /// A Deployment.
    pub fn deployment(&self, ns: &str, name: &str) -> Lookup<Option<Deployment>> {
        Self::get(&self.deployments, ns, name)
    }

    /// A StatefulSet.
    pub fn stateful_set(&self, ns: &str, name: &str) -> Lookup<Option<StatefulSet>> {
        Self::get(&self.stateful_sets, ns, name)
    }

    /// A DaemonSet.
    pub fn daemon_set(&self, ns: &str, name: &str) -> Lookup<Option<DaemonSet>> {
        Self::get(&self.daemon_sets, ns, name)
    }

    /// The ReplicaSets of a namespace that `selector` selects (metadata only).
    pub fn replica_sets(
        &self,
        ns: &str,
        selector: &kube::core::Selector,
    ) -> Lookup<Vec<ReplicaSet>> {
        let selector: Vec<kube::core::Expression> = selector.clone().into_iter().collect();
        Self::filter(&self.replica_sets, ns, |r| {
            Slim::labels(r).matches(&selector)
        })
    }

    /// The pods of a namespace that `selector` selects.
    pub fn pods(&self, ns: &str, selector: &kube::core::Selector) -> Lookup<Vec<Pod>> {
        let selector: Vec<kube::core::Expression> = selector.clone().into_iter().collect();
        Self::filter(&self.pods, ns, |p| Slim::labels(p).matches(&selector))
    }

    /// The Jobs of a namespace.
    pub fn jobs(&self, ns: &str) -> Lookup<Vec<Job>> {
        Self::filter(&self.jobs, ns, |_| true)
    }
}
