//! `upgrade-guard history`: a release's revisions, decoded with the daemon's decoder.

use super::error::CliError;
use super::output::Output;
use crate::release::record::{HistoryRow, RowDetail};
use crate::tracker::read::read_history;

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Release name.
    pub release: String,
    /// Namespace of the release. Default, as helm: $HELM_NAMESPACE, else the current
    /// kubeconfig context's namespace, else `default`.
    #[arg(short, long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show at most this many revisions (the newest).
    #[arg(long, default_value_t = 256)]
    pub max: usize,
}

/// Renders rows like `helm history` does.
pub fn render_table(rows: &[HistoryRow]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| match &r.detail {
            RowDetail::Decoded(s) => [
                r.revision.to_string(),
                s.last_deployed
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                r.status.to_string(),
                format!("{}-{}", s.chart.name, s.chart.version),
                s.chart.app_version.clone().unwrap_or_default(),
                first_line(&s.description),
            ],
            RowDetail::Undecodable { decode_error } => [
                r.revision.to_string(),
                String::new(),
                r.status.to_string(),
                String::new(),
                String::new(),
                decode_error.clone(),
            ],
        })
        .collect();
    super::table::render(
        [
            "REVISION",
            "UPDATED",
            "STATUS",
            "CHART",
            "APP VERSION",
            "DESCRIPTION",
        ],
        &cells,
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

/// Runs `history`; returns the process exit code.
pub async fn run(client: kube::Client, args: &HistoryArgs) -> Result<i32, CliError> {
    let ns = super::scope::namespace(args.namespace.as_deref(), &client);
    let mut rows = read_history(client, &ns, &args.release).await?;
    if rows.is_empty() {
        return Err(CliError::ReleaseNotFound {
            release: args.release.clone(),
            namespace: ns.clone(),
        });
    }
    let skip = rows.len().saturating_sub(args.max);
    rows.drain(..skip);
    args.output.print(rows.as_slice(), render_table)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseStatus;
    use crate::release::labels::Storage;
    use crate::release::summary::{ChartRef, ReleaseSummary};

    #[test]
    fn table_aligns_columns_and_shows_undecodable_revisions() {
        let summary = ReleaseSummary {
            name: "gim".into(),
            namespace: "gim".into(),
            revision: 1,
            status: ReleaseStatus::Superseded,
            description: "Install complete".into(),
            first_deployed: None,
            last_deployed: Some("2026-11-25T10:00:00Z".parse().unwrap()),
            recorded: None,
            chart: ChartRef {
                name: "gim".into(),
                version: "100.0.116+2900".into(),
                app_version: Some("100.0.116".into()),
            },
            hooks: vec![],
            workloads: vec![],
            manifest_problems: vec![],
            fingerprint: Default::default(),
        };
        let rows = vec![
            HistoryRow {
                revision: 1,
                storage: Storage::Secret,
                status: ReleaseStatus::Superseded,
                detail: RowDetail::Decoded(Box::new(summary)),
            },
            HistoryRow {
                revision: 2,
                storage: Storage::Secret,
                status: ReleaseStatus::Failed,
                detail: RowDetail::Undecodable {
                    decode_error: "cannot decode: invalid base64".into(),
                },
            },
        ];
        let table = render_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("REVISION  UPDATED"), "{table}");
        assert!(
            lines[1].contains("2026-11-25 10:00:00  superseded  gim-100.0.116+2900  100.0.116"),
            "{table}"
        );
        assert!(
            lines[2].ends_with("cannot decode: invalid base64"),
            "{table}"
        );
        let status_col = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[2][status_col..status_col + 6], "failed");
    }
}
