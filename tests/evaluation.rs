//! Health evaluation on the real stack: the real helm writes revisions, kwok and the
//! controllers make pods Ready or broken, a real Prometheus answers (on backfilled history
//! or scraping a live endpoint), and `upgrade-guard check` (or the evaluator behind it)
//! must reach the right verdict and recommend the right command.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use jiff::Timestamp;
use support::cli::{check, check_waiting, short_config};
use support::eval::{
    evaluator_with, install_then_upgrade, result, rounds_until, scraped, series, start_for,
    upgrade_time,
};
use support::prometheus::Prometheus;
use support::{helm, kube as tkube};
use upgrade_guard::checks::Outcome;
use upgrade_guard::config::Config;
use upgrade_guard::evaluation::Evaluator;
use upgrade_guard::gather::metrics::{PrometheusMetrics, QueryOutcome};
use upgrade_guard::verdict::{RecommendedAction, Verdict};

fn config_yaml(prometheus_url: &str, release_extra: &str) -> String {
    short_config(prometheus_url, "", release_extra)
}

#[tokio::test]
async fn a_good_upgrade_ends_healthy() {
    let ns = tkube::namespace("eval-good").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let run = check("app", &ns.name, &config_yaml("http://127.0.0.1:9", ""), &[]);
    run.expect(
        0,
        &[
            "verdict: healthy",
            "rollout:Deployment/app  pass",
            "action: none",
        ],
    );
}

