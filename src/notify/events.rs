//! Which Kubernetes Events to publish (pure): verdict changes, stuck or unreadable records,
//! held automatic actions, automatic actions and their outcomes, regressions after the
//! bake, and the operator's controls (suspended, accepted, re-check), each about the
//! release's newest Helm record, once per fact.

use std::collections::BTreeSet;

use crate::records::action::{ActionKind, Phase};
use crate::release::ReleaseKey;
use crate::release::labels::Storage;
use crate::state::{ProblemKind, ReleaseView};
use crate::verdict::Verdict;

/// Longest note the Events API takes (1 kB); longer words are cut.
const MAX_NOTE: usize = 1024;

/// One Event to publish, regarding the Helm record of `release` at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeEvent {
    /// The release.
    pub release: ReleaseKey,
    /// The revision whose record the Event is about (the newest).
    pub revision: u32,
    /// Where that record is kept.
    pub storage: Storage,
    /// `Warning` (true) or `Normal`.
    pub warning: bool,
    /// `PascalCase`, what `kubectl get events` shows as the reason.
    pub reason: &'static str,
    /// What upgrade-guard did (`Evaluate`, `Rollback`, `RestartPod`, `Watch`).
    pub action: &'static str,
    /// The words, at most 1 kB.
    pub note: String,
}

impl KubeEvent {
    /// The name of the Helm record the Event regards, as Helm names it.
    pub fn record_name(&self) -> String {
        format!(
            "sh.helm.release.v1.{}.v{}",
            self.release.name, self.revision
        )
    }

    /// The record's kind (`Secret`, or `ConfigMap` with Helm's configmap driver).
    pub fn record_kind(&self) -> &'static str {
        match self.storage {
            Storage::Secret => "Secret",
            Storage::ConfigMap => "ConfigMap",
        }
    }
}

