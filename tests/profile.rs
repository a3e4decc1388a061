//! The built-in Genesys Info Mart profile, tested as shipped: every duration upgrade-guard
//! waits is divided by one factor (a 30 s scrape interval becomes 1 s) and nothing else is
//! changed, then realistic GIM upgrades run end to end with real helm, kwok pods and a real
//! Prometheus scraping a stand-in for GIM's metrics endpoint.
//!
//! - A healthy upgrade: the pod is replaced (GIM runs one instance) and its image pulled
//!   slowly (Pending longer than the pending timeout), so its metrics are gone while it is
//!   down and its Kafka backlog rises until it processes again, then drains; the pod is
//!   Running but not Ready for most of the readiness deadline; after the deadline a
//!   scale-up and an eviction bring pods that start as slowly (GIM is not Ready
//!   until its first transformation job), and the Deployment's own progress deadline (the
//!   Kubernetes default, 600 s, scaled like the rest) passes long before; helm, run with the
//!   guide's 15-minute timeout, gives up and marks the revision failed. It ends `healthy`,
//!   and stays the revision to roll back to.
//! - Then GSP and GCA, in the suite's order, each healthy (GSP's Flink job restores from its
//!   savepoint after the restart), with no order warning from the daemon.
//! - A GSP upgrade whose Flink job stops running: `failed`, rolled back (recommended) to the
//!   revision that passed its bake with GSP's `--timeout 15m`; GSP upgraded after GCA in the
//!   same cycle: GCA is warned, naming GSP to look at first.
//! - After its bake, GIM's pod starts crash-looping: the daemon's watch after the bake
//!   finds it, attributed to revision 2, and nothing is rolled back.
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

/// Every duration upgrade-guard waits is divided by this.
const FACTOR: u32 = 30;

