//! Daemon benchmark (`cargo bench --bench daemon`): on a private etcd + kube-apiserver,
//! 500 releases (as helm's storage driver writes them) with their Deployments, StatefulSets
//! and Pods, 50 of them inside their bake window (so evaluated at once), a real Prometheus
//! scraping the daemon; the release binary `upgrade-guard run` measured from outside:
//! `/metrics` latency and size, Kubernetes requests per round (from the API server's own
//! metrics), Prometheus queries per round, CPU per round and RSS with the stores. The report
//! is written to `docs/benchmarks.md`. Smaller: `BENCH_RELEASES=50 BENCH_ACTIVE=10`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark driver: a panic is the failure report"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use support::bench::{self, env_usize, machine, mib, ms, percentile};
use support::control_plane::ControlPlane;
use support::kube::client_for;
use support::prometheus::{Prometheus, Target, free_port};
use support::tracking_load as load;

const NAMESPACES: usize = 50;
const ROUNDS: u64 = 20;
const SCRAPES: usize = 500;
const INTERVAL: &str = "2s";

fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// The objects a release's manifest names, as a cluster holds them: a Deployment with two
/// pods, a StatefulSet with one (full specs, so trimming them in the stores matters).
async fn workloads(client: &kube::Client, ns: &str, name: &str) {
    let container = serde_json::json!({
        "name": "gim", "image": "registry.invalid/gim:100.0.116",
        "env": (0..20).map(|i| serde_json::json!({"name": format!("SETTING_{i}"), "value": "x".repeat(40)})).collect::<Vec<_>>(),
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}}
    });
    let template = serde_json::json!({
        "metadata": {"labels": {"app.kubernetes.io/instance": name}},
        "spec": {"containers": [container.clone()]}
    });
    let deployment: Deployment = json(serde_json::json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/instance": name}},
                 "template": template.clone()}
    }));
    let sts: StatefulSet = json(serde_json::json!({
        "metadata": {"name": format!("{name}-state"), "namespace": ns},
        "spec": {"replicas": 1, "serviceName": name,
                 "selector": {"matchLabels": {"app.kubernetes.io/instance": format!("{name}-state")}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/instance": format!("{name}-state")}},
                              "spec": {"containers": [container.clone()]}}}
    }));
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let pods = [
        (
            format!("{name}-5d8f7c9b4-a1"),
            name.to_string(),
            "ReplicaSet",
            format!("{name}-5d8f7c9b4"),
        ),
        (
            format!("{name}-5d8f7c9b4-b2"),
            name.to_string(),
            "ReplicaSet",
            format!("{name}-5d8f7c9b4"),
        ),
        (
            format!("{name}-state-0"),
            format!("{name}-state"),
            "StatefulSet",
            format!("{name}-state"),
        ),
    ];
    for (pod, instance, owner_kind, owner) in pods {
        let p: Pod = json(serde_json::json!({
            "metadata": {"name": pod, "namespace": ns,
                         "labels": {"app.kubernetes.io/instance": instance},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner,
                                              "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
            "spec": {"containers": [container.clone()]}
        }));
        Api::<Pod>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &p)
            .await
            .unwrap();
    }
}

struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn metric(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    ticks / hz
}

async fn kube_requests(plane: &ControlPlane, client: &kube::Client) -> u64 {
    let mut n = 0;
    for resource in [
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "pods",
        "jobs",
        "secrets",
    ] {
        for verb in ["LIST", "GET"] {
            n += plane.request_count(client, verb, resource).await;
        }
    }
    n
}

fn main() {
    let releases = env_usize("BENCH_RELEASES", 500);
    let active = env_usize("BENCH_ACTIVE", 50).min(releases);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let text = rt.block_on(run(releases, active));
    let path = bench::write_section("daemon", &text);
    println!("{text}\nwritten to {}", path.display());
}

