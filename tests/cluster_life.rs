//! Ordinary cluster life on the real stack (issue 19): a scale-up, an eviction and slow
//! image pulls after the readiness deadline, a pod broken before a values-only upgrade, a
//! paused rollout and a helm whose clock is off are not failures; a pod that keeps
//! restarting while Ready is. The real helm writes the revisions, kwok plays the kubelet,
//! and the evaluator behind `check` judges round by round.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use support::cli::short_config;
use support::daemon::{Running, options};
use support::eval::{evaluator_with, install_then_upgrade, result, rounds_until, start_for};
use support::stack::stack;
use support::{alertmanager, helm, kube as tkube, wait};
use upgrade_guard::checks::Outcome;
use upgrade_guard::evaluation::Evaluator;
use upgrade_guard::verdict::{Report, Verdict};

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// The tests' durations (pending timeout 3 s, stall timeout 3 s, rounds every 300 ms) with
/// a readiness deadline of `deadline` and a bake window of `bake`.
fn config(deadline: &str, bake: &str) -> String {
    short_config(
        NO_PROMETHEUS,
        "",
        &format!(
            "releases:\n  - name: app\n    readiness_deadline: {deadline}\n    bake_window: {bake}\n"
        ),
    )
}

async fn evaluating(ns: &str, config_text: &str) -> Evaluator {
    let (mut evaluator, parsed, _) = evaluator_with(config_text).await;
    let start = start_for(ns, "app").await;
    let policy = parsed.policy_for(&start.release);
    evaluator.begin(start, policy);
    evaluator
}

/// Rounds until the bake is over and the verdict final; asserts that none was `failed`.
async fn never_failed_until_final(e: &mut Evaluator, seen: &mut Vec<Report>) -> Report {
    let last = rounds_until(e, seen, |r| {
        r.verdict == Verdict::Failed
            || (r.evaluated_at >= r.bake_ends
                && !matches!(r.verdict, Verdict::Progressing | Verdict::Inconclusive))
    })
    .await;
    assert_no_failure(seen);
    last
}

/// Upgrades `app` changing only a ConfigMap (the pods and Jobs stay as they are) and judges
/// the revision to its end, with `deadline` and `bake`: never failed, and degraded.
async fn values_only_upgrade_ends_degraded(n: &str, deadline: &str, bake: &str) -> Report {
    helm::ok(&[
        "upgrade",
        "app",
        &helm::chart("demo-app"),
        "-n",
        n,
        "--reuse-values",
        "--set",
        "note=values-only",
    ]);
    let mut e = evaluating(n, &config(deadline, bake)).await;
    let mut seen = Vec::new();
    let last = never_failed_until_final(&mut e, &mut seen).await;
    assert_eq!(last.verdict, Verdict::Degraded, "{last:#?}");
    last
}

fn assert_no_failure(seen: &[Report]) {
    if let Some(bad) = seen.iter().find(|r| r.verdict == Verdict::Failed) {
        panic!("a round failed the revision: {bad:#?}");
    }
}

fn past(r: &Report, after_start: Duration) -> bool {
    r.evaluated_at >= r.started + after_start
}

fn deployments(ns: &str, client: kube::Client) -> Api<Deployment> {
    Api::namespaced(client, ns)
}

async fn pods(ns: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(tkube::client().await, ns)
        .list(&ListParams::default().labels("app.kubernetes.io/instance=app"))
        .await
        .unwrap()
        .items
}

