//! `upgrade-guard status`: every watched release in one table (release, revision, chart and
//! app version, verdict, failing checks, recommended action, mode, last automatic action),
//! read from a running daemon's `/api/v1/releases` (`--url`) or judged on the spot.

use serde::{Deserialize, Serialize};

use super::config::ConfigArgs;
use super::error::CliError;
use super::output::Output;
use super::spot::{self, Spot};
use super::table;
use crate::checks::{CheckResult, Outcome};
use crate::records::action::{ActionRecord, record_for};
use crate::records::actions::RecordStore;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::state::{ChartView, ReleaseView};
use crate::verdict::{RecommendedAction, Verdict};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// A running daemon (`http://upgrade-guard.upgrade-guard:8080`): show what it sees and
    /// decided. Without it, the releases are judged now, from here.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Namespaces (repeatable; default: `watch.namespaces` of the configuration, or every
    /// release the daemon shows).
    #[arg(short, long = "namespace")]
    pub namespaces: Vec<String>,
    /// Every namespace (judged now: every release the kubeconfig may list).
    #[arg(short = 'A', long, conflicts_with = "namespaces")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// `namespace/name`.
    pub release: String,
    /// Latest revision.
    pub revision: u32,
    /// Helm status of that revision.
    pub status: String,
    /// `chart-version`.
    pub chart: String,
    /// App version.
    pub app_version: String,
    /// Verdict (or why there is none).
    pub verdict: String,
    /// Checks that fail, warn or cannot be judged.
    pub failing: Vec<String>,
    /// The recommended action, with its command.
    pub action: String,
    /// `observe`, `recommend` or `auto`.
    pub mode: String,
    /// The last automatic action concerning the revision.
    pub last_action: String,
    /// The operator's controls in force (suspended, accepted), with who set them and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
    /// What the row counts as for the exit code: its verdict; `inconclusive` when its
    /// record has a problem; none when never judged.
    #[serde(skip)]
    pub counts_as: Option<Verdict>,
}

/// How bad a verdict is, worst first: failed, inconclusive, degraded, progressing, healthy.
fn badness(v: Verdict) -> u8 {
    match v {
        Verdict::Failed => 4,
        Verdict::Inconclusive => 3,
        Verdict::Degraded => 2,
        Verdict::Progressing => 1,
        Verdict::Healthy => 0,
    }
}

/// `status`'s exit code: the code `check` gives the worst verdict shown (0 when nothing
/// was judged or every release is healthy).
pub fn exit_code(rows: &[StatusRow]) -> i32 {
    rows.iter()
        .filter_map(|r| r.counts_as)
        .max_by_key(|v| badness(*v))
        .map_or(super::exit::HEALTHY, super::check::exit_code)
}

/// What a row says about a judgement: its verdict, whether the evaluation ended, every
/// check's result and the recommended action.
struct Judged<'a> {
    verdict: Verdict,
    is_final: bool,
    results: &'a [CheckResult],
    action: &'a RecommendedAction,
}

/// The verdict, failing checks and action columns, the same from the API and on the spot.
fn judgement_columns(
    judged: Option<Judged<'_>>,
    problem: Option<&str>,
) -> (String, Vec<String>, String) {
    match (judged, problem) {
        (_, Some(p)) => (format!("({p})"), Vec::new(), String::new()),
        (Some(j), None) => (
            if j.is_final {
                j.verdict.as_str().to_string()
            } else {
                format!("{} (baking)", j.verdict.as_str())
            },
            j.results
                .iter()
                .filter(|c| c.outcome != Outcome::Pass)
                .map(|c| format!("{} {}", c.check, c.outcome.as_str()))
                .collect(),
            match j.action {
                RecommendedAction::None => String::new(),
                a => a.words(),
            },
        ),
        (None, None) => ("not judged yet".to_string(), Vec::new(), String::new()),
    }
}

/// What a row is made of, wherever it comes from.
struct RowFacts<'a> {
    release: &'a ReleaseKey,
    revision: u32,
    status: ReleaseStatus,
    chart: Option<&'a ChartView>,
    judged: Option<Judged<'a>>,
    problem: Option<&'a str>,
    mode: String,
    last_action: Option<&'a ActionRecord>,
}

