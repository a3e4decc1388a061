//! Per-release metrics, produced at scrape time from the daemon's [`State`] (so a release
//! that is gone has no series left): `release_info`, `release_verdict` and `check_result`
//! (state sets: 1 for the current state, 0 for the others), `check_value`,
//! `check_threshold`, `upgrade_started_timestamp_seconds`. Labels are bounded: namespace,
//! release, check names from the configuration and the manifest, enum words; never a
//! timestamp, message or value.

use prometheus_client::collector::Collector;
use std::sync::Arc;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::checks::{Bound, CheckId, Outcome};
use crate::state::Shared;
use crate::verdict::Verdict;

/// Reads the state on every scrape.
#[derive(Debug, Clone)]
pub struct ReleaseCollector {
    state: Shared,
}

impl ReleaseCollector {
    /// A collector over `state`.
    pub fn new(state: Shared) -> Self {
        Self { state }
    }
}

/// A label value: a word of the code, a name shared with the state (no copy per sample),
/// or one built for the scrape.
#[derive(Debug, Clone)]
enum Value {
    Word(&'static str),
    Shared(Arc<str>),
    Built(String),
}

impl EncodeLabelValue for Value {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text: &str = match self {
            Self::Word(w) => w,
            Self::Shared(s) => s,
            Self::Built(s) => s,
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

type Labels = Vec<(&'static str, Value)>;

/// Encodes one gauge family from its samples, produced one at a time (each sample's labels
/// are dropped once written, so a scrape never holds every label set at once).
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric =
        encoder.encode_descriptor(name, help, None, ConstGauge::new(0.0).metric_type())?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn bound_word(b: Bound) -> &'static str {
    match b {
        Bound::Min => "min",
        Bound::Max => "max",
    }
}

/// What a scrape needs of one check's result.
struct ResultRow {
    check: Value,
    outcome: Outcome,
    value: Option<f64>,
    threshold: Option<(&'static str, f64)>,
}

/// What a scrape needs of a judgement.
struct JudgementRow {
    verdict: Verdict,
    is_final: bool,
    pending: Vec<(&'static str, f64)>,
    results: Vec<ResultRow>,
}

/// What a scrape needs of one release, copied under the state's lock (its names shared,
/// not copied); the samples are made from it after the lock is released.
struct Row {
    namespace: Value,
    release: Value,
    revision: u32,
    chart: [String; 3],
    status: &'static str,
    suspended: Option<(String, f64)>,
    accepted: Option<String>,
    problem: Option<&'static str>,
    started: Option<f64>,
    hold: Option<&'static str>,
    action: Option<(&'static str, &'static str)>,
    after_bake: Vec<(Value, f64)>,
    judgement: Option<JudgementRow>,
}

impl Row {
    fn of(view: &crate::state::ReleaseView) -> Self {
        let chart = view.chart.as_ref();
        let results = |results: &[crate::checks::CheckResult]| -> Vec<ResultRow> {
            results
                .iter()
                .map(|r| ResultRow {
                    check: Value::Shared(Arc::from(r.check.to_string())),
                    outcome: r.outcome,
                    value: r.value,
                    threshold: r.threshold.map(|t| (bound_word(t.bound), t.value)),
                })
                .collect()
        };
        Self {
            namespace: Value::Shared(view.release.namespace.clone()),
            release: Value::Shared(view.release.name.clone()),
            revision: view.revision,
            chart: [
                chart.map(|c| c.name.clone()).unwrap_or_default(),
                chart.map(|c| c.version.clone()).unwrap_or_default(),
                chart
                    .and_then(|c| c.app_version.clone())
                    .unwrap_or_default(),
            ],
            status: view.status.as_str(),
            suspended: view
                .controls
                .suspended
                .as_ref()
                .map(|s| (s.set.by.clone(), s.until.as_second() as f64)),
            accepted: view.controls.accepted.as_ref().map(|a| a.set.by.clone()),
            problem: view.problem_kind().map(|k| k.as_str()),
            started: view.started.map(|at| at.as_millisecond() as f64 / 1000.0),
            hold: view
                .automation
                .as_ref()
                .and_then(|a| a.hold())
                .map(|h| h.reason.as_str()),
            action: view
                .automation
                .as_ref()
                .and_then(|a| a.record.as_ref())
                .map(|r| (r.action.as_str(), r.phase.as_str())),
            after_bake: view
                .after_bake
                .iter()
                .flat_map(|a| &a.judgement.results)
                .map(|r| {
                    (
                        Value::Built(r.check.to_string()),
                        f64::from(u8::from(r.outcome == Outcome::Fail)),
                    )
                })
                .collect(),
            judgement: view.judgement.as_ref().map(|j| JudgementRow {
                verdict: j.verdict,
                is_final: j.is_final,
                pending: j
                    .results
                    .iter()
                    .filter(|r| r.check == CheckId::PendingPods)
                    .flat_map(|r| &r.counts)
                    .map(|(reason, n)| (*reason, f64::from(*n)))
                    .collect(),
                results: results(&j.results),
            }),
        }
    }

