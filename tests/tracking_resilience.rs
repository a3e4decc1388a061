//! Release tracking that never loses a revision (issue 8), on the real stack: reads that
//! fail are reported and retried while other releases flow, a restart resumes revisions
//! inside their bake window, a half-open watch is noticed, a real 410 Gone relists without
//! losing or repeating anything, and Helm's ConfigMap driver is tracked like Secrets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, Patch, PatchParams};
use support::cli::{self, config_file};
use support::control_plane::ControlPlane;
use support::helm::{self, Helm};
use support::proxy::Proxy;
use support::tracker::{WAIT, Watching, line};
use support::{kube as tkube, wait};
use upgrade_guard::metrics::registry;
use upgrade_guard::release::ReleaseKey;
use upgrade_guard::release::ReleaseStatus;
use upgrade_guard::release::decode::DecodeLimits;
use upgrade_guard::release::event::{Draft, PendingEvent};
use upgrade_guard::release::event::{ReleaseEvent, ReleaseEventKind};
use upgrade_guard::release::history::Action;
use upgrade_guard::release::labels::Storage;
use upgrade_guard::tracker::error::FetchErrorReason;
use upgrade_guard::tracker::fetch::{FetchRetry, Scheduler};
use upgrade_guard::tracker::metrics::{TrackerMetrics, WatchEventKind};
use upgrade_guard::tracker::{TrackerConfig, client_config};

/// Fast retries so a failing read is reported and retried within the test's patience.
fn quick_retry() -> FetchRetry {
    FetchRetry {
        timeout: Duration::from_secs(5),
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        attempts: 2,
        slow_delay: Duration::from_millis(500),
    }
}

fn config_for(namespace: &str) -> TrackerConfig {
    TrackerConfig {
        namespaces: vec![namespace.to_string()],
        fetch_retry: quick_retry(),
        ..TrackerConfig::default()
    }
}

/// A token for a ServiceAccount that may list and watch the namespace's Secrets but `get`
/// only the named ones.
async fn token_reading_only(ns: &str, names: &[String]) -> String {
    tkube::service_account_token(ns, "tracker", role_json(names)["rules"].clone()).await
}

fn role_json(names: &[String]) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": "tracker"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": names}
        ]
    })
}

/// Issue 8.1 and 8.2: a revision whose record cannot be read (403) is reported as
/// `unreadable`, counted, retried, and announced once RBAC allows it; meanwhile the other
/// release's events are not held up behind it.
#[tokio::test]
async fn a_forbidden_read_is_reported_retried_and_announced_later_without_blocking_others() {
    let ns = tkube::namespace("track-forbidden").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "blocked", chart, "-n", n]);
    helm::ok(&["install", "free", chart, "-n", n]);
    let free: Vec<String> = (1..=3)
        .map(|r| format!("sh.helm.release.v1.free.v{r}"))
        .collect();
    let token = token_reading_only(n, &free).await;
    let kubeconfig = tkube::kubeconfig_with_token(&token);
    let mut w = Watching::start(tkube::client_for(kubeconfig.path()).await, config_for(n)).await;

    helm::ok(&["upgrade", "blocked", chart, "-n", n, "--set", "image.tag=2"]);
    let e = w.next().await;
    assert_eq!(line(&e), "blocked v2 unreadable", "{e:#?}");
    let ReleaseEventKind::Unreadable {
        reason,
        detail,
        retrying,
    } = &e.kind
    else {
        unreachable!()
    };
    assert_eq!((*reason, *retrying), ("forbidden", true));
    assert!(
        detail.contains("sh.helm.release.v1.blocked.v2") && detail.contains("forbidden"),
        "{detail}"
    );
    // The other release is not held up while the first keeps failing.
    helm::ok(&["upgrade", "free", chart, "-n", n, "--set", "image.tag=2"]);
    assert_eq!(w.next_lines(1).await, ["free v2 upgraded"]);
    // Still retried (slowly) after it was reported.
    wait::until(WAIT, "a second forbidden read", || async {
        (w.metrics.fetch_errors_for(FetchErrorReason::Forbidden) >= 2).then_some(())
    })
    .await;

    // Allowed at last: the revision is announced, as the upgrade it was, exactly once.
    let mut names = free.clone();
    names.push("sh.helm.release.v1.blocked.v2".into());
    Api::<Role>::namespaced(tkube::client().await, n)
        .patch(
            "tracker",
            &PatchParams::default(),
            &Patch::Merge(role_json(&names)),
        )
        .await
        .unwrap();
    let e = w.next().await;
    assert_eq!(
        (line(&e), e.status, e.summary.is_some()),
        (
            "blocked v2 upgraded".to_string(),
            ReleaseStatus::Deployed,
            true
        )
    );
    helm::ok(&["upgrade", "free", chart, "-n", n, "--set", "image.tag=3"]);
    assert_eq!(w.next_lines(1).await, ["free v3 upgraded"]);
}

