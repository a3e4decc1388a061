//! The configuration file as written (serde, unknown fields refused). Field values that can
//! be checked on their own (durations, patterns, thresholds) are checked while parsing, so
//! their errors carry the line (`fields.rs`); `resolve.rs` turns this into validated, typed
//! values.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::database::RawDatabase;
use super::policy::{FailAction, Mode, OnNoData};
use super::settings::SmtpSecurity;
use crate::release::labels::Storage;

pub use super::fields::{Dur, Pattern, Query};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub cluster: Option<String>,
    #[serde(default)]
    pub prometheus: RawPrometheus,
    #[serde(default)]
    pub watch: RawWatch,
    #[serde(default)]
    pub evaluation: RawEvaluation,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub notifications: RawNotifications,
    #[serde(default)]
    pub actions: RawActions,
    #[serde(default)]
    pub http: RawHttp,
    pub suites: Option<Vec<RawSuite>>,
    #[serde(default)]
    pub databases: std::collections::BTreeMap<String, RawDatabase>,
    #[serde(default)]
    pub defaults: RawRelease,
    #[serde(default)]
    pub releases: Vec<RawRelease>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub authentication: Option<super::settings::HttpAuthentication>,
    pub auth_cache: Option<Dur>,
    pub max_connections: Option<usize>,
    pub read_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    #[serde(default)]
    pub alertmanager: RawAlertmanager,
    pub email: Option<RawEmail>,
    pub dashboard_url: Option<String>,
    pub runbook_url: Option<String>,
    pub external_url: Option<String>,
    pub kubernetes_events: Option<bool>,
    pub inconclusive_after: Option<Dur>,
    pub routes: Option<Vec<super::routes::RawRoute>>,
    pub webhooks: Option<Vec<super::webhooks::RawWebhook>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub security: Option<SmtpSecurity>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub username_file: Option<std::path::PathBuf>,
    pub password_file: Option<std::path::PathBuf>,
    pub timeout: Option<Dur>,
    pub give_up_after: Option<Dur>,
    pub templates_dir: Option<std::path::PathBuf>,
    /// Refused with a message: credentials never live in the configuration.
    pub password: Option<serde_yaml_ng::Value>,
    /// Refused likewise.
    pub username: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    pub urls: Option<Vec<String>>,
    pub resend_interval: Option<Dur>,
    pub queue_size: Option<usize>,
    pub authorization: Option<RawAuthorization>,
    pub basic_auth: Option<RawBasicAuth>,
    pub tls_config: Option<RawTlsConfig>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// `authorization:` as in Prometheus' http_config: a credentials file sent as
/// `Authorization: <type> <credentials>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials_file: Option<std::path::PathBuf>,
}

/// `basic_auth:`: a user name and a password file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
}

/// `tls_config:`: the CA that signed the server's certificate, a client certificate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsConfig {
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheus {
    pub url: Option<String>,
    pub timeout: Option<Dur>,
    pub retry_interval: Option<Dur>,
    pub errors_before_inconclusive: Option<u32>,
    pub scrape_interval: Option<Dur>,
    pub authorization: Option<RawAuthorization>,
    pub basic_auth: Option<RawBasicAuth>,
    pub tls_config: Option<RawTlsConfig>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub namespaces: Option<Vec<String>>,
    pub storage: Option<Vec<Storage>>,
    pub stuck_pending_after: Option<Dur>,
    pub max_payload_bytes: Option<usize>,
    pub watch_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub fetch_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvaluation {
    pub interval: Option<Dur>,
    pub config_check_interval: Option<Dur>,
}

/// A suite: releases upgraded together, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    pub name: String,
    /// Steps in upgrade order; each step lists `namespace/release`.
    pub order: Vec<Vec<String>>,
    /// Upgrades this close together belong to one upgrade cycle.
    pub cycle: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActions {
    pub dry_run: Option<bool>,
    pub budget: Option<u32>,
    pub budget_window: Option<Dur>,
    pub retry_holds_for: Option<Dur>,
    pub settle_after_failed: Option<Dur>,
    pub helm: Option<String>,
    #[serde(default)]
    pub leader_election: RawLeaderElection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeaderElection {
    pub lease_name: Option<String>,
    pub lease_duration: Option<Dur>,
    pub renew_deadline: Option<Dur>,
    pub retry_period: Option<Dur>,
}

/// `export_views:` of a release.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExportViews {
    pub enabled: Option<bool>,
    pub command: Option<String>,
}

/// `after_bake:` of a release: the watch after the bake.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAfterBake {
    pub watch_for: Option<Dur>,
    pub interval: Option<Dur>,
}

