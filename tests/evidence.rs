//! Evidence before a verdict, on the real stack: each test is a situation in which an
//! earlier upgrade-guard said `failed` (and recommended a rollback) without evidence that
//! holds up, or missed the evidence that was there. Real helm, kwok pods, a real Prometheus
//! on backfilled series or scraping a live endpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use support::cli::{check, check_waiting, short_config};
use support::eval::{
    evaluator_with, install_then_upgrade, result, rounds, rounds_until, scraped, series, start_for,
    upgrade, upgrade_time,
};
use support::prometheus::{Prometheus, Target};
use support::{helm, kube as tkube, wait};
use upgrade_guard::checks::Outcome;
use upgrade_guard::config::render_query;
use upgrade_guard::evaluation::Start;
use upgrade_guard::gather::metrics::QueryOutcome;
use upgrade_guard::gather::promql;
use upgrade_guard::release::summary::{ChartRef, ReleaseSummary};
use upgrade_guard::release::{ReleaseKey, ReleaseStatus};
use upgrade_guard::verdict::Verdict;

const LIVE: &str = "# TYPE app_up gauge\napp_up{service=\"app\"} 1\n";
const PRESENCE: &str = "releases:\n  - name: app\n    metrics_presence:\n      - name: app_up\n        query: 'app_up{service=\"app\"}'\n";

/// Issue 7.2: a metric missing because its target is down (pods not running or not scraped)
/// is explained by that, not proven absent: never `failed`; `inconclusive` with words once
/// the readiness deadline has passed.
#[tokio::test]
async fn absence_while_the_target_is_down_is_not_a_failure() {
    let ns = tkube::namespace("ev-target-down").await;
    let (exporter, prom) = scraped(LIVE, "app_up").await;
    install_then_upgrade(&ns.name, "app", &[]);
    exporter.set_with(Arc::new(|| None));
    let config = short_config(
        &prom.url,
        "",
        &format!("{PRESENCE}    readiness_deadline: 5s\n"),
    );
    let run = check_waiting("12s", "app", &ns.name, &config, &[]);
    run.expect(
        2,
        &[
            "the pods that exposed it are not running or not scraped",
            "cannot tell absence from a scrape problem",
            "verdict: inconclusive",
        ],
    );
    run.refuse("helm rollback");
    run.refuse("no metrics:");
}

/// Issue 7.2: a Prometheus that restarted without its data and has not scraped the target
/// again answers "no series" successfully: not evidence of absence.
#[tokio::test]
async fn a_prometheus_that_lost_its_data_is_not_evidence_of_absence() {
    let ns = tkube::namespace("ev-prom-restart").await;
    let (exporter, mut prom) = scraped(LIVE, "app_up").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let extra = format!("{PRESENCE}    bake_window: 10m\n");
    let (mut evaluator, config, _) = evaluator_with(&short_config(&prom.url, "", &extra)).await;
    let start = start_for(&ns.name, "app").await;
    evaluator.begin(start.clone(), config.policy_for(&start.release));
    let presence = "metrics_presence:app_up";
    rounds_until(&mut evaluator, &mut Vec::new(), |r| {
        result(r, presence).outcome == Outcome::Pass
    })
    .await;
    prom.restart_empty(&[]).await;
    // 15 rounds, about 3 s: well past the 2 s grace with no sample at all.
    let seen = rounds(&mut evaluator, 15).await;
    let outcomes: Vec<Outcome> = seen.iter().map(|r| result(r, presence).outcome).collect();
    assert!(!outcomes.contains(&Outcome::Fail), "{outcomes:?}");
    assert!(
        seen.iter().any(|r| result(r, presence)
            .summary
            .contains("successfully only 0 times")),
        "{:?}",
        seen.iter()
            .map(|r| result(r, presence).summary.clone())
            .collect::<Vec<_>>()
    );
    assert!(seen.iter().all(|r| r.verdict != Verdict::Failed));
    prom.reconfigure(&[Target {
        job: "app",
        address: &exporter.address,
        namespace: None,
    }]);
    let mut seen = Vec::new();
    rounds_until(&mut evaluator, &mut seen, |r| {
        result(r, presence).outcome == Outcome::Pass
    })
    .await;
}

/// OpenMetrics text, terminated.
fn openmetrics(parts: &[String]) -> String {
    let mut om = parts.concat();
    om.push_str("# EOF\n");
    om
}