async fn run(releases: usize, active: usize) -> String {
    let plane = ControlPlane::start();
    let client = client_for(&plane.kubeconfig).await;
    let names = load::release_names("bench", releases, NAMESPACES);
    load::load(&client, &names, 3, 14 * 1024, 16).await;
    // BENCH_WORKLOADS=0 leaves the workloads out (to see what the stores cost).
    let with_workloads = env_usize("BENCH_WORKLOADS", 1) != 0;
    futures::stream::iter(names.iter().filter(|_| with_workloads))
        .map(|(ns, name)| {
            let client = client.clone();
            async move { workloads(&client, ns, name).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("[bench] {releases} releases and their workloads written");

    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let prometheus = Prometheus::start(
        None,
        &[Target {
            job: "upgrade-guard",
            address: &address,
            namespace: None,
        }],
    )
    .await;
    // Every release has a presence check and a custom check (two check types, so two
    // batched queries per round); the first `active` releases are inside a 30 m bake
    // window when the daemon starts, the others' 1 s window has passed.
    let mut config = format!(
        "prometheus:\n  url: {}\n  scrape_interval: 1s\n\
         evaluation:\n  interval: {INTERVAL}\n\
         watch:\n  namespaces: []\n\
         state:\n  namespace: default\n\
         defaults:\n  bake_window: 1s\n  metrics_presence:\n    - name: up\n      query: 'up{{job=\"upgrade-guard\"}}'\n  \
         custom:\n    - name: probe\n      query: 'vector(1)'\n      max: 10\n\
         releases:\n",
        prometheus.url
    );
    for (ns, name) in names.iter().take(active) {
        config.push_str(&format!(
            "  - name: {name}\n    namespace: {ns}\n    bake_window: 30m\n"
        ));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &config).unwrap();
    // Every revision's 1 s window must be over before the daemon starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let child = Command::new(env!("CARGO_BIN_EXE_upgrade-guard"))
        .args(["run", "--listen", &address, "--config"])
        .arg(file.path())
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join("upgrade-guard-bench-daemon.log"))
                .unwrap(),
        )
        .spawn()
        .expect("start upgrade-guard run");
    let pid = child.id();
    let daemon = Daemon {
        url: format!("http://{address}"),
        child,
    };
    let http = reqwest::Client::new();
    let started = Instant::now();
    support::wait::until(Duration::from_secs(300), "/readyz", || async {
        let r = http
            .get(format!("{}/readyz", daemon.url))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let ready_after = started.elapsed();
    let rss_at_ready = load::rss_kib(pid, "RssAnon:");
    support::wait::until(
        Duration::from_secs(300),
        "evaluations and warm rounds",
        || async {
            let evaluating = metric(&http, &daemon.url, "upgrade_guard_evaluations_active").await;
            let rounds = metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await;
            (evaluating as usize == active && rounds >= 3.0).then_some(())
        },
    )
    .await;

    // ---- rounds: requests, queries, CPU
    let r0 = metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await;
    let q0 = metric(&http, &daemon.url, "upgrade_guard_prometheus_queries_total").await;
    let k0 = kube_requests(&plane, &client).await;
    let c0 = cpu_seconds(pid);
    let r_end = r0 + ROUNDS as f64;
    support::wait::until(Duration::from_secs(600), "the measured rounds", || async {
        (metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await >= r_end)
            .then_some(())
    })
    .await;
    let r1 = metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await;
    let q1 = metric(&http, &daemon.url, "upgrade_guard_prometheus_queries_total").await;
    let k1 = kube_requests(&plane, &client).await;
    let c1 = cpu_seconds(pid);
    let rounds = r1 - r0;
    // The measuring GETs of /metrics above are the daemon's CPU too: a bound, not a floor.
    let cpu_per_round = (c1 - c0) / rounds;

    // ---- /metrics as Prometheus scrapes it
    let mut latencies = Vec::with_capacity(SCRAPES);
    let mut size = 0;
    for _ in 0..SCRAPES {
        let t = Instant::now();
        let body = http
            .get(format!("{}/metrics", daemon.url))
            .header("Accept", "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        latencies.push(t.elapsed());
        size = body.len();
    }
    latencies.sort();
    let rss = load::rss_kib(pid, "VmRSS:");
    let hwm = load::rss_kib(pid, "VmHWM:");
    let anon = load::rss_kib(pid, "RssAnon:");
    let file = load::rss_kib(pid, "RssFile:");
    let objects = metric(&http, &daemon.url, "upgrade_guard_kube_store_objects").await;
    drop(daemon);
    drop(prometheus);

    let date = jiff::Timestamp::now().strftime("%Y-%m-%d");
    let mut out = String::new();
    out.push_str("## Daemon\n\n");
    out.push_str(&format!(
        "Command: `cargo bench --bench daemon` (benches/daemon.rs), run {date} on {}.\n\n",
        machine()
    ));
    out.push_str(&format!(
        "What it does: a private etcd 3.6 + kube-apiserver 1.36 holds {releases} releases (3 \
         revisions each, written as helm's storage driver writes them, ≈ 20 KiB payloads) in \
         {NAMESPACES} namespaces, each with its Deployment, StatefulSet and 3 Pods (full pod \
         specs); {active} releases are inside their bake window when the release binary \
         `upgrade-guard run` starts (all namespaces), so {active} revisions are evaluated every \
         {INTERVAL}, each with the rollout, pod, Helm checks, a presence check and a custom \
         PromQL check against a real Prometheus that scrapes the daemon. Measured from outside: \
         Kubernetes requests from the API server's own `apiserver_request_total` (LIST and GET \
         of workloads, pods, Jobs and Secrets), queries from the daemon's \
         `upgrade_guard_prometheus_queries_total`, CPU from `/proc/<pid>/stat` over {ROUNDS} \
         rounds, RSS from `/proc/<pid>/status`, and {SCRAPES} GETs of `/metrics` asking for \
         OpenMetrics, as Prometheus does.\n\n"
    ));
    if releases != 500 || active != 50 {
        out.push_str("**Reduced run** (BENCH_RELEASES/BENCH_ACTIVE set): not the target size.\n\n");
    }
    out.push_str("| | measured | target |\n|---|---|---|\n");
    let mut row = |name: &str, value: String, target: &str| {
        out.push_str(&format!("| {name} | {value} | {target} |\n"));
    };
    row(
        "releases watched / under evaluation",
        format!("{releases} / {active}"),
        "",
    );
    row("Kubernetes objects in the stores", format!("{objects}"), "");
    row(
        "ready (releases and stores listed) after",
        ms(ready_after),
        "",
    );
    row("rounds measured", format!("{rounds}"), "");
    row(
        "Kubernetes requests per round",
        format!("{:.2}", (k1 - k0) as f64 / rounds),
        "0",
    );
    row(
        "Prometheus queries per round",
        format!("{:.2}", (q1 - q0) / rounds),
        "one per check type (2 here)",
    );
    row(
        "CPU per round",
        format!("{:.1} ms", cpu_per_round * 1000.0),
        "",
    );
    row("`/metrics` size", format!("{size} bytes"), "");
    row(
        "`/metrics` latency p50",
        ms(percentile(&latencies, 0.5)),
        "",
    );
    row(
        "`/metrics` latency p99",
        ms(percentile(&latencies, 0.99)),
        "≤ 20 ms",
    );
    row("RSS (steady, with the stores)", mib(rss), "≤ 64 MiB");
    row(
        "heap and stacks when ready (listed, before rounds)",
        mib(rss_at_ready),
        "",
    );
    row(
        "of which heap and stacks / mapped binary",
        format!("{} / {}", mib(anon), mib(file)),
        "",
    );
    row("peak RSS (VmHWM)", mib(hwm), "");
    out
}
