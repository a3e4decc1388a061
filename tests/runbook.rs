//! The runbook's commands on the real stack: `preflight` (the whole suite operating normally
//! before an upgrade, and never a yes without the cluster or Prometheus) and `status` (every
//! release in one table, from a daemon or judged on the spot).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::time::Duration;

use support::cli::{Run, config_file, short_config};
use support::daemon::{Running, options};
use support::eval::upgrade;
use support::exporter::Exporter;
use support::prometheus::{Prometheus, Target};
use support::{helm, kube as tkube, stack::stack, wait};

const WAIT: Duration = Duration::from_secs(150);
const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

fn install(n: &str, release: &str) {
    helm::install(n, release, "demo-app", &[]);
}

/// Runs the binary off the runtime's threads.
async fn cli(args: Vec<String>, env: Vec<(String, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        support::cli::run(&args, &env)
    })
    .await
    .unwrap()
}

async fn preflight(config: &support::cli::ConfigFile, extra: &[&str]) -> Run {
    let mut args = vec!["preflight".to_string(), "--config".into(), config.arg()];
    args.extend(extra.iter().map(|s| s.to_string()));
    cli(args, vec![]).await
}

fn suite_config(prometheus: &str, gim: &str, gsp: &str, extra: &str) -> String {
    short_config(
        prometheus,
        "",
        &format!(
            "watch:\n  namespaces: [{gim}, {gsp}]\nstate:\n  namespace: {gim}\n\
             suites:\n  - name: test-suite\n    order: [[{gim}/gim, {gim}/gim-monitoring], [{gsp}/gsp]]\n{extra}"
        ),
    )
}

/// Issue 11.1, 11.6: ready only once every installed release of the suite is deployed and
/// healthy (a missing one is skipped); a release still in its bake or held by a running
/// `helm upgrade` (`pending-upgrade`) makes it refuse, naming the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_says_yes_only_when_the_whole_suite_operates_normally() {
    let gim = tkube::namespace("pre-gim").await;
    let gsp = tkube::namespace("pre-gsp").await;
    let (gim, gsp) = (gim.name.as_str(), gsp.name.as_str());
    let config = config_file(&suite_config(NO_PROMETHEUS, gim, gsp, ""));
    install(gim, "gim");
    install(gsp, "gsp");
    // Just installed: still inside their 6 s bake window.
    let early = preflight(&config, &["--suite", "test-suite"]).await;
    if early.code == 1 {
        assert!(
            early.stdout.contains("still being verified"),
            "{}",
            early.stdout
        );
    }
    let ready = wait::until(WAIT, "preflight ready", || async {
        let r = preflight(&config, &["--suite", "test-suite"]).await;
        (r.code == 0).then_some(r)
    })
    .await;
    assert!(
        ready.stdout.contains(&format!("ok         {gim}/gim\n")),
        "{}",
        ready.stdout
    );
    assert!(
        ready
            .stdout
            .contains(&format!("{gim}/gim-monitoring\n           not installed")),
        "{}",
        ready.stdout
    );
    assert!(
        ready
            .stdout
            .contains("ready: every installed release of suite test-suite")
    );

    // A helm upgrade that waits for pods that never come: the release is pending-upgrade.
    let chart = helm::chart("demo-app");
    let mut running = helm::shared()
        .command(&[
            "upgrade",
            "gsp",
            &chart,
            "-n",
            gsp,
            "--set",
            "unschedulable=true",
            "--wait",
            "--timeout",
            "120s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait::until(WAIT, "gsp pending-upgrade", || async {
        let rows = upgrade_guard::tracker::read::read_history(tkube::client().await, gsp, "gsp")
            .await
            .ok()?;
        (rows.last()?.status.as_str() == "pending-upgrade").then_some(())
    })
    .await;
    // --release gim: the suite of gim is checked, gsp included.
    let refused = preflight(&config, &["--release", "gim", "-n", gim]).await;
    let _ = running.kill();
    let _ = running.wait();
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains(&format!(
            "NOT READY  {gsp}/gsp\n           revision 2 is pending-upgrade: a Helm operation holds the release"
        )),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains(&format!(
            "not ready: {gsp}/gsp of suite test-suite is not operating normally"
        )),
        "{}",
        refused.stdout
    );
}

