//! Per-release metrics, produced at scrape time from the daemon's [`State`] (so a release
//! that is gone has no series left): `release_info`, `release_verdict` and `check_result`
//! (state sets: 1 for the current state, 0 for the others), `check_value`,
//! `check_threshold`, `upgrade_started_timestamp_seconds`. Labels are bounded: namespace,
//! release, check names from the configuration and the manifest, enum words; never a
//! timestamp, message or value.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
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

type Labels = Vec<(&'static str, String)>;

/// One metric family: name, help and its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(0.0);
        let mut metric =
            encoder.encode_descriptor(self.name, self.help, None, gauge.metric_type())?;
        for (labels, value) in &self.samples {
            ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

fn bound_word(b: Bound) -> &'static str {
    match b {
        Bound::Min => "min",
        Bound::Max => "max",
    }
}

impl Collector for ReleaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut info = Family::new(
            "release_info",
            "The latest revision of each watched release (1), with its chart and status",
        );
        let mut verdict = Family::new(
            "release_verdict",
            "Verdict of the latest revision: 1 for the current verdict, 0 for the others",
        );
        let mut result = Family::new(
            "check_result",
            "Result of each check of the latest revision: 1 for the current result, 0 for the others",
        );
        let mut value = Family::new("check_value", "The value each check measured");
        let mut threshold = Family::new(
            "check_threshold",
            "The threshold each check compares its value with, by bound (min or max)",
        );
        let mut started = Family::new(
            "upgrade_started_timestamp_seconds",
            "When the latest revision's upgrade started (Unix time)",
        );
        let mut pending = Family::new(
            "pending_pods",
            "Pods of the latest revision that are not Ready, by reason",
        );
        let mut hold = Family::new(
            "action_hold",
            "mode: auto only: 1 while the automatic action for the latest revision's failure is held, by reason",
        );
        let mut rollback = Family::new(
            "action_state",
            "mode: auto only: 1 for the state of the automatic action concerning the latest revision (running, done, failed, interrupted, verified, verification_failed, cancelled)",
        );
        let mut problem = Family::new(
            "release_problem",
            "1 while the latest revision's record has a problem: stuck_pending (pending past watch.stuck_pending_after, the helm holding its lock probably gone) or unreadable",
        );
        let mut final_verdict = Family::new(
            "release_evaluation_final",
            "1 when the latest revision's evaluation ended (bake window over), 0 while it runs",
        );
        let mut after_bake = Family::new(
            "release_after_bake_check_failed",
            "While the latest revision is watched after its bake: 1 for each check that found it broken since (alerted, never acted on), 0 for the others",
        );
        let mut suspended = Family::new(
            "release_suspended_until_timestamp_seconds",
            "While an operator has suspended the release (upgrade-guard suspend; by: who): when the suspension ends (Unix time); its verdicts are neither alerted nor acted on meanwhile",
        );
        let mut accepted = Family::new(
            "release_accepted",
            "1 when an operator accepted the latest revision as good (upgrade-guard accept; by: who)",
        );
        let mut config_problem = Family::new(
            "config_problem",
            "1 for each check whose query, tried against the live cluster, cannot work (refused, no series, SQL failing); see config_problems in /api/v1/releases",
        );
        let state = self.state.read();
        for f in state.config_problems() {
            if let Some((namespace, release)) = f.release.split_once('/') {
                config_problem.samples.push((
                    vec![
                        ("namespace", namespace.to_string()),
                        ("release", release.to_string()),
                        ("check", f.check.clone()),
                    ],
                    1.0,
                ));
            }
        }
        for view in state.releases() {
            let base: Labels = vec![
                ("namespace", view.release.namespace.to_string()),
                ("release", view.release.name.to_string()),
            ];
            let with = |extra: &[(&'static str, String)]| {
                let mut l = base.clone();
                l.extend(extra.iter().cloned());
                l
            };
            let chart = view.chart.as_ref();
            info.samples.push((
                with(&[
                    ("revision", view.revision.to_string()),
                    ("chart", chart.map(|c| c.name.clone()).unwrap_or_default()),
                    (
                        "chart_version",
                        chart.map(|c| c.version.clone()).unwrap_or_default(),
                    ),
                    (
                        "app_version",
                        chart
                            .and_then(|c| c.app_version.clone())
                            .unwrap_or_default(),
                    ),
                    ("status", view.status.as_str().to_string()),
                ]),
                1.0,
            ));
            if let Some(s) = &view.controls.suspended {
                suspended.samples.push((
                    with(&[("by", s.set.by.clone())]),
                    s.until.as_second() as f64,
                ));
            }
            if let Some(a) = &view.controls.accepted {
                accepted.samples.push((
                    with(&[
                        ("revision", view.revision.to_string()),
                        ("by", a.set.by.clone()),
                    ]),
                    1.0,
                ));
            }
            if let Some(kind) = view.problem_kind() {
                problem
                    .samples
                    .push((with(&[("problem", kind.as_str().to_string())]), 1.0));
            }
            if let Some(at) = view.started {
                started
                    .samples
                    .push((base.clone(), at.as_millisecond() as f64 / 1000.0));
            }
            if let Some(a) = &view.automation {
                if let Some(h) = a.hold() {
                    hold.samples
                        .push((with(&[("reason", h.reason.as_str().to_string())]), 1.0));
                }
                if let Some(r) = &a.record {
                    rollback.samples.push((
                        with(&[
                            ("action", r.action.as_str().to_string()),
                            ("state", r.phase.as_str().to_string()),
                        ]),
                        1.0,
                    ));
                }
            }
            for r in view.after_bake.iter().flat_map(|a| &a.judgement.results) {
                after_bake.samples.push((
                    with(&[("check", r.check.to_string())]),
                    f64::from(u8::from(r.outcome == Outcome::Fail)),
                ));
            }
            let Some(j) = &view.judgement else {
                continue;
            };
            for v in Verdict::ALL {
                verdict.samples.push((
                    with(&[("verdict", v.as_str().to_string())]),
                    f64::from(u8::from(v == j.verdict)),
                ));
            }
            final_verdict
                .samples
                .push((base.clone(), f64::from(u8::from(j.is_final))));
            for (reason, n) in j
                .results
                .iter()
                .filter(|r| r.check == CheckId::PendingPods)
                .flat_map(|r| &r.counts)
            {
                pending
                    .samples
                    .push((with(&[("reason", (*reason).to_string())]), f64::from(*n)));
            }
            for r in &j.results {
                for o in Outcome::ALL {
                    result.samples.push((
                        with(&[
                            ("check", r.check.to_string()),
                            ("result", o.as_str().to_string()),
                        ]),
                        f64::from(u8::from(o == r.outcome)),
                    ));
                }
                if let Some(v) = r.value {
                    value
                        .samples
                        .push((with(&[("check", r.check.to_string())]), v));
                }
                if let Some(t) = r.threshold {
                    threshold.samples.push((
                        with(&[
                            ("check", r.check.to_string()),
                            ("bound", bound_word(t.bound).to_string()),
                        ]),
                        t.value,
                    ));
                }
            }
        }
        // Encoded without the state: the daemon's loop never waits for a scrape's encoding.
        drop(state);
        for family in [
            info,
            verdict,
            final_verdict,
            result,
            value,
            threshold,
            pending,
            started,
            problem,
            hold,
            rollback,
            after_bake,
            suspended,
            accepted,
            config_problem,
        ] {
            family.encode(&mut encoder)?;
        }
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
