//! What the daemon knows and decided, per release (pure): the latest revision seen, the
//! latest judgement of it, what could not be judged, what `mode: auto` did, the notices and
//! the suites' order warnings. `/api/v1/releases`, the per-release
//! metrics and the notifications are all produced from this one value.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::checks::CheckResult;
use crate::records::control::{Acceptance, ControlView, Controls};
use crate::release::event::{EventName, ReleaseEvent, ReleaseEventKind};
use crate::release::labels::Storage;
use crate::release::rollback_target::BakeRecord;
use crate::release::summary::ChartRef;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::suite::{Member, OrderWarning};
use crate::verdict::{RecommendedAction, Report, Verdict};

/// Chart identity of the latest revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartView {
    /// Chart name.
    pub name: String,
    /// Chart version.
    pub version: String,
    /// App version, when declared.
    pub app_version: Option<String>,
}

impl ChartView {
    /// The chart of a decoded revision.
    pub fn of(chart: &ChartRef) -> Self {
        Self {
            name: chart.name.clone(),
            version: chart.version.clone(),
            app_version: chart.app_version.clone(),
        }
    }

    /// `name-version`, as Helm shows it.
    pub fn name_version(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// The judgement of the latest revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// What to do about it.
    pub action: RecommendedAction,
    /// Every check with its value and threshold.
    pub results: Vec<CheckResult>,
    /// Notes about the configuration against this release.
    pub notes: Vec<String>,
    /// When the bake window ends.
    pub bake_ends: Timestamp,
    /// When judged.
    pub evaluated_at: Timestamp,
    /// The evaluation ended with this verdict (the bake window passed).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Since when the revision has been `inconclusive`, rounds in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_since: Option<Timestamp>,
    /// `inconclusive` for longer than `notifications.inconclusive_after`: alerted and
    /// mailed (warning), with the reason.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overdue: bool,
}

/// One release as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseView {
    /// The release.
    pub release: ReleaseKey,
    /// Helm's storage driver.
    pub storage: Storage,
    /// The latest revision seen.
    pub revision: u32,
    /// Its status when last seen.
    pub status: ReleaseStatus,
    /// What happened to it (`upgraded`, `rolled_back`, ...).
    pub event: EventName,
    /// Its chart, when the revision could be read.
    pub chart: Option<ChartView>,
    /// The chart of the revision seen before it (what it replaced), when this process saw
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_chart: Option<ChartView>,
    /// When its upgrade started (the revision's `last_deployed`).
    pub started: Option<Timestamp>,
    /// The latest judgement of this revision (none yet, or not judged).
    pub judgement: Option<Judgement>,
    /// Why the revision is not judged or cannot be, in words (unreadable, stuck).
    pub problem: Option<String>,
    /// What upgrade-guard may do for it (`observe`, `recommend`, `auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<crate::config::Mode>,
    /// `mode: auto` only: the decision about a failure and the action taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Boxed, as `after_bake`: most releases have none, and a daemon holds thousands of views.
    pub automation: Option<Box<crate::remediation::automation::Automation>>,
    /// The watch after the bake of this revision, while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bake: Option<Box<AfterBakeView>>,
    /// The operator's controls in force (suspension, acceptance, re-check), with who set
    /// them and why.
    #[serde(default, skip_serializing_if = "ControlView::is_empty")]
    pub controls: ControlView,
}

/// The watch after a revision's bake: its pods and metrics looked at for
/// `after_bake.watch_for`, findings alerted, never acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AfterBakeView {
    /// Since when (the end of the bake).
    pub since: Timestamp,
    /// Until when.
    pub until: Timestamp,
    /// The latest look: `failed` when something broke since the bake (see its results).
    pub judgement: Judgement,
}

impl AfterBakeView {
    /// Whether something broke since the bake.
    pub fn regressed(&self) -> bool {
        self.judgement.verdict == Verdict::Failed
    }
}

/// What is wrong with a release's record, when something is: the kinds of
/// [`ReleaseView::problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The newest revision has been `pending-*` past `watch.stuck_pending_after`.
    StuckPending,
    /// A revision's record cannot be read or decoded.
    Unreadable,
}

impl ProblemKind {
    /// Its word in labels (`check`, `problem`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StuckPending => "stuck_pending",
            Self::Unreadable => "unreadable",
        }
    }
}

/// How a stuck revision's problem starts (see [`ReleaseView::problem_kind`]).
const STUCK_PREFIX: &str = "stuck in ";

