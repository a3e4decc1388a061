//! From the text of the file to a validated [`Config`] (pure; `load.rs` reads the file): the
//! YAML into raw serde structs (unknown fields refused, errors with the field's path and
//! line), then defaults, per-release overlays, the rules that refuse what cannot work, and
//! warnings for what is valid but probably not meant.

use std::time::Duration;

use super::error::{ConfigError, FieldError};
use super::overlay::{DefaultHold, overlay};
use super::raw::RawConfig;
use super::sections::{self, actions, email, http, suites};
use super::settings::{NotificationsConfig, PrometheusConfig, StateConfig, WatchConfig};
use super::validate::{check_policy, check_sql, positive, warnings};
use super::{Config, DEFAULT_PROFILE, Override, defaults};

/// Path of the `defaults` section in error messages.
const DEFAULTS_PATH: &str = "defaults";

impl Config {
    /// The built-in Genesys Info Mart profile.
    pub fn default_profile() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_PROFILE, "built-in profile")
    }

    /// Parses and validates configuration text; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            let reason = strip_yaml_path(&inner.to_string()).to_string();
            ConfigError {
                line,
                ..if path.is_empty() || path == "." {
                    ConfigError::whole(source_name, reason)
                } else {
                    ConfigError::field(source_name, FieldError::new(path, reason))
                }
            }
        })?;
        validate(raw).map_err(|e| ConfigError::field(source_name, e))
    }
}

/// The YAML parser prefixes its messages with a coarser path of its own; the precise one
/// from serde_path_to_error replaces it.
fn strip_yaml_path(message: &str) -> &str {
    match message.split_once(": ") {
        Some((head, rest))
            if !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_[].".contains(c)) =>
        {
            rest
        }
        _ => message,
    }
}

