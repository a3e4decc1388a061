//! `upgrade-guard replay` on the local stack: a GIM history made with the real helm
//! (install, a healthy upgrade, a crash-looping upgrade, the people's rollback), the series
//! of that period (kube-state-metrics' names and labels, and GIM's Kafka backlog) backfilled
//! into a real Prometheus with promtool, and the built-in profile, its durations scaled by
//! [`FACTOR`] (and GIM's namespace set to where the test installs it), replaying it: the
//! verdicts, their minute, the actions and what happened next. A release whose namespace
//! has no kube-state-metrics series is not judged on guesses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use support::cli::{self, config_file};
use support::prometheus::Prometheus;
use support::{helm, kube as tkube};
use upgrade_guard::release::record::RowDetail;
use upgrade_guard::tracker::read::read_history;

/// Every duration upgrade-guard waits is divided by this: GIM's 60-minute bake lasts 18 s,
/// its 30 s scrape and evaluation intervals 150 ms, a release pending 20 minutes (6 s) is
/// stuck (helm on a loaded machine takes a few seconds: this factor leaves them to it).
const FACTOR: f64 = 200.0;

/// `minutes` of the profile's real time, scaled, in seconds.
fn scaled(minutes: f64) -> f64 {
    minutes * 60.0 / FACTOR
}

/// A sample every scaled scrape interval (30 s).
const STEP: f64 = 30.0 / FACTOR;

/// Time between two revisions of the history: longer than GIM's bake window (65 minutes).
fn apart() -> Duration {
    Duration::from_secs_f64(scaled(65.0))
}

/// The people roll back the crash-looping revision after half an hour.
const PEOPLE_MINUTES: f64 = 30.0;

/// The built-in profile scaled, GIM's entry in namespace `ns`. Network timeouts are not
/// waits of the judgement: Prometheus' stays as shipped (a replay's queries of the past
/// take what they take on a loaded machine), the daemon's Kubernetes watch timeouts (unused
/// by a replay) at the smallest the configuration accepts.
fn profile_for(ns: &str) -> String {
    let mut p: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&support::profile::scaled(FACTOR as u32)).unwrap();
    let shipped: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(upgrade_guard::config::DEFAULT_PROFILE).unwrap();
    p["prometheus"]["timeout"] = shipped["prometheus"]["timeout"].clone();
    p["watch"]["watch_timeout"] = "1s".into();
    p["watch"]["idle_timeout"] = "2s".into();
    let releases = p["releases"].as_sequence_mut().unwrap();
    for r in releases.iter_mut().filter(|r| r["name"] == "gim") {
        r["namespace"] = ns.into();
    }
    serde_yaml_ng::to_string(&p).unwrap()
}

/// Waits until the wall clock passes `t`: the history needs time between its revisions.
async fn until_clock(t: Timestamp) {
    let left = t.duration_since(Timestamp::now());
    if left.is_positive() {
        tokio::time::sleep(Duration::try_from(left).unwrap()).await;
    }
}

fn at_seconds(t: f64) -> Timestamp {
    Timestamp::from_millisecond((t * 1000.0) as i64).unwrap()
}

/// Runs `helm <args>` once `wait` has passed since the latest revision of `gim` started.
async fn after_last(ns: &str, wait: Duration, args: &[String]) {
    let times = started(ns, "gim").await;
    until_clock(at_seconds(*times.last().unwrap()) + wait).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm::ok(&args);
}

/// When each revision of the release started, as upgrade-guard times it.
async fn started(ns: &str, release: &str) -> Vec<f64> {
    read_history(tkube::client().await, ns, release)
        .await
        .unwrap()
        .iter()
        .map(|r| match &r.detail {
            RowDetail::Decoded(s) => s.started_at().unwrap().as_millisecond() as f64 / 1000.0,
            RowDetail::Undecodable { decode_error } => panic!("{decode_error}"),
        })
        .collect()
}

/// Series being written: per metric, its series' samples (labels → points).
#[derive(Default)]
struct Series(BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>>);