impl ReleaseView {
    /// What kind of problem [`Self::problem`] is, if there is one.
    pub fn problem_kind(&self) -> Option<ProblemKind> {
        self.problem.as_ref().map(|p| {
            if p.starts_with(STUCK_PREFIX) {
                ProblemKind::StuckPending
            } else {
                ProblemKind::Unreadable
            }
        })
    }

    /// When its upgrade started, if its latest revision is an upgrade (not an install or a
    /// rollback).
    pub fn upgraded_at(&self) -> Option<Timestamp> {
        matches!(self.event, EventName::Upgraded | EventName::UpgradeFailed)
            .then_some(self.started)
            .flatten()
    }

    /// Whether the release operates normally: its latest revision ended its bake healthy or
    /// degraded, or was never judged because its upgrade is older than this process (nothing
    /// says otherwise), and nothing is wrong with its record. The reason, in words, when not.
    pub fn operating_normally(&self) -> Result<(), String> {
        if let Some(p) = &self.problem {
            return Err(p.clone());
        }
        match &self.judgement {
            None => Ok(()),
            Some(j) if j.is_final && matches!(j.verdict, Verdict::Healthy | Verdict::Degraded) => {
                Ok(())
            }
            Some(j) => Err(format!(
                "revision {} is {}{}",
                self.revision,
                j.verdict.as_str(),
                if j.verdict == Verdict::Progressing {
                    " (still being verified)"
                } else {
                    ""
                }
            )),
        }
    }

    /// What a suite's order is judged from.
    pub fn member(&self) -> Member {
        Member {
            revision: self.revision,
            upgraded_at: self.upgraded_at(),
            operating_normally: self.operating_normally(),
        }
    }
}

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The release was uninstalled.
    Uninstalled,
    /// Update Data Export's views after a version change.
    ExportViews,
}

impl NoticeKind {
    /// The word used in alerts (`check`) and mail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uninstalled => "uninstalled",
            Self::ExportViews => "export_views",
        }
    }
}

/// Something to tell once that is not a verdict (an uninstall, the export-views reminder),
/// kept until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The release.
    pub release: ReleaseKey,
    /// The revision it is about.
    pub revision: u32,
    /// What it is.
    pub kind: NoticeKind,
    /// In words.
    pub words: String,
    /// The exact command, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// When it was noticed.
    pub at: Timestamp,
    /// When it stops being told (alerts resolve).
    pub until: Timestamp,
}

/// Every release the daemon knows, and whether it is ready to serve.
#[derive(Debug, Default)]
pub struct State {
    releases: BTreeMap<ReleaseKey, ReleaseView>,
    notices: Vec<Notice>,
    order: Vec<OrderWarning>,
    /// The operator's controls, per release (also of releases not seen yet).
    controls: BTreeMap<ReleaseKey, Controls>,
    /// When the controls' views were last computed (a suspension expires by itself).
    now: Timestamp,
    /// The queries of the configuration that cannot work, as last tried (`probe`).
    config_problems: Vec<crate::probe::plan::Finding>,
}

impl State {
    /// A release event arrived. Returns whether the revision should be evaluated.
    pub fn event(&mut self, event: &ReleaseEvent) -> bool {
        if let ReleaseEventKind::Uninstalled { .. } = event.kind {
            self.releases.remove(&event.release);
            return false;
        }
        let current = self.releases.get(&event.release);
        // Late news of an older revision changes nothing, nor does a listing of what is
        // known already.
        let listed = matches!(event.kind, ReleaseEventKind::Listed);
        let same_revision = current.is_some_and(|v| v.revision == event.revision);
        if current.is_some_and(|v| v.revision > event.revision) || (listed && same_revision) {
            return false;
        }
        // Announced again after a restart, already served (restored from its record): the
        // view stays; whether it is evaluated again is decided from its record.
        if event.resumed && same_revision {
            return event.summary.is_some();
        }
        let mut view = match current {
            Some(v) if same_revision => v.clone(),
            _ => ReleaseView {
                release: event.release.clone(),
                storage: event.storage,
                revision: event.revision,
                status: event.status,
                event: event.kind.name(),
                chart: None,
                previous_chart: current.and_then(|v| v.chart.clone()),
                started: None,
                judgement: None,
                problem: None,
                mode: None,
                automation: None,
                after_bake: None,
                controls: ControlView::default(),
            },
        };
        if let Some(c) = self.controls.get(&event.release) {
            view.controls = ControlView::of(c, event.revision, self.now);
        }
        view.status = event.status;
        let evaluate = match &event.kind {
            ReleaseEventKind::StuckPending { status, since } => {
                view.problem = Some(format!(
                    "{STUCK_PREFIX}{status} since {}: a Helm operation was probably killed and holds the release",
                    since.strftime("%Y-%m-%d %H:%M:%S UTC")
                ));
                false
            }
            ReleaseEventKind::Unreadable { detail, .. } => {
                view.problem = Some(detail.clone());
                false
            }
            _ => {
                view.event = event.kind.name();
                view.problem = None;
                true
            }
        };
        if let Some(s) = &event.summary {
            view.chart = Some(ChartView::of(&s.chart));
            view.started = s.last_deployed;
        }
        self.releases.insert(event.release.clone(), view);
        evaluate && event.summary.is_some()
    }