/// Issue 11.1, 11.6: a dependency down, or Prometheus unreachable, or the cluster
/// unreachable: never a yes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_with_a_dependency_down_and_without_prometheus_or_the_cluster() {
    let gim = tkube::namespace("pre-dep").await;
    let gsp = tkube::namespace("pre-dep-gsp").await;
    let (gim, gsp) = (gim.name.as_str(), gsp.name.as_str());
    let exporter = Exporter::start("# TYPE kafka_brokers gauge\nkafka_brokers 0\n");
    let prometheus = Prometheus::start(
        None,
        &[Target {
            job: "kafka-exporter",
            address: &exporter.address,
            namespace: None,
        }],
    )
    .await;
    let dependency = "releases:\n  - name: gim\n    dependencies:\n      - name: kafka\n        \
         query: 'kafka_brokers{job=\"kafka-exporter\"}'\n        min: 1\n        for: 1s\n";
    install(gim, "gim");
    install(gsp, "gsp");
    let config = config_file(&suite_config(&prometheus.url, gim, gsp, dependency));
    let run = wait::until(WAIT, "preflight refuses, naming kafka", || async {
        let r = preflight(&config, &[]).await;
        // Judged from a sample (not "no data yet"): kafka is 0, at least 1 is needed.
        (r.code == 1
            && r.stdout.contains("dependency dependency:kafka:")
            && r.stdout.contains("kafka is 0 (must be at least 1)"))
        .then_some(r)
    })
    .await;
    assert!(
        run.stdout.contains(&format!("NOT READY  {gim}/gim")),
        "{}",
        run.stdout
    );
    // Kafka back: ready.
    exporter.set("# TYPE kafka_brokers gauge\nkafka_brokers 3\n");
    let ok = wait::until(WAIT, "preflight ready once kafka is up", || async {
        let r = preflight(&config, &[]).await;
        (r.code == 0).then_some(r)
    })
    .await;
    assert!(
        ok.stdout.contains("dependencies up: kafka"),
        "{}",
        ok.stdout
    );

    // Prometheus unreachable: the dependency cannot be asked, so no yes.
    let blind = config_file(&suite_config(NO_PROMETHEUS, gim, gsp, dependency));
    let r = preflight(&blind, &[]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not a current answer"), "{}", r.stdout);

    // The cluster unreachable: an error, not an answer.
    let dead = tkube::kubeconfig_with_server("https://127.0.0.1:9");
    let r = cli(
        vec!["preflight".into(), "--config".into(), config.arg()],
        vec![("KUBECONFIG".into(), dead.path().display().to_string())],
    )
    .await;
    assert_eq!(r.code, 69, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("ready"), "{}", r.stdout);
}

/// Issue 11.5: `status` from a running daemon and judged on the spot: every release, its
/// chart, verdict, what does not pass, the recommended action and the mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_release_from_the_daemon_and_on_the_spot() {
    let ns = tkube::namespace("status").await;
    let n = ns.name.as_str();
    let config_text = short_config(
        NO_PROMETHEUS,
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             releases:\n  - name: calm\n    mode: observe\n"
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config_text, options("replica-a")).await;
    install(n, "calm");
    install(n, "broken");
    upgrade(n, "broken", "1.1.0", &["unschedulable=true"]);
    wait::until(WAIT, "broken failed", || async {
        let v = d.releases().await;
        v["releases"]
            .as_array()?
            .iter()
            .any(|r| r["release"]["name"] == "broken" && r["judgement"]["verdict"] == "failed")
            .then_some(())
    })
    .await;
    let url = format!("http://{}", d.address);
    let run = cli(vec!["status".into(), "--url".into(), url.clone()], vec![]).await;
    // The worst verdict shown is failed: check's code for it (issue 22.5).
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("RELEASE"), "{}", run.stdout);
    let broken = lines
        .iter()
        .find(|l| l.starts_with(&format!("{n}/broken")))
        .unwrap();
    for words in [
        "demo-app-0.1.0",
        "failed",
        "pending_pods fail",
        &format!("roll back to revision 1: helm rollback broken 1 -n {n} --timeout 5m"),
        "recommend",
    ] {
        assert!(broken.contains(words), "{words:?} in {broken}");
    }
    let calm = lines
        .iter()
        .find(|l| l.starts_with(&format!("{n}/calm")))
        .unwrap();
    assert!(calm.contains("observe"), "{calm}");
    d.stop().await;

    // On the spot, as JSON: the same facts without a daemon.
    let config = config_file(&config_text);
    let run = cli(
        vec![
            "status".into(),
            "--config".into(),
            config.arg(),
            "-o".into(),
            "json".into(),
        ],
        vec![],
    )
    .await;
    // On the spot the worst is progressing (one round never fails a revision).
    assert_eq!(run.code, 3, "{}", run.stderr);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let broken = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == format!("{n}/broken"))
        .unwrap();
    assert_eq!(broken["revision"], 2);
    // One round is one sample, and one sample never fails a revision: on the spot the
    // findings the daemon failed on are shown held, with how long they must hold.
    assert!(
        broken["verdict"]
            .as_str()
            .unwrap()
            .starts_with("progressing"),
        "{broken:#}"
    );
    assert_eq!(broken["mode"], "recommend");
    assert!(
        broken["failing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "pending_pods pending"),
        "{broken:#}"
    );
    // A daemon that does not answer is an error, not an empty table.
    let run = cli(
        vec!["status".into(), "--url".into(), "http://127.0.0.1:9".into()],
        vec![],
    )
    .await;
    assert_eq!(run.code, 69, "{}\n{}", run.stdout, run.stderr);
}

fn mails_to(to: &str) -> Vec<support::mail::Message> {
    support::mail::messages()
        .into_iter()
        .filter(|m| m.to.contains(to))
        .collect()
}

