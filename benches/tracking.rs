//! Release-tracking benchmark (`cargo bench --bench tracking`): on a private etcd +
//! kube-apiserver, writes 500 releases × 10 revisions of release Secrets exactly as helm's
//! storage driver does (name, type, labels, base64(gzip(JSON)) payload), runs the real
//! `upgrade-guard watch` process against them and measures: time to initial sync, steady and
//! peak RSS, RSS with 20 KiB versus 200 KiB payloads, the latency from the write that settles
//! a new revision to its event, and the API requests per new revision (from the API server's
//! own `apiserver_request_total`). `helm list -A` is timed on the same data for comparison.
//! The report is written to `docs/benchmarks.md`.
//!
//! Smaller runs: `BENCH_RELEASES=50 BENCH_NEW_REVISIONS=20 cargo bench --bench tracking`
//! (the report then says so).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark driver: a panic is the failure report"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use support::control_plane::ControlPlane;
use support::kube::client_for;

const NAMESPACES: usize = 50;
const LOAD_CONCURRENCY: usize = 16;
const SETTLE: Duration = Duration::from_secs(5);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic, incompressible filler (xorshift64*), standing for chart templates and
/// bundled files: what makes real payloads big.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

const MANIFEST: &str = r#"---
# Source: gim/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: RELEASE
  labels:
    app.kubernetes.io/name: gim
spec:
  ports:
    - port: 8080
      name: http
  selector:
    app.kubernetes.io/instance: RELEASE
---
# Source: gim/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: RELEASE-config
data:
  application.properties: |
    kafka.bootstrap=kafka:9092
    db.url=jdbc:postgresql://postgres:5432/gim
---
# Source: gim/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: RELEASE
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/instance: RELEASE
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: RELEASE
    spec:
      containers:
        - name: gim
          image: "registry.invalid/gim:100.0.116"
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet:
              path: /health
              port: 8080
---
# Source: gim/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: RELEASE-state
spec:
  serviceName: RELEASE
  selector:
    matchLabels:
      app.kubernetes.io/instance: RELEASE
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: RELEASE
    spec:
      containers:
        - name: state
          image: "registry.invalid/gim-state:100.0.116"
"#;

/// `data.release` as helm writes it: base64(gzip(release JSON)).
fn payload(ns: &str, name: &str, revision: u32, status: &str, filler_bytes: usize) -> Vec<u8> {
    let description = match status {
        "pending-upgrade" => "Preparing upgrade",
        _ if revision == 1 => "Install complete",
        _ => "Upgrade complete",
    };
    let seed = u64::from(revision)
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let template = base64::engine::general_purpose::STANDARD.encode(filler(seed, filler_bytes));
    let json = serde_json::json!({
        "name": name,
        "namespace": ns,
        "version": revision,
        "info": {
            "first_deployed": "2026-11-01T10:00:00.000000000Z",
            "last_deployed": "2026-11-25T10:00:00.000000000Z",
            "deleted": "",
            "description": description,
            "status": status,
        },
        "chart": {
            "metadata": {"name": "gim", "version": "100.0.116+2900", "appVersion": "100.0.116",
                          "apiVersion": "v2", "description": "Genesys Info Mart"},
            "lock": null,
            "templates": [{"name": "templates/bundle.yaml", "data": template}],
            "values": {"image": {"repository": "registry.invalid/gim", "tag": "100.0.116"}},
            "schema": null,
            "files": [],
        },
        "config": {"image": {"tag": "100.0.116"}, "db": {"password": "bench-not-a-secret"}},
        "manifest": MANIFEST.replace("RELEASE", name),
        "hooks": [{
            "name": format!("{name}-migrate"), "kind": "Job",
            "path": "gim/templates/migrate.yaml",
            "manifest": format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}-migrate\n"),
            "events": ["pre-upgrade"],
            "last_run": {"started_at": "2026-11-25T10:00:00Z", "completed_at": "2026-11-25T10:01:00Z", "phase": "Succeeded"},
            "delete_policies": ["before-hook-creation"],
        }],
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&json).unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(gz.finish().unwrap())
        .into_bytes()
}

fn secret(ns: &str, name: &str, revision: u32, status: &str, filler_bytes: usize) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(format!("sh.helm.release.v1.{name}.v{revision}"));
    s.metadata.namespace = Some(ns.to_string());
    s.metadata.labels = Some(BTreeMap::from([
        ("name".to_string(), name.to_string()),
        ("owner".to_string(), "helm".to_string()),
        ("status".to_string(), status.to_string()),
        ("version".to_string(), revision.to_string()),
        ("modifiedAt".to_string(), "1795600000".to_string()),
    ]));
    s.type_ = Some("helm.sh/release.v1".to_string());
    s.data = Some(BTreeMap::from([(
        "release".to_string(),
        ByteString(payload(ns, name, revision, status, filler_bytes)),
    )]));
    s
}