    /// The release's labels, then `extra`.
    fn labels<const N: usize>(&self, extra: [(&'static str, Value); N]) -> Labels {
        let mut l = Vec::with_capacity(2 + N);
        l.push(("namespace", self.namespace.clone()));
        l.push(("release", self.release.clone()));
        l.extend(extra);
        l
    }
}

impl Collector for ReleaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (rows, config_problems): (Vec<Row>, Vec<Labels>) = {
            let state = self.state.read();
            let problems = state
                .config_problems()
                .iter()
                .filter_map(|f| {
                    let (namespace, release) = f.release.split_once('/')?;
                    Some(vec![
                        ("namespace", Value::Built(namespace.to_string())),
                        ("release", Value::Built(release.to_string())),
                        ("check", Value::Built(f.check.clone())),
                    ])
                })
                .collect();
            (state.releases().map(Row::of).collect(), problems)
        };
        // Encoded without the state: the daemon's loop never waits for a scrape's encoding.
        let e = &mut encoder;
        let judged = || {
            rows.iter()
                .filter_map(|r| r.judgement.as_ref().map(|j| (r, j)))
        };
        let word = Value::Word;
        let built = |s: String| Value::Built(s);
        family(
            e,
            "release_info",
            "The latest revision of each watched release (1), with its chart and status",
            rows.iter().map(|r| {
                let [chart, version, app] = r.chart.clone();
                let labels = r.labels([
                    ("revision", built(r.revision.to_string())),
                    ("chart", built(chart)),
                    ("chart_version", built(version)),
                    ("app_version", built(app)),
                    ("status", word(r.status)),
                ]);
                (labels, 1.0)
            }),
        )?;
        family(
            e,
            "release_verdict",
            "Verdict of the latest revision: 1 for the current verdict, 0 for the others",
            judged().flat_map(|(r, j)| {
                Verdict::ALL.into_iter().map(move |v| {
                    (
                        r.labels([("verdict", word(v.as_str()))]),
                        f64::from(u8::from(v == j.verdict)),
                    )
                })
            }),
        )?;
        family(
            e,
            "release_evaluation_final",
            "1 when the latest revision's evaluation ended (bake window over), 0 while it runs",
            judged().map(|(r, j)| (r.labels([]), f64::from(u8::from(j.is_final)))),
        )?;
        let results = || judged().flat_map(|(r, j)| j.results.iter().map(move |c| (r, c)));
        family(
            e,
            "check_result",
            "Result of each check of the latest revision: 1 for the current result, 0 for the others",
            results().flat_map(|(r, c)| {
                Outcome::ALL.into_iter().map(move |o| {
                    (
                        r.labels([("check", c.check.clone()), ("result", word(o.as_str()))]),
                        f64::from(u8::from(o == c.outcome)),
                    )
                })
            }),
        )?;
        family(
            e,
            "check_value",
            "The value each check measured",
            results().filter_map(|(r, c)| Some((r.labels([("check", c.check.clone())]), c.value?))),
        )?;
        family(
            e,
            "check_threshold",
            "The threshold each check compares its value with, by bound (min or max)",
            results().filter_map(|(r, c)| {
                let (bound, value) = c.threshold?;
                Some((
                    r.labels([("check", c.check.clone()), ("bound", word(bound))]),
                    value,
                ))
            }),
        )?;
        family(
            e,
            "pending_pods",
            "Pods of the latest revision that are not Ready, by reason",
            judged().flat_map(|(r, j)| {
                j.pending
                    .iter()
                    .map(move |(reason, n)| (r.labels([("reason", word(reason))]), *n))
            }),
        )?;
        family(
            e,
            "upgrade_started_timestamp_seconds",
            "When the latest revision's upgrade started (Unix time)",
            rows.iter().filter_map(|r| Some((r.labels([]), r.started?))),
        )?;
        family(
            e,
            "release_problem",
            "1 while the latest revision's record has a problem: stuck_pending (pending past watch.stuck_pending_after, the helm holding its lock probably gone) or unreadable",
            rows.iter()
                .filter_map(|r| Some((r.labels([("problem", word(r.problem?))]), 1.0))),
        )?;
        family(
            e,
            "action_hold",
            "mode: auto only: 1 while the automatic action for the latest revision's failure is held, by reason",
            rows.iter()
                .filter_map(|r| Some((r.labels([("reason", word(r.hold?))]), 1.0))),
        )?;
        family(
            e,
            "action_state",
            "mode: auto only: 1 for the state of the automatic action concerning the latest revision (running, done, failed, interrupted, verified, verification_failed, cancelled)",
            rows.iter().filter_map(|r| {
                let (action, state) = r.action?;
                Some((
                    r.labels([("action", word(action)), ("state", word(state))]),
                    1.0,
                ))
            }),
        )?;
        family(
            e,
            "release_after_bake_check_failed",
            "While the latest revision is watched after its bake: 1 for each check that found it broken since (alerted, never acted on), 0 for the others",
            rows.iter().flat_map(|r| {
                r.after_bake
                    .iter()
                    .map(move |(check, failed)| (r.labels([("check", check.clone())]), *failed))
            }),
        )?;
        family(
            e,
            "release_suspended_until_timestamp_seconds",
            "While an operator has suspended the release (upgrade-guard suspend; by: who): when the suspension ends (Unix time); its verdicts are neither alerted nor acted on meanwhile",
            rows.iter().filter_map(|r| {
                let (by, until) = r.suspended.clone()?;
                Some((r.labels([("by", built(by))]), until))
            }),
        )?;
        family(
            e,
            "release_accepted",
            "1 when an operator accepted the latest revision as good (upgrade-guard accept; by: who)",
            rows.iter().filter_map(|r| {
                let by = r.accepted.clone()?;
                Some((
                    r.labels([
                        ("revision", built(r.revision.to_string())),
                        ("by", built(by)),
                    ]),
                    1.0,
                ))
            }),
        )?;
        family(
            e,
            "config_problem",
            "1 for each check whose query, tried against the live cluster, cannot work (refused, no series, SQL failing); see config_problems in /api/v1/releases",
            config_problems.into_iter().map(|l| (l, 1.0)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Threshold};
    use crate::release::event::{ReleaseEvent, ReleaseEventKind};
    use crate::release::labels::Storage;
    use crate::release::{ReleaseKey, ReleaseStatus};
    use crate::verdict::RecommendedAction;
    use crate::verdict::Report;
    use jiff::Timestamp;

    #[test]
    fn every_release_series_comes_from_the_state_and_leaves_with_the_release() {
        let state = Shared::default();
        let mut registry = crate::metrics::registry();
        registry.register_collector(Box::new(ReleaseCollector::new(state.clone())));
        let key = ReleaseKey::new("gim", "gim");
        let mut summary = crate::test_support::summary(&[], &[]);
        summary.revision = 7;
        summary.last_deployed = Some(Timestamp::from_second(1_800_000_000).unwrap());
        let event = ReleaseEvent {
            release: key.clone(),
            revision: 7,
            status: ReleaseStatus::Deployed,
            storage: Storage::Secret,
            resumed: false,
            kind: ReleaseEventKind::Upgraded { from: 6, to: 7 },
            summary: Some(std::sync::Arc::new(summary)),
        };
        state.write().event(&event);
        let mut lag = CheckResult::new("lag", Outcome::Fail, "growing");
        lag.value = Some(2.5);
        lag.threshold = Some(Threshold {
            bound: Bound::Max,
            value: 0.5,
        });
        let report = Report {
            release: key.clone(),
            revision: 7,
            status: ReleaseStatus::Deployed,
            status_since: jiff::Timestamp::from_second(0).unwrap(),
            chart: "app-1.0.0".into(),
            verdict: Verdict::Failed,
            action: RecommendedAction::None,
            results: vec![lag],
            notes: vec![],
            started: Timestamp::from_second(1_800_000_000).unwrap(),
            bake_ends: Timestamp::from_second(1_800_003_600).unwrap(),
            closes_at: Timestamp::from_second(1_800_007_200).unwrap(),
            evaluated_at: Timestamp::from_second(1_800_000_600).unwrap(),
            content: String::new(),
            install: None,
        };
        state
            .write()
            .judged(&report, false, std::time::Duration::from_secs(1800));
        let text = crate::metrics::encode(&registry).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let has = |want: &str| lines.iter().filter(|l| **l == want).count();
        let base = r#"namespace="gim",release="gim""#;
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_release_verdict{{{base},verdict="failed"}} 1.0"#
            )),
            1,
            "{text}"
        );
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_release_verdict{{{base},verdict="healthy"}} 0.0"#
            )),
            1
        );
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_check_result{{{base},check="lag",result="fail"}} 1.0"#
            )),
            1
        );
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_check_value{{{base},check="lag"}} 2.5"#
            )),
            1
        );
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_check_threshold{{{base},check="lag",bound="max"}} 0.5"#
            )),
            1
        );
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_upgrade_started_timestamp_seconds{{{base}}} 1800000000.0"#
            )),
            1,
            "{text}"
        );
        assert_eq!(
            has(&format!(
                r#"upgrade_guard_release_evaluation_final{{{base}}} 0.0"#
            )),
            1
        );
        assert!(
            text.contains(r#"revision="7",chart="app",chart_version="1.0.0""#),
            "{text}"
        );

        let gone = ReleaseEvent {
            kind: ReleaseEventKind::Uninstalled {
                kept_history: false,
            },
            summary: None,
            ..event
        };
        state.write().event(&gone);
        let text = crate::metrics::encode(&registry).unwrap();
        assert!(!text.contains("release=\"gim\""), "{text}");
    }

    #[test]
    fn a_stuck_revision_is_exported_as_its_problem_and_only_while_it_lasts() {
        let state = Shared::default();
        let mut registry = crate::metrics::registry();
        registry.register_collector(Box::new(ReleaseCollector::new(state.clone())));
        let stuck = ReleaseEvent {
            release: ReleaseKey::new("gim", "gim"),
            revision: 8,
            status: ReleaseStatus::PendingUpgrade,
            storage: Storage::Secret,
            resumed: false,
            kind: ReleaseEventKind::StuckPending {
                status: ReleaseStatus::PendingUpgrade,
                since: Timestamp::from_second(1_800_000_000).unwrap(),
            },
            summary: None,
        };
        state.write().event(&stuck);
        let line = r#"upgrade_guard_release_problem{namespace="gim",release="gim",problem="stuck_pending"} 1.0"#;
        let text = crate::metrics::encode(&registry).unwrap();
        assert!(text.lines().any(|l| l == line), "{text}");
        // helm finished after all: the next revision event clears it.
        let deployed = ReleaseEvent {
            status: ReleaseStatus::Deployed,
            kind: ReleaseEventKind::Upgraded { from: 7, to: 8 },
            ..stuck
        };
        state.write().event(&deployed);
        let text = crate::metrics::encode(&registry).unwrap();
        assert!(!text.contains("upgrade_guard_release_problem{"), "{text}");
    }
}
