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

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use support::exporter::Exporter;
use support::prometheus::{Prometheus, Target};
use support::{helm, kube as tkube, stack::stack, wait};
use upgrade_guard::cli::history::{RowDetail, read_history};
use upgrade_guard::config::Config;
use upgrade_guard::evaluation::prometheus::Prometheus as PromClient;
use upgrade_guard::evaluation::{Evaluator, Report, Start};
use upgrade_guard::metrics::{PrometheusMetrics, registry};
use upgrade_guard::release::ReleaseKey;
use upgrade_guard::verdict::{RecommendedAction, Verdict};

const WAIT: Duration = Duration::from_secs(120);

/// Short timings so that each scenario decides within seconds.
fn config_yaml(prometheus_url: &str, release_extra: &str) -> String {
    config_with_defaults(prometheus_url, "", release_extra)
}

/// [`config_yaml`] with more `defaults` lines (indented by two spaces).
fn config_with_defaults(prometheus_url: &str, defaults_extra: &str, release_extra: &str) -> String {
    format!(
        "prometheus:\n  url: {prometheus_url}\n  timeout: 2s\n  retry_interval: 200ms\n  errors_before_inconclusive: 4\n  scrape_interval: 1s\n\
         evaluation:\n  interval: 300ms\n\
         defaults:\n  bake_window: 6s\n  readiness_deadline: 40s\n  pending_timeout: 3s\n  rollback_timeout: 5m\n  metrics_grace: 2s\n\
         {defaults_extra}{release_extra}"
    )
}

struct CheckRun {
    code: i32,
    stdout: String,
    stderr: String,
}

impl CheckRun {
    /// Asserts the exit code and that the output says each of `words`.
    fn expect(&self, code: i32, words: &[&str]) {
        assert_eq!(self.code, code, "{}\n{}", self.stdout, self.stderr);
        for w in words {
            assert!(
                self.stdout.contains(w),
                "output lacks {w:?}:\n{}",
                self.stdout
            );
        }
    }

    /// Asserts that the output does not say `words`.
    fn refuse(&self, words: &str) {
        assert!(
            !self.stdout.contains(words),
            "output says {words:?}:\n{}",
            self.stdout
        );
    }
}

/// Runs the real binary: `upgrade-guard check <release> -n <ns> --config <file> --wait ...`.
fn check(release: &str, ns: &str, config: &str, extra: &[&str]) -> CheckRun {
    check_waiting("90s", release, ns, config, extra)
}