/// The built-in profile with its durations divided by [`FACTOR`].
fn scaled_profile() -> String {
    support::profile::scaled(FACTOR)
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
/// down while the pod is replaced and its image pulled (0–15 s), then up but not yet
/// processing, its backlog rising by a second each second (15–45 s), then draining at 3 s
/// per second back to normal.
fn restarting() -> Body {
    let since = Instant::now();
    Arc::new(move || {
        let t = since.elapsed().as_secs_f64();
        let noise = 0.5 * (t * 1.3).sin();
        if t < 15.0 {
            None
        } else if t < 45.0 {
            Some(lag_line(t - 5.0 + noise))
        } else {
            Some(lag_line((40.0 - 3.0 * (t - 45.0)).max(10.0) + noise))
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

    // GIM: restart, a slow image pull (Pending 15 s, longer than the 10 s pending timeout:
    // a slow start, judged against the readiness deadline), slow readiness, a backlog that
    // rises and drains: healthy. Its guide asks for a 15-minute Helm timeout (30 s scaled),
    // shorter than GIM takes to be Ready: helm gives up and marks the revision failed,
    // which is Helm's timeout, not GIM's.
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
        "slowReady.startAfter=15s",
        "--set",
        "slowReady.readyAfter=55s",
        "--wait",
        "--timeout",
        &helm_timeout,
    ]);
    assert!(out.contains("context deadline exceeded"), "{out}");
    // After GIM's readiness deadline (90 s scaled) and before the end of its bake: an
    // HPA-style scale-up and an eviction (a node drain), their pods pulling and starting as
    // slowly. Judged on their own time and on progress: still healthy.
    let upgraded = support::eval::upgrade_time("gim", "gim").await;
    let cluster_life = async {
        let after_deadline = upgraded + Duration::from_secs(95);
        wait::until(
            Duration::from_secs(150),
            "GIM's readiness deadline passed",
            || async { (jiff::Timestamp::now() >= after_deadline).then_some(()) },
        )
        .await;
        let client = tkube::client().await;
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), "gim")
            .patch(
                "gim",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
            )
            .await
            .unwrap();
        let victim = live_pods("gim", "gim").await.remove(0);
        kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client, "gim")
            .delete(
                victim.metadata.name.as_deref().unwrap(),
                &kube::api::DeleteParams::default().grace_period(0),
            )
            .await
            .unwrap();
    };
    let profile_path = profile.arg();
    let (run, ()) = tokio::join!(check(&profile_path, &prom.url, "gim", "4m"), cluster_life);
    run.expect(
        0,
        &[
            "revision 2 (failed)",
            "helm's own --wait timed out",
            "Deployment/gim rolled out: 2/2 updated, 2/2 new ready",
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
            "CrashLoopBackOff",
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

/// The pods of `release` in `ns`, not being deleted.
async fn live_pods(ns: &str, release: &str) -> Vec<k8s_openapi::api::core::v1::Pod> {
    kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(tkube::client().await, ns)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("app.kubernetes.io/instance={release}")),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Issue 19, proof: ordinary cluster life under the built-in profile as shipped, durations
/// scaled (a release outside the suite gets the profile's defaults: readiness deadline
/// 20 s, pending timeout 10 s, stall timeout 10 s, bake 30 s). A slow image pull (Pending
/// longer than the pending timeout), then after the readiness deadline a scale-up and an
/// eviction whose replacements pull as slowly, end `healthy`, never `failed` on the way; a
/// values-only upgrade of a release whose pod crash-looped before it ends `degraded`, never
/// `failed`; a pod that keeps being OOM-killed while Ready most of the time ends `failed`.
#[tokio::test]
async fn cluster_life_under_the_built_in_profile() {
    use support::eval::{evaluator_with, install_then_upgrade, result, rounds_until, start_for};
    use upgrade_guard::checks::Outcome;
    use upgrade_guard::verdict::Verdict;
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&scaled_profile()).unwrap();
    // Where Prometheus answers is the environment's, not the profile's (the defaults ask
    // it nothing).
    config["prometheus"]["url"] = "http://127.0.0.1:9".into();
    let config = serde_yaml_ng::to_string(&config).unwrap();
    let evaluating = |n: String| {
        let config = config.clone();
        async move {
            let (mut e, parsed, _) = evaluator_with(&config).await;
            let start = start_for(&n, "app").await;
            let policy = parsed.policy_for(&start.release);
            assert_eq!(policy.readiness_deadline, Duration::from_secs(20));
            e.begin(start, policy);
            e
        }
    };

    let life = tkube::namespace("profile-life").await;
    let crashing = tkube::namespace("profile-crashing").await;
    let broken = tkube::namespace("profile-old-broken").await;
    let (n, c, b) = (
        life.name.clone(),
        crashing.name.clone(),
        broken.name.clone(),
    );
    // A release whose one pod has crash-looped since before a values-only upgrade.
    let chart = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &chart,
        "-n",
        &b,
        "--set",
        "fault=CrashLoopBackOff",
    ]);
    tkube::crash_looping_for_two_seconds(&b).await;
    helm::ok(&[
        "upgrade",
        "app",
        &chart,
        "-n",
        &b,
        "--reuse-values",
        "--set",
        "note=values-only",
    ]);
    install_then_upgrade(
        &n,
        "app",
        &[
            "fault=SlowReady",
            "slowReady.startAfter=12s",
            "slowReady.readyAfter=2s",
        ],
    );
    install_then_upgrade(&c, "app", &[]);
    let (mut e, mut crash, mut old) = tokio::join!(
        evaluating(n.clone()),
        evaluating(c.clone()),
        evaluating(b.clone())
    );

    let life_run = async {
        let mut seen = Vec::new();
        let rollout = "rollout:Deployment/app";
        rounds_until(&mut e, &mut seen, |r| {
            r.evaluated_at >= r.started + Duration::from_secs(20)
                && result(r, rollout).outcome == Outcome::Pass
        })
        .await;
        let deployments = kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(
            tkube::client().await,
            &n,
        );
        deployments
            .patch(
                "app",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
            )
            .await
            .unwrap();
        rounds_until(&mut e, &mut seen, |r| {
            result(r, rollout).outcome == Outcome::Pass && result(r, rollout).value == Some(2.0)
        })
        .await;
        let victim = live_pods(&n, "app").await.remove(0);
        kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(tkube::client().await, &n)
            .delete(
                victim.metadata.name.as_deref().unwrap(),
                &kube::api::DeleteParams::default().grace_period(0),
            )
            .await
            .unwrap();
        let last = rounds_until(&mut e, &mut seen, |r| {
            r.verdict == Verdict::Failed || r.is_final()
        })
        .await;
        let failed: Vec<_> = seen
            .iter()
            .filter(|r| r.verdict == Verdict::Failed)
            .collect();
        assert!(
            failed.is_empty(),
            "a round failed the revision: {:#?}",
            failed[0]
        );
        assert_eq!(last.verdict, Verdict::Healthy, "{last:#?}");
        assert!(
            seen.iter().any(|r| result(r, "pending_pods")
                .summary
                .contains("starting (Pending 1)")),
            "the slow pull was seen as a slow start"
        );
    };
    let crash_run = async {
        let mut seen = Vec::new();
        rounds_until(&mut crash, &mut seen, |r| {
            result(r, "rollout:Deployment/app").outcome == Outcome::Pass
        })
        .await;
        let pod = live_pods(&c, "app").await.remove(0);
        let name = pod.metadata.name.clone().unwrap();
        kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(tkube::client().await, &c)
            .replace_status(
                &name,
                &kube::api::PostParams::default(),
                &tkube::restarted(pod, 4),
            )
            .await
            .unwrap();
        let last = rounds_until(&mut crash, &mut seen, |r| r.verdict == Verdict::Failed).await;
        let restarts = result(&last, "restarts");
        assert_eq!(restarts.outcome, Outcome::Fail, "{}", restarts.summary);
        assert!(
            restarts
                .summary
                .contains("4 container restart(s) since the upgrade, more than the 3 tolerated"),
            "{}",
            restarts.summary
        );
    };
    let broken_run = async {
        let mut seen = Vec::new();
        let last = rounds_until(&mut old, &mut seen, |r| {
            r.verdict == Verdict::Failed || r.is_final()
        })
        .await;
        assert_eq!(last.verdict, Verdict::Degraded, "{last:#?}");
        assert!(
            seen.iter().all(|r| r.verdict != Verdict::Failed),
            "the old breakage is not the revision's"
        );
        let pods = result(&last, "pending_pods");
        assert_eq!(pods.outcome, Outcome::Warn, "{}", pods.summary);
        assert!(
            pods.summary.contains("not Ready since before the upgrade"),
            "{}",
            pods.summary
        );
    };
    tokio::join!(life_run, crash_run, broken_run);
}
