//! Scenario building blocks for evaluation tests: releases installed and upgraded with the
//! real helm, backfilled series, a live endpoint scraped by a real Prometheus, and the
//! in-process evaluator run round by round (paced like the daemon's retry interval).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use upgrade_guard::config::Config;
use upgrade_guard::evaluation::{Evaluator, Start};
use upgrade_guard::gather::metrics::PrometheusMetrics;
use upgrade_guard::gather::prometheus::Prometheus as PromClient;
use upgrade_guard::metrics::registry;
use upgrade_guard::release::ReleaseKey;
use upgrade_guard::release::record::RowDetail;
use upgrade_guard::tracker::read::read_history;
use upgrade_guard::verdict::Report;
use upgrade_guard::verdict::Verdict;

use super::exporter::Exporter;
use super::prometheus::{Prometheus, Target};
use super::{helm, kube as tkube, wait};

/// How long a scenario may take to reach what it waits for.
pub const WAIT: Duration = Duration::from_secs(120);

/// Installs `demo-app`, waiting for its pods.
fn install_waiting(ns: &str, release: &str) {
    let chart = &helm::chart("demo-app");
    helm::ok(&[
        "install",
        release,
        chart,
        "-n",
        ns,
        "--wait",
        "--timeout",
        "60s",
    ]);
}

/// Installs `demo-app` (waiting for it) and upgrades it to tag 1.1.0 with `set` values.
pub fn install_then_upgrade(ns: &str, release: &str, set: &[&str]) {
    install_waiting(ns, release);
    upgrade(ns, release, "1.1.0", set);
}

/// Upgrades `demo-app` to `tag` with `set` values (not waiting).
pub fn upgrade(ns: &str, release: &str, tag: &str, set: &[&str]) {
    upgrade_with(ns, release, tag, set, &[]);
}

/// Installs `demo-app` and upgrades it to tag 1.1.0, waiting until the new pods are Ready:
/// for scenarios whose workloads must be fine however slowly a loaded machine starts pods.
pub fn install_then_upgrade_ready(ns: &str, release: &str) {
    install_waiting(ns, release);
    upgrade_with(ns, release, "1.1.0", &[], &["--wait", "--timeout", "60s"]);
}

/// Waits until Deployment `name` in `ns` has rolled out completely: the controller saw its
/// spec and every replica is updated, Ready and available, none of the old template left.
/// Helm 3's `--wait` returns earlier: once enough new pods are Ready, before the old
/// ReplicaSet is scaled down (a rollout still under way, which the judge rightly calls
/// pending on a loaded machine).
pub async fn rolled_out(ns: &str, name: &str) {
    deployment_until(ns, name, "rolled out", |want, s| {
        s.replicas == Some(want)
            && s.updated_replicas == Some(want)
            && s.ready_replicas == Some(want)
            && s.available_replicas == Some(want)
    })
    .await;
}

/// Waits until the controller has created every pod of Deployment `name`'s current template
/// (created, not necessarily Ready): a judgement that must see the new pods does not depend
/// on how late a loaded machine's controller creates them.
pub async fn pods_created(ns: &str, name: &str) {
    deployment_until(ns, name, "has created its pods", |want, s| {
        s.updated_replicas == Some(want)
    })
    .await;
}

/// Waits until Deployment `name` in `ns` has a status for its current spec for which
/// `done(desired replicas, status)` holds, showing the last status seen on a timeout.
async fn deployment_until(
    ns: &str,
    name: &str,
    what: &str,
    done: impl Fn(i32, &k8s_openapi::api::apps::v1::DeploymentStatus) -> bool,
) {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(tkube::client().await, ns);
    wait::until_seen(
        Duration::from_secs(120),
        &format!("Deployment {ns}/{name} {what}"),
        || async {
            let d = api.get_opt(name).await.ok().flatten();
            let ok = d.as_ref().is_some_and(|d| {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                d.status.as_ref().is_some_and(|s| {
                    s.observed_generation >= d.metadata.generation && done(want, s)
                })
            });
            if ok {
                Ok(())
            } else {
                Err(format!("{:?}", d.and_then(|d| d.status)))
            }
        },
    )
    .await;
}

fn upgrade_with(ns: &str, release: &str, tag: &str, set: &[&str], flags: &[&str]) {
    let tag = format!("image.tag={tag}");
    let chart = helm::chart("demo-app");
    let mut args = vec!["upgrade", release, &chart, "-n", ns, "--set", &tag];
    for s in set {
        args.extend(["--set", s]);
    }
    args.extend(flags);
    helm::ok(&args);
}

