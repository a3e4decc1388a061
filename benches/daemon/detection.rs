//! Detection latency beside its floor (issue 24, item 2): while the daemon runs at a scale,
//! a few releases (`mode: auto`, their workloads Ready) are upgraded twice, as helm writes
//! it: the first upgrade passes its bake (so there is a revision to roll back to), the
//! second fails during its bake. In some a pod enters CrashLoopBackOff, written through the
//! status subresource as a kubelet writes it; in the others the release's error metric
//! crosses its threshold in what Prometheus scrapes. For each: from the moment the failure
//! is observable to the failed verdict (the judgement's own time), the alert held by
//! Alertmanager (its `updatedAt`) and the start of the rollback (the action record's
//! intent). The floor is the evidence the configuration asks for plus one evaluation
//! interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use upgrade_guard::records::actions::RecordStore;
use upgrade_guard::release::ReleaseKey;

use crate::support::alertmanager::Private as Alertmanager;
use crate::support::exporter::Exporter;
use crate::support::prometheus::Prometheus;

/// Releases made to fail, per kind of failure.
pub const PER_KIND: usize = 3;
/// `pending_timeout` of the failing releases: how long a broken pod may stay so.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// The error metric's threshold (`max`) in the custom check.
pub const THRESHOLD: f64 = 10.0;
/// The metric every release exports.
pub const METRIC: &str = "bench_errors";
/// The bake window of the failing releases: the good upgrade passes it, the bad one fails
/// well inside it.
pub const BAKE_WINDOW: Duration = Duration::from_secs(45);
/// How long one step (a bake, a failure judged, alerted and acted on) may take.
const WITHIN: Duration = Duration::from_secs(180);
/// The revisions the releases were loaded with; the good upgrade is the next one.
const LOADED: u32 = 3;

/// The floor of the detection latency (issue 24): the evidence the configuration asks for
/// plus one evaluation interval, the longest a failure waits for the round that sees it.
pub fn floor(kind: Kind, interval: Duration) -> Duration {
    evidence(kind, interval) + interval
}

/// The evidence the configuration asks for: a broken pod's timeout, then the two rounds
/// every Kubernetes finding must hold; a metric's `for:` (two evaluation intervals).
pub fn evidence(kind: Kind, interval: Duration) -> Duration {
    match kind {
        Kind::Pod => PENDING_TIMEOUT + 2 * interval,
        Kind::Metric => 2 * interval,
    }
}

/// How a release is made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pod of its Deployment enters CrashLoopBackOff.
    Pod,
    /// Its error metric crosses the threshold.
    Metric,
}

impl Kind {
    pub fn words(self) -> &'static str {
        match self {
            Kind::Pod => "a pod enters CrashLoopBackOff",
            Kind::Metric => "the error metric crosses its threshold",
        }
    }
}

/// One release made to fail.
pub struct Failing {
    pub kind: Kind,
    pub ns: String,
    pub name: String,
}

/// The first of `idle` (releases not under evaluation when the daemon starts):
/// [`PER_KIND`] of each kind; none when there are fewer.
pub fn choose(idle: &[(String, String)]) -> Vec<Failing> {
    if idle.len() < 2 * PER_KIND {
        return Vec::new();
    }
    idle.iter()
        .take(2 * PER_KIND)
        .enumerate()
        .map(|(i, (ns, name))| Failing {
            kind: if i < PER_KIND {
                Kind::Pod
            } else {
                Kind::Metric
            },
            ns: ns.clone(),
            name: name.clone(),
        })
        .collect()
}

/// The entry of a failing release in `releases:`: acted on, baked [`BAKE_WINDOW`], a
/// broken pod judged after [`PENDING_TIMEOUT`].
pub fn release_entry(f: &Failing) -> String {
    format!(
        "  - name: {}\n    namespace: {}\n    mode: auto\n    bake_window: {}s\n    pending_timeout: {}s\n",
        f.name,
        f.ns,
        BAKE_WINDOW.as_secs(),
        PENDING_TIMEOUT.as_secs()
    )
}

/// The custom check every release has: its error metric, at most [`THRESHOLD`].
pub fn custom_check() -> String {
    format!(
        "  custom:\n    - name: errors\n      query: '{METRIC}{{namespace=\"{{{{namespace}}}}\",release=\"{{{{release}}}}\"}}'\n      max: {THRESHOLD}\n"
    )
}