/// Issue 7.2: "existed before" is read over a look-back, so a Prometheus that had a gap at
/// the upgrade does not make a metric that vanished look like one that never existed.
#[tokio::test]
async fn a_prometheus_gap_at_the_upgrade_is_not_never_existed() {
    let ns = tkube::namespace("ev-gap").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let t = upgrade_time(&ns.name, "app").await.as_second();
    let labels = "job=\"app\",instance=\"a:1\"";
    // Scraped until 7 minutes before the upgrade (longer than Prometheus' 5 m staleness),
    // then nothing until the upgrade; afterwards the target is scraped but the new version
    // no longer exposes app_up.
    let om = openmetrics(&[
        "# TYPE app_up gauge\n".to_string(),
        series("app_up", labels, (t - 1800, t - 420, 1), |_| Some(1.0)),
        "# TYPE up gauge\n".to_string(),
        series("up", labels, (t - 1800, t + 600, 1), |s| {
            (s <= t - 420 || s > t).then_some(1.0)
        }),
    ]);
    let prom = Prometheus::with_backfill(&om).await;
    let extra = "releases:\n  - name: app\n    metrics_grace: 4s\n    metrics_presence:\n      - name: app_up\n        query: 'app_up{job=\"app\"}'\n";
    let run = check("app", &ns.name, &short_config(&prom.url, "", extra), &[]);
    run.expect(
        1,
        &["no metrics: app_up had 1 series before the upgrade (job app)"],
    );
}

/// Issue 7.4: a threshold is not failed by one sample; its condition must hold for `for:`.
#[tokio::test]
async fn one_sample_never_decides_a_threshold() {
    let ns = tkube::namespace("ev-for").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let t = upgrade_time(&ns.name, "app").await.as_second();
    // Errors spike for 2 s (two samples) soon after the upgrade, then for good from t + 12.
    let om = openmetrics(&[
        "# TYPE app_errors gauge\n".to_string(),
        series("app_errors", "job=\"app\"", (t - 600, t + 600, 1), |s| {
            Some(if (t + 3..=t + 4).contains(&s) || s >= t + 12 {
                5.0
            } else {
                0.0
            })
        }),
    ]);
    let prom = Prometheus::with_backfill(&om).await;
    let extra = "releases:\n  - name: app\n    bake_window: 10m\n    custom:\n      - {name: errors, query: 'sum(app_errors)', max: 0, for: 4s}\n";
    let (mut evaluator, config, _) = evaluator_with(&short_config(&prom.url, "", extra)).await;
    let start = start_for(&ns.name, "app").await;
    evaluator.begin(start.clone(), config.policy_for(&start.release));
    let mut seen = Vec::new();
    let failed = rounds_until(&mut evaluator, &mut seen, |r| r.verdict == Verdict::Failed).await;
    let sustained = Timestamp::from_second(t + 12).unwrap();
    for r in &seen {
        if r.evaluated_at < sustained {
            assert_ne!(
                r.verdict,
                Verdict::Failed,
                "{:?}",
                result(r, "custom:errors")
            );
        }
    }
    assert!(
        seen.iter().any(|r| {
            let c = result(r, "custom:errors");
            c.outcome == Outcome::Pending && c.summary.contains("failing for")
        }),
        "the spike was seen and held"
    );
    let c = result(&failed, "custom:errors");
    assert!(
        c.summary
            .contains("errors is 5 (must be at most 0) (for 4s"),
        "{}",
        c.summary
    );
}

/// Issue 7.4: NaN is never a pass.
#[tokio::test]
async fn nan_is_inconclusive_never_a_pass() {
    let ns = tkube::namespace("ev-nan").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let prom = Prometheus::start(None, &[]).await;
    let extra = "releases:\n  - name: app\n    custom:\n      - {name: error_ratio, query: 'vector(0) / vector(0)', max: 0.05}\n";
    let run = check_waiting(
        "3s",
        "app",
        &ns.name,
        &short_config(&prom.url, "", extra),
        &[],
    );
    run.expect(
        2,
        &[
            "error_ratio: the query returned NaN",
            "verdict: inconclusive",
        ],
    );
}

