//! Alertmanager's v2 API, read and written by tests.

use super::stack::stack;

/// POSTs alerts (a JSON array in the v2 format) to the stack's Alertmanager.
pub async fn post(alerts: &serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", stack().alertmanager_url))
        .json(alerts)
        .send()
        .await
        .expect("POST /api/v2/alerts");
    assert!(
        resp.status().is_success(),
        "Alertmanager refused the alerts: {}",
        resp.status()
    );
}

/// The alerts Alertmanager currently holds whose labels include every `(name, value)`.
pub async fn alerts(labels: &[(&str, &str)]) -> Vec<serde_json::Value> {
    held(&stack().alertmanager_url, labels).await
}

/// The alerts the Alertmanager at `url` holds whose labels include every `(name, value)`.
async fn held(url: &str, labels: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!("{url}/api/v2/alerts"))
        .send()
        .await
        .expect("GET /api/v2/alerts")
        .json()
        .await
        .expect("alerts are JSON");
    all.into_iter()
        .filter(|a| labels.iter().all(|(k, v)| a["labels"][*k] == *v))
        .collect()
}

/// Waits (up to `within`) for Alertmanager to hold the alert `alertname` about namespace
/// `namespace`, and returns it.
pub async fn fired(
    within: std::time::Duration,
    namespace: &str,
    alertname: &str,
) -> serde_json::Value {
    super::wait::until(within, alertname, || async {
        alerts(&[("namespace", namespace), ("alertname", alertname)])
            .await
            .into_iter()
            .next()
    })
    .await
}

/// A private Alertmanager on a free loopback port (no receiver: the alerts are only held),
/// for runs that do not share the stack (the benchmarks); killed when dropped.
pub struct Private {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Private {
    /// Starts `prometheus-alertmanager` (Debian package) and waits until it is ready.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("alertmanager temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: held\nreceivers:\n  - name: held\n",
        )
        .expect("write alertmanager.yml");
        let port = super::prometheus::free_port();
        let log =
            std::fs::File::create(dir.path().join("alertmanager.log")).expect("alertmanager log");
        // --cluster.listen-address= turns gossip off: one standalone Alertmanager.
        let child = std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus-alertmanager is not installed: run scripts/setup");
        let am = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", am.url);
        super::wait::until(
            std::time::Duration::from_secs(30),
            "Alertmanager ready",
            || async {
                let r = reqwest::get(&ready).await.ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
        am
    }

    /// The alerts it holds whose labels include every `(name, value)`.
    pub async fn alerts(&self, labels: &[(&str, &str)]) -> Vec<serde_json::Value> {
        held(&self.url, labels).await
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
