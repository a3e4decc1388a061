//! The built-in Genesys Info Mart profile, tested as shipped: every duration upgrade-guard
//! waits is divided by one factor (a 30 s scrape interval becomes 1 s) and nothing else is
//! changed, then realistic GIM upgrades run end to end with real helm, kwok pods and a real
//! Prometheus scraping a stand-in for GIM's metrics endpoint.
//!
//! - A healthy upgrade: the pod is replaced (GIM runs one instance), so its metrics are gone
//!   while it is down and its Kafka backlog rises until it processes again, then drains;
//!   the pod is Running but not Ready for most of the readiness deadline (GIM is not Ready
//!   until its first transformation job), and the Deployment's own progress deadline (the
//!   Kubernetes default, 600 s, scaled like the rest) passes long before; helm, run with the
//!   guide's 15-minute timeout, gives up and marks the revision failed. It ends `healthy`,
//!   and stays the revision to roll back to.
//! - Then GSP and GCA, in the suite's order, each healthy (GSP's Flink job restores from its
//!   savepoint after the restart), with no order warning from the daemon.
//! - A GSP upgrade whose Flink job stops running: `failed`, rolled back (recommended) to the
//!   revision that passed its bake with GSP's `--timeout 15m`; GSP upgraded after GCA in the
//!   same cycle: GCA is warned, naming GSP to look at first.
//! - Meanwhile a crash-looping GIM upgrade: `failed`, with the rollback to the revision that
//!   passed its bake and helm's `--timeout 15m` for GIM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::cli::{self, Run, config_file};
use support::daemon::{Running, options};
use support::exporter::{Body, Exporter};
use support::prometheus::{Prometheus, Target};
use support::{helm, kube as tkube, stack::stack, wait};
use upgrade_guard::config::DEFAULT_PROFILE;
use upgrade_guard::units::parse_duration;

/// Every duration upgrade-guard waits is divided by this.
const FACTOR: u32 = 30;

/// Keys whose durations are not waits of upgrade-guard: `rollback_timeout` is the
/// `--timeout` handed to `helm rollback` in the recommended command.
const NOT_SCALED: [&str; 1] = ["rollback_timeout"];

/// The built-in profile with its durations divided by [`FACTOR`].
fn scaled_profile() -> String {
    fn walk(v: &mut serde_yaml_ng::Value, key: Option<&str>) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, v) in m.iter_mut() {
                    walk(v, k.as_str());
                }
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter_mut().for_each(|v| walk(v, None)),
            serde_yaml_ng::Value::String(s) if key.is_none_or(|k| !NOT_SCALED.contains(&k)) => {
                if let Ok(d) = parse_duration(s) {
                    *s = format!("{}ms", (d / FACTOR).as_millis());
                }
            }
            _ => {}
        }
    }
    let mut profile: serde_yaml_ng::Value = serde_yaml_ng::from_str(DEFAULT_PROFILE).unwrap();
    walk(&mut profile, None);
    serde_yaml_ng::to_string(&profile).unwrap()
}

#[test]
fn the_scaled_profile_changes_durations_only() {
    let scaled: serde_yaml_ng::Value = serde_yaml_ng::from_str(&scaled_profile()).unwrap();
    let gim = &scaled["releases"][0];
    assert_eq!(gim["name"], "gim");
    assert_eq!(gim["readiness_deadline"], "90000ms");
    assert_eq!(gim["bake_window"], "120000ms");
    assert_eq!(gim["rollback_timeout"], "15m");
    assert_eq!(gim["lag"]["window"], "30000ms");
    assert_eq!(gim["lag"]["max_slope"], 0.5);
    assert_eq!(scaled["prometheus"]["scrape_interval"], "1000ms");
    assert_eq!(scaled["defaults"]["pending_timeout"], "10000ms");
    let original: serde_yaml_ng::Value = serde_yaml_ng::from_str(DEFAULT_PROFILE).unwrap();
    assert_eq!(gim["lag"]["query"], original["releases"][0]["lag"]["query"]);
}

