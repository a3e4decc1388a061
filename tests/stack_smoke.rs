//! Smoke tests proving each component of the local stack is real: helm writes release
//! Secrets into a real API server, the controllers and kwok turn a Deployment into Ready
//! pods (and the fault variants into broken ones), Prometheus answers PromQL over backfilled
//! history, Alertmanager mails an alert through the SMTP server, and PostgreSQL takes only
//! TLS connections verified against the test CA, with a password.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use support::{alertmanager, helm, kube as tkube, mail, prometheus::Prometheus, wait};

const WAIT: Duration = Duration::from_secs(60);

fn labels(secret: &Secret) -> BTreeMap<String, String> {
    secret.metadata.labels.clone().unwrap_or_default()
}

#[tokio::test]
async fn helm_install_and_upgrade_write_release_secrets() {
    let ns = tkube::namespace("smoke-helm").await;
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "web", chart, "-n", &ns.name]);

    let secrets: Api<Secret> = Api::namespaced(tkube::client().await, &ns.name);
    let v1 = secrets.get("sh.helm.release.v1.web.v1").await.unwrap();
    assert_eq!(v1.type_.as_deref(), Some("helm.sh/release.v1"));
    let l = labels(&v1);
    assert_eq!(l.get("owner").map(String::as_str), Some("helm"));
    assert_eq!(l.get("name").map(String::as_str), Some("web"));
    assert_eq!(l.get("status").map(String::as_str), Some("deployed"));
    assert_eq!(l.get("version").map(String::as_str), Some("1"));
    assert!(
        v1.data.as_ref().is_some_and(|d| d.contains_key("release")),
        "release payload missing"
    );

    helm::ok(&[
        "upgrade",
        "web",
        chart,
        "-n",
        &ns.name,
        "--set",
        "image.tag=1.1.0",
    ]);
    let v2 = secrets.get("sh.helm.release.v1.web.v2").await.unwrap();
    assert_eq!(
        labels(&v2).get("status").map(String::as_str),
        Some("deployed")
    );
    assert_eq!(labels(&v2).get("version").map(String::as_str), Some("2"));
    let v1 = secrets.get("sh.helm.release.v1.web.v1").await.unwrap();
    assert_eq!(
        labels(&v1).get("status").map(String::as_str),
        Some("superseded")
    );

    let listed = secrets
        .list(&ListParams::default().labels("owner=helm,name=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
}

/// The waiting reason of the first container of the first pod matching `selector`, once
/// kwok has written a container status.
async fn pod_state(
    pods: &Api<Pod>,
    selector: &str,
) -> Option<(bool, Option<String>, Option<String>)> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?;
    let pod = list.items.into_iter().next()?;
    let status = pod.status?;
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let waiting = status
        .container_statuses
        .unwrap_or_default()
        .first()
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    Some((ready, waiting, status.phase))
}

#[tokio::test]
async fn deployment_pods_become_ready_and_fault_variants_do_not() {
    let ns = tkube::namespace("smoke-pods").await;
    let chart = &helm::chart("demo-app");
    // --wait only returns once the Deployment is available: controllers, scheduler and
    // kwok all took part.
    helm::ok(&[
        "install",
        "good",
        chart,
        "-n",
        &ns.name,
        "--wait",
        "--timeout",
        "90s",
    ]);
    helm::ok(&[
        "install",
        "pull",
        chart,
        "-n",
        &ns.name,
        "--set",
        "fault=ImagePullBackOff",
    ]);
    helm::ok(&[
        "install",
        "crash",
        chart,
        "-n",
        &ns.name,
        "--set",
        "fault=CrashLoopBackOff",
    ]);
    helm::ok(&[
        "install",
        "stuck",
        chart,
        "-n",
        &ns.name,
        "--set",
        "unschedulable=true",
    ]);

    let client = tkube::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let good = deployments.get("good").await.unwrap();
    assert_eq!(good.status.and_then(|s| s.ready_replicas), Some(1));

    let pods: Api<Pod> = Api::namespaced(client, &ns.name);
    let sel = |r: &str| format!("app.kubernetes.io/instance={r}");
    let (ready, _, phase) = pod_state(&pods, &sel("good")).await.unwrap();
    assert!(ready);
    assert_eq!(phase.as_deref(), Some("Running"));

    let (ready, waiting, phase) = wait::until(WAIT, "the ImagePullBackOff pod", || async {
        pod_state(&pods, &sel("pull"))
            .await
            .filter(|s| s.1.is_some())
    })
    .await;
    assert!(!ready);
    assert_eq!(waiting.as_deref(), Some("ImagePullBackOff"));
    assert_eq!(phase.as_deref(), Some("Pending"));

    let (ready, waiting, phase) = wait::until(WAIT, "the CrashLoopBackOff pod", || async {
        pod_state(&pods, &sel("crash"))
            .await
            .filter(|s| s.1.is_some())
    })
    .await;
    assert!(!ready);
    assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(phase.as_deref(), Some("Running"));

    let reason = wait::until(WAIT, "the unschedulable pod", || async {
        let list = pods
            .list(&ListParams::default().labels(&sel("stuck")))
            .await
            .ok()?;
        let status = list.items.into_iter().next()?.status?;
        status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
            .reason
    })
    .await;
    assert_eq!(reason, "Unschedulable");
}

