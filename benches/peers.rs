//! Side by side (`cargo bench --bench peers`; it runs `scripts/peers` first, which builds
//! the peers once): upgrade-guard judging N releases, Argo Rollouts judging N standalone
//! AnalysisRuns and Flagger judging N Canaries (`kubernetes` provider), each with the same
//! PromQL query of its own service and the same interval, against the same Prometheus,
//! one after the other in the same run on the same data; and the `helm list` a polling
//! script runs to notice revision changes. On a private control plane with its controllers
//! and kwok (pods get statuses, no container runs). Measured from outside for each tool:
//! RSS, CPU per interval (`/proc/<pid>/stat`), Prometheus queries per interval (from
//! Prometheus' own `prometheus_http_requests_total`), and the time from a failing series
//! (the moment Prometheus answers with it) to each failed verdict. N = 50 and 500
//! (`BENCH_PEERS=50,500`). The report is written to `docs/benchmarks.md`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark driver: a panic is the failure report"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use support::bench::{self, machine, percentile};
use support::control_plane::ControlPlane;
use support::exporter::Exporter;
use support::kube::client_for;
use support::prometheus::{Prometheus, Target, free_port};
use support::tracking_load as load;

/// The evaluation interval of every tool.
const INTERVAL: Duration = Duration::from_secs(10);
/// Intervals over which CPU and queries are measured, once every judgement runs.
const MEASURED: u32 = 6;
/// The series' healthy and failing values, and the bound every tool judges them with.
const HEALTHY: f64 = 1.0;
const FAILING: f64 = 100.0;
const MAX: f64 = 10.0;
/// How long any step may take.
const TIMEOUT: Duration = Duration::from_secs(900);
/// How often the verdicts are read while waiting for the failures (the latencies' grain).
const POLL: Duration = Duration::from_millis(250);

/// A process measured from outside; killed when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(command: &mut Command, log: &str) -> Self {
        let log = std::fs::File::create(std::env::temp_dir().join(log)).unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a measured process");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peers' binaries and versions, from `scripts/peers` (which builds what is missing).
struct Peers {
    argo: PathBuf,
    argo_crds: PathBuf,
    argo_version: String,
    flagger: PathBuf,
    flagger_crds: PathBuf,
    flagger_version: String,
}

