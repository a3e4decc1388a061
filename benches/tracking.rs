//! Release-tracking benchmark (`cargo bench --bench tracking`): on a private etcd +
//! kube-apiserver, writes 500 releases × 10 revisions of release Secrets exactly as helm's
//! storage driver does (name, type, labels, base64(gzip(JSON)) payload), runs the real
//! `upgrade-guard watch` process against them and measures: time to initial sync, steady and
//! peak RSS, RSS with 20 KiB versus 200 KiB payloads, the latency from the write that settles
//! a new revision to its event, and the API requests per new revision (from the API server's
//! own `apiserver_request_total`). `helm list -A` is timed on the same data for comparison.
//! The report is written to `docs/benchmarks.md`.
//!
//! A third run repeats the 20 KiB case ten times larger (5,000 releases, 50,000 Secrets) and
//! reports the latency as a ratio to the floor no watcher can beat (the settling write plus
//! one GET). Smaller runs: `BENCH_RELEASES=50 BENCH_LARGE_RELEASES=100
//! BENCH_NEW_REVISIONS=20 cargo bench --bench tracking` (the report then says so).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark driver: a panic is the failure report"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use support::bench::{self, env_usize, machine, mib, ms, percentile};
use support::control_plane::ControlPlane;
use support::kube::client_for;
use support::tracking_load as load;

const NAMESPACES: usize = 50;
const LOAD_CONCURRENCY: usize = 16;
const SETTLE: Duration = Duration::from_secs(5);

/// The tracker's configuration for the benchmark: every namespace, and a bake window so
/// short that the freshly written revisions are not announced again at start.
const CONFIG: &str = "watch:\n  namespaces: []\ndefaults:\n  bake_window: 1s\n";

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
    floor_p50: Duration,
    floor_p99: Duration,
    gets_per_revision: f64,
    lists_per_revision: f64,
    watches: u64,
    helm_list: Option<(Duration, u64)>,
}

