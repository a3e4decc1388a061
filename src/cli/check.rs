//! `upgrade-guard check`: evaluates the latest revision of one release (waiting at most
//! `--wait` for a final verdict), prints every check, the verdict and the command to run.
//! Exit codes: 0 healthy, 1 failed, 2 inconclusive, 3 progressing, 4 degraded.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;

use super::config::ConfigArgs;
use super::history::{HistoryRow, RowDetail, read_history, read_statuses};
use super::{Output, parse_duration};
use crate::checks::{Bound, human, num};
use crate::evaluation::prometheus::Prometheus;
use crate::evaluation::schedule::{self, Pacing, Rounds};
use crate::evaluation::{Evaluator, Report, Start};
use crate::metrics::{PrometheusMetrics, registry};
use crate::release::ReleaseKey;
use crate::verdict::{RecommendedAction, Verdict};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Release name.
    pub release: String,
    /// Namespace of the release.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Keep evaluating up to this long while the verdict is progressing or inconclusive.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The exit code for a verdict.
pub fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Healthy => 0,
        Verdict::Failed => 1,
        Verdict::Inconclusive => 2,
        Verdict::Progressing => 3,
        Verdict::Degraded => 4,
    }
}

fn history_of(rows: &[HistoryRow]) -> Vec<(u32, crate::release::ReleaseStatus)> {
    rows.iter().map(|r| (r.revision, r.status)).collect()
}

/// Renders a report for a terminal.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let time = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    let _ = writeln!(
        out,
        "{}  revision {} ({}), chart {}\nupgrade started {}, bake window ends {}\n",
        r.release,
        r.revision,
        r.status,
        r.chart,
        time(r.started),
        time(r.bake_ends)
    );
    let rows: Vec<[String; 6]> = r
        .results
        .iter()
        .map(|c| {
            [
                c.check.clone(),
                c.outcome.as_str().to_string(),
                c.value.map(num).unwrap_or_default(),
                c.threshold
                    .map(|t| match t.bound {
                        Bound::Min => format!(">= {}", num(t.value)),
                        Bound::Max => format!("<= {}", num(t.value)),
                    })
                    .unwrap_or_default(),
                c.window.map(human).unwrap_or_default(),
                c.summary.clone(),
            ]
        })
        .collect();
    let header = ["CHECK", "RESULT", "VALUE", "THRESHOLD", "WINDOW", "DETAILS"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (c, w) in row.iter().zip(widths) {
            let _ = write!(line, "{c:<w$}  ");
        }
        line.push_str(&row[5]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "\nverdict: {}", r.verdict.as_str());
    let action = match &r.action {
        RecommendedAction::None => "none".to_string(),
        RecommendedAction::Rollback {
            target, command, ..
        } => {
            format!("roll back to revision {target}\n  {command}")
        }
        RecommendedAction::RestartPod { command } => {
            format!("restart the pod, the migration resumes (no rollback)\n  {command}")
        }
        RecommendedAction::FixDependency { name } => {
            format!("fix the dependency {name} first: a rollback will not work until it is healthy")
        }
        RecommendedAction::Investigate { reason } => format!("investigate: {reason}"),
    };
    let _ = writeln!(out, "action: {action}");
    out
}

/// One round of `check`: re-reads the release's history (status changes, a newer
/// revision), then evaluates.
struct CheckRounds {
    evaluator: Evaluator,
    client: kube::Client,
    key: ReleaseKey,
    namespace: String,
    release: String,
    newer: Option<u32>,
}

impl Rounds for CheckRounds {
    type Report = anyhow::Result<Report>;

    async fn round(&mut self) -> anyhow::Result<Report> {
        let history = read_statuses(self.client.clone(), &self.namespace, &self.release).await?;
        let judged = self.evaluator.active().first().map(|(_, r)| *r);
        if let Some(judged) = judged
            && let Some((_, status)) = history.iter().find(|(r, _)| *r == judged)
        {
            self.evaluator.update(
                &self.key,
                judged,
                *status,
                Timestamp::now(),
                history.clone(),
            );
        }
        self.newer = history
            .last()
            .map(|(r, _)| *r)
            .filter(|r| Some(*r) > judged);
        self.evaluator
            .round(Timestamp::now())
            .await
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the evaluation of {} produced no report", self.key))
    }

    fn provider_trouble(&self) -> bool {
        self.evaluator.provider_trouble()
    }
}

/// Runs `check`; returns the exit code.
pub async fn run(client: kube::Client, args: &CheckArgs) -> anyhow::Result<i32> {
    let config = args.config.load()?;
    let key = ReleaseKey::new(&args.namespace, &args.release);
    let rows = read_history(client.clone(), &args.namespace, &args.release).await?;
    let Some(latest) = rows.last() else {
        eprintln!(
            "release {:?} not found in namespace {:?}",
            args.release, args.namespace
        );
        return Ok(2);
    };
    let summary = match &latest.detail {
        RowDetail::Decoded(s) => std::sync::Arc::new((**s).clone()),
        RowDetail::Undecodable { decode_error } => {
            eprintln!(
                "cannot judge revision {} of {key}: {decode_error}",
                latest.revision
            );
            return Ok(2);
        }
    };
    let mut reg = registry();
    let prometheus = Prometheus::new(&config.prometheus, PrometheusMetrics::register(&mut reg))
        .map_err(anyhow::Error::msg)?;
    let mut evaluator = Evaluator::new(client.clone(), &config, prometheus);
    let since = summary.last_deployed.unwrap_or_else(Timestamp::now);
    evaluator.begin(
        Start {
            release: key.clone(),
            status: latest.status,
            status_since: since,
            history: history_of(&rows),
            summary,
        },
        config.policy_for(&key),
    );
    let mut rounds = CheckRounds {
        evaluator,
        client,
        key: key.clone(),
        namespace: args.namespace.clone(),
        release: args.release.clone(),
        newer: None,
    };
    let pacing = Pacing {
        interval: config.evaluation_interval,
        retry_interval: config.prometheus.retry_interval,
    };
    let report = schedule::until(&mut rounds, pacing, args.wait, |r| match r {
        Ok(r) => matches!(
            r.verdict,
            Verdict::Healthy | Verdict::Failed | Verdict::Degraded
        ),
        Err(_) => true,
    })
    .await?;
    if let Some(newer) = rounds.newer {
        eprintln!(
            "note: revision {newer} of {key} appeared while revision {} was being checked; run check again for it",
            report.revision
        );
    }
    match args.output {
        Output::Table => print!("{}", render(&report)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(exit_code(report.verdict))
}
