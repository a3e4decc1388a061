//! The Kubernetes facts of the past (pure), read from the kube-state-metrics series
//! Prometheus recorded: the expressions of one namespace at one time, and their answers
//! turned into the same observations the checks read from live objects. What the series do
//! not carry is left unknown, never guessed: a StatefulSet's or DaemonSet's pods cannot be
//! told by template (every pod of the workload counts, and a stalled rollout is not failed
//! on its counts), a Deployment's progress deadline is Kubernetes' condition alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use super::promql::{self, Series};
use crate::checks::observe::{JobObs, PodObs, PodProblem, RESTART_LOOP_MIN_RESTARTS, WorkloadObs};
use crate::release::summary::{ReleaseSummary, WorkloadKind};

/// Why the Kubernetes checks cannot be replayed at a time: nothing of the namespace was
/// recorded then.
pub const NO_HISTORY: &str = "not judged: no history of pod states (no kube-state-metrics series of the namespace in Prometheus at that time)";

/// The series read, by key: (key, metric, extra matchers, only where the value is 1).
const SERIES: &[(&str, &str, &str, bool)] = &[
    ("d_spec", "kube_deployment_spec_replicas", "", false),
    ("d_gen", "kube_deployment_metadata_generation", "", false),
    (
        "d_obs",
        "kube_deployment_status_observed_generation",
        "",
        false,
    ),
    (
        "d_upd",
        "kube_deployment_status_replicas_updated",
        "",
        false,
    ),
    ("d_tot", "kube_deployment_status_replicas", "", false),
    ("d_rdy", "kube_deployment_status_replicas_ready", "", false),
    (
        "d_avl",
        "kube_deployment_status_replicas_available",
        "",
        false,
    ),
    (
        "d_stall",
        "kube_deployment_status_condition",
        r#",condition="Progressing",status="false""#,
        true,
    ),
    ("d_paused", "kube_deployment_spec_paused", "", true),
    ("s_spec", "kube_statefulset_replicas", "", false),
    ("s_gen", "kube_statefulset_metadata_generation", "", false),
    (
        "s_obs",
        "kube_statefulset_status_observed_generation",
        "",
        false,
    ),
    (
        "s_upd",
        "kube_statefulset_status_replicas_updated",
        "",
        false,
    ),
    ("s_tot", "kube_statefulset_status_replicas", "", false),
    ("s_rdy", "kube_statefulset_status_replicas_ready", "", false),
    (
        "s_avl",
        "kube_statefulset_status_replicas_available",
        "",
        false,
    ),
    (
        "x_des",
        "kube_daemonset_status_desired_number_scheduled",
        "",
        false,
    ),
    (
        "x_upd",
        "kube_daemonset_status_updated_number_scheduled",
        "",
        false,
    ),
    (
        "x_tot",
        "kube_daemonset_status_current_number_scheduled",
        "",
        false,
    ),
    ("x_rdy", "kube_daemonset_status_number_ready", "", false),
    ("x_avl", "kube_daemonset_status_number_available", "", false),
    ("x_gen", "kube_daemonset_metadata_generation", "", false),
    (
        "x_obs",
        "kube_daemonset_status_observed_generation",
        "",
        false,
    ),
    (
        "rs_owner",
        "kube_replicaset_owner",
        r#",owner_kind="Deployment""#,
        false,
    ),
    ("rs_spec", "kube_replicaset_spec_replicas", "", false),
    ("rs_created", "kube_replicaset_created", "", false),
    ("p_owner", "kube_pod_owner", "", false),
    ("p_created", "kube_pod_created", "", false),
    (
        "p_ready",
        "kube_pod_status_ready",
        r#",condition="true""#,
        true,
    ),
    ("p_phase", "kube_pod_status_phase", "", true),
    ("p_unsched", "kube_pod_status_unschedulable", "", true),
    (
        "p_wait",
        "kube_pod_container_status_waiting_reason",
        "",
        true,
    ),
    (
        "p_iwait",
        "kube_pod_init_container_status_waiting_reason",
        "",
        true,
    ),
    ("p_irun", "kube_pod_init_container_status_running", "", true),
    (
        "p_ifail",
        "kube_pod_init_container_status_terminated_reason",
        r#",reason!="Completed""#,
        true,
    ),
    (
        "p_restarts",
        "kube_pod_container_status_restarts_total",
        "",
        false,
    ),
    (
        "p_last",
        "kube_pod_container_status_last_terminated_reason",
        "",
        true,
    ),
    ("p_deleted", "kube_pod_deletion_timestamp", "", false),
    ("j_created", "kube_job_created", "", false),
    ("j_done", "kube_job_complete", r#",condition="true""#, true),
    ("j_failed", "kube_job_failed", r#",condition="true""#, true),
];

/// A series counts as recorded at a time when it has a sample within this many scrape
/// intervals before it: a missed scrape is not a vanished pod, and a pod gone since is
/// gone within this (backfilled or federated history has no staleness markers).
const FRESH_SCRAPES: u32 = 3;

/// The expressions that read namespace `ns` at the time the query is evaluated; `started`
/// is when the revision's upgrade started (a Deployment's ReplicaSets then tell which one
/// the upgrade scaled up), `since_ready` how far back a pod's last Ready is looked for,
/// `scrape` the scrape interval.
pub fn items(
    ns: &str,
    started: Timestamp,
    since_ready: Duration,
    scrape: Duration,
) -> Vec<(String, String)> {
    let ns = ns.replace('\\', "\\\\").replace('"', "\\\"");
    let fresh = scrape * FRESH_SCRAPES;
    let sel = |metric: &str, extra: &str| format!(r#"{metric}{{namespace="{ns}"{extra}}}"#);
    let last = |metric: &str, extra: &str, at: Option<Timestamp>| {
        promql::last_sample_within(&sel(metric, extra), fresh, at)
    };
    let mut items: Vec<(String, String)> = SERIES
        .iter()
        .map(|(key, metric, extra, one)| {
            let s = last(metric, extra, None);
            (key.to_string(), if *one { format!("{s} == 1") } else { s })
        })
        .collect();
    items.push((
        "rs_then".into(),
        last("kube_replicaset_spec_replicas", "", Some(started)),
    ));
    // When each pod was last seen Ready within the look-back, plus one scrape interval: it
    // may have been Ready until the next look, so its time not Ready is never overstated.
    items.push((
        "p_was_ready".into(),
        format!(
            "max by (pod) (max_over_time({})) + {:.3}",
            promql::subquery(
                &format!(
                    "timestamp({} == 1)",
                    sel("kube_pod_status_ready", r#",condition="true""#)
                ),
                since_ready,
                scrape,
                None
            ),
            scrape.as_secs_f64()
        ),
    ));
    items
}

/// The answers of [`items`], by key.
pub type KsmAnswers = BTreeMap<String, Vec<Series>>;

fn label<'a>(s: &'a Series, name: &str) -> &'a str {
    s.0.get(name).map_or("", String::as_str)
}

/// The value of the series of `key` whose label `name` is `value`.
fn value_of(a: &KsmAnswers, key: &str, name: &str, value: &str) -> Option<f64> {
    a.get(key)?
        .iter()
        .find(|s| label(s, name) == value)
        .map(|s| s.1)
}

fn int(v: Option<f64>) -> i32 {
    v.map_or(0, |v| v.clamp(0.0, f64::from(i32::MAX)) as i32)
}

fn seconds(v: f64) -> Option<Timestamp> {
    Timestamp::from_millisecond((v * 1000.0) as i64).ok()
}

/// Label values of `name` in the series of `key` matching `pred`.
fn labels_where<'a>(
    a: &'a KsmAnswers,
    key: &str,
    name: &'a str,
    pred: impl Fn(&Series) -> bool + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    a.get(key)
        .into_iter()
        .flatten()
        .filter(move |s| pred(s))
        .map(move |s| label(s, name))
}

/// Whether anything of the namespace was recorded at that time.
fn recorded(a: &KsmAnswers) -> bool {
    a.iter()
        .filter(|(k, _)| k.as_str() != "rs_then" && k.as_str() != "p_was_ready")
        .any(|(_, s)| !s.is_empty())
}

/// The ReplicaSet of Deployment `name` whose pods are the current template's: among those
/// with replicas wanted, the newest of the ones the upgrade scaled up (created since
/// `started`, or with more replicas than then; a rollback scales an old one up again), else
/// the newest.
fn current_replica_set(a: &KsmAnswers, name: &str) -> Option<String> {
    let owned: BTreeSet<&str> = labels_where(a, "rs_owner", "replicaset", |s| {
        label(s, "owner_name") == name
    })
    .collect();
    let spec = |key: &str, rs: &str| value_of(a, key, "replicaset", rs);
    let created = |rs: &str| spec("rs_created", rs).unwrap_or(0.0);
    let wanted: Vec<&str> = owned
        .into_iter()
        .filter(|rs| spec("rs_spec", rs).is_some_and(|v| v > 0.0))
        .collect();
    let newest = |set: Vec<&str>| {
        set.into_iter()
            .max_by(|x, y| created(x).total_cmp(&created(y)))
            .map(str::to_string)
    };
    let grown: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|rs| spec("rs_spec", rs).unwrap_or(0.0) > spec("rs_then", rs).unwrap_or(0.0))
        .collect();
    if grown.is_empty() {
        newest(wanted)
    } else {
        newest(grown)
    }
}

