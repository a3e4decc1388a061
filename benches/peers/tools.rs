//! Each tool of the side-by-side bench, set up to judge the same N series the same way,
//! measured, and stopped; and the report.

use super::*;

/// upgrade-guard: N releases (one revision each, inside a 30 m bake window when it
/// starts, with their Deployment and StatefulSet rolled out), each judged by one custom
/// check on its service's series.
pub async fn upgrade_guard(setup: &Setup<'_>) -> Measured {
    let Setup {
        plane,
        client,
        prometheus,
        names,
        failing,
    } = *setup;
    let ns = "ug";
    let releases: Vec<(String, String)> =
        names.iter().map(|n| (ns.to_string(), n.clone())).collect();
    load::load(client, &releases, 1, 14 * 1024, 16).await;
    futures::stream::iter(names)
        .map(|name| async move { workloads(client, ns, name, true).await })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    rolled_out(client, ns, names.len()).await;
    let address = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "prometheus:\n  url: {}\n  scrape_interval: 1s\n\
         evaluation:\n  interval: {}s\n\
         state:\n  namespace: default\n\
         defaults:\n  bake_window: 30m\n  custom:\n    - name: errors\n      \
         query: 'bench_errors{{service=\"{{{{release}}}}\"}}'\n      max: {MAX}\n      for: {}s\n",
        prometheus.url,
        INTERVAL.as_secs(),
        INTERVAL.as_secs(),
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_upgrade-guard"));
    bench::as_the_image_runs_it(&mut command);
    let daemon = Proc::spawn(
        command
            .args(["run", "--listen", &address, "--config"])
            .arg(file.path())
            .env("KUBECONFIG", &plane.kubeconfig),
        "upgrade-guard-bench-peers.log",
    );
    let url = format!("http://{address}");
    let http = reqwest::Client::new();
    let page_url = format!("{url}/metrics");
    let metrics = || bench::text(&http, &page_url);
    let n = names.len();
    support::wait::until_seen(
        TIMEOUT,
        "upgrade-guard evaluating every release",
        || async {
            let page = metrics().await;
            let active = bench::sum(&page, "upgrade_guard_evaluations_active");
            let rounds = bench::sum(&page, "upgrade_guard_evaluation_rounds_total");
            if active as usize == n && rounds >= 3.0 {
                Ok(())
            } else {
                Err(format!("{active} evaluations active, {rounds} rounds"))
            }
        },
    )
    .await;
    let mut m = steady(&http, &prometheus.url, daemon.pid()).await;
    m.latencies = detection(failing, prometheus, names, || async {
        metrics()
            .await
            .lines()
            .filter(|l| {
                l.starts_with("upgrade_guard_release_verdict{")
                    && l.contains("verdict=\"failed\"")
                    && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0)
            })
            .filter_map(|l| {
                let at = l.find("release=\"")? + "release=\"".len();
                Some(l[at..].split('"').next()?.to_string())
            })
            .collect()
    })
    .await;
    m
}

