//! The executor unattended (issue 20) on the real stack: a helm rollback that fails or
//! hangs is reported as the automatic action that failed and never leaves the release
//! locked; a daemon killed mid-rollback in a PID namespace of its own (as in a container,
//! where helm dies with it) has its rollback completed once by the next leader.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::os::unix::fs::PermissionsExt;

use support::auto::{WAIT, auto_config, auto_config_with, description, history, records, view};
use support::daemon::{Running, options};
use support::{alertmanager, helm, kube as tkube, stack::stack, wait};
use upgrade_guard::records::action::Phase;

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// GIM's pods become Ready `ready_after` after they start: a rollback's `--wait` lasts that
/// long.
fn slow(ready_after: &str) -> [String; 3] {
    [
        "fault=SlowReady".into(),
        "slowReady.startAfter=1s".into(),
        format!("slowReady.readyAfter={ready_after}"),
    ]
}

/// Alertmanager and email for namespace `n`.
fn notifications(n: &str) -> String {
    format!(
        "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n  \
         email:\n    smtp_host: 127.0.0.1\n    smtp_port: {}\n    security: none\n    \
         from: upgrade-guard@test.invalid\n    to: [ops-{n}@test.invalid]\n",
        stack().alertmanager_url,
        stack().smtp_port
    )
}

/// Revision 2 of GIM crash-loops: the daemon rolls it back to 1.
fn break_gim(n: &str) {
    helm::ok(&[
        "upgrade",
        "gim",
        &helm::chart("gim"),
        "-n",
        n,
        "--set",
        "fault=CrashLoopBackOff",
    ]);
}

/// The email to `ops-<n>` whose subject ends with `subject`.
async fn mail(n: &str, subject: &str) -> support::mail::Message {
    let to = format!("ops-{n}@test.invalid");
    wait::until(WAIT, &format!("the email '{subject}'"), || async {
        support::mail::messages()
            .into_iter()
            .find(|m| m.to.contains(&to) && m.subject.ends_with(subject))
    })
    .await
}

/// Issue 20.2: helm gives up on the rollback (its `--wait` passes `rollback_timeout`) and
/// calls the revision it wrote `Release "gim" failed: ...`, with no word of a rollback. The
/// record attaches to that revision: `UpgradeRollbackFailed` and "automatic action failed"
/// by email, no `UpgradeFailed` recommending another rollback, and no second rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_helm_fails_is_reported_as_the_failed_automatic_action() {
    let ns = tkube::namespace("exec-fails").await;
    let n = ns.name.as_str();
    let set = slow("12s");
    helm::install(n, "gim", "gim", &set.each_ref().map(String::as_str));
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        &format!(
            "releases:\n  - name: gim\n    rollback_timeout: 2s\n{}",
            notifications(n)
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    break_gim(n);

    let failed = wait::until(WAIT, "the rollback recorded failed", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Failed).then(|| r[0].clone())
    })
    .await;
    assert_eq!(failed.new_revision, Some(3), "{failed:?}");
    let rows = history(n, "gim").await;
    assert_eq!(rows.len(), 3, "one rollback, no more: {rows:?}");
    assert!(
        description(&rows[2]).starts_with("Release \"gim\" failed"),
        "helm's own words: {rows:?}"
    );
    let shown = wait::until(WAIT, "revision 3 shown with its rollback", || async {
        let v = view(&d, "gim").await?;
        (v["revision"] == 3 && v["automation"]["record"]["phase"] == "failed").then_some(v)
    })
    .await;
    assert_eq!(
        shown["automation"]["record"]["bad_revision"], 2,
        "{shown:#}"
    );
    let alert = wait::until(WAIT, "UpgradeRollbackFailed", || async {
        alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeRollbackFailed")])
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["revision"], "3", "{alert:#}");
    let m = mail(n, "revision 3: automatic action failed").await;
    assert!(m.text.contains("helm rollback gim 1"), "{}", m.text);
    // Helm's --wait giving up is no evidence: revision 3 is judged on its pods, passes its
    // bake, and that verifies the rollback after all, keeping helm's words.
    support::auto::final_verdict(&d, "gim", 3, "healthy").await;
    let verified = wait::until(WAIT, "the rollback verified by its revision", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Verified).then(|| r[0].clone())
    })
    .await;
    assert!(
        verified
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("helm reported a failure (")),
        "{verified:?}"
    );
    assert_eq!(history(n, "gim").await.len(), 3, "no second rollback");
    d.stop().await;
}

/// Issue 20.2: a helm that hangs past its deadline (a wrapper that makes it wait an hour)
/// is stopped with everything it started; the revision it left `pending-rollback` is
/// unlocked (marked failed, saying why), the failure is alerted and mailed, and an operator
/// can run the next helm command at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_helm_hangs_is_stopped_reported_and_leaves_no_lock() {
    let ns = tkube::namespace("exec-hangs").await;
    let n = ns.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# helm whose rollback waits an hour: it hangs past upgrade-guard's deadline\n\
             \"{}\" \"$@\" --timeout 1h\n",
            stack().helm_bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let set = slow("40s");
    helm::install(n, "gim", "gim", &set.each_ref().map(String::as_str));
    let config = auto_config_with(
        &wrapper.display().to_string(),
        NO_PROMETHEUS,
        n,
        "",
        &format!(
            "releases:\n  - name: gim\n    rollback_timeout: 2s\n{}",
            notifications(n)
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    break_gim(n);

    let failed = wait::until(WAIT, "the rollback recorded failed", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Failed).then(|| r[0].clone())
    })
    .await;
    let detail = failed.detail.clone().unwrap_or_default();
    assert!(detail.contains("was still running"), "{failed:?}");
    assert!(detail.contains("has been unlocked"), "{failed:?}");
    assert_eq!(failed.new_revision, Some(3), "{failed:?}");
    let rows = history(n, "gim").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2].status.as_str(), "failed", "{rows:?}");
    assert!(
        description(&rows[2]).starts_with("Rollback to 1 interrupted"),
        "{rows:?}"
    );
    wait::until(WAIT, "UpgradeRollbackFailed", || async {
        alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeRollbackFailed")])
            .await
            .into_iter()
            .next()
    })
    .await;
    mail(n, "revision 3: automatic action failed").await;
    // Revision 3 is judged failed (its record says so): the rollback's failure is alerted,
    // never an `UpgradeFailed` recommending one more rollback.
    wait::until(WAIT, "revision 3 failed, one alert firing", || async {
        let v = view(&d, "gim").await?;
        let failed = v["revision"] == 3 && v["judgement"]["verdict"] == "failed";
        let firing = d.metric("upgrade_guard_alerts_firing").await?;
        (failed && firing == 1.0).then_some(())
    })
    .await;
    // No lock: the operator's rollback is accepted (Helm refuses any operation while a
    // revision is pending).
    helm::ok(&["rollback", "gim", "1", "-n", n]);
    assert_eq!(history(n, "gim").await.len(), 4);
    d.stop().await;
}
