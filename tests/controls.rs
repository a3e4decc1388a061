//! The operator's controls (issue 22.1) end to end on the real stack: `upgrade-guard
//! suspend | resume | accept | recheck` write the release's control ConfigMap, and the
//! running daemon honours them: from any replica, after a restart, shown in the API, the
//! metrics and the alerts with who set them and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use support::auto::{
    WAIT, auto_config, break_gim, break_gim_with, history, leads, record_healthy, records,
    rollbacks, view,
};
use support::cli::{run, short_config};
use support::daemon::{Running, options};
use support::{alertmanager, helm, kube as tkube, stack::stack, wait};

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// Alertmanager for namespace `n`, told every second.
fn alerting() -> String {
    format!(
        "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n",
        stack().alertmanager_url
    )
}

/// `upgrade-guard <control> gim -n <n> --state-namespace <n> <extra> -o json`: its answer.
fn control(control: &str, n: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        control,
        "gim",
        "-n",
        n,
        "--state-namespace",
        n,
        "-o",
        "json",
    ];
    args.extend(extra);
    let out = run(&args, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// Waits until `d` shows `release` as `check` finds it, and returns the view.
async fn shown(
    d: &Running,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait::until_seen(WAIT, what, || async {
        let v = view(d, "gim").await.unwrap_or_default();
        if check(&v) { Ok(v) } else { Err(v.to_string()) }
    })
    .await
}

/// Evaluation rounds `d` has run.
async fn rounds(d: &Running) -> f64 {
    d.metric("upgrade_guard_evaluation_rounds_total")
        .await
        .unwrap_or_default()
}

/// A suspended release in `mode: auto` is judged failed but never rolled back nor alerted
/// as failed, by the replica that saw the suspension set and by another that starts later
/// and takes the lead; `resume` lets the leader act at once (within the bake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_release_is_judged_never_acted_on_by_any_replica_until_resumed() {
    let ns = tkube::namespace("ctl-suspend").await;
    let n = ns.name.as_str();
    helm::install(n, "gim", "gim", &[]);
    record_healthy(n, "gim", 1).await;
    // A bake long enough that the failure is still under judgement when resumed.
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        &format!(
            "releases:\n  - name: gim\n    bake_window: 10m\n{}",
            alerting()
        ),
    );
    let a = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    a.ready().await;
    leads(&a, "replica-a").await;

    let set = control(
        "suspend",
        n,
        &["--for", "1h", "--reason", "maintenance window"],
    );
    assert_eq!(set["control"], "suspended", "{set:#}");
    let by = set["by"].as_str().unwrap().to_string();
    assert!(!by.is_empty(), "{set:#}");
    let v = shown(&a, "the suspension shown", |v| {
        v["controls"]["suspended"]["by"] == by.as_str()
    })
    .await;
    assert_eq!(v["controls"]["suspended"]["reason"], "maintenance window");
    let alert = alertmanager::fired(WAIT, n, "HelmReleaseSuspended").await;
    assert_eq!(
        alert["annotations"]["suspended_by"],
        by.as_str(),
        "{alert:#}"
    );
    assert_eq!(alert["annotations"]["reason"], "maintenance window");

    break_gim(n);
    shown(&a, "revision 2 judged failed", |v| {
        v["revision"] == 2 && v["judgement"]["verdict"] == "failed"
    })
    .await;

    // A second replica, started now, sees the suspension, takes the lead, and holds too.
    let b = Running::start_with(&stack().kubeconfig, &config, options("replica-b")).await;
    b.ready().await;
    shown(&b, "the suspension on the second replica", |v| {
        v["controls"]["suspended"]["by"] == by.as_str()
    })
    .await;
    a.stop().await;
    leads(&b, "replica-b").await;
    shown(&b, "revision 2 failed on the new leader", |v| {
        v["revision"] == 2 && v["judgement"]["verdict"] == "failed"
    })
    .await;
    let since = rounds(&b).await;
    wait::until(WAIT, "ten more rounds on the leader", || async {
        (rounds(&b).await >= since + 10.0).then_some(())
    })
    .await;
    assert!(
        records(n, "gim").await.is_empty(),
        "no action while suspended"
    );
    assert_eq!(
        history(n, "gim").await.len(),
        2,
        "no rollback while suspended"
    );
    let metric = format!(
        "upgrade_guard_release_suspended_until_timestamp_seconds{{namespace=\"{n}\",release=\"gim\",by=\"{by}\"}}"
    );
    let until = b
        .metric(&metric)
        .await
        .expect("the suspension's end exported");
    let expected = set["until"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert_eq!(until, expected.as_second() as f64);
    let firing = alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeFailed")]).await;
    assert!(
        firing.is_empty(),
        "no UpgradeFailed while suspended: {firing:#?}"
    );

    let lifted = control("resume", n, &[]);
    assert_eq!(lifted["control"], "resumed");
    wait::until_seen(WAIT, "the rollback after resume", || async {
        let done = rollbacks(n, "gim").await;
        if done.is_empty() {
            Err(format!("records {:?}", records(n, "gim").await))
        } else {
            Ok(())
        }
    })
    .await;
    let v = view(&b, "gim").await.unwrap();
    assert!(v["controls"]["suspended"].is_null(), "{v:#}");
    assert!(b.metric(&metric).await.is_none());
    b.stop().await;
}

