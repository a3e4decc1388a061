//! The objects the daemon's stores hold (pure): each kind deserialized from the watch into
//! only what the checks read (metadata, status, and the few spec fields they use), never
//! the pod spec, a workload's pod template or a pod's container images. A k8s-openapi `Pod` is 2.4 KB before any of
//! its strings, even with its spec removed, because the spec's struct is inline; with
//! 25,000 objects in the stores that alone was 60 MB. A slim object becomes the
//! k8s-openapi one again when a round reads it ([`Slim::full`]), for the pure observations
//! of `checks/observe.rs`.

use std::borrow::Cow;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, Deployment, DeploymentSpec,
    DeploymentStatus, ReplicaSet, StatefulSet, StatefulSetSpec, StatefulSetStatus,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::{NamespaceResourceScope, Resource as _};
use serde::Deserialize;

/// A slim object of the k8s-openapi kind [`Slim::Full`].
pub trait Slim: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> {
    /// The k8s-openapi type it stands for.
    type Full;
    /// The object as k8s-openapi's type, with what was not kept left empty.
    fn full(&self) -> Self::Full;
}

/// Implements `kube::Resource` for a slim type with the API coordinates of `$full`.
macro_rules! resource {
    ($slim:ty, $full:ty) => {
        impl kube::Resource for $slim {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;
            fn kind((): &()) -> Cow<'_, str> {
                Cow::Borrowed(<$full>::KIND)
            }
            fn group((): &()) -> Cow<'_, str> {
                Cow::Borrowed(<$full>::GROUP)
            }
            fn version((): &()) -> Cow<'_, str> {
                Cow::Borrowed(<$full>::VERSION)
            }
            fn api_version((): &()) -> Cow<'_, str> {
                Cow::Borrowed(<$full>::API_VERSION)
            }
            fn plural((): &()) -> Cow<'_, str> {
                Cow::Borrowed(<$full>::URL_PATH_SEGMENT)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// What the checks read of a pod condition.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimCondition {
    /// `type`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `status`.
    pub status: String,
    /// `reason`.
    pub reason: Option<String>,
    /// `lastTransitionTime`.
    pub last_transition_time: Option<Time>,
}

/// `state.waiting`: its reason.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimWaiting {
    /// `reason`.
    pub reason: Option<String>,
}

/// `state.terminated`: its exit code and reason.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimTerminated {
    /// `exitCode`.
    #[serde(default)]
    pub exit_code: i32,
    /// `reason`.
    pub reason: Option<String>,
}

/// A container's state: waiting (why), running (whether), terminated (how).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimState {
    /// `waiting`.
    pub waiting: Option<SlimWaiting>,
    /// Whether it is `running`.
    pub running: Option<serde::de::IgnoredAny>,
    /// `terminated`.
    pub terminated: Option<SlimTerminated>,
}

/// What the checks read of a container's status.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimContainerStatus {
    /// `ready`.
    #[serde(default)]
    pub ready: bool,
    /// `restartCount`.
    #[serde(default)]
    pub restart_count: i32,
    /// `state`.
    pub state: Option<SlimState>,
    /// `lastState`.
    pub last_state: Option<SlimState>,
}

/// What the checks read of a pod's status.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodStatus {
    /// `phase`.
    pub phase: Option<String>,
    /// `conditions`.
    pub conditions: Option<Vec<SlimCondition>>,
    /// `containerStatuses`.
    pub container_statuses: Option<Vec<SlimContainerStatus>>,
    /// `initContainerStatuses`.
    pub init_container_statuses: Option<Vec<SlimContainerStatus>>,
}

fn state(s: &SlimState) -> ContainerState {
    ContainerState {
        waiting: s.waiting.as_ref().map(|w| ContainerStateWaiting {
            reason: w.reason.clone(),
            message: None,
        }),
        running: s.running.map(|_| ContainerStateRunning::default()),
        terminated: s.terminated.as_ref().map(|t| ContainerStateTerminated {
            exit_code: t.exit_code,
            reason: t.reason.clone(),
            ..Default::default()
        }),
    }
}

fn container(c: &SlimContainerStatus) -> ContainerStatus {
    ContainerStatus {
        ready: c.ready,
        restart_count: c.restart_count,
        state: c.state.as_ref().map(state),
        last_state: c.last_state.as_ref().map(state),
        ..Default::default()
    }
}

impl SlimPodStatus {
    fn full(&self) -> PodStatus {
        let containers = |c: &Option<Vec<SlimContainerStatus>>| {
            c.as_ref().map(|c| c.iter().map(container).collect())
        };
        PodStatus {
            phase: self.phase.clone(),
            conditions: self.conditions.as_ref().map(|c| {
                c.iter()
                    .map(|c| PodCondition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        last_transition_time: c.last_transition_time.clone(),
                        ..Default::default()
                    })
                    .collect()
            }),
            container_statuses: containers(&self.container_statuses),
            init_container_statuses: containers(&self.init_container_statuses),
            ..Default::default()
        }
    }
}