/// The application's metrics for every release: 0 errors, but more than the threshold for
/// the first `failed` releases failing by metric.
pub fn exporter(
    names: &[(String, String)],
    failing: &[Failing],
    failed: Arc<AtomicUsize>,
) -> Exporter {
    let body = |bad: &dyn Fn(&str, &str) -> bool| {
        let mut out = format!("# TYPE {METRIC} gauge\n");
        for (ns, name) in names {
            let v = if bad(ns, name) { 5.0 * THRESHOLD } else { 0.0 };
            out.push_str(&format!(
                "{METRIC}{{namespace=\"{ns}\",release=\"{name}\"}} {v}\n"
            ));
        }
        out
    };
    let by_metric: Vec<&Failing> = failing.iter().filter(|f| f.kind == Kind::Metric).collect();
    let bodies: Vec<String> = (0..=by_metric.len())
        .map(|k| body(&|ns, name| by_metric[..k].iter().any(|f| f.ns == ns && f.name == name)))
        .collect();
    Exporter::start_with(Arc::new(move || {
        bodies
            .get(failed.load(Ordering::SeqCst))
            .or(bodies.last())
            .cloned()
    }))
}

fn second(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The status a kubelet writes for a pod whose container runs and is Ready.
fn running(now: Timestamp) -> serde_json::Value {
    serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": second(now)},
            {"type": "Ready", "status": "True", "lastTransitionTime": second(now)}
        ],
        "containerStatuses": [{
            "name": "gim", "image": "registry.invalid/gim:100.0.116", "imageID": "",
            "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": second(now)}}
        }]
    }})
}

async fn patch<K>(api: &Api<K>, name: &str, body: serde_json::Value, status: bool)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::default();
    let r = if status {
        api.patch_status(name, &params, &Patch::Merge(&body)).await
    } else {
        api.patch(name, &params, &Patch::Merge(&body)).await
    };
    r.unwrap_or_else(|e| panic!("patch {name}: {e}"));
}

/// The release's workloads as their controllers and kubelets leave them once rolled out:
/// the Deployment's ReplicaSet, the pods labelled with their template, every count and
/// condition Ready (what kube-controller-manager and a kubelet would write; none runs here).
pub async fn ready(client: &kube::Client, ns: &str, name: &str) {
    let now = Timestamp::now();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let hash = "5d8f7c9b4";
    patch(
        &deployments,
        name,
        serde_json::json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}}),
        false,
    )
    .await;
    let d = deployments.get(name).await.unwrap();
    let labels = serde_json::json!({"app.kubernetes.io/instance": name, "pod-template-hash": hash});
    let mut template = serde_json::to_value(&d.spec.as_ref().unwrap().template).unwrap();
    template["metadata"]["labels"] = labels.clone();
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                     "annotations": {"deployment.kubernetes.io/revision": "1"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                          "uid": d.metadata.uid, "controller": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template}
    }))
    .unwrap();
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let generation = d.metadata.generation.unwrap_or(1);
    patch(
        &deployments,
        name,
        serde_json::json!({"status": {"observedGeneration": generation, "replicas": 2,
            "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
        true,
    )
    .await;
    for pod in [format!("{name}-{hash}-a1"), format!("{name}-{hash}-b2")] {
        of_template_and_running(&pods, &pod, "pod-template-hash", hash, now).await;
    }
    let sts_name = format!("{name}-state");
    let revision = format!("{sts_name}-7b9c6d5f8");
    let sts = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let generation = sts.get(&sts_name).await.unwrap().metadata.generation;
    patch(
        &sts,
        &sts_name,
        serde_json::json!({"status": {"observedGeneration": generation.unwrap_or(1), "replicas": 1,
            "updatedReplicas": 1, "currentReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
            "currentRevision": revision, "updateRevision": revision}}),
        true,
    )
    .await;
    let pod = format!("{sts_name}-0");
    of_template_and_running(&pods, &pod, "controller-revision-hash", &revision, now).await;
}

/// Pod `pod` labelled as of its controller's current template (`label=value`), running and
/// Ready since `now`.
async fn of_template_and_running(
    pods: &Api<Pod>,
    pod: &str,
    label: &str,
    value: &str,
    now: Timestamp,
) {
    patch(
        pods,
        pod,
        serde_json::json!({"metadata": {"labels": {label: value}}}),
        false,
    )
    .await;
    patch(pods, pod, running(now), true).await;
}

/// Pod `<name>-5d8f7c9b4-a1` starts crash-looping at `at` (a whole second, as Kubernetes
/// keeps it): its container waiting in CrashLoopBackOff after failed runs, the pod no longer
/// Ready, the Deployment counting one Ready replica fewer.
async fn crash(client: &kube::Client, ns: &str, name: &str, at: Timestamp) {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    patch(
        &pods,
        &format!("{name}-5d8f7c9b4-a1"),
        serde_json::json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": second(at)},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": second(at)}
            ],
            "containerStatuses": [{
                "name": "gim", "image": "registry.invalid/gim:100.0.116", "imageID": "",
                "ready": false, "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                             "startedAt": second(at), "finishedAt": second(at)}}
            }]
        }}),
        true,
    )
    .await;
    patch(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        name,
        serde_json::json!({"status": {"readyReplicas": 1, "availableReplicas": 1}}),
        true,
    )
    .await;
}

