//! The objects the daemon's stores hold (pure): each kind deserialized from the watch into
//! only what the checks read (metadata, status, and the few spec fields they use), never
//! the pod spec, a workload's pod template or a pod's container images. A k8s-openapi `Pod` is 2.4 KB before any of
//! its strings, even with its spec removed, because the spec's struct is inline; with
//! 25,000 objects in the stores that alone was 60 MB. A slim object becomes the
//! k8s-openapi one again when a round reads it ([`Slim::full`]), for the pure observations
//! of `checks/observe.rs`. Labels and selectors are kept as sorted slices ([`Labels`]):
//! a `BTreeMap` takes a 500-byte node even for one label, 14 MB of the stores at 5,000
//! releases.

use std::borrow::Cow;
use std::collections::BTreeMap;

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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, Time,
};
use k8s_openapi::{NamespaceResourceScope, Resource as _};
use kube::core::Expression;
use serde::Deserialize;

/// A slim object of the k8s-openapi kind [`Slim::Full`].
pub trait Slim: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> {
    /// The k8s-openapi type it stands for.
    type Full;
    /// The object as k8s-openapi's type, with what was not kept left empty.
    fn full(&self) -> Self::Full;
    /// Keeps only what the checks read (before the object is stored): no managed fields,
    /// no annotations but [`KEPT_ANNOTATIONS`], the labels moved to [`Slim::labels`].
    fn trim(&mut self);
    /// Its labels, once trimmed.
    fn labels(&self) -> &Labels;
}

/// The annotations the checks read (a Deployment's rollout revision, the Helm release of a
/// Job); every other annotation is dropped from the stores.
pub const KEPT_ANNOTATIONS: [&str; 3] = [
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
    crate::checks::observe::DEPLOYMENT_REVISION,
];

/// Labels (or a selector's `matchLabels`), sorted by key, one allocation per string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// From a label map (sorted already).
    pub fn of(map: Option<BTreeMap<String, String>>) -> Self {
        Self(
            map.into_iter()
                .flatten()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }

    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// As a label map; `None` when there is no label.
    pub fn to_map(&self) -> Option<BTreeMap<String, String>> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    }

    /// Whether every expression of a label selector holds, as `kube::core::Selector`
    /// matches a label map.
    pub fn matches(&self, selector: &[Expression]) -> bool {
        selector.iter().all(|e| match e {
            Expression::In(k, values) => self.get(k).is_some_and(|v| values.contains(v)),
            Expression::NotIn(k, values) => self.get(k).is_none_or(|v| !values.contains(v)),
            Expression::Exists(k) => self.get(k).is_some(),
            Expression::DoesNotExist(k) => self.get(k).is_none(),
            Expression::Equal(k, v) => self.get(k) == Some(v.as_str()),
            Expression::NotEqual(k, v) => self.get(k) != Some(v.as_str()),
        })
    }
}

/// Trims `meta` as [`Slim::trim`] says and returns its labels.
fn trim_meta(meta: &mut ObjectMeta) -> Labels {
    meta.managed_fields = None;
    // The watch keeps its own resource version; the checks never read it.
    meta.resource_version = None;
    meta.generate_name = None;
    meta.finalizers = None;
    if let Some(a) = &mut meta.annotations {
        a.retain(|k, _| KEPT_ANNOTATIONS.contains(&k.as_str()));
    }
    if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.annotations = None;
    }
    Labels::of(meta.labels.take())
}

/// `meta` with its labels back (those of an object that was not trimmed stay).
fn full_meta(meta: &ObjectMeta, labels: &Labels) -> ObjectMeta {
    let mut m = meta.clone();
    if let Some(l) = labels.to_map() {
        m.labels = Some(l);
    }
    m
}

/// A workload's pod selector: `matchLabels` as [`Labels`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "LabelSelector")]
pub struct SlimSelector {
    /// `matchLabels`.
    pub match_labels: Labels,
    /// `matchExpressions`.
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

impl From<LabelSelector> for SlimSelector {
    fn from(s: LabelSelector) -> Self {
        Self {
            match_labels: Labels::of(s.match_labels),
            match_expressions: s.match_expressions,
        }
    }
}

impl From<&SlimSelector> for LabelSelector {
    fn from(s: &SlimSelector) -> Self {
        Self {
            match_labels: s.match_labels.to_map(),
            match_expressions: s.match_expressions.clone(),
        }
    }
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
    /// Its labels, once trimmed.
    #[serde(skip)]
    pub labels: Labels,
    /// What the checks read of its status.
    pub status: Option<SlimPodStatus>,
}
resource!(SlimPod, Pod);

impl Slim for SlimPod {
    type Full = Pod;
    fn full(&self) -> Pod {
        Pod {
            metadata: full_meta(&self.metadata, &self.labels),
            spec: None,
            status: self.status.as_ref().map(SlimPodStatus::full),
        }
    }
    fn trim(&mut self) {
        self.labels = trim_meta(&mut self.metadata);
    }
    fn labels(&self) -> &Labels {
        &self.labels
    }
}

/// A ReplicaSet: metadata only (its owner, template hash and revision).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimReplicaSet {
    /// Its metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Its labels, once trimmed.
    #[serde(skip)]
    pub labels: Labels,
}
resource!(SlimReplicaSet, ReplicaSet);

impl Slim for SlimReplicaSet {
    type Full = ReplicaSet;
    fn full(&self) -> ReplicaSet {
        ReplicaSet {
            metadata: full_meta(&self.metadata, &self.labels),
            spec: None,
            status: None,
        }
    }
    fn trim(&mut self) {
        self.labels = trim_meta(&mut self.metadata);
    }
    fn labels(&self) -> &Labels {
        &self.labels
    }
}

/// A workload or a Job: its metadata, what the checks read of its spec (`S`), its status
/// (`T`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimObject<S, T> {
    /// Its metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Its labels, once trimmed.
    #[serde(skip)]
    pub labels: Labels,
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
                    metadata: full_meta(&self.metadata, &self.labels),
                    spec: self.spec.as_ref().map($spec::from),
                    status: self.status.clone(),
                }
            }
            fn trim(&mut self) {
                self.labels = trim_meta(&mut self.metadata);
            }
            fn labels(&self) -> &Labels {
                &self.labels
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
    pub selector: SlimSelector,
    /// `progressDeadlineSeconds`.
    pub progress_deadline_seconds: Option<i32>,
    /// `paused`.
    pub paused: Option<bool>,
}

impl From<&SlimDeploymentSpec> for DeploymentSpec {
    fn from(s: &SlimDeploymentSpec) -> Self {
        Self {
            replicas: s.replicas,
            selector: LabelSelector::from(&s.selector),
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
    pub selector: SlimSelector,
    /// `updateStrategy`.
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
}

impl From<&SlimStatefulSetSpec> for StatefulSetSpec {
    fn from(s: &SlimStatefulSetSpec) -> Self {
        Self {
            replicas: s.replicas,
            selector: LabelSelector::from(&s.selector),
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
    pub selector: SlimSelector,
    /// `updateStrategy`.
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
}

impl From<&SlimDaemonSetSpec> for DaemonSetSpec {
    fn from(s: &SlimDaemonSetSpec) -> Self {
        Self {
            selector: LabelSelector::from(&s.selector),
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