fn validate(raw: RawConfig) -> Result<Config, FieldError> {
    let p = &raw.prometheus;
    let prometheus = PrometheusConfig {
        url: p
            .url
            .clone()
            .unwrap_or_else(|| "http://localhost:9090".to_string()),
        timeout: p.timeout.map_or(Duration::from_secs(10), |d| d.0),
        retry_interval: p.retry_interval.map_or(Duration::from_secs(10), |d| d.0),
        errors_before_inconclusive: p.errors_before_inconclusive.unwrap_or(4),
        scrape_interval: p.scrape_interval.map_or(Duration::from_secs(30), |d| d.0),
        client: sections::http_client(
            "prometheus",
            p.authorization.as_ref(),
            p.basic_auth.as_ref(),
            p.tls_config.as_ref(),
            p.headers.as_ref(),
        )?,
    };
    if !http_url(&prometheus.url) {
        return Err(FieldError::new(
            "prometheus.url",
            format!("{:?} must start with http:// or https://", prometheus.url),
        ));
    }
    positive("prometheus.timeout", prometheus.timeout)?;
    positive("prometheus.retry_interval", prometheus.retry_interval)?;
    positive("prometheus.scrape_interval", prometheus.scrape_interval)?;
    if prometheus.errors_before_inconclusive == 0 {
        return Err(FieldError::new(
            "prometheus.errors_before_inconclusive",
            "must be at least 1",
        ));
    }
    let watch = WatchConfig {
        namespaces: raw.watch.namespaces.clone().unwrap_or_default(),
        stuck_pending_after: raw
            .watch
            .stuck_pending_after
            .map_or(defaults::STUCK_PENDING_AFTER, |d| d.0),
        max_payload_bytes: raw
            .watch
            .max_payload_bytes
            .unwrap_or(crate::release::decode::DEFAULT_MAX_DECOMPRESSED_BYTES),
        storage: raw
            .watch
            .storage
            .clone()
            .unwrap_or_else(|| vec![crate::release::labels::Storage::Secret]),
        watch_timeout: raw
            .watch
            .watch_timeout
            .map_or(defaults::WATCH_TIMEOUT, |d| d.0),
        idle_timeout: raw
            .watch
            .idle_timeout
            .map_or(defaults::IDLE_TIMEOUT, |d| d.0),
        fetch_timeout: raw
            .watch
            .fetch_timeout
            .map_or(defaults::FETCH_TIMEOUT, |d| d.0),
    };
    if let Some((field, reason)) = watch.problem() {
        return Err(FieldError::new(
            format!("watch.{field}"),
            reason.to_string(),
        ));
    }
    let evaluation_interval = raw
        .evaluation
        .interval
        .map_or(Duration::from_secs(30), |d| d.0);
    positive("evaluation.interval", evaluation_interval)?;
    let config_check_interval = raw
        .evaluation
        .config_check_interval
        .as_ref()
        .map_or(Duration::from_secs(10 * 60), |d| d.0);
    let state = StateConfig {
        namespace: raw
            .state
            .namespace
            .clone()
            .unwrap_or_else(|| defaults::STATE_NAMESPACE.to_string()),
    };
    if state.namespace.is_empty() {
        return Err(FieldError::new("state.namespace", "must name a namespace"));
    }
    let am = &raw.notifications.alertmanager;
    let notifications = NotificationsConfig {
        alertmanager_urls: am.urls.clone().unwrap_or_default(),
        resend_interval: am
            .resend_interval
            .as_ref()
            .map_or(Duration::from_secs(60), |d| d.0),
        queue_size: am.queue_size.unwrap_or(100),
        alertmanager_client: sections::http_client(
            "notifications.alertmanager",
            am.authorization.as_ref(),
            am.basic_auth.as_ref(),
            am.tls_config.as_ref(),
            am.headers.as_ref(),
        )?,
        dashboard_url: raw
            .notifications
            .dashboard_url
            .clone()
            .filter(|u| !u.is_empty()),
        runbook_url: link(
            "notifications.runbook_url",
            raw.notifications
                .runbook_url
                .as_deref()
                .unwrap_or(defaults::RUNBOOK_URL),
        )?,
        external_url: link(
            "notifications.external_url",
            raw.notifications.external_url.as_deref().unwrap_or(""),
        )?
        .map(|u| u.trim_end_matches('/').to_string()),
        kubernetes_events: raw.notifications.kubernetes_events.unwrap_or(false),
        email: raw.notifications.email.as_ref().map(email).transpose()?,
        inconclusive_after: raw
            .notifications
            .inconclusive_after
            .as_ref()
            .map_or(Duration::from_secs(30 * 60), |d| d.0),
        routes: super::routes::routes(
            raw.notifications.routes.as_deref().unwrap_or_default(),
            raw.notifications.email.is_some(),
        )?,
        webhooks: super::webhooks::webhooks(
            raw.notifications.webhooks.as_deref().unwrap_or_default(),
        )?,
    };
    for (i, url) in notifications.alertmanager_urls.iter().enumerate() {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(FieldError::new(
                    format!("notifications.alertmanager.urls[{i}]"),
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
    }
    positive(
        "notifications.alertmanager.resend_interval",
        notifications.resend_interval,
    )?;
    positive(
        "notifications.inconclusive_after",
        notifications.inconclusive_after,
    )?;
    if notifications.queue_size == 0 {
        return Err(FieldError::new(
            "notifications.alertmanager.queue_size",
            "must be at least 1",
        ));
    }
    let actions = actions(&raw.actions)?;
    let http = http(&raw.http)?;
    let suites = suites(raw.suites.as_deref().unwrap_or_default())?;
    // Like a Prometheus rule: two evaluations, and never less than one scrape.
    let default_hold = DefaultHold::new(evaluation_interval, prometheus.scrape_interval);

    if raw.defaults.name.is_some() || raw.defaults.namespace.is_some() {
        return Err(FieldError::new(
            "defaults",
            "name and namespace belong to entries under releases",
        ));
    }
    let databases = super::database::databases(&raw.databases, &state.namespace)?;
    let defaults = overlay(defaults::release_policy(), &raw.defaults, default_hold);
    check_policy(DEFAULTS_PATH, &defaults, prometheus.scrape_interval)?;
    check_sql(DEFAULTS_PATH, &defaults, &databases, evaluation_interval)?;
    let inherited = warnings(&defaults);
    let mut all_warnings: Vec<String> = inherited
        .iter()
        .map(|w| format!("{DEFAULTS_PATH}: {w}"))
        .collect();
    for db in databases.values() {
        if db.tls == super::TlsMode::Disable {
            all_warnings.push(format!(
                "databases.{}.tls: disable: the connection is not encrypted, the password and the answers cross the network in clear",
                db.name
            ));
        }
    }
    let mut overrides = Vec::new();
    for (i, r) in raw.releases.into_iter().enumerate() {
        let path = format!("releases[{i}]");
        let Some(name) = r.name.clone().filter(|n| !n.is_empty()) else {
            return Err(FieldError::new(
                path.to_string(),
                "needs the name of the release it applies to",
            ));
        };
        let resolved = overlay(defaults.clone(), &r, default_hold);
        if let Some(ns) = r.namespace.as_deref()
            && !watch.namespaces.is_empty()
            && !watch.namespaces.iter().any(|w| w == ns)
        {
            all_warnings.push(format!(
                "{path} ({name}): namespace {ns} is not among watch.namespaces: its revisions are never seen, so this entry never applies"
            ));
        }
        check_policy(&path, &resolved, prometheus.scrape_interval)?;
        check_sql(&path, &resolved, &databases, evaluation_interval)?;
        for w in warnings(&resolved) {
            if !inherited.contains(&w) {
                all_warnings.push(format!("{path} ({name}): {w}"));
            }
        }
        overrides.push(Override {
            name,
            namespace: r.namespace.clone(),
            raw: r,
        });
    }
    let cluster = raw.cluster.clone().filter(|c| !c.is_empty());
    if let Some(c) = &cluster
        && (c.len() > 63
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    {
        return Err(FieldError::new(
            "cluster",
            "at most 63 letters, digits, '-', '_' or '.' (it becomes an alert label)",
        ));
    }
    Ok(Config {
        cluster,
        prometheus,
        watch,
        evaluation_interval,
        config_check_interval,
        state,
        notifications,
        actions,
        http,
        suites,
        databases,
        warnings: all_warnings,
        defaults,
        overrides,
        default_hold,
    })
}

fn http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// A link put on alerts: an http(s) URL, or nothing when "".
fn link(field: &str, url: &str) -> Result<Option<String>, FieldError> {
    if url.is_empty() {
        return Ok(None);
    }
    if !http_url(url) || url.chars().any(char::is_whitespace) {
        return Err(FieldError::new(
            field,
            format!("{url:?} must be an http:// or https:// URL (or \"\" for none)"),
        ));
    }
    Ok(Some(url.to_string()))
}