/// Issue 7.5: a lag metric with no series at all, before or after the upgrade, does not
/// keep the release inconclusive for ever: it is said, and the bake ends degraded.
#[tokio::test]
async fn a_lag_metric_that_never_existed_ends_degraded_with_words() {
    let ns = tkube::namespace("ev-nolag").await;
    let (_exporter, prom) = scraped(LIVE, "app_up").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let extra = "releases:\n  - name: app\n    lag:\n      query: 'max(gim_kafka_timestamp_behind{namespace=\"{{namespace}}\"})'\n      window: 5s\n      max_slope: 1\n";
    let run = check_waiting(
        "30s",
        "app",
        &ns.name,
        &short_config(&prom.url, "", extra),
        &[],
    );
    run.expect(
        4,
        &[
            "not judged: the lag query has no series, neither before the upgrade nor now",
            "verdict: degraded",
        ],
    );
}

/// Issue 7.6: a growing backlog while a dependency was down within the lag window is the
/// dependency's doing: fix it, no rollback, even when the dependency is back by then.
#[tokio::test]
async fn a_lag_after_a_dependency_outage_recommends_fixing_the_dependency() {
    let ns = tkube::namespace("ev-deplag").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let t = upgrade_time(&ns.name, "app").await.as_second();
    let lag = format!("namespace=\"{}\"", ns.name);
    let om = openmetrics(&[
        "# TYPE gim_kafka_timestamp_behind gauge\n".to_string(),
        series(
            "gim_kafka_timestamp_behind",
            &lag,
            (t - 600, t + 600, 1),
            |s| {
                Some(if s <= t {
                    10.0
                } else {
                    10.0 + 5.0 * (s - t) as f64
                })
            },
        ),
        "# TYPE kafka_brokers gauge\n".to_string(),
        // Kafka is down for 5 s (less than its `for:`) after the upgrade, back before the lag
        // is judged (once its 60 s window has passed), and inside that window until
        // t + 84: `check` may start late on a busy machine.
        series(
            "kafka_brokers",
            "cluster=\"main\"",
            (t - 600, t + 600, 1),
            |s| {
                Some(if (t + 20..=t + 24).contains(&s) {
                    0.0
                } else {
                    3.0
                })
            },
        ),
    ]);
    let prom = Prometheus::with_backfill(&om).await;
    let extra = "releases:\n  - name: app\n    lag:\n      query: 'max(gim_kafka_timestamp_behind{namespace=\"{{namespace}}\"})'\n      window: 60s\n      max_slope: 1\n    dependencies:\n      - {name: kafka, query: 'min(kafka_brokers{cluster=\"main\"})', min: 1, for: 8s}\n";
    let run = check("app", &ns.name, &short_config(&prom.url, "", extra), &[]);
    run.expect(
        1,
        &[
            "backlog growing",
            "kafka was outside its bounds within the lag window",
            "fix kafka first",
            "action: fix the dependency kafka first",
        ],
    );
    run.refuse("helm rollback");
}

/// Issue 7.12: batched queries go by POST; with enough releases the same query by GET is
/// refused by Prometheus itself.
#[tokio::test]
async fn batched_queries_go_by_post_past_the_limit_of_a_get() {
    let prom = Prometheus::start(None, &[]).await;
    let padding = "x".repeat(3000);
    let query = format!(
        "sum(app_errors{{namespace=\"{{{{namespace}}}}\",release=\"{{{{release}}}}\",pod!=\"{padding}\"}})"
    );
    let config = short_config(
        &prom.url,
        &format!("  custom:\n    - {{name: errors, query: '{query}', max: 0, on_no_data: pass}}\n"),
        "",
    );
    let (mut evaluator, parsed, metrics) = evaluator_with(&config).await;
    let releases = 400;
    let mut items = Vec::new();
    for i in 0..releases {
        let key = ReleaseKey::new("batch-ns", &format!("release-{i:04}"));
        items.push((format!("r{i}-c0"), render_query(&query, &key)));
        let summary = ReleaseSummary {
            name: key.name.to_string(),
            namespace: key.namespace.to_string(),
            revision: 2,
            status: ReleaseStatus::Deployed,
            description: "Upgrade complete".into(),
            first_deployed: None,
            last_deployed: Some(Timestamp::now()),
            recorded: None,
            chart: ChartRef {
                name: "app".into(),
                version: "1.0.0".into(),
                app_version: None,
            },
            hooks: vec![],
            workloads: vec![],
            manifest_problems: vec![],
            fingerprint: Default::default(),
        };
        let start = Start {
            release: key.clone(),
            summary: Arc::new(summary),
            status: ReleaseStatus::Deployed,
            status_since: Timestamp::now(),
            history: vec![(1, ReleaseStatus::Superseded), (2, ReleaseStatus::Deployed)],
            rollbacks: Default::default(),
            storage: upgrade_guard::release::labels::Storage::Secret,
        };
        evaluator.begin(start, parsed.policy_for(&key));
    }
    let batch = promql::batch(&items);
    assert!(batch.len() > 1 << 20, "the batch is {} bytes", batch.len());
    let status = get_status(&prom.url, &batch);
    assert!(
        matches!(status.as_deref(), Some("414" | "431")),
        "a GET with a {} byte query got {status:?}",
        batch.len()
    );
    let reports = evaluator.round(Timestamp::now()).await;
    assert_eq!(reports.len(), releases);
    for r in &reports {
        let c = result(r, "custom:errors");
        assert_eq!(c.outcome, Outcome::Pass, "{}: {}", r.release, c.summary);
        assert!(
            c.summary.contains("the query returned no data"),
            "{}",
            c.summary
        );
    }
    assert_eq!(
        metrics.queries_with(QueryOutcome::Success),
        1,
        "one query for {releases} releases"
    );
    assert_eq!(metrics.queries_with(QueryOutcome::Error), 0);
}

