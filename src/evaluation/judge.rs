//! One revision's judgement in one round (pure): its Kubernetes observations and its answers
//! (read back by `queries`) in, a [`Report`] out, the revision's memory updated. Provider
//! failures go through `checks::provider` (replay, then inconclusive, never fail); failures
//! judged from Prometheus or database answers go through `checks::hold` (`for:`) before they
//! count.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::queries::{Bounded, RevisionAnswers};
use super::revision::{Evaluation, KubeState, Settings};
use crate::checks::lag::DependencyTrouble;
use crate::checks::lag::{LagContext, lag};
use crate::checks::presence::{PresenceAnswers, PresenceBaseline, PresenceContext, presence};
use crate::checks::provider::{ProviderError, replay};
use crate::checks::sql;
use crate::checks::threshold::{threshold, while_starting};
use crate::checks::workload::progress_deadline_note;
use crate::checks::{
    CheckId, CheckResult, FailClass, Outcome, Revision, Samples, helm, pods, workload,
};
use crate::config::FailAction;
use crate::gather::kube::KubeObservations;
use crate::gather::postgres::SqlError;
use crate::release::rollback_target::BakeRecord;
use crate::verdict::{ActionContext, Report, Verdict, recommend, verdict};

/// What a round shares between the revisions it judges.
pub(super) struct RoundEnv<'a> {
    /// The time of the round.
    pub now: Timestamp,
    /// Since when Prometheus answers again after it failed.
    pub answering_since: Option<Timestamp>,
    /// The release's bake records (rollback targets).
    pub bakes: &'a BTreeMap<u32, BakeRecord>,
    /// The global settings judging needs.
    pub settings: Settings,
}

/// Judges revision `e` this round from its Kubernetes observations (or the API's error) and
/// its answers.
pub(super) fn judge(
    e: &mut Evaluation,
    env: &RoundEnv<'_>,
    kube: Result<KubeObservations, ProviderError>,
    answers: RevisionAnswers,
) -> Report {
    let restart = e.restart_command();
    let summary = e.start.summary.clone();
    let policy = e.policy.clone();
    let rev = revision(e, env, &summary, &policy);
    // The API server unreachable too: upgrade-guard itself has lost the network, and a
    // database it cannot reach says nothing about the database.
    let kube_down = kube.is_err();
    let mut notes: Vec<String> = summary.clock_skew().into_iter().map(clock_note).collect();
    notes.extend(helm::helm_timeout_note(&rev));
    let mut results = vec![helm::release_status(&rev)];
    let kube_results = match kube {
        Ok(obs) => {
            notes.extend(
                obs.workloads
                    .iter()
                    .filter_map(|w| progress_deadline_note(w, policy.readiness_deadline)),
            );
            let k = &mut e.kube;
            let mut r = workload::rollout(&rev, &obs.workloads, &obs.pods, &mut k.rollouts);
            r.push(pods::pending_pods(&rev, &obs.pods));
            r.push(pods::restarts(&rev, &obs.pods, &mut k.restart_baseline));
            // A failing rollout, a pod past its timeout or too many restarts must be seen by
            // successive rounds for the `for:` before it counts: one sample never decides.
            k.holds
                .retain(|check, _| r.iter().any(|x| &x.check == check));
            let hold = policy.pods.hold;
            let mut r: Vec<CheckResult> = r
                .into_iter()
                .map(|x| {
                    let state = k.holds.entry(x.check.clone()).or_default();
                    state.apply(x, hold, env.now)
                })
                .collect();
            let jobs = helm::with_finished(&mut k.finished_jobs, obs.jobs);
            notes.extend(helm::job_ttl_notes(&rev, &jobs));
            r.extend(helm::migration(&rev, &jobs, &restart));
            r.extend(helm::hooks(&rev));
            r.extend(helm::manifest_jobs(&rev, &jobs));
            k.errors_in_a_row = 0;
            k.last_good = Some(r.clone());
            r
        }
        Err(err) => kube_failure(&mut e.kube, &err, env.settings.errors_before_inconclusive),
    };
    let workloads_ready = kube_results
        .iter()
        .filter(|r| matches!(r.check, CheckId::Rollout(_)))
        .all(|r| r.outcome == Outcome::Pass)
        && !kube_results.iter().any(|r| r.check == CheckId::Kubernetes);
    results.extend(kube_results);
    results.extend(provider_results(
        e,
        &rev,
        env,
        answers,
        workloads_ready,
        kube_down,
    ));
    let bake_over = env.now >= e.bake_ends;
    let closes_at = e.closes_at();
    let mut v = verdict(&results, bake_over);
    if env.now >= closes_at && matches!(v, Verdict::Progressing | Verdict::Inconclusive) {
        // No verdict by the end of the grace: the evaluation ends here, inconclusive.
        notes.push(unresolved_note(v, &results, policy.inconclusive_grace));
        v = Verdict::Inconclusive;
    }
    report(e, env, v, results, notes)
}

