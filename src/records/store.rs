//! What both kinds of records share: one ConfigMap per release in upgrade-guard's namespace,
//! labelled with the release it is about, read and written through the same API handle, and
//! the errors an operator must tell apart (RBAC, or the API itself).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use crate::api_error::ApiErrorKind;
use crate::release::ReleaseKey;

/// Label marking upgrade-guard's own objects.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "upgrade-guard");

const RELEASE_NAMESPACE: &str = "upgrade-guard.dev/release-namespace";
const RELEASE_NAME: &str = "upgrade-guard.dev/release-name";

/// The labels of a ConfigMap of records about `release`.
pub fn record_labels(release: &ReleaseKey) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (RELEASE_NAMESPACE.to_string(), release.namespace.to_string()),
        (RELEASE_NAME.to_string(), release.name.to_string()),
    ])
}

/// The release a ConfigMap of records is about, from its labels.
pub fn release_of(cm: &ConfigMap) -> Option<ReleaseKey> {
    let labels = cm.metadata.labels.as_ref()?;
    Some(ReleaseKey::new(
        labels.get(RELEASE_NAMESPACE)?,
        labels.get(RELEASE_NAME)?,
    ))
}

/// Why the records could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RBAC does not allow it.
    #[error("not allowed to {verb} ConfigMaps in namespace {namespace}: {source}")]
    Forbidden {
        /// `read` or `write`.
        verb: &'static str,
        /// upgrade-guard's namespace.
        namespace: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
    /// Any other API failure.
    #[error("cannot {verb} upgrade-guard's records in namespace {namespace}: {source}")]
    Api {
        /// `read` or `write`.
        verb: &'static str,
        /// upgrade-guard's namespace.
        namespace: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
}

impl StoreError {
    /// `verb` on upgrade-guard's records in `namespace` failed with `source`: forbidden
    /// (401/403) or any other API failure.
    pub fn of(verb: &'static str, namespace: &str, source: kube::Error) -> Self {
        let namespace = namespace.to_string();
        if ApiErrorKind::of(&source).is_permission() {
            Self::Forbidden {
                verb,
                namespace,
                source,
            }
        } else {
            Self::Api {
                verb,
                namespace,
                source,
            }
        }
    }
}

/// The ConfigMaps of one namespace, with errors that say what was attempted where.
#[derive(Clone)]
pub(super) struct ConfigMaps {
    pub(super) api: Api<ConfigMap>,
    namespace: String,
}

impl ConfigMaps {
    pub(super) fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    pub(super) fn error(&self, verb: &'static str, source: kube::Error) -> StoreError {
        StoreError::of(verb, &self.namespace, source)
    }

    /// One ConfigMap, `None` when it does not exist.
    pub(super) async fn get(&self, name: &str) -> Result<Option<ConfigMap>, StoreError> {
        self.api
            .get_opt(name)
            .await
            .map_err(|e| self.error("read", e))
    }

    /// Sets (`Some`) or clears (`None`) one key of ConfigMap `name` with a JSON merge patch,
    /// creating it with `labels` on first use (when another writer creates it meanwhile, the
    /// key is added to theirs). Clearing a key of a ConfigMap that does not exist is done.
    pub(super) async fn merge_key(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        use kube::api::{Patch, PatchParams, PostParams};
        let patch = serde_json::json!({ "data": { key: value } });
        let merge = || async {
            self.api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        };
        match merge().await {
            Ok(_) => return Ok(()),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => {}
            Err(e) => return Err(self.error("write", e)),
        }
        let Some(value) = value else {
            return Ok(());
        };
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
            ..Default::default()
        };
        match self.api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => merge()
                .await
                .map(|_| ())
                .map_err(|e| self.error("write", e)),
            Err(e) => Err(self.error("write", e)),
        }
    }

    /// Deletes a ConfigMap; `Ok(false)` when it did not exist.
    pub(super) async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match self
            .api
            .delete(name, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error("delete", e)),
        }
    }

    /// Every ConfigMap with `label=value` (one LIST).
    pub(super) async fn labelled(&self, label: (&str, &str)) -> Result<Vec<ConfigMap>, StoreError> {
        let selector = format!("{}={}", label.0, label.1);
        self.api
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|list| list.items)
            .map_err(|e| self.error("list", e))
    }
}

/// Watches the ConfigMaps of `namespace` labelled `label` (one kind of records) and sends
/// each release's records, parsed, whenever they change (`parse` of nothing when its
/// ConfigMap is deleted); retries with backoff when the watch fails (`what` names them in
/// the warning). Returns when the receiver is gone.
pub(super) async fn watch_labelled<T>(
    client: kube::Client,
    namespace: &str,
    label: (&str, &str),
    timeout: u32,
    what: &str,
    parse: impl Fn(&BTreeMap<String, String>) -> T,
    tx: tokio::sync::mpsc::Sender<(ReleaseKey, T)>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let selector = format!("{}={}", label.0, label.1);
    let config = watcher::Config::default()
        .labels(&selector)
        .timeout(timeout);
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let (cm, gone) = match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => (cm, false),
            Ok(watcher::Event::Delete(cm)) => (cm, true),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(namespace, error = %e, "the watch of {what} failed; retrying with backoff");
                continue;
            }
        };
        let Some(release) = release_of(&cm) else {
            continue;
        };
        let data = if gone {
            BTreeMap::new()
        } else {
            cm.data.unwrap_or_default()
        };
        if tx.send((release, parse(&data))).await.is_err() {
            return;
        }
    }
}
