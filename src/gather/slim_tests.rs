use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::checks::observe;
use crate::release::summary::WorkloadKind;

/// `value` decoded as the k8s-openapi type and as the slim one, trimmed as the stores keep
/// it.
fn both<F: DeserializeOwned, S: DeserializeOwned + Slim>(value: &Value) -> (F, S) {
    let mut slim: S = serde_json::from_value(value.clone()).unwrap();
    slim.trim();
    (serde_json::from_value(value.clone()).unwrap(), slim)
}

/// `m` as the stores keep it: without its resource version.
fn without_resource_version(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut m = m.clone();
    m.resource_version = None;
    m
}

fn meta(name: &str) -> Value {
    json!({
        "name": name, "namespace": "gim", "uid": format!("uid-{name}"), "generation": 4,
        "resourceVersion": "981", "creationTimestamp": "2026-12-03T10:00:00Z",
        "labels": {"app": "gim", "pod-template-hash": "7d9f", "controller-revision-hash": "gim-5c"},
        "annotations": {"deployment.kubernetes.io/revision": "3", "meta.helm.sh/release-name": "gim"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gim-7d9f",
                             "uid": "uid-rs", "controller": true}]
    })
}

/// A pod template as the API returns it: what the slim types never keep.
fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "gim"}},
        "spec": {"containers": [{"name": "gim", "image": "gim:100.0.1",
                 "env": [{"name": "A", "value": "x".repeat(2000)}],
                 "resources": {"limits": {"memory": "4Gi"}}}]}
    })
}

fn selector() -> Value {
    json!({"matchLabels": {"app": "gim"},
           "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["cache"]}]})
}

fn now() -> Timestamp {
    "2026-12-03T10:30:00Z".parse().unwrap()
}

#[test]
fn a_deployment_observed_from_its_slim_form_is_observed_the_same() {
    let v = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("gim"),
        "spec": {"replicas": 3, "selector": selector(), "template": template(),
                 "progressDeadlineSeconds": 900, "paused": true,
                 "strategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 4, "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3,
                   "availableReplicas": 3,
                   "conditions": [{"type": "Progressing", "status": "False",
                                   "reason": "ProgressDeadlineExceeded"}]}
    });
    let (full, slim): (Deployment, SlimDeployment) = both(&v);
    assert_eq!(
        observe::deployment(&slim.full()),
        observe::deployment(&full)
    );
    // Everything but the resource version (the watch keeps its own).
    let expected = without_resource_version(&full.metadata);
    assert_eq!(slim.full().metadata, expected);
    assert_eq!(slim.full().status, full.status);
    let spec = slim.full().spec.unwrap();
    assert_eq!(
        spec.template,
        Default::default(),
        "the pod template is never kept"
    );
    assert_eq!(spec.replicas, Some(3));
}

#[test]
fn a_stateful_set_and_a_daemon_set_are_observed_the_same() {
    let v = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("gim-db"),
        "spec": {"replicas": 2, "selector": selector(), "template": template(), "serviceName": "db",
                 "updateStrategy": {"type": "OnDelete"},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}}]},
        "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 2,
                   "availableReplicas": 2, "currentRevision": "gim-db-1", "updateRevision": "gim-db-2"}
    });
    let (full, slim): (StatefulSet, SlimStatefulSet) = both(&v);
    assert_eq!(
        observe::stateful_set(&slim.full()),
        observe::stateful_set(&full)
    );
    let v = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("agent"),
        "spec": {"selector": selector(), "template": template(),
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
        "status": {"observedGeneration": 4, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                   "updatedNumberScheduled": 2, "numberReady": 2, "numberAvailable": 2,
                   "numberMisscheduled": 0}
    });
    let (full, slim): (DaemonSet, SlimDaemonSet) = both(&v);
    assert_eq!(
        observe::daemon_set(&slim.full()),
        observe::daemon_set(&full)
    );
}

