//! Judging releases on the spot, without a daemon (`status`, `preflight`): the Helm
//! releases of the watched namespaces from their records' labels, then the latest revision
//! of each judged in one round (the same checks as the daemon; a monitoring error in that
//! round is never a pass), with the recommended action guarded against the history.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use serde::Serialize;

use super::error::CliError;
use crate::config::Config;
use crate::evaluation::{Evaluator, Start};
use crate::gather::metrics::PrometheusMetrics;
use crate::gather::prometheus::Prometheus;
use crate::metrics::registry;
use crate::records::bakes::BakeStore;
use crate::release::labels::{HELM_OWNER_SELECTOR, Storage, revision_from_meta};
use crate::release::record::{RowDetail, rollbacks_of};
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::state::ChartView;
use crate::tracker::read::read_history;
use crate::verdict::Report;
use crate::verdict::guard;

/// One release as judged on the spot.
#[derive(Debug, Clone, Serialize)]
pub struct Spot {
    /// The release.
    pub release: ReleaseKey,
    /// Its latest revision.
    pub revision: u32,
    /// Its Helm status.
    pub status: ReleaseStatus,
    /// Its chart, when the revision could be read.
    pub chart: Option<ChartView>,
    /// The judgement, when the revision could be judged.
    pub report: Option<Report>,
    /// Why it was not judged (pending, uninstalled, unreadable).
    pub problem: Option<String>,
}

/// The Helm releases of `namespaces` (all when empty): name and namespace, from the labels
/// of Helm's records (Secrets, and ConfigMaps where that driver is watched).
pub async fn releases(
    client: &kube::Client,
    namespaces: &[String],
    storage: &[Storage],
) -> Result<Vec<ReleaseKey>, kube::Error> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut keys = std::collections::BTreeSet::new();
    for ns in scopes {
        for s in storage {
            let params = match s.field_selector() {
                Some(f) => ListParams::default().labels(HELM_OWNER_SELECTOR).fields(f),
                None => ListParams::default().labels(HELM_OWNER_SELECTOR),
            };
            let metas = match s {
                Storage::Secret => metadata::<Secret>(client, ns, &params).await?,
                Storage::ConfigMap => metadata::<ConfigMap>(client, ns, &params).await?,
            };
            keys.extend(
                metas
                    .iter()
                    .filter_map(|m| revision_from_meta(m).ok())
                    .map(|r| r.key),
            );
        }
    }
    Ok(keys.into_iter().collect())
}

/// The metadata of the `K` objects `params` selects in `ns` (all namespaces when `None`).
async fn metadata<K>(
    client: &kube::Client,
    ns: Option<&str>,
    params: &ListParams,
) -> Result<Vec<kube::api::ObjectMeta>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<PartialObjectMeta<K>> = match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    Ok(api
        .list(params)
        .await?
        .items
        .into_iter()
        .map(|m| m.metadata)
        .collect())
}

/// Judges the latest revision of each release in one round.
pub async fn judge(
    client: &kube::Client,
    config: &Config,
    keys: &[ReleaseKey],
) -> Result<Vec<Spot>, CliError> {
    let mut reg = registry();
    let prometheus = Prometheus::new(&config.prometheus, PrometheusMetrics::register(&mut reg))?;
    let mut evaluator = Evaluator::new(client.clone(), config, prometheus);
    let bakes = BakeStore::new(client.clone(), &config.state.namespace)
        .all()
        .await
        .unwrap_or_else(|e| {
            eprintln!(
                "note: bake records not used ({e}); rollback targets come from the history alone"
            );
            BTreeMap::new()
        });
    let mut spots = Vec::new();
    let mut histories = BTreeMap::new();
    for key in keys {
        let rows = read_history(client.clone(), &key.namespace, &key.name).await?;
        let Some(latest) = rows.last() else { continue };
        let mut spot = Spot {
            release: key.clone(),
            revision: latest.revision,
            status: latest.status,
            chart: None,
            report: None,
            problem: None,
        };
        let summary = match &latest.detail {
            RowDetail::Decoded(s) => s,
            RowDetail::Undecodable { decode_error } => {
                spot.problem = Some(format!(
                    "revision {} cannot be decoded: {decode_error}",
                    latest.revision
                ));
                spots.push(spot);
                continue;
            }
        };
        spot.chart = Some(ChartView::of(&summary.chart));
        if latest.status.is_pending() {
            spot.problem = Some(format!(
                "revision {} is {}: a Helm operation holds the release",
                latest.revision, latest.status
            ));
        } else if matches!(
            latest.status,
            ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
        ) {
            spot.problem = Some(format!("the release is {}", latest.status));
        } else {
            for (revision, entry) in bakes
                .get(key)
                .into_iter()
                .flatten()
                .filter(|(_, e)| e.of_install(summary.first_deployed))
            {
                evaluator.record_bake(key, *revision, entry.verdict);
            }
            let history: Vec<(u32, ReleaseStatus)> =
                rows.iter().map(|r| (r.revision, r.status)).collect();
            histories.insert(key.clone(), history.clone());
            evaluator.begin(
                Start {
                    release: key.clone(),
                    status: latest.status,
                    status_since: summary.last_deployed.unwrap_or_else(Timestamp::now),
                    history,
                    rollbacks: rollbacks_of(&rows),
                    storage: latest.storage,
                    summary: Arc::new((**summary).clone()),
                },
                config.policy_for(key),
            );
        }
        spots.push(spot);
    }
    for mut report in evaluator.round(Timestamp::now()).await {
        if let Some(history) = histories.get(&report.release) {
            report.action = guard(report.action, history, report.revision);
        }
        if let Some(spot) = spots.iter_mut().find(|s| s.release == report.release) {
            spot.report = Some(report);
        }
    }
    Ok(spots)
}