/// Issue 19.1, 19.2: slow image pulls (each new pod Pending longer than the pending
/// timeout), then, after the readiness deadline, an HPA-style scale-up and an eviction
/// whose replacements start as slowly. Today's code failed the revision on the first round
/// that saw `ready < desired` after the deadline, and on the first Pending pod past the
/// pending timeout; none of it is a failure: the revision ends healthy.
#[tokio::test]
async fn scale_up_eviction_and_slow_pulls_after_the_deadline_are_not_failures() {
    let ns = tkube::namespace("life-scale").await;
    let n = ns.name.as_str();
    // Pending 4 s (> the 3 s pending timeout), then not Ready 1 s, then Ready.
    install_then_upgrade(
        n,
        "app",
        &[
            "fault=SlowReady",
            "slowReady.startAfter=4s",
            "slowReady.readyAfter=1s",
        ],
    );
    let mut e = evaluating(n, &config("8s", "40s")).await;
    let mut seen = Vec::new();
    let deadline = Duration::from_secs(8);
    rounds_until(&mut e, &mut seen, |r| {
        past(r, deadline) && result(r, "rollout:Deployment/app").outcome == Outcome::Pass
    })
    .await;
    assert_no_failure(&seen);
    assert!(
        seen.iter().any(|r| result(r, "pending_pods")
            .summary
            .contains("starting (Pending 1)")),
        "the slow pull was seen as a slow start"
    );

    // An HPA adds a replica after the deadline; it pulls slowly too.
    let client = tkube::client().await;
    deployments(n, client.clone())
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    rounds_until(&mut e, &mut seen, |r| {
        let rollout = result(r, "rollout:Deployment/app");
        rollout.outcome == Outcome::Pass && rollout.value == Some(2.0)
    })
    .await;
    assert_no_failure(&seen);
    assert!(
        seen.iter().any(|r| result(r, "rollout:Deployment/app")
            .summary
            .contains("replica(s) are still within their own time")),
        "the scale-up was judged by the new replica's own age"
    );

    // A node drain evicts one pod; its replacement pulls slowly.
    let victim = pods(n).await.into_iter().next().unwrap();
    Api::<Pod>::namespaced(client, n)
        .delete(
            victim.metadata.name.as_deref().unwrap(),
            &DeleteParams::default().grace_period(0),
        )
        .await
        .unwrap();
    rounds_until(&mut e, &mut seen, |r| {
        result(r, "rollout:Deployment/app").outcome != Outcome::Pass
    })
    .await;
    rounds_until(&mut e, &mut seen, |r| {
        result(r, "rollout:Deployment/app").outcome == Outcome::Pass
    })
    .await;
    let last = never_failed_until_final(&mut e, &mut seen).await;
    assert_eq!(last.verdict, Verdict::Healthy, "{last:#?}");
}

/// Issue 19.3: a values-only upgrade (only a ConfigMap changes) of a release whose pod has
/// been crash-looping since before it. Today's code failed it at its first round (the
/// pod's clock started before the upgrade); the old breakage is reported, not charged: the
/// revision ends degraded, never failed.
#[tokio::test]
async fn a_pod_broken_before_a_values_only_upgrade_is_not_charged_to_it() {
    let ns = tkube::namespace("life-old-broken").await;
    let n = ns.name.as_str();
    let chart = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &chart,
        "-n",
        n,
        "--set",
        "fault=CrashLoopBackOff",
    ]);
    // The pod crash-loops, and has done so for more than a truncated second.
    tkube::crash_looping_for_two_seconds(n).await;
    let last = values_only_upgrade_ends_degraded(n, "4s", "8s").await;
    let pods_result = result(&last, "pending_pods");
    assert_eq!(pods_result.outcome, Outcome::Warn);
    assert!(
        pods_result
            .summary
            .contains("not Ready since before the upgrade (CrashLoopBackOff 1): not charged"),
        "{}",
        pods_result.summary
    );
    assert_eq!(
        result(&last, "rollout:Deployment/app").outcome,
        Outcome::Warn
    );
}