fn release_names(releases: usize) -> Vec<(String, String)> {
    (0..releases)
        .map(|i| {
            (
                format!("bench-{:02}", i % NAMESPACES),
                format!("svc-{i:03}"),
            )
        })
        .collect()
}

/// Sum of `apiserver_request_total` for Secrets, by verb.
async fn secret_requests(client: &kube::Client) -> BTreeMap<String, u64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client
        .request_text(req)
        .await
        .expect("read apiserver /metrics");
    let mut by_verb = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("resource=\"secrets\""))
    {
        let verb = line
            .split("verb=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by_verb.entry(verb.to_string()).or_insert(0) += value as u64;
    }
    by_verb
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, verb: &str) -> u64 {
    after.get(verb).copied().unwrap_or(0) - before.get(verb).copied().unwrap_or(0)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Results {
    payload_bytes: usize,
    secrets: usize,
    load: Duration,
    sync: Duration,
    sync_lists: u64,
    rss_after_sync_kib: u64,
    rss_after_changes_kib: u64,
    peak_rss_kib: u64,
    new_revisions: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    gets_per_revision: f64,
    lists_per_revision: f64,
    watches: u64,
    helm_list: Duration,
    helm_list_rss_kib: u64,
}

/// Event lines of the tracker: "namespace/name" + revision -> when it was read.
type Seen = Arc<Mutex<Vec<(String, u32, Instant)>>>;

async fn run_dataset(
    releases: usize,
    revisions: u32,
    new_revisions: usize,
    filler_bytes: usize,
) -> Results {
    let plane = ControlPlane::start();
    let client = client_for(&plane.kubeconfig).await;
    let names = release_names(releases);
    let payload_bytes = payload("bench-00", "svc-000", 1, "superseded", filler_bytes).len();

    // ---- load
    let load_started = Instant::now();
    for i in 0..NAMESPACES.min(releases) {
        let ns: Namespace = serde_json::from_value(
            serde_json::json!({"metadata": {"name": format!("bench-{i:02}")}}),
        )
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let jobs = names
        .iter()
        .flat_map(|(ns, name)| (1..=revisions).map(move |rev| (ns.clone(), name.clone(), rev)));
    futures::stream::iter(jobs)
        .map(|(ns, name, rev)| {
            let client = client.clone();
            async move {
                let status = if rev == revisions {
                    "deployed"
                } else {
                    "superseded"
                };
                let s = tokio::task::spawn_blocking(move || {
                    secret(&ns, &name, rev, status, filler_bytes)
                })
                .await
                .unwrap();
                let ns = s.metadata.namespace.clone().unwrap();
                Api::<Secret>::namespaced(client, &ns)
                    .create(&PostParams::default(), &s)
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let load = load_started.elapsed();
    eprintln!(
        "[bench] loaded {} Secrets of {payload_bytes} bytes in {load:?}",
        releases * revisions as usize
    );

    // ---- start the tracker process and wait for its initial sync
    let before_sync = secret_requests(&client).await;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_upgrade-guard"))
        .args(["--log-format", "json", "watch", "-n", "*", "-o", "json"])
        .env("KUBECONFIG", &plane.kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start upgrade-guard watch");
    let pid = child.id();
    let (synced_tx, synced_rx) = std::sync::mpsc::channel::<Instant>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("release Secrets listed") {
                let _ = synced_tx.send(Instant::now());
            }
        }
    });
    let seen: Seen = Arc::default();
    let stdout = child.stdout.take().unwrap();
    let seen_writer = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let now = Instant::now();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let key = format!(
                "{}/{}",
                v["release"]["namespace"].as_str().unwrap_or(""),
                v["release"]["name"].as_str().unwrap_or("")
            );
            let rev = v["revision"].as_u64().unwrap_or(0) as u32;
            seen_writer.lock().unwrap().push((key, rev, now));
        }
    });
    let synced_at = synced_rx
        .recv_timeout(Duration::from_secs(600))
        .expect("tracker synced");
    let sync = synced_at - started;
    let after_sync = secret_requests(&client).await;
    tokio::time::sleep(SETTLE).await;
    let rss_after_sync_kib = rss_kib(pid, "VmRSS:");
    assert!(
        seen.lock().unwrap().is_empty(),
        "settled revisions must not be announced"
    );

    // ---- new revisions, written in helm's order, one at a time
    let before = secret_requests(&client).await;
    let mut latencies = Vec::with_capacity(new_revisions);
    for i in 0..new_revisions {
        let (ns, name) = &names[i % names.len()];
        let round = (i / names.len()) as u32;
        let new = revisions + 1 + round;
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        // history-max 10: helm deletes the oldest before creating the new revision.
        api.delete(
            &format!("sh.helm.release.v1.{name}.v{}", new - revisions),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
        let pending = secret(ns, name, new, "pending-upgrade", filler_bytes);
        api.create(&PostParams::default(), &pending).await.unwrap();
        let old = secret(ns, name, new - 1, "superseded", filler_bytes);
        api.replace(
            old.metadata.name.as_deref().unwrap(),
            &PostParams::default(),
            &old,
        )
        .await
        .unwrap();
        let deployed = secret(ns, name, new, "deployed", filler_bytes);
        let key = format!("{ns}/{name}");
        let t0 = Instant::now();
        api.replace(
            deployed.metadata.name.as_deref().unwrap(),
            &PostParams::default(),
            &deployed,
        )
        .await
        .unwrap();
        let t1 = support::wait::until(Duration::from_secs(60), "the upgrade event", || {
            let seen = seen.clone();
            let key = key.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .iter()
                    .find(|(k, r, _)| *k == key && *r == new)
                    .map(|(_, _, t)| *t)
            }
        })
        .await;
        latencies.push(t1 - t0);
    }
    let after = secret_requests(&client).await;
    tokio::time::sleep(SETTLE).await;
    let rss_after_changes_kib = rss_kib(pid, "VmRSS:");
    let peak_rss_kib = rss_kib(pid, "VmHWM:");
    let announced = seen.lock().unwrap().len();
    assert_eq!(announced, new_revisions, "one event per new revision");
    let _ = child.kill();
    let _ = child.wait();

    // ---- helm list -A on the same data
    let helm = plane.helm();
    let helm_started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(&helm.bin)
        .args(["list", "-A"])
        .envs(helm.env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run helm list -A");
    let helm_list = helm_started.elapsed();
    assert!(
        out.status.success(),
        "helm list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let helm_list_rss_kib = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);

    latencies.sort();
    let n = new_revisions.max(1) as f64;
    Results {
        payload_bytes,
        secrets: releases * revisions as usize,
        load,
        sync,
        sync_lists: delta(&after_sync, &before_sync, "LIST"),
        rss_after_sync_kib,
        rss_after_changes_kib,
        peak_rss_kib,
        new_revisions,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        gets_per_revision: delta(&after, &before, "GET") as f64 / n,
        lists_per_revision: delta(&after, &before, "LIST") as f64 / n,
        watches: delta(&after, &before, "WATCH"),
        helm_list,
        helm_list_rss_kib,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    format!(
        "{} × {cpu}, {:.0} GiB RAM",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        total as f64 / 1024.0 / 1024.0
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(results: &[Results], releases: usize, revisions: u32, new_revisions: usize) -> String {
    let mut out = String::new();
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d");
    out.push_str("## Release tracking\n\n");
    out.push_str(&format!(
        "Command: `cargo bench --bench tracking` (benches/tracking.rs), run {date} on {}.\n\n",
        machine()
    ));
    out.push_str(&format!(
        "What it does: starts a private etcd 3.6 + kube-apiserver 1.36 (testenv), writes \
         {releases} releases × {revisions} revisions = {} release Secrets across {NAMESPACES} \
         namespaces exactly as helm's storage driver writes them (name \
         `sh.helm.release.v1.<release>.v<n>`, type `helm.sh/release.v1`, labels \
         `name/owner/status/version/modifiedAt`, `data.release` = base64(gzip(JSON)) with a \
         manifest of four objects, a hook, user values and chart templates), then starts the \
         release binary `upgrade-guard watch -o json` (all namespaces) and measures it from \
         outside: RSS from `/proc/<pid>/status` (VmRSS, VmHWM), requests from the API server's \
         own `apiserver_request_total{{resource=\"secrets\"}}`. New revisions are written one at \
         a time in helm's order (delete the oldest for history-max 10, create `pending-upgrade`, \
         mark the previous `superseded`, mark the new one `deployed`); latency runs from the \
         start of the final write to the moment the event line is read from the tracker's \
         stdout. `helm list -A` (helm 3.22) runs on the same data afterwards.\n\n",
        releases * revisions as usize
    ));
    if releases != 500 || revisions != 10 {
        out.push_str(
            "**Reduced run** (BENCH_RELEASES/BENCH_REVISIONS set): not the target size.\n\n",
        );
    }
    out.push_str("| | ");
    out.push_str(
        &results
            .iter()
            .map(|r| format!("payload ≈ {} KiB", r.payload_bytes / 1024))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" | target |\n|---|");
    out.push_str(&"---|".repeat(results.len()));
    out.push_str("---|\n");
    let row = |out: &mut String, name: &str, f: &dyn Fn(&Results) -> String, target: &str| {
        out.push_str(&format!("| {name} | "));
        out.push_str(&results.iter().map(f).collect::<Vec<_>>().join(" | "));
        out.push_str(&format!(" | {target} |\n"));
    };
    row(&mut out, "release Secrets", &|r| r.secrets.to_string(), "");
    row(
        &mut out,
        "`data.release` size",
        &|r| format!("{} bytes", r.payload_bytes),
        "",
    );
    row(
        &mut out,
        "load time (16 writers)",
        &|r| format!("{:.1} s", r.load.as_secs_f64()),
        "",
    );
    row(&mut out, "time to initial sync", &|r| ms(r.sync), "");
    row(
        &mut out,
        "LIST requests for the initial sync",
        &|r| r.sync_lists.to_string(),
        "",
    );
    row(
        &mut out,
        "RSS after sync (steady)",
        &|r| mib(r.rss_after_sync_kib),
        "≤ 32 MiB",
    );
    row(
        &mut out,
        &format!("RSS after {new_revisions} new revisions"),
        &|r| mib(r.rss_after_changes_kib),
        "≤ 32 MiB",
    );
    row(
        &mut out,
        "peak RSS (VmHWM)",
        &|r| {
            format!(
                "{} ({:.2}× steady)",
                mib(r.peak_rss_kib),
                r.peak_rss_kib as f64 / r.rss_after_sync_kib.max(1) as f64
            )
        },
        "≤ 2× steady",
    );
    row(
        &mut out,
        "new revisions measured",
        &|r| r.new_revisions.to_string(),
        "",
    );
    row(&mut out, "latency p50", &|r| ms(r.p50), "");
    row(&mut out, "latency p99", &|r| ms(r.p99), "≤ 100 ms");
    row(&mut out, "latency max", &|r| ms(r.max), "");
    row(
        &mut out,
        "GET per new revision",
        &|r| format!("{:.2}", r.gets_per_revision),
        "1",
    );
    row(
        &mut out,
        "LIST per new revision",
        &|r| format!("{:.2}", r.lists_per_revision),
        "0",
    );
    row(
        &mut out,
        "WATCH requests during the changes",
        &|r| r.watches.to_string(),
        "",
    );
    row(
        &mut out,
        "`helm list -A` wall time",
        &|r| format!("{:.2} s", r.helm_list.as_secs_f64()),
        "",
    );
    row(
        &mut out,
        "`helm list -A` peak RSS",
        &|r| mib(r.helm_list_rss_kib),
        "",
    );
    out
}

/// Replaces the section between the tracking markers of docs/benchmarks.md (other
/// benchmarks keep their sections).
fn write_section(section: &str) -> std::path::PathBuf {
    const BEGIN: &str = "<!-- bench:tracking:begin -->";
    const END: &str = "<!-- bench:tracking:end -->";
    let path = support::stack::repo_root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".to_string());
    let block = format!("{BEGIN}\n{section}{END}\n");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{block}{}",
            &old[..b],
            &old[e + END.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n{block}", old.trim_end()),
    };
    std::fs::write(&path, new).unwrap();
    path
}

fn main() {
    let releases = env_usize("BENCH_RELEASES", 500);
    let revisions = env_usize("BENCH_REVISIONS", 10) as u32;
    let new_revisions = env_usize("BENCH_NEW_REVISIONS", 200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut results = Vec::new();
    // Filler sizes chosen so that data.release is ≈ 20 KiB and ≈ 200 KiB.
    for filler_bytes in [14 * 1024, 148 * 1024] {
        results.push(rt.block_on(run_dataset(
            releases,
            revisions,
            new_revisions,
            filler_bytes,
        )));
    }
    let text = report(&results, releases, revisions, new_revisions);
    let path = write_section(&text);
    println!("{text}\nwritten to {}", path.display());
}
