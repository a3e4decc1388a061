//! Release tracking against the real stack: the real helm writes every revision, the tracker
//! watches a fresh namespace per test and must report each change, in order, with the right
//! revisions and statuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use support::helm::{self, Helm};
use support::tracker::{WAIT, Watching};
use support::{control_plane::ControlPlane, kube as tkube, wait};
use upgrade_guard::release::error::DecodeErrorReason;
use upgrade_guard::release::event::{ReleaseEvent, ReleaseEventKind};
use upgrade_guard::release::summary::WorkloadKind;
use upgrade_guard::release::{ReleaseKey, ReleaseStatus};
use upgrade_guard::tracker::TrackerConfig;

/// A tracker on `namespace`, reporting a pending revision stuck after `stuck_after`.
async fn watching(client: kube::Client, namespace: &str, stuck_after: Duration) -> Watching {
    let config = TrackerConfig {
        namespaces: vec![namespace.to_string()],
        stuck_pending_after: stuck_after,
        ..TrackerConfig::default()
    };
    Watching::start(client, config).await
}

fn assert_event(
    event: &ReleaseEvent,
    revision: u32,
    status: ReleaseStatus,
    kind: ReleaseEventKind,
) {
    assert_eq!(
        (event.revision, event.status, &event.kind),
        (revision, status, &kind),
        "unexpected event {event:#?}"
    );
}

