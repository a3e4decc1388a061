//! Notifications across failover and outages (issue 20.10) on the real stack: a replica
//! cut off from the API server (its Lease lost, nobody else leading) keeps Alertmanager's
//! alerts firing; a new leader mails what the old one could not send; an SMTP server that
//! refuses connections for a while loses no email.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use support::auto::{WAIT, final_verdict};
use support::cli::short_config;
use support::daemon::{Running, options};
use support::eval::install_then_upgrade;
use support::proxy::Proxy;
use support::{alertmanager, kube as tkube, stack::stack, wait};

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// `mode: recommend` in `n` with a short Lease and `notifications`.
fn config(n: &str, notifications: &str) -> String {
    short_config(
        NO_PROMETHEUS,
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             actions:\n  leader_election:\n    lease_duration: 3s\n    renew_deadline: 2s\n    retry_period: 300ms\n\
             {notifications}"
        ),
    )
}

/// Email to `ops-<n>` through `smtp` (`host:port`).
fn email(n: &str, smtp: &str) -> String {
    let (host, port) = smtp.split_once(':').unwrap();
    format!(
        "notifications:\n  email:\n    smtp_host: {host}\n    smtp_port: {port}\n    security: none\n    \
         from: upgrade-guard@test.invalid\n    to: [ops-{n}@test.invalid]\n"
    )
}

/// The emails to `ops-<n>` whose subject ends with `subject`.
fn mails(n: &str, subject: &str) -> usize {
    let to = format!("ops-{n}@test.invalid");
    support::mail::messages()
        .into_iter()
        .filter(|m| m.to.contains(&to) && m.subject.ends_with(subject))
        .count()
}

/// A single replica loses the API server (so its Lease) while an upgrade is failed. Before,
/// it stopped telling Alertmanager, which resolved the critical alert a few seconds later.
/// Seeing no other leader, it keeps re-sending: the alert's end keeps moving on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_api_server_keeps_the_alerts_firing() {
    let ns = tkube::namespace("failover-fire").await;
    let n = ns.name.as_str();
    let proxy = Proxy::start(&tkube::api_address());
    let kubeconfig = tkube::kubeconfig_with_server(&format!("https://{}", proxy.address));
    let notify = format!(
        "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n",
        stack().alertmanager_url
    );
    let d = Running::start_with(kubeconfig.path(), &config(n, &notify), options("alone")).await;
    d.ready().await;
    install_then_upgrade(n, "app", &["unschedulable=true"]);
    final_verdict(&d, "app", 2, "failed").await;
    alertmanager::fired(WAIT, n, "UpgradeFailed").await;
    proxy.cut();
    wait::until(WAIT, "the Lease lost", || async {
        (d.metric("upgrade_guard_leader").await? == 0.0).then_some(())
    })
    .await;
    let lost = jiff::Timestamp::now();
    // Re-sent with endsAt = now + 4 × resend_interval: an end well past the loss of the
    // Lease means it is still being re-sent.
    let beyond = lost + jiff::SignedDuration::from_secs(10);
    wait::until(
        WAIT,
        "UpgradeFailed re-sent after the Lease was lost",
        || async {
            let alert = alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeFailed")])
                .await
                .into_iter()
                .next()?;
            let ends: jiff::Timestamp = alert["endsAt"].as_str()?.parse().ok()?;
            (ends > beyond).then_some(())
        },
    )
    .await;
    proxy.restore();
    d.stop().await;
}

/// The leader cannot reach the SMTP server when an upgrade fails, and stops (a rolling
/// update, a drain) with the email unsent. Before, the other replica had followed the
/// change and taken it as told: nobody mailed. Now only a replica that tells follows the
/// changes, and one that starts telling reads which emails were confirmed sent: the new
/// leader mails it, once, and confirms it in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_mails_what_the_old_one_could_not_send() {
    let ns = tkube::namespace("failover-mail").await;
    let n = ns.name.as_str();
    let smtp = Proxy::start(&format!("127.0.0.1:{}", stack().smtp_port));
    smtp.cut();
    let cfg = config(n, &email(n, &smtp.address));
    let a = Running::start_with(&stack().kubeconfig, &cfg, options("replica-a")).await;
    support::auto::leads(&a, "a").await;
    let b = Running::start_with(&stack().kubeconfig, &cfg, options("replica-b")).await;
    a.ready().await;
    b.ready().await;
    install_then_upgrade(n, "app", &["unschedulable=true"]);
    final_verdict(&a, "app", 2, "failed").await;
    let failed = r#"upgrade_guard_notifications_total{channel="email",outcome="failed"}"#;
    wait::until(WAIT, "a cannot send the email", || async {
        (a.metric(failed).await? >= 1.0).then_some(())
    })
    .await;
    a.stop().await;
    smtp.restore();
    support::auto::leads(&b, "b").await;
    wait::until(WAIT, "the failure mailed by b", || async {
        (mails(n, "revision 2: failed") == 1).then_some(())
    })
    .await;
    let maps: Api<ConfigMap> = Api::namespaced(tkube::client().await, n);
    let confirmed = wait::until(WAIT, "the email confirmed", || async {
        maps.get_opt("upgrade-guard.mailed")
            .await
            .ok()??
            .data?
            .get(&format!("mail.{n}.app"))
            .cloned()
    })
    .await;
    assert!(
        confirmed.contains("\"revision\":2") && confirmed.contains("\"state\":\"failed\""),
        "{confirmed}"
    );
    b.stop().await;
}

