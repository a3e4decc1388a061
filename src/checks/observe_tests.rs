//! Reading objects as the API server returns them (inline JSON).

use serde_json::json;

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::SelectorExt as _;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-25T12:00:00Z";

fn pod_with(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "gim-0", "creationTimestamp": "2026-11-25T11:50:00Z"},
        "status": status,
    }))
    .unwrap()
}

fn problem(status: serde_json::Value) -> Option<PodProblem> {
    pod(&pod_with(status), t(NOW)).and_then(|p| p.problem)
}

fn waiting(reason: &str) -> serde_json::Value {
    json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
           "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                                  "restartCount": 0, "state": {"waiting": {"reason": reason}}}]})
}

#[test]
fn pods_are_classified_like_kubectl_shows_them() {
    assert_eq!(
        problem(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]})),
        Some(PodProblem::Unschedulable)
    );
    assert_eq!(
        problem(waiting("ImagePullBackOff")),
        Some(PodProblem::ImagePullBackOff)
    );
    assert_eq!(
        problem(waiting("ErrImagePull")),
        Some(PodProblem::ErrImagePull)
    );
    assert_eq!(
        problem(waiting("CreateContainerConfigError")),
        Some(PodProblem::CreateContainerConfigError)
    );
    assert_eq!(
        problem(waiting("CrashLoopBackOff")),
        Some(PodProblem::CrashLoopBackOff)
    );
    assert_eq!(
        problem(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})
        ),
        Some(PodProblem::OomKilled)
    );
    assert_eq!(
        problem(
            json!({"phase": "Pending", "conditions": [{"type": "Initialized", "status": "False"}],
            "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false,
                "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
        ),
        Some(PodProblem::InitContainerFailing)
    );
    assert_eq!(
        problem(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"running": {}}}]})
        ),
        Some(PodProblem::NotReady)
    );
    assert_eq!(
        problem(json!({"phase": "Pending"})),
        Some(PodProblem::Pending)
    );
    // An image pulling, a volume attaching: the kubelet says ContainerCreating.
    assert_eq!(
        problem(waiting("ContainerCreating")),
        Some(PodProblem::ContainerCreating)
    );
}

#[test]
fn ready_pods_have_no_problem_finished_and_terminating_pods_are_not_seen() {
    let ready = pod(
        &pod_with(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true,
                "restartCount": 2, "state": {"running": {}}}]}),
        ),
        t(NOW),
    )
    .unwrap();
    assert_eq!(
        (ready.problem, ready.restarts, ready.created),
        (None, 2, t("2026-11-25T11:50:00Z"))
    );
    assert_eq!(pod(&pod_with(json!({"phase": "Succeeded"})), t(NOW)), None);
    assert_eq!(
        pod(
            &pod_with(json!({"phase": "Failed", "reason": "Evicted"})),
            t(NOW)
        ),
        None
    );
    let mut terminating = pod_with(waiting("CrashLoopBackOff"));
    terminating.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(NOW)));
    assert_eq!(pod(&terminating, t(NOW)), None);
}

#[test]
fn not_ready_since_is_the_later_of_creation_and_the_ready_transition() {
    let p = pod(&pod_with(waiting("ImagePullBackOff")), t(NOW)).unwrap();
    assert_eq!(p.not_ready_since, t("2026-11-25T11:50:00Z"));
    let p = pod(
        &pod_with(json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-25T11:58:00Z"}]})),
        t(NOW),
    )
    .unwrap();
    assert_eq!(p.not_ready_since, t("2026-11-25T11:58:00Z"));
}

#[test]
fn deployments_are_read_with_their_progress() {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "gim", "generation": 3},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "gim", "tier": "core"}},
                 "template": {}},
        "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1,
                   "availableReplicas": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]},
    }))
    .unwrap();
    let w = deployment(&d);
    assert_eq!(
        (
            w.generation,
            w.observed_generation,
            w.desired,
            w.updated,
            w.total,
            w.ready
        ),
        (3, 3, 2, 1, 2, 1)
    );
    assert!(w.progress_deadline_exceeded);
    assert_eq!(
        w.progress_deadline,
        Some(std::time::Duration::from_secs(600))
    );
    assert_eq!(
        w.selector.as_ref().map(|s| s.to_string()).as_deref(),
        Some("app=gim,tier=core")
    );
    assert_eq!(w.id(), "Deployment/gim");
}

