//! The image (issue 21) on the real stack: built from `deploy/Dockerfile` by
//! `scripts/image`, run by podman as the chart runs it (non-root, read-only root
//! filesystem, `/tmp` a tmpfs, no capabilities), the daemon PID 1 of its container. It
//! watches and judges a release, serves `/metrics`, rolls a bad upgrade back with the helm
//! inside the image; killed mid-rollback with its pod deleted, as a node drain does, the
//! next leader's container completes that rollback once. Each test binary builds the image
//! once (`scripts/image` prints its size).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use support::auto::break_gim;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use support::auto::{WAIT, auto_config_with, description, history, records};
use support::container::{Container, Mounted};
use support::{helm, kube as tkube, wait};
use upgrade_guard::records::action::Phase;

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";
/// The helm the image holds.
const IMAGE_HELM: &str = "/usr/local/bin/helm";

/// GET `path` on the container's port: status and body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

async fn ready(port: u16) {
    wait::until(WAIT, "/readyz of the container", || async {
        (get(port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_judges_serves_metrics_and_rolls_back_with_its_own_helm() {
    let ns = tkube::namespace("image-run").await;
    let n = ns.name.as_str();
    helm::install(n, "gim", "gim", &[]);
    let files = Mounted::new(&format!(
        "cluster: image-test\n{}",
        auto_config_with(IMAGE_HELM, NO_PROMETHEUS, n, "", "")
    ));
    let port = support::prometheus::free_port();
    let mut c = Container::run(&format!("ug-{n}"), &files, port, &[("POD_NAME", "image")]);
    c.wait_for_stderr("leading", WAIT);
    ready(port).await;
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);
    let verified = wait::until(WAIT, "the rollback verified", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Verified).then(|| r[0].clone())
    })
    .await;
    assert_eq!(
        (verified.bad_revision, verified.new_revision),
        (2, Some(3)),
        "{verified:?}"
    );
    let rows = history(n, "gim").await;
    assert_eq!(description(&rows[2]), "Rollback to 1", "{rows:?}");
    let (status, metrics) = get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("upgrade_guard_rollbacks_total{outcome=\"verified\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "upgrade_guard_release_info{{namespace=\"{n}\",release=\"gim\",revision=\"3\""
        )),
        "{metrics}"
    );
    // The cluster's name in the API's answer.
    let (_, api) = get(port, "/api/v1/releases").await.unwrap();
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["cluster"], "image-test");
    // The standard process metrics, read in the container.
    for name in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(metrics.contains(name), "{name} in\n{metrics}");
    }
    assert!(
        metrics.contains("upgrade_guard_build_info{version=\"0.1.0\",revision=\"unknown\"} 1"),
        "{metrics}"
    );
    // The README's second command, from inside the container.
    let (code, table) = c.exec(&[
        "upgrade-guard",
        "status",
        "--url",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains(&format!("{n}/gim"))
            && table.contains("automatic rollback of revision 2 to revision 1: verified"),
        "{table}"
    );
    let run = c.kill();
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// The image runs the daemon with the malloc settings the benchmarks measure it with
/// (`support::bench::IMAGE_MALLOC`): with glibc's defaults the same work held about twice the
/// memory (docs/benchmarks.md).
#[test]
fn the_image_sets_glibc_malloc_as_benchmarked() {
    let image = support::container::image();
    let out = support::container::podman(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        image,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    for (name, value) in support::bench::IMAGE_MALLOC {
        let set = format!("{name}={value}");
        assert!(env.contains(&set), "{set} not in {env:?}");
    }
}

/// The chart's `helm test` (kwok runs no container, so the test pod's command runs here, in
/// the image): the configuration the chart writes, generic or Genesys, with or without
/// rollback, is one the image's upgrade-guard accepts. A broken one is refused.
#[test]
fn the_chart_s_helm_test_passes_in_the_image_and_fails_on_a_bad_configuration() {
    use serde_yaml_ng::Value;
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/upgrade-guard");
    let chart = chart.display().to_string();
    for values in [
        &[][..],
        &["--set", "profile=genesys"][..],
        &[
            "--set",
            "rollback.enabled=true",
            "--set",
            "config.defaults.mode=auto",
            "--set",
            "watchNamespaces={shop}",
        ][..],
    ] {
        let mut args = vec!["template", "ug", chart.as_str(), "-n", "upgrade-guard"];
        args.extend(values);
        let out = helm::shared().run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects: Vec<Value> =
            serde_yaml_ng::Deserializer::from_str(&String::from_utf8(out.stdout).unwrap())
                .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
                .filter(|v| !v.is_null())
                .collect();
        let config = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "ug-upgrade-guard")
            .and_then(|o| o["data"]["config.yaml"].as_str())
            .unwrap()
            .to_string();
        let test = objects
            .iter()
            .find(|o| o["kind"] == "Pod" && o["metadata"]["annotations"]["helm.sh/hook"] == "test")
            .unwrap();
        let test_args: Vec<String> = test["spec"]["containers"][0]["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let test_args: Vec<&str> = test_args.iter().map(String::as_str).collect();
        let (code, said) = support::container::once(&Mounted::new(&config), &test_args);
        assert_eq!(code, 0, "{values:?}: {said}\n{config}");
        assert!(said.contains("valid"), "{said}");
        let (code, said) = support::container::once(
            &Mounted::new(&format!("{config}\nno_such_section: 1\n")),
            &test_args,
        );
        assert_ne!(code, 0, "a bad configuration fails the test: {said}");
    }
}

/// A Pod object standing for the pod the container runs in (kwok runs it): the daemon
/// reads its own pod by `POD_NAME`, and its successor proves it gone through the API.
async fn pod(n: &str, name: &str) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": n},
        "spec": {"containers": [{"name": "upgrade-guard", "image": "upgrade-guard"}]}
    }))
    .unwrap();
    let api: Api<Pod> = Api::namespaced(tkube::client().await, n);
    api.create(&PostParams::default(), &pod).await.unwrap();
    wait::until(WAIT, &format!("pod {name} running"), || async {
        let p = api.get(name).await.ok()?;
        let statuses = p.status?.container_statuses?;
        statuses
            .first()?
            .state
            .as_ref()?
            .running
            .as_ref()
            .map(|_| ())
    })
    .await;
}

