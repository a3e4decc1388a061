//! A private control plane (etcd + kube-apiserver, no controllers) for tests that must stop
//! and start the API server without disturbing the other tests.

use std::path::PathBuf;
use std::process::Command;

use super::helm::Helm;
use super::stack::repo_root;

/// etcd + kube-apiserver in their own directory; stopped when dropped.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Directory of the built binaries (helm, kube-apiserver, ...).
    pub bin_dir: PathBuf,
}

impl ControlPlane {
    fn testenv(&self, verb: &str) -> std::process::Output {
        Command::new(repo_root().join("testenv/testenv.sh"))
            .arg(verb)
            .env("K8S_TESTENV_DIR", self.dir.path())
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
        let dir = tempfile::Builder::new()
            .prefix("upgrade-guard-cp-")
            .tempdir()
            .expect("temp dir");
        let mut plane = ControlPlane {
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
        plane.expect_ok("up");
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
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.testenv("down");
    }
}
