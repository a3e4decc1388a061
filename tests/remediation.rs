//! Automatic rollback (`mode: auto`) on the real stack: the daemon rolls a failed upgrade
//! back with the real helm, verifies the rollback's revision, alerts and mails; and it does
//! not act when it must not: killed mid-rollback and restarted, two replicas, Prometheus
//! down, a dependency down, a newer revision written meanwhile, a dry run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::time::Duration;

use support::cli::short_config;
use support::daemon::{Running, options};
use support::eval::upgrade;
use support::exporter::Exporter;
use support::prometheus::{Prometheus, Target, free_port};
use support::{alertmanager, helm, kube as tkube, stack::stack, wait};
use upgrade_guard::records::action::{ActionRecord, Phase};
use upgrade_guard::records::actions::RecordStore;
use upgrade_guard::release::ReleaseKey;

use support::auto::{
    WAIT, auto_config, baked_healthy, final_verdict, history, install, ready, records, rollbacks,
    view,
};

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// Issue 10.2, 10.3, 10.5, 10.8, 10.9: a failed upgrade is rolled back to the revision
/// that passed its bake, the rollback is verified, alerted (Alertmanager) and mailed; the
/// next failed upgrade goes back to the verified rollback, never to the revision that
/// rollback abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upgrade_is_rolled_back_verified_alerted_and_mailed() {
    let ns = tkube::namespace("auto").await;
    let n = ns.name.as_str();
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        &format!(
            "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n  \
             email:\n    smtp_host: 127.0.0.1\n    smtp_port: {}\n    security: none\n    \
             from: upgrade-guard@test.invalid\n    to: [ops-{n}@test.invalid]\n",
            stack().alertmanager_url,
            stack().smtp_port
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    final_verdict(&d, "app", 1, "healthy").await;

    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    let verified = wait::until(WAIT, "the rollback verified", || async {
        let v = view(&d, "app").await?;
        let r = &v["automation"]["record"];
        (r["phase"] == "verified").then(|| v.clone())
    })
    .await;
    assert_eq!(verified["revision"], 3, "{verified:#}");
    let record = &verified["automation"]["record"];
    assert_eq!(
        (
            &record["bad_revision"],
            &record["target"],
            &record["new_revision"]
        ),
        (&2.into(), &1.into(), &3.into()),
        "{record:#}"
    );
    assert_eq!(
        record["command"],
        format!("helm rollback app 1 -n {n} --wait --timeout 5m")
    );
    assert!(record["holder"].as_str().unwrap().starts_with("replica-a"));
    assert_eq!(
        rollbacks(n, "app").await,
        [(3, "Rollback to 1".to_string())]
    );
    let stored = records(n, "app").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].phase, Phase::Verified);
    assert_eq!(
        d.metric(r#"upgrade_guard_rollbacks_total{outcome="verified"}"#)
            .await,
        Some(1.0)
    );
    // How long it took (intent to verification), how long rounds take, how long upgrades
    // take to their final verdict: histograms with real observations.
    assert_eq!(
        d.metric(r#"upgrade_guard_rollback_duration_seconds_count{outcome="verified"}"#)
            .await,
        Some(1.0)
    );
    assert!(
        d.metric(r#"upgrade_guard_rollback_duration_seconds_sum{outcome="verified"}"#)
            .await
            .is_some_and(|s| s > 0.0)
    );
    assert_eq!(
        d.metric(r#"upgrade_guard_rollback_duration_seconds_count{outcome="helm_failed"}"#)
            .await,
        Some(0.0)
    );
    assert!(
        d.metric("upgrade_guard_evaluation_round_duration_seconds_count")
            .await
            .is_some_and(|n| n > 0.0)
    );
    assert!(
        d.metric(
            r#"upgrade_guard_upgrade_final_verdict_duration_seconds_count{verdict="healthy"}"#
        )
        .await
        .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(d.metric("upgrade_guard_leader").await, Some(1.0));

    // Alertmanager: the rollback is announced, the failure of revision 2 is resolved.
    let alert = wait::until(WAIT, "UpgradeRolledBack in Alertmanager", || async {
        alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeRolledBack")])
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(alert["labels"]["revision"], "3");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("automatic rollback of revision 2 to revision 1: verified"),
        "{alert:#}"
    );
    wait::until(WAIT, "UpgradeFailed of revision 2 resolved", || async {
        alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeFailed")])
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    // Email: the failure says what upgrade-guard does about it, then the verified rollback.
    let to = format!("ops-{n}@test.invalid");
    let mails = wait::until(WAIT, "both emails", || async {
        let mine: Vec<_> = support::mail::messages()
            .into_iter()
            .filter(|m| m.to.contains(&to))
            .collect();
        let failed = mine
            .iter()
            .find(|m| m.subject.ends_with("revision 2: failed"))?
            .clone();
        let verified = mine
            .iter()
            .find(|m| {
                m.subject
                    .ends_with("revision 3: rolled back automatically, rollback verified")
            })?
            .clone();
        Some((failed, verified))
    })
    .await;
    assert!(
        mails.0.text.contains("Automatic action: "),
        "{}",
        mails.0.text
    );
    assert!(
        mails
            .1
            .text
            .contains(&format!("helm rollback app 1 -n {n} --wait --timeout 5m")),
        "{}",
        mails.1.text
    );

    // The next failure goes back to 3 (verified), never to 2 (abandoned by the rollback).
    upgrade(n, "app", "1.2.0", &["unschedulable=true"]);
    wait::until(WAIT, "the second rollback verified", || async {
        let v = view(&d, "app").await?;
        (v["revision"] == 5 && v["automation"]["record"]["phase"] == "verified").then_some(())
    })
    .await;
    assert_eq!(
        rollbacks(n, "app").await,
        [
            (3, "Rollback to 1".to_string()),
            (5, "Rollback to 3".to_string())
        ]
    );
    d.stop().await;
}

/// Issue 10.3, 10.8: the daemon killed (SIGKILL) while helm rolls back, then started
/// again: the intent it recorded keeps the new process from running a second rollback; the
/// rollback helm finished is verified by the new process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_rollback_and_restarted_it_never_rolls_back_twice() {
    let ns = tkube::namespace("auto-kill").await;
    let n = ns.name.as_str();
    // GIM starts slowly: the rollback's `--wait` takes ~10 s, the window for the kill.
    let slow = [
        "fault=SlowReady",
        "slowReady.startAfter=1s",
        "slowReady.readyAfter=10s",
    ];
    install(n, "gim", "gim", &slow);
    let config = support::cli::config_file(&auto_config(NO_PROMETHEUS, n, "", ""));
    let path = config.arg();
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let port = free_port();
    let mut first = support::cli::spawn(
        &["run", "--config", &path, "--listen", &listen(port)],
        &[("POD_NAME", "first")],
        None,
    );
    first.wait_for_stderr("leading", WAIT);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait::until(WAIT, "/readyz", || async {
        let r = client.get(format!("{url}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    // Revision 1 passes its bake (a target); revision 2 crashes; the rollback to 1 starts
    // and waits for the slow pod.
    baked_healthy(n, "gim", 1).await;
    let chart = helm::chart("gim");
    helm::ok(&[
        "upgrade",
        "gim",
        &chart,
        "-n",
        n,
        "--set",
        "image.tag=100.0.117",
        "--set",
        "fault=CrashLoopBackOff",
    ]);
    support::auto::rolling_back(n, "gim", 3).await;
    let killed = first.kill();
    let intent = records(n, "gim").await;
    assert_eq!(intent.len(), 1, "{intent:?}\n{}", killed.stderr);
    assert_eq!(intent[0].phase, Phase::Running);
    assert!(intent[0].holder.starts_with("first"), "{intent:?}");

    let port = free_port();
    let mut second = support::cli::spawn(
        &["run", "--config", &path, "--listen", &listen(port)],
        &[("POD_NAME", "second")],
        None,
    );
    second.wait_for_stderr("leading", WAIT);
    let done = wait::until(WAIT, "the interrupted rollback verified", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Verified).then(|| r[0].clone())
    })
    .await;
    assert_eq!(done.new_revision, Some(3), "{done:?}");
    assert!(done.holder.starts_with("first"), "{done:?}");
    assert_eq!(
        rollbacks(n, "gim").await,
        [(3, "Rollback to 1".to_string())],
        "exactly one rollback"
    );
    assert_eq!(history(n, "gim").await.len(), 3);
    second.signal("TERM");
    let run = second.finish();
    assert!(
        !run.stderr.contains("intent recorded, starting"),
        "the second process started an action:\n{}",
        run.stderr
    );
}

/// Issue 10.4, 10.8: two replicas on the same Lease: one leads, exactly one rollback is
/// run, and the other one holds with `not_leader`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_exactly_one_rollback() {
    let ns = tkube::namespace("auto-ha").await;
    let n = ns.name.as_str();
    let config = auto_config(NO_PROMETHEUS, n, "", "");
    let a = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    let b = Running::start_with(&stack().kubeconfig, &config, options("replica-b")).await;
    ready(&a).await;
    ready(&b).await;
    install(n, "app", "demo-app", &[]);
    baked_healthy(n, "app", 1).await;
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    wait::until(WAIT, "the rollback done", || async {
        let r = records(n, "app").await;
        r.iter()
            .any(|r| matches!(r.phase, Phase::Done | Phase::Verified))
            .then_some(())
    })
    .await;
    let leaders = (
        a.metric("upgrade_guard_leader").await,
        b.metric("upgrade_guard_leader").await,
    );
    assert!(
        leaders == (Some(1.0), Some(0.0)) || leaders == (Some(0.0), Some(1.0)),
        "{leaders:?}"
    );
    let (leader, follower, name) = if leaders.0 == Some(1.0) {
        (&a, &b, "replica-a")
    } else {
        (&b, &a, "replica-b")
    };
    let stored = records(n, "app").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].holder.starts_with(name), "{stored:?}");
    assert_eq!(
        rollbacks(n, "app").await,
        [(3, "Rollback to 1".to_string())]
    );
    // The follower judged the failure too, and held because it does not lead.
    assert!(
        follower
            .metric(r#"upgrade_guard_action_holds_total{reason="not_leader"}"#)
            .await
            .unwrap()
            >= 1.0
    );
    wait::until(WAIT, "the leader verifies", || async {
        (leader
            .metric(r#"upgrade_guard_rollbacks_total{outcome="verified"}"#)
            .await
            == Some(1.0))
        .then_some(())
    })
    .await;
    assert_eq!(
        follower
            .metric(r#"upgrade_guard_rollbacks_total{outcome="verified"}"#)
            .await,
        Some(0.0),
        "only the leader records outcomes"
    );
    assert_eq!(rollbacks(n, "app").await.len(), 1);
    a.stop().await;
    b.stop().await;
}

/// Waits for the final failed verdict of revision 2 of `release` held with `reason`;
/// then nothing was, or will be, rolled back (the evaluation ended).
async fn held_to_the_end(d: &Running, n: &str, release: &str, reason: &str) -> serde_json::Value {
    final_verdict(d, release, 2, "failed").await;
    let v = view(d, release).await.unwrap();
    assert_eq!(v["automation"]["plan"]["reason"], reason, "{v:#}");
    assert_eq!(
        d.metric(&format!(
            r#"upgrade_guard_action_hold{{namespace="{n}",release="{release}",reason="{reason}"}}"#
        ))
        .await,
        Some(1.0)
    );
    assert!(rollbacks(n, release).await.is_empty());
    assert!(records(n, release).await.is_empty());
    v
}

/// Issue 10.2, 10.8: Prometheus down: the pods fail (a Kubernetes fact) but the metric
/// checks cannot be judged, so nothing is rolled back and the hold says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_means_no_rollback() {
    let ns = tkube::namespace("auto-noprom").await;
    let n = ns.name.as_str();
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        "releases:\n  - name: app\n    metrics_presence:\n      - name: app_up\n        query: 'up{job=\"app\"}'\n",
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    let v = held_to_the_end(&d, n, "app", "evidence_incomplete").await;
    let detail = v["automation"]["plan"]["detail"].as_str().unwrap();
    assert!(detail.contains("metrics_presence:app_up"), "{detail}");
    d.stop().await;
}

/// Issue 10.2, 10.8: a dependency down: no rollback (it would not work), the dependency
/// named in the hold and in the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_down_means_no_rollback_and_names_it() {
    let ns = tkube::namespace("auto-dep").await;
    let n = ns.name.as_str();
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
    let config = auto_config(
        &prometheus.url,
        n,
        "",
        &format!(
            "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n\
             releases:\n  - name: app\n    dependencies:\n      - name: kafka\n        \
             query: 'kafka_brokers{{job=\"kafka-exporter\"}}'\n        min: 1\n        for: 1s\n",
            stack().alertmanager_url
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    let v = held_to_the_end(&d, n, "app", "dependency_down").await;
    let detail = v["automation"]["plan"]["detail"].as_str().unwrap();
    assert!(detail.contains("kafka"), "{detail}");
    let alert = alertmanager::fired(WAIT, n, "UpgradeAutoActionHeld").await;
    assert_eq!(alert["annotations"]["hold_reason"], "dependency_down");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("kafka"),
        "{alert:#}"
    );
    d.stop().await;
}

/// Issue 10.9: `--dry-run` reports exactly what would run and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_command_and_runs_nothing() {
    let ns = tkube::namespace("auto-dry").await;
    let n = ns.name.as_str();
    let config = auto_config(NO_PROMETHEUS, n, "", "");
    let mut opts = options("replica-a");
    opts.dry_run = true;
    let d = Running::start_with(&stack().kubeconfig, &config, opts).await;
    ready(&d).await;
    // On a loaded machine the Lease can take a while: a decision before it is a hold
    // (not_leader), as it should be; this test is about the leader's dry run.
    support::auto::leads(&d, "replica-a").await;
    install(n, "app", "demo-app", &[]);
    final_verdict(&d, "app", 1, "healthy").await;
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    final_verdict(&d, "app", 2, "failed").await;
    // The decision follows the verdict once the history and the records were read.
    let v = wait::until(WAIT, "the dry run's plan shown", || async {
        view(&d, "app").await.filter(|v| {
            !v["automation"]["plan"].is_null() && v["automation"]["plan"]["reason"] != "not_leader"
        })
    })
    .await;
    assert_eq!(v["automation"]["dry_run"], true);
    assert_eq!(v["automation"]["plan"]["decision"], "rollback", "{v:#}");
    assert_eq!(
        v["automation"]["plan"]["command"],
        format!("helm rollback app 1 -n {n} --wait --timeout 5m")
    );
    assert_eq!(
        d.metric(r#"upgrade_guard_rollbacks_total{outcome="dry_run"}"#)
            .await,
        Some(1.0)
    );
    assert!(rollbacks(n, "app").await.is_empty());
    assert!(records(n, "app").await.is_empty());
    d.stop().await;
}

/// Issue 10.2, 10.8: a newer revision written by someone else while the rollback is being
/// decided: the decision re-reads the history and holds; nothing is recorded or run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_revision_written_meanwhile_means_no_rollback() {
    use upgrade_guard::release::labels::Storage;
    use upgrade_guard::remediation::leader::Leadership;

    let ns = tkube::namespace("auto-race").await;
    let n = ns.name.as_str();
    let leading = Leadership::manual("replica-a");
    leading.set_leading(true);
    let (mut remediator, _finished, policy) = in_process_remediator(n, leading).await;
    let key = ReleaseKey::new(n, "app");
    // Revision 2 was judged failed; before the decision reads the history, someone
    // upgrades again.
    let report = failed_report(n);
    upgrade(n, "app", "1.2.0", &[]);
    remediator.decide(&report, &policy, Storage::Secret).await;
    let automation = remediator.automation(&key, 2);
    let plan = serde_json::to_value(&automation.plan).unwrap();
    assert_eq!(plan["decision"], "hold", "{plan:#}");
    assert_eq!(plan["reason"], "not_latest", "{plan:#}");
    assert!(
        plan["detail"]
            .as_str()
            .unwrap()
            .contains("revision 3 (deployed) was written since"),
        "{plan:#}"
    );
    assert_eq!(remediator.running(), 0);
    assert!(records(n, "app").await.is_empty());
    assert!(rollbacks(n, "app").await.is_empty());
}

/// The pods of the Deployment `name` (by the chart's instance label, without the Job's).
async fn deployment_pods(n: &str, name: &str) -> Vec<String> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: kube::Api<Pod> = kube::Api::namespaced(tkube::client().await, n);
    let mut names: Vec<String> = pods
        .list(
            &kube::api::ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ReplicaSet")
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

/// Issue 10.6: after a failed migration (a plain Job), `auto.restart_migration_pod`
/// deletes the release's pod once (never the Job's), records it, and holds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_restarts_the_pod_once_when_allowed() {
    let ns = tkube::namespace("auto-migrate").await;
    let n = ns.name.as_str();
    install(n, "app", "demo-app", &[]);
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        // A bake long enough for the decision after the restart to be seen (the evaluation
        // ends with the bake, and with it the decisions).
        "releases:\n  - name: app\n    bake_window: 60s\n    auto:\n      restart_migration_pod: true\n    \
         migration:\n      job_name_pattern: migrat\n",
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    upgrade(
        n,
        "app",
        "1.1.0",
        &[
            "migration.enabled=true",
            "migration.hook=false",
            "migration.fail=true",
        ],
    );
    let record = wait::until(WAIT, "the restart recorded", || async {
        let r = records(n, "app").await;
        r.into_iter().find(|r| r.phase == Phase::Done)
    })
    .await;
    assert_eq!(
        serde_json::to_value(record.action).unwrap(),
        "restart_pod",
        "{record:?}"
    );
    let detail = record.detail.clone().unwrap();
    let deleted = detail
        .strip_prefix("deleted 1 pod(s) of deployment/app: ")
        .unwrap_or_else(|| panic!("one pod of the Deployment deleted: {detail}"))
        .to_string();
    assert!(deleted.starts_with("app-"), "{detail}");
    // The Deployment replaces it; the failed migration Job's pod is still there.
    wait::until(WAIT, "a new pod", || async {
        let pods = deployment_pods(n, "app").await;
        (pods.len() == 1 && !pods.contains(&deleted)).then_some(())
    })
    .await;
    {
        use k8s_openapi::api::core::v1::Pod;
        let pods: kube::Api<Pod> = kube::Api::namespaced(tkube::client().await, n);
        let job_pods = pods
            .list(&kube::api::ListParams::default().labels("job=migrate"))
            .await
            .unwrap()
            .items;
        let seen: Vec<_> = job_pods
            .iter()
            .map(|p| (&p.metadata.name, &p.metadata.deletion_timestamp))
            .collect();
        assert!(
            job_pods
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_none())
                && !job_pods.is_empty(),
            "the migration Job's pod (matched by the Deployment's selector) was left alone: \
             {seen:?}; {detail}"
        );
    }
    // Once: the migration still failed, so the next decision holds.
    wait::until_seen(WAIT, "held: already attempted", || async {
        let v = view(&d, "app").await.unwrap_or_default();
        let automation = &v["automation"];
        (automation["plan"]["reason"] == "already_attempted")
            .then_some(())
            .ok_or_else(|| format!("{automation:#}"))
    })
    .await;
    let all = records(n, "app").await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(
        d.metric(r#"upgrade_guard_migration_restarts_total{outcome="done"}"#)
            .await,
        Some(1.0)
    );
    let rolled = rollbacks(n, "app").await;
    assert!(rolled.is_empty(), "{rolled:?}");
    d.stop().await;
}

/// Issue 10.1: `observe` exports metrics only (no alert, no email, no action); `recommend`
/// alerts with the command and does nothing; `auto` acts (the tests above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_exports_metrics_only_and_recommend_only_alerts() {
    let ns = tkube::namespace("modes").await;
    let n = ns.name.as_str();
    let to = format!("ops-{n}@test.invalid");
    let config = short_config(
        NO_PROMETHEUS,
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n  \
             email:\n    smtp_host: 127.0.0.1\n    smtp_port: {}\n    security: none\n    \
             from: upgrade-guard@test.invalid\n    to: [{to}]\n\
             releases:\n  - name: quiet\n    mode: observe\n  - name: loud\n    mode: recommend\n",
            stack().alertmanager_url,
            stack().smtp_port
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(n, "quiet", "demo-app", &[]);
    install(n, "loud", "demo-app", &[]);
    // The observed release fails first ...
    upgrade(n, "quiet", "1.1.0", &["unschedulable=true"]);
    wait::until(WAIT, "quiet failed, in the metrics", || async {
        let failed = d
            .metric(&format!(
                r#"upgrade_guard_release_verdict{{namespace="{n}",release="quiet",verdict="failed"}}"#
            ))
            .await;
        (failed == Some(1.0)).then_some(())
    })
    .await;
    // ... then the recommended one: once its alert and mail arrived, the notifications
    // have been computed with both failures in the state.
    upgrade(n, "loud", "1.1.0", &["unschedulable=true"]);
    let alert = wait::until(WAIT, "loud's alert", || async {
        alertmanager::alerts(&[("namespace", n), ("release", "loud")])
            .await
            .into_iter()
            .next()
    })
    .await;
    assert!(
        alert["annotations"]["recommended_action"]
            .as_str()
            .unwrap()
            .contains(&format!("helm rollback loud 1 -n {n}")),
        "{alert:#}"
    );
    wait::until(WAIT, "loud's email", || async {
        support::mail::messages()
            .into_iter()
            .find(|m| m.to.contains(&to) && m.subject.contains(&format!("{n}/loud")))
    })
    .await;
    assert!(
        alertmanager::alerts(&[("namespace", n), ("release", "quiet")])
            .await
            .is_empty()
    );
    assert!(
        !support::mail::messages()
            .iter()
            .any(|m| m.to.contains(&to) && m.subject.contains(&format!("{n}/quiet")))
    );
    // Neither acted, and no automatic decision is shown for them.
    for release in ["quiet", "loud"] {
        let v = view(&d, release).await.unwrap();
        assert!(v.get("automation").is_none(), "{v:#}");
        assert!(rollbacks(n, release).await.is_empty());
    }
    d.stop().await;
}

/// Issue 10.3: the action records are written with optimistic concurrency: a write based
/// on records someone changed since they were read is refused, whoever wrote first.
#[tokio::test]
async fn a_record_written_from_stale_records_is_refused() {
    use upgrade_guard::records::actions::RecordError;
    let ns = tkube::namespace("records").await;
    let n = ns.name.as_str();
    let store = RecordStore::new(tkube::client().await, n);
    let key = ReleaseKey::new(n, "app");
    let record = |bad: u32, holder: &str| support::auto::running_rollback(n, bad, holder);
    // Both deciders read no records; the first intent wins (create), the second is refused.
    let empty = store.load(&key).await.unwrap();
    store
        .write_if_unchanged(&key, &empty, &record(2, "a"))
        .await
        .unwrap();
    let refused = store
        .write_if_unchanged(&key, &empty, &record(2, "b"))
        .await;
    assert!(
        matches!(refused, Err(RecordError::Conflict(_))),
        "{refused:?}"
    );
    // Likewise once the ConfigMap exists (replace with a stale resourceVersion).
    let read = store.load(&key).await.unwrap();
    store
        .write_if_unchanged(&key, &read, &record(4, "a"))
        .await
        .unwrap();
    let refused = store.write_if_unchanged(&key, &read, &record(4, "b")).await;
    assert!(
        matches!(refused, Err(RecordError::Conflict(_))),
        "{refused:?}"
    );
    // An outcome update re-reads and keeps the other records.
    let mut done = record(2, "a");
    done.phase = Phase::Done;
    store.update(&key, &done).await.unwrap();
    let all = store.load(&key).await.unwrap().records;
    let mut holders: Vec<(u32, &str, Phase)> = all
        .iter()
        .map(|r| (r.bad_revision, r.holder.as_str(), r.phase))
        .collect();
    holders.sort_by_key(|h| h.0);
    assert_eq!(
        holders,
        [(2, "a", Phase::Done), (4, "a", Phase::Running)],
        "{all:?}"
    );
}

/// Issue 10.3: an intent recorded by a process that died before helm ran (nothing in the
/// history shows it) is resolved as interrupted once its deadline passed, alerted, and the
/// failed revision is never acted on again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_left_by_a_dead_process_is_never_run_again() {
    let ns = tkube::namespace("auto-ghost").await;
    let n = ns.name.as_str();
    install(n, "app", "demo-app", &[]);
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    let key = ReleaseKey::new(n, "app");
    let store = RecordStore::new(tkube::client().await, n);
    let empty = store.load(&key).await.unwrap();
    let ghost = ActionRecord {
        // Its deadline (5 m rollback timeout + 2 m) passed long ago.
        started: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1),
        ..support::auto::running_rollback(n, 2, "ghost-1")
    };
    store
        .write_if_unchanged(&key, &empty, &ghost)
        .await
        .unwrap();
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        &format!(
            "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n",
            stack().alertmanager_url
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    let resolved = wait::until(WAIT, "the ghost's intent resolved", || async {
        records(n, "app")
            .await
            .into_iter()
            .find(|r| r.phase == Phase::Interrupted)
    })
    .await;
    assert!(
        resolved
            .detail
            .as_deref()
            .unwrap()
            .contains("nothing in the history shows it ran; it is not run again"),
        "{resolved:?}"
    );
    wait::until(WAIT, "revision 2 held: already attempted", || async {
        let v = view(&d, "app").await?;
        (v["revision"] == 2 && v["automation"]["plan"]["reason"] == "already_attempted")
            .then_some(())
    })
    .await;
    let alert = alertmanager::fired(WAIT, n, "UpgradeRollbackFailed").await;
    assert_eq!(alert["labels"]["revision"], "2");
    assert_eq!(
        d.metric(r#"upgrade_guard_rollbacks_total{outcome="interrupted"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(records(n, "app").await.len(), 1);
    assert!(rollbacks(n, "app").await.is_empty());
    d.stop().await;
}

/// Issue 10.4: a leader cut off from the API server stops leading (it cannot renew) before
/// the other replica may take the Lease; the other one then leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_stops_leading_before_another_takes_over() {
    use support::proxy::Proxy;
    let ns = tkube::namespace("auto-lease").await;
    let n = ns.name.as_str();
    let proxy = Proxy::start(&tkube::api_address());
    let through_proxy = tkube::kubeconfig_with_server(&format!("https://{}", proxy.address));
    let config = auto_config(NO_PROMETHEUS, n, "", "");
    let a = Running::start_with(through_proxy.path(), &config, options("replica-a")).await;
    support::auto::leads(&a, "a").await;
    let b = Running::start_with(&stack().kubeconfig, &config, options("replica-b")).await;
    ready(&b).await;
    assert_eq!(b.metric("upgrade_guard_leader").await, Some(0.0));
    proxy.cut();
    support::auto::leads(&b, "b").await;
    assert_eq!(
        a.metric("upgrade_guard_leader").await,
        Some(0.0),
        "a still says it leads while b does"
    );
    proxy.restore();
    a.stop().await;
    b.stop().await;
}

/// A failed judgement of revision 2 of `app` whose remedy is a rollback to 1.
/// A remediator in this process for release `app` of `n`, installed and upgraded to a
/// revision that fails (unschedulable), in `mode: auto`, with `leadership`: the
/// remediator, its channel of finished actions and the release's policy.
async fn in_process_remediator(
    n: &str,
    leadership: upgrade_guard::remediation::leader::Leadership,
) -> (
    upgrade_guard::remediation::Remediator,
    tokio::sync::mpsc::UnboundedReceiver<upgrade_guard::remediation::Finished>,
    upgrade_guard::config::ReleasePolicy,
) {
    use upgrade_guard::remediation::helm::HelmRunner;
    install(n, "app", "demo-app", &[]);
    support::auto::record_healthy(n, "app", 1).await;
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    let config =
        upgrade_guard::config::Config::parse(&auto_config(NO_PROMETHEUS, n, "", ""), "t").unwrap();
    let policy = config.policy_for(&ReleaseKey::new(n, "app"));
    let (remediator, finished) = upgrade_guard::remediation::Remediator::new(
        tkube::client().await,
        n,
        HelmRunner {
            program: stack().helm_bin.display().to_string(),
            global_args: vec![
                "--kubeconfig".into(),
                stack().kubeconfig.display().to_string(),
            ],
        },
        config.actions.clone(),
        leadership,
        upgrade_guard::remediation::metrics::ActionMetrics::default(),
    );
    (remediator, finished, policy)
}

fn failed_report(n: &str) -> upgrade_guard::verdict::Report {
    use upgrade_guard::checks::{CheckResult, FailClass, Outcome};
    use upgrade_guard::release::ReleaseStatus;
    use upgrade_guard::release::rollback_target::TargetBasis;
    use upgrade_guard::verdict::{RecommendedAction, Verdict};
    let now = jiff::Timestamp::now();
    upgrade_guard::verdict::Report {
        release: ReleaseKey::new(n, "app"),
        revision: 2,
        status: ReleaseStatus::Deployed,
        status_since: jiff::Timestamp::from_second(0).unwrap(),
        chart: "demo-app-0.1.0".into(),
        verdict: Verdict::Failed,
        action: RecommendedAction::Rollback {
            target: 1,
            basis: TargetBasis::NewestThatRan,
            command: format!("helm rollback app 1 -n {n} --timeout 5m"),
        },
        results: vec![
            CheckResult::new("pending_pods", Outcome::Fail, "unschedulable")
                .on_fail(FailClass::Rollback),
        ],
        notes: vec![],
        started: now,
        bake_ends: now,
        closes_at: now,
        evaluated_at: now,
        content: String::new(),
        install: None,
    }
}

/// Issue 10.4: a replica that was holding because it did not lead acts as soon as it
/// leads (its hold was the precheck's, not a decision from the cluster's state), and only
/// then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_becomes_leader_acts_at_once() {
    use upgrade_guard::release::labels::Storage;
    use upgrade_guard::remediation::leader::Leadership;

    let ns = tkube::namespace("auto-promoted").await;
    let n = ns.name.as_str();
    let leadership = Leadership::manual("replica-b");
    let (mut remediator, mut finished, policy) = in_process_remediator(n, leadership.clone()).await;
    let key = ReleaseKey::new(n, "app");
    let report = failed_report(n);
    remediator.decide(&report, &policy, Storage::Secret).await;
    let plan = serde_json::to_value(remediator.automation(&key, 2).plan).unwrap();
    assert_eq!(plan["reason"], "not_leader", "{plan:#}");
    assert!(records(n, "app").await.is_empty());

    leadership.set_leading(true);
    remediator.decide(&report, &policy, Storage::Secret).await;
    assert_eq!(
        remediator.running(),
        1,
        "the new leader started the rollback"
    );
    let done = tokio::time::timeout(WAIT, finished.recv())
        .await
        .unwrap()
        .unwrap();
    remediator.finished(&done).await;
    assert_eq!(done.1.phase, Phase::Done, "{:?}", done.1);
    assert_eq!(
        rollbacks(n, "app").await,
        [(3, "Rollback to 1".to_string())]
    );
}

/// Issue 19.16: the bake ends with a failed verdict while another party holds the Lease:
/// the action is held (`not_leader`). Today's code ended the evaluation with that hold and
/// the rollback was lost for good; the failure is judged, and its action decided, again
/// after the bake, so the replica acts once it leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_for_a_passing_reason_at_the_end_of_the_bake_is_retried() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let ns = tkube::namespace("auto-retry-hold").await;
    let n = ns.name.clone();
    let leases: Api<Lease> = Api::namespaced(tkube::client().await, &n);
    let now = || k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let mut lease = Lease::default();
    lease.metadata.name = Some("upgrade-guard".into());
    lease.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some("someone-else".into()),
        lease_duration_seconds: Some(3),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        ..Default::default()
    });
    leases.create(&PostParams::default(), &lease).await.unwrap();
    // Another replica keeps renewing, until it stops.
    let renewing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let renewer = {
        let (leases, renewing) = (leases.clone(), renewing.clone());
        tokio::spawn(async move {
            while renewing.load(std::sync::atomic::Ordering::SeqCst) {
                let patch = serde_json::json!({"spec": {"renewTime": now()}});
                let _ = leases
                    .patch(
                        "upgrade-guard",
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let config = auto_config(NO_PROMETHEUS, &n, "", "");
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(&n, "app", "demo-app", &[]);
    final_verdict(&d, "app", 1, "healthy").await;
    upgrade(&n, "app", "1.1.0", &["fault=ImagePullBackOff"]);
    final_verdict(&d, "app", 2, "failed").await;
    let v = view(&d, "app").await.unwrap();
    assert_eq!(v["automation"]["plan"]["reason"], "not_leader", "{v:#}");
    assert!(rollbacks(&n, "app").await.is_empty());

    renewing.store(false, std::sync::atomic::Ordering::SeqCst);
    renewer.await.unwrap();
    wait::until(WAIT, "the rollback once it leads", || async {
        let done = rollbacks(&n, "app").await;
        (!done.is_empty()).then_some(done)
    })
    .await;
    d.stop().await;
}

/// Issue 19.4: `helm upgrade --wait` gives up and marks the revision failed; helm itself
/// (`--atomic`) or a controller may roll it back right after. upgrade-guard holds
/// (`settling`) for `actions.settle_after_failed` before acting, never racing it, then rolls
/// back (nobody else did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_helm_just_marked_failed_settles_before_the_rollback() {
    let ns = tkube::namespace("auto-settle").await;
    let n = ns.name.clone();
    let config = auto_config(NO_PROMETHEUS, &n, "", "")
        .replace("actions:\n", "actions:\n  settle_after_failed: 10s\n");
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(&n, "app", "demo-app", &[]);
    // Revision 1 passes its bake first: the rollback has a target known to be good, however
    // slowly this machine runs.
    final_verdict(&d, "app", 1, "healthy").await;
    let chart = helm::chart("demo-app");
    helm::shared().fails(&[
        "upgrade",
        "app",
        &chart,
        "-n",
        &n,
        "--set",
        "image.tag=1.1.0",
        "--set",
        "fault=ImagePullBackOff",
        "--wait",
        "--timeout",
        "3s",
    ]);
    let deadline = std::time::Instant::now() + WAIT;
    while rollbacks(&n, "app").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no rollback within {WAIT:?}; the daemon's view: {:#}",
            view(&d, "app").await.unwrap_or_default()
        );
        tokio::time::sleep(wait::POLL_INTERVAL).await;
    }
    let settled = d
        .metric(r#"upgrade_guard_action_holds_total{reason="settling"}"#)
        .await;
    assert!(settled.is_some_and(|n| n >= 1.0), "{settled:?}");
    d.stop().await;
}