/// What every check of revision `e` shares this round (`summary` and `policy` are `e`'s,
/// cloned by the caller so that `e` stays free to update).
pub(super) fn revision<'a>(
    e: &Evaluation,
    env: &RoundEnv<'_>,
    summary: &'a crate::release::summary::ReleaseSummary,
    policy: &'a crate::config::ReleasePolicy,
) -> Revision<'a> {
    Revision {
        now: env.now,
        started: e.started,
        summary,
        status: e.start.status,
        status_since: e.start.status_since,
        policy,
        stuck_pending_after: env.settings.stuck_pending_after,
    }
}

/// The report of revision `e` this round: its verdict, results and notes, with the action
/// recommended for them.
pub(super) fn report(
    e: &Evaluation,
    env: &RoundEnv<'_>,
    v: Verdict,
    results: Vec<CheckResult>,
    notes: Vec<String>,
) -> Report {
    let summary = &e.start.summary;
    let action = recommend(
        v,
        &results,
        &ActionContext {
            release: e.key(),
            revision: summary.revision,
            history: &e.start.history,
            rollbacks: &e.start.rollbacks,
            bakes: env.bakes,
            rollback_timeout: e.policy.rollback_timeout,
            storage: e.start.storage,
            restart_command: e.restart_command(),
        },
    );
    Report {
        release: e.key().clone(),
        revision: summary.revision,
        status: e.start.status,
        status_since: e.start.status_since,
        chart: format!("{}-{}", summary.chart.name, summary.chart.version),
        verdict: v,
        action,
        results,
        notes,
        started: e.started,
        bake_ends: e.bake_ends,
        closes_at: e.closes_at(),
        evaluated_at: env.now,
        content: summary.fingerprint.content.clone(),
        install: summary.first_deployed,
    }
}

/// Why an evaluation ends without a verdict, in words: what was still pending or could not
/// be judged when the grace after the bake ran out.
fn unresolved_note(v: Verdict, results: &[CheckResult], grace: Duration) -> String {
    let open: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pending | Outcome::Inconclusive))
        .map(|r| format!("{} ({})", r.check, r.outcome.as_str()))
        .collect();
    format!(
        "no verdict {} after the bake window ended (it was {}; open: {}): the evaluation ends inconclusive, recorded so; judged again when a new revision comes",
        crate::units::human(grace),
        v.as_str(),
        if open.is_empty() {
            "none".to_string()
        } else {
            open.join(", ")
        }
    )
}

/// The difference between helm's clock and the API server's, in words.
fn clock_note(skew: jiff::SignedDuration) -> String {
    let way = if skew.is_negative() {
        "behind"
    } else {
        "ahead of"
    };
    format!(
        "the clock of the machine that ran helm was {} {way} the API server's: the upgrade is timed by the API server (its record's creation)",
        crate::units::human(skew.unsigned_abs())
    )
}