/// Sends `/api/v1/query?query=<query>` by GET on a plain socket (HTTP clients refuse to
/// build such a URL at all) and returns the status code Prometheus answered.
fn get_status(base: &str, query: &str) -> Option<String> {
    use std::io::{Read, Write};
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)])
        .unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let mut socket =
        std::net::TcpStream::connect(format!("{}:{}", url.host_str()?, url.port()?)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may answer and close before the whole request line is written.
    let _ = socket.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let mut head = [0u8; 64];
    let n = socket.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]).into_owned();
    line.split_whitespace().nth(1).map(str::to_string)
}

/// A Job of release `app` created through the API (not by helm), succeeding or failing.
async fn job(ns: &str, name: &str, fail: bool) {
    let mut labels = serde_json::json!({"app.kubernetes.io/instance": "app"});
    if fail {
        labels["pod-container-running-failed.stage.kwok.x-k8s.io"] = "true".into();
    }
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": "app"}},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": labels},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "migrate", "image": "registry.invalid/migrate:1"}]}}}
    }))
    .unwrap();
    Api::<Job>::namespaced(tkube::client().await, ns)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
}

async fn job_finished(ns: &str, name: &str, condition: &str) {
    let api = Api::<Job>::namespaced(tkube::client().await, ns);
    wait::until(
        Duration::from_secs(60),
        &format!("Job {name} {condition}"),
        || async {
            let j = api.get(name).await.ok()?;
            let done = j
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == condition && c.status == "True");
            done.then_some(())
        },
    )
    .await;
}

const MIGRATION: &str =
    "releases:\n  - name: app\n    migration:\n      job_name_pattern: migrat\n";

/// Issue 7.7: GIM and gim-monitoring share a namespace; one release's failed migration Job
/// is not the other's.
#[tokio::test]
async fn jobs_of_another_release_in_the_namespace_do_not_count() {
    let ns = tkube::namespace("ev-jobs").await;
    install_then_upgrade(&ns.name, "app", &[]);
    helm::ok(&[
        "install",
        "app-monitoring",
        &helm::chart("demo-app"),
        "-n",
        &ns.name,
        "--wait",
    ]);
    upgrade(
        &ns.name,
        "app-monitoring",
        "1.1.0",
        &[
            "migration.enabled=true",
            "migration.hook=false",
            "migration.fail=true",
        ],
    );
    job_finished(&ns.name, "app-monitoring-migrate", "Failed").await;
    let run = check(
        "app",
        &ns.name,
        &short_config("http://127.0.0.1:9", "", MIGRATION),
        &[],
    );
    run.expect(
        0,
        &["no migration job ran; none is required", "verdict: healthy"],
    );
}

