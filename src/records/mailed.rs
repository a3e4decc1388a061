//! Which emails were confirmed sent (I/O): the ConfigMap `upgrade-guard.mailed` in
//! upgrade-guard's namespace, one key per release (the last state whose email the SMTP
//! server accepted) and per release and notice kind. A replica that starts telling (it
//! became the leader, or it sees none) reads it, so it sends exactly what no replica
//! confirmed: nothing lost with a leader that died with mail in its queue, nothing sent
//! twice that was sent. Each confirmation is a merge patch of its own key.

use std::collections::BTreeMap;

use super::store::{ConfigMaps, MANAGED_BY, StoreError};

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
        let labels = [(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into();
        self.maps
            .merge_key(CONFIGMAP, labels, key, Some(value))
            .await
    }
}