    /// A judgement of `report.revision`; ignored when a newer revision was seen since.
    pub fn judged(
        &mut self,
        report: &Report,
        is_final: bool,
        inconclusive_after: std::time::Duration,
    ) {
        let Some(view) = self.releases.get_mut(&report.release) else {
            return;
        };
        if view.revision != report.revision {
            return;
        }
        let inconclusive_since = (report.verdict == Verdict::Inconclusive).then(|| {
            view.judgement
                .as_ref()
                .and_then(|j| j.inconclusive_since)
                .unwrap_or(report.evaluated_at)
        });
        // An evaluation that ends inconclusive is told at once, however short its grace.
        let overdue = inconclusive_since.is_some_and(|since| {
            is_final || crate::units::between(since, report.evaluated_at) >= inconclusive_after
        });
        view.status = report.status;
        view.started = Some(report.started);
        view.judgement = Some(Judgement {
            inconclusive_since,
            overdue,
            verdict: report.verdict,
            action: report.action.clone(),
            results: report.results.clone(),
            notes: report.notes.clone(),
            bake_ends: report.bake_ends,
            evaluated_at: report.evaluated_at,
            is_final,
        });
    }

    /// The release's mode (from the configuration).
    pub fn set_mode(&mut self, key: &ReleaseKey, mode: crate::config::Mode) {
        if let Some(view) = self.releases.get_mut(key) {
            view.mode = Some(mode);
        }
    }

    /// What `mode: auto` decided and did about `revision`; ignored when a newer revision
    /// was seen since.
    pub fn automate(
        &mut self,
        key: &ReleaseKey,
        revision: u32,
        automation: crate::remediation::automation::Automation,
    ) {
        if let Some(view) = self.releases.get_mut(key)
            && view.revision == revision
        {
            view.automation = Some(Box::new(automation));
        }
    }

    /// A look after the bake of `report.revision` (watched from `since` to `until`);
    /// ignored when a newer revision was seen since.
    pub fn after_bake(&mut self, report: &Report, since: Timestamp, until: Timestamp) {
        let Some(view) = self.releases.get_mut(&report.release) else {
            return;
        };
        if view.revision != report.revision {
            return;
        }
        view.after_bake = Some(Box::new(AfterBakeView {
            since,
            until,
            judgement: Judgement {
                verdict: report.verdict,
                action: report.action.clone(),
                results: report.results.clone(),
                notes: report.notes.clone(),
                bake_ends: report.bake_ends,
                evaluated_at: report.evaluated_at,
                is_final: false,
                inconclusive_since: None,
                overdue: false,
            },
        }));
    }

    /// The watch after the bake of `revision` is over: what it found is no longer told.
    pub fn after_bake_ended(&mut self, key: &ReleaseKey, revision: u32) {
        if let Some(view) = self.releases.get_mut(key)
            && view.revision == revision
        {
            view.after_bake = None;
        }
    }

    /// The verdict a revision's bake record says it ended with, shown after a restart when
    /// nothing judged it since.
    pub fn recorded(&mut self, key: &ReleaseKey, revision: u32, record: BakeRecord, at: Timestamp) {
        let Some(view) = self.releases.get_mut(key) else {
            return;
        };
        if view.revision != revision || view.judgement.is_some() {
            return;
        }
        let verdict = match record {
            BakeRecord::Healthy => Verdict::Healthy,
            BakeRecord::Degraded => Verdict::Degraded,
            BakeRecord::Failed => Verdict::Failed,
            BakeRecord::Inconclusive => Verdict::Inconclusive,
        };
        view.judgement = Some(Judgement {
            verdict,
            action: RecommendedAction::None,
            results: Vec::new(),
            notes: vec!["restored from the bake record after a restart".into()],
            bake_ends: at,
            evaluated_at: at,
            is_final: true,
            inconclusive_since: None,
            overdue: false,
        });
    }

