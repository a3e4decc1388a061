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

use support::auto::break_gim;

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

/// Waits for the one action record of `gim` to reach one of `phases`, saying what the
/// records and the history were if it does not.
async fn recorded_failed(
    n: &str,
    phases: &[Phase],
) -> upgrade_guard::records::action::ActionRecord {
    wait::until_seen(WAIT, "the rollback recorded failed", || async {
        let r = records(n, "gim").await;
        if r.len() == 1 && phases.contains(&r[0].phase) {
            return Ok(r[0].clone());
        }
        let rows = history(n, "gim").await;
        let rows: Vec<_> = rows
            .iter()
            .map(|r| format!("{} {} {}", r.revision, r.status.as_str(), description(r)))
            .collect();
        Err(format!("records {r:?}; history {rows:?}"))
    })
    .await
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
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);

    let failed = recorded_failed(n, &[Phase::Failed]).await;
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
    let alert = alertmanager::fired(WAIT, n, "UpgradeRollbackFailed").await;
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
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);

    // Failed when helm is killed; then revision 3's evaluation (release_status: the unlock
    // marked it failed) verifies the record as VerificationFailed, sometimes before a poll
    // sees Failed. Either is the failed automatic action.
    let failed = recorded_failed(n, &[Phase::Failed, Phase::VerificationFailed]).await;
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
    alertmanager::fired(WAIT, n, "UpgradeRollbackFailed").await;
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

/// A helm that returns late (it applied the rollback, then lingers): the rollback's
/// revision passes its bake while the action still runs. That judgement verifies the
/// rollback once helm returns; the outcome helm's return writes never undoes it (it did:
/// the record stayed `done`, "verifying", for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_judged_before_helm_returns_is_verified_once_it_does() {
    let ns = tkube::namespace("exec-late").await;
    let n = ns.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("helm");
    let release = dir.path().join("return");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# helm that returns only once the test lets it\n\
             \"{}\" \"$@\"; rc=$?\n\
             while [ ! -e \"{}\" ]; do sleep 0.1; done\nexit $rc\n",
            stack().helm_bin.display(),
            release.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    helm::install(n, "gim", "gim", &[]);
    let config = auto_config_with(&wrapper.display().to_string(), NO_PROMETHEUS, n, "", "");
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);

    support::auto::final_verdict(&d, "gim", 3, "healthy").await;
    let r = records(n, "gim").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].phase, Phase::Running, "helm has not returned: {r:?}");
    std::fs::write(&release, "").unwrap();
    let verified = wait::until(WAIT, "the rollback verified once helm returned", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Verified).then(|| r[0].clone())
    })
    .await;
    assert_eq!(verified.new_revision, Some(3), "{verified:?}");
    let shown = wait::until(WAIT, "revision 3 shown verified", || async {
        let v = view(&d, "gim").await?;
        (v["automation"]["record"]["phase"] == "verified").then_some(v)
    })
    .await;
    assert_eq!(shown["revision"], 3, "{shown:#}");
    assert_eq!(history(n, "gim").await.len(), 3, "one rollback");
    d.stop().await;
}