/// An accepted failed revision is shown healthy with who accepted it, its alert resolves,
/// its bake record says healthy (accepted over failed), and it is the rollback target the
/// next failure is recommended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_revision_is_healthy_resolves_its_alert_and_becomes_the_rollback_target() {
    let ns = tkube::namespace("ctl-accept").await;
    let n = ns.name.as_str();
    helm::install(n, "gim", "gim", &[]);
    let config = short_config(
        NO_PROMETHEUS,
        "  mode: recommend\n",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n{}  kubernetes_events: true\n",
            alerting()
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);
    shown(&d, "revision 2 failed", |v| {
        v["revision"] == 2 && v["judgement"]["verdict"] == "failed"
    })
    .await;
    alertmanager::fired(WAIT, n, "UpgradeFailed").await;

    let set = control(
        "accept",
        n,
        &["--revision", "2", "--reason", "known sidecar crash"],
    );
    assert_eq!(set["revision"], 2, "{set:#}");
    let v = shown(&d, "revision 2 accepted", |v| {
        v["judgement"]["verdict"] == "healthy" && v["controls"]["accepted"]["by"] == set["by"]
    })
    .await;
    assert_eq!(v["judgement"]["final"], true, "{v:#}");
    let notes = v["judgement"]["notes"].to_string();
    assert!(notes.contains("accepted as good by"), "{notes}");
    assert!(notes.contains("known sidecar crash"), "{notes}");
    assert!(notes.contains("judged failed before"), "{notes}");
    wait::until(WAIT, "no alert firing", || async {
        (d.metric("upgrade_guard_alerts_firing").await? == 0.0).then_some(())
    })
    .await;
    // A Kubernetes Event about revision 2 says who accepted it and why.
    let accepted = tkube::event(WAIT, n, "a RevisionAccepted Event", |e| {
        e.reason.as_deref() == Some("RevisionAccepted")
    })
    .await;
    let note = accepted.note.clone().unwrap_or_default();
    assert!(note.contains("known sidecar crash"), "{note}");
    assert_eq!(
        accepted.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("sh.helm.release.v1.gim.v2")
    );
    let record = tkube::bake_record(n, n, "gim", 2).await;
    assert!(record.contains("\"verdict\":\"healthy\""), "{record}");
    assert!(record.contains("\"accepted_over\":\"failed\""), "{record}");

    // Revision 3 fails (new pods that cannot pull): the revision to go back to is the
    // accepted 2, not 1.
    break_gim_with(n, "ImagePullBackOff");
    let v = shown(&d, "revision 3 failed", |v| {
        v["revision"] == 3 && v["judgement"]["verdict"] == "failed"
    })
    .await;
    let command = v["judgement"]["action"]["command"]
        .as_str()
        .unwrap_or_default();
    assert!(
        command.starts_with(&format!("helm rollback gim 2 -n {n}")),
        "{v:#}"
    );
    d.stop().await;
}