/// A pod: metadata and what the checks read of its status, no spec.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimPod {
    /// Its metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the checks read of its status.
    pub status: Option<SlimPodStatus>,
}
resource!(SlimPod, Pod);

impl Slim for SlimPod {
    type Full = Pod;
    fn full(&self) -> Pod {
        Pod {
            metadata: self.metadata.clone(),
            spec: None,
            status: self.status.as_ref().map(SlimPodStatus::full),
        }
    }
}

/// A ReplicaSet: metadata only (its owner, template hash and revision).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimReplicaSet {
    /// Its metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
}
resource!(SlimReplicaSet, ReplicaSet);

impl Slim for SlimReplicaSet {
    type Full = ReplicaSet;
    fn full(&self) -> ReplicaSet {
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: None,
            status: None,
        }
    }
}

/// A workload or a Job: its metadata, what the checks read of its spec (`S`), its status
/// (`T`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimObject<S, T> {
    /// Its metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the checks read of its spec.
    pub spec: Option<S>,
    /// Its status.
    pub status: Option<T>,
}

/// A Deployment without its pod template.
pub type SlimDeployment = SlimObject<SlimDeploymentSpec, DeploymentStatus>;
/// A StatefulSet without its pod template and volume claim templates.
pub type SlimStatefulSet = SlimObject<SlimStatefulSetSpec, StatefulSetStatus>;
/// A DaemonSet without its pod template.
pub type SlimDaemonSet = SlimObject<SlimDaemonSetSpec, DaemonSetStatus>;
/// A Job without its pod template.
pub type SlimJob = SlimObject<SlimJobSpec, JobStatus>;

/// `kube::Resource` and [`Slim`] for a [`SlimObject`] standing for `$full`, whose spec
/// `$spec` is made from the slim one.
macro_rules! slim_object {
    ($slim:ty, $full:ident, $spec:ident) => {
        resource!($slim, $full);

        impl Slim for $slim {
            type Full = $full;
            fn full(&self) -> $full {
                $full {
                    metadata: self.metadata.clone(),
                    spec: self.spec.as_ref().map($spec::from),
                    status: self.status.clone(),
                }
            }
        }
    };
}

slim_object!(SlimDeployment, Deployment, DeploymentSpec);
slim_object!(SlimStatefulSet, StatefulSet, StatefulSetSpec);
slim_object!(SlimDaemonSet, DaemonSet, DaemonSetSpec);
slim_object!(SlimJob, Job, JobSpec);

/// What the checks read of a Deployment's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimDeploymentSpec {
    /// `replicas`.
    pub replicas: Option<i32>,
    /// `selector`.
    #[serde(default)]
    pub selector: LabelSelector,
    /// `progressDeadlineSeconds`.
    pub progress_deadline_seconds: Option<i32>,
    /// `paused`.
    pub paused: Option<bool>,
}

impl From<&SlimDeploymentSpec> for DeploymentSpec {
    fn from(s: &SlimDeploymentSpec) -> Self {
        Self {
            replicas: s.replicas,
            selector: s.selector.clone(),
            progress_deadline_seconds: s.progress_deadline_seconds,
            paused: s.paused,
            ..Default::default()
        }
    }
}

/// What the checks read of a StatefulSet's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimStatefulSetSpec {
    /// `replicas`.
    pub replicas: Option<i32>,
    /// `selector`.
    #[serde(default)]
    pub selector: LabelSelector,
    /// `updateStrategy`.
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
}

impl From<&SlimStatefulSetSpec> for StatefulSetSpec {
    fn from(s: &SlimStatefulSetSpec) -> Self {
        Self {
            replicas: s.replicas,
            selector: s.selector.clone(),
            update_strategy: s.update_strategy.clone(),
            ..Default::default()
        }
    }
}

/// What the checks read of a DaemonSet's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimDaemonSetSpec {
    /// `selector`.
    #[serde(default)]
    pub selector: LabelSelector,
    /// `updateStrategy`.
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
}

impl From<&SlimDaemonSetSpec> for DaemonSetSpec {
    fn from(s: &SlimDaemonSetSpec) -> Self {
        Self {
            selector: s.selector.clone(),
            update_strategy: s.update_strategy.clone(),
            ..Default::default()
        }
    }
}

/// What the checks read of a Job's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimJobSpec {
    /// `ttlSecondsAfterFinished`.
    pub ttl_seconds_after_finished: Option<i32>,
}

impl From<&SlimJobSpec> for JobSpec {
    fn from(s: &SlimJobSpec) -> Self {
        Self {
            ttl_seconds_after_finished: s.ttl_seconds_after_finished,
            ..Default::default()
        }
    }
}

#[cfg(test)]
#[path = "slim_tests.rs"]
mod tests;
