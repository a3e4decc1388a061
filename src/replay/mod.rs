//! Replay (I/O): the past upgrades of a release judged again as the daemon would have
//! judged them, with a given configuration, from Helm's history and Prometheus' history.
//! Each revision in the period is evaluated round by round over its bake window, every
//! query evaluated at the round's time and the Kubernetes facts read from the
//! kube-state-metrics series recorded then (`gather::history`). The verdict, its minute and
//! the action are set beside what actually happened next (`timeline`). Nothing is written
//! and nothing is acted on.

pub mod timeline;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::{Config, Mode};
use crate::evaluation::{Evaluator, Start};
use crate::gather::prometheus::Prometheus;
use crate::release::record::{HistoryRow, RowDetail, rollbacks_of};
use crate::release::summary::ReleaseSummary;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::tracker::read::read_history_times;
use crate::verdict::{RecommendedAction, Report, Verdict, guard};
use timeline::{Ending, Judged, Next, Past};

/// What to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Revisions whose operation started before this are not replayed (they count as
    /// history: their outcome and what came after them).
    pub since: Timestamp,
    /// The time of the replay: a bake not over by then is still baking.
    pub now: Timestamp,
    /// Only this revision.
    pub revision: Option<u32>,
    /// Keep every round's report (the evidence, round by round).
    pub rounds: bool,
}

/// One revision replayed.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    /// The release.
    pub release: ReleaseKey,
    /// The revision.
    pub revision: u32,
    /// The operation that wrote it (install, upgrade, rollback).
    pub operation: &'static str,
    /// Its chart (`name-version`).
    pub chart: String,
    /// When the operation started.
    pub started: Timestamp,
    /// What Helm says of it now.
    pub helm_status: ReleaseStatus,
    /// Helm's description.
    pub helm_description: String,
    /// The verdict upgrade-guard would have reached; `None` when none was reached.
    pub verdict: Option<Verdict>,
    /// How the replay of the revision ended.
    pub ending: Ending,
    /// When the verdict was reached.
    pub decided_at: Option<Timestamp>,
    /// How long after the start (the minute of the bake).
    #[serde(
        rename = "after_seconds",
        serialize_with = "timeline::option_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub after: Option<Duration>,
    /// The action recommended then, guarded against the history as it was.
    pub action: RecommendedAction,
    /// What upgrade-guard would have done, with the release's mode.
    pub would: String,
    /// What actually happened next.
    pub next: Next,
    /// The checks that decided (not passing), in words.
    pub evidence: Vec<String>,
    /// Notes of the last round (and why the revision was not fully judged).
    pub notes: Vec<String>,
    /// Every round's report, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Report>,
}

impl Replayed {
    /// What the summary needs; `None` without a verdict.
    pub fn judged(&self) -> Option<Judged> {
        Some(Judged {
            what: format!("{} {}", self.release, self.revision),
            verdict: self.verdict?,
            after: self.after?,
            next: self.next.clone(),
            rollback: matches!(self.action, RecommendedAction::Rollback { .. }),
        })
    }
}

/// What upgrade-guard would have done about a verdict, in words.
pub fn would(mode: Mode, verdict: Option<Verdict>, action: &RecommendedAction) -> String {
    let Some(v) = verdict else {
        return "nothing yet: no verdict".into();
    };
    let verdict = v.as_str();
    match (mode, action) {
        (_, RecommendedAction::None) => format!("{verdict}: nothing to do"),
        (Mode::Observe, _) => format!("{verdict}: exported as a metric only (mode observe)"),
        (Mode::Auto, RecommendedAction::Rollback { target, .. }) => format!(
            "{verdict}: roll back to revision {target} itself (mode auto, within its limits)"
        ),
        (_, a) => format!("{verdict}: alert: {}", a.words()),
    }
}

/// A revision as the replay needs it; `None` without a start time.
fn past_of(
    r: &HistoryRow,
    s: &ReleaseSummary,
    modified: &crate::tracker::read::Modified,
) -> Option<Past> {
    Some(Past {
        revision: r.revision,
        status: r.status,
        started: s.started_at()?,
        modified: modified.get(&r.revision).copied(),
        operation: s.operation(),
        rollback_to: s.rollback_to(),
    })
}

/// One release's replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReleaseReplay {
    /// The revisions replayed, oldest first.
    pub revisions: Vec<Replayed>,
    /// Revisions that could not be replayed, and why.
    pub skipped: Vec<String>,
}

