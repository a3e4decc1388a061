use super::*;
use crate::test_support::{at, summary};

/// One series: `labels` as `k=v` pairs, its value.
fn s(labels: &[(&str, &str)], v: f64) -> Series {
    (
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        v,
    )
}

fn add(a: &mut KsmAnswers, key: &str, series: Series) {
    a.entry(key.into()).or_default().push(series);
}

/// Deployment `app` (1 replica) whose upgrade created ReplicaSet `app-new` beside
/// `app-old` (still scaled up while the rollout runs), with pod `pod` of `rs`.
fn deployment() -> KsmAnswers {
    let mut a = KsmAnswers::new();
    let d = [("deployment", "app")];
    for (key, v) in [
        ("d_spec", 1.0),
        ("d_gen", 4.0),
        ("d_obs", 4.0),
        ("d_upd", 1.0),
        ("d_tot", 2.0),
        ("d_rdy", 1.0),
        ("d_avl", 1.0),
    ] {
        add(&mut a, key, s(&d, v));
    }
    for (rs, created, now, then) in [
        ("app-old", 100.0, Some(1.0), Some(1.0)),
        ("app-new", 200.0, Some(1.0), None),
        ("app-older", 50.0, Some(0.0), Some(0.0)),
    ] {
        add(
            &mut a,
            "rs_owner",
            s(
                &[
                    ("replicaset", rs),
                    ("owner_kind", "Deployment"),
                    ("owner_name", "app"),
                ],
                1.0,
            ),
        );
        add(&mut a, "rs_created", s(&[("replicaset", rs)], created));
        if let Some(v) = now {
            add(&mut a, "rs_spec", s(&[("replicaset", rs)], v));
        }
        if let Some(v) = then {
            add(&mut a, "rs_then", s(&[("replicaset", rs)], v));
        }
    }
    a
}

fn pod_of(a: &mut KsmAnswers, pod: &str, rs: &str, created: Timestamp) {
    add(
        a,
        "p_owner",
        s(
            &[
                ("pod", pod),
                ("owner_kind", "ReplicaSet"),
                ("owner_name", rs),
            ],
            1.0,
        ),
    );
    add(
        a,
        "p_created",
        s(&[("pod", pod)], created.as_second() as f64),
    );
}

fn app() -> ReleaseSummary {
    summary(&[(WorkloadKind::Deployment, "app")], &[])
}

#[test]
fn the_upgrades_replica_set_holds_the_current_pods() {
    let mut a = deployment();
    pod_of(&mut a, "app-old-1", "app-old", at(-60));
    add(&mut a, "p_ready", s(&[("pod", "app-old-1")], 1.0));
    pod_of(&mut a, "app-new-1", "app-new", at(1));
    add(
        &mut a,
        "p_wait",
        s(
            &[
                ("pod", "app-new-1"),
                ("container", "app"),
                ("reason", "CrashLoopBackOff"),
            ],
            1.0,
        ),
    );
    add(
        &mut a,
        "p_restarts",
        s(&[("pod", "app-new-1"), ("container", "app")], 4.0),
    );
    let obs = observations(&app(), &a, at(0)).unwrap();
    let w = &obs.workloads[0];
    assert!(w.found);
    assert_eq!((w.desired, w.updated, w.total, w.ready), (1, 1, 2, 1));
    assert_eq!(w.generation, w.observed_generation);
    assert_eq!(
        w.template,
        Some(("replicaset".to_string(), "app-new".to_string()))
    );
    // The old template's pod is on its way out: not the revision's.
    assert_eq!(obs.pods.len(), 1, "{:?}", obs.pods);
    let p = &obs.pods[0];
    assert_eq!(p.name, "app-new-1");
    assert_eq!(p.workload, "Deployment/app");
    assert_eq!(p.problem, Some(PodProblem::CrashLoopBackOff));
    assert_eq!(p.restarts, 4);
    assert_eq!(p.not_ready_since, at(1));
}

#[test]
fn a_rollback_scales_an_old_replica_set_up_again_and_that_one_is_current() {
    let mut a = deployment();
    // app-old was at 0 when the rollback started, and is scaled up now; app-new, the
    // newest, is being scaled down.
    for (key, rs, v) in [
        ("rs_then", "app-old", 0.0),
        ("rs_spec", "app-old", 1.0),
        ("rs_then", "app-new", 1.0),
    ] {
        let series = a.get_mut(key).unwrap();
        series.retain(|x| label(x, "replicaset") != rs);
        series.push(s(&[("replicaset", rs)], v));
    }
    let w = workload(&a, WorkloadKind::Deployment, "app");
    assert_eq!(w.template.unwrap().1, "app-old");
    // Nothing grown (a change of configuration only): the newest with replicas.
    let mut steady = deployment();
    steady
        .get_mut("rs_then")
        .unwrap()
        .push(s(&[("replicaset", "app-new")], 1.0));
    let w = workload(&steady, WorkloadKind::Deployment, "app");
    assert_eq!(w.template.unwrap().1, "app-new");
}

