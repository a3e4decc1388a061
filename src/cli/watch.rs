//! `upgrade-guard watch`: the release tracker on its own, printing each release event.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::config::ConfigArgs;
use super::error::CliError;
use super::output::Output;
use crate::config::{Config, ConfigError, FieldError, WatchConfig};
use crate::metrics::registry;
use crate::release::event::{ReleaseEvent, ReleaseEventKind};
use crate::release::labels::Storage;
use crate::tracker::metrics::TrackerMetrics;
use crate::tracker::{Tracker, TrackerConfig};
use crate::units::parse_duration;

/// Arguments of `watch`. Without flags, the `watch` section of the configuration decides
/// (namespaces, storage drivers, thresholds); flags override it and follow its rules.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Namespace to watch; repeat for several (overrides `watch.namespaces`; `*` for all).
    #[arg(short, long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Every namespace (the same as `-n '*'`).
    #[arg(short = 'A', long, conflicts_with = "namespaces")]
    pub all_namespaces: bool,
    /// Helm storage driver to watch; repeat for both (overrides `watch.storage`).
    #[arg(long, value_enum, value_name = "DRIVER")]
    pub storage: Vec<StorageArg>,
    /// Report a newest revision still pending-* after this long (a killed helm); overrides
    /// `watch.stuck_pending_after`.
    #[arg(long, value_parser = parse_duration)]
    pub stuck_pending_after: Option<Duration>,
    /// Refuse release payloads that decompress to more than this many bytes (zip bombs);
    /// overrides `watch.max_payload_bytes`.
    #[arg(long)]
    pub max_payload_bytes: Option<usize>,
    /// Output format: readable lines, or one JSON object per line.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Where the configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `--storage` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageArg {
    /// Secrets (Helm's default driver).
    Secret,
    /// ConfigMaps (`HELM_DRIVER=configmap`).
    Configmap,
}

impl From<StorageArg> for Storage {
    fn from(s: StorageArg) -> Self {
        match s {
            StorageArg::Secret => Storage::Secret,
            StorageArg::Configmap => Storage::ConfigMap,
        }
    }
}

impl WatchArgs {
    /// The configuration's `watch` section with the flags applied, checked by the rules
    /// the file follows.
    pub fn settings(&self, config: &Config) -> Result<WatchConfig, CliError> {
        let mut watch = config.watch.clone();
        if self.all_namespaces {
            watch.namespaces = Vec::new();
        } else if !self.namespaces.is_empty() {
            watch.namespaces = if self.namespaces.iter().any(|n| n == "*") {
                Vec::new()
            } else {
                self.namespaces.clone()
            };
        }
        if !self.storage.is_empty() {
            watch.storage = self.storage.iter().map(|s| Storage::from(*s)).collect();
        }
        if let Some(d) = self.stuck_pending_after {
            watch.stuck_pending_after = d;
        }
        if let Some(n) = self.max_payload_bytes {
            watch.max_payload_bytes = n;
        }
        match watch.problem() {
            None => Ok(watch),
            Some((field, reason)) => Err(CliError::Config(ConfigError::field(
                "command line",
                FieldError::new(
                    format!("--{}", field.replace('_', "-")),
                    format!("{reason} (the same rule as watch.{field} in the configuration)"),
                ),
            ))),
        }
    }
}

/// One readable line for an event.
pub fn render_line(event: &ReleaseEvent) -> String {
    let what = match &event.kind {
        ReleaseEventKind::Installed => "installed".to_string(),
        ReleaseEventKind::InstallFailed => "install failed".to_string(),
        ReleaseEventKind::Upgraded { from, to } => format!("upgraded {from} -> {to}"),
        ReleaseEventKind::UpgradeFailed { from, to } => match from {
            Some(from) => format!("upgrade {from} -> {to} failed"),
            None => format!("upgrade to {to} failed"),
        },
        ReleaseEventKind::RolledBack { to, target } => {
            format!("rolled back to {target} (new revision {to})")
        }
        ReleaseEventKind::RollbackFailed { to, target } => match target {
            Some(target) => format!("rollback to {target} failed (revision {to})"),
            None => format!("rollback failed (revision {to})"),
        },
        ReleaseEventKind::Uninstalled { kept_history } => {
            if *kept_history {
                "uninstalled (history kept)".to_string()
            } else {
                "uninstalled".to_string()
            }
        }
        ReleaseEventKind::Listed => {
            format!("listed at revision {} ({})", event.revision, event.status)
        }
        ReleaseEventKind::StuckPending { status, since } => {
            format!(
                "stuck in {status} since {}",
                since.strftime("%Y-%m-%d %H:%M:%S UTC")
            )
        }
        ReleaseEventKind::Unreadable {
            reason,
            detail,
            retrying,
        } => {
            let next = if *retrying {
                "still retrying"
            } else {
                "not judged"
            };
            format!("UNREADABLE ({reason}, {next}): {detail}")
        }
    };
    let mut line = format!(
        "{}  v{}  {}  {what}",
        event.release, event.revision, event.status
    );
    if event.resumed {
        line.push_str("  (resumed after a restart: inside its bake window)");
    }
    if event.storage != Storage::Secret {
        line.push_str(&format!("  [{}]", event.storage));
    }
    if let Some(s) = &event.summary {
        line.push_str(&format!("  chart {}-{}", s.chart.name, s.chart.version));
        if let Some(app) = &s.chart.app_version {
            line.push_str(&format!(" (app {app})"));
        }
        if !s.description.is_empty() {
            line.push_str(&format!(
                "  {:?}",
                s.description.lines().next().unwrap_or_default()
            ));
        }
    }
    line
}