#[tokio::test]
async fn pods_stuck_pending_fail_with_the_reason_and_the_rollback_command() {
    let ns = tkube::namespace("eval-pending").await;
    install_then_upgrade(&ns.name, "app", &["unschedulable=true"]);
    let run = check("app", &ns.name, &config_yaml("http://127.0.0.1:9", ""), &[]);
    let command = format!("helm rollback app 1 -n {} --timeout 5m", ns.name);
    run.expect(1, &["verdict: failed", "Unschedulable 1", &command]);

    // The recommended command is real: it works.
    helm::ok(&command.split(' ').skip(1).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failed_migration_job_recommends_a_pod_restart_not_a_rollback() {
    let ns = tkube::namespace("eval-migrate").await;
    install_then_upgrade(
        &ns.name,
        "app",
        &[
            "migration.enabled=true",
            "migration.hook=false",
            "migration.fail=true",
        ],
    );
    let extra = "releases:\n  - name: app\n    migration:\n      job_name_pattern: migrat\n";
    let run = check(
        "app",
        &ns.name,
        &config_yaml("http://127.0.0.1:9", extra),
        &["-o", "json"],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "failed");
    assert_eq!(report["action"]["action"], "restart_pod");
    assert_eq!(
        report["action"]["command"],
        format!("kubectl rollout restart deployment/app -n {}", ns.name)
    );
    let migration = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "migration")
        .unwrap();
    assert_eq!(migration["outcome"], "fail");
    assert!(
        migration["summary"]
            .as_str()
            .unwrap()
            .contains("app-migrate failed")
    );
}

#[tokio::test]
async fn a_lag_that_grows_after_the_upgrade_fails() {
    let ns = tkube::namespace("eval-lag").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let t = upgrade_time(&ns.name, "app").await.as_second();
    // Flat at 10 s for the half hour before the upgrade, then growing 5 s per second
    // (written ahead of time: the check judges it as time reaches it).
    let labels = format!("namespace=\"{}\"", ns.name);
    let mut om = String::from("# TYPE gim_kafka_timestamp_behind gauge\n");
    om.push_str(&series(
        "gim_kafka_timestamp_behind",
        &labels,
        (t - 1800, t + 600, 1),
        |s| {
            Some(if s <= t {
                10.0
            } else {
                10.0 + 5.0 * (s - t) as f64
            })
        },
    ));
    om.push_str("# EOF\n");
    let prom = Prometheus::with_backfill(&om).await;
    let extra = "releases:\n  - name: app\n    lag:\n      query: 'max(gim_kafka_timestamp_behind{namespace=\"{{namespace}}\"})'\n      window: 20s\n      max_slope: 1\n";
    let run = check("app", &ns.name, &config_yaml(&prom.url, extra), &[]);
    let command = format!("helm rollback app 1 -n {}", ns.name);
    run.expect(
        1,
        &[
            "backlog growing",
            "before the upgrade: +0/s, level 10",
            &command,
        ],
    );
}

#[tokio::test]
async fn a_dependency_down_recommends_fixing_it_even_when_pods_fail_too() {
    let ns = tkube::namespace("eval-dep").await;
    install_then_upgrade(&ns.name, "app", &["unschedulable=true"]);
    let now = Timestamp::now().as_second();
    let mut om = String::from("# TYPE kafka_brokers gauge\n");
    om.push_str(&series(
        "kafka_brokers",
        "cluster=\"main\"",
        (now - 900, now + 600, 5),
        |_| Some(0.0),
    ));
    om.push_str("# EOF\n");
    let prom = Prometheus::with_backfill(&om).await;
    // The pods fail after 20 s, well after kafka's failure has held for its `for:` (1 s):
    // while a dependency is not confirmed, no rollback is recommended at all.
    let extra = "releases:\n  - name: app\n    pending_timeout: 20s\n    dependencies:\n      - name: kafka\n        query: 'min(kafka_brokers{cluster=\"main\"})'\n        min: 1\n";
    let run = check("app", &ns.name, &config_yaml(&prom.url, extra), &[]);
    run.expect(
        1,
        &[
            "dependency:kafka",
            "kafka is 0 (must be at least 1)",
            "action: fix the dependency kafka first: a rollback will not work",
        ],
    );
    run.refuse("helm rollback");
}

async fn evaluator_for(prom_url: &str, extra: &str) -> (Evaluator, Config, PrometheusMetrics) {
    evaluator_with(&config_yaml(prom_url, extra)).await
}

const LIVE: &str = "# TYPE app_up gauge\napp_up{service=\"app\"} 1\n";

#[tokio::test]
async fn a_metric_that_disappears_after_the_upgrade_fails() {
    let ns = tkube::namespace("eval-absent").await;
    let (exporter, prom) = scraped(LIVE, "app_up").await;
    install_then_upgrade(&ns.name, "app", &[]);
    // The new version no longer exposes the metric (as when its image never ran).
    exporter.set("# nothing here\n");
    let extra = "releases:\n  - name: app\n    metrics_presence:\n      - name: app_up\n        query: 'app_up{service=\"app\"}'\n";
    let run = check("app", &ns.name, &config_yaml(&prom.url, extra), &[]);
    run.expect(
        1,
        &[
            "no metrics: app_up had 1 series before the upgrade (job app) and none for 2s",
            "Prometheus scraped that job successfully",
            "no longer exposes it",
        ],
    );
}

/// Issue 7.3: while Prometheus is down, a judgement is replayed for a few rounds, but a
/// replayed failure is never `failed`: it needs a current answer.
#[tokio::test]
async fn prometheus_stopped_mid_evaluation_is_inconclusive_never_failed() {
    let ns = tkube::namespace("eval-promdown").await;
    let (_exporter, mut prom) = scraped(&format!("{LIVE}app_errors 1\n"), "app_errors").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let extra = "releases:\n  - name: app\n    bake_window: 10m\n    metrics_presence:\n      - {name: app_up, query: 'app_up'}\n    custom:\n      - {name: errors, query: 'sum(app_errors)', max: 0}\n";
    let (mut evaluator, config, metrics) = evaluator_for(&prom.url, extra).await;
    let start = start_for(&ns.name, "app").await;
    evaluator.begin(start.clone(), config.policy_for(&start.release));

    let mut seen = Vec::new();
    // Judged on real data first: the custom check fails once it has held for its `for:`.
    let report = rounds_until(&mut evaluator, &mut seen, |r| r.verdict == Verdict::Failed).await;
    assert!(
        result(&report, "custom:errors")
            .summary
            .contains("errors is 1 (must be at most 0)")
    );

    prom.stop();
    seen.clear();
    let report = rounds_until(&mut evaluator, &mut seen, |r| {
        result(r, "custom:errors")
            .summary
            .contains("4 failures in a row")
    })
    .await;
    let verdicts: Vec<Verdict> = seen.iter().map(|r| r.verdict).collect();
    assert!(!verdicts.contains(&Verdict::Failed), "{verdicts:?}");
    let replayed = result(&seen[0], "custom:errors");
    assert_eq!(
        replayed.outcome,
        Outcome::Inconclusive,
        "{}",
        replayed.summary
    );
    assert!(
        replayed
            .summary
            .contains("a failure needs a current answer"),
        "{}",
        replayed.summary
    );
    assert_eq!(report.verdict, Verdict::Inconclusive);
    assert!(metrics.queries_with(QueryOutcome::Error) >= 4);
    let custom = result(&report, "custom:errors");
    assert!(
        custom.summary.contains("Prometheus did not answer"),
        "{}",
        custom.summary
    );
    assert!(matches!(
        report.action,
        RecommendedAction::Investigate { .. }
    ));
}

#[tokio::test]
async fn prometheus_unreachable_makes_check_exit_inconclusive_with_words() {
    let ns = tkube::namespace("eval-noprom").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let extra = "releases:\n  - name: app\n    custom:\n      - {name: errors, query: 'sum(app_errors)', max: 0}\n";
    // It keeps trying up to --wait, then reports what it could not do.
    let run = check_waiting(
        "3s",
        "app",
        &ns.name,
        &config_yaml("http://127.0.0.1:9", extra),
        &[],
    );
    run.expect(2, &["verdict: inconclusive", "Prometheus did not answer"]);
    run.refuse("helm rollback");
}

#[tokio::test]
async fn one_query_per_check_type_per_round_for_all_releases() {
    let ns = tkube::namespace("eval-batch").await;
    let (_exporter, prom) = scraped(
        &format!("{LIVE}app_errors 0\nkafka_brokers 3\nlag_seconds 4\n"),
        "lag_seconds",
    )
    .await;
    install_then_upgrade(&ns.name, "one", &[]);
    install_then_upgrade(&ns.name, "two", &[]);
    let defaults = "  metrics_presence:\n    - {name: app_up, query: 'app_up'}\n  lag:\n    query: 'max(lag_seconds)'\n    window: 5s\n    max_slope: 1\n  dependencies:\n    - {name: kafka, query: 'min(kafka_brokers)', min: 1}\n  custom:\n    - {name: errors, query: 'sum(app_errors)', max: 0}\n";
    let (mut evaluator, config, metrics) =
        evaluator_with(&short_config(&prom.url, defaults, "")).await;
    for release in ["one", "two"] {
        let start = start_for(&ns.name, release).await;
        evaluator.begin(start.clone(), config.policy_for(&start.release));
    }
    // First round: one baseline query for both revisions (each evaluated with `@` at its
    // own upgrade), then one query per check type.
    evaluator.round(Timestamp::now()).await;
    let first = metrics.queries_with(QueryOutcome::Success);
    assert_eq!(
        first,
        1 + 4,
        "1 baseline + presence, lag, dependencies, custom"
    );
    let reports = evaluator.round(Timestamp::now()).await;
    assert_eq!(
        metrics.queries_with(QueryOutcome::Success) - first,
        4,
        "4 queries for 2 releases"
    );
    assert_eq!(reports.len(), 2);
    for r in &reports {
        for check in [
            "metrics_presence:app_up",
            "dependency:kafka",
            "custom:errors",
        ] {
            let c = r.results.iter().find(|c| c.check == check).unwrap();
            assert_eq!(c.outcome.as_str(), "pass", "{}: {}", r.release, c.summary);
        }
    }
}

#[tokio::test]
async fn a_newer_revision_cancels_the_evaluation_of_the_older_one() {
    let ns = tkube::namespace("eval-cancel").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let (mut evaluator, config, _) = evaluator_for("http://127.0.0.1:9", "").await;
    let older = start_for(&ns.name, "app").await;
    assert_eq!(
        evaluator.begin(older.clone(), config.policy_for(&older.release)),
        None
    );
    helm::ok(&[
        "upgrade",
        "app",
        &helm::chart("demo-app"),
        "-n",
        &ns.name,
        "--set",
        "image.tag=3",
    ]);
    let newer = start_for(&ns.name, "app").await;
    assert_eq!(newer.summary.revision, 3);
    assert_eq!(
        evaluator.begin(newer.clone(), config.policy_for(&newer.release)),
        Some(2)
    );
    // A late start for the older revision does not displace the newer one.
    assert_eq!(
        evaluator.begin(older.clone(), config.policy_for(&older.release)),
        None
    );
    let reports = evaluator.round(Timestamp::now()).await;
    assert_eq!(
        reports.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![3]
    );
}

/// A query Prometheus rejects is that check's problem, said as such, and does not hold back
/// the other checks' values at the time of the upgrade.
#[tokio::test]
async fn an_invalid_query_is_reported_by_its_own_check_only() {
    let ns = tkube::namespace("eval-badquery").await;
    let (_exporter, prom) = scraped(LIVE, "app_up").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let extra = "releases:\n  - name: app\n    bake_window: 10m\n    metrics_presence:\n      - {name: app_up, query: 'app_up'}\n    lag:\n      query: 'max(app_up{'\n      window: 5s\n      max_slope: 1\n";
    let (mut evaluator, config, _) = evaluator_for(&prom.url, extra).await;
    let start = start_for(&ns.name, "app").await;
    evaluator.begin(start.clone(), config.policy_for(&start.release));
    let report = rounds_until(&mut evaluator, &mut Vec::new(), |r| {
        result(r, "metrics_presence:app_up").outcome == Outcome::Pass
    })
    .await;
    let lag = result(&report, "lag");
    assert_eq!(lag.outcome, Outcome::Inconclusive, "{}", lag.summary);
    assert!(
        lag.summary.contains("Prometheus rejected the query"),
        "{}",
        lag.summary
    );
    assert_ne!(report.verdict, Verdict::Failed);
}