    /// Puts back a view restored after a restart, unless something newer is known, or the
    /// same revision already judged.
    pub fn restore(&mut self, mut view: ReleaseView) -> bool {
        if self.releases.get(&view.release).is_some_and(|v| {
            v.revision > view.revision || (v.revision == view.revision && v.judgement.is_some())
        }) {
            return false;
        }
        if let Some(c) = self.controls.get(&view.release) {
            view.controls = ControlView::of(c, view.revision, self.now);
        }
        self.releases.insert(view.release.clone(), view);
        true
    }

    /// A notice (replacing one of the same kind about the same release).
    pub fn notice(&mut self, notice: Notice) {
        self.notices
            .retain(|n| !(n.release == notice.release && n.kind == notice.kind));
        self.notices.push(notice);
    }

    /// Drops the notices whose time is over, and the suspensions; returns whether any
    /// notice was.
    pub fn prune(&mut self, now: Timestamp) -> bool {
        let before = self.notices.len();
        self.notices.retain(|n| n.until > now);
        self.now = now;
        for view in self.releases.values_mut() {
            if view
                .controls
                .suspended
                .as_ref()
                .is_some_and(|s| s.until <= now)
            {
                view.controls.suspended = None;
            }
        }
        self.notices.len() != before
    }

    /// The configuration's queries that cannot work, as last tried against the cluster.
    pub fn set_config_problems(&mut self, problems: Vec<crate::probe::plan::Finding>) {
        self.config_problems = problems;
    }

    /// The configuration's queries that cannot work.
    pub fn config_problems(&self) -> &[crate::probe::plan::Finding] {
        &self.config_problems
    }

    /// The operator's controls of a release, as the cluster holds them now.
    pub fn set_controls(&mut self, key: &ReleaseKey, controls: Controls, now: Timestamp) {
        self.now = now;
        if let Some(view) = self.releases.get_mut(key) {
            view.controls = ControlView::of(&controls, view.revision, now);
        }
        if controls.is_empty() {
            self.controls.remove(key);
        } else {
            self.controls.insert(key.clone(), controls);
        }
    }

    /// The operator's controls of a release.
    pub fn controls(&self, key: &ReleaseKey) -> Option<&Controls> {
        self.controls.get(key)
    }

    /// Every release with controls, and its controls.
    pub fn all_controls(&self) -> impl Iterator<Item = (&ReleaseKey, &Controls)> {
        self.controls.iter()
    }

    /// An operator accepted `revision` as good: shown `healthy` and final whatever was
    /// found (the findings stay in the results), with who accepted it and why; its alerts
    /// resolve. Ignored when a newer revision was seen since.
    pub fn accepted(&mut self, key: &ReleaseKey, revision: u32, acceptance: &Acceptance) {
        let Some(view) = self.releases.get_mut(key) else {
            return;
        };
        if view.revision != revision {
            return;
        }
        let at = acceptance.set.at;
        let was = view.judgement.as_ref().map(|j| j.verdict);
        let mut judgement = view.judgement.clone().unwrap_or(Judgement {
            verdict: Verdict::Healthy,
            action: RecommendedAction::None,
            results: Vec::new(),
            notes: Vec::new(),
            bake_ends: at,
            evaluated_at: at,
            is_final: true,
            inconclusive_since: None,
            overdue: false,
        });
        let note = format!(
            "accepted as good {}{}",
            acceptance.set.words(),
            was.filter(|v| *v != Verdict::Healthy)
                .map(|v| format!(" (judged {} before)", v.as_str()))
                .unwrap_or_default()
        );
        judgement
            .notes
            .retain(|n| !n.starts_with("accepted as good "));
        judgement.notes.push(note);
        judgement.verdict = Verdict::Healthy;
        judgement.action = RecommendedAction::None;
        judgement.is_final = true;
        judgement.inconclusive_since = None;
        judgement.overdue = false;
        view.judgement = Some(judgement);
        view.after_bake = None;
        view.controls.accepted = Some(acceptance.clone());
    }

    /// The warnings about the suites' upgrade order, as last computed.
    pub fn set_order(&mut self, warnings: Vec<OrderWarning>) {
        self.order = warnings;
    }