/// Drives the read scheduler as the tracker's loop does until it completes an event.
async fn next_read(reads: &mut Scheduler) -> ReleaseEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(event) = reads.take_ready() {
            return event;
        }
        assert!(Instant::now() < deadline, "no event from the reads in time");
        let retry_at = reads.next_retry();
        tokio::select! {
            () = reads.progress() => {}
            () = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            } => reads.wake(tokio::time::Instant::now()),
        }
    }
}

/// Issue 8.2: a read that hangs (the path to the API server forwards nothing) ends at its
/// deadline, is counted as a timeout, reported `unreadable` and retried; once the path
/// works again the revision's event follows. Drives the read scheduler directly.
#[tokio::test]
async fn a_read_that_hangs_ends_at_its_deadline_and_is_retried_until_read() {
    let ns = tkube::namespace("track-hung").await;
    let n = ns.name.as_str();
    helm::ok(&["install", "hung", &helm::chart("demo-app"), "-n", n]);
    let proxy = Proxy::start(&tkube::api_address());
    let kubeconfig = tkube::kubeconfig_with_server(&format!("https://{}", proxy.address));
    let kube = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig.path()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    // A long read timeout: the fetch deadline is what must end the hung GET.
    let client = kube::Client::try_from(client_config(kube, Duration::from_secs(600))).unwrap();
    let mut reg = registry();
    let metrics = TrackerMetrics::register(&mut reg);
    let retry = FetchRetry {
        timeout: Duration::from_secs(1),
        attempts: 1,
        ..quick_retry()
    };
    let mut reads = Scheduler::new(client, DecodeLimits::default(), retry, 4, metrics.clone());
    proxy.freeze();
    reads.push(
        Storage::Secret,
        Action::Fetch(PendingEvent {
            release: ReleaseKey::new(n, "hung"),
            revision: 1,
            status: ReleaseStatus::Deployed,
            storage: Storage::Secret,
            resumed: false,
            draft: Draft::Settled {
                last_deployed_before: None,
                previous_status: None,
                seen_rolling_back: false,
            },
        }),
    );
    let e = next_read(&mut reads).await;
    match &e.kind {
        ReleaseEventKind::Unreadable {
            reason, retrying, ..
        } => assert_eq!((*reason, *retrying), ("timeout", true)),
        other => panic!("expected unreadable, got {other:?}"),
    }
    assert!(metrics.fetch_errors_for(FetchErrorReason::Timeout) >= 2);

    proxy.thaw();
    let e = next_read(&mut reads).await;
    assert_eq!(line(&e), "hung v1 installed");
    assert!(e.summary.is_some());
    assert_eq!(reads.backlog(), 0);
}

/// Issue 8.2: a consumer that does not read does not stop the watch: with room for one
/// event and none read, every later write is still seen (counted), and every event is
/// delivered, in order per release, once the consumer reads.
#[tokio::test]
async fn a_consumer_that_does_not_read_does_not_stop_the_watch() {
    let ns = tkube::namespace("track-slow-consumer").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    let mut w = Watching::start_with_room(tkube::client().await, config_for(n), 1).await;
    for name in ["a", "b", "c"] {
        helm::ok(&["install", name, chart, "-n", n]);
    }
    helm::ok(&["upgrade", "a", chart, "-n", n, "--set", "image.tag=2"]);
    // helm writes each install twice (pending-install, deployed) and the upgrade three
    // times: the watch goes on although three events wait behind a full channel.
    wait::until(WAIT, "every write seen while nobody reads", || async {
        (w.metrics.watch_events_of(WatchEventKind::Apply) >= 9).then_some(())
    })
    .await;
    let lines = w.next_lines(4).await;
    let a: Vec<&String> = lines.iter().filter(|l| l.starts_with("a ")).collect();
    assert_eq!(a, ["a v1 installed", "a v2 upgraded"], "{lines:?}");
    assert_eq!(lines.len(), 4);
}