/// `recheck` judges the latest revision again with a bake window from the request; a
/// daemon started afterwards keeps the new verdict (the request is not carried out twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_judges_the_latest_revision_again_with_a_fresh_bake_window() {
    let ns = tkube::namespace("ctl-recheck").await;
    let n = ns.name.as_str();
    helm::install(n, "gim", "gim", &[]);
    let config = short_config(
        NO_PROMETHEUS,
        "  mode: recommend\n",
        &format!("watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n"),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    support::auto::final_verdict(&d, "gim", 1, "healthy").await;
    let first = tkube::bake_record(n, n, "gim", 1).await;

    let asked = control("recheck", n, &["--reason", "after the database fix"]);
    assert_eq!(asked["revision"], 1, "{asked:#}");
    let at: jiff::Timestamp = asked["at"].as_str().unwrap().parse().unwrap();
    let v = shown(&d, "revision 1 judged again to its end", |v| {
        let ends = v["judgement"]["bake_ends"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        v["judgement"]["final"] == true && ends.is_some_and(|e| e >= at)
    })
    .await;
    assert_eq!(v["judgement"]["verdict"], "healthy", "{v:#}");
    assert_eq!(v["controls"]["recheck"]["reason"], "after the database fix");
    // The watch after the first bake is not shown as if it still ran: a new one starts
    // at the end of the new bake, from then.
    if let Some(since) = v["after_bake"]["since"].as_str() {
        assert!(since.parse::<jiff::Timestamp>().unwrap() >= at, "{v:#}");
    }
    let again = wait::until(WAIT, "a newer bake record", || async {
        let r = tkube::bake_record(n, n, "gim", 1).await;
        (r != first).then_some(r)
    })
    .await;
    assert!(again.contains("\"verdict\":\"healthy\""), "{again}");
    d.stop().await;

    // After a restart the request is done: the revision is not judged a third time.
    let e = Running::start_with(&stack().kubeconfig, &config, options("replica-b")).await;
    e.ready().await;
    let v = shown(&e, "the restarted daemon shows revision 1", |v| {
        v["revision"] == 1
    })
    .await;
    assert_eq!(
        e.metric("upgrade_guard_evaluations_active").await,
        Some(0.0),
        "{v:#}"
    );
    assert_eq!(tkube::bake_record(n, n, "gim", 1).await, again);
    e.stop().await;
}

/// What the commands refuse, in words: a revision the release does not have, a release
/// that does not exist, a suspension of no length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controls_refuse_what_does_not_exist() {
    let ns = tkube::namespace("ctl-refuse").await;
    let n = ns.name.as_str();
    helm::install(n, "gim", "gim", &[]);
    let out = run(
        &[
            "accept",
            "gim",
            "-n",
            n,
            "--state-namespace",
            n,
            "--revision",
            "9",
        ],
        &[],
    );
    out.says_on_stderr(&format!("{n}/gim has no revision 9 (its revisions: 1)"));
    assert_eq!(out.code, 64);
    let out = run(
        &["suspend", "nothing", "-n", n, "--state-namespace", n],
        &[],
    );
    assert_eq!(out.code, 66, "{}", out.stderr);
    assert!(
        out.stderr.contains("release \"nothing\" not found"),
        "{}",
        out.stderr
    );
    let out = run(&["suspend", "gim", "-n", n, "--for", "0s"], &[]);
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr.contains("--for must be longer than 0s"),
        "{}",
        out.stderr
    );
    // Nothing was written by the refused commands.
    let controls = upgrade_guard::records::controls::ControlStore::new(tkube::client().await, n)
        .load(&upgrade_guard::release::ReleaseKey::new(n, "gim"))
        .await
        .unwrap();
    assert!(controls.is_empty(), "{controls:?}");
}