/// When each step happened for one failing release.
pub struct Detected {
    pub kind: Kind,
    /// The failure observable: the pod's status written, the first sample over the threshold.
    pub observable: Timestamp,
    /// The failed verdict's judgement.
    pub verdict: Timestamp,
    /// Alertmanager held `UpgradeFailed`.
    pub alert: Timestamp,
    /// The rollback's intent written.
    pub rollback: Timestamp,
}

/// What the daemon and the Prometheus of one scale are, for [`fail_and_follow`].
pub struct Watched<'a> {
    pub client: &'a kube::Client,
    pub daemon_url: &'a str,
    pub prometheus: &'a Prometheus,
    pub alertmanager: &'a Alertmanager,
    /// Where the action records are (`state.namespace`).
    pub state_namespace: &'a str,
}

/// What is seen of one release so far.
#[derive(Default)]
struct Seen {
    verdict: Option<Timestamp>,
    alert: Option<Timestamp>,
    rollback: Option<Timestamp>,
    /// The daemon's last word on the automatic action (for a run that fails).
    automation: String,
}

async fn look(w: &Watched<'_>, f: &Failing, seen: &mut Seen) {
    if seen.verdict.is_none() || seen.rollback.is_none() {
        let view = &view(w, f).await;
        seen.automation = view["automation"].to_string();
        let j = &view["judgement"];
        if seen.verdict.is_none() && j["verdict"] == "failed" {
            seen.verdict = j["evaluated_at"].as_str().and_then(|t| t.parse().ok());
        }
    }
    if seen.alert.is_none() {
        seen.alert = w
            .alertmanager
            .alerts(&[
                ("alertname", "UpgradeFailed"),
                ("namespace", &f.ns),
                ("release", &f.name),
            ])
            .await
            .first()
            .and_then(|a| a["updatedAt"].as_str()?.parse().ok());
    }
    if seen.rollback.is_none() {
        let records = RecordStore::new(w.client.clone(), w.state_namespace)
            .load(&ReleaseKey::new(&f.ns, &f.name))
            .await
            .map(|s| s.records)
            .unwrap_or_default();
        seen.rollback = records
            .iter()
            .filter(|r| r.bad_revision == LOADED + 2)
            .map(|r| r.started)
            .min();
    }
}

/// The first sample of the release's metric over the threshold, as Prometheus stored it.
async fn first_over(prometheus: &Prometheus, f: &Failing) -> Timestamp {
    let data = prometheus
        .query(
            &format!(
                "{METRIC}{{namespace=\"{}\",release=\"{}\"}}[5m]",
                f.ns, f.name
            ),
            None,
        )
        .await;
    data["result"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| {
            v[1].as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|v| v > THRESHOLD)
        })
        .and_then(|v| Timestamp::from_millisecond((v[0].as_f64()? * 1000.0) as i64).ok())
        .unwrap_or_else(|| panic!("no sample of {}/{} over {THRESHOLD}", f.ns, f.name))
}