fn lag_line(level: f64) -> String {
    format!(
        "# TYPE gim_kafka_timestamp_behind gauge\ngim_kafka_timestamp_behind{{namespace=\"gim\"}} {level:.1}\n"
    )
}

/// GIM running normally: a backlog of about 10 s.
fn steady() -> Body {
    let since = Instant::now();
    Arc::new(move || {
        let t = since.elapsed().as_secs_f64();
        Some(lag_line(10.0 + 0.5 * (t * 1.3).sin()))
    })
}

/// A GIM upgrade as it looks from its metrics endpoint (seconds after the upgrade, scaled):
/// down while the pod is replaced (0–6 s), then up but not yet processing, its backlog
/// rising by a second each second (6–40 s), then draining at 3 s per second back to normal.
fn restarting() -> Body {
    let since = Instant::now();
    Arc::new(move || {
        let t = since.elapsed().as_secs_f64();
        let noise = 0.5 * (t * 1.3).sin();
        if t < 6.0 {
            None
        } else if t < 40.0 {
            Some(lag_line(10.0 + t + noise))
        } else {
            Some(lag_line((50.0 - 3.0 * (t - 40.0)).max(10.0) + noise))
        }
    })
}

/// GSP's Flink metrics (`flink_jobmanager_numRunningJobs`), as its port 9249 serves them.
fn flink_line(running: u32) -> String {
    format!(
        "# TYPE flink_jobmanager_numRunningJobs gauge\nflink_jobmanager_numRunningJobs{{namespace=\"gsp\"}} {running}\n"
    )
}

/// GSP after an upgrade (seconds, scaled): down while the pod is replaced (0–3 s), then
/// restoring its Flink job from the savepoint (no job running, 3–8 s), then running it; or,
/// when `stops`, never running it again.
fn flink_restart(stops: bool) -> Body {
    let since = Instant::now();
    Arc::new(move || {
        let t = since.elapsed().as_secs_f64();
        if t < 3.0 {
            None
        } else if stops || t < 8.0 {
            Some(flink_line(0))
        } else {
            Some(flink_line(1))
        }
    })
}

async fn check(profile: &str, prometheus: &str, release: &str, wait: &str) -> Run {
    let args: Vec<String> = [
        "check",
        release,
        "-n",
        release,
        "--config",
        profile,
        "--prometheus-url",
        prometheus,
        "--wait",
        wait,
        "--record",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli::run(&args, &[])
    })
    .await
    .unwrap()
}

fn upgrade(chart: &str, release: &str, set: &[&str]) {
    let chart = helm::chart(chart);
    let mut args = vec!["upgrade", release, &chart, "-n", release];
    for s in set {
        args.extend(["--set", s]);
    }
    helm::ok(&args);
}