/// The Kubernetes checks while the API server fails: the last results replayed (never as a
/// failure) for fewer than `limit` rounds in a row, then one inconclusive result.
fn kube_failure(state: &mut KubeState, err: &ProviderError, limit: u32) -> Vec<CheckResult> {
    state.errors_in_a_row = state.errors_in_a_row.saturating_add(1);
    let inconclusive = |summary: String| {
        vec![
            CheckResult::new(CheckId::Kubernetes, Outcome::Inconclusive, summary)
                .on_fail(FailClass::Investigate)
                .stale(),
        ]
    };
    if let ProviderError::NoHistory(words) = err {
        // A replay without the past's pod states: nothing to wait for.
        return inconclusive(words.clone());
    }
    match &state.last_good {
        Some(last) if state.errors_in_a_row < limit => {
            let note = format!(
                "request failed ({} of {limit} before it counts): {err}",
                state.errors_in_a_row
            );
            last.iter().map(|r| replay(r, &note)).collect()
        }
        Some(_) => inconclusive(format!(
            "cannot read the release's workloads: {err} ({} failures in a row)",
            state.errors_in_a_row
        )),
        None if state.errors_in_a_row < limit => vec![
            CheckResult::new(
                CheckId::Kubernetes,
                Outcome::Pending,
                format!(
                    "cannot read the release's workloads yet ({} of {limit} before it counts): {err}",
                    state.errors_in_a_row
                ),
            )
            .on_fail(FailClass::Investigate)
            .stale(),
        ],
        None => inconclusive(format!(
            "cannot read the release's workloads: {err} ({} failures in a row)",
            state.errors_in_a_row
        )),
    }
}

/// A bounded check's samples this round: from Prometheus or from its database. A database
/// that cannot be reached is a provider error here; only a dependency probe makes it a
/// finding (in [`provider_results`]).
fn samples(value: Bounded) -> Result<Samples, ProviderError> {
    match value {
        Bounded::PromQL(r) => r,
        Bounded::Sql(r) => r
            .map(|v| v.into_iter().collect())
            .map_err(|e| e.provider_error()),
    }
}

/// SQL dependencies that were out of bounds or unreachable within the lag window (as seen
/// by this evaluation's rounds), or that cannot be read now.
fn sql_dependency_troubles(
    e: &mut Evaluation,
    env: &RoundEnv<'_>,
    dependencies: &[Bounded],
    window: std::time::Duration,
) -> Vec<DependencyTrouble> {
    let mut troubles = Vec::new();
    for (d, value) in e.policy.dependencies.iter().zip(dependencies) {
        let Bounded::Sql(answer) = value else {
            continue;
        };
        let bad = match answer.clone() {
            Ok(v) => {
                let samples: Vec<f64> = v.into_iter().collect();
                threshold("", d, &samples, FailClass::Investigate).outcome == Outcome::Fail
            }
            Err(SqlError::Unreachable(_)) => true,
            Err(err) => {
                troubles.push(DependencyTrouble::Unknown {
                    name: d.name.clone(),
                    error: err.to_string(),
                });
                false
            }
        };
        if bad {
            e.sql_troubles.insert(d.name.clone(), env.now);
        }
        if let Some(last) = e.sql_troubles.get(&d.name)
            && crate::units::between(*last, env.now) <= window
        {
            troubles.push(DependencyTrouble::OutOfBounds {
                name: d.name.clone(),
                last: *last,
            });
        }
    }
    troubles
}