async fn run_dataset(
    releases: usize,
    revisions: u32,
    new_revisions: usize,
    filler_bytes: usize,
    helm_list: bool,
) -> Results {
    let plane = ControlPlane::start();
    let client = client_for(&plane.kubeconfig).await;
    let names = load::release_names("bench", releases, NAMESPACES);
    let payload_bytes = load::payload("bench-00", "svc-0000", 1, "superseded", filler_bytes).len();

    // ---- load
    let load_time = load::load(&client, &names, revisions, filler_bytes, LOAD_CONCURRENCY).await;
    eprintln!(
        "[bench] loaded {} Secrets of {payload_bytes} bytes in {load_time:?}",
        releases * revisions as usize
    );
    // Past the 1 s bake window of the last revision written.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // ---- start the tracker process and wait for its initial sync
    let before_sync = load::secret_requests(&client).await;
    let watch = load::WatchProcess::start(
        Path::new(env!("CARGO_BIN_EXE_upgrade-guard")),
        &plane.kubeconfig,
        CONFIG,
        Duration::from_secs(600),
    );
    let sync = watch.synced_at - watch.started;
    let after_sync = load::secret_requests(&client).await;
    tokio::time::sleep(SETTLE).await;
    let rss_after_sync_kib = load::rss_kib(watch.pid, "VmRSS:");
    assert!(
        watch.seen.lock().unwrap().is_empty(),
        "settled revisions must not be announced"
    );

    // ---- new revisions, written in helm's order, one at a time
    let before = load::secret_requests(&client).await;
    let mut latencies = Vec::with_capacity(new_revisions);
    let mut floors = Vec::with_capacity(new_revisions);
    let mut floor_gets = 0;
    for i in 0..new_revisions {
        let (ns, name) = &names[i % names.len()];
        let new = revisions + 1 + (i / names.len()) as u32;
        let up = load::upgrade(&client, ns, name, new, revisions, filler_bytes).await;
        let seen_at = watch
            .event_time(&format!("{ns}/{name}"), new, Duration::from_secs(60))
            .await;
        latencies.push(seen_at - up.settle_started);
        // The floor no watcher can beat: the API server's write of the settling Secret,
        // plus one GET of it (timed after the tracker's own, so they do not compete).
        let get_started = Instant::now();
        Api::<Secret>::namespaced(client.clone(), ns)
            .get(&format!("sh.helm.release.v1.{name}.v{new}"))
            .await
            .unwrap();
        floor_gets += 1;
        floors.push(up.settle_write + get_started.elapsed());
    }
    let after = load::secret_requests(&client).await;
    tokio::time::sleep(SETTLE).await;
    let rss_after_changes_kib = load::rss_kib(watch.pid, "VmRSS:");
    let peak_rss_kib = load::rss_kib(watch.pid, "VmHWM:");
    let announced = watch.seen.lock().unwrap().len();
    assert_eq!(announced, new_revisions, "one event per new revision");
    drop(watch);

    // ---- helm list -A on the same data
    let helm_list = helm_list.then(|| {
        let helm = plane.helm();
        let helm_started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(&helm.bin)
            .args(["list", "-A"])
            .envs(helm.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run helm list -A");
        let took = helm_started.elapsed();
        assert!(
            out.status.success(),
            "helm list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rss = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        (took, rss)
    });

    latencies.sort();
    floors.sort();
    let n = new_revisions.max(1) as f64;
    Results {
        payload_bytes,
        secrets: releases * revisions as usize,
        load: load_time,
        sync,
        sync_lists: load::delta(&after_sync, &before_sync, "LIST"),
        rss_after_sync_kib,
        rss_after_changes_kib,
        peak_rss_kib,
        new_revisions,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        floor_p50: percentile(&floors, 0.50),
        floor_p99: percentile(&floors, 0.99),
        gets_per_revision: (load::delta(&after, &before, "GET") - floor_gets) as f64 / n,
        lists_per_revision: load::delta(&after, &before, "LIST") as f64 / n,
        watches: load::delta(&after, &before, "WATCH"),
        helm_list,
    }
}

fn report(
    results: &[Results],
    releases: usize,
    large: usize,
    revisions: u32,
    new_revisions: usize,
) -> String {
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
         stdout. The floor next to it is what no watcher can beat: the API server's own \
         answer to that write plus one GET of the Secret (timed separately, after the \
         event). The last column repeats the 20 KiB case with {large} releases ({} Secrets). \
         `helm list -A` (helm 3.22) runs on the 5,000-Secret data afterwards.\n\n",
        releases * revisions as usize,
        large * revisions as usize
    ));
    if releases != 500 || revisions != 10 || large != 5000 {
        out.push_str(
            "**Reduced run** (BENCH_RELEASES/BENCH_REVISIONS set): not the target size.\n\n",
        );
    }
    out.push_str("| | ");
    out.push_str(
        &results
            .iter()
            .map(|r| {
                format!(
                    "{} Secrets, payload ≈ {} KiB",
                    r.secrets,
                    r.payload_bytes / 1024
                )
            })
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
    row(
        &mut out,
        "time to initial sync",
        &|r| ms(r.sync),
        "≤ 2 s (50k)",
    );
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
        "≤ 32 MiB (5k), ≤ 64 MiB (50k)",
    );
    row(
        &mut out,
        &format!("RSS after {new_revisions} new revisions"),
        &|r| mib(r.rss_after_changes_kib),
        "≤ 32 MiB (5k), ≤ 64 MiB (50k)",
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
        "floor p50 / p99 (write + GET)",
        &|r| format!("{} / {}", ms(r.floor_p50), ms(r.floor_p99)),
        "",
    );
    row(
        &mut out,
        "latency ÷ floor, p50 / p99",
        &|r| {
            format!(
                "{:.2}× / {:.2}×",
                r.p50.as_secs_f64() / r.floor_p50.as_secs_f64().max(1e-9),
                r.p99.as_secs_f64() / r.floor_p99.as_secs_f64().max(1e-9)
            )
        },
        "p99 ≤ 1.5×",
    );
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
        &|r| {
            r.helm_list.map_or("not run".into(), |(t, _)| {
                format!("{:.2} s", t.as_secs_f64())
            })
        },
        "",
    );
    row(
        &mut out,
        "`helm list -A` peak RSS",
        &|r| r.helm_list.map_or("not run".into(), |(_, kib)| mib(kib)),
        "",
    );
    out
}

fn main() {
    let releases = env_usize("BENCH_RELEASES", 500);
    let revisions = env_usize("BENCH_REVISIONS", 10) as u32;
    let new_revisions = env_usize("BENCH_NEW_REVISIONS", 200);
    let large = env_usize("BENCH_LARGE_RELEASES", 5000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut results = Vec::new();
    // Filler sizes chosen so that data.release is ≈ 20 KiB and ≈ 200 KiB.
    for (count, filler_bytes, helm_list) in [
        (releases, 14 * 1024, true),
        (releases, 148 * 1024, true),
        (large, 14 * 1024, false),
    ] {
        results.push(rt.block_on(run_dataset(
            count,
            revisions,
            new_revisions,
            filler_bytes,
            helm_list,
        )));
    }
    let text = report(&results, releases, large, revisions, new_revisions);
    let path = bench::write_section("tracking", &text);
    println!("{text}\nwritten to {}", path.display());
}
