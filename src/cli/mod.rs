//! Command-line surface: one clap `Args`, turned into typed values in one place, and the
//! subcommands that run on top of the library.

pub mod check;
pub mod config;
pub mod history;
pub mod watch;

use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// Watches Helm release revisions in a Kubernetes cluster, judges every upgrade over a bake
/// window and tells the operator (or, where allowed, does) what to do about a bad one.
#[derive(Debug, Parser)]
#[command(name = "upgrade-guard", version, about, long_about = None, arg_required_else_help = true)]
pub struct Args {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, env = "KUBECONFIG", global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,

    /// Log level filter, e.g. `info` or `upgrade_guard=debug` (overridden by RUST_LOG).
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns / readable lines.
    Table,
    /// JSON.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a release's revisions with status, chart, app version and description, like
    /// `helm history`, decoded the way the daemon decodes them (user values are never read).
    History(history::HistoryArgs),
    /// Evaluate the latest revision of a release once (waiting at most --wait for a final
    /// verdict), print every check, the verdict and the exact command to run. Exit code 0
    /// healthy, 1 failed, 2 inconclusive, 3 progressing, 4 degraded.
    Check(check::CheckArgs),
    /// Print the built-in configuration or validate a configuration file.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Watch Helm release Secrets and print every release event (installed, upgraded,
    /// upgrade failed, rolled back, uninstalled, stuck pending) as it happens.
    Watch(watch::WatchArgs),
}

pub use crate::config::parse_duration;

/// Builds a Kubernetes client from `--kubeconfig`/`--context`, else the usual inference.
pub async fn kube_client(args: &Args) -> anyhow::Result<kube::Client> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await?,
        (None, None) => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::time::Duration;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn durations_read_like_an_operator_writes_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5").unwrap_err().contains("like 90s"));
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
    }
}