/// Runs `watch` until interrupted. `kube` is the cluster's client configuration; the
/// tracker's timeouts are applied to it.
pub async fn run(kube: kube::Config, args: &WatchArgs) -> Result<i32, CliError> {
    let config = Arc::new(args.config.load()?);
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    let watch = args.settings(&config)?;
    let client = kube::Client::try_from(crate::tracker::client_config(kube, watch.idle_timeout))
        .map_err(|e| CliError::Kubeconfig(Box::new(e)))?;
    let mut registry = registry();
    let metrics = TrackerMetrics::register(&mut registry);
    let config =
        TrackerConfig::from_settings(&watch, Arc::new(move |key| Some(config.bake_window(key))));
    let (tx, mut rx) = mpsc::channel(256);
    let (synced_tx, _synced_rx) = watch::channel(false);
    let tracker = tokio::spawn(Tracker::new(client, config, metrics).run(tx, synced_tx));
    let mut stdout = std::io::stdout().lock();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = rx.recv() => {
                let Some(event) = event else { break };
                let line = match args.output {
                    Output::Table => render_line(&event),
                    Output::Json => serde_json::to_string(&event).map_err(anyhow::Error::from)?,
                    // One document per event, as `kubectl get -w -o yaml` prints them.
                    Output::Yaml => format!("---\n{}", super::output::yaml(&event)?.trim_end()),
                };
                writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .map_err(anyhow::Error::from)?;
            }
        }
    }
    tracker.abort();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{ReleaseKey, ReleaseStatus};

    fn args(extra: &[&str]) -> WatchArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            watch: WatchArgs,
        }
        let mut argv = vec!["watch"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().watch
    }

    #[test]
    fn the_file_decides_unless_a_flag_overrides_it_by_the_same_rules() {
        let config = Config::default_profile().unwrap();
        let from_file = args(&[]).settings(&config).unwrap();
        assert_eq!(from_file, config.watch);
        assert_eq!(from_file.namespaces, ["gim", "gsp", "gca"]);

        let all = args(&["-n", "*", "--storage", "configmap", "--storage", "secret"])
            .settings(&config)
            .unwrap();
        assert!(all.namespaces.is_empty());
        assert_eq!(all.storage, [Storage::ConfigMap, Storage::Secret]);

        for (flags, expected) in [
            (
                &["--max-payload-bytes", "0"][..],
                "--max-payload-bytes: must be at least 1024",
            ),
            (
                &["--stuck-pending-after", "0s"][..],
                "--stuck-pending-after: must be greater than 0",
            ),
        ] {
            let err = args(flags).settings(&config).unwrap_err();
            assert_eq!(err.exit_code(), crate::cli::exit::CONFIG);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn unreadable_and_resumed_events_say_so() {
        let mut event = ReleaseEvent {
            release: ReleaseKey::new("gim", "gim"),
            revision: 7,
            status: ReleaseStatus::Deployed,
            storage: Storage::ConfigMap,
            resumed: true,
            kind: ReleaseEventKind::Upgraded { from: 6, to: 7 },
            summary: None,
        };
        assert_eq!(
            render_line(&event),
            "gim/gim  v7  deployed  upgraded 6 -> 7  (resumed after a restart: inside its bake window)  [configmap]"
        );
        event.resumed = false;
        event.storage = Storage::Secret;
        event.kind = ReleaseEventKind::Unreadable {
            reason: "forbidden",
            detail: "cannot read Secret x after 1 attempts: forbidden".into(),
            retrying: true,
        };
        assert_eq!(
            render_line(&event),
            "gim/gim  v7  deployed  UNREADABLE (forbidden, still retrying): cannot read Secret x after 1 attempts: forbidden"
        );
    }

    #[test]
    fn lines_say_what_happened() {
        let event = ReleaseEvent {
            release: ReleaseKey::new("gim", "gim"),
            revision: 4,
            status: ReleaseStatus::Deployed,
            storage: Storage::Secret,
            resumed: false,
            kind: ReleaseEventKind::RolledBack { to: 4, target: 2 },
            summary: None,
        };
        assert_eq!(
            render_line(&event),
            "gim/gim  v4  deployed  rolled back to 2 (new revision 4)"
        );
    }
}
