//! Observations (pure): the few facts the checks need, read from Kubernetes objects. The
//! gathering step fetches the objects; these functions turn them into plain values.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Selector;

pub use crate::config::PodProblem;
use crate::release::summary::WorkloadKind;

/// State of one workload of the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadObs {
    /// Kind.
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// The object exists.
    pub found: bool,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// Replicas wanted (DaemonSet: nodes that should run it).
    pub desired: i32,
    /// Replicas on the new template.
    pub updated: i32,
    /// Replicas in total, old template included (DaemonSet: nodes running it).
    pub total: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Available replicas.
    pub available: i32,
    /// Deployment condition `Progressing=False, reason=ProgressDeadlineExceeded`.
    pub progress_deadline_exceeded: bool,
    /// Deployment `spec.progressDeadlineSeconds` (Kubernetes' default 600 s when unset).
    pub progress_deadline: Option<Duration>,
    /// Label selector of its pods (`matchLabels` and `matchExpressions`), converted by kube.
    pub selector: Option<Selector>,
    /// The label (key, value) the pods of its current template carry: a Deployment's new
    /// ReplicaSet's `pod-template-hash`, a StatefulSet's `controller-revision-hash` of its
    /// `updateRevision`, a DaemonSet's `pod-template-generation`. `None` while unknown.
    pub template: Option<(String, String)>,
    /// A Deployment's `spec.paused`: its rollout waits for someone to resume it.
    pub paused: bool,
    /// `updateStrategy: OnDelete` (StatefulSet, DaemonSet): old pods are replaced only when
    /// someone deletes them.
    pub on_delete: bool,
}

impl WorkloadObs {
    /// A workload named in the manifest that does not exist (yet).
    pub fn missing(kind: WorkloadKind, name: &str) -> Self {
        Self {
            kind,
            name: name.to_string(),
            found: false,
            generation: 0,
            observed_generation: 0,
            desired: 0,
            updated: 0,
            total: 0,
            ready: 0,
            available: 0,
            progress_deadline_exceeded: false,
            progress_deadline: None,
            selector: None,
            template: None,
            paused: false,
            on_delete: false,
        }
    }

    /// `Deployment/gim`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// Kubernetes' default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

/// The workload's pod selector as kube converts it; `None` for an empty or unconvertible
/// selector (which would select every pod of the namespace: better to select none).
fn selector(s: Option<&LabelSelector>, workload: &str) -> Option<Selector> {
    let converted = Selector::try_from(s?.clone());
    match converted {
        Ok(selector) if !selector.selects_all() => Some(selector),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(workload, "cannot use the pod selector: {e}");
            None
        }
    }
}

/// Reads a Deployment.
pub fn deployment(d: &Deployment) -> WorkloadObs {
    let status = d.status.clone().unwrap_or_default();
    let spec = d.spec.as_ref();
    WorkloadObs {
        kind: WorkloadKind::Deployment,
        name: d.metadata.name.clone().unwrap_or_default(),
        found: true,
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        desired: spec.and_then(|s| s.replicas).unwrap_or(1),
        updated: status.updated_replicas.unwrap_or(0),
        total: status.replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        progress_deadline_exceeded: status.conditions.unwrap_or_default().iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }),
        progress_deadline: Some(
            spec.and_then(|s| s.progress_deadline_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_PROGRESS_DEADLINE, Duration::from_secs),
        ),
        selector: selector(spec.map(|s| &s.selector), &name_of(&d.metadata)),
        // Known once the new ReplicaSet is found (`new_replica_set_hash`).
        template: None,
        paused: spec.and_then(|s| s.paused).unwrap_or(false),
        on_delete: false,
    }
}

/// The annotation a Deployment and its ReplicaSets carry: the Deployment's rollout revision.
pub const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