/// Found in review: a selector with `matchExpressions` found no pods.
#[test]
fn selectors_with_match_expressions_are_kept() {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "gim"},
        "spec": {"progressDeadlineSeconds": 3600, "template": {}, "selector": {
            "matchLabels": {"app": "gim"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["core", "edge"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}},
    }))
    .unwrap();
    let w = deployment(&d);
    let selector = w.selector.expect("a selector");
    let labels = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(selector.matches(&labels(&[("app", "gim"), ("tier", "edge")])));
    assert!(!selector.matches(&labels(&[("app", "gim"), ("tier", "batch")])));
    assert!(!selector.matches(&labels(&[
        ("app", "gim"),
        ("tier", "core"),
        ("canary", "1")
    ])));
    let text = selector.to_string();
    assert!(text.contains("tier in (core,edge)"), "{text}");
    assert!(text.contains("!canary"), "{text}");
    assert_eq!(
        w.progress_deadline,
        Some(std::time::Duration::from_secs(3600))
    );
    // An empty selector would select every pod of the namespace: none instead.
    let empty: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "x"}, "spec": {"template": {}, "selector": {}}}))
    .unwrap();
    assert_eq!(deployment(&empty).selector, None);
}

/// Issue 7.1: a container between two crashes shows `Running`; restarts tell the loop.
#[test]
fn restart_loops_and_starting_pods_are_told_apart() {
    let running = |restarts: i32, last_exit: Option<(i32, &str)>| {
        let mut c = json!({"name": "gim", "image": "x", "imageID": "", "ready": false,
                           "restartCount": restarts, "state": {"running": {}}});
        if let Some((code, reason)) = last_exit {
            c["lastState"] = json!({"terminated": {"exitCode": code, "reason": reason}});
        }
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
               "containerStatuses": [c]})
    };
    assert_eq!(problem(running(0, None)), Some(PodProblem::NotReady));
    assert_eq!(
        problem(running(1, Some((1, "Error")))),
        Some(PodProblem::NotReady),
        "one crash is not a loop"
    );
    assert_eq!(
        problem(running(RESTART_LOOP_MIN_RESTARTS, Some((1, "Error")))),
        Some(PodProblem::CrashLoopBackOff)
    );
    assert_eq!(
        problem(running(5, Some((137, "OOMKilled")))),
        Some(PodProblem::OomKilled)
    );
    assert_eq!(
        problem(running(5, Some((0, "Completed")))),
        Some(PodProblem::NotReady),
        "clean exits are not crashes"
    );
    let initializing = json!({"phase": "Pending",
        "conditions": [{"type": "Initialized", "status": "False"}],
        "initContainerStatuses": [{"name": "wait-db", "image": "x", "imageID": "", "ready": false,
                                   "restartCount": 0, "state": {"running": {}}}],
        "containerStatuses": [{"name": "gim", "image": "x", "imageID": "", "ready": false,
                               "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]});
    assert_eq!(problem(initializing), Some(PodProblem::Initializing));
    assert!(PodProblem::Initializing.is_slow_start());
    assert!(PodProblem::NotReady.is_slow_start());
    assert!(
        PodProblem::Pending.is_slow_start(),
        "waiting to be scheduled"
    );
    assert!(!PodProblem::CrashLoopBackOff.is_slow_start());
}

#[test]
fn jobs_are_read_with_their_outcome() {
    let j: Job = serde_json::from_value(json!({
        "metadata": {"name": "gim-migrate"},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }))
    .unwrap();
    let o = job(&j);
    assert_eq!(o.failed.as_deref(), Some("BackoffLimitExceeded"));
    assert!(!o.succeeded);
    assert_eq!((o.instance, o.helm_release), (None, None));
    let j: Job = serde_json::from_value(json!({
        "metadata": {"name": "gim-migrate",
            "labels": {"app.kubernetes.io/instance": "gim"},
            "annotations": {"meta.helm.sh/release-name": "gim", "meta.helm.sh/release-namespace": "gim"}},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }))
    .unwrap();
    let o = job(&j);
    assert!(o.succeeded);
    assert_eq!(o.instance.as_deref(), Some("gim"));
    assert_eq!(o.helm_release, Some(("gim".into(), "gim".into())));
}

#[test]
fn pods_belong_to_their_controller_not_to_whatever_the_selector_matches() {
    let owned = |kind: &str, name: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "ownerReferences": [
            {"apiVersion": "v1", "kind": kind, "name": name, "uid": "u", "controller": true}]}}))
        .unwrap()
    };
    assert!(controlled_by(
        &owned("ReplicaSet", "gim-5d8f9"),
        WorkloadKind::Deployment,
        "gim"
    ));
    assert!(!controlled_by(
        &owned("ReplicaSet", "gim-monitoring-5d8f9"),
        WorkloadKind::Deployment,
        "gim"
    ));
    assert!(!controlled_by(
        &owned("Job", "gim-migrate"),
        WorkloadKind::Deployment,
        "gim"
    ));
    assert!(controlled_by(
        &owned("StatefulSet", "gim"),
        WorkloadKind::StatefulSet,
        "gim"
    ));
    assert!(!controlled_by(
        &pod_with(json!({})),
        WorkloadKind::Deployment,
        "gim"
    ));
}