/// The daemon's view of a release.
async fn view(w: &Watched<'_>, f: &Failing) -> serde_json::Value {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/releases?namespace={}&release={}",
            w.daemon_url, f.ns, f.name
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["releases"][0].clone()
}

/// Upgrades every failing release to `revision` (as helm's storage driver writes it) and
/// waits until the daemon's view of each satisfies `done`.
async fn upgrade_until(
    w: &Watched<'_>,
    failing: &[Failing],
    revision: u32,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    for f in failing {
        crate::support::tracking_load::upgrade(w.client, &f.ns, &f.name, revision, 10, 14 * 1024)
            .await;
    }
    let done = &done;
    crate::support::wait::until_seen(WITHIN, what, || async move {
        let mut not_yet = Vec::new();
        for f in failing {
            let v = view(w, f).await;
            if !(v["revision"] == revision && done(&v)) {
                not_yet.push(format!(
                    "{}/{} revision {} judged {}",
                    f.ns, f.name, v["revision"], v["judgement"]["verdict"]
                ));
            }
        }
        if not_yet.is_empty() {
            Ok(())
        } else {
            Err(not_yet.join("; "))
        }
    })
    .await;
}

/// Upgrades the failing releases once (the upgrade passes its bake: the revision a rollback
/// goes back to), then again, and makes them fail during that second bake: see
/// [`fail_and_follow`].
pub async fn upgrade_and_fail(
    w: &Watched<'_>,
    failing: &[Failing],
    metric_failed: &AtomicUsize,
) -> Vec<Detected> {
    if failing.is_empty() {
        return Vec::new();
    }
    upgrade_until(w, failing, LOADED + 1, "the good upgrades' bakes", |v| {
        v["judgement"]["final"] == true && v["judgement"]["verdict"] == "healthy"
    })
    .await;
    upgrade_until(w, failing, LOADED + 2, "the bad upgrades judged", |v| {
        v["judgement"]["verdict"] == "progressing"
    })
    .await;
    fail_and_follow(w, failing, metric_failed).await
}

/// Makes the releases of `failing` fail one second apart per kind (the `i`-th pod and the
/// `i`-th metric together, at a whole second, as Kubernetes keeps a status time to the
/// second; a second apart, so that the failures fall at different points of the
/// evaluation round), then follows each until its verdict, alert and rollback are seen.
async fn fail_and_follow(
    w: &Watched<'_>,
    failing: &[Failing],
    metric_failed: &AtomicUsize,
) -> Vec<Detected> {
    let first = Timestamp::from_second(Timestamp::now().as_second() + 1).unwrap();
    let pods: Vec<&Failing> = failing.iter().filter(|f| f.kind == Kind::Pod).collect();
    let mut crashed = Vec::new();
    for i in 0..PER_KIND {
        let at = first + jiff::SignedDuration::from_secs(i as i64);
        let wait = at.duration_since(Timestamp::now());
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
        metric_failed.store(i + 1, Ordering::SeqCst);
        if let Some(f) = pods.get(i) {
            crash(w.client, &f.ns, &f.name, at).await;
            crashed.push((f.name.clone(), at));
        }
    }
    let mut seen: Vec<Seen> = failing.iter().map(|_| Seen::default()).collect();
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let mut missing = Vec::new();
        for (f, s) in failing.iter().zip(seen.iter_mut()) {
            look(w, f, s).await;
            for (what, t) in [
                ("verdict", s.verdict),
                ("alert", s.alert),
                ("rollback", s.rollback),
            ] {
                if t.is_none() {
                    missing.push(format!(
                        "{}/{}: no {what} (automation: {})",
                        f.ns, f.name, s.automation
                    ));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "within {WITHIN:?} of the failures, still {}",
            missing.join("; ")
        );
        tokio::time::sleep(crate::support::wait::POLL_INTERVAL).await;
    }
    let mut out = Vec::new();
    for (f, s) in failing.iter().zip(seen) {
        let observable = match f.kind {
            Kind::Pod => crashed.iter().find(|(n, _)| *n == f.name).unwrap().1,
            Kind::Metric => first_over(w.prometheus, f).await,
        };
        out.push(Detected {
            kind: f.kind,
            observable,
            verdict: s.verdict.unwrap(),
            alert: s.alert.unwrap(),
            rollback: s.rollback.unwrap(),
        });
    }
    out
}
