//! From the raw file to validated, typed values: defaults, per-release overlays, checks that
//! refuse what cannot work (errors naming the field) and warnings for what is valid but
//! probably not meant.

use std::collections::BTreeSet;
use std::time::Duration;

use super::defaults;
use super::raw::{self, RawConfig, RawRelease};
use super::{
    ActionsConfig, AutoPolicy, Config, EmailConfig, LagPolicy, LeaderElectionConfig,
    MigrationPolicy, Mode, NotificationsConfig, Override, PresencePolicy, PrometheusConfig,
    ReleasePolicy, SmtpSecurity, Source, SqlSource, StateConfig, Suite, ThresholdPolicy,
    WatchConfig,
};
use crate::units::human;

/// Path of the `defaults` section in error messages.
const DEFAULTS_PATH: &str = "defaults";

/// Points a lag window must hold by default before its slope is trusted.
pub const DEFAULT_LAG_MIN_SAMPLES: u32 = 5;

/// Fewer points than this make a slope meaningless.
const LAG_MIN_SAMPLES_FLOOR: u32 = 3;

/// Namespace of upgrade-guard's own records unless the file says otherwise.
const DEFAULT_STATE_NAMESPACE: &str = "upgrade-guard";

fn hard_defaults() -> ReleasePolicy {
    ReleasePolicy {
        mode: Mode::Recommend,
        auto: AutoPolicy {
            max_per_revision: 1,
            cooldown: Duration::from_secs(60 * 60),
            restart_migration_pod: false,
        },
        bake_window: Duration::from_secs(15 * 60),
        readiness_deadline: Duration::from_secs(10 * 60),
        pending_timeout: Duration::from_secs(5 * 60),
        rollback_timeout: Duration::from_secs(5 * 60),
        metrics_grace: Duration::from_secs(2 * 60),
        hooks: true,
        migration: None,
        export_views: super::ExportViewsPolicy::default(),
        uninstall_leftovers: None,
        metrics_presence: Vec::new(),
        lag: None,
        dependencies: Vec::new(),
        custom: Vec::new(),
    }
}

/// `for:` of checks that do not set one: like a Prometheus rule, two evaluations, and for
/// PromQL checks never less than one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DefaultHold {
    pub promql: Duration,
    pub sql: Duration,
}

impl DefaultHold {
    fn new(evaluation_interval: Duration, scrape_interval: Duration) -> Self {
        Self {
            promql: (evaluation_interval * 2).max(scrape_interval),
            sql: evaluation_interval * 2,
        }
    }
}

fn threshold(t: &raw::RawThreshold, default_hold: DefaultHold) -> ThresholdPolicy {
    let default = match t.source {
        raw::RawSource::PromQL(_) => default_hold.promql,
        raw::RawSource::Sql(_) => default_hold.sql,
    };
    ThresholdPolicy {
        name: t.name.clone(),
        source: match &t.source {
            raw::RawSource::PromQL(q) => Source::PromQL(q.0.clone()),
            raw::RawSource::Sql(s) => Source::Sql(SqlSource {
                database: s.database.clone(),
                query: s.query.clone(),
            }),
        },
        min: t.min,
        max: t.max,
        on_no_data: t.on_no_data,
        action: t.action,
        hold: t.hold.map_or(default, |d| d.0),
    }
}

fn thresholds(raw: &[raw::RawThreshold], default_hold: DefaultHold) -> Vec<ThresholdPolicy> {
    raw.iter().map(|t| threshold(t, default_hold)).collect()
}

