//! The configuration file as written (serde, unknown fields refused). Field values that can
//! be checked on their own (durations, patterns, thresholds) are checked while parsing, so
//! their errors carry the line; `super` turns this into validated, typed values.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::parse_duration;

/// A duration written like `90s`, `15m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A regular expression, compiled when the file is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text).map(Pattern).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a valid regular expression: {e}"))
        })
    }
}

/// A PromQL query: non-empty; `{{namespace}}` and `{{release}}` are substituted per release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query(pub String);

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().is_empty() {
            return Err(serde::de::Error::custom("the query is empty"));
        }
        for placeholder in text.match_indices("{{").map(|(i, _)| &text[i..]) {
            let known = ["{{namespace}}", "{{release}}"]
                .iter()
                .any(|p| placeholder.starts_with(p));
            if !known {
                let shown: String = placeholder.chars().take(20).collect();
                return Err(serde::de::Error::custom(format!(
                    "unknown placeholder {shown:?}: only {{{{namespace}}}} and {{{{release}}}} exist"
                )));
            }
        }
        Ok(Query(text))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
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
    pub suites: Option<Vec<RawSuite>>,
    #[serde(default)]
    pub defaults: RawRelease,
    #[serde(default)]
    pub releases: Vec<RawRelease>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    #[serde(default)]
    pub alertmanager: RawAlertmanager,
    pub email: Option<RawEmail>,
    pub dashboard_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub security: Option<crate::config::SmtpSecurity>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub username_file: Option<std::path::PathBuf>,
    pub password_file: Option<std::path::PathBuf>,
    pub timeout: Option<Dur>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheus {
    pub url: Option<String>,
    pub timeout: Option<Dur>,
    pub retry_interval: Option<Dur>,
    pub errors_before_inconclusive: Option<u32>,
    pub scrape_interval: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub namespaces: Option<Vec<String>>,
    pub storage: Option<Vec<crate::release::labels::Storage>>,
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

/// `auto:` of a release: limits on what `mode: auto` does.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuto {
    pub max_per_revision: Option<u32>,
    pub cooldown: Option<Dur>,
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
    pub mode: Option<super::Mode>,
    pub auto: Option<RawAuto>,
    pub bake_window: Option<Dur>,
    pub readiness_deadline: Option<Dur>,
    pub pending_timeout: Option<Dur>,
    pub rollback_timeout: Option<Dur>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigration {
    pub job_name_pattern: Pattern,
    /// The migration must have run (a schema change is expected): a release without a
    /// matching Job fails once the readiness deadline passes.
    #[serde(default)]
    pub required: bool,
    /// Workload restarted by the recommended command (default: the first one of the
    /// release's manifest).
    pub restart: Option<String>,
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

/// A PromQL check with bounds: `dependencies` and `custom`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawThresholdFields")]
pub struct RawThreshold {
    pub name: String,
    pub query: Query,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub on_no_data: super::OnNoData,
    pub action: super::FailAction,
    pub hold: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholdFields {
    name: String,
    query: Query,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    on_no_data: Option<super::OnNoData>,
    #[serde(default)]
    action: Option<super::FailAction>,
    #[serde(default, rename = "for")]
    hold: Option<Dur>,
}

impl TryFrom<RawThresholdFields> for RawThreshold {
    type Error = String;

    fn try_from(r: RawThresholdFields) -> Result<Self, String> {
        if r.name.trim().is_empty() {
            return Err("a check needs a name".into());
        }
        match (r.min, r.max) {
            (None, None) => return Err(format!("check {:?} needs min, max or both", r.name)),
            (Some(min), Some(max)) if min > max => {
                return Err(format!("check {:?}: min {min} is above max {max}", r.name));
            }
            _ => {}
        }
        if r.min.is_some_and(f64::is_nan) || r.max.is_some_and(f64::is_nan) {
            return Err(format!("check {:?}: bounds must be numbers", r.name));
        }
        Ok(RawThreshold {
            name: r.name,
            query: r.query,
            min: r.min,
            max: r.max,
            on_no_data: r.on_no_data.unwrap_or(super::OnNoData::Inconclusive),
            action: r.action.unwrap_or(super::FailAction::Rollback),
            hold: r.hold,
        })
    }
}