fn peers() -> Peers {
    let out = Command::new(support::stack::repo_root().join("scripts/peers"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/peers");
    assert!(out.status.success(), "scripts/peers failed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let path = |name: &str| -> PathBuf {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("scripts/peers names no {name}: {text}"))
    };
    let version = |p: &Path| -> String {
        let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
        dir.rsplit('-').next().unwrap().to_string()
    };
    let (argo, flagger) = (path("rollouts-controller"), path("flagger"));
    Peers {
        argo_crds: argo.parent().unwrap().join("crds"),
        argo_version: version(&argo),
        flagger_crds: flagger.parent().unwrap().join("crds"),
        flagger_version: version(&flagger),
        argo,
        flagger,
    }
}

/// What every tool works with at one N: the control plane, the Prometheus scraping the
/// services' series, their names, and the switch that turns them failing.
#[derive(Clone, Copy)]
struct Setup<'a> {
    plane: &'a ControlPlane,
    client: &'a kube::Client,
    prometheus: &'a Prometheus,
    names: &'a [String],
    failing: &'a AtomicBool,
}

/// What one tool measured at one N.
#[derive(Default)]
struct Measured {
    rss: u64,
    hwm: u64,
    cpu_per_interval: f64,
    queries_per_interval: f64,
    latencies: Vec<Duration>,
}

/// `helm list -A` at one N: wall time, CPU, peak RSS.
struct HelmPoll {
    wall: Duration,
    cpu: f64,
    max_rss_kib: u64,
}

/// One N: every tool.
struct Scale {
    n: usize,
    tools: Vec<(&'static str, Measured)>,
    helm: HelmPoll,
}

/// Queries Prometheus has answered (instant and range).
async fn queries(http: &reqwest::Client, prometheus: &str) -> f64 {
    bench::text(http, &format!("{prometheus}/metrics"))
        .await
        .lines()
        .filter(|l| l.starts_with("prometheus_http_requests_total{"))
        .filter(|l| {
            l.contains("handler=\"/api/v1/query\"") || l.contains("handler=\"/api/v1/query_range\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// CPU and Prometheus queries per interval over [`MEASURED`] intervals, then RSS.
async fn steady(http: &reqwest::Client, prometheus: &str, pid: u32) -> Measured {
    let q0 = queries(http, prometheus).await;
    let c0 = bench::cpu_seconds(pid);
    // The measurement is this window of time itself.
    tokio::time::sleep(INTERVAL * MEASURED).await;
    let q1 = queries(http, prometheus).await;
    let c1 = bench::cpu_seconds(pid);
    Measured {
        rss: load::rss_kib(pid, "VmRSS:"),
        hwm: load::rss_kib(pid, "VmHWM:"),
        cpu_per_interval: (c1 - c0) / f64::from(MEASURED),
        // The two GETs of Prometheus' /metrics above are not queries.
        queries_per_interval: (q1 - q0) / f64::from(MEASURED),
        latencies: Vec::new(),
    }
}

/// Sets every series failing, waits until Prometheus answers with all of them failing
/// (the moment the failure is observable), then polls `failed` (the names judged failed
/// so far) until all `names` are: each one's time from that moment.
async fn detection<F, Fut>(
    failing: &AtomicBool,
    prometheus: &Prometheus,
    names: &[String],
    failed: F,
) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    failing.store(true, Ordering::SeqCst);
    let all = names.len();
    let query = format!("count(bench_errors >= {FAILING})");
    support::wait::until(TIMEOUT, "the failing series in Prometheus", || async {
        let data = prometheus.query(&query, None).await;
        let n = data["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        (n >= all).then_some(())
    })
    .await;
    let observable = Instant::now();
    let mut seen: BTreeMap<String, Duration> = BTreeMap::new();
    let deadline = observable + TIMEOUT;
    while !names.iter().all(|n| seen.contains_key(n)) {
        assert!(
            Instant::now() < deadline,
            "{} of {all} failed verdicts after {TIMEOUT:?}",
            seen.len()
        );
        for name in failed().await {
            seen.entry(name).or_insert_with(|| observable.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    failing.store(false, Ordering::SeqCst);
    let mut latencies: Vec<Duration> = names.iter().map(|n| seen[n]).collect();
    latencies.sort();
    latencies
}

async fn namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
}

/// kwok nodes enough for `pods` pods (kwok manages every node).
async fn nodes(client: &kube::Client, pods: usize) {
    for i in 1..=pods.div_ceil(500) {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("kwok-bench-{i}"),
                "labels": {"kubernetes.io/hostname": format!("kwok-bench-{i}"), "type": "kwok"},
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
            "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "pods": "500"},
                       "capacity": {"cpu": "64", "memory": "512Gi", "pods": "500"}}
        }))
        .unwrap();
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }
}

/// Creates the CRDs of every YAML file in `dir` and waits until they are served.
async fn crds(client: &kube::Client, dir: &Path) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc).unwrap();
            if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                continue;
            }
            let crd: CustomResourceDefinition = serde_yaml_ng::from_value(value).unwrap();
            names.push(crd.metadata.name.clone().unwrap());
            api.create(&PostParams::default(), &crd).await.unwrap();
        }
    }
    for name in names {
        support::wait::until(TIMEOUT, &format!("CRD {name} established"), || async {
            let crd = api.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Creates `objects` (JSON) of `ar` in `ns`, 16 at a time.
async fn create_all(
    client: &kube::Client,
    ns: &str,
    ar: &ApiResource,
    objects: Vec<serde_json::Value>,
) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    futures::stream::iter(objects)
        .map(|o| {
            let api = api.clone();
            async move {
                let o: DynamicObject = serde_json::from_value(o).unwrap();
                api.create(&PostParams::default(), &o).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// The objects of `ar` in `ns`.
async fn list(client: &kube::Client, ns: &str, ar: &ApiResource) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn name_of(o: &DynamicObject) -> String {
    o.metadata.name.clone().unwrap_or_default()
}

/// Deployment `name` (labels `app: name`) with `replicas` pods, and for a release its
/// StatefulSet `<name>-state`: what the release records' manifest names.
async fn workloads(client: &kube::Client, ns: &str, name: &str, state: bool) {
    let labels = serde_json::json!({"app": name, "app.kubernetes.io/instance": name});
    let template = serde_json::json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1",
                                 "ports": [{"containerPort": 8080}]}]}
    });
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    if state {
        let s: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}-state")},
            "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": template}
        }))
        .unwrap();
        Api::<StatefulSet>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }
}