/// Issue 20.12: the replica that does not lead served the action record as it last read it
/// (`done`) after the leader verified the rollback. Now every replica serves the records as
/// the cluster holds them (watched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_does_not_lead_shows_the_rollback_verified() {
    use support::auto::{auto_config, baked_healthy, install, view};
    let ns = tkube::namespace("failover-story").await;
    let n = ns.name.as_str();
    let cfg = auto_config(NO_PROMETHEUS, n, "", "");
    let a = Running::start_with(&stack().kubeconfig, &cfg, options("replica-a")).await;
    support::auto::leads(&a, "a").await;
    let b = Running::start_with(&stack().kubeconfig, &cfg, options("replica-b")).await;
    b.ready().await;
    install(n, "app", "demo-app", &[]);
    baked_healthy(n, "app", 1).await;
    support::eval::upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    for (who, d) in [("the leader", &a), ("the other replica", &b)] {
        wait::until(
            WAIT,
            &format!("{who} shows the rollback verified"),
            || async {
                let v = view(d, "app").await?;
                (v["revision"] == 3 && v["automation"]["record"]["phase"] == "verified")
                    .then_some(())
            },
        )
        .await;
    }
    assert_eq!(b.metric("upgrade_guard_leader").await, Some(0.0));
    a.stop().await;
    b.stop().await;
}

/// Issue 20.12: a release locked by a Helm operation (a rollback under way when the daemon
/// restarted) was missing from the API until the operation ended or was found stuck
/// (15 minutes). Now a restarted daemon shows it, with its pending status and the action
/// record that started it, before it says it is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_shows_a_release_locked_by_helm_before_it_is_ready() {
    use k8s_openapi::api::core::v1::Secret;
    use upgrade_guard::records::actions::RecordStore;
    use upgrade_guard::release::ReleaseKey;
    let ns = tkube::namespace("failover-locked").await;
    let n = ns.name.as_str();
    support::helm::install(n, "app", "demo-app", &[]);
    // Revision 2 failed; revision 3 is the rollback to 1 under way (pending-rollback), their
    // records as helm writes them.
    let secrets: Api<Secret> = Api::namespaced(tkube::client().await, n);
    let first = secrets.get("sh.helm.release.v1.app.v1").await.unwrap();
    for (revision, status, description) in [
        (2, "failed", "Upgrade \"app\" failed: timed out"),
        (3, "pending-rollback", "Rollback to 1"),
    ] {
        let mut release = support::helm::payload(&first);
        release["version"] = revision.into();
        release["info"]["status"] = status.into();
        release["info"]["description"] = description.into();
        let mut secret = first.clone();
        secret.metadata = kube::api::ObjectMeta {
            name: Some(format!("sh.helm.release.v1.app.v{revision}")),
            labels: first.metadata.labels.clone().map(|mut l| {
                l.insert("version".into(), revision.to_string());
                l.insert("status".into(), status.into());
                l
            }),
            ..Default::default()
        };
        secret
            .data
            .as_mut()
            .unwrap()
            .insert("release".into(), support::helm::encoded(&release));
        secrets.create(&Default::default(), &secret).await.unwrap();
    }
    // The intent of the process that started it (and is not known to be gone).
    let key = ReleaseKey::new(n, "app");
    let store = RecordStore::new(tkube::client().await, n);
    let read = store.load(&key).await.unwrap();
    let intent = support::auto::running_rollback(n, 2, "the-previous-process");
    store
        .write_if_unchanged(&key, &read, &intent)
        .await
        .unwrap();

    let cfg = support::auto::auto_config(NO_PROMETHEUS, n, "", "");
    let d = Running::start_with(&stack().kubeconfig, &cfg, options("restarted")).await;
    d.ready().await;
    let v = support::auto::view(&d, "app")
        .await
        .expect("the locked release is shown as soon as the daemon is ready");
    assert_eq!(v["revision"], 3, "{v:#}");
    assert_eq!(v["status"], "pending-rollback", "{v:#}");
    let record = &v["automation"]["record"];
    assert_eq!(record["phase"], "running", "{v:#}");
    assert_eq!(record["bad_revision"], 2, "{v:#}");
    assert_eq!(record["holder"], "the-previous-process", "{v:#}");
    d.stop().await;
}
