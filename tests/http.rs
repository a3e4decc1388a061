//! The HTTP surface in a shared cluster (issue 20.11) on the real stack: with
//! `http.authentication: kubernetes`, `/api/v1/releases` and `/metrics` need a bearer token
//! the API server authenticates for a user allowed to get the path, as kube-rbac-proxy
//! checks it; a client that connects and sends nothing is disconnected and cannot hold
//! the server's connections; a flood of reads does not keep the daemon from judging.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::io::Read;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::PostParams;
use support::auto::WAIT;
use support::cli::short_config;
use support::daemon::Running;
use support::{helm, kube as tkube, stack::stack, wait};

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

fn config(n: &str, http: &str) -> String {
    short_config(
        NO_PROMETHEUS,
        "",
        &format!("watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\nhttp:\n{http}"),
    )
}

/// GET `path` on `d` with `token`: the status.
async fn get(d: &Running, path: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(format!("http://{}{path}", d.address));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Grants `user` (a ServiceAccount of `ns`) get on the daemon's paths, cluster-wide.
async fn grant(ns: &str, sa: &str) {
    let client = tkube::client().await;
    let name = format!("{ns}-reader");
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "rules": [{"nonResourceURLs": ["/metrics", "/upgrade-guard/api/v1/releases"], "verbs": ["get"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// Before, anyone who reached the port read every release and metric. Now: no token 401,
/// a token whose user is not allowed 403 (every authenticated user may get `/api/*` by
/// Kubernetes' defaults, so the API is authorized as `/upgrade-guard/api/v1/releases`),
/// allowed 200; the probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_only_a_token_the_api_server_allows() {
    let ns = tkube::namespace("http-auth").await;
    let n = ns.name.as_str();
    let d = Running::start(
        &stack().kubeconfig,
        &config(n, "  authentication: kubernetes\n  auth_cache: 1s\n"),
    )
    .await;
    d.ready().await;
    assert_eq!(get(&d, "/readyz", None).await, 200);
    assert_eq!(get(&d, "/livez", None).await, 200);
    assert_eq!(get(&d, "/api/v1/releases", None).await, 401);
    assert_eq!(get(&d, "/metrics", Some("not-a-token")).await, 401);
    let token = tkube::service_account_token(n, "reader", serde_json::json!([])).await;
    assert_eq!(get(&d, "/api/v1/releases", Some(&token)).await, 403);
    grant(n, "reader").await;
    wait::until(WAIT, "the granted reader served", || async {
        (get(&d, "/api/v1/releases", Some(&token)).await == 200).then_some(())
    })
    .await;
    assert_eq!(get(&d, "/metrics", Some(&token)).await, 200);
    d.stop().await;
}

/// Before, a client that connected and sent nothing held its connection (and task) for
/// ever, and enough of them held the server. Now it is disconnected after `read_timeout`,
/// and at most `max_connections` are served at once: the others wait their turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_disconnected() {
    let ns = tkube::namespace("http-slow").await;
    let n = ns.name.as_str();
    let d = Running::start(
        &stack().kubeconfig,
        &config(n, "  read_timeout: 1s\n  max_connections: 2\n"),
    )
    .await;
    d.ready().await;
    let address = d.address.to_string();
    // Two silent clients take both slots; each is closed by the server (read sees EOF).
    let silent: Vec<_> = (0..2)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(&address).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                    .unwrap();
                let mut buf = [0u8; 64];
                s.read(&mut buf)
                    .map(|n| n == 0 || buf.starts_with(b"HTTP/1.1 408"))
            })
        })
        .collect();
    // A real request gets its answer once a slot is free.
    assert_eq!(get(&d, "/livez", None).await, 200);
    for s in silent {
        assert!(
            matches!(s.join().unwrap(), Ok(true)),
            "the server closes a connection that sends nothing"
        );
    }
    d.stop().await;
}

/// Issue 20.11: the API read by many clients at once, each answer every release of a big
/// installation, while the daemon (its own process) has to notice and judge a new release.
/// Before, every read encoded the releases on the runtime's threads holding the state's
/// lock, which the main loop takes at each judgement: on this machine, with 1,500 releases
/// and 48 clients, the release's bake record came 33 s after its install (its bake window
/// is 6 s); now it comes after 6.5 s. A read
/// copies the state, encodes it on a blocking thread, one build at a time, shared by the
/// reads waiting for it; the release is judged while the flood goes on (seen from the
/// cluster, not through the flooded API), and the metrics show the shared reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_api_reads_does_not_stall_the_main_loop() {
    use futures::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const RELEASES: usize = 200;
    const CLIENTS: usize = 32;
    let ns = tkube::namespace("http-flood").await;
    let n = ns.name.as_str().to_string();
    let client = tkube::client().await;
    futures::stream::iter(0..RELEASES)
        .map(|i| {
            let secrets: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(client.clone(), &n);
            let s = support::tracking_load::secret(&n, &format!("svc-{i:04}"), 1, "deployed", 256);
            async move { secrets.create(&PostParams::default(), &s).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let file = support::cli::config_file(&config(&n, "  max_connections: 8\n"));
    let path = file.arg();
    let port = support::prometheus::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut daemon =
        support::cli::spawn(&["run", "--config", &path, "--listen", &listen], &[], None);
    daemon.wait_for_stderr("ready", WAIT);
    let url = format!("http://{listen}/api/v1/releases");
    // Setup, not the property under test: on a machine busy with other tests the daemon
    // may take a while to serve them all, so the wait is long and says what it saw.
    let mut served = 0;
    let deadline = std::time::Instant::now() + 2 * WAIT;
    while served < RELEASES {
        if std::time::Instant::now() > deadline {
            let run = daemon.kill();
            panic!("{served} of {RELEASES} releases served:\n{}", run.stderr);
        }
        tokio::time::sleep(wait::POLL_INTERVAL).await;
        if let Ok(r) = reqwest::get(&url).await
            && let Ok(body) = r.json::<serde_json::Value>().await
        {
            served = body["releases"].as_array().map_or(0, Vec::len);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, answered, url) = (stop.clone(), answered.clone(), url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = http.get(&url).send().await
                        && r.bytes().await.is_ok()
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    wait::until(WAIT, "the flood under way", || async {
        (answered.load(Ordering::Relaxed) >= CLIENTS as u64).then_some(())
    })
    .await;
    let before = answered.load(Ordering::Relaxed);
    helm::install(&n, "gim", "gim", &[]);
    // Seen from the cluster, not through the flooded API: the bake record written at the
    // end of the release's bake.
    let record = tkube::bake_record(&n, &n, "gim", 1).await;
    let during = answered.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    assert!(record.contains("\"verdict\":\"healthy\""), "{record}");
    assert!(
        during > 0,
        "the flood went on while the release was judged: {during} answers"
    );
    // Readers waiting together shared a build: the flood cost fewer builds than answers.
    let metrics = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answers = |how: &str| -> f64 {
        let series = format!(
            "upgrade_guard_http_answers_total{{path=\"/api/v1/releases\",answer=\"{how}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{metrics}"))
    };
    let (built, shared) = (answers("built"), answers("shared"));
    assert!(
        shared > 0.0,
        "reads waiting together share one build: {built} built, {shared} shared"
    );
    let run = daemon.kill();
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}