/// Issue 8.3 and 8.8: `watch` takes its namespaces from the configuration file and, when
/// it starts, announces again a revision still inside its bake window (marked resumed);
/// a payload cap the file would refuse is refused on the command line too.
#[tokio::test]
async fn watch_reads_the_file_and_resumes_a_revision_inside_its_bake_window() {
    let ns = tkube::namespace("track-resume").await;
    let other = tkube::namespace("track-resume-other").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "baking", chart, "-n", n]);
    helm::ok(&["upgrade", "baking", chart, "-n", n, "--set", "image.tag=2"]);
    helm::ok(&["install", "settled", chart, "-n", n]);
    helm::ok(&["install", "elsewhere", chart, "-n", &other.name]);
    let text = format!("watch:\n  namespaces: [{n}]\ndefaults:\n  bake_window: 1h\n");
    let file = config_file(&text);
    let mut watching = cli::spawn(
        &["watch", "--config", &file.arg(), "-o", "json"],
        &[],
        Some(file),
    );
    watching.wait_for_stderr("watching for changes", WAIT);
    helm::ok(&["upgrade", "settled", chart, "-n", n, "--set", "image.tag=2"]);
    let run = watching.kill_after_lines(3, WAIT);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut seen: Vec<(String, u64, bool)> = events
        .iter()
        .map(|e| {
            (
                e["release"]["name"].as_str().unwrap().to_string(),
                e["revision"].as_u64().unwrap(),
                e["resumed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    // Both releases' newest revisions are inside the 1 h window: announced again, marked
    // resumed (in either order across releases); the namespace the file does not name is
    // not watched; a new revision is plain news, after the resumed one of its release.
    seen[..2].sort();
    assert_eq!(
        seen,
        [
            ("baking".to_string(), 2, true),
            ("settled".to_string(), 1, true),
            ("settled".to_string(), 2, false)
        ],
        "{}",
        run.stderr
    );
    let baking = events
        .iter()
        .find(|e| e["release"]["name"] == "baking")
        .unwrap();
    assert_eq!(baking["kind"], "upgraded");
    assert!(baking["summary"]["last_deployed"].is_string());

    let cap_file = config_file("watch:\n  max_payload_bytes: 0\n");
    let path = cap_file.arg();
    for (args, says) in [
        (
            vec!["watch", "--max-payload-bytes", "0"],
            "--max-payload-bytes: must be at least 1024",
        ),
        (
            vec!["watch", "--config", &path],
            "watch.max_payload_bytes: must be at least 1024",
        ),
    ] {
        let run = cli::run(&args, &[]);
        run.expect(78, &[]);
        run.says_on_stderr(says);
    }
}

/// Issue 8.5: a watch whose connection silently stops delivering (a loopback proxy that
/// keeps the connection open and forwards nothing) is noticed without outside help, and
/// the revision written meanwhile is announced once the path works again.
#[tokio::test]
async fn a_half_open_watch_is_noticed_and_nothing_written_meanwhile_is_lost() {
    let ns = tkube::namespace("track-halfopen").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    helm::ok(&["install", "quiet", chart, "-n", n]);
    let proxy = Proxy::start(&tkube::api_address());
    let kubeconfig = tkube::kubeconfig_with_server(&format!("https://{}", proxy.address));
    let watch_timeout = Duration::from_secs(3);
    let idle_timeout = Duration::from_secs(8);
    let kube = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig.path()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(client_config(kube, idle_timeout)).unwrap();
    let config = TrackerConfig {
        watch_timeout,
        ..config_for(n)
    };
    let mut w = Watching::start(client, config).await;

    let frozen_at = Instant::now();
    proxy.freeze();
    helm::ok(&["upgrade", "quiet", chart, "-n", n, "--set", "image.tag=2"]);
    let noticed = wait::until(
        WAIT,
        "the tracker to drop the silent connection",
        || async { proxy.first_close_while_frozen() },
    )
    .await;
    let detection = noticed.duration_since(frozen_at);
    eprintln!(
        "half-open watch noticed after {:.1}s (watch timeout {}s, idle timeout {}s)",
        detection.as_secs_f64(),
        watch_timeout.as_secs(),
        idle_timeout.as_secs()
    );
    assert!(
        w.events.try_recv().is_err(),
        "nothing can arrive through a frozen path"
    );
    proxy.thaw();
    let e = w.next().await;
    assert_eq!(line(&e), "quiet v2 upgraded");
}

/// Issue 8.6: etcd compacted past the watch's resourceVersion while the tracker was cut
/// off gives a real 410 Gone; the tracker relists (counted), announces every revision
/// written meanwhile once, in order, and sees an uninstall + reinstall of the same release
/// as both. The private API server runs without its watch cache, so the resumed watch is
/// answered by etcd, where the compaction is immediate.
#[tokio::test]
async fn a_410_after_compaction_relists_and_loses_or_repeats_nothing() {
    let plane = ControlPlane::start_with("--watch-cache=false");
    let helm: Helm = plane.helm();
    let chart = &helm::chart("demo-app");
    helm.ok(&["install", "steady", chart, "-n", "default"]);
    helm.ok(&["install", "reborn", chart, "-n", "default"]);
    let proxy = Proxy::start(&plane.api_address());
    let kubeconfig = plane.kubeconfig_with_server(&format!("https://{}", proxy.address));
    let mut w = Watching::start(
        tkube::client_for(kubeconfig.path()).await,
        config_for("default"),
    )
    .await;
    assert_eq!(w.metrics.watch_events_of(WatchEventKind::Relist), 1);
    helm.ok(&[
        "upgrade",
        "steady",
        chart,
        "-n",
        "default",
        "--set",
        "image.tag=2",
    ]);
    assert_eq!(w.next_lines(1).await, ["steady v2 upgraded"]);

    proxy.cut();
    for tag in ["3", "4"] {
        helm.ok(&[
            "upgrade",
            "steady",
            chart,
            "-n",
            "default",
            "--set",
            &format!("image.tag={tag}"),
        ]);
    }
    helm.ok(&["uninstall", "reborn", "-n", "default"]);
    helm.ok(&["install", "reborn", chart, "-n", "default"]);
    let compacted = plane.compact_etcd();
    eprintln!("etcd compacted at revision {compacted}");
    proxy.restore();

    let mut lines = w.next_lines(4).await;
    lines.sort();
    assert_eq!(
        lines,
        [
            "reborn v1 installed",
            "reborn v1 uninstalled",
            "steady v3 upgraded",
            "steady v4 upgraded"
        ]
    );
    assert_eq!(
        w.metrics.watch_events_of(WatchEventKind::Relist),
        2,
        "the 410 must have forced exactly one relist"
    );
    // Nothing is announced twice: the next event is the next revision.
    helm.ok(&[
        "upgrade",
        "steady",
        chart,
        "-n",
        "default",
        "--set",
        "image.tag=5",
    ]);
    assert_eq!(w.next_lines(1).await, ["steady v5 upgraded"]);
}

/// Issue 8.7: with `HELM_DRIVER=configmap`, releases live in ConfigMaps; enabled in the
/// configuration, they are tracked the same way and say where they live.
#[tokio::test]
async fn releases_in_configmaps_are_tracked_like_secrets() {
    let ns = tkube::namespace("track-cm").await;
    let n = ns.name.as_str();
    let chart = &helm::chart("demo-app");
    let mut cm_helm = helm::shared();
    cm_helm.env.push(("HELM_DRIVER".into(), "configmap".into()));
    let config = TrackerConfig {
        storage: vec![Storage::Secret, Storage::ConfigMap],
        bake_window: Arc::new(|_| None),
        ..config_for(n)
    };
    let mut w = Watching::start(tkube::client().await, config).await;
    cm_helm.ok(&["install", "mapped", chart, "-n", n]);
    helm::ok(&["install", "secreted", chart, "-n", n]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = w.next().await;
        seen.push((line(&e), e.storage));
        let s = e.summary.as_ref().expect("decoded");
        assert_eq!(s.chart.name, "demo-app");
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("mapped v1 installed".to_string(), Storage::ConfigMap),
            ("secreted v1 installed".to_string(), Storage::Secret)
        ]
    );
    cm_helm.ok(&["upgrade", "mapped", chart, "-n", n, "--set", "image.tag=2"]);
    let e = w.next().await;
    assert_eq!(
        (line(&e), e.storage),
        ("mapped v2 upgraded".into(), Storage::ConfigMap)
    );
    // `history` and `check` find the release in ConfigMaps; the rollback `check`
    // recommends names the driver, or helm would not find the release.
    let run = cli::run(&["history", "mapped", "-n", n], &[]);
    run.expect(0, &["Upgrade complete", "Install complete"]);
    cm_helm.ok(&[
        "upgrade",
        "mapped",
        chart,
        "-n",
        n,
        "--set",
        "unschedulable=true",
    ]);
    assert_eq!(w.next_lines(1).await, ["mapped v3 upgraded"]);
    let config = cli::short_config("http://127.0.0.1:9", "", "");
    cli::check("mapped", n, &config, &[]).expect(
        1,
        &[&format!(
            "HELM_DRIVER=configmap helm rollback mapped 2 -n {n} --timeout 5m"
        )],
    );
    cm_helm.ok(&["uninstall", "mapped", "-n", n]);
    assert_eq!(w.next_lines(1).await, ["mapped v3 uninstalled"]);
}
