//! upgrade-guard's image (built once per test binary by `scripts/image` from
//! `deploy/Dockerfile`, with this build's binary) and its containers, run by podman as the
//! chart runs them: non-root, read-only root filesystem, `/tmp` a tmpfs, the daemon PID 1
//! of its PID namespace; on the host network to reach the local stack.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::cli::{Run, Spawned, spawn_command};
use super::stack::stack;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image")
}

/// `podman <args>` as `scripts/image` runs it.
pub fn podman(args: &[&str]) -> std::process::Output {
    Command::new(script())
        .arg("podman")
        .args(args)
        .output()
        .expect("run podman")
}

/// The image, built once per test binary; its size is printed by `scripts/image`.
pub fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tag = "localhost/upgrade-guard:test".to_string();
        let out = Command::new(script())
            .args([
                "--binary",
                env!("CARGO_BIN_EXE_upgrade-guard"),
                "--tag",
                &tag,
            ])
            .output()
            .expect("run scripts/image");
        assert!(
            out.status.success(),
            "scripts/image failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
        tag
    })
}

/// Files the container reads (the configuration, a kubeconfig), readable by its user and
/// mounted read-only at `/etc/upgrade-guard`.
pub struct Mounted {
    dir: tempfile::TempDir,
}

impl Mounted {
    /// The stack's kubeconfig and `config` (YAML).
    pub fn new(config: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(&stack().kubeconfig, dir.path().join("kubeconfig")).unwrap();
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        for f in ["kubeconfig", "config.yaml"] {
            std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        Self { dir }
    }
}

/// Runs the image once with `args` (its entrypoint is `upgrade-guard`) and `files` mounted
/// at `/etc/upgrade-guard`, as the chart's pods run: exit code and everything it printed.
pub fn once(files: &Mounted, args: &[&str]) -> (i32, String) {
    let volume = format!("{}:/etc/upgrade-guard:ro", files.dir.path().display());
    let mut all = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--user",
        "65532:65532",
        "--cap-drop",
        "ALL",
        "-v",
        &volume,
        image(),
    ];
    all.extend(args);
    let out = podman(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A container of the image, removed when dropped.
pub struct Container {
    name: String,
    spawned: Option<Spawned>,
}

impl Container {
    /// `upgrade-guard run` in a container named `name`, listening on `port`, with `env`.
    pub fn run(name: &str, files: &Mounted, port: u16, env: &[(&str, &str)]) -> Self {
        let _ = podman(&["rm", "-f", name]);
        let volume = format!("{}:/etc/upgrade-guard:ro", files.dir.path().display());
        let listen = format!("127.0.0.1:{port}");
        let mut args: Vec<String> = [
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=256m,mode=1777",
            "--user",
            "65532:65532",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "-v",
            &volume,
            "-e",
            "KUBECONFIG=/etc/upgrade-guard/kubeconfig",
            "-e",
            "RUST_LOG=info",
        ]
        .map(String::from)
        .to_vec();
        for (k, v) in env {
            args.extend(["-e".to_string(), format!("{k}={v}")]);
        }
        args.extend(
            [
                image(),
                "run",
                "--config",
                "/etc/upgrade-guard/config.yaml",
                "--listen",
                &listen,
            ]
            .map(String::from),
        );
        let mut cmd = Command::new(script());
        cmd.arg("podman");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self {
            name: name.to_string(),
            spawned: Some(spawn_command(cmd, &args, &[], None)),
        }
    }

    /// Waits until its stderr has a line containing `words`.
    pub fn wait_for_stderr(&mut self, words: &str, timeout: Duration) {
        self.spawned
            .as_mut()
            .unwrap()
            .wait_for_stderr(words, timeout);
    }

    /// `podman exec` in it: exit code and standard output.
    pub fn exec(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend(args);
        let out = podman(&all);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Kills the container as the kernel or the kubelet does (SIGKILL to its PID 1: the
    /// kernel ends everything in it) and returns what it printed.
    pub fn kill(mut self) -> Run {
        let out = podman(&["kill", "--signal", "KILL", &self.name]);
        assert!(
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("no such"),
            "podman kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.spawned.take().unwrap().finish()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "--time", "0", &self.name]);
    }
}
