//! Daemon benchmark (`cargo bench --bench daemon`): on a private etcd + kube-apiserver,
//! releases (as helm's storage driver writes them) with their Deployments, StatefulSets
//! and Pods, some of them inside their bake window (so evaluated at once), a real
//! Prometheus scraping the daemon; the release binary `upgrade-guard run` measured from
//! outside: `/metrics` and `/api/v1/releases` latency and size, Kubernetes requests per
//! round (from the API server's own metrics), Prometheus queries per round, CPU per round,
//! RSS with the stores. Two scales side by side, each on a fresh control plane: 500
//! releases with 50 under evaluation, and 5,000 with 500. The report is written to
//! `docs/benchmarks.md`. Other scales: `BENCH_SCALES=50/10,500/50`; a profile of the daemon:
//! `BENCH_WRAP=heaptrack`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark driver: a panic is the failure report"
)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "daemon/detection.rs"]
mod detection;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use support::bench::{self, env_usize, machine, percentile};
use support::control_plane::ControlPlane;
use support::kube::client_for;
use support::prometheus::{Prometheus, Target, free_port};
use support::tracking_load as load;

const NAMESPACES: usize = 50;
const ROUNDS: u64 = 20;
const SCRAPES: usize = 500;
const API_READS: usize = 100;
const INTERVAL: Duration = Duration::from_secs(2);
/// Where the daemon keeps its records (`state.namespace`).
const STATE_NAMESPACE: &str = "default";

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
    bench::sum(&bench::text(http, &format!("{url}/metrics")).await, name)
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

/// What one scale measured.
struct Measured {
    releases: usize,
    active: usize,
    config_check: f64,
    objects: f64,
    ready_after: Duration,
    rounds: f64,
    kube_per_round: f64,
    queries_per_round: f64,
    cpu_per_round: f64,
    metrics_size: usize,
    metrics: Vec<Duration>,
    api_size: usize,
    api: Vec<Duration>,
    rss: u64,
    rss_at_ready: u64,
    anon: u64,
    file: u64,
    hwm: u64,
    /// The failures made at the end, when enough releases are under evaluation.
    detected: Vec<detection::Detected>,
}

/// `BENCH_SCALES` (`releases/active,...`), else 500/50 and 5000/500.
fn scales() -> Vec<(usize, usize)> {
    let text = std::env::var("BENCH_SCALES").unwrap_or_else(|_| "500/50,5000/500".into());
    text.split(',')
        .filter_map(|s| {
            let (r, a) = s.trim().split_once('/')?;
            let r: usize = r.parse().ok()?;
            Some((r, a.parse::<usize>().ok()?.min(r)))
        })
        .collect()
}

fn main() {
    let scales = scales();
    assert!(
        !scales.is_empty(),
        "BENCH_SCALES names no scale, e.g. 500/50,5000/500"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let measured: Vec<Measured> = scales
        .iter()
        .map(|&(releases, active)| {
            let m = rt.block_on(run(releases, active));
            eprintln!("[bench] {releases}/{active} measured");
            m
        })
        .collect();
    let text = report(&measured);
    let path = bench::write_section("daemon", &text);
    println!("{text}\nwritten to {}", path.display());
}

/// `n` GETs of `url` (with `accept`), their latencies sorted and the last body's size.
async fn gets(http: &reqwest::Client, url: &str, accept: &str, n: usize) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let body = http
            .get(url)
            .header("Accept", accept)
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
    (latencies, size)
}