fn row(f: RowFacts<'_>) -> StatusRow {
    let counts_as = match (&f.judged, f.problem) {
        (_, Some(_)) => Some(Verdict::Inconclusive),
        (Some(j), None) => Some(j.verdict),
        (None, None) => None,
    };
    let (verdict, failing, action) = judgement_columns(f.judged, f.problem);
    StatusRow {
        release: f.release.to_string(),
        revision: f.revision,
        status: f.status.as_str().to_string(),
        chart: f.chart.map(ChartView::name_version).unwrap_or_default(),
        app_version: f
            .chart
            .and_then(|c| c.app_version.clone())
            .unwrap_or_default(),
        verdict,
        failing,
        action,
        mode: f.mode,
        last_action: f.last_action.map(ActionRecord::words).unwrap_or_default(),
        controls: Vec::new(),
        counts_as,
    }
}

/// The operator's controls of a view, in words.
fn control_words(c: &crate::records::control::ControlView) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &c.suspended {
        out.push(format!(
            "suspended until {} {}",
            s.until.strftime("%Y-%m-%d %H:%M UTC"),
            s.set.words()
        ));
    }
    if let Some(a) = &c.accepted {
        out.push(format!("accepted {}", a.set.words()));
    }
    out
}

/// A row from a daemon's view of a release (`/api/v1/releases`).
pub fn row_of_view(v: &ReleaseView) -> StatusRow {
    let mut row = row(RowFacts {
        release: &v.release,
        revision: v.revision,
        status: v.status,
        chart: v.chart.as_ref(),
        judged: v.judgement.as_ref().map(|j| Judged {
            verdict: j.verdict,
            is_final: j.is_final,
            results: &j.results,
            action: &j.action,
        }),
        problem: v.problem.as_deref(),
        mode: v.mode.map(|m| m.as_str().to_string()).unwrap_or_default(),
        last_action: v.automation.as_ref().and_then(|a| a.record.as_ref()),
    });
    row.controls = control_words(&v.controls);
    row
}

fn row_of_spot(spot: &Spot, mode: &str, records: &[ActionRecord]) -> StatusRow {
    row(RowFacts {
        release: &spot.release,
        revision: spot.revision,
        status: spot.status,
        chart: spot.chart.as_ref(),
        judged: spot.report.as_ref().map(|r| Judged {
            verdict: r.verdict,
            is_final: r.evaluated_at >= r.bake_ends,
            results: &r.results,
            action: &r.action,
        }),
        problem: spot.problem.as_deref(),
        mode: mode.to_string(),
        last_action: record_for(records, spot.revision, None),
    })
}

/// The table.
pub fn render(rows: &[StatusRow]) -> String {
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.release.clone(),
                r.revision.to_string(),
                r.chart.clone(),
                r.app_version.clone(),
                std::iter::once(r.verdict.clone())
                    .chain(r.controls.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("; "),
                r.failing.join(", "),
                r.action.clone(),
                r.mode.clone(),
                r.last_action.clone(),
            ]
        })
        .collect();
    table::render(
        [
            "RELEASE",
            "REVISION",
            "CHART",
            "APP VERSION",
            "VERDICT",
            "NOT PASSING",
            "RECOMMENDED ACTION",
            "MODE",
            "LAST ACTION",
        ],
        &cells,
    )
}

/// What `status` reads of a daemon's `/api/v1/releases` answer.
#[derive(Debug, Deserialize)]
struct Answer {
    releases: Vec<ReleaseView>,
    /// Checks whose query cannot work (older daemons: none).
    #[serde(default)]
    config_problems: Vec<crate::probe::plan::Finding>,
}

/// The rows of a daemon's releases, and the problems of its configuration in words.
async fn from_daemon(url: &str) -> Result<(Vec<StatusRow>, Vec<String>), CliError> {
    let answer: Answer = daemon_json(url, "/api/v1/releases").await?;
    let problems = answer
        .config_problems
        .iter()
        .map(|f| {
            format!(
                "configuration: {} {}: `{}` {}",
                f.release,
                f.check,
                f.tried,
                f.problem.as_deref().unwrap_or_default()
            )
        })
        .collect();
    Ok((answer.releases.iter().map(row_of_view).collect(), problems))
}

