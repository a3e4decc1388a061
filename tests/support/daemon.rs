//! The daemon (`upgrade-guard run`) in the test process, on a port of its own choosing;
//! stopped (drained) when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use upgrade_guard::config::Config;
use upgrade_guard::daemon::{self, DaemonOptions};

const WAIT: Duration = Duration::from_secs(120);

/// Sends the daemon's log to the test's captured output (shown when the test fails): the
/// runtime's threads are spawned from the test's thread, so they inherit its capture.
fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("upgrade_guard=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A daemon running in this test.
pub struct Running {
    /// Where its HTTP server listens.
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
}

/// Options for a daemon whose helm reaches the shared stack.
pub fn options(identity: &str) -> DaemonOptions {
    let stack = super::stack::stack();
    let mut o = DaemonOptions::listen("127.0.0.1:0".parse().unwrap());
    o.helm_args = vec![
        "--kubeconfig".into(),
        stack.kubeconfig.display().to_string(),
    ];
    o.identity = Some(identity.to_string());
    o
}

impl Running {
    /// Starts the daemon with `config` (YAML) against the cluster of `kubeconfig`.
    pub async fn start(kubeconfig: &Path, config: &str) -> Self {
        Self::start_with(
            kubeconfig,
            config,
            DaemonOptions::listen("127.0.0.1:0".parse().unwrap()),
        )
        .await
    }

    /// [`Running::start`] with options.
    pub async fn start_with(kubeconfig: &Path, config: &str, options: DaemonOptions) -> Self {
        capture_logs();
        let kube = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        let config = Arc::new(Config::parse(config, "test").unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound) = oneshot::channel();
        let task = tokio::spawn(daemon::run(
            kube,
            config,
            options,
            async {
                let _ = stopped.await;
            },
            Some(Box::new(move |a| {
                let _ = bound_tx.send(a);
            })),
        ));
        let address = tokio::time::timeout(WAIT, bound)
            .await
            .expect("the daemon listens")
            .expect("daemon alive");
        Self {
            address,
            stop: Some(stop),
            task,
        }
    }

    /// GET `path`: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.address))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Waits for `/readyz` to answer 200; on timeout the panic says what it answered last
    /// (which listing the daemon was still waiting for).
    pub async fn ready(&self) {
        let started = std::time::Instant::now();
        let mut last = String::new();
        while started.elapsed() < WAIT {
            let (status, body) = self.get("/readyz").await;
            if status == 200 {
                return;
            }
            last = format!("{status} {}", body.trim());
            tokio::time::sleep(super::wait::POLL_INTERVAL).await;
        }
        panic!("/readyz not 200 after {WAIT:?}; it last answered: {last}");
    }

    /// `/api/v1/releases`, parsed.
    pub async fn releases(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/api/v1/releases").await.1).unwrap()
    }

    /// The value of one `/metrics` sample (the whole line before the value must match).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Stops it and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("the daemon drains in time")
            .expect("daemon task");
        assert!(result.is_ok(), "{result:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