/// `auto:` of a release: limits on what `mode: auto` does.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuto {
    pub max_per_revision: Option<u32>,
    pub cooldown: Option<Dur>,
    pub reapplied_within: Option<Dur>,
    pub restart_migration_pod: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub namespace: Option<String>,
}

/// `defaults` and each entry of `releases`; `name`/`namespace` select the release and are
/// only allowed under `releases`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelease {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub mode: Option<Mode>,
    pub auto: Option<RawAuto>,
    pub bake_window: Option<Dur>,
    pub inconclusive_grace: Option<Dur>,
    pub readiness_deadline: Option<Dur>,
    pub pending_timeout: Option<Dur>,
    pub pod_timeouts: Option<std::collections::BTreeMap<super::policy::PodProblem, Dur>>,
    pub stall_timeout: Option<Dur>,
    pub max_restarts: Option<u32>,
    pub rollback_timeout: Option<Dur>,
    pub after_bake: Option<RawAfterBake>,
    pub metrics_grace: Option<Dur>,
    pub hooks: Option<bool>,
    pub migration: Option<RawMigration>,
    pub export_views: Option<RawExportViews>,
    pub uninstall_leftovers: Option<String>,
    pub metrics_presence: Option<Vec<RawPresence>>,
    pub lag: Option<RawLag>,
    pub dependencies: Option<Vec<RawThreshold>>,
    pub custom: Option<Vec<RawThreshold>>,
}

/// `migration:` of a release: a Job (or hook) name pattern, a `sql` check confirming the
/// migration in the database, or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawMigrationFields")]
pub struct RawMigration {
    pub job_name_pattern: Option<Pattern>,
    /// The migration must have run (a schema change is expected): a release without a
    /// matching Job fails once the readiness deadline passes.
    pub required: bool,
    /// Workload restarted by the recommended command (default: the first one of the
    /// release's manifest).
    pub restart: Option<String>,
    /// The database check, with its bounds (`name` is "migration query").
    pub sql: Option<RawThreshold>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigrationFields {
    job_name_pattern: Option<Pattern>,
    #[serde(default)]
    required: bool,
    restart: Option<String>,
    sql: Option<RawSql>,
    min: Option<f64>,
    max: Option<f64>,
    equals: Option<Equals>,
    on_no_data: Option<OnNoData>,
    #[serde(rename = "for")]
    hold: Option<Dur>,
}

impl TryFrom<RawMigrationFields> for RawMigration {
    type Error = String;