/// The daemon's warnings about the suite's order.
async fn order(d: &Running) -> Vec<serde_json::Value> {
    d.releases().await["suite_order"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genesys_suite_under_the_built_in_profile() {
    let _namespaces = (
        tkube::namespace_named("gim").await,
        tkube::namespace_named("gsp").await,
        tkube::namespace_named("gca").await,
        // The profile's own state namespace, for the bake records `--record` writes.
        tkube::namespace_named("upgrade-guard").await,
    );
    let gim_metrics = Exporter::start_with(steady());
    let gsp_metrics = Exporter::start(&flink_line(1));
    let prom = Prometheus::start(
        None,
        &[
            Target {
                job: "gim",
                address: &gim_metrics.address,
                namespace: None,
            },
            Target {
                job: "gsp",
                address: &gsp_metrics.address,
                namespace: None,
            },
        ],
    )
    .await;
    let gim_chart = helm::chart("gim");
    // The Kubernetes default progress deadline, scaled like the profile.
    let progress_deadline = format!("progressDeadlineSeconds={}", 600 / FACTOR);
    helm::ok(&[
        "install",
        "gim",
        &gim_chart,
        "-n",
        "gim",
        "--set",
        &progress_deadline,
        "--wait",
        "--timeout",
        "60s",
    ]);
    for release in ["gsp", "gca"] {
        let chart = helm::chart(release);
        helm::ok(&[
            "install",
            release,
            &chart,
            "-n",
            release,
            "--wait",
            "--timeout",
            "60s",
        ]);
    }
    support::eval::scraped_a_few_times(&prom, "gim_kafka_timestamp_behind").await;
    support::eval::scraped_a_few_times(&prom, "flink_jobmanager_numRunningJobs").await;
    let scaled = scaled_profile();
    let profile = config_file(&scaled);
    // The daemon, for the suite's order: the scaled profile, Prometheus given as
    // --prometheus-url would.
    let mut daemon_config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&scaled).unwrap();
    daemon_config["prometheus"]["url"] = prom.url.clone().into();
    let d = Running::start_with(
        &stack().kubeconfig,
        &serde_yaml_ng::to_string(&daemon_config).unwrap(),
        options("profile"),
    )
    .await;

    // GIM: restart, slow readiness, a backlog that rises and drains: healthy. Its guide
    // asks for a 15-minute Helm timeout (30 s scaled), shorter than GIM takes to be Ready:
    // helm gives up and marks the revision failed, which is Helm's timeout, not GIM's.
    gim_metrics.set_with(restarting());
    let helm_timeout = format!("{}s", 15 * 60 / FACTOR);
    let out = helm::shared().fails(&[
        "upgrade",
        "gim",
        &gim_chart,
        "-n",
        "gim",
        "--set",
        "image.tag=100.0.117",
        "--set",
        &progress_deadline,
        "--set",
        "fault=SlowReady",
        "--set",
        "slowReady.startAfter=6s",
        "--set",
        "slowReady.readyAfter=60s",
        "--wait",
        "--timeout",
        &helm_timeout,
    ]);
    assert!(out.contains("context deadline exceeded"), "{out}");
    let run = check(&profile.arg(), &prom.url, "gim", "4m").await;
    run.expect(
        0,
        &[
            "revision 2 (failed)",
            "helm's own --wait timed out",
            "verdict: healthy",
            "action: none",
            "metrics_presence:gim_kafka_timestamp_behind  pass",
            "no growing backlog",
        ],
    );
    // The Deployment's progress deadline (20 s) is shorter than GIM's readiness deadline
    // (90 s): said, not failed.
    assert!(
        run.stdout.contains("note: Deployment/gim: progressDeadlineSeconds (20s) is shorter than readiness_deadline (1m30s)"),
        "{}",
        run.stdout
    );

    // Then GSP (its Flink job restores from the savepoint), then GCA: healthy, in order.
    gsp_metrics.set_with(flink_restart(false));
    upgrade("gsp", "gsp", &["image.tag=100.0.101"]);
    check(&profile.arg(), &prom.url, "gsp", "3m").await.expect(
        0,
        &[
            "revision 2 (deployed)",
            "verdict: healthy",
            "custom:flink_running_jobs",
        ],
    );
    upgrade("gca", "gca", &["image.tag=100.0.101"]);
    // In order so far: once the daemon sees GCA's new revision, no warning.
    wait::until(
        Duration::from_secs(60),
        "the daemon sees GCA's upgrade",
        || async {
            let v = d.releases().await;
            v["releases"]
                .as_array()?
                .iter()
                .any(|r| {
                    r["release"]["name"] == "gca" && r["revision"] == 2 && !r["judgement"].is_null()
                })
                .then_some(())
        },
    )
    .await;
    let releases = d.releases().await;
    assert_eq!(
        order(&d).await,
        Vec::<serde_json::Value>::new(),
        "in order: no warning; the daemon's view: {releases:#}"
    );
    // After its bake GIM is watched (26 h in the profile): its pod starts crash-looping (a
    // leak, the daily transformation job): alerted, attributed to revision 2, never acted
    // on; the bake's healthy verdict stands.
    let gim_view = || async {
        d.releases().await["releases"]
            .as_array()?
            .iter()
            .find(|r| r["release"]["name"] == "gim")
            .cloned()
    };
    wait::until(
        Duration::from_secs(120),
        "GIM healthy in the daemon, then watched after its bake",
        || async {
            let v = gim_view().await?;
            (v["revision"] == 2
                && v["judgement"]["final"] == true
                && v["after_bake"]["judgement"]["verdict"] == "healthy")
                .then_some(())
        },
    )
    .await;
    let pods =
        kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(tkube::client().await, "gim");
    let running = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/instance=gim"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata.labels.as_ref().is_some_and(|l| {
                    l.get("fault.testenv.upgrade-guard.dev/kind")
                        .map(String::as_str)
                        == Some("SlowReady")
                })
        })
        .expect("GIM's revision 2 pod");
    let name = running.metadata.name.clone().unwrap();
    pods.replace_status(
        &name,
        &kube::api::PostParams::default(),
        &tkube::crash_looping(running),
    )
    .await
    .unwrap();
    let regressed = wait::until(
        Duration::from_secs(120),
        "GIM broken after its bake",
        || async {
            let v = gim_view().await?;
            (v["after_bake"]["judgement"]["verdict"] == "failed").then_some(v)
        },
    )
    .await;
    let found = regressed["after_bake"]["judgement"]["results"].to_string();
    assert!(
        found.contains("since the bake ended, more than the 3 tolerated"),
        "{regressed:#}"
    );
    assert_eq!(
        regressed["judgement"]["verdict"], "healthy",
        "{regressed:#}"
    );
    assert_eq!(
        regressed["revision"], 2,
        "nothing rolled back: {regressed:#}"
    );

    // GCA bakes (healthy, judged by a check running meanwhile) while GSP is upgraded again
    // and its Flink job never runs: failed, rolled back to 2 with GSP's `--timeout 15m`;
    // and GIM crash-loops: failed, back to 2 with GIM's.
    let path = profile.arg();
    let gca_check = check(&path, &prom.url, "gca", "2m");
    gsp_metrics.set_with(flink_restart(true));
    upgrade("gsp", "gsp", &["image.tag=100.0.102"]);
    gim_metrics.set_with(Arc::new(|| None));
    upgrade(
        "gim",
        "gim",
        &[
            "image.tag=100.0.118",
            &progress_deadline,
            "fault=CrashLoopBackOff",
        ],
    );
    let (gca_run, gsp_run, gim_run) = tokio::join!(
        gca_check,
        check(&path, &prom.url, "gsp", "2m"),
        check(&path, &prom.url, "gim", "2m"),
    );
    gca_run.expect(0, &["revision 2 (deployed)", "verdict: healthy"]);
    gsp_run.expect(
        1,
        &[
            "revision 3 (deployed)",
            "verdict: failed",
            "custom:flink_running_jobs",
            "roll back to revision 2",
            "helm rollback gsp 2 -n gsp --timeout 15m",
        ],
    );
    gim_run.expect(
        1,
        &[
            "revision 3 (deployed)",
            "verdict: failed",
            "CrashLoopBackOff 1",
            "roll back to revision 2",
            "helm rollback gim 2 -n gim --timeout 15m",
        ],
    );
    // GCA was upgraded before GSP in this cycle: GCA is warned, look at GSP first.
    let deadline = Instant::now() + Duration::from_secs(60);
    let warning = loop {
        let warnings = order(&d).await;
        if let Some(w) = warnings.iter().find(|w| {
            w["release"]["name"] == "gca"
                && w["look_first"]["name"] == "gsp"
                && w["problem"] == "wrong_order"
        }) {
            break w.clone();
        }
        assert!(
            Instant::now() < deadline,
            "GCA not warned within 60s: order warnings {warnings:#?}; the daemon's view: {:#}",
            d.releases().await
        );
        tokio::time::sleep(wait::POLL_INTERVAL).await;
    };
    assert!(
        warning["words"]
            .as_str()
            .unwrap()
            .contains("the order is gim + gim-monitoring, then gsp, then gca + gca-monitoring"),
        "{warning:#}"
    );
    d.stop().await;
}
