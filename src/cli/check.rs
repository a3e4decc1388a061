//! `upgrade-guard check`: evaluates the latest revision of one release (waiting at most
//! `--wait` for a final verdict), prints every check, the verdict and the command to run.
//!
//! While waiting it re-reads the release history every round: a newer revision cancels the
//! evaluation of the older one (said on stderr) and is judged instead; an uninstall ends it;
//! a failed re-read is a round with a provider error (the same tolerance as Prometheus
//! errors), not the end of the command. Before any action is printed the history is read
//! once more: no action for a revision that is no longer the latest or while a Helm
//! operation holds the release. Exit codes: see [`super::error::exit`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::config::ConfigArgs;
use super::error::{CliError, exit};
use super::output::Output;
use crate::checks::Bound;
use crate::config::Config;
use crate::evaluation::schedule::{self, Pacing, Rounds};
use crate::evaluation::{Evaluator, Start};
use crate::gather::metrics::PrometheusMetrics;
use crate::gather::prometheus::Prometheus;
use crate::metrics::registry;
use crate::records::bakes::BakeStore;
use crate::release::record::{HistoryRow, RowDetail, rollbacks_of};
use crate::release::summary::ReleaseSummary;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::tracker::read::{read_history, read_revision, read_statuses};
use crate::units::{human, num, parse_duration};
use crate::verdict::{RecommendedAction, Report, Verdict, guard};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Release name.
    pub release: String,
    /// Namespace of the release. Default, as helm: $HELM_NAMESPACE, else the current
    /// kubeconfig context's namespace, else `default`.
    #[arg(short, long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Keep evaluating up to this long while the verdict is progressing or inconclusive.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Write a final verdict (healthy, degraded, failed) to upgrade-guard's bake records
    /// (ConfigMaps in `state.namespace`), which later rollback recommendations use. Needs
    /// write access to ConfigMaps there; without this flag they are only read.
    #[arg(long)]
    pub record: bool,
    /// While waiting, show nothing (by default: a spinner with the bake time left and the
    /// checks still pending on a terminal, one line per verdict change otherwise; on
    /// stderr, so stdout holds only the result).
    #[arg(short, long)]
    pub quiet: bool,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The exit code for a verdict.
pub fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Healthy => exit::HEALTHY,
        Verdict::Failed => exit::FAILED,
        Verdict::Inconclusive => exit::INCONCLUSIVE,
        Verdict::Progressing => exit::PROGRESSING,
        Verdict::Degraded => exit::DEGRADED,
    }
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
                c.check.to_string(),
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
    out.push_str(&super::table::render(
        ["CHECK", "RESULT", "VALUE", "THRESHOLD", "WINDOW", "DETAILS"],
        &rows,
    ));
    for note in &r.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    let _ = writeln!(out, "\nverdict: {}", r.verdict.as_str());
    let _ = writeln!(out, "action: {}", r.action.words());
    out
}

/// What a round of `check` found.
#[derive(Debug)]
enum Round {
    /// The latest revision, judged.
    Judged(Box<Report>),
    /// The release was uninstalled.
    Uninstalled {
        revision: u32,
        status: ReleaseStatus,
    },
}

fn gone(status: ReleaseStatus) -> bool {
    matches!(
        status,
        ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
    )
}

/// One round of `check`: re-reads the release's history (status changes, a newer revision,
/// an uninstall), evaluates, and re-reads once more before recommending an action.
struct CheckRounds {
    evaluator: Evaluator,
    client: kube::Client,
    config: Arc<Config>,
    key: ReleaseKey,
    rollbacks: BTreeMap<u32, u32>,
    /// Helm's storage driver holding the release.
    storage: crate::release::labels::Storage,
    /// The last round could not read the release history (retry sooner).
    history_trouble: bool,
    /// A newer revision that could not be decoded (not read again).
    undecodable: Option<u32>,
}

impl CheckRounds {
    fn start(
        &self,
        summary: Arc<ReleaseSummary>,
        status: ReleaseStatus,
        history: Vec<(u32, ReleaseStatus)>,
    ) -> Start {
        Start {
            release: self.key.clone(),
            status,
            status_since: summary.last_deployed.unwrap_or_else(Timestamp::now),
            history,
            rollbacks: self.rollbacks.clone(),
            storage: self.storage,
            summary,
        }
    }

    /// Follows the history as just read: a newer revision replaces the judged one.
    async fn follow(&mut self, history: Vec<(u32, ReleaseStatus)>) -> Option<Round> {
        let judged = self.evaluator.active().first().map(|(_, r)| *r);
        let Some(&(latest, status)) = history.last() else {
            // Uninstalled without --keep-history: its Secrets are gone.
            self.evaluator.end(&self.key);
            return Some(Round::Uninstalled {
                revision: judged.unwrap_or_default(),
                status: ReleaseStatus::Uninstalled,
            });
        };
        if gone(status) {
            self.evaluator.end(&self.key);
            return Some(Round::Uninstalled {
                revision: latest,
                status,
            });
        }
        if judged.is_some_and(|j| latest > j) && self.undecodable != Some(latest) {
            match read_revision(
                self.client.clone(),
                &self.key.namespace,
                &self.key.name,
                latest,
            )
            .await
            {
                Ok(Some(HistoryRow {
                    detail: RowDetail::Decoded(summary),
                    status,
                    ..
                })) => {
                    if let Some(target) = summary.rollback_to() {
                        self.rollbacks.insert(latest, target);
                    }
                    let start = self.start(Arc::new(*summary), status, history.clone());
                    let policy = self.config.policy_for(&self.key);
                    tracing::info!(release = %self.key, "judging revision {latest}");
                    if let Some(old) = self.evaluator.begin(start, policy) {
                        eprintln!(
                            "note: revision {latest} of {} appeared ({status}); the evaluation of revision {old} is cancelled, judging {latest} instead",
                            self.key
                        );
                    }
                    return None;
                }
                Ok(Some(HistoryRow {
                    detail: RowDetail::Undecodable { decode_error },
                    ..
                })) => {
                    self.undecodable = Some(latest);
                    eprintln!(
                        "note: revision {latest} of {} appeared but cannot be decoded ({decode_error}); revision {} is no longer current, so no action is recommended for it",
                        self.key,
                        judged.unwrap_or_default()
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("note: cannot read revision {latest} of {}: {e}", self.key);
                    self.history_trouble = true;
                }
            }
        }
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
        None
    }
}

impl Rounds for CheckRounds {
    type Report = Result<Round, CliError>;