#[test]
fn a_pod_is_observed_the_same_without_its_spec() {
    let v = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("gim-7d9f-abcde"),
        "spec": template()["spec"].clone(),
        "status": {"phase": "Running", "startTime": "2026-12-03T10:00:05Z",
                   "conditions": [{"type": "Ready", "status": "False",
                                   "lastTransitionTime": "2026-12-03T10:00:05Z"}],
                   "containerStatuses": [{"name": "gim", "image": "gim:100.0.1", "imageID": "sha",
                                          "ready": false, "restartCount": 4,
                                          "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                          "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
    });
    let (full, slim): (Pod, SlimPod) = both(&v);
    let pod = slim.full();
    assert_eq!(pod.spec, None);
    assert_eq!(observe::pod(&pod, now()), observe::pod(&full, now()));
    assert!(observe::pod(&pod, now()).is_some());
    // Every problem a pod can show is read the same from the slim status.
    let waiting = |reason: &str| json!({"waiting": {"reason": reason, "message": "m"}});
    let container = |state: Value, last: Value, restarts: u32, ready: bool| {
        json!({"name": "c", "image": "i", "imageID": "x", "ready": ready,
               "restartCount": restarts, "state": state, "lastState": last})
    };
    let oom = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
    let failed = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    let running = json!({"running": {"startedAt": "2026-12-03T10:00:05Z"}});
    let statuses = [
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
               "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        json!({"phase": "Running", "containerStatuses": [container(waiting("CrashLoopBackOff"), oom.clone(), 5, false)]}),
        json!({"phase": "Running", "containerStatuses": [container(running.clone(), failed.clone(), 3, false)]}),
        json!({"phase": "Running", "containerStatuses": [container(running.clone(), json!({}), 0, true)],
               "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-03T10:01:00Z"}]}),
        json!({"phase": "Pending", "containerStatuses": [container(waiting("ImagePullBackOff"), json!({}), 0, false)]}),
        json!({"phase": "Pending", "containerStatuses": [container(waiting("ErrImagePull"), json!({}), 0, false)]}),
        json!({"phase": "Pending", "containerStatuses": [container(waiting("CreateContainerConfigError"), json!({}), 0, false)]}),
        json!({"phase": "Pending", "containerStatuses": [container(waiting("PodInitializing"), json!({}), 0, false)],
               "initContainerStatuses": [container(running.clone(), json!({}), 0, false)]}),
        json!({"phase": "Pending", "initContainerStatuses": [container(waiting("CrashLoopBackOff"), failed.clone(), 4, false)]}),
        json!({"phase": "Pending", "initContainerStatuses": [container(failed.clone(), json!({}), 0, false)]}),
        json!({"phase": "Pending", "containerStatuses": [container(waiting("ContainerCreating"), json!({}), 0, false)]}),
        json!({"phase": "Running"}),
        json!({"phase": "Failed", "reason": "Evicted"}),
        json!({}),
    ];
    let mut problems = std::collections::BTreeSet::new();
    for status in statuses {
        let mut v = v.clone();
        v["status"] = status.clone();
        let (full, slim): (Pod, SlimPod) = both(&v);
        let seen = observe::pod(&slim.full(), now());
        assert_eq!(seen, observe::pod(&full, now()), "{status}");
        problems.insert(format!("{:?}", seen.map(|o| o.problem)));
    }
    assert!(
        problems.len() >= 10,
        "the statuses show different problems: {problems:?}"
    );
    let (workload, _): (Deployment, SlimDeployment) = both(&json!({
        "metadata": meta("gim"), "spec": {"selector": selector(), "template": template()}
    }));
    let mut w = observe::deployment(&workload);
    let (rs, slim_rs): (ReplicaSet, SlimReplicaSet) = both(&json!({
        "metadata": {"name": "gim-7d9f", "namespace": "gim", "labels": {"pod-template-hash": "7d9f"},
                     "annotations": {"deployment.kubernetes.io/revision": "3"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "gim", "uid": "uid-gim", "controller": true}]},
        "spec": {"selector": selector(), "template": template()}
    }));
    let from_slim = observe::new_replica_set_template(&workload, &[&slim_rs.full().metadata]);
    assert_eq!(
        from_slim,
        observe::new_replica_set_template(&workload, &[&rs.metadata])
    );
    assert!(
        from_slim.is_some(),
        "the template of the new ReplicaSet is found"
    );
    w.template = from_slim;
    assert!(observe::of_current_template(&pod, &w));
    assert_eq!(
        observe::controlled_by(&pod, WorkloadKind::Deployment, "gim"),
        observe::controlled_by(&full, WorkloadKind::Deployment, "gim")
    );
}

#[test]
fn a_job_is_observed_the_same() {
    let v = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta("gim-migrate"),
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 600, "template": template()},
        "status": {"failed": 1, "startTime": "2026-12-03T10:00:00Z",
                   "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                   "lastTransitionTime": "2026-12-03T10:02:00Z"}]}
    });
    let (full, slim): (Job, SlimJob) = both(&v);
    assert_eq!(observe::job(&slim.full()), observe::job(&full));
}