/// Issue 20.1 in the image: the daemon, PID 1 of its container, is killed mid-rollback
/// (the kernel kills its helm with it) and its pod deleted, as a node drain does. The next
/// leader, in a container of its own, proves it gone (its PID namespace ended, or its pod
/// deleted), unlocks the revision the dead helm left pending and completes the same
/// attempt: one completed rollback, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_its_container_mid_rollback_the_next_leader_completes_it_once() {
    let ns = tkube::namespace("image-kill").await;
    let n = ns.name.as_str();
    helm::install(
        n,
        "gim",
        "gim",
        &[
            "fault=SlowReady",
            "slowReady.startAfter=1s",
            "slowReady.readyAfter=10s",
        ],
    );
    pod(n, "first").await;
    pod(n, "second").await;
    let files = Mounted::new(&auto_config_with(IMAGE_HELM, NO_PROMETHEUS, n, "", ""));
    let env = |name| [("POD_NAME", name), ("POD_NAMESPACE", n)];
    let mut first = Container::run(
        &format!("ug-{n}-first"),
        &files,
        support::prometheus::free_port(),
        &env("first"),
    );
    first.wait_for_stderr("leading", WAIT);
    support::auto::baked_healthy(n, "gim", 1).await;
    break_gim(n);
    support::auto::rolling_back(n, "gim", 3).await;
    let killed = first.kill();
    let intent = records(n, "gim").await;
    assert_eq!(intent.len(), 1, "{intent:?}\n{}", killed.stderr);
    assert_eq!(intent[0].phase, Phase::Running, "{intent:?}");
    let mark = intent[0].process.clone().unwrap();
    assert!(mark.namespace_init, "PID 1 of its container: {mark:?}");
    assert_eq!(mark.pod.as_ref().map(|p| p.name.as_str()), Some("first"));
    // The kubelet confirms the container stopped: the pod is gone.
    let pods: Api<Pod> = Api::namespaced(tkube::client().await, n);
    pods.delete("first", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait::until(WAIT, "pod first deleted", || async {
        pods.get_opt("first").await.ok()?.is_none().then_some(())
    })
    .await;

    let mut second = Container::run(
        &format!("ug-{n}-second"),
        &files,
        support::prometheus::free_port(),
        &env("second"),
    );
    second.wait_for_stderr("leading", WAIT);
    let done = wait::until(WAIT, "the rollback completed and verified", || async {
        let r = records(n, "gim").await;
        (r.len() == 1 && r[0].phase == Phase::Verified).then(|| r[0].clone())
    })
    .await;
    support::auto::completed_once(n, "gim", &done, "first", "second").await;
    let run = second.kill();
    assert!(
        run.stderr
            .contains("taking over an automatic action whose process is gone"),
        "{}",
        run.stderr
    );
}