#[tokio::test]
async fn install_upgrade_failure_rollback_uninstall_arrive_in_order() {
    let ns = tkube::namespace("track-life").await;
    let mut w = watching(tkube::client().await, &ns.name, Duration::from_secs(600)).await;
    let chart = &helm::chart("demo-app");
    let n = ns.name.as_str();

    helm::ok(&[
        "install",
        "app",
        chart,
        "-n",
        n,
        "--wait",
        "--timeout",
        "60s",
        "--set",
        "database.password=never-keep-me",
    ]);
    let e = w.next().await;
    assert_event(&e, 1, ReleaseStatus::Deployed, ReleaseEventKind::Installed);
    assert_eq!(e.release, ReleaseKey::new(n, "app"));
    let s = e.summary.as_ref().expect("summary");
    assert_eq!(
        (s.chart.name.as_str(), s.chart.version.as_str()),
        ("demo-app", "0.1.0")
    );
    assert_eq!(s.description, "Install complete");
    assert_eq!(s.workloads.len(), 1);
    assert_eq!(
        (s.workloads[0].kind, s.workloads[0].name.as_str()),
        (WorkloadKind::Deployment, "app")
    );
    assert!(!serde_json::to_string(&e).unwrap().contains("never-keep-me"));

    helm::ok(&[
        "upgrade",
        "app",
        chart,
        "-n",
        n,
        "--reuse-values",
        "--set",
        "image.tag=1.1.0",
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert_event(
        &w.next().await,
        2,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Upgraded { from: 1, to: 2 },
    );

    // Pods that never get Ready: helm --wait gives up and marks revision 3 failed.
    helm::shared().fails(&[
        "upgrade",
        "app",
        chart,
        "-n",
        n,
        "--reuse-values",
        "--set",
        "fault=CrashLoopBackOff",
        "--wait",
        "--timeout",
        "5s",
    ]);
    let e = w.next().await;
    assert_event(
        &e,
        3,
        ReleaseStatus::Failed,
        ReleaseEventKind::UpgradeFailed {
            from: Some(2),
            to: 3,
        },
    );
    assert!(e.summary.unwrap().description.contains("failed"));

    helm::ok(&[
        "rollback",
        "app",
        "2",
        "-n",
        n,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let e = w.next().await;
    assert_event(
        &e,
        4,
        ReleaseStatus::Deployed,
        ReleaseEventKind::RolledBack { to: 4, target: 2 },
    );
    assert_eq!(e.summary.unwrap().description, "Rollback to 2");

    helm::ok(&["uninstall", "app", "-n", n]);
    let e = w.next().await;
    assert_eq!(
        e.kind,
        ReleaseEventKind::Uninstalled {
            kept_history: false
        }
    );
    assert_eq!(e.release, ReleaseKey::new(n, "app"));
}

#[tokio::test]
async fn uninstall_keeping_history_is_recognised() {
    let ns = tkube::namespace("track-keep").await;
    let mut w = watching(tkube::client().await, &ns.name, Duration::from_secs(600)).await;
    let n = ns.name.as_str();
    helm::ok(&["install", "kept", &helm::chart("demo-app"), "-n", n]);
    assert_event(
        &w.next().await,
        1,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Installed,
    );
    helm::ok(&["uninstall", "kept", "-n", n, "--keep-history"]);
    let e = w.next().await;
    assert_event(
        &e,
        1,
        ReleaseStatus::Uninstalled,
        ReleaseEventKind::Uninstalled { kept_history: true },
    );
    assert!(e.summary.is_some());
}

async fn secret_status(secrets: &Api<Secret>, name: &str) -> Option<String> {
    let secret = secrets.get_opt(name).await.ok()??;
    secret.metadata.labels?.get("status").cloned()
}

#[tokio::test]
async fn a_killed_upgrade_is_reported_stuck_pending() {
    let ns = tkube::namespace("track-stuck").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "locked", chart, "-n", n]);
    let mut w = watching(tkube::client().await, n, Duration::from_secs(2)).await;

    // helm waits for pods that never get Ready; kill it as a crashed CI job would be.
    let mut upgrade = helm::shared().spawn(&[
        "upgrade",
        "locked",
        chart,
        "-n",
        n,
        "--set",
        "fault=ImagePullBackOff",
        "--wait",
        "--timeout",
        "10m",
    ]);
    let secrets: Api<Secret> = Api::namespaced(tkube::client().await, n);
    wait::until(WAIT, "revision 2 pending-upgrade", || async {
        (secret_status(&secrets, "sh.helm.release.v1.locked.v2")
            .await
            .as_deref()
            == Some("pending-upgrade"))
        .then_some(())
    })
    .await;
    upgrade.kill().unwrap();
    upgrade.wait().unwrap();

    let e = w.next().await;
    assert_eq!((e.revision, e.status), (2, ReleaseStatus::PendingUpgrade));
    let ReleaseEventKind::StuckPending { status, .. } = e.kind else {
        panic!("expected stuck pending, got {e:#?}");
    };
    assert_eq!(status, ReleaseStatus::PendingUpgrade);
    // The lock is real: helm refuses another upgrade.
    let refused = helm::shared().fails(&["upgrade", "locked", chart, "-n", n]);
    assert!(refused.contains("another operation"), "{refused}");

    // Rolling back over the stuck revision is announced as a rollback to 1.
    helm::ok(&["rollback", "locked", "1", "-n", n]);
    let mut e = w.next().await;
    // The rollback is itself pending while helm applies it; on a loaded machine that can
    // outlast the 2 s threshold, which the tracker rightly reports. The settled rollback
    // is announced all the same.
    if (e.revision, e.status) == (3, ReleaseStatus::PendingRollback) {
        assert!(
            matches!(e.kind, ReleaseEventKind::StuckPending { .. }),
            "{e:#?}"
        );
        e = w.next().await;
    }
    assert_event(
        &e,
        3,
        ReleaseStatus::Deployed,
        ReleaseEventKind::RolledBack { to: 3, target: 1 },
    );
}

#[tokio::test]
async fn a_corrupt_release_secret_is_counted_and_reported() {
    let ns = tkube::namespace("track-corrupt").await;
    let n = ns.name.as_str();
    let mut w = watching(tkube::client().await, n, Duration::from_secs(600)).await;
    let secrets: Api<Secret> = Api::namespaced(tkube::client().await, n);
    let broken = |name: &str, labels: &[(&str, &str)], payload: &[u8]| -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.to_string());
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s.type_ = Some("helm.sh/release.v1".into());
        s.data = Some(BTreeMap::from([(
            "release".to_string(),
            ByteString(payload.to_vec()),
        )]));
        s
    };
    let helm_labels = [
        ("owner", "helm"),
        ("name", "broken"),
        ("status", "deployed"),
        ("version", "1"),
    ];
    secrets
        .create(
            &PostParams::default(),
            &broken(
                "sh.helm.release.v1.broken.v1",
                &helm_labels,
                b"H4sI-this-is-not-gzip",
            ),
        )
        .await
        .unwrap();
    let bad_labels = [
        ("owner", "helm"),
        ("name", "badlabels"),
        ("status", "deployed"),
        ("version", "one"),
    ];
    secrets
        .create(
            &PostParams::default(),
            &broken("sh.helm.release.v1.badlabels.v1", &bad_labels, b""),
        )
        .await
        .unwrap();

    // The undecodable revision is reported (never silently skipped) and counted; a real
    // release next to it is still tracked.
    helm::ok(&["install", "fine", &helm::chart("demo-app"), "-n", n]);
    let mut events = [w.next().await, w.next().await];
    events.sort_by(|a, b| a.release.cmp(&b.release));
    let (bad, fine) = (&events[0], &events[1]);
    assert_eq!(bad.release, ReleaseKey::new(n, "broken"));
    match &bad.kind {
        ReleaseEventKind::Unreadable {
            reason, retrying, ..
        } => assert_eq!((*reason, *retrying), ("base64", false)),
        other => panic!("expected unreadable, got {other:?}"),
    }
    assert_eq!(fine.release, ReleaseKey::new(n, "fine"));
    assert_event(
        fine,
        1,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Installed,
    );
    assert_eq!(w.metrics.decode_errors_for(DecodeErrorReason::Base64), 1);
    assert_eq!(w.metrics.decode_errors_for(DecodeErrorReason::Labels), 1);

    // Tracking goes on.
    helm::ok(&[
        "upgrade",
        "fine",
        &helm::chart("demo-app"),
        "-n",
        n,
        "--set",
        "image.tag=2",
    ]);
    assert_event(
        &w.next().await,
        2,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Upgraded { from: 1, to: 2 },
    );
}

