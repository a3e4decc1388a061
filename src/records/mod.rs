//! upgrade-guard's own records, kept in ConfigMaps of its own namespace (never in Helm's
//! Secrets): each revision's final verdict (`bakes`), from which rollback targets are chosen,
//! each automatic action's intent and outcome (`action`, `actions`), so that nothing runs
//! twice across restarts and replicas, and the operator's controls (`control`, `controls`). `store` holds what both kinds share: the labels, the
//! namespace's ConfigMaps and the errors.

pub mod action;
pub mod actions;
pub mod bakes;
pub mod control;
pub mod controls;
pub mod mailed;
pub mod outbox;
mod store;

pub use store::{MANAGED_BY, StoreError, record_labels, release_of};

use crate::release::ReleaseKey;

/// Retires every record of an uninstalled release (its bake records and its action
/// records), so a later install of the same name starts with none. Returns how many
/// ConfigMaps were deleted.
pub async fn retire(
    client: kube::Client,
    namespace: &str,
    release: &ReleaseKey,
) -> Result<u32, StoreError> {
    let maps = store::ConfigMaps::new(client, namespace);
    let mut deleted = 0;
    for name in [
        bakes::configmap_name(release),
        actions::configmap_name(release),
        controls::configmap_name(release),
    ] {
        deleted += u32::from(maps.delete(&name).await?);
    }
    Ok(deleted)
}
