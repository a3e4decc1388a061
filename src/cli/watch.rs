//! `upgrade-guard watch`: the release tracker on its own, printing each release event.

use std::io::Write as _;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Output, parse_duration};
use crate::metrics::{TrackerMetrics, registry};
use crate::release::decode::DecodeLimits;
use crate::release::event::{ReleaseEvent, ReleaseEventKind};
use crate::tracker::{Tracker, TrackerConfig};

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Namespace to watch; repeat for several. Default: all namespaces.
    #[arg(short, long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Report a newest revision still pending-* after this long (a killed helm).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub stuck_pending_after: Duration,
    /// Refuse release payloads that decompress to more than this many bytes (zip bombs).
    #[arg(long, default_value_t = crate::release::decode::DEFAULT_MAX_DECOMPRESSED_BYTES)]
    pub max_payload_bytes: usize,
    /// Output format: readable lines, or one JSON object per line.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
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
        ReleaseEventKind::StuckPending { status, since } => {
            format!(
                "stuck in {status} since {}",
                since.strftime("%Y-%m-%d %H:%M:%S UTC")
            )
        }
    };
    let mut line = format!(
        "{}  v{}  {}  {what}",
        event.release, event.revision, event.status
    );
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

/// Runs `watch` until interrupted.
pub async fn run(client: kube::Client, args: &WatchArgs) -> Result<i32, super::CliError> {
    let mut registry = registry();
    let metrics = TrackerMetrics::register(&mut registry);
    let config = TrackerConfig {
        namespaces: args.namespaces.clone(),
        stuck_pending_after: args.stuck_pending_after,
        decode_limits: DecodeLimits {
            max_decompressed_bytes: args.max_payload_bytes,
        },
        ..TrackerConfig::default()
    };
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

    #[test]
    fn lines_say_what_happened() {
        let event = ReleaseEvent {
            release: ReleaseKey::new("gim", "gim"),
            revision: 4,
            status: ReleaseStatus::Deployed,
            kind: ReleaseEventKind::RolledBack { to: 4, target: 2 },
            summary: None,
        };
        assert_eq!(
            render_line(&event),
            "gim/gim  v4  deployed  rolled back to 2 (new revision 4)"
        );
    }
}