fn notify_config(n: &str, to: &str, releases: &str) -> String {
    short_config(
        NO_PROMETHEUS,
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n  \
             email:\n    smtp_host: 127.0.0.1\n    smtp_port: {}\n    security: none\n    \
             from: upgrade-guard@test.invalid\n    to: [{to}]\n\
             releases:\n{releases}",
            stack().alertmanager_url,
            stack().smtp_port
        ),
    )
}

/// Issue 11.4: an uninstall is reported once (info alert and one email); for GSP the
/// ConfigMaps left behind with its `app` selector are listed with the exact delete command,
/// and nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstall_is_reported_once_with_what_it_left_and_nothing_is_deleted() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let ns = tkube::namespace("uninstall").await;
    let n = ns.name.as_str();
    let to = format!("ops-{n}@test.invalid");
    let config = notify_config(
        n,
        &to,
        "  - name: gsp\n    uninstall_leftovers: \"app={{release}}\"\n",
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    install(n, "gsp");
    // GSP writes its state ConfigMaps at run time, outside its chart.
    let cms: Api<ConfigMap> = Api::namespaced(tkube::client().await, n);
    let state: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "gsp-state-1", "labels": {"app": "gsp"}},
        "data": {"checkpoint": "s3://bucket/gsp/1"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &state).await.unwrap();
    helm::ok(&["uninstall", "gsp", "-n", n]);

    let alert = wait::until(WAIT, "HelmReleaseUninstalled", || async {
        alertmanager_alert(n, "HelmReleaseUninstalled").await
    })
    .await;
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["check"], "uninstalled");
    assert_eq!(
        alert["annotations"]["recommended_action"],
        format!("kubectl delete cm --selector=app=gsp -n {n}")
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("1 ConfigMap(s) with app=gsp are left behind: gsp-state-1"),
        "{alert:#}"
    );
    let mail = wait::until(WAIT, "the uninstall email", || async {
        mails_to(&to)
            .into_iter()
            .find(|m| m.subject.ends_with("revision 1: uninstalled"))
    })
    .await;
    assert!(
        mail.text
            .contains(&format!("kubectl delete cm --selector=app=gsp -n {n}")),
        "{}",
        mail.text
    );
    // Nothing deleted; told once (a later notification pass sends nothing more: wait for
    // the next resend of the alert, then count).
    assert!(cms.get_opt("gsp-state-1").await.unwrap().is_some());
    let sent = d
        .metric(r#"upgrade_guard_notifications_total{channel="alertmanager",outcome="sent"}"#)
        .await
        .unwrap();
    wait::until(WAIT, "another alert resend", || async {
        (d.metric(r#"upgrade_guard_notifications_total{channel="alertmanager",outcome="sent"}"#)
            .await?
            > sent)
            .then_some(())
    })
    .await;
    let uninstall_mails = mails_to(&to)
        .into_iter()
        .filter(|m| m.subject.contains("uninstalled"))
        .count();
    assert_eq!(uninstall_mails, 1);
    d.stop().await;
}

async fn alertmanager_alert(n: &str, name: &str) -> Option<serde_json::Value> {
    support::alertmanager::alerts(&[("namespace", n), ("alertname", name)])
        .await
        .into_iter()
        .next()
}

/// Issue 11.3: after an upgrade that changes the chart and app version and ends its bake
/// healthy, a release with Data Export gets one reminder (info alert and email) with the
/// exact command, namespace and pod filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_change_reminds_once_to_update_the_export_views() {
    let ns = tkube::namespace("export").await;
    let n = ns.name.as_str();
    let to = format!("ops-{n}@test.invalid");
    let config = notify_config(
        n,
        &to,
        "  - name: gim\n    export_views:\n      enabled: true\n      \
         command: ./entrypoint.sh -job Job_MigrateGIM -make-export-views\n",
    );
    install(n, "gim");
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    // The same chart, packaged as a new version.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    helm::ok(&[
        "package",
        &helm::chart("demo-app"),
        "--version",
        "0.2.0",
        "--app-version",
        "2.0.0",
        "-d",
        &out,
    ]);
    let tgz = dir.path().join("demo-app-0.2.0.tgz").display().to_string();
    helm::ok(&[
        "upgrade",
        "gim",
        &tgz,
        "-n",
        n,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let alert = wait::until(WAIT, "UpgradeExportViews", || async {
        alertmanager_alert(n, "UpgradeExportViews").await
    })
    .await;
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["revision"], "2");
    let command = alert["annotations"]["recommended_action"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = format!("kubectl exec -n {n} gim-");
    assert!(
        command.starts_with(&prefix)
            && command.ends_with(" -- ./entrypoint.sh -job Job_MigrateGIM -make-export-views"),
        "{command}"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("(chart 0.1.0, app 1.0.0 → chart 0.2.0, app 2.0.0)"),
        "{alert:#}"
    );
    let mail = wait::until(WAIT, "the reminder email", || async {
        mails_to(&to)
            .into_iter()
            .find(|m| m.subject.ends_with("revision 2: update the export views"))
    })
    .await;
    assert!(mail.text.contains(&command), "{}", mail.text);
    d.stop().await;
}
