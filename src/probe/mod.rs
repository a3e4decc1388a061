//! The configuration checked against the live cluster (I/O): for every release it covers,
//! every PromQL query runs once on the configured Prometheus (it must parse and return series
//! now, and its series must be sampled as often as `prometheus.scrape_interval` says: the
//! windows and `for:` were sized for it) and every SQL query once in its read-only
//! transaction; each answer becomes a finding in words (`plan.rs`). The PromQL queries of
//! every release go in batches, as a round's do (a few queries per pass whatever the number
//! of releases). `upgrade-guard config validate --live` prints the findings.

pub mod plan;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::gather::postgres::Postgres;
use crate::gather::prometheus::{Answers, Prometheus, answer};
use crate::release::ReleaseKey;
use plan::{Finding, Probe, probes, promql_finding, sql_finding};

/// Expressions per batched query: a pass over thousands of releases is a few queries, each
/// of a size Prometheus parses at once.
const BATCH: usize = 250;

/// Runs `items` in batches of [`BATCH`], one after the other (a check of the
/// configuration, not a load on Prometheus).
async fn batched(prometheus: &Prometheus, items: &[(String, String)]) -> Answers {
    let mut answers = Answers::new();
    for chunk in items.chunks(BATCH) {
        answers.extend(prometheus.batch(chunk).await);
    }
    answers
}

/// The sample spacing queries of the series read by the queries that answered with series,
/// each selector once: (selector → its key), and the batch items.
fn spacing_items(
    items: &[(String, String)],
    answers: &Answers,
    config: &Config,
) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let scrape = config.prometheus.scrape_interval;
    let window = plan::spacing_window(scrape);
    let mut keys = BTreeMap::new();
    let mut list = Vec::new();
    for (key, query) in items {
        if !matches!(answers.get(key), Some(Ok(series)) if !series.is_empty()) {
            continue;
        }
        for selector in plan::selectors(query) {
            if keys.contains_key(&selector) {
                continue;
            }
            let k = format!("s{}", keys.len());
            let expr = crate::gather::promql::sample_spacing(&selector, window, scrape / 4);
            list.push((k.clone(), expr));
            keys.insert(selector, k);
        }
    }
    (keys, list)
}

/// Runs every probe of `releases` under `config` (the SQL ones one at a time, a check of the
/// configuration and not a load on the databases), and, with `client`, whether the objects
/// the Kubernetes checks read can be listed in each release's namespace.
pub async fn run(
    config: &Config,
    releases: &[ReleaseKey],
    prometheus: &Prometheus,
    postgres: &Postgres,
    client: Option<&kube::Client>,
) -> Vec<Finding> {
    let plans: Vec<Vec<Probe>> = releases
        .iter()
        .map(|k| probes(k, &config.policy_for(k)))
        .collect();
    // Every PromQL query of every release, batched.
    let key = |i: usize, j: usize| format!("q{i}-{j}");
    let mut items = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        for (j, probe) in plan.iter().enumerate() {
            if let Probe::PromQL { query, .. } = probe {
                items.push((key(i, j), query.clone()));
            }
        }
    }
    let answers = batched(prometheus, &items).await;
    let (spacing_keys, spacing_list) = spacing_items(&items, &answers, config);
    let spacings = batched(prometheus, &spacing_list).await;
    // A spacing that cannot be measured (no answer, one sample) says nothing.
    let sparse = |query: &str| {
        plan::selectors(query).into_iter().find_map(|selector| {
            let worst = spacing_keys
                .get(&selector)
                .and_then(|k| spacings.get(k))
                .and_then(|a| a.as_ref().ok())
                .map(|series| series.iter().map(|(_, v)| *v).fold(f64::NAN, f64::max))?;
            plan::spacing_problem(&selector, worst, config.prometheus.scrape_interval)
        })
    };

    let mut out = Vec::new();
    let mut namespaces: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
    for (i, (release, plan)) in releases.iter().zip(plans).enumerate() {
        if let Some(client) = client
            && !namespaces.contains_key(&*release.namespace)
        {
            let unreadable = unreadable_kinds(client, &release.namespace).await;
            namespaces.insert(release.namespace.to_string(), unreadable);
        }
        if let Some(unreadable) = namespaces.get(&*release.namespace) {
            out.push(plan::kube_finding(release, unreadable));
        }
        for (j, probe) in plan.into_iter().enumerate() {
            out.push(match probe {
                Probe::PromQL { check, query } => {
                    let series = answer(&answers, &key(i, j)).map(|s| s.len());
                    let mut finding = promql_finding(release, &check, &query, &series);
                    if finding.ok() {
                        finding.problem = sparse(&query);
                    }
                    finding
                }
                Probe::Sql { check, source } => {
                    let answer = postgres.query(&source).await;
                    sql_finding(release, &check, &source, &answer)
                }
            });
        }
    }
    out
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
