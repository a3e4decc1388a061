//! One round's judgement with plain values: observations and answers in, a report out, and
//! what the revision remembers carried to the next round.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::checks::observe::WorkloadObs;
use crate::checks::provider::ProviderError;
use crate::config::{OnNoData, ReleasePolicy, Source, SqlSource, ThresholdPolicy};
use crate::evaluation::revision::Start;
use crate::release::labels::Storage;
use crate::release::summary::WorkloadKind;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::test_support::{MIN, at, policy, summary};
use crate::units::plus;
use crate::verdict::{RecommendedAction, Verdict};

const SETTINGS: Settings = Settings {
    errors_before_inconclusive: 4,
    scrape_interval: Duration::from_secs(15),
    stuck_pending_after: Duration::from_secs(15 * 60),
};

/// Revision 3 of `ns/app` (one Deployment), upgraded at minute 0 over a healthy revision 2.
fn evaluation(policy: ReleasePolicy) -> Evaluation {
    let s = summary(&[(WorkloadKind::Deployment, "app")], &[]);
    Evaluation {
        start: Start {
            release: ReleaseKey::new("ns", "app"),
            summary: Arc::new(s),
            status: ReleaseStatus::Deployed,
            status_since: at(0),
            history: vec![(2, ReleaseStatus::Superseded), (3, ReleaseStatus::Deployed)],
            rollbacks: BTreeMap::new(),
            storage: Storage::Secret,
        },
        started: at(0),
        bake_ends: plus(at(0), policy.bake_window),
        policy,
        baseline: None,
        checks: BTreeMap::new(),
        kube: KubeState::default(),
        sql_troubles: BTreeMap::new(),
    }
}

fn rolled_out() -> Result<KubeObservations, ProviderError> {
    Ok(KubeObservations {
        workloads: vec![WorkloadObs {
            found: true,
            generation: 2,
            observed_generation: 2,
            desired: 1,
            updated: 1,
            total: 1,
            ready: 1,
            available: 1,
            ..WorkloadObs::missing(WorkloadKind::Deployment, "app")
        }],
        pods: vec![],
        jobs: vec![],
    })
}

fn api_down() -> Result<KubeObservations, ProviderError> {
    Err(ProviderError::Kubernetes("connection refused".into()))
}

fn no_answers() -> RevisionAnswers {
    RevisionAnswers {
        presence: vec![],
        migration: None,
        lag: None,
        dependency_troubles: vec![],
        dependencies: vec![],
        custom: vec![],
    }
}

fn bound(name: &str, source: Source, min: f64) -> ThresholdPolicy {
    ThresholdPolicy {
        name: name.into(),
        source,
        min: Some(min),
        max: None,
        on_no_data: OnNoData::Inconclusive,
        action: crate::config::FailAction::Rollback,
        hold: MIN,
    }
}

/// Judges `e` at minute `minute`, the release's revision 2 known to have passed its bake.
fn round(
    e: &mut Evaluation,
    minute: i64,
    kube: Result<KubeObservations, ProviderError>,
    answers: RevisionAnswers,
) -> Report {
    let bakes = BTreeMap::from([(2, BakeRecord::Healthy)]);
    let env = RoundEnv {
        now: at(minute),
        answering_since: None,
        bakes: &bakes,
        settings: SETTINGS,
    };
    judge(e, &env, kube, answers)
}

fn outcome(r: &Report, check: &str) -> Outcome {
    r.results
        .iter()
        .find(|c| c.check == check)
        .unwrap_or_else(|| panic!("no {check} in {:#?}", r.results))
        .outcome
}

#[test]
fn a_rolled_out_revision_progresses_then_is_healthy_after_its_bake() {
    let mut e = evaluation(policy());
    let r = round(&mut e, 5, rolled_out(), no_answers());
    assert_eq!(r.verdict, Verdict::Progressing);
    assert_eq!(outcome(&r, "rollout:Deployment/app"), Outcome::Pass);
    let r = round(&mut e, 16, rolled_out(), no_answers());
    assert_eq!(
        (r.verdict, &r.action),
        (Verdict::Healthy, &RecommendedAction::None)
    );
    assert_eq!(r.chart, "app-1.0.0");
    assert_eq!(
        (r.started, r.bake_ends, r.evaluated_at),
        (at(0), at(15), at(16))
    );
}