/// Issue 19.12: a pod OOM-killed every few minutes and Ready again in seconds. Today's code
/// computed restarts and never read them: healthy. Restarts of the revision's pods beyond
/// `max_restarts` (3) fail it, with the rollback.
#[tokio::test]
async fn a_ready_pod_that_keeps_restarting_fails_the_revision() {
    let ns = tkube::namespace("life-restarts").await;
    let n = ns.name.as_str();
    install_then_upgrade(n, "app", &[]);
    let mut e = evaluating(n, &config("4s", "60s")).await;
    let mut seen = Vec::new();
    rounds_until(&mut e, &mut seen, |r| {
        result(r, "rollout:Deployment/app").outcome == Outcome::Pass
    })
    .await;
    // The kubelet's report of a container that was OOM-killed four times and runs again.
    let api = Api::<Pod>::namespaced(tkube::client().await, n);
    let new_pod = wait::until(support::eval::WAIT, "the new pod Ready", || async {
        pods(n).await.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                && p.metadata.deletion_timestamp.is_none()
        })
    })
    .await;
    let name = new_pod.metadata.name.clone().unwrap();
    let restarted = tkube::restarted(new_pod, 4);
    api.replace_status(&name, &PostParams::default(), &restarted)
        .await
        .unwrap();
    let last = rounds_until(&mut e, &mut seen, |r| r.verdict == Verdict::Failed).await;
    let restarts = result(&last, "restarts");
    assert_eq!(
        (restarts.outcome, restarts.value),
        (Outcome::Fail, Some(4.0)),
        "{}",
        restarts.summary
    );
    assert!(
        restarts
            .summary
            .contains("4 container restart(s) since the upgrade, more than the 3 tolerated"),
        "{}",
        restarts.summary
    );
    assert_eq!(
        result(&last, "rollout:Deployment/app").outcome,
        Outcome::Pass
    );
    assert!(
        last.action.words().contains("helm rollback app 1"),
        "{}",
        last.action.words()
    );
}

/// Issue 19.8: a Deployment paused before the upgrade never rolls out until someone
/// resumes it. Today's code failed it at the readiness deadline; it is reported: degraded.
#[tokio::test]
async fn a_paused_rollout_is_reported_not_failed() {
    let ns = tkube::namespace("life-paused").await;
    let n = ns.name.as_str();
    let chart = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &chart,
        "-n",
        n,
        "--wait",
        "--timeout",
        "60s",
    ]);
    deployments(n, tkube::client().await)
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    support::eval::upgrade(n, "app", "1.1.0", &[]);
    let mut e = evaluating(n, &config("3s", "8s")).await;
    let mut seen = Vec::new();
    let last = never_failed_until_final(&mut e, &mut seen).await;
    assert_eq!(last.verdict, Verdict::Degraded, "{last:#?}");
    let rollout = result(&last, "rollout:Deployment/app");
    assert_eq!(rollout.outcome, Outcome::Warn);
    assert!(rollout.summary.contains("is paused"), "{}", rollout.summary);
}

/// Helm's record of revision `revision`: its payload decoded to JSON.
async fn record(ns: &str, revision: u32) -> (Secret, serde_json::Value) {
    let secret = Api::<Secret>::namespaced(tkube::client().await, ns)
        .get(&format!("sh.helm.release.v1.app.v{revision}"))
        .await
        .unwrap();
    let b64 = &secret.data.as_ref().unwrap()["release"].0;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    (secret, serde_json::from_str(&json).unwrap())
}