/// The label of a Deployment's pods naming their ReplicaSet's template.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The template label of Deployment `d`'s current pods: the `pod-template-hash` of the
/// ReplicaSet it controls whose revision is the Deployment's own (as `kubectl rollout
/// status` finds the new ReplicaSet). `None` until the controller has created it.
pub fn new_replica_set_template(
    d: &Deployment,
    replica_sets: &[&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta],
) -> Option<(String, String)> {
    let uid = d.metadata.uid.as_deref()?;
    let revision = d.metadata.annotations.as_ref()?.get(DEPLOYMENT_REVISION)?;
    replica_sets
        .iter()
        .filter(|rs| {
            rs.owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .find(|rs| {
            rs.annotations
                .as_ref()
                .and_then(|a| a.get(DEPLOYMENT_REVISION))
                == Some(revision)
        })
        .and_then(|rs| rs.labels.as_ref()?.get(POD_TEMPLATE_HASH).cloned())
        .map(|hash| (POD_TEMPLATE_HASH.to_string(), hash))
}

/// Whether pod `p` is of the workload's current template; every pod is when the template
/// is not known.
pub fn of_current_template(p: &Pod, w: &WorkloadObs) -> bool {
    match &w.template {
        Some((k, v)) => p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v),
        None => true,
    }
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

/// Reads a StatefulSet.
pub fn stateful_set(s: &StatefulSet) -> WorkloadObs {
    let status = s.status.clone().unwrap_or_default();
    let spec = s.spec.as_ref();
    WorkloadObs {
        kind: WorkloadKind::StatefulSet,
        name: s.metadata.name.clone().unwrap_or_default(),
        found: true,
        generation: s.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        desired: spec.and_then(|s| s.replicas).unwrap_or(1),
        updated: status.updated_replicas.unwrap_or(0),
        total: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        progress_deadline_exceeded: false,
        progress_deadline: None,
        selector: selector(spec.map(|s| &s.selector), &name_of(&s.metadata)),
        template: status
            .update_revision
            .clone()
            .map(|r| ("controller-revision-hash".to_string(), r)),
        paused: false,
        on_delete: spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete"),
    }
}

/// Reads a DaemonSet.
pub fn daemon_set(d: &DaemonSet) -> WorkloadObs {
    let status = d.status.clone().unwrap_or_default();
    WorkloadObs {
        kind: WorkloadKind::DaemonSet,
        name: d.metadata.name.clone().unwrap_or_default(),
        found: true,
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        desired: status.desired_number_scheduled,
        updated: status.updated_number_scheduled.unwrap_or(0),
        total: status.current_number_scheduled,
        ready: status.number_ready,
        available: status.number_available.unwrap_or(0),
        progress_deadline_exceeded: false,
        progress_deadline: None,
        selector: selector(d.spec.as_ref().map(|s| &s.selector), &name_of(&d.metadata)),
        template: d
            .metadata
            .generation
            .map(|g| ("pod-template-generation".to_string(), g.to_string())),
        paused: false,
        on_delete: d
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete"),
    }
}

/// What the Kubernetes checks need about one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeObservations {
    /// One per Deployment/StatefulSet/DaemonSet of the manifest.
    pub workloads: Vec<WorkloadObs>,
    /// Pods of those workloads' current templates, Ready or not.
    pub pods: Vec<PodObs>,
    /// Jobs of the release namespace (scoped to the release by the checks).
    pub jobs: Vec<JobObs>,
}

/// Restarts from which a running container whose last run failed is in a restart loop
/// (the kubelet's back-off shows `CrashLoopBackOff` only between the runs).
pub const RESTART_LOOP_MIN_RESTARTS: i32 = 3;

/// State of one pod of the release's current templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodObs {
    /// Pod name.
    pub name: String,
    /// Its workload (`Deployment/gim`); filled in by the gathering.
    pub workload: String,
    /// Why it is not Ready; `None` when Ready.
    pub problem: Option<PodProblem>,
    /// Since when it has not been Ready (its creation, or the last Ready=False transition).
    pub not_ready_since: Timestamp,
    /// When it was created.
    pub created: Timestamp,
    /// Restarts of its containers, summed.
    pub restarts: i32,
}

