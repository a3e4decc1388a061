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
}

impl HelmRunner {
    /// Runs the rollback; the child is killed if it outlives `timeout` + 1 minute (helm
    /// should have given up by itself by then).
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
            // rollback rather than leaving the release locked in pending-rollback.
            .kill_on_drop(false);
        if storage != Storage::Secret {
            cmd.env("HELM_DRIVER", storage.as_str());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return HelmOutcome {
                    success: false,
                    detail: format!("cannot run {}: {e}", self.program),
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
        let deadline = timeout + Duration::from_secs(60);
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
            },
            Ok(Ok(status)) => HelmOutcome {
                success: false,
                detail: format!("helm rollback exited with {status}: {last}"),
            },
            Ok(Err(e)) => HelmOutcome {
                success: false,
                detail: format!("waiting for helm failed: {e}"),
            },
            Err(_) => {
                let _ = child.kill().await;
                HelmOutcome {
                    success: false,
                    detail: format!(
                        "helm rollback was still running {} after its start and was killed: {last}",
                        human(deadline)
                    ),
                }
            }
        }
    }
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