/// Applies the fields set in `raw` over `base`; checks without `for:` get `default_hold`.
pub(super) fn overlay(
    mut base: ReleasePolicy,
    raw: &RawRelease,
    default_hold: DefaultHold,
) -> ReleasePolicy {
    if let Some(v) = raw.mode {
        base.mode = v;
    }
    if let Some(a) = &raw.auto {
        if let Some(v) = a.max_per_revision {
            base.auto.max_per_revision = v;
        }
        if let Some(v) = a.cooldown {
            base.auto.cooldown = v.0;
        }
        if let Some(v) = a.restart_migration_pod {
            base.auto.restart_migration_pod = v;
        }
    }
    let set = |field: &mut Duration, v: &Option<raw::Dur>| {
        if let Some(d) = v {
            *field = d.0;
        }
    };
    set(&mut base.bake_window, &raw.bake_window);
    set(&mut base.readiness_deadline, &raw.readiness_deadline);
    set(&mut base.pending_timeout, &raw.pending_timeout);
    set(&mut base.rollback_timeout, &raw.rollback_timeout);
    set(&mut base.metrics_grace, &raw.metrics_grace);
    if let Some(v) = raw.hooks {
        base.hooks = v;
    }
    if let Some(e) = &raw.export_views {
        if let Some(v) = e.enabled {
            base.export_views.enabled = v;
        }
        if let Some(c) = &e.command {
            base.export_views.command = Some(c.clone());
        }
    }
    if let Some(u) = &raw.uninstall_leftovers {
        base.uninstall_leftovers = Some(u.clone()).filter(|u| !u.is_empty());
    }
    if let Some(m) = &raw.migration {
        base.migration = Some(MigrationPolicy {
            job_name_pattern: m.job_name_pattern.as_ref().map(|p| p.0.clone()),
            required: m.required,
            restart: m.restart.clone(),
            sql: m.sql.as_ref().map(|t| threshold(t, default_hold)),
        });
    }
    if let Some(p) = &raw.metrics_presence {
        base.metrics_presence = p
            .iter()
            .map(|p| PresencePolicy {
                name: p.name.clone(),
                query: p.query.0.clone(),
            })
            .collect();
    }
    if let Some(l) = &raw.lag {
        base.lag = Some(LagPolicy {
            query: l.query.0.clone(),
            window: l.window.0,
            max_slope: l.max_slope,
            max_level: l.max_level,
            min_samples: l.min_samples.unwrap_or(DEFAULT_LAG_MIN_SAMPLES),
            hold: l.hold.map_or(default_hold.promql, |d| d.0),
        });
    }
    if let Some(d) = &raw.dependencies {
        base.dependencies = thresholds(d, default_hold);
    }
    if let Some(c) = &raw.custom {
        base.custom = thresholds(c, default_hold);
    }
    base
}

fn email(raw: &raw::RawEmail) -> Result<EmailConfig, String> {
    const AT: &str = "notifications.email";
    if raw.password.is_some() || raw.username.is_some() {
        return Err(format!(
            "{AT}: credentials never go in the configuration: set UPGRADE_GUARD_SMTP_USERNAME and \
             UPGRADE_GUARD_SMTP_PASSWORD, or username_file / password_file (a mounted Secret)"
        ));
    }
    let smtp_host = raw
        .smtp_host
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{AT}.smtp_host: required"))?;
    let security = raw.security.ok_or_else(|| {
        format!("{AT}.security: required (starttls, tls, or none for a local relay)")
    })?;
    let smtp_port = raw.smtp_port.unwrap_or(match security {
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    });
    let address = |field: &str, a: &str| -> Result<(), String> {
        a.parse::<lettre::message::Mailbox>()
            .map(|_| ())
            .map_err(|e| format!("{AT}.{field}: {a:?} is not an email address ({e})"))
    };
    let from = raw
        .from
        .clone()
        .ok_or_else(|| format!("{AT}.from: required"))?;
    address("from", &from)?;
    let to = raw.to.clone().unwrap_or_default();
    if to.is_empty() {
        return Err(format!("{AT}.to: name at least one recipient"));
    }
    for (i, a) in to.iter().enumerate() {
        address(&format!("to[{i}]"), a)?;
    }
    let timeout = raw
        .timeout
        .as_ref()
        .map_or(Duration::from_secs(30), |d| d.0);
    positive(&format!("{AT}.timeout"), timeout)?;
    Ok(EmailConfig {
        smtp_host,
        smtp_port,
        security,
        from,
        to,
        username_file: raw.username_file.clone(),
        password_file: raw.password_file.clone(),
        timeout,
    })
}

