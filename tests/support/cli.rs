//! The real `upgrade-guard` binary, run against the stack: to completion ([`run`],
//! [`check`]), or in the background with its stderr followed line by line ([`spawn`]), so
//! a test can wait for what the command says instead of sleeping.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::stack::stack;

/// A finished command: exit code and output.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code and that stdout says each of `words`.
    pub fn expect(&self, code: i32, words: &[&str]) {
        assert_eq!(self.code, code, "{}\n{}", self.stdout, self.stderr);
        for w in words {
            assert!(
                self.stdout.contains(w),
                "stdout lacks {w:?}:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }

    /// Asserts that stderr says `words`.
    pub fn says_on_stderr(&self, words: &str) {
        assert!(
            self.stderr.contains(words),
            "stderr lacks {words:?}:\n{}",
            self.stderr
        );
    }

    /// Asserts that stdout does not say `words`.
    pub fn refuse(&self, words: &str) {
        assert!(
            !self.stdout.contains(words),
            "stdout says {words:?}:\n{}",
            self.stdout
        );
    }
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upgrade-guard"));
    cmd.envs(stack().child_env())
        .env_remove("UPGRADE_GUARD_PROMETHEUS_URL")
        .env_remove("UPGRADE_GUARD_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("HELM_NAMESPACE");
    cmd
}

/// Runs `upgrade-guard <args>` with the stack's KUBECONFIG plus `env`.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = binary()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run upgrade-guard");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A configuration file that lives as long as this value.
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    /// Its path.
    pub path: PathBuf,
}

impl ConfigFile {
    /// The path as a string, for arguments.
    pub fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// Writes `text` to a fresh file.
pub fn config_file(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).expect("write config");
    ConfigFile { _dir: dir, path }
}

/// Short timings so that each scenario decides within seconds: evaluation every 300 ms,
/// scrape interval 1 s, bake 6 s, readiness deadline 40 s, pending timeout 3 s, grace 2 s.
/// `defaults_extra` lines are indented by two spaces; `rest` follows (e.g. `releases:`).
pub fn short_config(prometheus_url: &str, defaults_extra: &str, rest: &str) -> String {
    format!(
        "prometheus:\n  url: {prometheus_url}\n  timeout: 2s\n  retry_interval: 200ms\n  errors_before_inconclusive: 4\n  scrape_interval: 1s\n\
         evaluation:\n  interval: 300ms\n\
         defaults:\n  bake_window: 6s\n  readiness_deadline: 40s\n  pending_timeout: 3s\n  stall_timeout: 3s\n  rollback_timeout: 5m\n  metrics_grace: 2s\n\
         {defaults_extra}{rest}"
    )
}

/// `upgrade-guard check <release> -n <ns> --config <config> --wait 90s <extra>`.
pub fn check(release: &str, ns: &str, config: &str, extra: &[&str]) -> Run {
    check_waiting("90s", release, ns, config, extra)
}

/// `check` with its own `--wait`.
pub fn check_waiting(wait: &str, release: &str, ns: &str, config: &str, extra: &[&str]) -> Run {
    let file = config_file(config);
    let path = file.arg();
    let mut args = vec![
        "check", release, "-n", ns, "--config", &path, "--wait", wait,
    ];
    args.extend(extra);
    run(&args, &[])
}

/// A command running in the background.
pub struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: String,
    _config: Option<ConfigFile>,
}

/// Starts `upgrade-guard <args>` (stack KUBECONFIG plus `env`) in the background.
pub fn spawn(args: &[&str], env: &[(&str, &str)], config: Option<ConfigFile>) -> Spawned {
    spawn_command(binary(), args, env, config)
}

/// [`spawn`] as PID 1 of a PID namespace of its own, as in a container: when it dies the
/// kernel kills every process it started (helm included). Killing the returned command
/// kills it (`unshare --kill-child`).
pub fn spawn_in_pid_namespace(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let inner = binary();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--"])
        .arg(inner.get_program())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
    for (k, v) in inner.get_envs() {
        if v.is_none() {
            cmd.env_remove(k);
        }
    }
    spawn_command(cmd, args, env, None)
}

pub fn spawn_command(
    mut cmd: Command,
    args: &[&str],
    env: &[(&str, &str)],
    config: Option<ConfigFile>,
) -> Spawned {
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start upgrade-guard");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Spawned {
        child,
        lines,
        stderr: String::new(),
        _config: config,
    }
}

impl Spawned {
    /// Waits until stderr has a line containing `words` (or panics after `timeout`).
    pub fn wait_for_stderr(&mut self, words: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push_str(&line);
                    self.stderr.push('\n');
                    if line.contains(words) {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {words:?} within {timeout:?}; so far:\n{}",
                    self.stderr
                ),
            }
        }
    }

    /// Waits until stdout holds `n` lines (or panics after `timeout`), then stops the
    /// command and returns what it wrote.
    pub fn kill_after_lines(mut self, n: usize, timeout: Duration) -> Run {
        let mut out = self.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(&mut out);
            let mut text = String::new();
            for _ in 0..n {
                if reader.read_line(&mut text).unwrap_or(0) == 0 {
                    break;
                }
            }
            let _ = tx.send(text);
        });
        let stdout = rx.recv_timeout(timeout).unwrap_or_else(|_| {
            let _ = self.child.kill();
            panic!("fewer than {n} stdout lines within {timeout:?}")
        });
        let mut run = self.kill();
        run.stdout = stdout;
        run
    }

    /// Sends `signal` (a name like `TERM`) to the command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Stops the command (SIGKILL) and returns what it wrote.
    pub fn kill(mut self) -> Run {
        let _ = self.child.kill();
        self.finish()
    }

    /// Waits for the command to end and returns its result.
    pub fn finish(mut self) -> Run {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let status = self.child.wait().expect("wait for upgrade-guard");
        while let Ok(line) = self.lines.recv() {
            self.stderr.push_str(&line);
            self.stderr.push('\n');
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.stderr,
        }
    }
}
