//! The local stack: reuse the one `scripts/stack up` started (what `scripts/test` does), or
//! start a private one for this test binary and stop it when the binary exits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What a test needs to reach the running stack.
#[derive(Debug)]
pub struct Stack {
    /// Directory of this stack (logs, Maildir, kubeconfig).
    pub dir: PathBuf,
    /// Every variable of the stack's env file.
    pub env: BTreeMap<String, String>,
    /// Admin kubeconfig of the test cluster.
    pub kubeconfig: PathBuf,
    /// The helm binary built from the Go module.
    pub helm_bin: PathBuf,
    /// `http://127.0.0.1:<port>` of Alertmanager.
    pub alertmanager_url: String,
    /// Port of the SMTP server (plain, loopback).
    pub smtp_port: u16,
    /// Maildir in which the SMTP server stores what it receives.
    pub maildir: PathBuf,
}

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
/// Write end of the watchdog's stdin. Never dropped: the OS closes it when this process
/// exits, the watchdog reads EOF and stops the private stack.
static WATCHDOG: OnceLock<std::process::ChildStdin> = OnceLock::new();

/// The repository root (where `scripts/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The stack, started on first use. Panics, naming the fix, when it cannot be had.
pub fn stack() -> &'static Stack {
    match STACK.get_or_init(start_or_reuse) {
        Ok(stack) => stack,
        Err(message) => panic!("{message}"),
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("UPGRADE_GUARD_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("upgrade-guard-stack"))
}

fn stack_command(dir: &Path, verb: &str) -> Command {
    let mut cmd = Command::new(repo_root().join("scripts/stack"));
    cmd.arg(verb).env("UPGRADE_GUARD_STACK_DIR", dir);
    cmd
}

fn start_or_reuse() -> Result<Stack, String> {
    let shared = shared_dir();
    let status = stack_command(&shared, "status")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run scripts/stack: {e}"))?;
    if status.success() {
        return load(&shared);
    }
    // No shared stack: start one for this test binary only.
    remove_stale_private_stacks();
    let dir = std::env::temp_dir().join(format!("upgrade-guard-stack-test-{}", std::process::id()));
    let mut watchdog = Command::new("bash")
        .arg("-c")
        .arg(r#"cat >/dev/null; exec "$0" down >/dev/null 2>&1"#)
        .arg(repo_root().join("scripts/stack"))
        .env("UPGRADE_GUARD_STACK_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the stack watchdog: {e}"))?;
    if let Some(stdin) = watchdog.stdin.take() {
        let _ = WATCHDOG.set(stdin);
    }
    eprintln!(
        "no running stack at {}: starting a private one in {} (scripts/test shares one across test binaries)",
        shared.display(),
        dir.display()
    );
    let out = stack_command(&dir, "up")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run scripts/stack up: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the local stack did not start (scripts/stack up exited {}). If a binary is missing, run scripts/setup.\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    load(&dir)
}

/// Private stacks are stopped by their watchdog but their directories (logs, etcd,
/// PostgreSQL data: about 100 MB each) stay for a look after a failure; those of test
/// binaries that have exited are removed when the next private stack starts.
fn remove_stale_private_stacks() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("upgrade-guard-stack-test-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let exited = !Path::new(&format!("/proc/{pid}")).exists();
        let stopped = stack_command(&entry.path(), "status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| !s.success());
        if exited && stopped {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Parses the `export KEY=VALUE` lines of the stack's env file.
fn load(dir: &Path) -> Result<Stack, String> {
    let path = dir.join("env");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let env: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |key: &str| {
        env.get(key)
            .cloned()
            .ok_or_else(|| format!("{} has no {key}", path.display()))
    };
    Ok(Stack {
        dir: dir.to_path_buf(),
        kubeconfig: get("KUBECONFIG")?.into(),
        helm_bin: get("HELM_BIN")?.into(),
        alertmanager_url: get("ALERTMANAGER_URL")?,
        smtp_port: get("SMTP_PORT")?
            .parse()
            .map_err(|e| format!("SMTP_PORT: {e}"))?,
        maildir: get("SMTP_MAILDIR")?.into(),
        env,
    })
}

impl Stack {
    /// libpq's environment for the stack's PostgreSQL (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGSSLMODE=verify-full`, `PGSSLROOTCERT`), for psql and the tests.
    pub fn postgres_env(&self) -> Vec<(String, String)> {
        [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGSSLMODE",
            "PGSSLROOTCERT",
        ]
        .iter()
        .filter_map(|k| self.env.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
    }

    /// Environment for a child process (helm, kubectl-like tools, the daemon) that talks to
    /// the test cluster: KUBECONFIG and helm's private homes.
    pub fn child_env(&self) -> Vec<(String, String)> {
        [
            "KUBECONFIG",
            "HELM_CACHE_HOME",
            "HELM_CONFIG_HOME",
            "HELM_DATA_HOME",
        ]
        .iter()
        .filter_map(|k| self.env.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
    }
}