fn workload(a: &KsmAnswers, kind: WorkloadKind, name: &str) -> WorkloadObs {
    let (prefix, label_name) = match kind {
        WorkloadKind::Deployment => ("d", "deployment"),
        WorkloadKind::StatefulSet => ("s", "statefulset"),
        WorkloadKind::DaemonSet => ("x", "daemonset"),
        WorkloadKind::Job => return WorkloadObs::missing(kind, name),
    };
    let get = |what: &str| value_of(a, &format!("{prefix}_{what}"), label_name, name);
    let desired = if kind == WorkloadKind::DaemonSet {
        get("des")
    } else {
        get("spec")
    };
    let Some(desired) = desired else {
        return WorkloadObs::missing(kind, name);
    };
    let gen_of = |what| i64::from(int(get(what)));
    let mut w = WorkloadObs::missing(kind, name);
    w.found = true;
    w.generation = gen_of("gen");
    w.observed_generation = gen_of("obs");
    w.desired = int(Some(desired));
    w.updated = int(get("upd"));
    w.total = int(get("tot"));
    w.ready = int(get("rdy"));
    w.available = int(get("avl"));
    if kind == WorkloadKind::Deployment {
        w.progress_deadline_exceeded = get("stall").is_some();
        w.paused = get("paused").is_some();
        w.template = current_replica_set(a, name).map(|rs| ("replicaset".to_string(), rs));
    }
    w
}

