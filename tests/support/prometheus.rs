//! A real Prometheus per test: on historical series backfilled with
//! `promtool tsdb create-blocks-from openmetrics`, and/or scraping live targets.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::wait::POLL_INTERVAL;

/// A Prometheus server on a free loopback port, killed when dropped.
pub struct Prometheus {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    scrape_interval: Duration,
    config_path: std::path::PathBuf,
    dir: tempfile::TempDir,
}

fn write_config(path: &Path, scrape_interval: Duration, targets: &[Target<'_>]) {
    let every = format!("{}ms", scrape_interval.as_millis());
    let mut config = format!(
        "global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\nscrape_configs:\n"
    );
    // One scrape config per job, a static config per target (with its namespace label).
    let mut jobs: Vec<&str> = Vec::new();
    for t in targets {
        if !jobs.contains(&t.job) {
            jobs.push(t.job);
        }
    }
    for job in jobs {
        config.push_str(&format!("  - job_name: {job}\n    static_configs:\n"));
        for t in targets.iter().filter(|t| t.job == job) {
            config.push_str(&format!("      - targets: ['{}']\n", t.address));
            if let Some(ns) = t.namespace {
                config.push_str(&format!("        labels: {{namespace: {ns}}}\n"));
            }
        }
    }
    std::fs::write(path, config).expect("write prometheus.yml");
}

/// One scrape target for [`Prometheus::start`].
pub struct Target<'a> {
    /// The `job` label.
    pub job: &'a str,
    /// `host:port` on loopback.
    pub address: &'a str,
    /// The target's `namespace` label (Kubernetes service discovery sets it).
    pub namespace: Option<&'a str>,
}

/// A free loopback TCP port (bound then released; callers retry on a lost race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

fn tool(name: &str) -> &str {
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => name,
        _ => panic!("{name} is not installed: run scripts/setup (Debian package prometheus)"),
    }
}

impl Prometheus {
    /// Writes `openmetrics` (OpenMetrics text with timestamps in seconds, ending in
    /// `# EOF`) into TSDB blocks and starts Prometheus on them.
    pub async fn with_backfill(openmetrics: &str) -> Self {
        Self::start(Some(openmetrics), &[]).await
    }

    /// Prometheus holding `app_up{namespace="<ns>"} 1` sampled every second for the last
    /// two minutes (as the short configurations' 1 s scrape interval says), and
    /// `app_sparse{namespace="<ns>"} 1` only every 5 s: series that exist now, for checks
    /// of the configuration against them.
    pub async fn with_app_up(ns: &str) -> Self {
        let now = jiff::Timestamp::now().as_second();
        let mut om = String::from("# TYPE app_up gauge\n");
        for t in now - 120..=now {
            om.push_str(&format!("app_up{{namespace=\"{ns}\"}} 1 {t}\n"));
        }
        om.push_str("# TYPE app_sparse gauge\n");
        for t in (now - 120..=now).step_by(5) {
            om.push_str(&format!("app_sparse{{namespace=\"{ns}\"}} 1 {t}\n"));
        }
        om.push_str("# EOF\n");
        Self::with_backfill(&om).await
    }

    /// Starts Prometheus with optional backfilled history and live scrape targets
    /// (scraped every second).
    pub async fn start(openmetrics: Option<&str>, targets: &[Target<'_>]) -> Self {
        Self::start_every(Duration::from_secs(1), openmetrics, targets).await
    }

    /// [`Prometheus::start`] with the scrape (and rule evaluation) interval given.
    pub async fn start_every(
        scrape_interval: Duration,
        openmetrics: Option<&str>,
        targets: &[Target<'_>],
    ) -> Self {
        let dir = tempfile::tempdir().expect("prometheus temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("prometheus data dir");
        if let Some(text) = openmetrics {
            backfill(dir.path(), &data, text);
        }
        let config_path = dir.path().join("prometheus.yml");
        write_config(&config_path, scrape_interval, targets);
        let log_path = dir.path().join("prometheus.log");

        // A free port can be taken between probing and binding: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            match launch(&config_path, &data, port, &log_path).await {
                Ok(child) => {
                    return Prometheus {
                        child: Some(child),
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                        scrape_interval,
                        config_path,
                        dir,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("prometheus did not start: {last_error}");
    }

    /// Restarts Prometheus on the same port with empty storage and only `targets`, as when
    /// it lost its data (no persistent volume) and has not discovered its targets again.
    pub async fn restart_empty(&mut self, targets: &[Target<'_>]) {
        self.stop();
        write_config(&self.config_path, self.scrape_interval, targets);
        let data = self.dir.path().join(format!("data-{}", free_port()));
        std::fs::create_dir_all(&data).expect("prometheus data dir");
        let log_path = self.dir.path().join("prometheus-restarted.log");
        let child = launch(&self.config_path, &data, self.port, &log_path)
            .await
            .unwrap_or_else(|e| panic!("prometheus did not restart: {e}"));
        self.child = Some(child);
    }

    /// Starts Prometheus again (after [`Prometheus::stop`]) on the same port and the data it
    /// had, scraping only `targets`: a monitoring outage that ends, before service
    /// discovery has found every target again.
    pub async fn restart_with_data(&mut self, targets: &[Target<'_>]) {
        self.stop();
        write_config(&self.config_path, self.scrape_interval, targets);
        let data = self.dir.path().join("data");
        let log_path = self.dir.path().join("prometheus-restarted.log");
        let child = launch(&self.config_path, &data, self.port, &log_path)
            .await
            .unwrap_or_else(|e| panic!("prometheus did not restart: {e}"));
        self.child = Some(child);
    }

    /// Replaces the scrape targets and reloads the configuration (SIGHUP).
    pub fn reconfigure(&self, targets: &[Target<'_>]) {
        write_config(&self.config_path, self.scrape_interval, targets);
        let pid = self.child.as_ref().expect("prometheus running").id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "cannot signal prometheus");
    }

    /// Stops Prometheus (SIGKILL): later queries fail with connection refused, which is
    /// how a monitoring outage looks to the daemon.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs an instant query and returns the JSON `data` object; panics on an error answer.
    pub async fn query(&self, promql: &str, time: Option<f64>) -> serde_json::Value {
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t}")));
        }
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&params)
            .send()
            .await
            .expect("query prometheus")
            .json()
            .await
            .expect("prometheus answer is JSON");
        assert_eq!(body["status"], "success", "query {promql} failed: {body}");
        body["data"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn launch(config: &Path, data: &Path, port: u16, log_path: &Path) -> Result<Child, String> {
    let mut child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=30d")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_path).expect("prometheus log file"))
        .spawn()
        .expect("start prometheus");
    match wait_ready(&mut child, &format!("http://127.0.0.1:{port}"), log_path).await {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

async fn wait_ready(child: &mut Child, url: &str, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("prometheus exited ({status}):\n{log}"));
        }
        if let Ok(resp) = http.get(format!("{url}/-/ready")).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("not ready after 60 s".into());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn backfill(dir: &Path, data: &Path, text: &str) {
    let input = dir.join("backfill.om");
    std::fs::write(&input, text).expect("write openmetrics");
    let out = Command::new(tool("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(data)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