async fn run(releases: usize, active: usize) -> Measured {
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

    // The releases made to fail at the end (not under evaluation before) are Ready until
    // then.
    let failing = detection::choose(&names[active..]);
    for f in &failing {
        detection::ready(&client, &f.ns, &f.name).await;
    }
    let metric_failed = Arc::new(AtomicUsize::new(0));
    let app = detection::exporter(&names, &failing, metric_failed.clone());
    let alertmanager = support::alertmanager::Private::start().await;

    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let prometheus = Prometheus::start(
        None,
        &[
            Target {
                job: "upgrade-guard",
                address: &address,
                namespace: None,
            },
            Target {
                job: "app",
                address: &app.address,
                namespace: None,
            },
        ],
    )
    .await;
    // Every release has a presence check and a custom check on its error metric (two
    // check types, so two batched queries per round); the first `active` releases are
    // inside a 30 m bake window when the daemon starts, the others' 1 s window and 1 s
    // grace have passed (their pods never become Ready here, so without the grace their
    // rollouts would keep them under evaluation until the readiness deadline). The releases
    // made to fail at the end have their own entries (`mode: auto`); the budget lets each
    // be rolled back.
    let mut config = format!(
        "prometheus:\n  url: {}\n  scrape_interval: 1s\n\
         evaluation:\n  interval: {}s\n\
         watch:\n  namespaces: []\n\
         state:\n  namespace: {STATE_NAMESPACE}\n\
         notifications:\n  alertmanager:\n    urls: ['{}']\n\
         actions:\n  helm: {}\n  budget: {}\n\
         defaults:\n  bake_window: 1s\n  inconclusive_grace: 1s\n  metrics_presence:\n    - name: up\n      query: 'up{{job=\"upgrade-guard\"}}'\n{}\
         releases:\n",
        prometheus.url,
        INTERVAL.as_secs(),
        alertmanager.url,
        plane.helm().bin.display(),
        failing.len().max(1),
        detection::custom_check(),
    );
    for (ns, name) in names.iter().take(active) {
        config.push_str(&format!(
            "  - name: {name}\n    namespace: {ns}\n    bake_window: 30m\n"
        ));
    }
    for f in &failing {
        config.push_str(&detection::release_entry(f));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &config).unwrap();
    // Every revision's 1 s window must be over before the daemon starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // BENCH_WRAP=heaptrack (or another wrapper) runs the daemon under it, to profile where
    // its memory goes; the numbers of such a run measure the wrapper too.
    let daemon_binary = env!("CARGO_BIN_EXE_upgrade-guard");
    let mut command = match std::env::var("BENCH_WRAP") {
        Ok(wrapper) if !wrapper.is_empty() => {
            let mut c = Command::new(wrapper);
            c.arg(daemon_binary);
            c
        }
        _ => Command::new(daemon_binary),
    };
    // As the image runs it (deploy/Dockerfile), unless BENCH_MALLOC_ARENA_MAX says
    // otherwise (empty: glibc's default, up to 8 arenas per core).
    bench::as_the_image_runs_it(&mut command);
    let child = command
        .args(["run", "--listen", &address, "--config"])
        .arg(file.path())
        .env("KUBECONFIG", &plane.kubeconfig)
        .envs(plane.helm().env)
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
    support::wait::until_seen(
        Duration::from_secs(300),
        "evaluations and warm rounds",
        || async {
            let evaluating = metric(&http, &daemon.url, "upgrade_guard_evaluations_active").await;
            let rounds = metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await;
            // The configuration's check against the cluster (once at start, then every
            // 10 m) is measured on its own, not inside the rounds.
            let checked = metric(&http, &daemon.url, "upgrade_guard_config_checks_total").await;
            if evaluating as usize == active && rounds >= 3.0 && checked >= 1.0 {
                Ok(())
            } else {
                Err(format!(
                    "{evaluating} evaluations active, {rounds} rounds, {checked} configuration checks"
                ))
            }
        },
    )
    .await;

    // ---- rounds: requests, queries, CPU
    let r0 = metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await;
    let q0 = metric(&http, &daemon.url, "upgrade_guard_prometheus_queries_total").await;
    let k0 = kube_requests(&plane, &client).await;
    let c0 = bench::cpu_seconds(pid);
    let r_end = r0 + ROUNDS as f64;
    support::wait::until(Duration::from_secs(600), "the measured rounds", || async {
        (metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await >= r_end)
            .then_some(())
    })
    .await;
    let r1 = metric(&http, &daemon.url, "upgrade_guard_evaluation_rounds_total").await;
    let q1 = metric(&http, &daemon.url, "upgrade_guard_prometheus_queries_total").await;
    let k1 = kube_requests(&plane, &client).await;
    let c1 = bench::cpu_seconds(pid);
    let rounds = r1 - r0;
    // The measuring GETs of /metrics above are the daemon's CPU too: a bound, not a floor.
    let cpu_per_round = (c1 - c0) / rounds;

    // ---- /metrics as Prometheus scrapes it, /api/v1/releases as a dashboard reads it
    let (metrics, metrics_size) = gets(
        &http,
        &format!("{}/metrics", daemon.url),
        "application/openmetrics-text;version=1.0.0",
        SCRAPES,
    )
    .await;
    let (api, api_size) = gets(
        &http,
        &format!("{}/api/v1/releases", daemon.url),
        "application/json",
        API_READS,
    )
    .await;
    let m = Measured {
        releases,
        active,
        config_check: metric(
            &http,
            &daemon.url,
            "upgrade_guard_config_check_duration_seconds",
        )
        .await,
        objects: metric(&http, &daemon.url, "upgrade_guard_kube_store_objects").await,
        ready_after,
        rounds,
        kube_per_round: (k1 - k0) as f64 / rounds,
        queries_per_round: (q1 - q0) / rounds,
        cpu_per_round,
        metrics_size,
        metrics,
        api_size,
        api,
        rss: load::rss_kib(pid, "VmRSS:"),
        rss_at_ready,
        anon: load::rss_kib(pid, "RssAnon:"),
        file: load::rss_kib(pid, "RssFile:"),
        hwm: load::rss_kib(pid, "VmHWM:"),
        detected: Vec::new(),
    };
    // ---- last: failures, judged, alerted and rolled back
    let detected = detection::upgrade_and_fail(
        &detection::Watched {
            client: &client,
            daemon_url: &daemon.url,
            prometheus: &prometheus,
            alertmanager: &alertmanager,
            state_namespace: STATE_NAMESPACE,
        },
        &failing,
        &metric_failed,
    )
    .await;
    let m = Measured { detected, ..m };
    drop(daemon);
    drop(prometheus);
    m
}

