//! Command-line surface: one clap `Args`, turned into typed values in one place, and the
//! subcommands that run on top of the library.

pub mod check;
pub mod completion;
pub mod config;
pub mod control;
pub mod error;
pub mod history;
pub mod output;
pub mod preflight;
pub mod progress;
pub mod replay;
pub mod run;
pub mod scope;
pub mod spot;
pub mod status;
pub mod table;
pub mod version;
pub mod watch;

pub use error::{CliError, exit};
pub use output::Output;

use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// Watches Helm release revisions in a Kubernetes cluster, judges every upgrade over a bake
/// window and tells the operator (or, where allowed, does) what to do about a bad one.
#[derive(Debug, Parser)]
// An option given twice takes its last value (the chart's `extraArgs` override its own).
#[command(name = "upgrade-guard", version, about, long_about = None, arg_required_else_help = true, args_override_self = true)]
pub struct Args {
    /// Kubeconfig file. Default: the files of $KUBECONFIG (colon-separated, merged as
    /// kubectl does), else ~/.kube/config, else the in-cluster service account.
    #[arg(long, global = true, value_name = "FILE")]
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

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a release's revisions with status, chart, app version and description, like
    /// `helm history`, decoded the way the daemon decodes them (user values are never read).
    History(history::HistoryArgs),
    /// Evaluate the latest revision of a release (waiting at most --wait for a final
    /// verdict, following a newer revision if one appears), print every check, the verdict
    /// and the exact command to run. Exit code: 0 healthy, 1 failed, 2 inconclusive, 3
    /// progressing, 4 degraded, 5 uninstalled; errors: 64 bad arguments, 65 undecodable
    /// release, 66 release not found, 69 cluster unreachable or API error, 77 not allowed,
    /// 78 bad configuration or kubeconfig.
    Check(check::CheckArgs),
    /// Print a shell completion script. bash: `source <(upgrade-guard completion bash)`;
    /// zsh: `upgrade-guard completion zsh > "${fpath[1]}/_upgrade-guard"`; fish:
    /// `upgrade-guard completion fish > ~/.config/fish/completions/upgrade-guard.fish`;
    /// powershell: `upgrade-guard completion powershell | Out-String | Invoke-Expression`.
    Completion(completion::CompletionArgs),
    /// Accept a revision as good (`--revision N`): judged healthy whatever was found, its
    /// alerts resolve, and it becomes a valid rollback target. Every replica of the daemon
    /// honours it within one round (docs/incident.md).
    Accept(control::AcceptArgs),
    /// Print the built-in configuration or validate a configuration file.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run the daemon: watch every release, judge each new revision over its bake window,
    /// serve /metrics, /livez, /readyz and /api/v1/releases, alert; for releases in `mode:
    /// auto`, roll a failed upgrade back under the safety rules of docs/actions.md (only the
    /// replica holding the leader Lease alerts and acts).
    Run(run::RunArgs),
    /// Check that every release of the suite operates normally before an upgrade ("do not
    /// attempt to upgrade a service unless all the services are operating normally"): each
    /// installed release deployed, not pending, healthy right now, its dependencies up.
    /// Exit 0 ready, 1 not ready (what is wrong is printed); 69 when the cluster cannot be
    /// reached. For CI and as a Helm pre-upgrade hook (docs/runbook.md).
    Preflight(preflight::PreflightArgs),
    /// Judge the latest revision of a release again now, with a fresh bake window
    /// (docs/incident.md).
    Recheck(control::Target),
    /// What upgrade-guard would have done with past upgrades: every revision of the period
    /// (`--since`, default 30d) judged again round by round from Helm's history and
    /// Prometheus' history (kube-state-metrics series for the pods), with this
    /// configuration, beside what actually happened next; `--at REVISION` shows one upgrade
    /// round by round. Reads only (docs/replay.md).
    Replay(replay::ReplayArgs),
    /// Lift a suspension (docs/incident.md).
    Resume(control::Target),
    /// Every watched release in one table: revision, chart and app version, verdict, checks
    /// not passing, recommended action, mode, last automatic action; from a running daemon
    /// (`--url`) or judged now.
    Status(status::StatusArgs),
    /// Leave a release alone for a while (`--for`, default 4h): still watched, judged and
    /// shown, but none of its verdicts is alerted or mailed and no automatic action is
    /// taken; the suspension expires by itself (docs/incident.md).
    Suspend(control::SuspendArgs),
    /// Print this program's version and git revision, and with --url the running daemon's.
    Version(version::VersionArgs),
    /// Watch Helm release Secrets and print every release event (installed, upgraded,
    /// upgrade failed, rolled back, uninstalled, stuck pending) as it happens.
    Watch(watch::WatchArgs),
}

/// The global helm flags that point helm at the cluster the daemon uses.
pub fn helm_args(args: &Args) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(k) = &args.kubeconfig {
        out.push("--kubeconfig".to_string());
        out.push(k.display().to_string());
    }
    if let Some(c) = &args.context {
        out.push("--kube-context".to_string());
        out.push(c.clone());
    }
    out
}

/// Builds a Kubernetes client from `--kubeconfig`/`--context`, else kube's own inference
/// (every file of `KUBECONFIG`, merged; `~/.kube/config`; in-cluster).
pub async fn kube_client(args: &Args) -> Result<kube::Client, CliError> {
    let config = kube_config(args).await?;
    kube::Client::try_from(config).map_err(|e| CliError::Kubeconfig(Box::new(e)))
}

/// The client configuration [`kube_client`] uses, for commands that set their own timeouts.
pub async fn kube_config(args: &Args) -> Result<kube::Config, CliError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let bad = |e: kube::config::KubeconfigError| CliError::Kubeconfig(Box::new(e));
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|source| {
                CliError::Kubeconfig(Box::new(error::KubeconfigFile {
                    path: path.clone(),
                    source,
                }))
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(bad)?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await.map_err(bad)?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| CliError::Kubeconfig(Box::new(e)))?,
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn an_option_given_twice_takes_its_last_value_and_repeated_ones_add_up() {
        use clap::Parser;
        let args = Args::try_parse_from([
            "upgrade-guard",
            "--log-format=json",
            "watch",
            "-n",
            "a",
            "-n",
            "b",
            "--log-format=text",
        ])
        .unwrap();
        assert!(matches!(args.log_format, LogFormat::Text));
        let Command::Watch(watch) = args.command else {
            panic!("watch")
        };
        assert_eq!(watch.namespaces, ["a", "b"]);
    }

    #[test]
    fn every_shell_gets_a_completion_script_that_knows_the_commands_and_their_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            super::completion::write(
                shell,
                &mut <super::Args as clap::CommandFactory>::command(),
                &mut out,
            );
            let text = String::from_utf8(out).unwrap();
            for word in [
                "upgrade-guard",
                "check",
                "status",
                "preflight",
                "kubeconfig",
            ] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }
}
