//! Which emails were confirmed sent (I/O): the ConfigMap `upgrade-guard.mailed` in
//! upgrade-guard's namespace, one key per release (the last state whose email the SMTP
//! server accepted) and per release and notice kind. A replica that starts telling (it
//! became the leader, or it sees none) reads it, so it sends exactly what no replica
//! confirmed: nothing lost with a leader that died with mail in its queue, nothing sent
//! twice that was sent. Each confirmation is a merge patch of its own key.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};

use super::store::{ConfigMaps, MANAGED_BY, StoreError};
use crate::api_error::ApiErrorKind;

/// Name of the ConfigMap.
pub const CONFIGMAP: &str = "upgrade-guard.mailed";

/// The confirmations of one installation.
#[derive(Clone)]
pub struct MailedStore {
    maps: ConfigMaps,
}

impl MailedStore {
    /// Confirmations in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            maps: ConfigMaps::new(client, namespace),
        }
    }

    /// Every confirmation (none when the ConfigMap does not exist).
    pub async fn load(&self) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self
            .maps
            .get(CONFIGMAP)
            .await?
            .and_then(|cm| cm.data)
            .unwrap_or_default())
    }

    /// Records that the email identified by `key` was accepted, with `value` (what it told).
    pub async fn confirm(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let patch = serde_json::json!({ "data": { key: value } });
        match self
            .maps
            .api
            .patch(CONFIGMAP, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => {}
            Err(e) => return Err(self.maps.error("write", e)),
        }
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(CONFIGMAP.into()),
                labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
                ..Default::default()
            },
            data: Some([(key.to_string(), value.to_string())].into()),
            ..Default::default()
        };
        match self.maps.api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => self
                .maps
                .api
                .patch(CONFIGMAP, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| self.maps.error("write", e)),
            Err(e) => Err(self.maps.error("write", e)),
        }
    }
}