#[test]
fn an_api_server_that_stops_answering_is_replayed_then_inconclusive_never_failed() {
    let mut e = evaluation(policy());
    assert_eq!(
        round(&mut e, 1, rolled_out(), no_answers()).verdict,
        Verdict::Progressing
    );
    for minute in 2..5 {
        let r = round(&mut e, minute, api_down(), no_answers());
        assert_eq!(r.verdict, Verdict::Progressing, "minute {minute}");
        let rollout = r
            .results
            .iter()
            .find(|c| c.check == "rollout:Deployment/app");
        assert!(
            rollout.is_some_and(|c| c.stale),
            "replayed, marked stale: {r:#?}"
        );
    }
    let r = round(&mut e, 5, api_down(), no_answers());
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert_eq!(outcome(&r, "kubernetes"), Outcome::Inconclusive);
    // Answers again: judged from real data, the count of failures reset.
    let r = round(&mut e, 6, rolled_out(), no_answers());
    assert_eq!(r.verdict, Verdict::Progressing);
    assert_eq!(e.kube.errors_in_a_row, 0);
}

#[test]
fn an_api_server_down_from_the_first_round_is_pending_then_inconclusive() {
    let mut e = evaluation(policy());
    let r = round(&mut e, 1, api_down(), no_answers());
    assert_eq!(outcome(&r, "kubernetes"), Outcome::Pending);
    for minute in 2..4 {
        assert_ne!(
            round(&mut e, minute, api_down(), no_answers()).verdict,
            Verdict::Failed
        );
    }
    assert_eq!(
        round(&mut e, 4, api_down(), no_answers()).verdict,
        Verdict::Inconclusive
    );
}

#[test]
fn a_dependency_out_of_bounds_counts_after_its_for_and_asks_to_fix_it_not_to_roll_back() {
    let mut p = policy();
    p.dependencies = vec![bound("kafka", Source::PromQL("kafka_up".into()), 1.0)];
    let mut e = evaluation(p);
    let down = || RevisionAnswers {
        dependencies: vec![Bounded::PromQL(Ok(vec![0.0]))],
        ..no_answers()
    };
    let r = round(&mut e, 1, rolled_out(), down());
    assert_ne!(
        outcome(&r, "dependency:kafka"),
        Outcome::Fail,
        "not yet held for 1m"
    );
    assert_ne!(r.verdict, Verdict::Failed);
    let r = round(&mut e, 3, rolled_out(), down());
    assert_eq!(outcome(&r, "dependency:kafka"), Outcome::Fail);
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(
        r.action,
        RecommendedAction::FixDependency {
            name: "kafka".into()
        }
    );
}

#[test]
fn prometheus_unavailable_is_replayed_then_inconclusive_never_failed() {
    let mut p = policy();
    p.dependencies = vec![bound("kafka", Source::PromQL("kafka_up".into()), 1.0)];
    let mut e = evaluation(p);
    let up = RevisionAnswers {
        dependencies: vec![Bounded::PromQL(Ok(vec![3.0]))],
        ..no_answers()
    };
    assert_eq!(
        outcome(&round(&mut e, 1, rolled_out(), up), "dependency:kafka"),
        Outcome::Pass
    );
    let unavailable = || RevisionAnswers {
        dependencies: vec![Bounded::PromQL(Err(ProviderError::Unavailable(
            "timeout".into(),
        )))],
        ..no_answers()
    };
    let mut last = None;
    for minute in 2..8 {
        let r = round(&mut e, minute, rolled_out(), unavailable());
        assert_ne!(r.verdict, Verdict::Failed, "minute {minute}");
        last = Some(r);
    }
    let last = last.unwrap();
    assert_eq!(outcome(&last, "dependency:kafka"), Outcome::Inconclusive);
    assert_eq!(last.verdict, Verdict::Inconclusive);
}

