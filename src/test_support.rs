//! Plain values shared by the unit tests: a policy, a summary, a revision context, a pod and
//! a report.

use std::time::Duration;

use jiff::Timestamp;

use crate::checks::Revision;
use crate::checks::observe::{PodObs, PodProblem};
use crate::config::{Config, ReleasePolicy};
use crate::release::event::{ReleaseEvent, ReleaseEventKind};
use crate::release::labels::Storage;
use crate::release::summary::{ChartRef, Hook, HookPhase, ObjectRef, ReleaseSummary, WorkloadKind};
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::verdict::{RecommendedAction, Report, Verdict};

pub const MIN: Duration = Duration::from_secs(60);

pub fn at(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
}

pub fn policy() -> ReleasePolicy {
    let mut p = Config::parse("", "t")
        .unwrap()
        .policy_for(&ReleaseKey::new("ns", "app"));
    p.readiness_deadline = 10 * MIN;
    p.pending_timeout = 5 * MIN;
    p
}

pub fn summary(
    workloads: &[(WorkloadKind, &str)],
    hooks: &[(&str, Option<HookPhase>)],
) -> ReleaseSummary {
    ReleaseSummary {
        name: "app".into(),
        namespace: "ns".into(),
        revision: 3,
        status: ReleaseStatus::Deployed,
        description: "Upgrade complete".into(),
        first_deployed: None,
        last_deployed: Some(at(0)),
        recorded: None,
        chart: ChartRef {
            name: "app".into(),
            version: "1.0.0".into(),
            app_version: None,
        },
        hooks: hooks
            .iter()
            .map(|(n, phase)| Hook {
                name: n.to_string(),
                kind: "Job".into(),
                namespace: "ns".into(),
                events: vec!["post-upgrade".into()],
                last_run: *phase,
            })
            .collect(),
        workloads: workloads
            .iter()
            .map(|(k, n)| ObjectRef {
                kind: *k,
                name: n.to_string(),
                namespace: "ns".into(),
            })
            .collect(),
        manifest_problems: vec![],
        fingerprint: Default::default(),
    }
}

/// A pod of `Deployment/app` created at minute `since` and not Ready since then, for
/// `reason`.
pub fn pod(name: &str, problem: PodProblem, since: i64) -> PodObs {
    PodObs {
        name: name.into(),
        workload: "Deployment/app".into(),
        problem: Some(problem),
        not_ready_since: at(since),
        created: at(since),
        restarts: 0,
    }
}

/// A Ready pod of `Deployment/app` created at minute `created`, its containers restarted
/// `restarts` times.
pub fn ready_pod(name: &str, created: i64, restarts: i32) -> PodObs {
    PodObs {
        name: name.into(),
        workload: "Deployment/app".into(),
        problem: None,
        not_ready_since: at(created),
        created: at(created),
        restarts,
    }
}

pub fn rev<'a>(
    s: &'a ReleaseSummary,
    p: &'a ReleasePolicy,
    now_min: i64,
    status: ReleaseStatus,
) -> Revision<'a> {
    Revision {
        now: at(now_min),
        started: at(0),
        summary: s,
        status,
        status_since: at(0),
        policy: p,
        stuck_pending_after: 15 * MIN,
    }
}

/// A report of revision `revision` of `ns/app` judged at second `evaluated_at`, its bake
/// window ending at second `bake_ends` (its grace an hour later).
pub fn report(revision: u32, verdict: Verdict, evaluated_at: i64, bake_ends: i64) -> Report {
    Report {
        release: ReleaseKey::new("ns", "app"),
        revision,
        status: ReleaseStatus::Deployed,
        status_since: jiff::Timestamp::from_second(0).unwrap(),
        chart: "app-1.0.0".into(),
        verdict,
        action: RecommendedAction::None,
        results: vec![],
        notes: vec![],
        started: Timestamp::from_second(0).unwrap(),
        bake_ends: Timestamp::from_second(bake_ends).unwrap(),
        closes_at: Timestamp::from_second(bake_ends + 3600).unwrap(),
        evaluated_at: Timestamp::from_second(evaluated_at).unwrap(),
        content: String::new(),
        install: None,
    }
}

/// An event of `kind` about revision `revision` of `ns/app` (deployed), with the revision's
/// summary when `with_summary`.
pub fn event(revision: u32, kind: ReleaseEventKind, with_summary: bool) -> ReleaseEvent {
    let mut s = summary(&[], &[]);
    s.revision = revision;
    ReleaseEvent {
        release: ReleaseKey::new("ns", "app"),
        revision,
        status: ReleaseStatus::Deployed,
        storage: Storage::Secret,
        resumed: false,
        kind,
        summary: with_summary.then(|| std::sync::Arc::new(s)),
    }
}

/// A decoded history row with its status and Helm's description.
pub fn row(
    revision: u32,
    status: ReleaseStatus,
    description: &str,
) -> crate::release::record::HistoryRow {
    let mut s = summary(&[], &[]);
    s.revision = revision;
    s.status = status;
    s.description = description.into();
    crate::release::record::HistoryRow {
        revision,
        storage: Storage::Secret,
        status,
        detail: crate::release::record::RowDetail::Decoded(Box::new(s)),
    }
}

/// A rollback of bad revision `bad` of `ns/app` to revision 1, started at minute 0 by `a`,
/// in `phase`.
pub fn action_record(
    bad: u32,
    phase: crate::records::action::Phase,
) -> crate::records::action::ActionRecord {
    crate::records::action::ActionRecord {
        bad_revision: bad,
        attempt: 1,
        action: crate::records::action::ActionKind::Rollback,
        target: Some(1),
        command: "helm rollback app 1 -n ns --wait --timeout 5m".into(),
        holder: "a".into(),
        started: at(0),
        phase,
        finished: None,
        new_revision: None,
        detail: None,
        process: None,
        taken_over_from: None,
        about: None,
    }
}

/// `ns/app` at revision 3 (upgraded, a Secret record), judged `verdict` at minute 1 with
/// `results`, its bake ending at minute 60, a rollback to revision 2 recommended.
pub fn view(
    verdict: Verdict,
    is_final: bool,
    results: Vec<crate::checks::CheckResult>,
) -> crate::state::ReleaseView {
    crate::state::ReleaseView {
        release: ReleaseKey::new("ns", "app"),
        storage: Storage::Secret,
        revision: 3,
        status: ReleaseStatus::Deployed,
        event: crate::release::event::EventName::Upgraded,
        chart: None,
        previous_chart: None,
        started: Some(at(0)),
        judgement: Some(crate::state::Judgement {
            inconclusive_since: None,
            overdue: false,
            verdict,
            action: RecommendedAction::Rollback {
                target: 2,
                basis: crate::release::rollback_target::TargetBasis::PassedBake,
                command: "helm rollback app 2 -n ns --timeout 5m".into(),
            },
            results,
            notes: vec![],
            bake_ends: at(60),
            evaluated_at: at(1),
            is_final,
        }),
        problem: None,
        mode: None,
        automation: None,
        after_bake: None,
        controls: Default::default(),
    }
}
