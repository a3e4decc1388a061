//! Unlocks a revision left `pending-*` by a helm that is provably gone (I/O): its record in
//! Helm's storage (Secret or ConfigMap) rewritten as `failed` with a description saying
//! why, with the labels Helm's driver keeps in step, written only if nobody changed it since
//! it was read. The values in the payload pass through untouched and are never logged.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;

use crate::release::ReleaseKey;
use crate::release::decode::DecodeLimits;
use crate::release::labels::Storage;
use crate::release::unlock::unlocked_payload;

/// Marks `revision` of `key` failed with `description`; an error in words when it is not
/// there, not pending, not what its name says, or changed meanwhile.
pub async fn unlock(
    client: kube::Client,
    key: &ReleaseKey,
    storage: Storage,
    revision: u32,
    description: &str,
) -> Result<(), String> {
    let name = key.secret_name(revision);
    let who = (&*key.name, revision);
    let limits = DecodeLimits::default();
    let failed = |e: kube::Error| format!("cannot unlock {name}: {e}");
    match storage {
        Storage::Secret => {
            let api: Api<Secret> = Api::namespaced(client, &key.namespace);
            let mut s = api.get(&name).await.map_err(failed)?;
            let data = s.data.get_or_insert_default();
            let payload = data.get("release").ok_or("no release payload")?;
            let new = unlocked_payload(&payload.0, who, description, limits)?;
            data.insert("release".into(), ByteString(new.into_bytes()));
            relabel(&mut s.metadata);
            api.replace(&name, &PostParams::default(), &s)
                .await
                .map_err(failed)?;
        }
        Storage::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client, &key.namespace);
            let mut c = api.get(&name).await.map_err(failed)?;
            let data = c.data.get_or_insert_default();
            let payload = data.get("release").ok_or("no release payload")?;
            let new = unlocked_payload(payload.as_bytes(), who, description, limits)?;
            data.insert("release".into(), new);
            relabel(&mut c.metadata);
            api.replace(&name, &PostParams::default(), &c)
                .await
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// The labels Helm's storage driver writes on an update.
fn relabel(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    let labels = meta.labels.get_or_insert_default();
    labels.insert("status".into(), "failed".into());
    labels.insert(
        "modifiedAt".into(),
        jiff::Timestamp::now().as_second().to_string(),
    );
}
