//! Which alerts should be firing, from the daemon's state (pure), and the ledger that turns
//! that into what Alertmanager is sent, the way a Prometheus rule evaluator does: firing
//! alerts re-sent every resend interval with `endsAt` = now + 4 × interval, resolved alerts
//! sent with `endsAt` = when they resolved, for at least 5 minutes.
//!
//! Labels are a stable set (`alertname, severity, namespace, release, revision, check`);
//! what changes (values, thresholds, the command, the dashboard link) is in annotations;
//! each alert links to its runbook section and, as `generatorURL`, to the API's answer about
//! its release.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::names::{AlertName, Links};
use crate::checks::{Bound, CheckResult, Outcome};
use crate::records::action::Phase;
use crate::remediation::automation::Automation;
use crate::state::{AfterBakeView, ProblemKind, ReleaseView};
use crate::state::{Notice, NoticeKind};
use crate::suite::OrderWarning;
use crate::units::num;
use crate::units::plus;
use crate::verdict::Verdict;

/// How long a resolved alert keeps being sent.
pub const RESOLVED_FOR: Duration = Duration::from_secs(5 * 60);

/// One alert: its identity and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The stable label set (with a route's labels, names chosen by the operator).
    pub labels: BTreeMap<String, String>,
    /// What changes.
    pub annotations: BTreeMap<&'static str, String>,
    /// What caused it: the API's answer about its release (`generatorURL`).
    pub generator_url: Option<String>,
}

impl Alert {
    /// The alert labelled with the cluster it is about.
    pub fn in_cluster(mut self, cluster: &str) -> Self {
        self.labels.insert("cluster".into(), cluster.to_string());
        self
    }