/// The pods of workload `w` of the current template (a Deployment's current ReplicaSet;
/// every pod of a StatefulSet or DaemonSet).
fn pod_names(a: &KsmAnswers, w: &WorkloadObs) -> Vec<String> {
    let (kind, owner) = match (w.kind, &w.template) {
        (WorkloadKind::Deployment, Some((_, rs))) => ("ReplicaSet", rs.as_str()),
        (WorkloadKind::Deployment, None) => return Vec::new(),
        (WorkloadKind::StatefulSet, _) => ("StatefulSet", w.name.as_str()),
        (WorkloadKind::DaemonSet, _) => ("DaemonSet", w.name.as_str()),
        (WorkloadKind::Job, _) => return Vec::new(),
    };
    let names: BTreeSet<&str> = labels_where(a, "p_owner", "pod", |s| {
        label(s, "owner_kind") == kind && label(s, "owner_name") == owner
    })
    .collect();
    names.into_iter().map(str::to_string).collect()
}

/// Reasons of `key` for pod `pod`, with their container.
fn reasons<'a>(a: &'a KsmAnswers, key: &str, pod: &'a str) -> Vec<(&'a str, &'a str)> {
    a.get(key)
        .into_iter()
        .flatten()
        .filter(|s| label(s, "pod") == pod)
        .map(|s| (label(s, "container"), label(s, "reason")))
        .collect()
}

