//! The built-in Genesys Info Mart profile, tested as shipped: every duration upgrade-guard
//! waits is divided by one factor (a 30 s scrape interval becomes 1 s) and nothing else is
//! changed, then realistic GIM upgrades run end to end with real helm, kwok pods and a real
//! Prometheus scraping a stand-in for GIM's metrics endpoint.
//!
//! - A healthy upgrade: the pod is replaced (GIM runs one instance), so its metrics are gone
//!   while it is down and its Kafka backlog rises until it processes again, then drains;
//!   the pod is Running but not Ready for most of the readiness deadline (GIM is not Ready
//!   until its first transformation job), and the Deployment's own progress deadline (the
//!   Kubernetes default, 600 s, scaled like the rest) passes long before. It ends `healthy`.
//! - A crash-looping upgrade: `failed`, with the rollback to the revision that passed its
//!   bake and helm's `--timeout 15m` for GIM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use support::cli::{self, config_file};
use support::exporter::{Body, Exporter};
use support::prometheus::{Prometheus, Target};
use support::{helm, kube as tkube};
use upgrade_guard::config::{DEFAULT_PROFILE, parse_duration};

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

#[tokio::test]
async fn gim_upgrades_under_the_built_in_profile() {
    let _ns = tkube::namespace_named("gim").await;
    // The profile's own state namespace, for the bake records `--record` writes.
    let _state = tkube::namespace_named("upgrade-guard").await;
    let exporter = Exporter::start_with(steady());
    let prom = Prometheus::start(
        None,
        &[Target {
            job: "gim",
            address: &exporter.address,
        }],
    )
    .await;
    let chart = helm::chart("gim");
    // The Kubernetes default progress deadline, scaled like the profile.
    let progress_deadline = format!("progressDeadlineSeconds={}", 600 / FACTOR);
    helm::ok(&[
        "install",
        "gim",
        &chart,
        "-n",
        "gim",
        "--set",
        &progress_deadline,
        "--wait",
        "--timeout",
        "60s",
    ]);
    support::eval::scraped_a_few_times(&prom, "gim_kafka_timestamp_behind").await;
    let profile = config_file(&scaled_profile());
    let check = |wait: &str| {
        cli::run(
            &[
                "check",
                "gim",
                "-n",
                "gim",
                "--config",
                &profile.arg(),
                "--prometheus-url",
                &prom.url,
                "--wait",
                wait,
                "--record",
            ],
            &[],
        )
    };

    // A healthy upgrade: restart, slow readiness, a backlog that rises and drains.
    exporter.set_with(restarting());
    helm::ok(&[
        "upgrade",
        "gim",
        &chart,
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
    ]);
    let run = check("4m");
    run.expect(
        0,
        &[
            "revision 2 (deployed)",
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

    // A crash-looping upgrade: failed, roll back to 2 with GIM's helm timeout.
    exporter.set_with(Arc::new(|| None));
    helm::ok(&[
        "upgrade",
        "gim",
        &chart,
        "-n",
        "gim",
        "--set",
        "image.tag=100.0.118",
        "--set",
        &progress_deadline,
        "--set",
        "fault=CrashLoopBackOff",
    ]);
    let run = check("2m");
    run.expect(
        1,
        &[
            "revision 3 (deployed)",
            "verdict: failed",
            "CrashLoopBackOff 1",
            "roll back to revision 2",
            "helm rollback gim 2 -n gim --timeout 15m",
        ],
    );
}
