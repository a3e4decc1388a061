//! `upgrade-guard replay`: what upgrade-guard would have done with the past upgrades of
//! releases, with a configuration, from Helm's history and Prometheus' history
//! (docs/replay.md). A table (or JSON/YAML) per revision and a summary; `--at REVISION`
//! shows one upgrade round by round.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::config::ConfigArgs;
use super::error::CliError;
use super::output::Output;
use crate::gather::metrics::PrometheusMetrics;
use crate::gather::prometheus::Prometheus;
use crate::metrics::registry;
use crate::release::ReleaseKey;
use crate::replay::timeline::{RAN_FOR_DAYS, Summary};
use crate::replay::{self, Options, ReleaseReplay, Replayed};
use crate::units::{human, parse_duration};

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Releases to replay (default: every release of the namespace, or of every namespace
    /// with -A).
    pub releases: Vec<String>,
    /// Namespace of the releases. Default, as helm: $HELM_NAMESPACE, else the current
    /// kubeconfig context's namespace.
    #[arg(short, long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Every release of every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["releases", "namespace"])]
    pub all_namespaces: bool,
    /// How far back: revisions whose operation started within this period are replayed.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub since: Duration,
    /// Replay this revision only, round by round with its evidence (one release).
    #[arg(long, value_name = "REVISION")]
    pub at: Option<u32>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Configuration to replay with (a different one shows what a change would do).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// What `replay` prints.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// The start of the period.
    pub since: Timestamp,
    /// The time of the replay.
    pub now: Timestamp,
    /// Every revision replayed, per release.
    pub revisions: Vec<Replayed>,
    /// Revisions that could not be replayed, and why.
    pub skipped: Vec<String>,
    /// The counts.
    pub summary: Summary,
}

/// Runs `replay`; exit 0 once the report is printed.
pub async fn run(client: kube::Client, args: &ReplayArgs) -> Result<i32, CliError> {
    let config = args.config.load()?;
    if args.at.is_some() && args.releases.len() != 1 {
        return Err(CliError::Usage(
            "--at replays one revision: name exactly one release".into(),
        ));
    }
    let mut reg = registry();
    let prometheus = Prometheus::new(&config.prometheus, PrometheusMetrics::register(&mut reg))?;
    // A Prometheus that does not answer would make every revision inconclusive: say so once.
    if let Err(e) = prometheus.instant("vector(1)").await {
        return Err(CliError::Unavailable(format!(
            "cannot replay: {e} (prometheus.url {}); replay reads the past from Prometheus",
            config.prometheus.url
        )));
    }
    let keys = if args.all_namespaces {
        super::spot::releases(&client, &[], &config.watch.storage).await?
    } else {
        let ns = super::scope::namespace(args.namespace.as_deref(), &client);
        if args.releases.is_empty() {
            super::spot::releases(&client, std::slice::from_ref(&ns), &config.watch.storage).await?
        } else {
            args.releases
                .iter()
                .map(|r| ReleaseKey::new(&ns, r))
                .collect()
        }
    };
    let now = Timestamp::now();
    let opts = Options {
        since: now.saturating_sub(args.since).unwrap_or(Timestamp::MIN),
        now,
        revision: args.at,
        rounds: args.at.is_some(),
    };
    let mut replays: Vec<ReleaseReplay> = Vec::new();
    for key in &keys {
        let r = replay::release(&client, &config, &prometheus, key, &opts).await?;
        if r.revisions.is_empty() && r.skipped.is_empty() && !args.releases.is_empty() {
            eprintln!("note: {key}: no revision in the period");
        }
        replays.push(r);
    }
    if let Some(rev) = args.at
        && replays.iter().all(|r| r.revisions.is_empty())
    {
        return Err(CliError::Usage(format!(
            "revision {rev} of {} is not in the history (or started before --since)",
            keys.first().map(ToString::to_string).unwrap_or_default()
        )));
    }
    let report = ReplayReport {
        since: opts.since,
        now,
        summary: replay::summarize(&replays),
        skipped: replays.iter().flat_map(|r| r.skipped.clone()).collect(),
        revisions: replays.into_iter().flat_map(|r| r.revisions).collect(),
    };
    args.output.print(&report, render)?;
    Ok(0)
}

fn after(r: &Replayed) -> String {
    r.after
        .map_or_else(|| "-".into(), |d| format!("+{}", human(d)))
}

/// The report for a terminal: one line per revision, its rounds when there are some, the
/// summary.
pub fn render(report: &ReplayReport) -> String {
    let rows: Vec<[String; 8]> = report
        .revisions
        .iter()
        .map(|r| {
            [
                r.release.to_string(),
                r.revision.to_string(),
                format!("{} {}", r.operation, r.chart),
                r.helm_status.to_string(),
                r.verdict.map_or_else(
                    || format!("({})", ending_words(r)),
                    |v| v.as_str().to_string(),
                ),
                after(r),
                r.would.clone(),
                r.next.words(),
            ]
        })
        .collect();
    let mut out = super::table::render(
        [
            "RELEASE",
            "REVISION",
            "OPERATION",
            "HELM",
            "VERDICT",
            "AT",
            "WOULD",
            "NEXT",
        ],
        &rows,
    );
    for r in &report.revisions {
        if r.rounds.is_empty() && r.evidence.is_empty() && r.notes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} revision {}:", r.release, r.revision);
        for round in &r.rounds {
            let open: Vec<String> = round
                .results
                .iter()
                .filter(|c| c.outcome != crate::checks::Outcome::Pass)
                .map(|c| format!("{} {}", c.check, c.outcome.as_str()))
                .collect();
            let _ = writeln!(
                out,
                "  +{:<8} {:<12} {}",
                human(crate::units::between(r.started, round.evaluated_at)),
                round.verdict.as_str(),
                if open.is_empty() {
                    "every check passes".to_string()
                } else {
                    open.join(", ")
                }
            );
        }
        for e in &r.evidence {
            let _ = writeln!(out, "  {e}");
        }
        for n in &r.notes {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    for s in &report.skipped {
        let _ = writeln!(out, "\nnot replayed: {s}");
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{} revision(s) replayed since {}: {} healthy, {} degraded, {} failed, {} inconclusive, {} without a verdict",
        s.revisions,
        report.since.strftime("%Y-%m-%d %H:%M UTC"),
        s.healthy,
        s.degraded,
        s.failed,
        s.inconclusive,
        s.unfinished
    );
    let _ = writeln!(
        out,
        "would have rolled back and then ran for {} or more (likely false alarms): {}",
        human(RAN_FOR_DAYS),
        list(&s.likely_false_alarms)
    );
    let caught: Vec<String> = s
        .caught_earlier
        .iter()
        .map(|e| format!("{} ({} earlier)", e.what, human(e.saved)))
        .collect();
    let _ = writeln!(
        out,
        "failures caught before the people acted: {} ({} saved)",
        list(&caught),
        human(s.saved)
    );
    out
}

fn ending_words(r: &Replayed) -> &'static str {
    match r.ending {
        crate::replay::timeline::Ending::Verdict => "verdict",
        crate::replay::timeline::Ending::Replaced => "replaced first",
        crate::replay::timeline::Ending::Baking => "still baking",
        crate::replay::timeline::Ending::Uninstalled => "uninstalled first",
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