/// The report: one column per scale, the ratio of the last to the first, the targets.
fn report(all: &[Measured]) -> String {
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d");
    let mut out = String::new();
    out.push_str("## Daemon\n\n");
    out.push_str(&format!(
        "Command: `cargo bench --bench daemon` (benches/daemon.rs), run {date} on {}.\n\n",
        machine()
    ));
    let allocator = if cfg!(feature = "jemalloc") {
        "jemalloc (`--features jemalloc`)".to_string()
    } else {
        bench::malloc_words()
    };
    out.push_str(&format!("Allocator: {allocator}.\n\n"));
    let scales: Vec<String> = all
        .iter()
        .map(|m| format!("{} / {}", m.releases, m.active))
        .collect();
    out.push_str(&format!(
        "What it does, at each scale (releases / under evaluation: {}), on a fresh private etcd \
         3.6 + kube-apiserver 1.36: the releases (3 revisions each, written as helm's storage \
         driver writes them, ≈ 20 KiB payloads) in {NAMESPACES} namespaces, each with its \
         Deployment, StatefulSet and 3 Pods (full pod specs, 5 workload objects per release); \
         the releases under evaluation are inside their bake window when the release binary \
         `upgrade-guard run` starts (all namespaces), so they are evaluated together every \
         {} s, each with the rollout, pod, Helm checks, a presence check and a custom PromQL \
         check (an error metric per release, from an exporter) against a real Prometheus that \
         scrapes the daemon and the exporter. Measured from outside: \
         Kubernetes requests from the API server's own `apiserver_request_total` (LIST and GET \
         of workloads, pods, Jobs and Secrets), queries from the daemon's \
         `upgrade_guard_prometheus_queries_total`, CPU from `/proc/<pid>/stat` over {ROUNDS} \
         rounds, RSS from `/proc/<pid>/status`, {SCRAPES} GETs of `/metrics` asking for \
         OpenMetrics, as Prometheus does, and {API_READS} GETs of `/api/v1/releases`.\n\n",
        scales.join(", "),
        INTERVAL.as_secs()
    ));
    let header: Vec<String> = scales.iter().map(|s| format!(" {s} |")).collect();
    out.push_str(&format!(
        "| |{} last ÷ first | target |\n|---|{}---|---|\n",
        header.concat(),
        "---|".repeat(all.len())
    ));
    let mut row =
        |name: &str, f: &dyn Fn(&Measured) -> f64, show: &dyn Fn(f64) -> String, target: &str| {
            let values: Vec<f64> = all.iter().map(f).collect();
            let cells: Vec<String> = values.iter().map(|v| format!(" {} |", show(*v))).collect();
            let ratio = match (values.first(), values.last()) {
                (Some(a), Some(b)) if all.len() > 1 && *a > 0.0 => format!("{:.1}×", b / a),
                _ => String::new(),
            };
            out.push_str(&format!(
                "| {name} |{} {ratio} | {target} |\n",
                cells.concat()
            ));
        };
    let count = |v: f64| format!("{v:.0}");
    let two = |v: f64| format!("{v:.2}");
    let millis = |v: f64| format!("{v:.1} ms");
    let mibs = |v: f64| format!("{v:.1} MiB");
    let kib_mib = |kib: u64| kib as f64 / 1024.0;
    let p = |d: &[Duration], q: f64| percentile(d, q).as_secs_f64() * 1000.0;
    row("releases watched", &|m| m.releases as f64, &count, "");
    row("under evaluation", &|m| m.active as f64, &count, "");
    row(
        "Kubernetes objects in the stores",
        &|m| m.objects,
        &count,
        "",
    );
    row(
        "ready (releases and stores listed) after",
        &|m| m.ready_after.as_secs_f64() * 1000.0,
        &millis,
        "",
    );
    row(
        "configuration check, one pass (every query of every release, batched)",
        &|m| m.config_check * 1000.0,
        &millis,
        "",
    );
    row("rounds measured", &|m| m.rounds, &count, "");
    row(
        "Kubernetes requests per round",
        &|m| m.kube_per_round,
        &two,
        "0",
    );
    row(
        "Prometheus queries per round",
        &|m| m.queries_per_round,
        &two,
        "one per check type (2 here), whatever the scale",
    );
    row(
        "CPU per round",
        &|m| m.cpu_per_round * 1000.0,
        &millis,
        "no faster than linear in the revisions evaluated",
    );
    row(
        "CPU per round and revision evaluated",
        &|m| m.cpu_per_round * 1000.0 / m.active.max(1) as f64,
        &|v| format!("{v:.2} ms"),
        "flat",
    );
    row(
        "`/metrics` size (bytes)",
        &|m| m.metrics_size as f64,
        &count,
        "",
    );
    row(
        "`/metrics` latency p50",
        &|m| p(&m.metrics, 0.5),
        &millis,
        "",
    );
    row(
        "`/metrics` latency p99",
        &|m| p(&m.metrics, 0.99),
        &millis,
        "≤ 50 ms",
    );
    row(
        "`/api/v1/releases` size (bytes)",
        &|m| m.api_size as f64,
        &count,
        "",
    );
    row(
        "`/api/v1/releases` latency p50",
        &|m| p(&m.api, 0.5),
        &millis,
        "",
    );
    row(
        "`/api/v1/releases` latency p99",
        &|m| p(&m.api, 0.99),
        &millis,
        "",
    );
    row(
        "RSS (steady, with the stores)",
        &|m| kib_mib(m.rss),
        &mibs,
        "≤ 128 MiB",
    );
    row(
        "heap and stacks when ready (listed, before rounds)",
        &|m| kib_mib(m.rss_at_ready),
        &mibs,
        "",
    );
    row("heap and stacks (steady)", &|m| kib_mib(m.anon), &mibs, "");
    row("mapped binary", &|m| kib_mib(m.file), &mibs, "");
    row("peak RSS (VmHWM)", &|m| kib_mib(m.hwm), &mibs, "≤ 128 MiB");
    out.push_str(&detection_report(all));
    out
}

