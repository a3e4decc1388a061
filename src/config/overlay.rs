//! A `releases` entry laid over the defaults (pure): every field it sets replaces the one
//! below it, and checks that set no `for:` get the default one.

use std::time::Duration;

use super::defaults;
use super::policy::{
    LagPolicy, MigrationPolicy, PresencePolicy, ReleasePolicy, Source, SqlSource, ThresholdPolicy,
};
use super::raw::{self, RawRelease};

/// `for:` of checks that do not set one: like a Prometheus rule, two evaluations, and for
/// PromQL checks never less than one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DefaultHold {
    /// For PromQL checks.
    pub promql: Duration,
    /// For SQL checks.
    pub sql: Duration,
    /// For Kubernetes findings (pods, restarts).
    pub kube: Duration,
}

impl DefaultHold {
    /// Two evaluations, and for PromQL checks never less than one scrape.
    pub fn new(evaluation_interval: Duration, scrape_interval: Duration) -> Self {
        Self {
            promql: (evaluation_interval * 2).max(scrape_interval),
            sql: evaluation_interval * 2,
            kube: evaluation_interval * 2,
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
        if let Some(v) = a.reapplied_within {
            base.auto.reapplied_within = v.0;
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
    set(&mut base.inconclusive_grace, &raw.inconclusive_grace);
    set(&mut base.readiness_deadline, &raw.readiness_deadline);
    set(&mut base.pending_timeout, &raw.pending_timeout);
    set(&mut base.pods.stall_timeout, &raw.stall_timeout);
    base.pods.hold = default_hold.kube;
    if let Some(t) = &raw.pod_timeouts {
        base.pods.timeouts.extend(t.iter().map(|(k, v)| (*k, v.0)));
    }
    if let Some(v) = raw.max_restarts {
        base.pods.max_restarts = v;
    }
    set(&mut base.rollback_timeout, &raw.rollback_timeout);
    if let Some(a) = &raw.after_bake {
        set(&mut base.after_bake.watch_for, &a.watch_for);
        set(&mut base.after_bake.interval, &a.interval);
    }
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
            min_samples: l.min_samples.unwrap_or(defaults::LAG_MIN_SAMPLES),
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