#[test]
fn a_database_probe_that_cannot_connect_is_a_finding_and_other_database_errors_are_not() {
    let pg = SqlSource {
        database: "infomart".into(),
        query: "select 1".into(),
    };
    let mut p = policy();
    p.dependencies = vec![bound("postgresql", Source::Sql(pg.clone()), 1.0)];
    let mut e = evaluation(p.clone());
    let unreachable = || RevisionAnswers {
        dependencies: vec![Bounded::Sql(Err(SqlError::Unreachable(
            "connection refused".into(),
        )))],
        ..no_answers()
    };
    round(&mut e, 1, rolled_out(), unreachable());
    let r = round(&mut e, 3, rolled_out(), unreachable());
    assert_eq!(outcome(&r, "dependency:postgresql"), Outcome::Fail);
    assert_eq!(
        r.action,
        RecommendedAction::FixDependency {
            name: "postgresql".into()
        }
    );
    // Issue 19.9: the API server unreachable in the same rounds: upgrade-guard has lost its
    // own network, the database is not blamed.
    let mut e = evaluation(p.clone());
    for minute in 1..8 {
        let r = round(&mut e, minute, api_down(), unreachable());
        assert_ne!(
            outcome(&r, "dependency:postgresql"),
            Outcome::Fail,
            "minute {minute}"
        );
        assert_ne!(r.verdict, Verdict::Failed, "minute {minute}");
    }
    // A wrong password is a monitoring error: never a failure.
    let mut e = evaluation(p);
    for minute in 1..8 {
        let r = round(
            &mut e,
            minute,
            rolled_out(),
            RevisionAnswers {
                dependencies: vec![Bounded::Sql(Err(SqlError::Unavailable(
                    "authentication failed".into(),
                )))],
                ..no_answers()
            },
        );
        assert_ne!(r.verdict, Verdict::Failed, "minute {minute}");
    }
}

#[test]
fn a_failing_custom_check_recommends_a_rollback_to_the_revision_that_passed_its_bake() {
    let mut p = policy();
    p.custom = vec![bound(
        "errors",
        Source::PromQL("rate(errors[5m])".into()),
        10.0,
    )];
    let mut e = evaluation(p);
    let low = || RevisionAnswers {
        custom: vec![Bounded::PromQL(Ok(vec![1.0]))],
        ..no_answers()
    };
    round(&mut e, 1, rolled_out(), low());
    let r = round(&mut e, 3, rolled_out(), low());
    assert_eq!(outcome(&r, "custom:errors"), Outcome::Fail);
    match &r.action {
        RecommendedAction::Rollback {
            target, command, ..
        } => {
            assert_eq!(*target, 2);
            assert_eq!(command, "helm rollback app 2 -n ns --timeout 5m");
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 19.6: absence of a metric counts once the release is Ready or its readiness
/// deadline has passed; while it starts, proven absence is pending.
#[test]
fn absence_is_judged_once_the_release_is_ready() {
    use crate::checks::presence::{PresenceAnswers, PresenceBaseline};
    use crate::config::PresencePolicy;
    let mut p = policy();
    p.metrics_presence = vec![PresencePolicy {
        name: "gim_up".into(),
        query: "gim_up".into(),
    }];
    let absent = || RevisionAnswers {
        presence: vec![Ok((
            PresenceBaseline {
                by_job: BTreeMap::from([("gim".to_string(), 1.0)]),
                namespaces: ["gim".to_string()].into(),
            },
            PresenceAnswers {
                now: vec![],
                seen: vec![],
                scrapes: Some(vec![100.0]),
            },
        ))],
        ..no_answers()
    };
    let starting = || {
        let mut obs = rolled_out().unwrap();
        obs.workloads[0].ready = 0;
        obs.workloads[0].available = 0;
        Ok(obs)
    };
    let mut e = evaluation(p.clone());
    let r = round(&mut e, 5, starting(), absent());
    assert_eq!(outcome(&r, "metrics_presence:gim_up"), Outcome::Pending);
    let mut e = evaluation(p);
    round(&mut e, 5, rolled_out(), absent());
    let r = round(&mut e, 6, rolled_out(), absent());
    assert_eq!(
        outcome(&r, "metrics_presence:gim_up"),
        Outcome::Fail,
        "{:#?}",
        r.results
    );
}