/// Issue 19.3: only the current template's pods are the revision's. A Deployment's is its
/// new ReplicaSet (the one it controls carrying its own revision), a StatefulSet's its
/// `updateRevision`, a DaemonSet's its generation.
#[test]
fn the_current_template_is_found_per_kind() {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app", "uid": "d-1",
                     "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "paused": true, "template": {}},
    }))
    .unwrap();
    let rs = |name: &str, owner: &str, revision: &str, hash: &str| -> ObjectMeta {
        serde_json::from_value(json!({
            "name": name,
            "labels": {"pod-template-hash": hash},
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "app",
                                 "uid": owner, "controller": true}],
        }))
        .unwrap()
    };
    let (old, new, foreign) = (
        rs("app-aaa", "d-1", "2", "aaa"),
        rs("app-bbb", "d-1", "3", "bbb"),
        rs("app-ccc", "other", "3", "ccc"),
    );
    assert_eq!(
        new_replica_set_template(&d, &[&old, &foreign, &new]),
        Some(("pod-template-hash".into(), "bbb".into()))
    );
    assert_eq!(new_replica_set_template(&d, &[&old, &foreign]), None);
    let mut obs = deployment(&d);
    assert!(obs.paused);
    obs.template = new_replica_set_template(&d, &[&new]);
    let pod_of = |hash: &str| -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "labels": {"pod-template-hash": hash}}}),
        )
        .unwrap()
    };
    assert!(of_current_template(&pod_of("bbb"), &obs));
    assert!(!of_current_template(&pod_of("aaa"), &obs));
    obs.template = None;
    assert!(
        of_current_template(&pod_of("aaa"), &obs),
        "unknown: every pod counts"
    );

    let s: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db", "template": {},
                 "updateStrategy": {"type": "OnDelete"}},
        "status": {"replicas": 3, "updateRevision": "db-7c9"},
    }))
    .unwrap();
    let obs = stateful_set(&s);
    assert_eq!(
        (obs.template, obs.on_delete),
        (
            Some(("controller-revision-hash".into(), "db-7c9".into())),
            true
        )
    );
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent", "generation": 4},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {}},
        "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                   "numberMisscheduled": 0, "numberReady": 1},
    }))
    .unwrap();
    assert_eq!(
        daemon_set(&ds).template,
        Some(("pod-template-generation".into(), "4".into()))
    );
}