/// Issue 7.7: the latest attempt is judged: a failed attempt followed by a successful retry
/// passes.
#[tokio::test]
async fn a_failed_migration_attempt_followed_by_a_successful_retry_passes() {
    let ns = tkube::namespace("ev-retry").await;
    install_then_upgrade(&ns.name, "app", &[]);
    job(&ns.name, "app-migrate-1", true).await;
    job_finished(&ns.name, "app-migrate-1", "Failed").await;
    job(&ns.name, "app-migrate-2", false).await;
    let run = check(
        "app",
        &ns.name,
        &short_config("http://127.0.0.1:9", "", MIGRATION),
        &[],
    );
    run.expect(
        0,
        &[
            "migration job app-migrate-2 completed (after 1 failed attempt(s))",
            "verdict: healthy",
        ],
    );
}

/// Issue 7.7: a failed pre-upgrade hook means the new manifest was never applied: the action
/// is to fix the hook, not a rollback and not a pod restart.
#[tokio::test]
async fn a_failed_pre_upgrade_hook_recommends_fixing_the_hook() {
    let ns = tkube::namespace("ev-prehook").await;
    helm::ok(&[
        "install",
        "app",
        &helm::chart("demo-app"),
        "-n",
        &ns.name,
        "--wait",
    ]);
    let chart = helm::chart("demo-app");
    helm::shared().fails(&[
        "upgrade",
        "app",
        &chart,
        "-n",
        &ns.name,
        "--set",
        "image.tag=1.1.0",
        "--set",
        "migration.enabled=true",
        "--set",
        "migration.fail=true",
        "--timeout",
        "60s",
    ]);
    let run = check(
        "app",
        &ns.name,
        &short_config("http://127.0.0.1:9", "", MIGRATION),
        &[],
    );
    run.expect(
        1,
        &[
            "the pre-upgrade hook app-migrate failed, so helm never applied revision 2",
            &format!("kubectl logs job/app-migrate -n {}", ns.name),
            "action: fix what made the hook app-migrate fail",
        ],
    );
    run.refuse("helm rollback");
    run.refuse("kubectl rollout restart");
}

/// Found in review: pods are found through selectors with `matchExpressions` too.
#[tokio::test]
async fn pods_are_found_through_match_expressions_selectors() {
    let ns = tkube::namespace("ev-selector").await;
    let chart = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &chart,
        "-n",
        &ns.name,
        "--set",
        "selectorExpressions=true",
        "--wait",
    ]);
    upgrade(
        &ns.name,
        "app",
        "1.1.0",
        &["selectorExpressions=true", "fault=CrashLoopBackOff"],
    );
    let run = check(
        "app",
        &ns.name,
        &short_config("http://127.0.0.1:9", "", ""),
        &[],
    );
    run.expect(1, &["pending_pods", "CrashLoopBackOff 1", "0/1 new ready"]);
}

/// A release's own health (custom check) failing while its pods are still starting is
/// expected: progressing, not failed, until it is Ready or the readiness deadline passes.
#[tokio::test]
async fn a_custom_failure_while_the_release_starts_is_not_failed() {
    let ns = tkube::namespace("ev-starting").await;
    install_then_upgrade(&ns.name, "app", &["fault=NotReady"]);
    let prom = Prometheus::start(None, &[]).await;
    let extra = "releases:\n  - name: app\n    custom:\n      - {name: running_jobs, query: 'vector(0)', min: 1, for: 1s}\n";
    let run = check_waiting(
        "5s",
        "app",
        &ns.name,
        &short_config(&prom.url, "", extra),
        &[],
    );
    run.expect(
        3,
        &[
            "running_jobs is 0 (must be at least 1)",
            "app is not Ready yet, so this is expected while it starts",
            "verdict: progressing",
        ],
    );
    run.refuse("helm rollback");
}

fn lag_at(ns: &str, level: f64) -> String {
    format!(
        "# TYPE gim_kafka_timestamp_behind gauge\ngim_kafka_timestamp_behind{{namespace=\"{ns}\"}} {level:.1}\n"
    )
}