/// When a step of a detection happened.
type Step = fn(&detection::Detected) -> jiff::Timestamp;

/// The detection table: per kind of failure and scale, the floor and each step's latency
/// (median, then the range over the releases failed).
fn detection_report(all: &[Measured]) -> String {
    use detection::Kind;
    if all.iter().all(|m| m.detected.is_empty()) {
        return String::new();
    }
    let mut out = format!(
        "\n### Detection latency\n\nAt the end of each scale's run, {two_n} releases that \
         were not under evaluation (their workloads Ready, `mode: auto`, `bake_window: {bw} s`) \
         are upgraded as helm's storage driver writes it; once that revision has passed its \
         bake (the revision to roll back to), they are upgraded again and fail at once during \
         that bake: in {n} a pod enters CrashLoopBackOff (its status written through the \
         status subresource, as a kubelet writes it; `pending_timeout: {pt} s` for these \
         releases), in {n} the release's error \
         metric jumps over its threshold in what Prometheus scrapes (`for:` is the default, two \
         evaluation intervals). Each latency runs from the moment the failure is observable \
         (the pod's status time; the first sample over the threshold in Prometheus) to the \
         failed verdict (the judgement's time), the alert held by Alertmanager (its \
         `updatedAt`), and the start of the rollback (the action record's intent, written \
         before `helm rollback` runs). The floor is the evidence time plus one evaluation \
         interval ({i} s): for the pod, `pending_timeout` and the two rounds every Kubernetes \
         finding must hold; for the metric, its `for:`. No verdict can come before the evidence \
         time; one that comes under the floor found its round right after the failure. The \
         failures of each kind come one second apart, so that they fall at different points \
         of the round. Median over the releases (range).\n\n",
        n = detection::PER_KIND,
        two_n = 2 * detection::PER_KIND,
        bw = detection::BAKE_WINDOW.as_secs(),
        pt = detection::PENDING_TIMEOUT.as_secs(),
        i = INTERVAL.as_secs(),
    );
    let shown: Vec<&Measured> = all.iter().filter(|m| !m.detected.is_empty()).collect();
    let header: Vec<String> = shown
        .iter()
        .map(|m| format!(" {} / {} |", m.releases, m.active))
        .collect();
    out.push_str(&format!(
        "| |{}\n|---|{}\n",
        header.concat(),
        "---|".repeat(shown.len())
    ));
    for kind in [Kind::Pod, Kind::Metric] {
        let floor = detection::floor(kind, INTERVAL).as_secs_f64();
        let spans = |m: &Measured, step: &dyn Fn(&detection::Detected) -> jiff::Timestamp| {
            let mut v: Vec<f64> = m
                .detected
                .iter()
                .filter(|d| d.kind == kind)
                .map(|d| step(d).duration_since(d.observable).as_secs_f64())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let cell = |v: &[f64], scale: f64, unit: &str| match (v.first(), v.last()) {
            (Some(lo), Some(hi)) => format!(
                " {:.1}{unit} ({:.1}–{:.1}) |",
                v[v.len() / 2] / scale,
                lo / scale,
                hi / scale
            ),
            _ => " |".to_string(),
        };
        let evidence = detection::evidence(kind, INTERVAL).as_secs_f64();
        out.push_str(&format!(
            "| **{}**: evidence time; floor | {} |\n",
            kind.words(),
            vec![format!("{evidence:.0} s; {floor:.0} s"); shown.len()].join(" | ")
        ));
        let steps: [(&str, Step); 3] = [
            ("failed verdict", |d| d.verdict),
            ("alert in Alertmanager", |d| d.alert),
            ("rollback started", |d| d.rollback),
        ];
        for (name, step) in steps {
            let cells: Vec<String> = shown
                .iter()
                .map(|m| cell(&spans(m, &step), 1.0, " s"))
                .collect();
            out.push_str(&format!("| {name} after |{}\n", cells.concat()));
        }
        let ratios: Vec<String> = shown
            .iter()
            .map(|m| cell(&spans(m, &|d| d.verdict), floor, "×"))
            .collect();
        out.push_str(&format!("| failed verdict ÷ floor |{}\n", ratios.concat()));
    }
    out
}
