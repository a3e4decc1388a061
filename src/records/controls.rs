//! The operator's controls (I/O): one ConfigMap `upgrade-guard.controls.<namespace>.<release>`
//! per release in upgrade-guard's namespace, one key per control (see `control.rs`). The
//! CLI writes them, every replica watches them: they work against any replica, survive
//! restarts, and need RBAC on these ConfigMaps only. Each write is a JSON merge patch of its
//! own key, so concurrent writers never overwrite each other's controls.

use super::control::Controls;
use super::store::{ConfigMaps, StoreError, record_labels};
use crate::release::ReleaseKey;

/// Label telling control ConfigMaps from the other records.
pub const RECORD_LABEL: (&str, &str) = ("upgrade-guard.dev/record", "controls");

/// Name of the ConfigMap holding a release's controls.
pub fn configmap_name(release: &ReleaseKey) -> String {
    format!(
        "upgrade-guard.controls.{}.{}",
        release.namespace, release.name
    )
}

/// The controls of one installation.
#[derive(Clone)]
pub struct ControlStore {
    maps: ConfigMaps,
}

impl ControlStore {
    /// Controls in `namespace` (upgrade-guard's).
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            maps: ConfigMaps::new(client, namespace),
        }
    }

    /// The controls of a release (none when its ConfigMap does not exist).
    pub async fn load(&self, release: &ReleaseKey) -> Result<Controls, StoreError> {
        let cm = self.maps.get(&configmap_name(release)).await?;
        Ok(cm
            .and_then(|cm| cm.data)
            .map(|d| Controls::parse(&d))
            .unwrap_or_default())
    }

    /// Sets (`Some`) or clears (`None`) one control of a release, creating its ConfigMap
    /// on first use.
    pub async fn set(
        &self,
        release: &ReleaseKey,
        key: &str,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        let mut labels = record_labels(release);
        labels.insert(RECORD_LABEL.0.to_string(), RECORD_LABEL.1.to_string());
        self.maps
            .merge_key(&configmap_name(release), labels, key, value.as_deref())
            .await
    }
}

/// Watches the controls of every release (in `namespace`) and sends each release's
/// controls whenever they change (empty when its ConfigMap is deleted); retries with
/// backoff when the watch fails.
pub async fn watch(
    client: kube::Client,
    namespace: &str,
    timeout: u32,
    tx: tokio::sync::mpsc::Sender<(ReleaseKey, Controls)>,
) {
    super::store::watch_labelled(
        client,
        namespace,
        RECORD_LABEL,
        timeout,
        "the operator's controls",
        Controls::parse,
        tx,
    )
    .await;
}