    /// The alert with a route's labels added (never replacing its own: the configuration
    /// refuses those names).
    pub fn with_labels(mut self, labels: &BTreeMap<String, String>) -> Self {
        for (k, v) in labels {
            self.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self
    }
}

/// An alert as Alertmanager's v2 API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<&'static str, String>,
    /// When it started firing.
    pub starts_at: Timestamp,
    /// When Alertmanager should consider it resolved if not sent again.
    pub ends_at: Timestamp,
    /// What caused it.
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

fn measured(r: &CheckResult) -> String {
    match (r.value, r.threshold) {
        (Some(v), Some(t)) => {
            let op = match t.bound {
                Bound::Min => ">=",
                Bound::Max => "<=",
            };
            format!(" (value {}, threshold {op} {})", num(v), num(t.value))
        }
        (Some(v), None) => format!(" (value {})", num(v)),
        _ => String::new(),
    }
}

fn alert(
    name: AlertName,
    severity: &str,
    view: &ReleaseView,
    check: &str,
    annotations: Vec<(&'static str, String)>,
    links: &Links,
) -> Alert {
    alert_for(
        name,
        severity,
        (&view.release, view.revision),
        check,
        annotations,
        links,
    )
}

fn alert_for(
    name: AlertName,
    severity: &str,
    (release, revision): (&crate::release::ReleaseKey, u32),
    check: &str,
    annotations: Vec<(&'static str, String)>,
    links: &Links,
) -> Alert {
    let labels = BTreeMap::from([
        ("alertname".to_string(), name.as_str().to_string()),
        ("severity".to_string(), severity.to_string()),
        ("namespace".to_string(), release.namespace.to_string()),
        ("release".to_string(), release.name.to_string()),
        ("revision".to_string(), revision.to_string()),
        ("check".to_string(), check.to_string()),
    ]);
    let mut annotations: BTreeMap<&'static str, String> = annotations.into_iter().collect();
    if let Some(url) = links.dashboard(release) {
        annotations.insert("dashboard_url", url);
    }
    if let Some(url) = links.runbook(name) {
        annotations.insert("runbook_url", url);
    }
    Alert {
        labels,
        annotations,
        generator_url: links.generator(release),
    }
}

/// The alerts that should be firing now: one per failing check of a failed revision
/// (critical), one per finding of the watch after a revision's bake (critical), one per
/// warning of a degraded revision whose bake ended (warning), one per
/// check that cannot be judged of a revision inconclusive for longer than
/// `notifications.inconclusive_after` (warning), and one for a revision stuck pending or
/// unreadable (warning).
pub fn desired<'a>(views: impl Iterator<Item = &'a ReleaseView>, links: &Links) -> Vec<Alert> {
    let mut out = Vec::new();
    for view in views {
        if let (Some(problem), Some(kind)) = (&view.problem, view.problem_kind()) {
            let name = match kind {
                ProblemKind::StuckPending => AlertName::HelmReleaseStuckPending,
                ProblemKind::Unreadable => AlertName::HelmReleaseUnreadable,
            };
            let check = kind.as_str();
            out.push(alert(
                name,
                "warning",
                view,
                check,
                vec![
                    (
                        "summary",
                        format!("{} revision {}: {problem}", view.release, view.revision),
                    ),
                    ("description", problem.clone()),
                ],
                links,
            ));
        }
        if let Some(a) = &view.automation {
            automation_alerts(&mut out, view, a, links);
        }
        if let Some(a) = view.after_bake.as_ref().filter(|a| a.regressed()) {
            after_bake_alerts(&mut out, view, a, links);
        }
        let Some(j) = &view.judgement else { continue };
        if wrote_by_failed_rollback(view) {
            // `UpgradeRollbackFailed` says it; an `UpgradeFailed` would recommend rolling
            // back once more.
            continue;
        }
        let (name, severity, outcome) = match j.verdict {
            Verdict::Failed => (AlertName::UpgradeFailed, "critical", Outcome::Fail),
            Verdict::Degraded if j.is_final => {
                (AlertName::UpgradeDegraded, "warning", Outcome::Warn)
            }
            // Inconclusive for too long: someone must look at what cannot be judged.
            Verdict::Inconclusive if j.overdue => (
                AlertName::UpgradeInconclusive,
                "warning",
                Outcome::Inconclusive,
            ),
            _ => continue,
        };
        for r in j.results.iter().filter(|r| r.outcome == outcome) {
            out.push(alert(
                name,
                severity,
                view,
                &r.check.to_string(),
                vec![
                    (
                        "summary",
                        format!(
                            "{} revision {} {}: {}",
                            view.release,
                            view.revision,
                            j.verdict.as_str(),
                            r.check
                        ),
                    ),
                    ("description", format!("{}{}", r.summary, measured(r))),
                    ("recommended_action", j.action.words()),
                ]
                .into_iter()
                .chain(
                    view.automation
                        .as_deref()
                        .and_then(Automation::words)
                        .map(|t| ("automatic_action", t)),
                )
                .collect(),
                links,
            ));
        }
    }
    out
}

/// One alert per finding of the watch after the bake (critical: something the revision
/// runs broke in production), with the command an operator may run; never acted on.
fn after_bake_alerts(out: &mut Vec<Alert>, view: &ReleaseView, a: &AfterBakeView, links: &Links) {
    let j = &a.judgement;
    let after = crate::units::human(crate::units::between(a.since, j.evaluated_at));
    for r in j.results.iter().filter(|r| r.outcome == Outcome::Fail) {
        out.push(alert(
            AlertName::UpgradeRegressedAfterBake,
            "critical",
            view,
            &r.check.to_string(),
            vec![
                (
                    "summary",
                    format!(
                        "{} revision {} broke {after} after its bake: {}",
                        view.release, view.revision, r.check
                    ),
                ),
                (
                    "description",
                    format!(
                        "{}{}; watched until {} after a bake that ended {}; upgrade-guard does not act on this automatically",
                        r.summary,
                        measured(r),
                        a.until.strftime("%Y-%m-%d %H:%M UTC"),
                        a.since.strftime("%Y-%m-%d %H:%M UTC")
                    ),
                ),
                ("recommended_action", j.action.words()),
            ],
            links,
        ));
    }
}

/// The revision is the one upgrade-guard's own rollback wrote, and that rollback failed
/// (helm gave up, was stopped and the revision unlocked, or the revision failed its
/// evaluation): `UpgradeRollbackFailed` tells it, with the evaluation's words.
fn wrote_by_failed_rollback(view: &ReleaseView) -> bool {
    view.automation
        .as_ref()
        .and_then(|a| a.record.as_ref())
        .is_some_and(|r| {
            r.new_revision == Some(view.revision)
                && matches!(
                    r.phase,
                    Phase::Failed | Phase::Interrupted | Phase::VerificationFailed
                )
        })
}

fn automation_alerts(out: &mut Vec<Alert>, view: &ReleaseView, a: &Automation, links: &Links) {
    if let Some(r) = &a.record {
        let (name, severity) = match r.phase {
            Phase::Failed | Phase::Interrupted | Phase::VerificationFailed => {
                (AlertName::UpgradeRollbackFailed, "critical")
            }
            // It asks someone to fix the upgrade: a warning (kube-prometheus-stack's
            // InfoInhibitor hides `info` alerts).
            Phase::Verified if r.new_revision == Some(view.revision) => {
                (AlertName::UpgradeRolledBack, "warning")
            }
            _ => return,
        };
        let summary = match name {
            AlertName::UpgradeRolledBack => format!(
                "{} was rolled back automatically from revision {} and the rollback is verified: fix the upgrade and run it again",
                view.release, r.bad_revision
            ),
            _ => format!(
                "{}: the automatic action for revision {} failed: an operator must act",
                view.release, r.bad_revision
            ),
        };
        out.push(alert(
            name,
            severity,
            view,
            r.action.as_str(),
            vec![("summary", summary), ("description", r.words())],
            links,
        ));
        return;
    }
    let failed = view
        .judgement
        .as_ref()
        .is_some_and(|j| j.verdict == Verdict::Failed);
    if let (true, Some(h)) = (failed, a.hold()) {
        out.push(alert(
            AlertName::UpgradeAutoActionHeld,
            "warning",
            view,
            "automatic_action",
            vec![
                (
                    "summary",
                    format!(
                        "{} revision {} failed and upgrade-guard does not act: {}",
                        view.release,
                        view.revision,
                        h.reason.as_str()
                    ),
                ),
                ("description", h.detail.clone()),
                ("hold_reason", h.reason.as_str().to_string()),
            ],
            links,
        ));
    }
}

/// `HelmReleaseSuspended` (info) for each release an operator suspended: who, why and
/// until when. Its verdicts are neither alerted nor mailed meanwhile (see `daemon::tell`).
pub fn suspended_alerts<'a>(
    views: impl Iterator<Item = &'a ReleaseView>,
    links: &Links,
) -> Vec<Alert> {
    views
        .filter_map(|view| {
            let s = view.controls.suspended.as_ref()?;
            let until = s.until.strftime("%Y-%m-%d %H:%M:%S UTC");
            let mut annotations = vec![
                (
                    "summary",
                    format!("{} is suspended until {until}", view.release),
                ),
                (
                    "description",
                    format!(
                        "suspended {}: upgrade-guard still judges it but neither alerts, mails nor acts on it until {until} (or `upgrade-guard resume`)",
                        s.set.words()
                    ),
                ),
                ("suspended_by", s.set.by.clone()),
                ("suspended_until", s.until.to_string()),
            ];
            if !s.set.reason.is_empty() {
                annotations.push(("reason", s.set.reason.clone()));
            }
            Some(alert_for(
                AlertName::HelmReleaseSuspended,
                "info",
                (&view.release, view.revision),
                "suspended",
                annotations,
                links,
            ))
        })
        .collect()
}

/// One info alert per notice: `HelmReleaseUninstalled`, `UpgradeExportViews`.
pub fn notice_alerts(notices: &[Notice], links: &Links) -> Vec<Alert> {
    notices
        .iter()
        .map(|n| {
            let name = match n.kind {
                NoticeKind::Uninstalled => AlertName::HelmReleaseUninstalled,
                NoticeKind::ExportViews => AlertName::UpgradeExportViews,
            };
            let summary = match n.kind {
                NoticeKind::Uninstalled => {
                    format!("{} was uninstalled (revision {})", n.release, n.revision)
                }
                NoticeKind::ExportViews => format!(
                    "{} revision {}: update the Data Export views",
                    n.release, n.revision
                ),
            };
            let mut annotations = vec![("summary", summary), ("description", n.words.clone())];
            if let Some(c) = &n.command {
                annotations.push(("recommended_action", c.clone()));
            }
            // A notice with a command asks someone to run it: a warning (kube-prometheus-
            // stack's InfoInhibitor hides `info`); without one it only informs.
            let severity = if n.command.is_some() {
                "warning"
            } else {
                "info"
            };
            alert_for(
                name,
                severity,
                (&n.release, n.revision),
                n.kind.as_str(),
                annotations,
                links,
            )
        })
        .collect()
}

/// `UpgradeOutOfOrder` (warning) for each warning about a suite's upgrade order, on the
/// release upgraded too early, naming the one to look at first.
pub fn order_alerts(warnings: &[OrderWarning], links: &Links) -> Vec<Alert> {
    warnings
        .iter()
        .map(|w| {
            alert_for(
                AlertName::UpgradeOutOfOrder,
                "warning",
                (&w.release, w.revision),
                "suite_order",
                vec![
                    (
                        "summary",
                        format!(
                            "{} revision {} upgraded out of the suite's order: look at {} first",
                            w.release, w.revision, w.look_first
                        ),
                    ),
                    ("description", w.words.clone()),
                    ("look_first", w.look_first.to_string()),
                ],
                links,
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Entry {
    alert: Alert,
    starts_at: Timestamp,
    resolved_at: Option<Timestamp>,
}

/// What has been told to Alertmanager: alerts firing and recently resolved.
#[derive(Debug, Clone)]
pub struct Ledger {
    resend: Duration,
    entries: BTreeMap<Vec<(String, String)>, Entry>,
    last_sent: Option<Timestamp>,
}

fn key(a: &Alert) -> Vec<(String, String)> {
    a.labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Ledger {
    /// An empty ledger re-sending every `resend`.
    pub fn new(resend: Duration) -> Self {
        Self {
            resend,
            entries: BTreeMap::new(),
            last_sent: None,
        }
    }

    /// Takes the alerts that should fire at `now`; returns the batch to send now, if any:
    /// at once when something started, changed or resolved, else once per resend interval.
    pub fn update(&mut self, desired: Vec<Alert>, now: Timestamp) -> Option<Vec<PostableAlert>> {
        let mut changed = false;
        let wanted: BTreeMap<_, _> = desired.into_iter().map(|a| (key(&a), a)).collect();
        for (k, alert) in &wanted {
            match self.entries.get_mut(k) {
                Some(e) if e.resolved_at.is_none() => {
                    if e.alert.annotations != alert.annotations {
                        e.alert = alert.clone();
                        changed = true;
                    }
                }
                _ => {
                    self.entries.insert(
                        k.clone(),
                        Entry {
                            alert: alert.clone(),
                            starts_at: now,
                            resolved_at: None,
                        },
                    );
                    changed = true;
                }
            }
        }
        for (k, e) in &mut self.entries {
            if e.resolved_at.is_none() && !wanted.contains_key(k) {
                e.resolved_at = Some(now);
                changed = true;
            }
        }
        self.entries
            .retain(|_, e| e.resolved_at.is_none_or(|at| plus(at, RESOLVED_FOR) > now));
        let due = self
            .last_sent
            .is_none_or(|last| plus(last, self.resend) <= now);
        if self.entries.is_empty() || !(changed || due) {
            return None;
        }
        self.last_sent = Some(now);
        let ends = plus(now, self.resend * 4);
        Some(
            self.entries
                .values()
                .map(|e| PostableAlert {
                    labels: e.alert.labels.clone(),
                    annotations: e.alert.annotations.clone(),
                    starts_at: e.starts_at,
                    ends_at: e.resolved_at.unwrap_or(ends),
                    generator_url: e.alert.generator_url.clone(),
                })
                .collect(),
        )
    }

    /// Alerts currently firing.
    pub fn firing(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.resolved_at.is_none())
            .count()
    }
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
