//! The configuration checked against the live cluster (I/O): for every release it covers,
//! every PromQL query runs once on the configured Prometheus (it must parse and return series
//! now, and its series must be sampled as often as `prometheus.scrape_interval` says: the
//! windows and `for:` were sized for it) and every SQL query once in its read-only
//! transaction; each answer becomes a finding in words (`plan.rs`). `upgrade-guard config validate --live` prints them.

pub mod plan;

use std::time::Duration;

use crate::config::Config;
use crate::gather::postgres::Postgres;
use crate::gather::prometheus::Prometheus;
use crate::release::ReleaseKey;
use plan::{Finding, Probe, probes, promql_finding, sql_finding};

/// Runs every probe of `releases` under `config`, one at a time (a check of the
/// configuration, not a load on Prometheus or the databases), and, with `client`, whether
/// the objects the Kubernetes checks read can be listed in each release's namespace.
pub async fn run(
    config: &Config,
    releases: &[ReleaseKey],
    prometheus: &Prometheus,
    postgres: &Postgres,
    client: Option<&kube::Client>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut namespaces: std::collections::BTreeMap<String, Vec<(&'static str, String)>> =
        Default::default();
    for key in releases {
        if let Some(client) = client
            && !namespaces.contains_key(&*key.namespace)
        {
            let unreadable = unreadable_kinds(client, &key.namespace).await;
            namespaces.insert(key.namespace.to_string(), unreadable);
        }
        if let Some(unreadable) = namespaces.get(&*key.namespace) {
            out.push(plan::kube_finding(key, unreadable));
        }
        for probe in probes(key, &config.policy_for(key)) {
            out.push(match probe {
                Probe::PromQL { check, query } => {
                    let answer = prometheus.instant(&query).await.map(|s| s.len());
                    let mut finding = promql_finding(key, &check, &query, &answer);
                    if finding.ok() {
                        finding.problem =
                            sparse(prometheus, &query, config.prometheus.scrape_interval).await;
                    }
                    finding
                }
                Probe::Sql { check, source } => {
                    let answer = postgres.query(&source).await;
                    sql_finding(key, &check, &source, &answer)
                }
            });
        }
    }
    out
}

/// Why the series `query` reads are sampled too rarely for checks sized for `scrape`, when
/// they are: each selector's sample spacing measured over [`plan::spacing_window`]. A
/// spacing that cannot be measured (no answer, one sample) says nothing.
async fn sparse(prometheus: &Prometheus, query: &str, scrape: Duration) -> Option<String> {
    let window = plan::spacing_window(scrape);
    for selector in plan::selectors(query) {
        let q = crate::gather::promql::sample_spacing(&selector, window, scrape / 4);
        let Ok(series) = prometheus.instant(&q).await else {
            continue;
        };
        let worst = series.iter().map(|(_, v)| *v).fold(f64::NAN, f64::max);
        if let Some(problem) = plan::spacing_problem(&selector, worst, scrape) {
            return Some(problem);
        }
    }
    None
}

/// The kinds of objects the Kubernetes checks read that cannot be listed in `namespace`
/// (kind, why): refused, or the API server did not answer.
async fn unreadable_kinds(client: &kube::Client, namespace: &str) -> Vec<(&'static str, String)> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;
    let tries = [
        (
            "deployments",
            listable::<Deployment>(client, namespace).await,
        ),
        (
            "statefulsets",
            listable::<StatefulSet>(client, namespace).await,
        ),
        ("daemonsets", listable::<DaemonSet>(client, namespace).await),
        (
            "replicasets",
            listable::<ReplicaSet>(client, namespace).await,
        ),
        ("pods", listable::<Pod>(client, namespace).await),
        ("jobs", listable::<Job>(client, namespace).await),
    ];
    tries
        .into_iter()
        .filter_map(|(kind, e)| {
            let e = e?;
            let why = if crate::api_error::ApiErrorKind::of(&e).is_permission() {
                "forbidden".to_string()
            } else {
                e.to_string()
            };
            Some((kind, why))
        })
        .collect()
}

/// Why objects of kind `K` cannot be listed in `namespace` (one item asked), if they cannot.
async fn listable<K>(client: &kube::Client, namespace: &str) -> Option<kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    kube::Api::<K>::namespaced(client.clone(), namespace)
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .err()
}
