//! `upgrade-guard run`: the daemon (see `crate::daemon`).

use std::net::SocketAddr;
use std::sync::Arc;

use super::config::ConfigArgs;
use super::error::{CliError, exit};
use crate::daemon::{self, DaemonError, DaemonOptions, signals};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where the HTTP server (/metrics, /livez, /readyz, /api/v1/releases) listens.
    #[arg(long, env = "UPGRADE_GUARD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// `mode: auto` reports exactly what it would run (the command, the target and why)
    /// in the log, `/api/v1/releases` and `upgrade_guard_rollbacks_total{outcome="dry_run"}`,
    /// and runs nothing (same as `actions.dry_run: true`).
    #[arg(long)]
    pub dry_run: bool,
    /// Where the configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs the daemon until SIGTERM/SIGINT (drains) or a second signal (exits at once).
/// `helm_args` go before every helm subcommand the daemon runs (the same `--kubeconfig`
/// and context as the daemon's own client).
pub async fn run(
    kube: kube::Config,
    helm_args: Vec<String>,
    args: &RunArgs,
) -> Result<i32, CliError> {
    let config = Arc::new(args.config.load()?);
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    let options = DaemonOptions {
        listen: args.listen,
        helm_args,
        dry_run: args.dry_run,
        identity: None,
    };
    let (first, second) = signals::first_and_second();
    tokio::select! {
        result = daemon::run(kube, config, options, first, None) => {
            result.map_err(|e| match e {
                DaemonError::Kube(e) => CliError::Kubeconfig(Box::new(e)),
                DaemonError::Prometheus(p) => CliError::Prometheus(p),
                other => CliError::Other(anyhow::Error::from(other)),
            })?;
            Ok(exit::HEALTHY)
        }
        // A second signal while the daemon drains: stop now (helm runs on by itself).
        () = second => Ok(exit::SIGNALLED),
    }
}