#[test]
fn slim_types_are_watched_at_the_paths_of_their_kinds() {
    use kube::Resource;
    fn same<S: Resource<DynamicType = ()>, F: Resource<DynamicType = ()>>() {
        assert_eq!(S::url_path(&(), Some("gim")), F::url_path(&(), Some("gim")));
        assert_eq!(S::url_path(&(), None), F::url_path(&(), None));
        assert_eq!(S::kind(&()), F::kind(&()));
        assert_eq!(S::api_version(&()), F::api_version(&()));
    }
    same::<SlimPod, Pod>();
    same::<SlimReplicaSet, ReplicaSet>();
    same::<SlimDeployment, Deployment>();
    same::<SlimStatefulSet, StatefulSet>();
    same::<SlimDaemonSet, DaemonSet>();
    same::<SlimJob, Job>();
    assert_eq!(
        SlimPod::url_path(&(), Some("gim")),
        "/api/v1/namespaces/gim/pods"
    );
}

#[test]
fn slim_objects_are_a_fraction_of_the_full_ones() {
    use std::mem::size_of;
    // What each stored object costs before any of its strings.
    assert!(size_of::<SlimPod>() * 2 < size_of::<Pod>());
    assert!(size_of::<SlimDeployment>() * 3 < size_of::<Deployment>());
    assert!(size_of::<SlimStatefulSet>() * 3 < size_of::<StatefulSet>());
    assert!(size_of::<SlimReplicaSet>() * 4 < size_of::<ReplicaSet>());
    assert!(size_of::<SlimJob>() * 3 < size_of::<Job>());
}

#[test]
fn trimmed_objects_keep_their_labels_and_only_the_annotations_the_checks_read() {
    let mut v = json!({"metadata": meta("gim-7d9f-x1"), "status": {"phase": "Running"}});
    v["metadata"]["annotations"]["checksum/config"] = json!("abc");
    v["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update"}]);
    let (full, slim): (Pod, SlimPod) = both(&v);
    assert_eq!(
        slim.metadata.labels, None,
        "the labels moved out of the map"
    );
    assert_eq!(slim.labels().get("pod-template-hash"), Some("7d9f"));
    assert_eq!(slim.labels().get("tier"), None);
    let back = slim.full();
    assert_eq!(back.metadata.labels, full.metadata.labels);
    let kept: Vec<&String> = back
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kept,
        [
            "deployment.kubernetes.io/revision",
            "meta.helm.sh/release-name"
        ]
    );
    assert_eq!(back.metadata.managed_fields, None);
    assert_eq!(back.metadata.uid, full.metadata.uid, "the uid stays");
    assert_eq!(
        back.metadata.owner_references,
        full.metadata.owner_references
    );

    // With no annotation the checks read, none is kept (no empty map).
    let mut v = json!({"metadata": meta("gim-state-0")});
    v["metadata"]["annotations"] = json!({"checksum/config": "abc"});
    let (_, slim): (Pod, SlimPod) = both(&v);
    assert_eq!(slim.full().metadata.annotations, None);
}

#[test]
fn labels_match_every_kind_of_selector_as_kube_matches_a_label_map() {
    use kube::core::{Expression, Selector, SelectorExt};
    let map: std::collections::BTreeMap<String, String> = [
        ("app", "gim"),
        ("pod-template-hash", "7d9f"),
        ("tier", "db"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let labels = Labels::of(Some(map.clone()));
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    let expressions = [
        Expression::Equal("app".into(), "gim".into()),
        Expression::Equal("app".into(), "gsp".into()),
        Expression::Equal("zone".into(), "a".into()),
        Expression::NotEqual("app".into(), "gim".into()),
        Expression::NotEqual("zone".into(), "a".into()),
        Expression::In("tier".into(), set(&["db", "cache"])),
        Expression::In("tier".into(), set(&["cache"])),
        Expression::In("zone".into(), set(&["a"])),
        Expression::NotIn("tier".into(), set(&["cache"])),
        Expression::NotIn("tier".into(), set(&["db"])),
        Expression::NotIn("zone".into(), set(&["a"])),
        Expression::Exists("pod-template-hash".into()),
        Expression::Exists("zone".into()),
        Expression::DoesNotExist("zone".into()),
        Expression::DoesNotExist("app".into()),
    ];
    let mut outcomes = std::collections::BTreeSet::new();
    // Each expression alone, and each pair: a selector holds when all of them do.
    for (i, a) in expressions.iter().enumerate() {
        for b in expressions.iter().skip(i) {
            let exprs = vec![a.clone(), b.clone()];
            let selector: Selector = exprs.iter().cloned().collect();
            let expected = selector.matches(&map);
            assert_eq!(labels.matches(&exprs), expected, "{selector}");
            outcomes.insert(expected);
        }
    }
    assert_eq!(outcomes.len(), 2, "some selectors match, others do not");
    assert!(
        Labels::default().matches(&[]),
        "an empty selector selects all"
    );
    assert!(!Labels::default().matches(&[Expression::Exists("app".into())]));
    assert_eq!(Labels::default().to_map(), None);
    assert_eq!(labels.to_map(), Some(map));
}
