//! A private control plane (etcd + kube-apiserver, no controllers) for tests that must stop
//! and start the API server without disturbing the other tests; with the controllers, the
//! scheduler and kwok for benchmarks whose workloads must roll out.

use std::path::PathBuf;
use std::process::Command;

use super::helm::Helm;
use super::stack::repo_root;

/// etcd + kube-apiserver in their own directory; stopped when dropped.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    apiserver_args: String,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Directory of the built binaries (helm, kube-apiserver, ...).
    pub bin_dir: PathBuf,
}

impl ControlPlane {
    fn testenv(&self, verb: &str) -> std::process::Output {
        self.testenv_args(&[verb])
    }

    fn testenv_args(&self, args: &[&str]) -> std::process::Output {
        Command::new(repo_root().join("testenv/testenv.sh"))
            .args(args)
            .env("K8S_TESTENV_DIR", self.dir.path())
            .env("K8S_TESTENV_APISERVER_ARGS", &self.apiserver_args)
            .output()
            .expect("run testenv.sh")
    }

    fn expect_ok(&self, verb: &str) {
        let out = self.testenv(verb);
        assert!(
            out.status.success(),
            "testenv.sh {verb} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts etcd and kube-apiserver on free loopback ports.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Same, with extra kube-apiserver flags (space-separated).
    pub fn start_with(apiserver_args: &str) -> Self {
        Self::start_as(apiserver_args, &["up"])
    }

    /// With kube-controller-manager, kube-scheduler, kwok and one fake node (pods get
    /// statuses, no container runs): for workloads that must roll out. `apiserver_args`
    /// come last, so they win over testenv's own.
    pub fn start_full(apiserver_args: &str) -> Self {
        Self::start_as(apiserver_args, &["up", "--full"])
    }

    fn start_as(apiserver_args: &str, up: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("upgrade-guard-cp-")
            .tempdir()
            .expect("temp dir");
        let mut plane = ControlPlane {
            apiserver_args: apiserver_args.to_string(),
            kubeconfig: dir.path().join("kubeconfig"),
            bin_dir: PathBuf::new(),
            dir,
        };
        assert!(
            plane.testenv("cached").status.success(),
            "the Kubernetes test binaries are not built: run scripts/setup"
        );
        let bin = plane.testenv("bin");
        plane.bin_dir = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim());
        let out = plane.testenv_args(up);
        assert!(
            out.status.success(),
            "testenv.sh {up:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        plane
    }

    /// helm against this control plane (own homes).
    pub fn helm(&self) -> Helm {
        let home = self.dir.path().join("helm");
        Helm {
            bin: self.bin_dir.join("helm"),
            env: vec![
                ("KUBECONFIG".into(), self.kubeconfig.display().to_string()),
                (
                    "HELM_CACHE_HOME".into(),
                    home.join("cache").display().to_string(),
                ),
                (
                    "HELM_CONFIG_HOME".into(),
                    home.join("config").display().to_string(),
                ),
                (
                    "HELM_DATA_HOME".into(),
                    home.join("data").display().to_string(),
                ),
            ],
        }
    }

    /// Stops kube-apiserver (etcd keeps the data).
    pub fn stop_apiserver(&self) {
        self.expect_ok("stop-apiserver");
    }

    /// Starts kube-apiserver again on the same port and data; returns once it is ready.
    pub fn start_apiserver(&self) {
        self.expect_ok("start-apiserver");
    }

    fn port(&self, name: &str) -> u16 {
        let ports = std::fs::read_to_string(self.dir.path().join("ports")).expect("ports file");
        ports
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in the ports file:\n{ports}"))
    }

    /// The API server's `host:port`.
    pub fn api_address(&self) -> String {
        format!("127.0.0.1:{}", self.port("API_PORT"))
    }

    /// The admin kubeconfig pointed at another server (a proxy in front of this one).
    pub fn kubeconfig_with_server(&self, server: &str) -> tempfile::NamedTempFile {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
        config["clusters"][0]["cluster"]["server"] = server.into();
        let file = tempfile::NamedTempFile::new().expect("temp kubeconfig");
        std::fs::write(
            file.path(),
            serde_yaml_ng::to_string(&config).expect("yaml"),
        )
        .expect("write kubeconfig");
        file
    }

    /// Compacts etcd at its current revision (physically): every older resourceVersion is
    /// gone, so a watch resumed from one gets 410 Gone. Returns the revision.
    pub fn compact_etcd(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/v3/kv", self.port("ETCD_PORT"));
        let post = |path: &str, body: &str| {
            let out = Command::new("curl")
                .args(["-fsS", "-X", "POST", &format!("{url}/{path}"), "-d", body])
                .output()
                .expect("run curl");
            assert!(
                out.status.success(),
                "etcd {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("etcd answer")
        };
        // Any key: the header carries the store's current revision.
        let range = post("range", r#"{"key":"AA=="}"#);
        let revision: u64 = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .expect("etcd revision");
        post(
            "compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
        revision
    }

    /// `apiserver_request_total` summed over codes for `verb` on `resource`, from the API
    /// server's own metrics.
    pub async fn request_count(&self, client: &kube::Client, verb: &str, resource: &str) -> u64 {
        let text = client
            .request_text(
                http::Request::get("/metrics")
                    .body(Vec::new())
                    .expect("request"),
            )
            .await
            .expect("API server metrics");
        let verb_label = format!("verb=\"{verb}\"");
        let resource_label = format!("resource=\"{resource}\"");
        text.lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| l.contains(&verb_label) && l.contains(&resource_label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.testenv("down");
    }
}