/// Waits until `n` Deployments of `ns` have all their replicas ready.
async fn rolled_out(client: &kube::Client, ns: &str, n: usize) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    support::wait::until_seen(
        TIMEOUT,
        &format!("{n} Deployments ready in {ns}"),
        || async {
            let ready = api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .filter(|d| {
                    let s = d.status.clone().unwrap_or_default();
                    s.ready_replicas.unwrap_or(0)
                        >= d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
                })
                .count();
            if ready >= n {
                Ok(())
            } else {
                Err(format!("{ready} ready"))
            }
        },
    )
    .await;
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("svc-{i:04}")).collect()
}

#[path = "peers/tools.rs"]
mod tools;

fn main() {
    let scales: Vec<usize> = std::env::var("BENCH_PEERS")
        .unwrap_or_else(|_| "50,500".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert!(!scales.is_empty(), "BENCH_PEERS names no N, e.g. 50,500");
    let peers = peers();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let measured: Vec<Scale> = scales
        .iter()
        .map(|&n| {
            let s = rt.block_on(run(&peers, n));
            eprintln!("[bench] N = {n} measured");
            s
        })
        .collect();
    let text = tools::report(&peers, &measured);
    let path = bench::write_section("peers", &text);
    println!("{text}\nwritten to {}", path.display());
}

async fn run(peers: &Peers, n: usize) -> Scale {
    // Flagger makes three Services per Canary: more than testenv's /24 of Service IPs.
    let plane = ControlPlane::start_full("--service-cluster-ip-range=10.96.0.0/16");
    let client = client_for(&plane.kubeconfig).await;
    // The upgrade-guard releases' Deployment and StatefulSet, Flagger's targets and
    // primaries, and a canary pod each while Flagger analyses.
    nodes(&client, 5 * n).await;
    let names = names(n);
    let failing = Arc::new(AtomicBool::new(false));
    let body_names = names.clone();
    let body_failing = failing.clone();
    let exporter = Exporter::start_with(Arc::new(move || {
        let v = if body_failing.load(Ordering::SeqCst) {
            FAILING
        } else {
            HEALTHY
        };
        let mut text = String::from("# TYPE bench_errors gauge\n");
        for name in &body_names {
            text.push_str(&format!("bench_errors{{service=\"{name}\"}} {v}\n"));
        }
        Some(text)
    }));
    let prometheus = Prometheus::start(
        None,
        &[Target {
            job: "services",
            address: &exporter.address,
            namespace: None,
        }],
    )
    .await;
    let setup = Setup {
        plane: &plane,
        client: &client,
        prometheus: &prometheus,
        names: &names,
        failing: &failing,
    };
    let mut tools = Vec::new();
    let done = |name: &str, m: &Measured| {
        eprintln!(
            "[bench] N = {n}, {name}: RSS {} KiB, CPU {:.3} s and {:.2} queries per interval, \
             failed verdicts after {:.1}..{:.1} s",
            m.rss,
            m.cpu_per_interval,
            m.queries_per_interval,
            seconds(&m.latencies, 0.0),
            seconds(&m.latencies, 1.0)
        );
    };
    let ug = tools::upgrade_guard(&setup).await;
    done("upgrade-guard", &ug);
    let helm = tools::helm_list(&plane);
    tools.push(("upgrade-guard", ug));
    let argo = tools::argo(peers, &setup).await;
    done("Argo Rollouts", &argo);
    tools.push(("Argo Rollouts", argo));
    let flagger = tools::flagger(peers, &setup).await;
    done("Flagger", &flagger);
    tools.push(("Flagger", flagger));
    drop(exporter);
    Scale { n, tools, helm }
}

/// Used by the tools module: percentiles of sorted latencies in seconds.
fn seconds(d: &[Duration], q: f64) -> f64 {
    percentile(d, q).as_secs_f64()
}