/// Issue 19.11: Prometheus is stopped from before the upgrade to past the bake's end while
/// the backlog grows, then comes back with its data, before it has found its targets again.
/// Its look-back fills every step of the lag window with the last sample from before the
/// outage: today's code read "+0/s, level as before, 20 points" and closed the evaluation
/// `healthy`. The window is judged from scrapes Prometheus really took: `pending` until it
/// scrapes again, then `failed`.
#[tokio::test]
async fn a_backlog_that_grew_during_a_monitoring_outage_is_failed_never_healthy() {
    let ns = tkube::namespace("ev-outage").await;
    let n = ns.name.clone();
    let exporter = support::exporter::Exporter::start(&lag_at(&n, 10.0));
    let target = [Target {
        job: "app",
        address: &exporter.address,
        namespace: None,
    }];
    let mut prom = Prometheus::start(None, &target).await;
    support::eval::scraped_a_few_times(&prom, "gim_kafka_timestamp_behind").await;
    prom.stop();
    install_then_upgrade(&n, "app", &[]);
    // Behind by 30 more seconds every second from the upgrade on.
    let since = std::time::Instant::now();
    let grow = n.clone();
    exporter.set_with(Arc::new(move || {
        Some(lag_at(&grow, 10.0 + 30.0 * since.elapsed().as_secs_f64()))
    }));
    let extra = "releases:\n  - name: app\n    bake_window: 25s\n    lag:\n      query: 'max(gim_kafka_timestamp_behind{namespace=\"{{namespace}}\"})'\n      window: 20s\n      max_slope: 1\n";
    let (mut e, parsed, _) = evaluator_with(&short_config(&prom.url, "", extra)).await;
    let start = start_for(&n, "app").await;
    let policy = parsed.policy_for(&start.release);
    e.begin(start, policy);
    let mut seen = Vec::new();
    // The outage spans the end of the bake.
    rounds_until(&mut e, &mut seen, |r| {
        r.evaluated_at >= r.bake_ends + Duration::from_secs(2)
    })
    .await;
    prom.restart_with_data(&[]).await;
    let back = rounds_until(&mut e, &mut seen, |r| {
        r.verdict == Verdict::Healthy
            || r.results
                .iter()
                .any(|c| c.check == "lag" && c.summary.contains("it was not scraping"))
    })
    .await;
    assert_ne!(back.verdict, Verdict::Healthy, "{back:#?}");
    assert_eq!(result(&back, "lag").outcome, Outcome::Pending);
    // Its targets found again: the backlog that grew is seen.
    prom.reconfigure(&target);
    let last = rounds_until(&mut e, &mut seen, |r| {
        matches!(r.verdict, Verdict::Healthy | Verdict::Failed)
    })
    .await;
    assert_eq!(last.verdict, Verdict::Failed, "{last:#?}");
    assert_eq!(result(&last, "lag").outcome, Outcome::Fail);
    assert!(
        !seen.iter().any(|r| r.verdict == Verdict::Healthy),
        "never healthy"
    );
}

/// Issue 19.6: the release's own target is down while a target of the same job in another
/// namespace (a staging copy) is scraped fine. Today's code took that other target's `up`
/// as proof that the metric vanished and failed the revision; absence is proven only from
/// targets in the series' own namespace: never `failed`, `inconclusive` with words once the
/// readiness deadline has passed.
#[tokio::test]
async fn a_target_of_the_same_job_elsewhere_is_no_proof_of_absence() {
    let ns = tkube::namespace("ev-other-ns").await;
    let n = ns.name.clone();
    let line = |namespace: &str| {
        format!("# TYPE app_up gauge\napp_up{{service=\"app\",namespace=\"{namespace}\"}} 1\n")
    };
    let ours = support::exporter::Exporter::start(&line(&n));
    let staging = support::exporter::Exporter::start(&line("staging"));
    let prom = Prometheus::start(
        None,
        &[
            Target {
                job: "app",
                address: &ours.address,
                namespace: Some(&n),
            },
            Target {
                job: "app",
                address: &staging.address,
                namespace: Some("staging"),
            },
        ],
    )
    .await;
    support::eval::scraped_a_few_times(&prom, "app_up").await;
    install_then_upgrade(&n, "app", &[]);
    // This release's target stops answering; the staging copy goes on.
    ours.set_with(Arc::new(|| None));
    let presence = "releases:\n  - name: app\n    readiness_deadline: 5s\n    metrics_presence:\n      - name: app_up\n        query: 'app_up{namespace=\"{{namespace}}\"}'\n";
    let config = short_config(&prom.url, "", presence);
    let run = check_waiting("12s", "app", &n, &config, &[]);
    run.expect(
        2,
        &[
            "the pods that exposed it are not running or not scraped",
            "verdict: inconclusive",
        ],
    );
    run.refuse("no metrics:");
    run.refuse("helm rollback");
}
