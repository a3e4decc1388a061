//! Helm's records read on demand (I/O): a release's whole history decoded, one revision, or
//! the revisions' statuses from labels only. Secrets first; a release without any is looked
//! for in ConfigMaps (Helm's `configmap` storage driver).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;

use crate::release::ReleaseStatus;
use crate::release::labels::{
    HELM_OWNER_SELECTOR, HELM_SECRET_TYPE_SELECTOR, Storage, revision_from_meta,
};
use crate::release::record::{HistoryRow, row_from};

/// Decodes one release Secret into a row; `None` when its labels name no revision.
fn row_of(secret: &Secret) -> Option<HistoryRow> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    row_from(&secret.metadata, Storage::Secret, data)
}

/// The same for a record of Helm's ConfigMap driver (`data.release` is the same text).
fn row_of_configmap(cm: &ConfigMap) -> Option<HistoryRow> {
    let data = cm
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|s| s.as_bytes())
        .unwrap_or_default();
    row_from(&cm.metadata, Storage::ConfigMap, data)
}

/// Lists and decodes the revisions of `release` in `namespace`, oldest first. Helm's
/// Secrets are read; a release without any is looked for in ConfigMaps (Helm's
/// `configmap` storage driver).
pub async fn read_history(
    client: kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<HistoryRow>, kube::Error> {
    Ok(read_history_times(client, namespace, release).await?.0)
}

/// When a revision's record was last modified, per revision: Helm's `modifiedAt` label
/// (Unix seconds), written when it changes the record's status.
pub type Modified = BTreeMap<u32, Timestamp>;

/// [`read_history`], with when each record was last modified (where Helm said so).
pub async fn read_history_times(
    client: kube::Client,
    namespace: &str,
    release: &str,
) -> Result<(Vec<HistoryRow>, Modified), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secrets = api.list(&release_selector(release)).await?;
    let mut rows: Vec<HistoryRow> = secrets.items.iter().filter_map(row_of).collect();
    let mut modified: Modified = secrets
        .items
        .iter()
        .filter_map(|s| modified_at(&s.metadata))
        .collect();
    if rows.is_empty() {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let maps = api.list(&configmap_selector(release)).await?;
        rows = maps.items.iter().filter_map(row_of_configmap).collect();
        modified = maps
            .items
            .iter()
            .filter_map(|m| modified_at(&m.metadata))
            .collect();
    }
    rows.sort_by_key(|r| r.revision);
    Ok((rows, modified))
}

/// The revision of a record and its `modifiedAt` label, when both read.
fn modified_at(meta: &ObjectMeta) -> Option<(u32, Timestamp)> {
    let revision = revision_from_meta(meta).ok()?.revision;
    let seconds: i64 = meta.labels.as_ref()?.get("modifiedAt")?.parse().ok()?;
    Some((revision, Timestamp::from_second(seconds).ok()?))
}

/// Reads and decodes one revision (one GET); `None` when its Secret does not exist.
pub async fn read_revision(
    client: kube::Client,
    namespace: &str,
    release: &str,
    revision: u32,
) -> Result<Option<HistoryRow>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let key = crate::release::ReleaseKey::new(namespace, release);
    let name = key.secret_name(revision);
    if let Some(secret) = api.get_opt(&name).await? {
        return Ok(row_of(&secret));
    }
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    Ok(api
        .get_opt(&name)
        .await?
        .as_ref()
        .and_then(row_of_configmap))
}

/// The revisions of `release` and their statuses, from labels only (no payload crosses),
/// oldest first. Secrets whose labels do not name a revision are skipped.
pub async fn read_statuses(
    client: kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<(u32, ReleaseStatus)>, kube::Error> {
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
    let mut metas: Vec<ObjectMeta> = api
        .list(&release_selector(release))
        .await?
        .items
        .into_iter()
        .map(|s| s.metadata)
        .collect();
    if metas.is_empty() {
        let api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client, namespace);
        metas = api
            .list(&configmap_selector(release))
            .await?
            .items
            .into_iter()
            .map(|c| c.metadata)
            .collect();
    }
    let mut statuses: Vec<(u32, ReleaseStatus)> = metas
        .iter()
        .filter_map(|m| revision_from_meta(m).ok())
        .map(|m| (m.revision, m.status))
        .collect();
    statuses.sort_by_key(|(r, _)| *r);
    Ok(statuses)
}

fn release_selector(release: &str) -> ListParams {
    ListParams::default()
        .labels(&format!("{HELM_OWNER_SELECTOR},name={release}"))
        .fields(HELM_SECRET_TYPE_SELECTOR)
}

fn configmap_selector(release: &str) -> ListParams {
    ListParams::default().labels(&format!(
        "{HELM_OWNER_SELECTOR},name={release},status,version"
    ))
}
