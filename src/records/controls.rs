//! The operator's controls (I/O): one ConfigMap `upgrade-guard.controls.<namespace>.<release>`
//! per release in upgrade-guard's namespace, one key per control (see `control.rs`). The
//! CLI writes them, every replica watches them: they work against any replica, survive
//! restarts, and need RBAC on these ConfigMaps only. Each write is a JSON merge patch of its
//! own key, so concurrent writers never overwrite each other's controls.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};

use super::control::Controls;
use super::store::{ConfigMaps, StoreError, record_labels};
use crate::api_error::ApiErrorKind;
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
        let name = configmap_name(release);
        let patch = serde_json::json!({ "data": { key: value } });
        let patched = self
            .maps
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match patched {
            Ok(_) => return Ok(()),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => {}
            Err(e) => return Err(self.maps.error("write", e)),
        }
        let Some(value) = value else {
            // Nothing to clear.
            return Ok(());
        };
        let mut labels = record_labels(release);
        labels.insert(RECORD_LABEL.0.to_string(), RECORD_LABEL.1.to_string());
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(key.to_string(), value)])),
            ..Default::default()
        };
        match self.maps.api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            // Someone created it meanwhile: add our key to theirs.
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => self
                .maps
                .api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| self.maps.error("write", e)),
            Err(e) => Err(self.maps.error("write", e)),
        }
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