/// When the latest revision of the release started, as the evaluation times it: its
/// record's creation (the API server's clock; helm writes it before applying anything, a
/// moment after stamping `last_deployed`).
pub async fn upgrade_time(ns: &str, release: &str) -> Timestamp {
    let rows = read_history(tkube::client().await, ns, release)
        .await
        .unwrap();
    match &rows.last().unwrap().detail {
        RowDetail::Decoded(s) => s.started_at().unwrap(),
        RowDetail::Undecodable { decode_error } => panic!("{decode_error}"),
    }
}

/// OpenMetrics lines for `name{labels}` from `from` to `to` (Unix seconds) every `step`
/// seconds, valued by `f(t)`; `None` leaves a gap.
pub fn series(
    name: &str,
    labels: &str,
    (from, to, step): (i64, i64, usize),
    f: impl Fn(i64) -> Option<f64>,
) -> String {
    (from..=to)
        .step_by(step)
        .filter_map(|t| f(t).map(|v| format!("{name}{{{labels}}} {v} {t}\n")))
        .collect()
}

/// An evaluator for `config_text`, with the metrics it counts queries in.
pub async fn evaluator_with(config_text: &str) -> (Evaluator, Config, PrometheusMetrics) {
    let config = Config::parse(config_text, "test").unwrap();
    let metrics = PrometheusMetrics::register(&mut registry());
    let client = PromClient::new(&config.prometheus, metrics.clone()).unwrap();
    (
        Evaluator::new(tkube::client().await, &config, client),
        config,
        metrics,
    )
}

/// What starts the evaluation of the latest revision of a release.
pub async fn start_for(ns: &str, release: &str) -> Start {
    let rows = read_history(tkube::client().await, ns, release)
        .await
        .unwrap();
    let latest = rows.last().unwrap();
    let RowDetail::Decoded(summary) = &latest.detail else {
        panic!("undecodable")
    };
    Start {
        release: ReleaseKey::new(ns, release),
        status: latest.status,
        status_since: summary.last_deployed.unwrap(),
        history: rows.iter().map(|r| (r.revision, r.status)).collect(),
        rollbacks: Default::default(),
        storage: latest.storage,
        summary: Arc::new((**summary).clone()),
    }
}

/// One round's report for the only release under evaluation.
pub async fn round_of(e: &mut Evaluator) -> Report {
    e.round(Timestamp::now()).await.into_iter().next().unwrap()
}

/// Runs evaluation rounds, paced like the daemon's retry interval, until `done` holds;
/// every report is kept in `seen`.
pub async fn rounds_until(
    e: &mut Evaluator,
    seen: &mut Vec<Report>,
    done: impl Fn(&Report) -> bool,
) -> Report {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = round_of(e).await;
        seen.push(r.clone());
        if done(&r) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such round within {WAIT:?}: {:?}",
            seen.iter().map(|r| r.verdict).collect::<Vec<Verdict>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The result of `check` in a report.
pub fn result<'a>(r: &'a Report, check: &str) -> &'a upgrade_guard::checks::CheckResult {
    r.results
        .iter()
        .find(|c| c.check == check)
        .unwrap_or_else(|| panic!("no {check} in {:?}", r.results))
}

/// An endpoint serving `body`, a Prometheus scraping it every second as job `app`, and a
/// wait until Prometheus holds three samples of `metric` (as a metric that existed well
/// before an upgrade would).
pub async fn scraped(body: &str, metric: &str) -> (Exporter, Prometheus) {
    let exporter = Exporter::start(body);
    let prom = Prometheus::start(
        None,
        &[Target {
            job: "app",
            address: &exporter.address,
            namespace: None,
        }],
    )
    .await;
    scraped_a_few_times(&prom, metric).await;
    (exporter, prom)
}

/// Waits until Prometheus holds three samples of `metric`.
pub async fn scraped_a_few_times(prom: &Prometheus, metric: &str) {
    let query = format!("count_over_time({metric}[1m]) >= 3");
    wait::until(WAIT, "three scrapes", || async {
        let data = prom.query(&query, None).await;
        (!data["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
}

/// Runs `n` evaluation rounds, paced like the daemon's retry interval.
pub async fn rounds(e: &mut Evaluator, n: usize) -> Vec<Report> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        out.push(round_of(e).await);
    }
    out
}