#[test]
fn pod_problems_are_read_from_their_reasons() {
    type Facts<'a> = &'a [(&'a str, &'a str, &'a str)];
    let cases: [(Facts<'_>, Option<PodProblem>); 6] = [
        (&[("p_ready", "", "")], None),
        (
            &[("p_wait", "app", "ImagePullBackOff")],
            Some(PodProblem::ImagePullBackOff),
        ),
        (
            &[
                ("p_wait", "app", "CrashLoopBackOff"),
                ("p_last", "app", "OOMKilled"),
            ],
            Some(PodProblem::OomKilled),
        ),
        (&[("p_unsched", "", "")], Some(PodProblem::Unschedulable)),
        (
            &[("p_wait", "app", "ContainerCreating")],
            Some(PodProblem::ContainerCreating),
        ),
        (&[("p_phase", "", "Running")], Some(PodProblem::NotReady)),
    ];
    for (facts, want) in cases {
        let mut a = deployment();
        pod_of(&mut a, "app-new-1", "app-new", at(1));
        for (key, container, reason) in facts {
            let mut labels = vec![("pod", "app-new-1")];
            if !container.is_empty() {
                labels.push(("container", container));
            }
            if *key == "p_phase" {
                labels.push(("phase", reason));
            } else if !reason.is_empty() {
                labels.push(("reason", reason));
            }
            add(&mut a, key, s(&labels, 1.0));
        }
        let obs = observations(&app(), &a, at(0)).unwrap();
        assert_eq!(obs.pods[0].problem, want, "{facts:?}");
    }
}

#[test]
fn a_pod_is_not_ready_since_its_last_ready_and_never_before_the_look_back() {
    let mut a = deployment();
    pod_of(&mut a, "app-new-1", "app-new", at(-30));
    add(
        &mut a,
        "p_phase",
        s(&[("pod", "app-new-1"), ("phase", "Running")], 1.0),
    );
    let obs = observations(&app(), &a, at(0)).unwrap();
    // Created before the upgrade and never seen Ready since: counted from the upgrade.
    assert_eq!(obs.pods[0].not_ready_since, at(0));
    add(
        &mut a,
        "p_was_ready",
        s(&[("pod", "app-new-1")], at(5).as_second() as f64),
    );
    let obs = observations(&app(), &a, at(0)).unwrap();
    assert_eq!(obs.pods[0].not_ready_since, at(5));
}

#[test]
fn finished_and_deleted_pods_are_not_the_revisions() {
    let mut a = deployment();
    pod_of(&mut a, "app-new-1", "app-new", at(1));
    pod_of(&mut a, "app-new-2", "app-new", at(1));
    add(&mut a, "p_deleted", s(&[("pod", "app-new-1")], 1.0));
    add(
        &mut a,
        "p_phase",
        s(&[("pod", "app-new-2"), ("phase", "Succeeded")], 1.0),
    );
    assert!(observations(&app(), &a, at(0)).unwrap().pods.is_empty());
}

#[test]
fn a_statefulsets_pods_all_count_and_its_template_stays_unknown() {
    let mut a = KsmAnswers::new();
    add(&mut a, "s_spec", s(&[("statefulset", "db")], 2.0));
    add(&mut a, "s_upd", s(&[("statefulset", "db")], 1.0));
    for pod in ["db-0", "db-1"] {
        add(
            &mut a,
            "p_owner",
            s(
                &[
                    ("pod", pod),
                    ("owner_kind", "StatefulSet"),
                    ("owner_name", "db"),
                ],
                1.0,
            ),
        );
        add(
            &mut a,
            "p_created",
            s(&[("pod", pod)], at(1).as_second() as f64),
        );
        add(&mut a, "p_ready", s(&[("pod", pod)], 1.0));
    }
    let obs = observations(
        &summary(&[(WorkloadKind::StatefulSet, "db")], &[]),
        &a,
        at(0),
    )
    .unwrap();
    assert_eq!(obs.workloads[0].template, None);
    assert_eq!(obs.pods.len(), 2);
}

#[test]
fn a_workload_without_series_is_missing_and_a_namespace_without_any_is_not_judged() {
    let mut a = KsmAnswers::new();
    add(&mut a, "j_created", s(&[("job_name", "migrate")], 1.0));
    let obs = observations(&app(), &a, at(0)).unwrap();
    assert!(!obs.workloads[0].found);
    assert_eq!(obs.jobs[0].name, "migrate");
    assert!(!obs.jobs[0].finished());
    let nothing = KsmAnswers::from([("d_spec".to_string(), vec![])]);
    assert_eq!(
        observations(&app(), &nothing, at(0)),
        Err(NO_HISTORY.to_string())
    );
}

#[test]
fn the_expressions_read_one_namespace_at_the_replayed_time() {
    let items = items(
        "gim\"x",
        Timestamp::from_second(1_800_000_000).unwrap(),
        Duration::from_secs(600),
        Duration::from_secs(30),
    );
    let all: BTreeMap<_, _> = items.into_iter().collect();
    assert_eq!(
        all["d_spec"],
        r#"last_over_time(kube_deployment_spec_replicas{namespace="gim\"x"}[90s])"#
    );
    assert!(all["p_ready"].ends_with("== 1"), "{}", all["p_ready"]);
    assert!(
        all["rs_then"].ends_with("[90s] @ 1800000000.000)"),
        "{}",
        all["rs_then"]
    );
    assert!(
        all["p_was_ready"].contains("[600s:30s]"),
        "{}",
        all["p_was_ready"]
    );
    // A pod last seen Ready may have stayed so until the next scrape.
    assert!(
        all["p_was_ready"].ends_with(") + 30.000"),
        "{}",
        all["p_was_ready"]
    );
}
