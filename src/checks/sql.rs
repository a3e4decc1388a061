//! SQL checks (pure): the value of a configured query compared with its bounds like a PromQL
//! check (`super::threshold`), with two meanings of their own.
//!
//! - The migration confirmed in the database (GIM runs its migration inside its pod, so no
//!   Job tells): until the readiness deadline an unconfirmed migration may still be running
//!   and is `pending`; after it, it `fail`s with a pod restart (the migration resumes),
//!   never a rollback.
//! - A dependency probe that cannot connect at all is a finding, "PostgreSQL unreachable",
//!   whose remedy is to fix the dependency (a rollback does not work while it is down).
//!
//! Every other database error is a provider error (`super::provider`): tolerated, then
//! `inconclusive`, never `fail`. Whether a failure has held for its `for:` is applied by
//! the caller (`super::hold`).

use super::threshold::threshold;
use super::{CheckId, CheckResult, FailClass, Outcome, Revision};
use crate::config::ThresholdPolicy;
use crate::units::human;

/// The name of the migration's database check.
pub const MIGRATION_SQL: &str = "migration:sql";

/// The migration query's answer against its bounds (`None`: no row or NULL), before its
/// `for:` and the readiness deadline are applied.
pub fn confirmation(p: &ThresholdPolicy, value: Option<f64>) -> CheckResult {
    let samples: Vec<f64> = value.into_iter().collect();
    threshold(MIGRATION_SQL, p, &samples, FailClass::RestartPod)
}

/// The migration's database check from its [`confirmation`] once `for:` is applied (`held`:
/// `fail` when the migration has been unconfirmed for `for:`, `pending` while that is not
/// yet so). The `for:` counts answers from before the readiness deadline too, so a
/// migration unconfirmed all along fails at the deadline, in the same round as the pods
/// that wait for it.
pub fn migration(r: &Revision<'_>, held: CheckResult, restart_command: &str) -> CheckResult {
    let unconfirmed = matches!(held.outcome, Outcome::Fail | Outcome::Pending);
    if !unconfirmed || held.on_fail != FailClass::RestartPod {
        return held;
    }
    let deadline = r.policy.readiness_deadline;
    if !r.past_readiness_deadline() {
        return CheckResult {
            outcome: Outcome::Pending,
            summary: format!(
                "the migration is not confirmed in the database yet ({}); it may still be running: judged at the readiness deadline ({} after the upgrade, {} so far)",
                held.summary,
                human(deadline),
                human(r.elapsed())
            ),
            ..held
        }
        .window(deadline);
    }
    if held.outcome == Outcome::Pending {
        return held.window(deadline);
    }
    CheckResult {
        summary: format!(
            "the migration is not confirmed in the database {} after the upgrade ({}); restart the pod, the migration resumes: {restart_command}",
            human(r.elapsed()),
            held.summary
        ),
        ..held
    }
    .window(deadline)
}

/// A dependency probe that could not connect: `error` says where and why.
pub fn unreachable(check: impl Into<CheckId>, name: &str, error: &str) -> CheckResult {
    CheckResult::new(
        check,
        Outcome::Fail,
        format!("{error}; fix {name} first: a rollback does not work while it is down"),
    )
    .on_fail(FailClass::FixDependency {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OnNoData, Source, SqlSource};
    use crate::test_support::*;
    use std::time::Duration;

    fn confirmed(on_no_data: OnNoData) -> ThresholdPolicy {
        ThresholdPolicy {
            name: "migration query".into(),
            source: Source::Sql(SqlSource {
                database: "infomart".into(),
                query: "select count(*) from information_schema.columns where ...".into(),
            }),
            min: Some(1.0),
            max: Some(1.0),
            on_no_data,
            action: crate::config::FailAction::Rollback,
            hold: Duration::from_secs(60),
        }
    }

    const RESTART: &str = "kubectl rollout restart deployment/gim -n gim";

    /// The check as the evaluation makes it: confirmation, `for:`, deadline.
    fn judge(
        hold: &mut crate::checks::hold::Hold,
        minute: i64,
        p: &ThresholdPolicy,
        value: Option<f64>,
    ) -> CheckResult {
        let policy = policy();
        let s = summary(&[], &[]);
        let r = rev(&s, &policy, minute, crate::release::ReleaseStatus::Deployed);
        let held = hold.apply(confirmation(p, value), p.hold, at(minute));
        migration(&r, held, RESTART)
    }

    #[test]
    fn a_confirmed_migration_passes() {
        let mut hold = Default::default();
        let res = judge(&mut hold, 1, &confirmed(OnNoData::Fail), Some(1.0));
        assert_eq!(res.outcome, Outcome::Pass);
        assert_eq!(res.check, MIGRATION_SQL);
        assert_eq!(res.value, Some(1.0));
    }

    #[test]
    fn an_unconfirmed_migration_waits_for_the_readiness_deadline_then_restarts_the_pod() {
        let p = confirmed(OnNoData::Fail);
        let deadline = (policy().readiness_deadline.as_secs() / 60) as i64;
        let mut hold = Default::default();
        for minute in 1..deadline {
            let res = judge(&mut hold, minute, &p, Some(0.0));
            assert_eq!(res.outcome, Outcome::Pending, "minute {minute}");
            assert!(
                res.summary.contains("may still be running"),
                "{}",
                res.summary
            );
        }
        // Unconfirmed for longer than `for:` already: it fails at the deadline.
        let res = judge(&mut hold, deadline, &p, Some(0.0));
        assert_eq!(res.outcome, Outcome::Fail);
        assert_eq!(res.on_fail, FailClass::RestartPod, "never a rollback");
        assert!(res.summary.contains(RESTART), "{}", res.summary);
        assert!(
            res.summary
                .contains("migration query is 0 (must be equal to 1)"),
            "{}",
            res.summary
        );
    }

    #[test]
    fn one_answer_never_fails_the_migration_even_after_the_deadline() {
        let p = confirmed(OnNoData::Fail);
        let deadline = (policy().readiness_deadline.as_secs() / 60) as i64;
        let mut hold = Default::default();
        assert_eq!(
            judge(&mut hold, deadline - 5, &p, Some(1.0)).outcome,
            Outcome::Pass
        );
        // First unconfirmed answer after the deadline: pending for its `for:` (1m).
        let res = judge(&mut hold, deadline + 1, &p, None);
        assert_eq!(res.outcome, Outcome::Pending, "{}", res.summary);
        let res = judge(&mut hold, deadline + 2, &p, None);
        assert_eq!(res.outcome, Outcome::Fail, "{}", res.summary);
        assert_eq!(res.on_fail, FailClass::RestartPod);
        // No row, when no data cannot be judged: inconclusive, never failed.
        let mut hold = Default::default();
        let res = judge(
            &mut hold,
            deadline + 5,
            &confirmed(OnNoData::Inconclusive),
            None,
        );
        assert_eq!(res.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn an_unreachable_dependency_is_a_finding_that_names_it() {
        let r = unreachable(
            "dependency:postgresql",
            "postgresql",
            "PostgreSQL unreachable: database infomart (gim on db:5432): connection refused",
        );
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(
            r.on_fail,
            FailClass::FixDependency {
                name: "postgresql".into()
            }
        );
        assert!(
            r.summary.starts_with("PostgreSQL unreachable"),
            "{}",
            r.summary
        );
    }
}