/// Replays the revisions of `key` in the period, oldest first, with `config`.
pub async fn release(
    client: &kube::Client,
    config: &Config,
    prometheus: &Prometheus,
    key: &ReleaseKey,
    opts: &Options,
) -> Result<ReleaseReplay, kube::Error> {
    let (rows, modified) = read_history_times(client.clone(), &key.namespace, &key.name).await?;
    let mut out = ReleaseReplay::default();
    let mut decoded: Vec<(&HistoryRow, &ReleaseSummary)> = Vec::new();
    let mut past = Vec::new();
    for r in &rows {
        match &r.detail {
            RowDetail::Undecodable { decode_error } => out
                .skipped
                .push(format!("{key} revision {}: {decode_error}", r.revision)),
            RowDetail::Decoded(s) => match past_of(r, s, &modified) {
                Some(p) => {
                    decoded.push((r, s));
                    past.push(p);
                }
                None => out.skipped.push(format!(
                    "{key} revision {}: its record says nothing of when it was deployed",
                    r.revision
                )),
            },
        }
    }
    let mut evaluator = Evaluator::new(client.clone(), config, prometheus.clone()).replaying();
    for (i, p) in past.iter().enumerate() {
        if p.started < opts.since || opts.revision.is_some_and(|r| r != p.revision) {
            continue;
        }
        let summary = decoded[i].1;
        let rows_then: Vec<HistoryRow> = decoded[..=i].iter().map(|(r, _)| (*r).clone()).collect();
        let replayed = revision(
            &mut evaluator,
            config,
            key,
            summary,
            &past,
            i,
            &rows_then,
            opts,
        )
        .await;
        out.revisions.push(replayed);
    }
    Ok(out)
}

/// Replays `past[i]`, round by round, until its verdict, a newer revision or the present.
#[allow(clippy::too_many_arguments)]
async fn revision(
    evaluator: &mut Evaluator,
    config: &Config,
    key: &ReleaseKey,
    summary: &ReleaseSummary,
    past: &[Past],
    i: usize,
    rows_then: &[HistoryRow],
    opts: &Options,
) -> Replayed {
    let p = &past[i];
    let policy = config.policy_for(key);
    let history_at = |t: Timestamp| -> Vec<(u32, ReleaseStatus)> {
        past[..i]
            .iter()
            .map(|q| (q.revision, q.status))
            .chain(std::iter::once((p.revision, timeline::status_at(p, t).0)))
            .collect()
    };
    let (status, since) = timeline::status_at(p, p.started);
    evaluator.begin(
        Start {
            release: key.clone(),
            summary: Arc::new(summary.clone()),
            status,
            status_since: since,
            history: history_at(p.started),
            rollbacks: rollbacks_of(rows_then),
            storage: rows_then[i].storage,
        },
        policy.clone(),
    );
    let next_start = past.get(i + 1).map(|n| n.started);
    let mut t = p.started;
    let mut rounds = Vec::new();
    let mut last: Option<Report> = None;
    let ending = loop {
        if next_start.is_some_and(|n| t >= n) {
            break Ending::Replaced;
        }
        if t > opts.now {
            break Ending::Baking;
        }
        let (status, since) = timeline::status_at(p, t);
        if matches!(
            status,
            ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
        ) {
            break Ending::Uninstalled;
        }
        evaluator.update(key, p.revision, status, since, history_at(t));
        let Some(mut report) = evaluator.round(t).await.into_iter().next() else {
            break Ending::Baking;
        };
        report.action = guard(report.action, &history_at(t), p.revision);
        let done = report.verdict == Verdict::Failed || report.bake_record().is_some();
        if opts.rounds {
            rounds.push(report.clone());
        }
        last = Some(report);
        if done {
            break Ending::Verdict;
        }
        t = crate::units::plus(t, config.evaluation_interval);
    };
    evaluator.end(key);
    let decided = if ending == Ending::Verdict {
        last.as_ref()
    } else {
        None
    };
    let mut notes = last.as_ref().map(|r| r.notes.clone()).unwrap_or_default();
    match ending {
        Ending::Replaced => notes.push(format!(
            "revision {} came before a verdict: its evaluation was cancelled then",
            past[i + 1].revision
        )),
        Ending::Baking => {
            notes.push("its bake window had not ended at the time of the replay".into())
        }
        Ending::Uninstalled => notes.push("the release was uninstalled before a verdict".into()),
        Ending::Verdict => {}
    }
    let verdict = decided.map(|r| r.verdict);
    let action = decided.map_or(RecommendedAction::None, |r| r.action.clone());
    Replayed {
        release: key.clone(),
        revision: p.revision,
        operation: p.operation.as_str(),
        chart: format!("{}-{}", summary.chart.name, summary.chart.version),
        started: p.started,
        helm_status: p.status,
        helm_description: summary.description.clone(),
        would: would(policy.mode, verdict, &action),
        verdict,
        ending,
        decided_at: decided.map(|r| r.evaluated_at),
        after: decided.map(|r| crate::units::between(p.started, r.evaluated_at)),
        action,
        next: timeline::next(past, i, opts.now),
        evidence: last
            .as_ref()
            .map(|r| {
                r.results
                    .iter()
                    .filter(|c| c.outcome != crate::checks::Outcome::Pass)
                    .map(|c| format!("{} {}: {}", c.check, c.outcome.as_str(), c.summary))
                    .collect()
            })
            .unwrap_or_default(),
        notes,
        rounds,
    }
}

/// Every release's replay summed up.
pub fn summarize(replays: &[ReleaseReplay]) -> timeline::Summary {
    let judged: Vec<Option<Judged>> = replays
        .iter()
        .flat_map(|r| &r.revisions)
        .map(Replayed::judged)
        .collect();
    timeline::summarize(&judged)
}