fn waiting_reason(c: &ContainerStatus) -> Option<&str> {
    c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

/// The container's latest termination: the current state if terminated, else the last one.
fn last_termination(c: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    fn terminated(s: Option<&ContainerState>) -> Option<&ContainerStateTerminated> {
        s.and_then(|s| s.terminated.as_ref())
    }
    terminated(c.state.as_ref()).or_else(|| terminated(c.last_state.as_ref()))
}

/// In `CrashLoopBackOff`, or restarted [`RESTART_LOOP_MIN_RESTARTS`] times with its last run
/// failed (caught while running between two back-offs).
fn crash_looping(c: &ContainerStatus) -> bool {
    waiting_reason(c) == Some("CrashLoopBackOff")
        || (c.restart_count >= RESTART_LOOP_MIN_RESTARTS
            && last_termination(c).is_some_and(|t| t.exit_code != 0))
}

fn oom_killed(c: &ContainerStatus) -> bool {
    last_termination(c).and_then(|t| t.reason.as_deref()) == Some("OOMKilled")
}

/// Classifies a pod; `None` for pods that are finished or being deleted.
pub fn pod(p: &Pod, now: Timestamp) -> Option<PodObs> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    // Finished pods (completed, evicted, failed) are replaced by their controller; the
    // replacement carries the problem, if any.
    if phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let conditions = status
        .and_then(|s| s.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    let created = p.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let not_ready_since = ready
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or(created, |t| t.0.max(created));
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum());
    let obs = |problem| PodObs {
        name: p.metadata.name.clone().unwrap_or_default(),
        workload: String::new(),
        problem,
        not_ready_since,
        created,
        restarts,
    };
    if ready.is_some_and(|c| c.status == "True") {
        return Some(obs(None));
    }

    let unschedulable = conditions.iter().any(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    let containers = status
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let inits = status
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default();
    let init_failing = inits.iter().any(|c| {
        matches!(waiting_reason(c), Some("CrashLoopBackOff" | "Error"))
            || c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0)
    });
    let init_running = inits
        .iter()
        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()) && !c.ready);
    let reason_of = |wanted: &str| {
        containers
            .iter()
            .chain(&inits)
            .any(|c| waiting_reason(c) == Some(wanted))
    };
    let looping: Vec<&ContainerStatus> = containers.iter().filter(|c| crash_looping(c)).collect();
    let problem = if unschedulable {
        PodProblem::Unschedulable
    } else if init_failing {
        PodProblem::InitContainerFailing
    } else if looping.iter().any(|c| oom_killed(c)) {
        PodProblem::OomKilled
    } else if reason_of("ImagePullBackOff") {
        PodProblem::ImagePullBackOff
    } else if reason_of("ErrImagePull") {
        PodProblem::ErrImagePull
    } else if reason_of("CreateContainerConfigError") || reason_of("CreateContainerError") {
        PodProblem::CreateContainerConfigError
    } else if !looping.is_empty() {
        PodProblem::CrashLoopBackOff
    } else if init_running {
        PodProblem::Initializing
    } else if phase == "Running" {
        PodProblem::NotReady
    } else if reason_of("ContainerCreating") || reason_of("PodInitializing") {
        PodProblem::ContainerCreating
    } else {
        PodProblem::Pending
    };
    Some(obs(Some(problem)))
}

/// Whether `p` is controlled by the workload (a Deployment's pods belong to its
/// ReplicaSets `<name>-<hash>`). Selectors may also match other pods, Jobs' for example.
pub fn controlled_by(p: &Pod, kind: WorkloadKind, name: &str) -> bool {
    let Some(owner) = p
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
    else {
        return false;
    };
    match kind {
        WorkloadKind::Deployment => {
            owner.kind == "ReplicaSet"
                && owner
                    .name
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|hash| !hash.is_empty() && !hash.contains('-'))
        }
        WorkloadKind::StatefulSet => owner.kind == "StatefulSet" && owner.name == name,
        WorkloadKind::DaemonSet => owner.kind == "DaemonSet" && owner.name == name,
        WorkloadKind::Job => owner.kind == "Job" && owner.name == name,
    }
}

/// State of one Job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobObs {
    /// Job name.
    pub name: String,
    /// Label `app.kubernetes.io/instance` (by Helm convention, the release name).
    pub instance: Option<String>,
    /// Annotations `meta.helm.sh/release-name` and `-namespace`: the release whose
    /// manifest created it.
    pub helm_release: Option<(String, String)>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// Condition `Complete=True`.
    pub succeeded: bool,
    /// Condition `Failed=True`, with its reason.
    pub failed: Option<String>,
    /// `spec.ttlSecondsAfterFinished`: Kubernetes deletes it this long after it finished.
    pub ttl: Option<std::time::Duration>,
}

impl JobObs {
    /// Completed or failed.
    pub fn finished(&self) -> bool {
        self.succeeded || self.failed.is_some()
    }
}

/// Reads a Job.
pub fn job(j: &Job) -> JobObs {
    let conditions = j
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let annotation = |k: &str| j.metadata.annotations.as_ref()?.get(k).cloned();
    JobObs {
        name: j.metadata.name.clone().unwrap_or_default(),
        instance: j
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/instance").cloned()),
        helm_release: annotation("meta.helm.sh/release-name")
            .zip(annotation("meta.helm.sh/release-namespace")),
        created: j.metadata.creation_timestamp.as_ref().map(|t| t.0),
        succeeded: is("Complete").is_some(),
        failed: is("Failed").map(|c| {
            c.reason
                .clone()
                .or_else(|| c.message.clone())
                .unwrap_or_else(|| "Failed".into())
        }),
        ttl: j
            .spec
            .as_ref()
            .and_then(|s| s.ttl_seconds_after_finished)
            .and_then(|s| u64::try_from(s).ok())
            .map(std::time::Duration::from_secs),
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