    async fn round(&mut self) -> Result<Round, CliError> {
        let (ns, name) = (self.key.namespace.to_string(), self.key.name.to_string());
        self.history_trouble = false;
        match read_statuses(self.client.clone(), &ns, &name).await {
            Ok(history) => {
                if let Some(round) = self.follow(history).await {
                    return Ok(round);
                }
            }
            Err(e) => {
                eprintln!("note: cannot re-read the history of {}: {e}", self.key);
                self.history_trouble = true;
            }
        }
        let mut report = self
            .evaluator
            .round(Timestamp::now())
            .await
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the evaluation of {} produced no report", self.key))?;
        if report.action != RecommendedAction::None {
            report.action = match read_statuses(self.client.clone(), &ns, &name).await {
                Ok(history) => guard(report.action, &history, report.revision),
                Err(e) => RecommendedAction::Hold {
                    reason: format!(
                        "cannot re-read the release history before recommending an action: {e}"
                    ),
                },
            };
        }
        Ok(Round::Judged(Box::new(report)))
    }

    fn provider_trouble(&self) -> bool {
        self.history_trouble || self.evaluator.provider_trouble()
    }
}

fn uninstalled(key: &ReleaseKey, revision: u32, status: ReleaseStatus) -> i32 {
    println!(
        "{key}: revision {revision} is {status}: the release was uninstalled, nothing to judge and no action"
    );
    exit::UNINSTALLED
}

/// Runs `check`; returns the exit code.
pub async fn run(client: kube::Client, args: &CheckArgs) -> Result<i32, CliError> {
    let config = Arc::new(args.config.load()?);
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let ns = super::scope::namespace(args.namespace.as_deref(), &client);
    let key = ReleaseKey::new(&ns, &args.release);
    let rows = read_history(client.clone(), &ns, &args.release).await?;
    let Some(latest) = rows.last() else {
        return Err(CliError::ReleaseNotFound {
            release: args.release.clone(),
            namespace: ns.clone(),
        });
    };
    if gone(latest.status) {
        return Ok(uninstalled(&key, latest.revision, latest.status));
    }
    let summary = match &latest.detail {
        RowDetail::Decoded(s) => Arc::new((**s).clone()),
        RowDetail::Undecodable { decode_error } => {
            return Err(CliError::Undecodable {
                release: key.to_string(),
                revision: latest.revision,
                reason: decode_error.clone(),
            });
        }
    };
    let mut reg = registry();
    let prometheus = Prometheus::new(&config.prometheus, PrometheusMetrics::register(&mut reg))?;
    let mut evaluator = Evaluator::new(client.clone(), &config, prometheus);
    let store = BakeStore::new(client.clone(), &config.state.namespace);
    match store.load(&key).await {
        Ok(records) => {
            for (revision, entry) in records
                .into_iter()
                .filter(|(_, e)| e.of_install(summary.first_deployed))
            {
                evaluator.record_bake(&key, revision, entry.verdict);
            }
        }
        Err(e) => eprintln!(
            "note: bake records not used ({e}); rollback targets are chosen from the history alone"
        ),
    }
    let mut rounds = CheckRounds {
        evaluator,
        client,
        config: config.clone(),
        key: key.clone(),
        rollbacks: rollbacks_of(&rows),
        storage: latest.storage,
        history_trouble: false,
        undecodable: None,
    };
    let history = rows.iter().map(|r| (r.revision, r.status)).collect();
    let start = rounds.start(summary, latest.status, history);
    tracing::info!(release = %key, "judging revision {}", latest.revision);
    rounds.evaluator.begin(start, config.policy_for(&key));
    let pacing = Pacing {
        interval: config.evaluation_interval,
        retry_interval: config.prometheus.retry_interval,
    };
    // Progress only while waiting: a check that answers at once prints its result alone.
    let mut progress = super::progress::Progress::new(args.quiet || args.wait.is_zero());
    let round = schedule::until(&mut rounds, pacing, args.wait, |r| match r {
        Ok(Round::Judged(r)) => {
            progress.round(r);
            matches!(
                r.verdict,
                Verdict::Healthy | Verdict::Failed | Verdict::Degraded
            )
        }
        Ok(Round::Uninstalled { .. }) | Err(_) => true,
    })
    .await;
    progress.finish();
    let round = round?;
    let report = match round {
        Round::Judged(report) => report,
        Round::Uninstalled { revision, status } => return Ok(uninstalled(&key, revision, status)),
    };
    if args.record {
        record(&store, &report).await;
    }
    args.output.print(&*report, render)?;
    Ok(exit_code(report.verdict))
}

/// Writes a final verdict to the bake records; a failure is reported, not fatal.
async fn record(store: &BakeStore, report: &Report) {
    match store.record_final(report).await {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "note: not recorded: {} is not a final verdict",
            report.verdict.as_str()
        ),
        Err(e) => eprintln!("warning: the verdict was not recorded: {e}"),
    }
}
