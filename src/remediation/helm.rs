//! Runs `helm rollback` (I/O): a child process with its own deadline, every line it prints
//! logged, the last lines kept for the record. Always with the target revision, `--wait`
//! and `--timeout`: never a bare `helm rollback <release>` (that goes to current − 1 even
//! when it failed).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tracing::info;

use crate::release::ReleaseKey;
use crate::release::labels::Storage;
use crate::units::human;
use crate::verdict::rollback_args;

/// Lines of helm's output kept for the record.
const TAIL_LINES: usize = 8;

/// How `helm` is run.
#[derive(Debug, Clone)]
pub struct HelmRunner {
    /// The binary.
    pub program: String,
    /// Extra arguments before the subcommand (e.g. `--kubeconfig FILE`).
    pub global_args: Vec<String>,
}

/// What helm did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmOutcome {
    /// Exited 0.
    pub success: bool,
    /// In words: the exit status or the deadline, and helm's last lines.
    pub detail: String,
    /// Helm and everything it started have stopped (exited, or killed and reaped): a
    /// revision it left pending is nobody's any more.
    pub gone: bool,
}

impl HelmRunner {
    /// Runs the rollback; the child and its process group are killed if they outlive
    /// [`kill_deadline`] (helm should have given up by itself by then).
    pub async fn rollback(
        &self,
        release: &ReleaseKey,
        storage: Storage,
        target: u32,
        timeout: Duration,
    ) -> HelmOutcome {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.global_args)
            .args(rollback_args(release, target, timeout, true))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A helm that outlives this process (killed without a drain) finishes the
            // rollback rather than leaving the release locked in pending-rollback; its own
            // process group keeps a Ctrl-C or a signal to ours from reaching it, and lets
            // the deadline stop helm and anything a wrapper started, together.
            .kill_on_drop(false)
            .process_group(0);
        if storage != Storage::Secret {
            cmd.env("HELM_DRIVER", storage.as_str());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return HelmOutcome {
                    success: false,
                    detail: format!("cannot run {}: {e}", self.program),
                    gone: true,
                };
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(forward(BufReader::new(out), tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(forward(BufReader::new(err), tx.clone())));
        }
        drop(tx);
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let deadline = kill_deadline(timeout);
        let waited = tokio::time::timeout(deadline, async {
            while let Some(line) = rx.recv().await {
                info!(release = %release, helm = %line, "helm rollback");
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            child.wait().await
        })
        .await;
        for r in readers {
            r.abort();
        }
        let last = tail.iter().cloned().collect::<Vec<_>>().join(" | ");
        match waited {
            Ok(Ok(status)) if status.success() => HelmOutcome {
                success: true,
                detail: last,
                gone: true,
            },
            Ok(Ok(status)) => HelmOutcome {
                success: false,
                detail: format!("helm rollback exited with {status}: {last}"),
                gone: true,
            },
            Ok(Err(e)) => HelmOutcome {
                success: false,
                detail: format!("waiting for helm failed: {e}"),
                gone: false,
            },
            Err(_) => {
                // The whole group, then the leader reaped: once this returns, nothing this
                // helm started still runs.
                if let Some(pid) = child
                    .id()
                    .and_then(|p| rustix::process::Pid::from_raw(p as i32))
                {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let gone = child.kill().await.is_ok();
                HelmOutcome {
                    success: false,
                    gone,
                    detail: format!(
                        "helm rollback was still running {} after its start and was killed: {last}",
                        human(deadline)
                    ),
                }
            }
        }
    }
}

/// When a helm that has not exited is stopped: its `--timeout` plus as much again, at
/// least 15 seconds and at most a minute (helm gives up by itself at its timeout and then
/// records the failure, which takes a loaded machine some seconds).
pub fn kill_deadline(timeout: Duration) -> Duration {
    timeout + timeout.clamp(Duration::from_secs(15), Duration::from_secs(60))
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(
    reader: BufReader<R>,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_gets_as_much_again_as_its_timeout_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(kill_deadline(s(2)), s(17));
        assert_eq!(kill_deadline(s(30)), s(60));
        assert_eq!(kill_deadline(s(15 * 60)), s(16 * 60));
    }
}