    fn try_from(r: RawMigrationFields) -> Result<Self, String> {
        if r.job_name_pattern.is_none() && r.sql.is_none() {
            return Err(
                "name the migration's Job (job_name_pattern), a database query confirming it (sql), or both".into(),
            );
        }
        if r.required && r.job_name_pattern.is_none() {
            return Err("required applies to the migration Job: set job_name_pattern".into());
        }
        let has_bounds = r.min.is_some() || r.max.is_some() || r.equals.is_some();
        let sql = match r.sql {
            Some(sql) => Some(RawThreshold::try_from(RawThresholdFields {
                name: "migration query".into(),
                query: None,
                sql: Some(sql),
                min: r.min,
                max: r.max,
                equals: r.equals,
                on_no_data: r.on_no_data,
                action: None,
                hold: r.hold,
            })?),
            None if has_bounds || r.on_no_data.is_some() || r.hold.is_some() => {
                return Err(
                    "min, max, equals, on_no_data and for apply to the sql check: add sql".into(),
                );
            }
            None => None,
        };
        Ok(RawMigration {
            job_name_pattern: r.job_name_pattern,
            required: r.required,
            restart: r.restart,
            sql,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPresence {
    pub name: String,
    pub query: Query,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLag {
    pub query: Query,
    pub window: Dur,
    pub max_slope: f64,
    pub max_level: Option<f64>,
    pub min_samples: Option<u32>,
    #[serde(rename = "for")]
    pub hold: Option<Dur>,
}

/// A SQL query: non-empty text run as is (no placeholders), against a database named under
/// `databases`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSql {
    pub database: String,
    pub query: String,
}

/// Where a bounded check's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSource {
    PromQL(Query),
    Sql(RawSql),
}

/// `equals:` takes a number or a boolean (`true` is 1, `false` is 0).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Equals {
    Number(f64),
    Bool(bool),
}

/// A check with bounds: `dependencies` and `custom`, on PromQL or SQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawThresholdFields")]
pub struct RawThreshold {
    pub name: String,
    pub source: RawSource,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub on_no_data: OnNoData,
    pub action: FailAction,
    pub hold: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholdFields {
    name: String,
    query: Option<Query>,
    sql: Option<RawSql>,
    min: Option<f64>,
    max: Option<f64>,
    equals: Option<Equals>,
    #[serde(default)]
    on_no_data: Option<OnNoData>,
    #[serde(default)]
    action: Option<FailAction>,
    #[serde(default, rename = "for")]
    hold: Option<Dur>,
}

impl TryFrom<RawThresholdFields> for RawThreshold {
    type Error = String;

    fn try_from(r: RawThresholdFields) -> Result<Self, String> {
        if r.name.trim().is_empty() {
            return Err("a check needs a name".into());
        }
        let source = match (r.query, r.sql) {
            (Some(q), None) => RawSource::PromQL(q),
            (None, Some(sql)) => {
                if sql.query.trim().is_empty() {
                    return Err(format!("check {:?}: the sql query is empty", r.name));
                }
                if sql.query.contains("{{namespace}}") || sql.query.contains("{{release}}") {
                    return Err(format!(
                        "check {:?}: placeholders are not filled in SQL queries (the query runs exactly as written)",
                        r.name
                    ));
                }
                if sql.database.is_empty() {
                    return Err(format!(
                        "check {:?}: sql.database must name an entry of databases",
                        r.name
                    ));
                }
                RawSource::Sql(sql)
            }
            _ => {
                return Err(format!(
                    "check {:?}: give either query (PromQL) or sql (database and query), not both",
                    r.name
                ));
            }
        };
        let (min, max) = match (r.equals, r.min, r.max) {
            (None, min, max) => (min, max),
            (Some(e), None, None) => {
                let v = match e {
                    Equals::Number(v) => v,
                    Equals::Bool(b) => f64::from(u8::from(b)),
                };
                (Some(v), Some(v))
            }
            (Some(_), _, _) => {
                return Err(format!(
                    "check {:?}: equals replaces min and max; give one or the other",
                    r.name
                ));
            }
        };
        match (min, max) {
            (None, None) => {
                return Err(format!(
                    "check {:?} needs min, max, both, or equals",
                    r.name
                ));
            }
            (Some(min), Some(max)) if min > max => {
                return Err(format!("check {:?}: min {min} is above max {max}", r.name));
            }
            _ => {}
        }
        if min.is_some_and(f64::is_nan) || max.is_some_and(f64::is_nan) {
            return Err(format!("check {:?}: bounds must be numbers", r.name));
        }
        Ok(RawThreshold {
            name: r.name,
            source,
            min,
            max,
            on_no_data: r.on_no_data.unwrap_or(OnNoData::Inconclusive),
            action: r.action.unwrap_or(FailAction::Rollback),
            hold: r.hold,
        })
    }
}