fn suites(raw: &[raw::RawSuite]) -> Result<Vec<Suite>, String> {
    let mut names = BTreeSet::new();
    let mut members: std::collections::BTreeMap<crate::release::ReleaseKey, String> =
        Default::default();
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("suites[{i}]");
        if s.name.is_empty() || !names.insert(s.name.clone()) {
            return Err(format!("{at}.name: needs a name of its own"));
        }
        if s.order.is_empty() || s.order.iter().any(Vec::is_empty) {
            return Err(format!(
                "{at}.order: list the steps in upgrade order, each with at least one namespace/release"
            ));
        }
        let mut order = Vec::new();
        for (j, step) in s.order.iter().enumerate() {
            let mut keys = Vec::new();
            for entry in step {
                let Some((ns, name)) = entry
                    .split_once('/')
                    .filter(|(n, r)| !n.is_empty() && !r.is_empty())
                else {
                    return Err(format!(
                        "{at}.order[{j}]: {entry:?} must read namespace/release, like gim/gim"
                    ));
                };
                let key = crate::release::ReleaseKey::new(ns, name);
                if let Some(other) = members.insert(key.clone(), s.name.clone()) {
                    return Err(format!(
                        "{at}.order[{j}]: {entry} is already in suite {other:?}: a release belongs to one suite, once"
                    ));
                }
                keys.push(key);
            }
            order.push(keys);
        }
        let cycle = s.cycle.map_or(Duration::from_secs(24 * 3600), |d| d.0);
        positive(&format!("{at}.cycle"), cycle)?;
        out.push(Suite {
            name: s.name.clone(),
            order,
            cycle,
        });
    }
    Ok(out)
}

fn actions(raw: &raw::RawActions) -> Result<ActionsConfig, String> {
    let le = &raw.leader_election;
    let dur = |v: &Option<raw::Dur>, d: u64| v.map_or(Duration::from_secs(d), |d| d.0);
    let leader_election = LeaderElectionConfig {
        lease_name: le
            .lease_name
            .clone()
            .unwrap_or_else(|| "upgrade-guard".to_string()),
        lease_duration: dur(&le.lease_duration, 15),
        renew_deadline: dur(&le.renew_deadline, 10),
        retry_period: dur(&le.retry_period, 2),
    };
    const LE: &str = "actions.leader_election";
    if leader_election.lease_name.is_empty() {
        return Err(format!("{LE}.lease_name: must name a Lease"));
    }
    positive(&format!("{LE}.retry_period"), leader_election.retry_period)?;
    if leader_election.renew_deadline >= leader_election.lease_duration {
        return Err(format!(
            "{LE}.renew_deadline: {} must be shorter than lease_duration ({}): a holder must stop acting before another replica may take the Lease",
            human(leader_election.renew_deadline),
            human(leader_election.lease_duration)
        ));
    }
    if leader_election.retry_period >= leader_election.renew_deadline {
        return Err(format!(
            "{LE}.retry_period: {} must be shorter than renew_deadline ({}): the Lease must be renewed at least once before the deadline",
            human(leader_election.retry_period),
            human(leader_election.renew_deadline)
        ));
    }
    let budget_window = dur(&raw.budget_window, 60 * 60);
    positive("actions.budget_window", budget_window)?;
    let helm = raw.helm.clone().unwrap_or_else(|| "helm".to_string());
    if helm.is_empty() {
        return Err("actions.helm: must name the helm binary".into());
    }
    Ok(ActionsConfig {
        dry_run: raw.dry_run.unwrap_or(false),
        budget: raw.budget.unwrap_or(3),
        budget_window,
        helm,
        leader_election,
    })
}

fn positive(path: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() {
        Err(format!("{path}: must be longer than zero"))
    } else {
        Ok(())
    }
}

