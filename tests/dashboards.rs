//! The Grafana dashboard against real data (issue 9.7): the daemon judges two bad upgrades
//! on the real stack (pods that cannot be scheduled; a backlog that keeps growing), a real
//! Prometheus scrapes the daemon and the application's metrics, and every query of every
//! panel and variable of `dashboards/*.json`, with its variables substituted, must parse and
//! return data. (`scripts/check-dashboards` checks the JSON against Grafana's schema.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cli::short_config;
use support::eval::{install_then_upgrade, upgrade};
use support::exporter::Exporter;
use support::kube as tkube;
use support::prometheus::{Prometheus, Target};
use support::stack::{repo_root, stack};
use tokio::sync::oneshot;
use upgrade_guard::config::Config;
use upgrade_guard::daemon::{self, DaemonOptions};

const WAIT: Duration = Duration::from_secs(180);

/// Every PromQL expression of a dashboard that must return data: panel targets and query
/// variables (rows have none).
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?} {}", panel["title"], target["refId"]),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().unwrap();
            // label_values(METRIC, LABEL) is Grafana's: Prometheus is asked for METRIC.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(m, _)| m.to_string())
                .unwrap();
            out.push((format!("variable {:?}", var["name"]), inner));
        }
    }
    out
}

/// The annotations' expressions: they must parse; whether they return data depends on
/// what happened (an automatic rollback) in the range.
fn annotation_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    dashboard["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            Some((
                format!("annotation {:?}", a["name"]),
                a["target"]["expr"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn substitute(expr: &str, namespace: &str) -> String {
    expr.replace("$namespace", namespace)
        .replace("$release", ".*")
        .replace("$cluster", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("${datasource}", "")
}

/// Issue 21.10: units on every panel, verdicts as coloured states (failed is red), one row
/// per release, release series shown once however many replicas export them, a cluster
/// variable, annotations for upgrades and rollbacks, links to the docs and Alertmanager.
#[test]
fn the_dashboard_reads_at_a_glance() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("dashboards/upgrade-guard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert!(
            p["fieldConfig"]["defaults"]["unit"].is_string(),
            "panel {} has no unit",
            p["title"]
        );
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            // A series every replica exports is aggregated (shown once).
            let per_release = [
                "upgrade_guard_release_info",
                "upgrade_guard_release_verdict",
                "upgrade_guard_release_problem",
                "upgrade_guard_check_",
                "upgrade_guard_pending_pods",
                "upgrade_guard_upgrade_started",
                "upgrade_guard_action_",
            ];
            if per_release.iter().any(|m| expr.contains(m)) {
                assert!(expr.starts_with("max by ("), "not deduplicated: {expr}");
            }
            assert!(expr.contains("$cluster"), "not filtered by cluster: {expr}");
        }
    }
    let verdicts = panels
        .iter()
        .find(|p| p["title"] == "Verdict per release")
        .unwrap();
    assert_eq!(verdicts["type"], "state-timeline");
    assert_eq!(
        verdicts["targets"][0]["legendFormat"],
        "{{namespace}}/{{release}}"
    );
    let colours: std::collections::BTreeMap<String, String> =
        verdicts["fieldConfig"]["defaults"]["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["options"].as_object().unwrap().values())
            .map(|o| {
                (
                    o["text"].as_str().unwrap().to_string(),
                    o["color"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    assert_eq!(colours["failed"], "red");
    assert_eq!(colours["healthy"], "green");
    assert_eq!(colours.len(), 5, "{colours:?}");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(variables.contains(&"cluster"), "{variables:?}");
    let annotations: Vec<&str> = annotation_queries(&dashboard)
        .iter()
        .map(|(_, e)| {
            if e.contains("upgrade_started") {
                "upgrades"
            } else if e.contains("action_state") {
                "rollbacks"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(annotations, ["upgrades", "rollbacks"]);
    let links = serde_json::to_string(&dashboard["links"]).unwrap();
    assert!(
        links.contains("docs/alerts.md") && links.contains("${alertmanager}"),
        "{links}"
    );
}

// Several threads: helm runs synchronously in the test, the daemon must go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_parses_and_returns_data_after_failed_upgrades() {
    let ns = tkube::namespace("dash").await;
    let n = ns.name.as_str();
    // The application's backlog is steady until the upgrade, then grows by 5 per second
    // (growth that was there before the upgrade would not be the upgrade's fault).
    let growing_since: Arc<Mutex<Option<Instant>>> = Arc::default();
    let namespace = n.to_string();
    let since = growing_since.clone();
    let exporter = Exporter::start_with(Arc::new(move || {
        let grown = since
            .lock()
            .unwrap()
            .map_or(0.0, |t| 5.0 * t.elapsed().as_secs_f64());
        Some(format!(
            "gim_kafka_timestamp_behind{{namespace=\"{namespace}\"}} {}\n",
            100.0 + grown
        ))
    }));
    // Prometheus first (the daemon needs its URL), then the daemon on a port of its own
    // choosing, then Prometheus is told to scrape it too.
    let gim = Target {
        job: "gim",
        address: &exporter.address,
        namespace: None,
    };
    let prometheus = Prometheus::start(None, &[gim]).await;
    let config = short_config(
        &prometheus.url,
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n\
             releases:\n  - name: laggy\n    bake_window: 60s\n    lag:\n      \
             query: 'max(gim_kafka_timestamp_behind{{namespace=\"{{{{namespace}}}}\"}})'\n      \
             window: 8s\n      max_slope: 0.5\n",
            stack().alertmanager_url
        ),
    );
    let kube = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&stack().kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound) = oneshot::channel();
    let task = tokio::spawn(daemon::run(
        kube,
        Arc::new(Config::parse(&config, "test").unwrap()),
        DaemonOptions::listen("127.0.0.1:0".parse().unwrap()),
        async {
            let _ = stopped.await;
        },
        Some(Box::new(move |a| {
            let _ = bound_tx.send(a);
        })),
    ));
    let daemon_address = bound.await.expect("the daemon listens").to_string();
    prometheus.reconfigure(&[
        Target {
            job: "gim",
            address: &exporter.address,
            namespace: None,
        },
        Target {
            job: "upgrade-guard",
            address: &daemon_address,
            namespace: None,
        },
    ]);

    install_then_upgrade(n, "stuck", &["unschedulable=true"]);
    install_then_upgrade(n, "laggy", &[]);
    *growing_since.lock().unwrap() = Some(Instant::now());
    // Both judged failed, as Prometheus sees it; if not in time, the daemon's own view says
    // why.
    let view = format!("http://{daemon_address}/api/v1/releases");
    let deadline = Instant::now() + WAIT;
    loop {
        let v = prometheus
            .query(
                &format!(
                    r#"count(upgrade_guard_release_verdict{{namespace="{n}",verdict="failed"}} == 1)"#
                ),
                None,
            )
            .await;
        if v["result"][0]["value"][1] == "2" {
            break;
        }
        if Instant::now() > deadline {
            let daemon = match reqwest::get(&view).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => format!("unreachable: {e}"),
            };
            panic!(
                "both failures not scraped in {WAIT:?}; Prometheus: {v}\nthe daemon's view:\n{daemon}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut checked = 0;
    for path in std::fs::read_dir(repo_root().join("dashboards")).unwrap() {
        let path = path.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (what, expr) in queries(&dashboard) {
            let promql = substitute(&expr, n);
            // Panics, naming the query, when Prometheus refuses it. A series can miss a
            // scrape on a loaded machine (a check pending for a round has no threshold):
            // each query gets until the deadline to return data.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let answer = prometheus.query(&promql, None).await;
                let empty = answer["result"].as_array().unwrap().is_empty();
                if !empty {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what} returns no data: {promql}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            checked += 1;
        }
        for (_, expr) in annotation_queries(&dashboard) {
            // Panics, naming the query, when Prometheus refuses it.
            let _ = prometheus.query(&substitute(&expr, n), None).await;
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} queries found");
    // The queries the judge sent were timed.
    let timed = prometheus
        .query(
            "sum(upgrade_guard_prometheus_query_duration_seconds_count) > 0",
            None,
        )
        .await;
    assert!(
        !timed["result"].as_array().unwrap().is_empty(),
        "no Prometheus query timed: {timed}"
    );
    eprintln!("dashboards: {checked} queries answered with data");
    upgrade(n, "stuck", "1.2.0", &["unschedulable=false"]);
    let _ = stop.send(());
    let _ = task.await;
}