/// `check` with its own `--wait`.
fn check_waiting(wait: &str, release: &str, ns: &str, config: &str, extra: &[&str]) -> CheckRun {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-guard"))
        .args(["check", release, "-n", ns, "--config"])
        .arg(&path)
        .args(["--wait", wait])
        .args(extra)
        .envs(stack().child_env())
        .env_remove("UPGRADE_GUARD_PROMETHEUS_URL")
        .output()
        .unwrap();
    CheckRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn install_then_upgrade(ns: &str, release: &str, upgrade_set: &[&str]) {
    let chart = &helm::chart("demo-app");
    helm::ok(&[
        "install",
        release,
        chart,
        "-n",
        ns,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let mut args = vec![
        "upgrade",
        release,
        chart,
        "-n",
        ns,
        "--set",
        "image.tag=1.1.0",
    ];
    for s in upgrade_set {
        args.extend(["--set", s]);
    }
    helm::ok(&args);
}

/// When revision 2 of the release started (its `last_deployed`).
async fn upgrade_time(ns: &str, release: &str) -> Timestamp {
    let rows = read_history(tkube::client().await, ns, release)
        .await
        .unwrap();
    match &rows.last().unwrap().detail {
        RowDetail::Decoded(s) => s.last_deployed.unwrap(),
        RowDetail::Undecodable { decode_error } => panic!("{decode_error}"),
    }
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

/// OpenMetrics lines for `name{labels}` from `from` to `to` every 5 s, valued by `f(t)`.
fn series(name: &str, labels: &str, from: i64, to: i64, f: impl Fn(i64) -> f64) -> String {
    (from..=to)
        .step_by(5)
        .map(|t| format!("{name}{{{labels}}} {} {t}\n", f(t)))
        .collect()
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
        t - 1800,
        t + 600,
        |s| {
            if s <= t {
                10.0
            } else {
                10.0 + 5.0 * (s - t) as f64
            }
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
        now - 900,
        now + 600,
        |_| 0.0,
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

async fn evaluator_with(config_text: &str) -> (Evaluator, Config, PrometheusMetrics) {
    let config = Config::parse(config_text, "test").unwrap();
    let metrics = PrometheusMetrics::register(&mut registry());
    let client = PromClient::new(&config.prometheus, metrics.clone()).unwrap();
    (
        Evaluator::new(tkube::client().await, &config, client),
        config,
        metrics,
    )
}

async fn start_for(ns: &str, release: &str) -> Start {
    let rows = read_history(tkube::client().await, ns, release)
        .await
        .unwrap();
    let latest = rows.last().unwrap();
    let RowDetail::Decoded(summary) = &latest.detail else {
        panic!("undecodable")
    };
    Start {
        release: ReleaseKey::new(ns, release),
        status: latest.status,
        status_since: summary.last_deployed.unwrap(),
        history: rows.iter().map(|r| (r.revision, r.status)).collect(),
        rollbacks: Default::default(),
        summary: Arc::new((**summary).clone()),
    }
}

async fn round_of(e: &mut Evaluator) -> Report {
    e.round(Timestamp::now()).await.into_iter().next().unwrap()
}

/// Runs evaluation rounds, paced like the daemon's retry interval, until `done` holds.
async fn rounds_until(
    e: &mut Evaluator,
    verdicts: &mut Vec<Verdict>,
    done: impl Fn(&Report) -> bool,
) -> Report {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = round_of(e).await;
        verdicts.push(r.verdict);
        if done(&r) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such round within {WAIT:?}: {verdicts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An endpoint serving `body`, a Prometheus scraping it every second, and a wait until
/// Prometheus holds three samples of `metric` (as a metric that existed well before an
/// upgrade would).
async fn scraped(body: &str, metric: &str) -> (Exporter, Prometheus) {
    let exporter = Exporter::start(body);
    let prom = Prometheus::start(
        None,
        &[Target {
            job: "app",
            address: &exporter.address,
        }],
    )
    .await;
    scraped_a_few_times(&prom, metric).await;
    (exporter, prom)
}

async fn scraped_a_few_times(prom: &Prometheus, metric: &str) {
    let query = format!("count_over_time({metric}[1m]) >= 3");
    wait::until(WAIT, "three scrapes", || async {
        let data = prom.query(&query, None).await;
        (!data["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
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

#[tokio::test]
async fn prometheus_stopped_mid_evaluation_is_inconclusive_never_failed() {
    let ns = tkube::namespace("eval-promdown").await;
    let (_exporter, mut prom) = scraped(&format!("{LIVE}app_errors 0\n"), "app_errors").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let extra = "releases:\n  - name: app\n    bake_window: 10m\n    metrics_presence:\n      - {name: app_up, query: 'app_up'}\n    custom:\n      - {name: errors, query: 'sum(app_errors)', max: 0}\n";
    let (mut evaluator, config, metrics) = evaluator_for(&prom.url, extra).await;
    let start = start_for(&ns.name, "app").await;
    evaluator.begin(start.clone(), config.policy_for(&start.release));

    let mut verdicts = Vec::new();
    // Judged on real data first: the custom check passes.
    let report = rounds_until(&mut evaluator, &mut verdicts, |r| {
        r.results
            .iter()
            .any(|c| c.check == "custom:errors" && c.outcome.as_str() == "pass")
    })
    .await;
    assert_eq!(report.verdict, Verdict::Progressing);

    prom.stop();
    let report = rounds_until(&mut evaluator, &mut verdicts, |r| {
        r.verdict == Verdict::Inconclusive
    })
    .await;
    assert!(!verdicts.contains(&Verdict::Failed), "{verdicts:?}");
    assert!(metrics.queries_with("error") >= 4);
    let custom = report
        .results
        .iter()
        .find(|c| c.check == "custom:errors")
        .unwrap();
    assert!(
        custom.summary.contains("Prometheus did not answer"),
        "{}",
        custom.summary
    );
    assert!(
        custom.summary.contains("4 failures in a row"),
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
        evaluator_with(&config_with_defaults(&prom.url, defaults, "")).await;
    for release in ["one", "two"] {
        let start = start_for(&ns.name, release).await;
        evaluator.begin(start.clone(), config.policy_for(&start.release));
    }
    // First round: one baseline query for both revisions (each evaluated with `@` at its
    // own upgrade), then one query per check type.
    evaluator.round(Timestamp::now()).await;
    let first = metrics.queries_with("success");
    assert_eq!(
        first,
        1 + 4,
        "1 baseline + presence, lag, dependencies, custom"
    );
    let reports = evaluator.round(Timestamp::now()).await;
    assert_eq!(
        metrics.queries_with("success") - first,
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