/// A `for:` shorter than one scrape interval lets a single sample decide.
fn hold_long_enough(path: &str, hold: Duration, scrape_interval: Duration) -> Result<(), String> {
    if hold < scrape_interval {
        return Err(format!(
            "{path}.for: {} is shorter than one scrape interval ({}): a single sample would decide; use at least {}",
            human(hold),
            human(scrape_interval),
            human(scrape_interval)
        ));
    }
    Ok(())
}

/// Every SQL check of a policy, with its path.
fn sql_checks<'p>(path: &str, p: &'p ReleasePolicy) -> Vec<(String, &'p ThresholdPolicy)> {
    let mut out = Vec::new();
    if let Some(t) = p.migration.as_ref().and_then(|m| m.sql.as_ref()) {
        out.push((format!("{path}.migration"), t));
    }
    for (kind, list) in [("dependencies", &p.dependencies), ("custom", &p.custom)] {
        for (i, t) in list.iter().enumerate() {
            if t.source.sql().is_some() {
                out.push((format!("{path}.{kind}[{i}]"), t));
            }
        }
    }
    out
}

/// SQL checks name a configured database and hold for at least one evaluation interval
/// (their answers come once per round).
fn check_sql(
    path: &str,
    p: &ReleasePolicy,
    databases: &std::collections::BTreeMap<String, super::DatabaseConfig>,
    evaluation_interval: Duration,
) -> Result<(), String> {
    for (at, t) in sql_checks(path, p) {
        let Some(sql) = t.source.sql() else { continue };
        if !databases.contains_key(&sql.database) {
            let known: Vec<&str> = databases.keys().map(String::as_str).collect();
            return Err(format!(
                "{at}.sql.database: {:?} is not under databases (defined: {})",
                sql.database,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        if t.hold < evaluation_interval {
            return Err(format!(
                "{at}.for: {} is shorter than the evaluation interval ({}): a single answer would decide; use at least {}",
                human(t.hold),
                human(evaluation_interval),
                human(evaluation_interval)
            ));
        }
    }
    Ok(())
}

fn check_policy(path: &str, p: &ReleasePolicy, scrape_interval: Duration) -> Result<(), String> {
    if p.export_views.enabled && p.export_views.command.as_deref().is_none_or(str::is_empty) {
        return Err(format!(
            "{path}.export_views.command: export_views is enabled, so name the command to run in the pod"
        ));
    }
    positive(&format!("{path}.bake_window"), p.bake_window)?;
    positive(&format!("{path}.pending_timeout"), p.pending_timeout)?;
    positive(&format!("{path}.rollback_timeout"), p.rollback_timeout)?;
    if let Some(lag) = &p.lag {
        positive(&format!("{path}.lag.window"), lag.window)?;
        if !lag.max_slope.is_finite() {
            return Err(format!("{path}.lag.max_slope: must be a number"));
        }
        if lag.min_samples < LAG_MIN_SAMPLES_FLOOR {
            return Err(format!(
                "{path}.lag.min_samples: {} is too few for a slope; use at least {LAG_MIN_SAMPLES_FLOOR}",
                lag.min_samples
            ));
        }
        let needed = scrape_interval * lag.min_samples;
        if lag.window < needed {
            return Err(format!(
                "{path}.lag.window: {} holds fewer than the {} points a slope needs at the {} scrape interval; use at least {}",
                human(lag.window),
                lag.min_samples,
                human(scrape_interval),
                human(needed)
            ));
        }
        hold_long_enough(&format!("{path}.lag"), lag.hold, scrape_interval)?;
    }
    let mut names = BTreeSet::new();
    for (kind, list) in [("dependencies", &p.dependencies), ("custom", &p.custom)] {
        for (i, t) in list.iter().enumerate() {
            if !names.insert(t.name.clone()) {
                return Err(format!(
                    "{path}.{kind}: the name {:?} is used twice",
                    t.name
                ));
            }
            if t.source.promql().is_some() {
                hold_long_enough(&format!("{path}.{kind}[{i}]"), t.hold, scrape_interval)?;
            }
        }
    }
    Ok(())
}

/// Valid settings that defeat their purpose, in words (without the field path).
fn warnings(p: &ReleasePolicy) -> Vec<String> {
    let mut out = Vec::new();
    if p.pending_timeout >= p.readiness_deadline {
        out.push(format!(
            "pending_timeout ({}) is not shorter than readiness_deadline ({}): a broken pod (crash loop, image pull, unschedulable) is only reported when the readiness deadline fails the rollout, so pending_timeout never decides",
            human(p.pending_timeout),
            human(p.readiness_deadline)
        ));
    }
    if let Some(lag) = &p.lag
        && lag.window > p.bake_window
    {
        out.push(format!(
            "lag.window ({}) is longer than bake_window ({}): the lag is judged only once a full window has passed, so the verdict stays progressing until then",
            human(lag.window),
            human(p.bake_window)
        ));
    }
    out
}

pub(super) fn validate(raw: RawConfig) -> Result<Config, String> {
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
    };
    if !(prometheus.url.starts_with("http://") || prometheus.url.starts_with("https://")) {
        return Err(format!(
            "prometheus.url: {:?} must start with http:// or https://",
            prometheus.url
        ));
    }
    positive("prometheus.timeout", prometheus.timeout)?;
    positive("prometheus.retry_interval", prometheus.retry_interval)?;
    positive("prometheus.scrape_interval", prometheus.scrape_interval)?;
    if prometheus.errors_before_inconclusive == 0 {
        return Err("prometheus.errors_before_inconclusive: must be at least 1".into());
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
        return Err(format!("watch.{field}: {reason}"));
    }
    let evaluation_interval = raw
        .evaluation
        .interval
        .map_or(Duration::from_secs(30), |d| d.0);
    positive("evaluation.interval", evaluation_interval)?;
    let state = StateConfig {
        namespace: raw
            .state
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_STATE_NAMESPACE.to_string()),
    };
    if state.namespace.is_empty() {
        return Err("state.namespace: must name a namespace".into());
    }
    let am = &raw.notifications.alertmanager;
    let notifications = NotificationsConfig {
        alertmanager_urls: am.urls.clone().unwrap_or_default(),
        resend_interval: am
            .resend_interval
            .as_ref()
            .map_or(Duration::from_secs(60), |d| d.0),
        queue_size: am.queue_size.unwrap_or(100),
        dashboard_url: raw
            .notifications
            .dashboard_url
            .clone()
            .filter(|u| !u.is_empty()),
        email: raw.notifications.email.as_ref().map(email).transpose()?,
    };
    for (i, url) in notifications.alertmanager_urls.iter().enumerate() {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(format!(
                    "notifications.alertmanager.urls[{i}]: {url:?} is not an http(s) URL"
                ));
            }
        }
    }
    positive(
        "notifications.alertmanager.resend_interval",
        notifications.resend_interval,
    )?;
    if notifications.queue_size == 0 {
        return Err("notifications.alertmanager.queue_size: must be at least 1".into());
    }
    let actions = actions(&raw.actions)?;
    let suites = suites(raw.suites.as_deref().unwrap_or_default())?;
    // Like a Prometheus rule: two evaluations, and never less than one scrape.
    let default_hold = DefaultHold::new(evaluation_interval, prometheus.scrape_interval);

    if raw.defaults.name.is_some() || raw.defaults.namespace.is_some() {
        return Err("defaults: name and namespace belong to entries under releases".into());
    }
    let databases = super::database::databases(&raw.databases, &state.namespace)?;
    let defaults = overlay(hard_defaults(), &raw.defaults, default_hold);
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
            return Err(format!(
                "{path}: needs the name of the release it applies to"
            ));
        };
        let resolved = overlay(defaults.clone(), &r, default_hold);
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
    Ok(Config {
        prometheus,
        watch,
        evaluation_interval,
        state,
        notifications,
        actions,
        suites,
        databases,
        warnings: all_warnings,
        defaults,
        overrides,
        default_hold,
    })
}
