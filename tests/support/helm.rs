//! Runs the real helm binary against a test cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use super::stack::{repo_root, stack};

/// Path of a chart under `tests/charts/`.
pub fn chart(name: &str) -> String {
    repo_root()
        .join("tests/charts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// helm bound to one cluster: its binary and environment (KUBECONFIG, private homes).
#[derive(Debug, Clone)]
pub struct Helm {
    /// The helm binary.
    pub bin: PathBuf,
    /// Environment for every call.
    pub env: Vec<(String, String)>,
}

/// helm for the shared stack.
pub fn shared() -> Helm {
    let stack = stack();
    Helm {
        bin: stack.helm_bin.clone(),
        env: stack.child_env(),
    }
}

impl Helm {
    /// A `helm` command ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs helm and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap_or_else(|e| {
            panic!(
                "cannot run helm ({}): {e}; run scripts/setup",
                self.bin.display()
            )
        })
    }

    /// Runs helm and panics with its stderr unless it succeeded. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "helm {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs helm and panics unless it failed. Returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "helm {} was expected to fail",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts helm in the background (for killing it mid-operation).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start helm")
    }
}

/// Runs helm on the shared stack and panics unless it succeeded. Returns stdout.
pub fn ok(args: &[&str]) -> String {
    shared().ok(args)
}

/// `helm install <release> tests/charts/<chart> -n <ns> --wait --timeout 60s --set <set>...`
/// on the shared stack.
pub fn install(ns: &str, release: &str, chart_name: &str, set: &[&str]) {
    let chart = chart(chart_name);
    let mut args = vec![
        "install",
        release,
        &chart,
        "-n",
        ns,
        "--wait",
        "--timeout",
        "60s",
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    ok(&args);
}

/// The release JSON inside a Helm release Secret (base64 of gzip of JSON).
pub fn payload(secret: &k8s_openapi::api::core::v1::Secret) -> serde_json::Value {
    use base64::Engine as _;
    use std::io::Read;
    let text = &secret.data.as_ref().expect("data")["release"].0;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut json)
        .expect("gzip");
    serde_json::from_slice(&json).expect("JSON")
}

/// `release` JSON encoded as Helm stores it in a Secret's `data.release`.
pub fn encoded(release: &serde_json::Value) -> k8s_openapi::ByteString {
    use base64::Engine as _;
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(release).expect("JSON"))
        .expect("gzip");
    let text = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
    k8s_openapi::ByteString(text.into_bytes())
}