/// The checks of the revision judged from Prometheus and database answers: judged from this
/// round's answers (failures held for their `for:`), or the provider error handled with the
/// check's tolerance.
fn provider_results(
    e: &mut Evaluation,
    rev: &Revision<'_>,
    env: &RoundEnv<'_>,
    answers: RevisionAnswers,
    workloads_ready: bool,
    kube_down: bool,
) -> Vec<CheckResult> {
    let scrape = env.settings.scrape_interval;
    let scraping_at_upgrade = e.baseline.as_ref().is_some_and(|b| b.scraping_at_upgrade);
    // (check, judged result or error, `for:` to apply)
    let mut judged = presence_judged(e, rev, env, answers.presence, workloads_ready);
    let migration_sql = rev.policy.migration.as_ref().and_then(|m| m.sql.as_ref());
    if let (Some(m), Some(answer)) = (migration_sql, answers.migration) {
        // `for:` applies to the answers before the deadline decides (see `sql::migration`).
        let restart = e.restart_command();
        let state = e.checks.entry(CheckId::MigrationSql).or_default();
        let r = answer.map_err(|err| err.provider_error()).map(|v| {
            let held = state.hold.apply(sql::confirmation(m, v), m.hold, env.now);
            sql::migration(rev, held, &restart)
        });
        judged.push((CheckId::MigrationSql, r, None));
    }
    if let (Some(l), Some(answer)) = (&rev.policy.lag, answers.lag) {
        let mut dependencies = answers.dependency_troubles;
        dependencies.extend(sql_dependency_troubles(
            e,
            env,
            &answers.dependencies,
            l.window,
        ));
        let ctx = LagContext {
            scrape_interval: scrape,
            scraping_at_upgrade,
            workloads_ready,
            dependencies,
        };
        let r = answer.map(|(before, a)| lag(rev, l, &before, &a, &ctx));
        judged.push((CheckId::Lag, r, Some(l.hold)));
    }
    for (d, value) in rev.policy.dependencies.iter().zip(answers.dependencies) {
        let check = CheckId::Dependency(d.name.clone());
        let class = FailClass::FixDependency {
            name: d.name.clone(),
        };
        let r = match value {
            // A probe that cannot connect is a finding, not a monitoring error, unless
            // upgrade-guard cannot reach the API server either (its own network is down).
            Bounded::Sql(Err(err @ SqlError::Unreachable(_))) if !kube_down => {
                Ok(sql::unreachable(&check, &d.name, &err.to_string()))
            }
            other => samples(other).map(|s| threshold(&check, d, &s, class)),
        };
        judged.push((check, r, Some(d.hold)));
    }
    for (c, value) in rev.policy.custom.iter().zip(answers.custom) {
        let check = CheckId::Custom(c.name.clone());
        let class = match c.action {
            FailAction::Rollback => FailClass::Rollback,
            FailAction::Investigate => FailClass::Investigate,
        };
        let r = samples(value)
            .map(|s| while_starting(threshold(&check, c, &s, class), rev, workloads_ready));
        judged.push((check, r, Some(c.hold)));
    }
    settle(e, env, judged)
}

/// A check judged this round (or its provider's error), with the `for:` to apply.
pub(super) type Judged = (
    CheckId,
    Result<CheckResult, ProviderError>,
    Option<Duration>,
);

/// The `metrics_presence` checks judged from this round's answers. Absence counts once the
/// release is Ready or its deadline has passed: a starting service may not expose its
/// metrics yet.
pub(super) fn presence_judged(
    e: &Evaluation,
    rev: &Revision<'_>,
    env: &RoundEnv<'_>,
    answers: Vec<Result<(PresenceBaseline, PresenceAnswers), ProviderError>>,
    workloads_ready: bool,
) -> Vec<Judged> {
    let ctx = PresenceContext {
        scrape_interval: env.settings.scrape_interval,
        scraping_at_upgrade: e.baseline.as_ref().is_some_and(|b| b.scraping_at_upgrade),
        answering_since: env.answering_since,
    };
    rev.policy
        .metrics_presence
        .iter()
        .zip(answers)
        .map(|(p, answer)| {
            let r = answer.map(|(before, a)| {
                while_starting(presence(rev, p, &before, &a, ctx), rev, workloads_ready)
            });
            (CheckId::MetricsPresence(p.name.clone()), r, None)
        })
        .collect()
}

/// Each judged check through its `for:` and its provider's tolerance (the last good result
/// replayed, then inconclusive, never a failure).
pub(super) fn settle(
    e: &mut Evaluation,
    env: &RoundEnv<'_>,
    judged: Vec<Judged>,
) -> Vec<CheckResult> {
    let limit = env.settings.errors_before_inconclusive;
    judged
        .into_iter()
        .map(|(check, result, hold)| {
            let state = e.checks.entry(check.clone()).or_default();
            match result {
                Ok(r) => {
                    let r = match hold {
                        Some(hold) => state.hold.apply(r, hold, env.now),
                        None => r,
                    };
                    state.provider.success(r)
                }
                Err(err) => state.provider.failure(&check, &err, limit),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