/// Issue 19.5: helm run from a laptop whose clock is five minutes behind. Today's code took
/// the upgrade's start from helm's clock, so its first round was already past the readiness
/// deadline and failed a rollout that had just begun. The upgrade is timed by the API
/// server (the record's creation), and the difference is said.
#[tokio::test]
async fn a_helm_clock_five_minutes_behind_does_not_shorten_the_deadline() {
    let ns = tkube::namespace("life-clock").await;
    let n = ns.name.as_str();
    install_then_upgrade(n, "app", &["fault=NotReady"]);
    // Rewrite the record as that helm would have written it.
    let (mut secret, mut release) = record(n, 2).await;
    let behind = Timestamp::now() - Duration::from_secs(300);
    release["info"]["last_deployed"] = behind.to_string().into();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(release.to_string().as_bytes()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    secret.data = Some(BTreeMap::from([(
        "release".to_string(),
        ByteString(payload.into_bytes()),
    )]));
    Api::<Secret>::namespaced(tkube::client().await, n)
        .replace(
            secret.metadata.name.clone().as_deref().unwrap(),
            &PostParams::default(),
            &secret,
        )
        .await
        .unwrap();

    let mut e = evaluating(n, &config("20s", "30s")).await;
    let mut seen = Vec::new();
    let first = rounds_until(&mut e, &mut seen, |_| true).await;
    assert_eq!(first.verdict, Verdict::Progressing, "{first:#?}");
    assert!(
        first
            .results
            .iter()
            .filter(|r| r.check.to_string().starts_with("rollout:"))
            .all(|r| r.summary.contains("left before the readiness deadline")),
        "{first:#?}"
    );
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.contains("behind the API server's: the upgrade is timed by the API server")),
        "{:?}",
        first.notes
    );
    assert!(
        first.started.duration_since(behind).as_secs() > 250,
        "timed from the record's creation: {} vs helm's {behind}",
        first.started
    );
}

/// Issue 19.7: a plain Job of the manifest that failed before the upgrade (Helm leaves an
/// unchanged Job alone). Today's code failed every later upgrade on it; it is reported as
/// an earlier run, not charged: a values-only upgrade ends degraded, never failed.
#[tokio::test]
async fn a_job_that_failed_before_the_upgrade_is_not_charged_to_it() {
    let ns = tkube::namespace("life-old-job").await;
    let n = ns.name.as_str();
    let chart = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &chart,
        "-n",
        n,
        "--set",
        "migration.enabled=true",
        "--set",
        "migration.hook=false",
        "--set",
        "migration.fail=true",
    ]);
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(tkube::client().await, n);
    let created = wait::until(support::eval::WAIT, "the Job failed", || async {
        let job = jobs.get_opt("app-migrate").await.ok()??;
        let failed = job
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True");
        failed.then(|| job.metadata.creation_timestamp.map(|t| t.0))?
    })
    .await;
    // Creation times are kept to the second: upgrade in a later second.
    wait::until(support::eval::WAIT, "a second after the Job", || async {
        (Timestamp::now().as_second() > created.as_second() + 1).then_some(())
    })
    .await;
    let last = values_only_upgrade_ends_degraded(n, "3s", "6s").await;
    let job = result(&last, "job:app-migrate");
    assert_eq!(job.outcome, Outcome::Warn);
    assert!(
        job.summary.contains("was created before this upgrade")
            && job.summary.contains("not this revision's run"),
        "{}",
        job.summary
    );
}

/// Issue 19.4: `helm upgrade --wait --timeout 3s` on a release that needs longer to be
/// Ready: Helm marks the revision failed (`context deadline exceeded`). Today's code failed
/// it at once; it is judged against the readiness deadline, with Helm's timeout as a
/// note, and ends healthy when its pods become Ready.
#[tokio::test]
async fn helms_own_wait_timeout_is_judged_against_the_readiness_deadline() {
    let ns = tkube::namespace("life-helm-timeout").await;
    let n = ns.name.as_str();
    let chart = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &chart,
        "-n",
        n,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let out = helm::shared().fails(&[
        "upgrade",
        "app",
        &chart,
        "-n",
        n,
        "--set",
        "image.tag=1.1.0",
        "--set",
        "fault=SlowReady",
        "--set",
        "slowReady.startAfter=1s",
        "--set",
        "slowReady.readyAfter=5s",
        "--wait",
        "--timeout",
        "3s",
    ]);
    assert!(out.contains("context deadline exceeded"), "{out}");
    let mut e = evaluating(n, &config("20s", "25s")).await;
    let mut seen = Vec::new();
    let last = never_failed_until_final(&mut e, &mut seen).await;
    assert_eq!(last.verdict, Verdict::Healthy, "{last:#?}");
    assert_eq!(last.status, upgrade_guard::release::ReleaseStatus::Failed);
    assert!(
        last.notes
            .iter()
            .any(|n| n.contains("helm's own --wait timed out")),
        "{:?}",
        last.notes
    );
}