/// Issue 20.1: the daemon killed mid-rollback as PID 1 of its own PID namespace, as in its
/// container, where the kernel kills helm with it: the release is left `pending-rollback`.
/// The next daemon proves the first one and its helm gone (its pid and every process marked
/// with the action have left `/proc`), unlocks the revision and completes the same attempt:
/// exactly one completed rollback, verified, no manual step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_its_helm_mid_rollback_the_next_leader_completes_it_once() {
    let ns = tkube::namespace("exec-pidns").await;
    let n = ns.name.as_str();
    let set = slow("10s");
    helm::install(n, "gim", "gim", &set.each_ref().map(String::as_str));
    let config = support::cli::config_file(&auto_config(NO_PROMETHEUS, n, "", ""));
    let path = config.arg();
    let start = |name: &str, port: u16| {
        let listen = format!("127.0.0.1:{port}");
        let args = ["run", "--config", &path, "--listen", &listen];
        support::cli::spawn_in_pid_namespace(&args, &[("POD_NAME", name)])
    };
    let port = support::prometheus::free_port();
    let mut first = start("first", port);
    first.wait_for_stderr("leading", WAIT);
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait::until(WAIT, "/readyz", || async {
        let r = reqwest::get(&url).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);
    support::auto::rolling_back(n, "gim", 3).await;
    let killed = first.kill();
    let intent = records(n, "gim").await;
    assert_eq!(intent.len(), 1, "{intent:?}\n{}", killed.stderr);
    assert_eq!(intent[0].phase, Phase::Running);
    // The kernel tears the namespace down after `unshare` is gone: the next daemon starts
    // once the first one's process has left /proc, as a restarted container would.
    let pid = intent[0].process.as_ref().and_then(|p| p.pid).unwrap();
    wait::until(WAIT, "the first daemon's process gone", || async {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;

    let mut second = start("second", support::prometheus::free_port());
    second.wait_for_stderr("leading", WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    let done = loop {
        let r = records(n, "gim").await;
        if r.len() == 1 && r[0].phase == Phase::Verified {
            break r[0].clone();
        }
        if std::time::Instant::now() > deadline {
            let rows = history(n, "gim").await;
            let run = second.kill();
            panic!(
                "the rollback was not completed and verified within {WAIT:?}: {r:?}\n{:?}\n{}",
                rows.iter()
                    .map(|r| (r.revision, r.status, description(r)))
                    .collect::<Vec<_>>(),
                run.stderr
            );
        }
        tokio::time::sleep(wait::POLL_INTERVAL).await;
    };
    support::auto::completed_once(n, "gim", &done, "first", "second").await;
    // `unshare` does not pass signals on: the daemon is stopped as a container's is killed.
    let run = second.kill();
    assert!(run.stderr.contains("taking over"), "{}", run.stderr);
}

/// Issue 20.3: a release Flux's helm-controller manages (its objects carry Flux's labels)
/// would be upgraded again after a rollback, for ever. In `auto` it is held with a reason
/// of its own, and the alert says what to do instead, with the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_flux_manages_is_held_with_what_to_do_instead() {
    let ns = tkube::namespace("exec-flux").await;
    let n = ns.name.as_str();
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
    d.ready().await;
    let flux = [
        "extraLabels.helm\\.toolkit\\.fluxcd\\.io/name=app",
        "extraLabels.helm\\.toolkit\\.fluxcd\\.io/namespace=flux-system",
    ];
    helm::install(n, "app", "demo-app", &flux);
    support::auto::final_verdict(&d, "app", 1, "healthy").await;
    support::eval::upgrade(n, "app", "1.1.0", &[flux[0], flux[1], "unschedulable=true"]);
    support::auto::final_verdict(&d, "app", 2, "failed").await;
    // The decision follows the judgement: wait for it, never read it once.
    let v = wait::until(WAIT, "revision 2 held: gitops_managed", || async {
        let v = view(&d, "app").await?;
        (v["automation"]["plan"]["reason"] == "gitops_managed").then_some(v)
    })
    .await;
    let detail = v["automation"]["plan"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("flux suspend helmrelease app -n flux-system"),
        "{detail}"
    );
    let alert = alertmanager::fired(WAIT, n, "UpgradeAutoActionHeld").await;
    assert_eq!(
        alert["annotations"]["hold_reason"], "gitops_managed",
        "{alert:#}"
    );
    assert!(records(n, "app").await.is_empty());
    assert_eq!(history(n, "app").await.len(), 2, "nothing rolled back");
    d.stop().await;
}

/// Issue 20.9 (part): an action record that does not parse (written by a newer version,
/// damaged by hand) was dropped by the next write, which rebuilt the ConfigMap from the
/// records it could read. It is reported and kept as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_record_that_does_not_parse_survives_the_next_write() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use upgrade_guard::records::action::ActionRecord;
    use upgrade_guard::records::actions::{RecordStore, configmap_name};
    use upgrade_guard::release::ReleaseKey;

    let ns = tkube::namespace("exec-records").await;
    let n = ns.name.as_str();
    let key = ReleaseKey::new(n, "app");
    let api = Api::<ConfigMap>::namespaced(tkube::client().await, n);
    let odd = r#"{"bad_revision":7,"written_by":"a newer upgrade-guard"#;
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": configmap_name(&key)},
        "data": {"7.1": odd},
    }))
    .unwrap();
    api.create(&Default::default(), &cm).await.unwrap();

    let store = RecordStore::new(tkube::client().await, n);
    let read = store.load(&key).await.unwrap();
    assert!(read.records.is_empty(), "{:?}", read.records);
    assert_eq!(read.unreadable.get("7.1").map(String::as_str), Some(odd));
    let record = support::auto::running_rollback(n, 2, "a");
    store
        .write_if_unchanged(&key, &read, &record)
        .await
        .unwrap();
    store
        .update(
            &key,
            &ActionRecord {
                phase: Phase::Failed,
                ..record.clone()
            },
        )
        .await
        .unwrap();
    let data = api.get(&configmap_name(&key)).await.unwrap().data.unwrap();
    assert_eq!(data.get("7.1").map(String::as_str), Some(odd), "{data:?}");
    assert_eq!(records(n, "app").await.len(), 1);
}