    /// The warnings about the suites' upgrade order.
    pub fn order(&self) -> &[OrderWarning] {
        &self.order
    }

    /// The notices being told.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// Every release, sorted.
    pub fn releases(&self) -> impl Iterator<Item = &ReleaseView> {
        self.releases.values()
    }

    /// One release.
    pub fn get(&self, key: &ReleaseKey) -> Option<&ReleaseView> {
        self.releases.get(key)
    }
}

/// The state shared by the daemon's loop (which writes it), the HTTP server and the metrics
/// collector (which read it). A panic while it was held leaves it usable: the lock's poison is
/// ignored, in one place.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<RwLock<State>>);

impl Shared {
    /// The state, for reading.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, for writing.
    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{event, report};

    /// Issue 19.14: an `inconclusive` is timed from its first round in a row and overdue
    /// after `inconclusive_after`; any other verdict resets it.
    #[test]
    fn an_inconclusive_is_timed_and_overdue_after_the_configured_time() {
        let after = std::time::Duration::from_secs(30);
        let mut state = State::default();
        state.event(&event(
            2,
            ReleaseEventKind::Upgraded { from: 1, to: 2 },
            true,
        ));
        let key = ReleaseKey::new("ns", "app");
        let overdue = |state: &State| {
            let j = state.get(&key).unwrap().judgement.clone().unwrap();
            (j.inconclusive_since.is_some(), j.overdue)
        };
        state.judged(&report(2, Verdict::Inconclusive, 10, 100), false, after);
        assert_eq!(overdue(&state), (true, false));
        state.judged(&report(2, Verdict::Inconclusive, 39, 100), false, after);
        assert_eq!(overdue(&state), (true, false));
        state.judged(&report(2, Verdict::Inconclusive, 40, 100), false, after);
        assert_eq!(overdue(&state), (true, true));
        state.judged(&report(2, Verdict::Progressing, 41, 100), false, after);
        assert_eq!(overdue(&state), (false, false));
        state.judged(&report(2, Verdict::Inconclusive, 42, 100), false, after);
        assert_eq!(
            overdue(&state),
            (true, false),
            "timed again from its new start"
        );
    }

    #[test]
    fn events_decide_what_is_evaluated_and_judgements_follow_the_latest_revision() {
        let mut state = State::default();
        assert!(state.event(&event(
            2,
            ReleaseEventKind::Upgraded { from: 1, to: 2 },
            true
        )));
        state.judged(
            &report(2, Verdict::Progressing, 10, 100),
            false,
            std::time::Duration::from_secs(1800),
        );
        let v = state.get(&ReleaseKey::new("ns", "app")).unwrap();
        assert_eq!(
            v.judgement.as_ref().map(|j| j.verdict),
            Some(Verdict::Progressing)
        );
        assert_eq!(v.chart.as_ref().unwrap().name, "app");

        // A newer revision replaces the view; a late judgement of the older one is ignored.
        assert!(state.event(&event(
            3,
            ReleaseEventKind::Upgraded { from: 2, to: 3 },
            true
        )));
        state.judged(
            &report(2, Verdict::Failed, 20, 100),
            false,
            std::time::Duration::from_secs(1800),
        );
        let v = state.get(&ReleaseKey::new("ns", "app")).unwrap();
        assert_eq!((v.revision, v.judgement.is_none()), (3, true));
        // Late news of an older revision changes nothing.
        assert!(!state.event(&event(1, ReleaseEventKind::Installed, true)));

        // Unreadable: kept, said, not evaluated; the release's event follows later.
        let unreadable = ReleaseEventKind::Unreadable {
            reason: "forbidden",
            detail: "cannot read Secret x: forbidden".into(),
            retrying: true,
        };
        assert!(!state.event(&event(4, unreadable, false)));
        let v = state.get(&ReleaseKey::new("ns", "app")).unwrap();
        assert_eq!(
            v.problem.as_deref(),
            Some("cannot read Secret x: forbidden")
        );
        assert!(state.event(&event(
            4,
            ReleaseEventKind::Upgraded { from: 3, to: 4 },
            true
        )));
        let v = state.get(&ReleaseKey::new("ns", "app")).unwrap();
        assert_eq!((v.problem.as_deref(), v.event.as_str()), (None, "upgraded"));

        // Uninstalled releases disappear.
        let gone = ReleaseEventKind::Uninstalled {
            kept_history: false,
        };
        assert!(!state.event(&event(4, gone, false)));
        assert_eq!(state.releases().count(), 0);
    }
}