/// A running daemon's JSON answer at `path`.
pub async fn daemon_json<T: serde::de::DeserializeOwned>(
    url: &str,
    path: &str,
) -> Result<T, CliError> {
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    reqwest::Client::new()
        .get(&endpoint)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|source| CliError::Daemon {
            what: endpoint.clone(),
            source,
        })?
        .json()
        .await
        .map_err(|source| CliError::Daemon {
            what: format!("{endpoint}: not the daemon's answer"),
            source,
        })
}

/// Runs `status`; returns the exit code.
pub async fn run(client: Option<kube::Client>, args: &StatusArgs) -> Result<i32, CliError> {
    let mut notes = Vec::new();
    let rows: Vec<StatusRow> = match (&args.url, client) {
        (Some(url), _) => {
            let (rows, problems) = from_daemon(url).await?;
            notes = problems;
            rows
        }
        .into_iter()
        .filter(|r| {
            args.namespaces.is_empty()
                || args
                    .namespaces
                    .iter()
                    .any(|n| r.release.starts_with(&format!("{n}/")))
        })
        .collect(),
        (None, client) => {
            let client = client.ok_or_else(|| {
                CliError::Kubeconfig("no cluster to judge the releases in".into())
            })?;
            let config = args.config.load()?;
            let namespaces = if args.all_namespaces {
                Vec::new()
            } else if args.namespaces.is_empty() {
                config.watch.namespaces.clone()
            } else {
                args.namespaces.clone()
            };
            let keys = spot::releases(&client, &namespaces, &config.watch.storage).await?;
            let spots = spot::judge(&client, &config, &keys).await?;
            let records = RecordStore::new(client.clone(), &config.state.namespace)
                .all()
                .await
                .unwrap_or_else(|e| {
                    eprintln!("note: upgrade-guard's action records not read ({e})");
                    Default::default()
                });
            spots
                .iter()
                .map(|s| {
                    let mode = config.mode_for(&s.release).as_str();
                    let known = records
                        .get(&s.release)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    row_of_spot(s, mode, known)
                })
                .collect()
        }
    };
    args.output.print(rows.as_slice(), render)?;
    // What the daemon found wrong with its configuration, on stderr in every format.
    for note in notes {
        eprintln!("{note}");
    }
    Ok(exit_code(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Bound, Threshold};
    use crate::config::Mode;
    use crate::records::action::{ActionKind, Phase};
    use crate::release::event::EventName;
    use crate::release::labels::Storage;
    use crate::release::rollback_target::TargetBasis;
    use crate::release::{ReleaseKey, ReleaseStatus};
    use crate::remediation::automation::Automation;
    use crate::state::{ChartView, Judgement};
    use jiff::Timestamp;
    use std::time::Duration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    /// The daemon's view of a failed revision that `mode: auto` rolled back.
    fn failed_and_rolled_back() -> ReleaseView {
        let mut lag = CheckResult::new("lag", Outcome::Fail, "the backlog keeps growing")
            .value(3.0)
            .window(Duration::from_secs(600));
        lag.threshold = Some(Threshold {
            bound: Bound::Max,
            value: 0.5,
        });
        ReleaseView {
            release: ReleaseKey::new("gim", "gim"),
            storage: Storage::Secret,
            revision: 3,
            status: ReleaseStatus::Deployed,
            event: EventName::Upgraded,
            chart: Some(ChartView {
                name: "gim".into(),
                version: "100.0.116".into(),
                app_version: Some("9.0".into()),
            }),
            previous_chart: None,
            started: Some(t(0)),
            judgement: Some(Judgement {
                inconclusive_since: None,
                overdue: false,
                verdict: Verdict::Failed,
                action: RecommendedAction::Rollback {
                    target: 2,
                    basis: TargetBasis::PassedBake,
                    command: "helm rollback gim 2 -n gim --timeout 15m".into(),
                },
                results: vec![
                    lag,
                    CheckResult::new("pending_pods", Outcome::Pass, "all Ready"),
                ],
                notes: vec![],
                bake_ends: t(3600),
                evaluated_at: t(600),
                is_final: false,
            }),
            problem: None,
            mode: Some(Mode::Auto),
            automation: Some(Box::new(Automation {
                dry_run: false,
                plan: None,
                record: Some(ActionRecord {
                    bad_revision: 3,
                    attempt: 1,
                    action: ActionKind::Rollback,
                    target: Some(2),
                    command: "helm rollback gim 2 -n gim --wait --timeout 15m".into(),
                    holder: "upgrade-guard-0".into(),
                    started: t(610),
                    phase: Phase::Done,
                    finished: Some(t(700)),
                    new_revision: Some(4),
                    detail: None,
                    process: None,
                    taken_over_from: None,
                    about: None,
                }),
            })),
            after_bake: None,
            controls: Default::default(),
        }
    }

    #[test]
    fn the_daemons_answer_is_read_back_as_its_typed_view() {
        let view = failed_and_rolled_back();
        let json = serde_json::json!({ "releases": [view], "notices": [], "suite_order": [] });
        let answer: Answer = serde_json::from_value(json).unwrap();
        assert_eq!(answer.releases, vec![failed_and_rolled_back()]);
        let row = row_of_view(&answer.releases[0]);
        assert_eq!(
            row,
            StatusRow {
                release: "gim/gim".into(),
                revision: 3,
                status: "deployed".into(),
                chart: "gim-100.0.116".into(),
                app_version: "9.0".into(),
                verdict: "failed (baking)".into(),
                failing: vec!["lag fail".into()],
                action: "roll back to revision 2: helm rollback gim 2 -n gim --timeout 15m".into(),
                mode: "auto".into(),
                last_action: "automatic rollback of revision 3 to revision 2: done, verifying (helm rollback gim 2 -n gim --wait --timeout 15m)".into(),
                controls: vec![],
                counts_as: Some(Verdict::Failed),
            }
        );
    }

    #[test]
    fn a_suspension_shows_who_set_it_why_and_until_when() {
        use crate::records::control::{SetBy, Suspension};
        let mut v = failed_and_rolled_back();
        v.controls.suspended = Some(Suspension {
            set: SetBy {
                by: "alice".into(),
                at: "2026-12-03T10:00:00Z".parse().unwrap(),
                reason: "database maintenance".into(),
            },
            until: "2026-12-03T14:00:00Z".parse().unwrap(),
        });
        let row = row_of_view(&v);
        assert_eq!(
            row.controls,
            [
                "suspended until 2026-12-03 14:00 UTC by alice at 2026-12-03 10:00:00 UTC: database maintenance"
            ]
        );
        let table = render(&[row]);
        assert!(
            table.contains("failed (baking); suspended until 2026-12-03 14:00 UTC by alice"),
            "{table}"
        );
    }

    #[test]
    fn a_problem_replaces_the_verdict_and_no_judgement_says_so() {
        let mut v = failed_and_rolled_back();
        v.problem = Some("stuck in pending-upgrade".into());
        assert_eq!(row_of_view(&v).verdict, "(stuck in pending-upgrade)");
        v.problem = None;
        v.judgement = None;
        assert_eq!(row_of_view(&v).verdict, "not judged yet");
    }

    #[test]
    fn the_exit_code_is_the_worst_verdicts_and_a_problem_counts_as_inconclusive() {
        let with = |verdict: Option<Verdict>, problem: Option<&str>| {
            let mut v = failed_and_rolled_back();
            v.problem = problem.map(String::from);
            match verdict {
                Some(verdict) => v.judgement.as_mut().unwrap().verdict = verdict,
                None => v.judgement = None,
            }
            row_of_view(&v)
        };
        let healthy = with(Some(Verdict::Healthy), None);
        let progressing = with(Some(Verdict::Progressing), None);
        let degraded = with(Some(Verdict::Degraded), None);
        let failed = with(Some(Verdict::Failed), None);
        let stuck = with(Some(Verdict::Healthy), Some("stuck in pending-upgrade"));
        let unjudged = with(None, None);
        use crate::cli::exit;
        assert_eq!(exit_code(&[]), exit::HEALTHY);
        assert_eq!(
            exit_code(&[unjudged.clone(), healthy.clone()]),
            exit::HEALTHY
        );
        assert_eq!(
            exit_code(&[healthy.clone(), progressing.clone()]),
            exit::PROGRESSING
        );
        assert_eq!(
            exit_code(&[progressing.clone(), degraded.clone()]),
            exit::DEGRADED
        );
        assert_eq!(
            exit_code(&[degraded.clone(), stuck.clone()]),
            exit::INCONCLUSIVE
        );
        assert_eq!(exit_code(&[stuck, failed, healthy]), exit::FAILED);
    }
}