impl Series {
    fn add(&mut self, metric: &str, labels: &str, t: f64, v: f64) {
        self.0
            .entry(metric.into())
            .or_default()
            .entry(labels.into())
            .or_default()
            .push((t, v));
    }

    /// OpenMetrics text for promtool (a family's series together, each in time order).
    fn openmetrics(&self) -> String {
        let mut out = String::new();
        for (metric, series) in &self.0 {
            out.push_str(&format!("# TYPE {metric} gauge\n"));
            for (labels, points) in series {
                for (t, v) in points {
                    out.push_str(&format!("{metric}{{{labels}}} {v} {t:.3}\n"));
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// One pod of the history: its ReplicaSet, when it was created, when it runs, when it is
/// Ready (never when `None`), when it crash-loops from, when it is deleted.
struct PodLife {
    name: String,
    rs: &'static str,
    created: f64,
    running: f64,
    ready: Option<f64>,
    crashing: Option<f64>,
    deleted: f64,
}

/// What kube-state-metrics records of the history, and GIM's backlog while a pod serves.
fn history(ns: &str, t: &[f64], end: f64) -> String {
    let [t1, t2, t3, t4] = t else {
        panic!("four revisions expected, got {t:?}")
    };
    let (t1, t2, t3, t4) = (*t1, *t2, *t3, *t4);
    let far = end + 1.0;
    // GIM runs one instance with the Recreate strategy: the old pod goes before the new
    // one starts; a new pod is Running 5 minutes (scaled) after the upgrade and Ready at
    // 20 (not Ready for long, as GIM); revision 3's pod crash-loops from minute 8; the
    // rollback scales revision 2's ReplicaSet up again.
    let pods = [
        PodLife {
            name: "gim-a-1".into(),
            rs: "gim-a",
            created: t1 + scaled(2.0),
            running: t1 + scaled(5.0),
            ready: Some(t1 + scaled(20.0)),
            crashing: None,
            deleted: t2 + scaled(1.0),
        },
        PodLife {
            name: "gim-b-1".into(),
            rs: "gim-b",
            created: t2 + scaled(2.0),
            running: t2 + scaled(5.0),
            ready: Some(t2 + scaled(20.0)),
            crashing: None,
            deleted: t3 + scaled(1.0),
        },
        PodLife {
            name: "gim-c-1".into(),
            rs: "gim-c",
            created: t3 + scaled(2.0),
            running: t3 + scaled(5.0),
            ready: None,
            crashing: Some(t3 + scaled(8.0)),
            deleted: t4 + scaled(1.0),
        },
        PodLife {
            name: "gim-b-2".into(),
            rs: "gim-b",
            created: t4 + scaled(2.0),
            running: t4 + scaled(5.0),
            ready: Some(t4 + scaled(20.0)),
            crashing: None,
            deleted: far,
        },
    ];
    // ReplicaSets: (name, created, [(from, replicas)]).
    type Scale = Vec<(f64, f64)>;
    let replica_sets: [(&str, f64, Scale); 3] = [
        (
            "gim-a",
            t1 + scaled(1.0),
            vec![(t1 + scaled(1.0), 1.0), (t2 + scaled(0.5), 0.0)],
        ),
        (
            "gim-b",
            t2 + scaled(1.5),
            vec![
                (t2 + scaled(1.5), 1.0),
                (t3 + scaled(0.5), 0.0),
                (t4 + scaled(1.5), 1.0),
            ],
        ),
        (
            "gim-c",
            t3 + scaled(1.5),
            vec![(t3 + scaled(1.5), 1.0), (t4 + scaled(0.5), 0.0)],
        ),
    ];
    let ksm = format!(r#"job="kube-state-metrics",instance="ksm:8080",namespace="{ns}""#);
    let mut s = Series::default();
    let mut now = t1 - 1.0;
    while now <= end {
        let live: Vec<&PodLife> = pods
            .iter()
            .filter(|p| p.created <= now && now < p.deleted)
            .collect();
        for p in &live {
            let pod = format!(r#"{ksm},pod="{}",uid="{}""#, p.name, p.name);
            let ready = p.ready.is_some_and(|r| now >= r);
            let running = now >= p.running;
            let crashing = p.crashing.filter(|c| now >= *c);
            s.add("kube_pod_created", &pod, now, p.created.floor());
            s.add(
                "kube_pod_owner",
                &format!(
                    r#"{pod},owner_kind="ReplicaSet",owner_name="{}",owner_is_controller="true""#,
                    p.rs
                ),
                now,
                1.0,
            );
            for (condition, v) in [("true", ready), ("false", !ready)] {
                let v = if v { 1.0 } else { 0.0 };
                s.add(
                    "kube_pod_status_ready",
                    &format!(r#"{pod},condition="{condition}""#),
                    now,
                    v,
                );
            }
            for phase in ["Pending", "Running"] {
                let v = if (phase == "Running") == running {
                    1.0
                } else {
                    0.0
                };
                s.add(
                    "kube_pod_status_phase",
                    &format!(r#"{pod},phase="{phase}""#),
                    now,
                    v,
                );
            }
            let container = format!(r#"{pod},container="gim""#);
            let waiting = if !running {
                Some("ContainerCreating")
            } else if crashing.is_some() {
                Some("CrashLoopBackOff")
            } else {
                None
            };
            for reason in ["ContainerCreating", "CrashLoopBackOff"] {
                let v = if waiting == Some(reason) { 1.0 } else { 0.0 };
                s.add(
                    "kube_pod_container_status_waiting_reason",
                    &format!(r#"{container},reason="{reason}""#),
                    now,
                    v,
                );
            }
            // A crash every 2 minutes (scaled) once crash-looping.
            let restarts = crashing.map_or(0.0, |c| ((now - c) / scaled(2.0)).floor() + 1.0);
            s.add(
                "kube_pod_container_status_restarts_total",
                &container,
                now,
                restarts,
            );
            if crashing.is_some() {
                s.add(
                    "kube_pod_container_status_last_terminated_reason",
                    &format!(r#"{container},reason="Error""#),
                    now,
                    1.0,
                );
            }
        }
        for (rs, created, scale) in &replica_sets {
            if now < *created {
                continue;
            }
            let replicas = scale
                .iter()
                .rev()
                .find(|(from, _)| now >= *from)
                .map_or(0.0, |(_, r)| *r);
            let labels = format!(r#"{ksm},replicaset="{rs}""#);
            s.add("kube_replicaset_spec_replicas", &labels, now, replicas);
            s.add("kube_replicaset_created", &labels, now, created.floor());
            s.add(
                "kube_replicaset_owner",
                &format!(r#"{labels},owner_kind="Deployment",owner_name="gim",owner_is_controller="true""#),
                now,
                1.0,
            );
        }
        // The Deployment: its generation moves with each revision's template.
        let generation = [t1, t2, t3, t4].iter().filter(|r| now >= **r).count() as f64;
        let current = live.iter().rev().find(|p| p.created <= now);
        let ready = current.is_some_and(|p| p.ready.is_some_and(|r| now >= r));
        let d = format!(r#"{ksm},deployment="gim""#);
        let counts = [
            ("kube_deployment_spec_replicas", 1.0),
            ("kube_deployment_metadata_generation", generation),
            ("kube_deployment_status_observed_generation", generation),
            (
                "kube_deployment_status_replicas_updated",
                if current.is_some() { 1.0 } else { 0.0 },
            ),
            ("kube_deployment_status_replicas", live.len() as f64),
            (
                "kube_deployment_status_replicas_ready",
                if ready { 1.0 } else { 0.0 },
            ),
            (
                "kube_deployment_status_replicas_available",
                if ready { 1.0 } else { 0.0 },
            ),
        ];
        for (metric, v) in counts {
            s.add(metric, &d, now, v);
        }
        // GIM's backlog while a pod runs and does not crash: about 10 s, wobbling by less
        // than the profile's 0.5 s/s slope limit.
        let serving = live
            .iter()
            .any(|p| now >= p.running && p.crashing.is_none_or(|c| now < c));
        if serving {
            s.add(
                "gim_kafka_timestamp_behind",
                &format!(r#"job="gim",namespace="{ns}""#),
                now,
                10.0 + 0.2 * (now * 1.3).sin(),
            );
        }
        now += STEP;
    }
    s.openmetrics()
}

/// `upgrade-guard replay --config <config> --prometheus-url <prometheus> <args>`.
fn replay_run(args: &[&str], config: &str, prometheus: &str) -> cli::Run {
    let file = config_file(config);
    let path = file.arg();
    let mut all = vec!["replay", "--config", &path, "--prometheus-url", prometheus];
    all.extend(args);
    cli::run(&all, &[])
}

/// The replay's JSON report.
fn replay(args: &[&str], config: &str, prometheus: &str) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let run = replay_run(&all, config, prometheus);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn revision(report: &Value, n: u64) -> &Value {
    report["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["revision"] == n)
        .unwrap_or_else(|| panic!("revision {n} not replayed: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_profile_replays_a_gim_history_as_it_happened() {
    let ns = tkube::namespace("replay-gim").await;
    let bare = tkube::namespace("replay-bare").await;
    let n = ns.name.as_str();
    // A release whose namespace kube-state-metrics never recorded (installed without
    // --wait, as the others: the scaled profile calls a release pending for 2 s stuck).
    let chart = helm::chart("gim");
    helm::ok(&["install", "gim", &chart, "-n", &bare.name]);
    helm::ok(&[
        "install",
        "gim",
        &chart,
        "-n",
        n,
        "--set",
        "image.tag=100.0.116",
    ]);
    let upgrade = |tag: &'static str| -> Vec<String> {
        ["upgrade", "gim", &chart, "-n", n, "--set"]
            .iter()
            .map(ToString::to_string)
            .chain([format!("image.tag={tag}")])
            .collect()
    };
    after_last(n, apart(), &upgrade("100.0.117")).await;
    after_last(n, apart(), &upgrade("100.0.118")).await;
    // The people notice the crash loop and roll back half an hour (scaled) later.
    let rollback = ["rollback", "gim", "2", "-n", n].map(String::from);
    after_last(
        n,
        Duration::from_secs_f64(scaled(PEOPLE_MINUTES)),
        &rollback,
    )
    .await;
    let times = started(n, "gim").await;
    until_clock(at_seconds(times[3]) + apart()).await;
    let end = Timestamp::now().as_millisecond() as f64 / 1000.0;
    let prometheus = Prometheus::with_backfill(&history(n, &times, end)).await;
    let config = profile_for(n);

    let report = replay(&["gim", "-n", n], &config, &prometheus.url);
    let verdicts: Vec<(u64, String)> = report["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["verdict"].to_string()))
        .collect();
    println!("{report:#}");
    let healthy = revision(&report, 2);
    assert_eq!(healthy["verdict"], "healthy", "{verdicts:?}\n{healthy:#}");
    // Healthy once GIM's bake window (60 minutes, scaled) has passed, not before.
    let after = healthy["after_seconds"].as_f64().unwrap();
    assert!(
        (scaled(60.0)..scaled(60.0) + 1.0).contains(&after),
        "{healthy:#}"
    );
    assert_eq!(healthy["next"]["kind"], "replaced", "{healthy:#}");

    let bad = revision(&report, 3);
    assert_eq!(bad["verdict"], "failed", "{verdicts:?}\n{bad:#}");
    let failed_at = bad["after_seconds"].as_f64().unwrap();
    assert!(
        failed_at < scaled(PEOPLE_MINUTES),
        "caught before the people's rollback: {bad:#}"
    );
    assert_eq!(bad["action"]["action"], "rollback", "{bad:#}");
    assert_eq!(bad["action"]["target"], 2, "{bad:#}");
    assert!(
        bad["would"]
            .as_str()
            .unwrap()
            .contains(&format!("helm rollback gim 2 -n {n}")),
        "{bad:#}"
    );
    assert_eq!(bad["next"]["kind"], "rolled_back", "{bad:#}");
    assert_eq!(bad["next"]["to"], 2, "{bad:#}");
    let evidence = bad["evidence"].to_string();
    assert!(evidence.contains("CrashLoopBackOff"), "{bad:#}");

    let rollback = revision(&report, 4);
    assert_eq!(rollback["verdict"], "healthy", "{verdicts:?}\n{rollback:#}");
    assert_eq!(rollback["operation"], "rollback");

    let summary = &report["summary"];
    assert_eq!(summary["failed"], 1, "{summary:#}");
    let caught = &summary["caught_earlier"][0];
    assert_eq!(caught["what"], format!("{n}/gim 3"), "{summary:#}");
    let saved = caught["saved_seconds"].as_f64().unwrap();
    let rolled_back_after = bad["next"]["after_seconds"].as_f64().unwrap();
    assert!(
        (saved - (rolled_back_after - failed_at)).abs() < 0.01,
        "{summary:#}"
    );
    assert!(
        summary["likely_false_alarms"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The same history with another threshold: GIM's pods allowed 15 minutes not Ready
    // instead of 5: the crash loop is caught later, still before the people.
    let mut patient: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config).unwrap();
    patient["defaults"]["pending_timeout"] = format!("{}ms", scaled(15.0) * 1000.0).into();
    let patient = serde_yaml_ng::to_string(&patient).unwrap();
    let other = replay(&["gim", "-n", n], &patient, &prometheus.url);
    let later = revision(&other, 3);
    assert_eq!(later["verdict"], "failed", "{later:#}");
    let later_at = later["after_seconds"].as_f64().unwrap();
    assert!(
        later_at > failed_at + scaled(5.0),
        "{failed_at} then {later:#}"
    );
    let saved_later = other["summary"]["saved_seconds"].as_f64().unwrap();
    assert!(saved_later < saved, "{:#}", other["summary"]);

    // What an operator reads.
    let table = replay_run(&["gim", "-n", n], &config, &prometheus.url);
    table.expect(
        0,
        &[
            "REVISION",
            "rolled back to 2 after",
            "failures caught before the people acted",
        ],
    );
    println!("{}", table.stdout);

    // One upgrade round by round: progressing until the round that failed it.
    let at = replay(&["gim", "-n", n, "--at", "3"], &config, &prometheus.url);
    let rounds = revision(&at, 3)["rounds"].as_array().unwrap().clone();
    let (last, before) = rounds.split_last().unwrap();
    assert_eq!(last["verdict"], "failed");
    assert!(!before.is_empty() && before.iter().all(|r| r["verdict"] == "progressing"));
    assert_eq!(at["revisions"].as_array().unwrap().len(), 1);

    // Without kube-state-metrics series of its namespace, nothing is judged on guesses.
    let blind = replay(&["gim", "-n", &bare.name], &config, &prometheus.url);
    let only = revision(&blind, 1);
    assert_eq!(only["verdict"], "inconclusive", "{only:#}");
    assert!(
        only["evidence"]
            .to_string()
            .contains("no history of pod states"),
        "{only:#}"
    );
}

#[test]
fn a_prometheus_that_does_not_answer_or_a_wrong_argument_is_said_in_words() {
    let config = profile_for("gim");
    let down = replay_run(&["gim", "-n", "gim"], &config, "http://127.0.0.1:1");
    assert_eq!(down.code, 69, "{}\n{}", down.stdout, down.stderr);
    down.says_on_stderr("cannot replay");
    down.says_on_stderr("replay reads the past from Prometheus");
    let usage = replay_run(&["-n", "gim", "--at", "3"], &config, "http://127.0.0.1:1");
    assert_eq!(usage.code, 64, "{}", usage.stderr);
    usage.says_on_stderr("--at replays one revision");
}