/// The daemon's view of `release`.
async fn daemon_view(d: &Running, release: &str) -> Option<serde_json::Value> {
    d.releases().await["releases"]
        .as_array()?
        .iter()
        .find(|r| r["release"]["name"] == release)
        .cloned()
}

/// Issue 19.13: a revision healthy at the end of its bake whose pod starts crash-looping
/// afterwards (a leak that kills it at minute 20 of a 15-minute bake). Today's daemon
/// stopped looking at the end of the bake and never saw it; now the watch after the bake,
/// from the daemon's own stores, shows it and fires `UpgradeRegressedAfterBake` in
/// Alertmanager, naming the revision, and `mode: auto` does nothing about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_after_the_bake_is_alerted_never_rolled_back() {
    let ns = tkube::namespace("life-after-bake").await;
    let n = ns.name.as_str();
    let config = short_config(
        NO_PROMETHEUS,
        "  mode: auto\n  auto:\n    cooldown: 1s\n  after_bake:\n    watch_for: 10m\n    interval: 300ms\n",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             actions:\n  helm: {}\n  leader_election:\n    lease_duration: 3s\n    renew_deadline: 2s\n    retry_period: 300ms\n\
             notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n",
            stack().helm_bin.display(),
            stack().alertmanager_url
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    install_then_upgrade(n, "app", &[]);
    wait::until(
        support::eval::WAIT,
        "revision 2 healthy, then watched",
        || async {
            let v = daemon_view(&d, "app").await?;
            (v["revision"] == 2
                && v["judgement"]["verdict"] == "healthy"
                && v["judgement"]["final"] == true
                && v["after_bake"]["judgement"]["verdict"] == "healthy")
                .then_some(())
        },
    )
    .await;
    assert!(
        alertmanager::alerts(&[("namespace", n)]).await.is_empty(),
        "nothing to tell yet"
    );

    let current = pods(n)
        .await
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .unwrap();
    let name = current.metadata.name.clone().unwrap();
    Api::<Pod>::namespaced(tkube::client().await, n)
        .replace_status(
            &name,
            &PostParams::default(),
            &tkube::crash_looping(current),
        )
        .await
        .unwrap();
    let alert = wait::until(support::eval::WAIT, "UpgradeRegressedAfterBake", || async {
        alertmanager::alerts(&[("namespace", n), ("alertname", "UpgradeRegressedAfterBake")])
            .await
            .into_iter()
            .find(|a| a["labels"]["check"] == "restarts")
    })
    .await;
    assert_eq!(alert["labels"]["revision"], "2", "{alert:#}");
    assert_eq!(alert["labels"]["severity"], "critical", "{alert:#}");
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description
            .contains("4 container restart(s) since the bake ended, more than the 3 tolerated")
            && description.contains("upgrade-guard does not act on this automatically"),
        "{description}"
    );
    let v = daemon_view(&d, "app").await.unwrap();
    assert_eq!(v["after_bake"]["judgement"]["verdict"], "failed", "{v:#}");
    assert_eq!(
        v["judgement"]["verdict"], "healthy",
        "the bake's verdict stands: {v:#}"
    );
    // mode: auto did nothing: no action record, no rollback revision.
    assert!(v["automation"]["record"].is_null(), "{v:#}");
    let history = helm::ok(&["history", "app", "-n", n, "-o", "json"]);
    assert!(!history.contains("Rollback to"), "{history}");
    d.stop().await;
}