/// The pod as the checks see it; `None` for a pod finished or being deleted, or not
/// recorded at that time.
fn pod(a: &KsmAnswers, name: &str, workload: &str) -> Option<PodObs> {
    let has = |key: &str| {
        a.get(key)
            .is_some_and(|s| s.iter().any(|s| label(s, "pod") == name))
    };
    let created = value_of(a, "p_created", "pod", name).and_then(seconds)?;
    let phases: Vec<&str> =
        labels_where(a, "p_phase", "phase", |s| label(s, "pod") == name).collect();
    if has("p_deleted") || phases.iter().any(|p| *p == "Succeeded" || *p == "Failed") {
        return None;
    }
    let restarts_of = |container: &str| {
        a.get("p_restarts")
            .into_iter()
            .flatten()
            .filter(|s| {
                label(s, "pod") == name
                    && (container.is_empty() || label(s, "container") == container)
            })
            .map(|s| int(Some(s.1)))
            .sum::<i32>()
    };
    let was_ready = value_of(a, "p_was_ready", "pod", name).and_then(seconds);
    let obs = |problem| PodObs {
        name: name.to_string(),
        workload: workload.to_string(),
        problem,
        // Since it was last seen Ready, never before its creation (`observations` bounds
        // it by the look-back: never longer than seen).
        not_ready_since: was_ready.map_or(created, |t| t.max(created)),
        created,
        restarts: restarts_of(""),
    };
    if has("p_ready") {
        return Some(obs(None));
    }
    let waiting = reasons(a, "p_wait", name);
    let init_waiting = reasons(a, "p_iwait", name);
    let last = reasons(a, "p_last", name);
    let any = |list: &[(&str, &str)], r: &str| list.iter().any(|(_, x)| *x == r);
    let looping: Vec<&str> = {
        let mut containers: BTreeSet<&str> = waiting
            .iter()
            .filter(|(_, r)| *r == "CrashLoopBackOff")
            .map(|(c, _)| *c)
            .collect();
        containers.extend(
            last.iter()
                .filter(|(c, r)| *r != "Completed" && restarts_of(c) >= RESTART_LOOP_MIN_RESTARTS)
                .map(|(c, _)| *c),
        );
        containers.into_iter().collect()
    };
    let oom = looping
        .iter()
        .any(|c| last.iter().any(|(lc, r)| lc == c && *r == "OOMKilled"));
    let both: Vec<(&str, &str)> = waiting.iter().chain(&init_waiting).copied().collect();
    let problem = if has("p_unsched") {
        PodProblem::Unschedulable
    } else if any(&init_waiting, "CrashLoopBackOff")
        || any(&init_waiting, "Error")
        || has("p_ifail")
    {
        PodProblem::InitContainerFailing
    } else if oom {
        PodProblem::OomKilled
    } else if any(&both, "ImagePullBackOff") {
        PodProblem::ImagePullBackOff
    } else if any(&both, "ErrImagePull") {
        PodProblem::ErrImagePull
    } else if any(&both, "CreateContainerConfigError") || any(&both, "CreateContainerError") {
        PodProblem::CreateContainerConfigError
    } else if !looping.is_empty() {
        PodProblem::CrashLoopBackOff
    } else if has("p_irun") {
        PodProblem::Initializing
    } else if phases.contains(&"Running") {
        PodProblem::NotReady
    } else if any(&both, "ContainerCreating") || any(&both, "PodInitializing") {
        PodProblem::ContainerCreating
    } else {
        PodProblem::Pending
    };
    Some(obs(Some(problem)))
}

fn jobs(a: &KsmAnswers) -> Vec<JobObs> {
    let names: BTreeSet<&str> = labels_where(a, "j_created", "job_name", |_| true).collect();
    names
        .into_iter()
        .map(|name| JobObs {
            name: name.to_string(),
            instance: None,
            helm_release: None,
            created: value_of(a, "j_created", "job_name", name).and_then(seconds),
            succeeded: value_of(a, "j_done", "job_name", name).is_some(),
            failed: value_of(a, "j_failed", "job_name", name).map(|_| "Failed".to_string()),
            ttl: None,
        })
        .collect()
}

/// The observations of `summary`'s workloads, their pods and the namespace's Jobs from the
/// answers of [`items`]; `Err` ([`NO_HISTORY`]) when nothing of the namespace was
/// recorded then. `ready_floor` is the start of the look-back for pods' last Ready: a pod
/// not Ready throughout it counts as not Ready since then at most.
pub fn observations(
    summary: &ReleaseSummary,
    a: &KsmAnswers,
    ready_floor: Timestamp,
) -> Result<crate::checks::observe::KubeObservations, String> {
    if !recorded(a) {
        return Err(NO_HISTORY.to_string());
    }
    let mut obs = crate::checks::observe::KubeObservations::default();
    let mut seen = BTreeSet::new();
    for w in summary
        .workloads
        .iter()
        .filter(|w| w.kind != WorkloadKind::Job)
    {
        let found = workload(a, w.kind, &w.name);
        for name in pod_names(a, &found) {
            if seen.insert(name.clone())
                && let Some(mut p) = pod(a, &name, &found.id())
            {
                if p.not_ready_since < ready_floor && p.problem.is_some() {
                    p.not_ready_since = ready_floor.max(p.created);
                }
                obs.pods.push(p);
            }
        }
        obs.workloads.push(found);
    }
    obs.jobs = jobs(a);
    Ok(obs)
}

#[cfg(test)]
#[path = "ksm_tests.rs"]
mod tests;
