//! `upgrade-guard status`: every watched release in one table (release, revision, chart and
//! app version, verdict, failing checks, recommended action, mode, last automatic action),
//! read from a running daemon's `/api/v1/releases` (`--url`) or judged on the spot.

use serde::Serialize;
use serde_json::Value;

use super::config::ConfigArgs;
use super::spot::{self, Spot};
use super::{CliError, Output, table};
use crate::checks::Outcome;
use crate::records::action::{ActionRecord, record_for};
use crate::records::actions::RecordStore;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// A running daemon (`http://upgrade-guard.upgrade-guard:8080`): show what it sees and
    /// decided. Without it, the releases are judged now, from here.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Namespaces (repeatable; default: `watch.namespaces` of the configuration).
    #[arg(short, long = "namespace")]
    pub namespaces: Vec<String>,
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
}

fn text(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_default()
}

/// The action of `/api/v1/releases` in the words of `RecommendedAction::words`.
fn action_of(a: &Value) -> String {
    let field = |k: &str| text(&a[k]);
    match a["action"].as_str().unwrap_or("none") {
        "none" => String::new(),
        "rollback" => format!(
            "roll back to revision {}: {}",
            a["target"],
            field("command")
        ),
        "restart_pod" => format!("restart the pod: {}", field("command")),
        "fix_dependency" => format!("fix the dependency {} first", field("name")),
        "fix_hook" => format!("fix the hook {}: {}", field("hook"), field("command")),
        "investigate" => format!("investigate: {}", field("reason")),
        "hold" => format!("no action now: {}", field("reason")),
        other => other.to_string(),
    }
}

/// Rows from a daemon's `/api/v1/releases` answer.
pub fn rows_from_api(answer: &Value) -> Vec<StatusRow> {
    answer["releases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let j = &r["judgement"];
            let failing = j["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["outcome"] != "pass")
                .map(|c| format!("{} {}", text(&c["check"]), text(&c["outcome"])))
                .collect();
            let verdict = match (j["verdict"].as_str(), r["problem"].as_str()) {
                (_, Some(p)) => format!("({p})"),
                (Some(v), None) if j["final"] == true => v.to_string(),
                (Some(v), None) => format!("{v} (baking)"),
                (None, None) => "not judged yet".to_string(),
            };
            let record = &r["automation"]["record"];
            let last_action = if record.is_null() {
                String::new()
            } else {
                serde_json::from_value(record.clone())
                    .map(|r: ActionRecord| r.words())
                    .unwrap_or_default()
            };
            StatusRow {
                release: format!(
                    "{}/{}",
                    text(&r["release"]["namespace"]),
                    text(&r["release"]["name"])
                ),
                revision: u32::try_from(r["revision"].as_u64().unwrap_or_default())
                    .unwrap_or_default(),
                status: text(&r["status"]),
                chart: if r["chart"].is_null() {
                    String::new()
                } else {
                    format!(
                        "{}-{}",
                        text(&r["chart"]["name"]),
                        text(&r["chart"]["version"])
                    )
                },
                app_version: text(&r["chart"]["app_version"]),
                verdict,
                failing,
                action: action_of(&j["action"]),
                mode: text(&r["mode"]),
                last_action,
            }
        })
        .collect()
}

fn row_of_spot(spot: &Spot, mode: &str, records: &[ActionRecord]) -> StatusRow {
    let (verdict, failing, action) = match (&spot.report, &spot.problem) {
        (_, Some(p)) => (format!("({p})"), Vec::new(), String::new()),
        (Some(r), None) => (
            if r.evaluated_at >= r.bake_ends {
                r.verdict.as_str().to_string()
            } else {
                format!("{} (baking)", r.verdict.as_str())
            },
            r.results
                .iter()
                .filter(|c| c.outcome != Outcome::Pass)
                .map(|c| format!("{} {}", c.check, c.outcome.as_str()))
                .collect(),
            match &r.action {
                crate::verdict::RecommendedAction::None => String::new(),
                a => a.words(),
            },
        ),
        (None, None) => ("not judged".to_string(), Vec::new(), String::new()),
    };
    StatusRow {
        release: spot.release.to_string(),
        revision: spot.revision,
        status: spot.status.as_str().to_string(),
        chart: spot.chart.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
        app_version: spot
            .chart
            .as_ref()
            .and_then(|c| c.1.clone())
            .unwrap_or_default(),
        verdict,
        failing,
        action,
        mode: mode.to_string(),
        last_action: record_for(records, spot.revision, None)
            .map(ActionRecord::words)
            .unwrap_or_default(),
    }
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
                r.verdict.clone(),
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

async fn from_daemon(url: &str) -> Result<Vec<StatusRow>, CliError> {
    let endpoint = format!("{}/api/v1/releases", url.trim_end_matches('/'));
    let answer: Value = reqwest::Client::new()
        .get(&endpoint)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| CliError::Daemon(format!("{endpoint}: {e}")))?
        .json()
        .await
        .map_err(|e| CliError::Daemon(format!("{endpoint}: not the daemon's answer: {e}")))?;
    Ok(rows_from_api(&answer))
}

/// Runs `status`; returns the exit code.
pub async fn run(client: Option<kube::Client>, args: &StatusArgs) -> Result<i32, CliError> {
    let rows = match (&args.url, client) {
        (Some(url), _) => from_daemon(url).await?,
        (None, client) => {
            let client = client.ok_or_else(|| {
                CliError::Kubeconfig("no cluster to judge the releases in".into())
            })?;
            let config = args.config.load()?;
            let namespaces = if args.namespaces.is_empty() {
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
    match args.output {
        Output::Table => print!("{}", render(&rows)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(anyhow::Error::from)?
        ),
    }
    Ok(0)
}