/// `helm list -A` on the releases upgrade-guard judged: what a script polling helm runs
/// each interval to notice a revision change (it judges nothing).
pub fn helm_list(plane: &ControlPlane) -> HelmPoll {
    let helm = plane.helm();
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M"])
        .arg(&helm.bin)
        .args(["list", "-A", "-o", "json"])
        .envs(helm.env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run helm list -A");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "helm list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let f: Vec<f64> = last.split(' ').filter_map(|v| v.parse().ok()).collect();
    HelmPoll {
        wall,
        cpu: f.first().unwrap_or(&0.0) + f.get(1).unwrap_or(&0.0),
        max_rss_kib: *f.get(2).unwrap_or(&0.0) as u64,
    }
}

/// Argo Rollouts: N standalone AnalysisRuns, each measuring its service's series every
/// interval, failed after two failing measurements (`failureLimit: 1`).
pub async fn argo(peers: &Peers, setup: &Setup<'_>) -> Measured {
    let Setup {
        plane,
        client,
        prometheus,
        names,
        ..
    } = *setup;
    let ns = "argo";
    namespace(client, ns).await;
    crds(client, &peers.argo_crds).await;
    let controller = Proc::spawn(
        Command::new(&peers.argo)
            .arg("--kubeconfig")
            .arg(&plane.kubeconfig)
            // One controller: no election needed (the same for every tool here).
            .args(["--leader-elect=false", "--metricsPort"])
            .arg(free_port().to_string())
            .arg("--healthzPort")
            .arg(free_port().to_string()),
        "argo-rollouts-bench-peers.log",
    );
    let ar = resource("argoproj.io", "v1alpha1", "AnalysisRun");
    let runs = names
        .iter()
        .map(|name| {
            serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": name},
                "spec": {"metrics": [{
                    "name": "errors",
                    "interval": format!("{}s", INTERVAL.as_secs()),
                    "count": 100_000,
                    "failureLimit": 1,
                    "successCondition": format!("result[0] <= {MAX}"),
                    "provider": {"prometheus": {
                        "address": prometheus.url,
                        "query": format!("bench_errors{{service=\"{name}\"}}")
                    }}
                }]}
            })
        })
        .collect();
    create_all(client, ns, &ar, runs).await;
    let n = names.len();
    until_all(client, ns, &ar, n, "measured twice", |r| {
        r.data["status"]["metricResults"][0]["count"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    measured(controller.pid(), ns, &ar, setup).await
}

/// Flagger: N Canaries (`kubernetes` provider, blue/green), each analysing its
/// Deployment with a MetricTemplate of its service's series every interval, failed (rolled
/// back) after two failed checks (`threshold: 2`).
pub async fn flagger(peers: &Peers, setup: &Setup<'_>) -> Measured {
    let Setup {
        plane,
        client,
        prometheus,
        names,
        ..
    } = *setup;
    let ns = "flagger";
    namespace(client, ns).await;
    crds(client, &peers.flagger_crds).await;
    futures::stream::iter(names)
        .map(|name| async move { workloads(client, ns, name, false).await })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    rolled_out(client, ns, names.len()).await;
    let controller = Proc::spawn(
        Command::new(&peers.flagger)
            .arg(format!("-kubeconfig={}", plane.kubeconfig.display()))
            .arg("-mesh-provider=kubernetes")
            .arg(format!("-metrics-server={}", prometheus.url))
            // Its chart's and manifests' level (the binary's default is debug).
            .arg("-log-level=info")
            .arg(format!("-port={}", free_port())),
        "flagger-bench-peers.log",
    );
    let template = resource("flagger.app", "v1beta1", "MetricTemplate");
    create_all(
        client,
        ns,
        &template,
        vec![serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": "errors"},
            "spec": {"provider": {"type": "prometheus", "address": prometheus.url},
                     "query": "bench_errors{service=\"{{ target }}\"}"}
        })],
    )
    .await;
    let canary = resource("flagger.app", "v1beta1", "Canary");
    let every = format!("{}s", INTERVAL.as_secs());
    let canaries = names
        .iter()
        .map(|name| {
            serde_json::json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
                "metadata": {"name": name},
                "spec": {
                    "provider": "kubernetes",
                    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "progressDeadlineSeconds": 3600,
                    "service": {"port": 8080, "portDiscovery": false},
                    "analysis": {
                        "interval": every, "threshold": 2, "iterations": 100_000,
                        "metrics": [{"name": "errors", "interval": every,
                                     "templateRef": {"name": "errors", "namespace": ns},
                                     "thresholdRange": {"max": MAX}}]
                    }
                }
            })
        })
        .collect();
    create_all(client, ns, &canary, canaries).await;
    let n = names.len();
    until_all(client, ns, &canary, n, "initialized", |c| {
        c.data["status"]["phase"] == "Initialized"
    })
    .await;
    // A new revision of every target: Flagger starts analysing it.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for name in names {
        let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"bench/revision": "2"}}}}});
        deployments
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    until_all(client, ns, &canary, n, "analysing", |c| {
        c.data["status"]["phase"] == "Progressing"
            && c.data["status"]["iterations"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    measured(controller.pid(), ns, &canary, setup).await
}

/// Waits until `n` objects of `ar` in `ns` are `what` (`done` holds for them).
async fn until_all(
    client: &kube::Client,
    ns: &str,
    ar: &ApiResource,
    n: usize,
    what: &str,
    done: impl Fn(&DynamicObject) -> bool,
) {
    let kind = &ar.kind;
    support::wait::until_seen(TIMEOUT, &format!("every {kind} {what}"), || async {
        let count = list(client, ns, ar)
            .await
            .iter()
            .filter(|o| done(o))
            .count();
        if count >= n {
            Ok(())
        } else {
            Err(format!("{count} of {n} {what}"))
        }
    })
    .await;
}

/// A peer's steady costs, then its verdicts: the objects of `ar` in `ns` whose
/// `status.phase` turns `Failed`.
async fn measured(pid: u32, ns: &str, ar: &ApiResource, setup: &Setup<'_>) -> Measured {
    let Setup {
        client,
        prometheus,
        names,
        failing,
        ..
    } = *setup;
    let http = reqwest::Client::new();
    let mut m = steady(&http, &prometheus.url, pid).await;
    m.latencies = detection(failing, prometheus, names, || async {
        list(client, ns, ar)
            .await
            .iter()
            .filter(|o| o.data["status"]["phase"] == "Failed")
            .map(name_of)
            .collect()
    })
    .await;
    m
}

/// The report: per N, each tool's numbers and upgrade-guard ÷ peer.
pub fn report(peers: &Peers, all: &[Scale]) -> String {
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d");
    let mut out = String::from("## Side by side\n\n");
    out.push_str(&format!(
        "Command: `cargo bench --bench peers` (benches/peers.rs; `scripts/peers` builds the \
         peers from their Go modules: Argo Rollouts {}, Flagger {}), run {date} on {}.\n\n",
        peers.argo_version,
        peers.flagger_version,
        machine()
    ));
    out.push_str(&format!(
        "What it does, for each N, on a fresh private etcd + kube-apiserver 1.36 with its \
         controller-manager, scheduler and kwok (pods get statuses; no container runs): one \
         exporter serves `bench_errors{{service=\"svc-NNNN\"}}` for N services, scraped every \
         second by one real Prometheus. Each tool judges each service with that query, every \
         {}s, failing it above {MAX} after two failing measurements, then is measured alone \
         for {MEASURED} intervals (RSS from `/proc/<pid>/status`, CPU from \
         `/proc/<pid>/stat`, queries from Prometheus' own \
         `prometheus_http_requests_total`), then every series turns failing and the time \
         from the moment Prometheus answers with all of them failing to each failed verdict \
         is taken. upgrade-guard judges N releases (one custom check each, `for: {}s`; it \
         also runs its rollout, pod and Helm checks on their Deployment and StatefulSet); \
         Argo Rollouts N standalone AnalysisRuns (`interval`, `failureLimit: 1`); Flagger N \
         Canaries (`kubernetes` provider, `analysis.interval`, `threshold: 2`, a \
         MetricTemplate; its targets rolled out and a new revision of each being analysed). \
         Settings that are not their defaults, and why: every controller runs alone without \
         leader election; Flagger's `-log-level=info` is its chart's (the binary's default \
         is debug); upgrade-guard runs with {}, as its image does.\n\n",
        INTERVAL.as_secs(),
        INTERVAL.as_secs(),
        bench::malloc_words(),
    ));
    let mib = |kib: u64| kib as f64 / 1024.0;
    for s in all {
        out.push_str(&format!("### N = {}\n\n", s.n));
        let ug = &s.tools[0].1;
        let mut header = String::from("| |");
        let mut rule = String::from("|---|");
        for (name, _) in &s.tools {
            header.push_str(&format!(" {name} |"));
            rule.push_str("---|");
            if *name != "upgrade-guard" {
                header.push_str(&format!(" upgrade-guard ÷ {name} |"));
                rule.push_str("---|");
            }
        }
        out.push_str(&format!("{header}\n{rule}\n"));
        let row = |out: &mut String, label: &str, f: &dyn Fn(&Measured) -> f64, unit: &str| {
            let mut line = format!("| {label} |");
            let mine = f(ug);
            for (name, m) in &s.tools {
                let v = f(m);
                line.push_str(&format!(" {v:.2}{unit} |"));
                if *name != "upgrade-guard" {
                    let ratio = if v > 0.0 {
                        format!("{:.2}", mine / v)
                    } else {
                        "—".into()
                    };
                    line.push_str(&format!(" {ratio} |"));
                }
            }
            out.push_str(&format!("{line}\n"));
        };
        row(&mut out, "RSS (steady)", &|m| mib(m.rss), " MiB");
        row(&mut out, "peak RSS (VmHWM)", &|m| mib(m.hwm), " MiB");
        row(
            &mut out,
            "CPU per interval",
            &|m| m.cpu_per_interval * 1000.0,
            " ms",
        );
        row(
            &mut out,
            "Prometheus queries per interval",
            &|m| m.queries_per_interval,
            "",
        );
        row(
            &mut out,
            "failing series → failed verdict, p50",
            &|m| seconds(&m.latencies, 0.5),
            " s",
        );
        row(
            &mut out,
            "failing series → failed verdict, max",
            &|m| seconds(&m.latencies, 1.0),
            " s",
        );
        out.push_str(&format!(
            "\nhelm 3 polling instead (`helm list -A -o json` on the same {} releases, what a \
             script runs every interval to notice a revision change; it judges nothing): \
             {:.0} ms wall, {:.0} ms CPU, {:.1} MiB peak RSS per poll.\n\n",
            s.n,
            s.helm.wall.as_secs_f64() * 1000.0,
            s.helm.cpu * 1000.0,
            mib(s.helm.max_rss_kib),
        ));
    }
    out
}