/// What identifies a fact once published: the release, the revision it is about, the
/// reason and what distinguishes it (a verdict, a hold reason, a phase).
type Fact = (ReleaseKey, u32, &'static str, String);

/// The facts a view states now, each with its Event.
fn facts(view: &ReleaseView) -> Vec<(Fact, KubeEvent)> {
    let mut out = Vec::new();
    let mut add = |about: u32, word: String, warning, reason, action, note: String| {
        let mut note = note;
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE - 3;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push_str("...");
        }
        out.push((
            (view.release.clone(), about, reason, word),
            KubeEvent {
                release: view.release.clone(),
                revision: view.revision,
                storage: view.storage,
                warning,
                reason,
                action,
                note,
            },
        ));
    };
    if let (Some(kind), Some(problem)) = (view.problem_kind(), &view.problem) {
        let reason = match kind {
            ProblemKind::StuckPending => "HelmReleaseStuckPending",
            ProblemKind::Unreadable => "HelmReleaseUnreadable",
        };
        add(
            view.revision,
            String::new(),
            true,
            reason,
            "Watch",
            problem.clone(),
        );
    }
    let c = &view.controls;
    if let Some(s) = &c.suspended {
        add(
            view.revision,
            s.set.at.to_string(),
            false,
            "ReleaseSuspended",
            "Suspend",
            format!(
                "suspended until {} {}: judged and shown, neither alerted nor acted on",
                s.until.strftime("%Y-%m-%d %H:%M:%S UTC"),
                s.set.words()
            ),
        );
    }
    if let Some(a) = &c.accepted {
        add(
            view.revision,
            a.set.at.to_string(),
            false,
            "RevisionAccepted",
            "Accept",
            format!(
                "revision {} accepted as good {}: healthy, a valid rollback target",
                view.revision,
                a.set.words()
            ),
        );
    }
    if let Some(r) = &c.recheck {
        add(
            view.revision,
            r.set.at.to_string(),
            false,
            "RecheckRequested",
            "Recheck",
            format!(
                "revision {} judged again with a fresh bake window, asked {}",
                r.revision,
                r.set.words()
            ),
        );
    }
    if let Some(j) = &view.judgement {
        // One fact per verdict: a failure during the bake that stays failed to its end is
        // one Event.
        let (warning, reason) = match j.verdict {
            Verdict::Progressing => (false, "UpgradeEvaluating"),
            Verdict::Healthy => (false, "UpgradeHealthy"),
            Verdict::Degraded => (true, "UpgradeDegraded"),
            Verdict::Failed => (true, "UpgradeFailed"),
            Verdict::Inconclusive => (true, "UpgradeInconclusive"),
        };
        let failing: Vec<String> = j
            .results
            .iter()
            .filter(|r| r.outcome != crate::checks::Outcome::Pass)
            .filter(|r| r.outcome != crate::checks::Outcome::Pending)
            .map(|r| format!("{}: {}", r.check, r.summary))
            .collect();
        let mut note = format!(
            "revision {} {}{}",
            view.revision,
            j.verdict.as_str(),
            if j.is_final { " (final)" } else { "" }
        );
        if !failing.is_empty() {
            note.push_str(&format!(": {}", failing.join("; ")));
        }
        let action = j.action.words();
        if !action.is_empty() && j.verdict != Verdict::Progressing {
            note.push_str(&format!(". Recommended: {action}"));
        }
        add(
            view.revision,
            j.verdict.as_str().to_string(),
            warning,
            reason,
            "Evaluate",
            note,
        );
    }
    if let Some(a) = &view.automation {
        let failed = view
            .judgement
            .as_ref()
            .is_some_and(|j| j.verdict == Verdict::Failed);
        if let (true, Some(h)) = (failed, a.hold()) {
            add(
                view.revision,
                h.reason.as_str().to_string(),
                true,
                "AutomaticActionHeld",
                "Rollback",
                format!("{}: {}", h.reason.as_str(), h.detail),
            );
        }
        if let Some(r) = &a.record {
            let rollback = r.action == ActionKind::Rollback;
            let (warning, reason) = match r.phase {
                Phase::Running if rollback => (false, "RollbackStarted"),
                Phase::Running => (false, "PodRestartStarted"),
                Phase::Done if rollback => (false, "RollbackDone"),
                Phase::Done => (false, "PodRestarted"),
                Phase::Verified => (false, "RollbackVerified"),
                Phase::Cancelled => (false, "AutomaticActionCancelled"),
                Phase::Failed | Phase::Interrupted | Phase::VerificationFailed if rollback => {
                    (true, "RollbackFailed")
                }
                Phase::Failed | Phase::Interrupted | Phase::VerificationFailed => {
                    (true, "PodRestartFailed")
                }
            };
            let action = if rollback { "Rollback" } else { "RestartPod" };
            add(
                r.bad_revision,
                format!("{}/{}", r.attempt, r.phase.as_str()),
                warning,
                reason,
                action,
                r.words(),
            );
        }
    }
    if let Some(a) = view.after_bake.as_ref().filter(|a| a.regressed()) {
        let found: Vec<String> = a
            .judgement
            .results
            .iter()
            .filter(|r| r.outcome == crate::checks::Outcome::Fail)
            .map(|r| format!("{}: {}", r.check, r.summary))
            .collect();
        add(
            view.revision,
            found.join("; "),
            true,
            "UpgradeRegressedAfterBake",
            "Watch",
            format!(
                "revision {} broke after its bake (not acted on automatically): {}",
                view.revision,
                found.join("; ")
            ),
        );
    }
    out
}

/// The facts already published, so that each is published once.
#[derive(Debug, Default)]
pub struct EventBook {
    published: BTreeSet<Fact>,
}

impl EventBook {
    /// The Events of facts not yet published, remembered as published; facts of releases
    /// no longer shown are forgotten.
    pub fn new_events<'a>(
        &mut self,
        views: impl Iterator<Item = &'a ReleaseView>,
    ) -> Vec<KubeEvent> {
        let mut out = Vec::new();
        let mut shown = BTreeSet::new();
        for view in views {
            shown.insert(view.release.clone());
            for (fact, event) in facts(view) {
                if self.published.insert(fact) {
                    out.push(event);
                }
            }
        }
        self.published
            .retain(|(release, ..)| shown.contains(release));
        out
    }

    /// Remembers what the views state now without publishing it: what a replica that
    /// starts publishing (a new leader, a restart) takes as already told.
    pub fn seen<'a>(&mut self, views: impl Iterator<Item = &'a ReleaseView>) {
        let _ = self.new_events(views);
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