#[tokio::test]
async fn backfilled_series_answers_deriv() {
    // A counter-like level that grows 5 per minute for an hour, one sample per 15 s.
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 120;
    let start = end - 3600;
    let mut om = String::from("# TYPE smoke_backlog gauge\n");
    for t in (start..=end).step_by(15) {
        let value = (t - start) as f64 * 5.0 / 60.0;
        om.push_str(&format!("smoke_backlog{{service=\"gim\"}} {value} {t}\n"));
    }
    om.push_str("# EOF\n");
    let prom = Prometheus::with_backfill(&om).await;

    let data = prom
        .query("deriv(smoke_backlog[15m])", Some(end as f64))
        .await;
    let result = data["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "one series expected: {data}");
    assert_eq!(result[0]["metric"]["service"], "gim");
    let slope: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        (slope - 5.0 / 60.0).abs() < 1e-3,
        "deriv was {slope}, expected ~0.0833"
    );
}

#[tokio::test]
async fn alertmanager_keeps_the_alert_and_mails_it() {
    let marker = format!("smoke-{}", std::process::id());
    alertmanager::post(&serde_json::json!([{
        "labels": {"alertname": "UpgradeGuardSmoke", "severity": "warning", "release": marker},
        "annotations": {"summary": "smoke test alert"},
    }]))
    .await;

    let alerts = alertmanager::alerts(&[("release", &marker)]).await;
    assert_eq!(
        alerts.len(),
        1,
        "alert not held by Alertmanager: {alerts:?}"
    );
    assert_eq!(alerts[0]["status"]["state"], "active");

    let message = wait::until(WAIT, "the alert email", || async {
        mail::messages()
            .into_iter()
            .find(|m| m.text.contains(&marker) || m.html.contains(&marker))
    })
    .await;
    assert!(
        message.subject.contains("UpgradeGuardSmoke"),
        "subject: {}",
        message.subject
    );
    assert!(message.rcpt_to.contains("operator@upgrade-guard.test"));
}

#[test]
fn postgres_takes_only_verified_tls_with_a_password_and_read_only_means_read_only() {
    use support::postgres::psql;
    let (ok, out, err) = psql("select 6 * 7", &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "42");
    // What the database checks rely on: a read-only transaction refuses a write.
    let (ok, _, err) = psql("begin read only; create table t (i int); commit", &[]);
    assert!(!ok);
    assert!(
        err.contains("cannot execute CREATE TABLE in a read-only transaction"),
        "{err}"
    );
    // verify-full against a CA that did not sign the server's certificate: refused.
    let other = support::stack::stack().env["PG_OTHER_CA"].clone();
    let (ok, _, err) = psql("select 1", &[("PGSSLROOTCERT", other)]);
    assert!(!ok);
    assert!(err.contains("certificate verify failed"), "{err}");
    // No TLS, or a wrong password: refused.
    let (ok, _, err) = psql("select 1", &[("PGSSLMODE", "disable".into())]);
    assert!(!ok && err.contains("no encryption"), "{err}");
    let (ok, _, err) = psql("select 1", &[("PGPASSWORD", "wrong".into())]);
    assert!(
        !ok && err.contains("password authentication failed"),
        "{err}"
    );
}
