//! `upgrade-guard history`: a release's revisions, decoded with the daemon's decoder.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use serde::Serialize;

use super::{CliError, Output};
use crate::release::ReleaseStatus;
use crate::release::decode::{DecodeLimits, ReleaseSummary, decode_release};
use crate::release::labels::{
    HELM_OWNER_SELECTOR, HELM_SECRET_TYPE_SELECTOR, Storage, revision_from_meta,
};

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Release name.
    pub release: String,
    /// Namespace of the release.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show at most this many revisions (the newest).
    #[arg(long, default_value_t = 256)]
    pub max: usize,
}

/// One row of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// Revision number.
    pub revision: u32,
    /// Helm's storage driver holding the revision (shown when not `secret`).
    #[serde(skip_serializing_if = "is_secret")]
    pub storage: Storage,
    /// Status from the payload (or the label when the payload cannot be decoded).
    pub status: ReleaseStatus,
    /// The decoded revision, or why it could not be decoded.
    #[serde(flatten)]
    pub detail: RowDetail,
}

/// What is known of a revision beyond its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RowDetail {
    /// Decoded.
    Decoded(Box<ReleaseSummary>),
    /// Not decodable.
    Undecodable {
        /// The reason, in words.
        decode_error: String,
    },
}

fn is_secret(s: &Storage) -> bool {
    *s == Storage::Secret
}

/// Decodes one release Secret into a row; `None` when its labels name no revision.
fn row_of(secret: &Secret) -> Option<HistoryRow> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    row_from(&secret.metadata, Storage::Secret, data)
}

/// The same for a record of Helm's ConfigMap driver (`data.release` is the same text).
fn row_of_configmap(cm: &ConfigMap) -> Option<HistoryRow> {
    let data = cm
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|s| s.as_bytes())
        .unwrap_or_default();
    row_from(&cm.metadata, Storage::ConfigMap, data)
}

fn row_from(metadata: &ObjectMeta, storage: Storage, data: &[u8]) -> Option<HistoryRow> {
    let meta = match revision_from_meta(metadata) {
        Ok(meta) => meta,
        Err(e) => {
            tracing::warn!("skipping a Helm release record: {e}");
            return None;
        }
    };
    Some(match decode_release(data, DecodeLimits::default()) {
        Ok(summary) => HistoryRow {
            revision: meta.revision,
            storage,
            status: summary.status,
            detail: RowDetail::Decoded(Box::new(summary)),
        },
        Err(e) => HistoryRow {
            revision: meta.revision,
            storage,
            status: meta.status,
            detail: RowDetail::Undecodable {
                decode_error: format!("cannot decode: {e}"),
            },
        },
    })
}

/// Rollback revisions and the revision each rolled back to ("Rollback to N").
pub fn rollbacks_of(rows: &[HistoryRow]) -> std::collections::BTreeMap<u32, u32> {
    rows.iter()
        .filter_map(|r| match &r.detail {
            RowDetail::Decoded(s) => s.rollback_to().map(|t| (r.revision, t)),
            RowDetail::Undecodable { .. } => None,
        })
        .collect()
}

/// Lists and decodes the revisions of `release` in `namespace`, oldest first. Helm's
/// Secrets are read; a release without any is looked for in ConfigMaps (Helm's
/// `configmap` storage driver).
pub async fn read_history(
    client: kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<HistoryRow>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secrets = api.list(&release_selector(release)).await?;
    let mut rows: Vec<HistoryRow> = secrets.items.iter().filter_map(row_of).collect();
    if rows.is_empty() {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let maps = api.list(&configmap_selector(release)).await?;
        rows = maps.items.iter().filter_map(row_of_configmap).collect();
    }
    rows.sort_by_key(|r| r.revision);
    Ok(rows)
}

/// Reads and decodes one revision (one GET); `None` when its Secret does not exist.
pub async fn read_revision(
    client: kube::Client,
    namespace: &str,
    release: &str,
    revision: u32,
) -> Result<Option<HistoryRow>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let key = crate::release::ReleaseKey::new(namespace, release);
    let name = key.secret_name(revision);
    if let Some(secret) = api.get_opt(&name).await? {
        return Ok(row_of(&secret));
    }
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    Ok(api
        .get_opt(&name)
        .await?
        .as_ref()
        .and_then(row_of_configmap))
}

/// The revisions of `release` and their statuses, from labels only (no payload crosses),
/// oldest first. Secrets whose labels do not name a revision are skipped.
pub async fn read_statuses(
    client: kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<(u32, ReleaseStatus)>, kube::Error> {
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
    let mut metas: Vec<ObjectMeta> = api
        .list(&release_selector(release))
        .await?
        .items
        .into_iter()
        .map(|s| s.metadata)
        .collect();
    if metas.is_empty() {
        let api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client, namespace);
        metas = api
            .list(&configmap_selector(release))
            .await?
            .items
            .into_iter()
            .map(|c| c.metadata)
            .collect();
    }
    let mut statuses: Vec<(u32, ReleaseStatus)> = metas
        .iter()
        .filter_map(|m| revision_from_meta(m).ok())
        .map(|m| (m.revision, m.status))
        .collect();
    statuses.sort_by_key(|(r, _)| *r);
    Ok(statuses)
}

fn release_selector(release: &str) -> ListParams {
    ListParams::default()
        .labels(&format!("{HELM_OWNER_SELECTOR},name={release}"))
        .fields(HELM_SECRET_TYPE_SELECTOR)
}

fn configmap_selector(release: &str) -> ListParams {
    ListParams::default().labels(&format!(
        "{HELM_OWNER_SELECTOR},name={release},status,version"
    ))
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
    let mut rows = read_history(client, &args.namespace, &args.release).await?;
    if rows.is_empty() {
        return Err(CliError::ReleaseNotFound {
            release: args.release.clone(),
            namespace: args.namespace.clone(),
        });
    }
    let skip = rows.len().saturating_sub(args.max);
    rows.drain(..skip);
    match args.output {
        Output::Table => print!("{}", render_table(&rows)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(anyhow::Error::from)?
        ),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::decode::ChartRef;

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
            chart: ChartRef {
                name: "gim".into(),
                version: "100.0.116+2900".into(),
                app_version: Some("100.0.116".into()),
            },
            hooks: vec![],
            workloads: vec![],
            manifest_problems: vec![],
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