#[tokio::test]
async fn a_restart_does_not_reannounce_settled_revisions() {
    let ns = tkube::namespace("track-restart").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "steady", chart, "-n", n]);
    helm::ok(&["upgrade", "steady", chart, "-n", n, "--set", "image.tag=2"]);
    helm::shared().fails(&[
        "upgrade",
        "steady",
        chart,
        "-n",
        n,
        "--set",
        "fault=NotReady",
        "--wait",
        "--timeout",
        "3s",
    ]);

    // Watching starts after all that: nothing is announced until the next change.
    let mut w = watching(tkube::client().await, n, Duration::from_secs(600)).await;
    helm::ok(&["upgrade", "steady", chart, "-n", n, "--set", "image.tag=4"]);
    assert_event(
        &w.next().await,
        4,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Upgraded { from: 2, to: 4 },
    );
}

#[tokio::test]
async fn an_api_server_restart_loses_no_event() {
    let plane = ControlPlane::start();
    let helm: Helm = plane.helm();
    let chart = &helm::chart("demo-app");
    let client = tkube::client_for(&plane.kubeconfig).await;
    helm.ok(&["install", "survivor", chart, "-n", "default"]);
    let mut w = watching(client, "default", Duration::from_secs(600)).await;
    helm.ok(&[
        "upgrade",
        "survivor",
        chart,
        "-n",
        "default",
        "--set",
        "image.tag=2",
    ]);
    assert_event(
        &w.next().await,
        2,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Upgraded { from: 1, to: 2 },
    );

    plane.stop_apiserver();
    plane.start_apiserver();
    // Written as soon as the API server is back, likely before the tracker reconnected.
    helm.ok(&[
        "upgrade",
        "survivor",
        chart,
        "-n",
        "default",
        "--set",
        "image.tag=3",
    ]);
    helm.ok(&[
        "upgrade",
        "survivor",
        chart,
        "-n",
        "default",
        "--set",
        "image.tag=4",
    ]);
    // A restarted API server usually answers the old resourceVersion with 410 Gone: the
    // tracker relists and announces what it missed, in order. Revision 3 may then already
    // be superseded by 4; what matters is that it is announced, as the upgrade it was.
    let e = w.next().await;
    assert_eq!(
        (e.revision, &e.kind),
        (3, &ReleaseEventKind::Upgraded { from: 2, to: 3 })
    );
    assert!(e.status.was_deployed(), "{e:#?}");
    assert_event(
        &w.next().await,
        4,
        ReleaseStatus::Deployed,
        ReleaseEventKind::Upgraded { from: 3, to: 4 },
    );

    // A second restart, then an uninstall: the deletions are seen too.
    plane.stop_apiserver();
    plane.start_apiserver();
    helm.ok(&["uninstall", "survivor", "-n", "default"]);
    let e = w.next().await;
    assert_eq!(
        e.kind,
        ReleaseEventKind::Uninstalled {
            kept_history: false
        }
    );
}

#[tokio::test]
async fn history_command_prints_the_revisions() {
    let ns = tkube::namespace("track-history").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "told", chart, "-n", n]);
    helm::ok(&["upgrade", "told", chart, "-n", n, "--set", "image.tag=2"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-guard"))
        .args(["history", "told", "-n", n])
        .envs(support::stack::stack().child_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("REVISION"));
    assert!(
        lines[1].starts_with("1 ")
            && lines[1].contains("superseded")
            && lines[1].contains("demo-app-0.1.0"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("2 ")
            && lines[2].contains("deployed")
            && lines[2].contains("Upgrade complete"),
        "{text}"
    );

    let json = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-guard"))
        .args(["history", "told", "-n", n, "-o", "json"])
        .envs(support::stack::stack().child_env())
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[1]["revision"], 2);
    assert_eq!(rows[1]["status"], "deployed");
    assert_eq!(rows[1]["chart"]["app_version"], "1.0.0");

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-guard"))
        .args(["history", "absent", "-n", n])
        .envs(support::stack::stack().child_env())
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(66),
        "EX_NOINPUT: no such release"
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}
