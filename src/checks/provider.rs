//! Provider errors (pure): a Prometheus query that fails (unreachable, 5xx, timeout, error
//! status), a Kubernetes API request that fails, or a database check that cannot run
//! (unreachable, authentication, TLS, timeout), never makes a check fail. The check
//! replays its last judgement from real data (or stays pending) while the failures are fewer
//! than the configured limit in a row, then reports an error as `inconclusive`. A replayed
//! judgement is never `fail`: a failure needs a current answer, so a replayed `fail` is
//! `inconclusive`. A query Prometheus rejects as invalid (`bad_data`) is a configuration
//! error: `inconclusive` at once, and so is a query the database refuses (a syntax error, a
//! write refused by the read-only transaction, an answer that is not one number).

use super::{CheckId, CheckResult, FailClass, Outcome};

/// Why a query gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Unreachable, timed out, 5xx, or an error status other than `bad_data`.
    #[error("Prometheus did not answer: {0}")]
    Unavailable(String),
    /// Prometheus rejected the query itself.
    #[error("Prometheus rejected the query: {0}")]
    BadQuery(String),
    /// The Kubernetes API server did not answer (or refused the request).
    #[error("the Kubernetes API server did not answer: {0}")]
    Kubernetes(String),
    /// A database check could not run: unreachable, authentication or TLS refused, timeout.
    /// The text names the database and says why.
    #[error("{0}")]
    Database(String),
    /// The database refused the configured query, or its answer is not one number.
    #[error("{0}")]
    DatabaseQuery(String),
    /// A replay of the past: what the check needs was not recorded then (no
    /// kube-state-metrics series, a database's past). Not a failure of anything; never
    /// retried.
    #[error("{0}")]
    NoHistory(String),
}

impl ProviderError {
    /// Who did not answer, for "cannot judge until … answers again".
    fn provider(&self) -> &'static str {
        match self {
            Self::Unavailable(_) | Self::BadQuery(_) => "Prometheus",
            Self::Kubernetes(_) => "the Kubernetes API server",
            Self::Database(_) | Self::DatabaseQuery(_) => "the database",
            Self::NoHistory(_) => "Prometheus' history",
        }
    }

    /// The query itself is wrong, or the past holds no answer: no retry will help.
    fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Self::BadQuery(_) | Self::DatabaseQuery(_) | Self::NoHistory(_)
        )
    }
}

/// A judgement replayed while its provider fails: the same result with `note` appended,
/// except that a `fail` becomes `inconclusive` (a failure needs a current answer).
pub fn replay(last: &CheckResult, note: &str) -> CheckResult {
    if last.outcome == Outcome::Fail {
        return CheckResult {
            outcome: Outcome::Inconclusive,
            summary: format!(
                "not judged now ({note}); the last answer said: {}; a failure needs a current answer",
                last.summary
            ),
            on_fail: FailClass::Investigate,
            stale: true,
            ..last.clone()
        };
    }
    CheckResult {
        summary: format!("{} [last answer; {note}]", last.summary),
        stale: true,
        ..last.clone()
    }
}

/// Per check: failures in a row and the last judgement made from real data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderState {
    /// Consecutive failed rounds.
    pub errors_in_a_row: u32,
    /// The last result judged from a successful answer.
    pub last_good: Option<CheckResult>,
}

impl ProviderState {
    /// Records a judgement made from a successful answer and returns it.
    pub fn success(&mut self, result: CheckResult) -> CheckResult {
        self.errors_in_a_row = 0;
        self.last_good = Some(result.clone());
        result
    }

    /// Records a failed query for `check` and returns what the check says meanwhile.
    pub fn failure(
        &mut self,
        check: impl Into<CheckId>,
        error: &ProviderError,
        limit: u32,
    ) -> CheckResult {
        let check: CheckId = check.into();
        self.errors_in_a_row = self.errors_in_a_row.saturating_add(1);
        let inconclusive = |summary: String| {
            CheckResult::new(check.clone(), Outcome::Inconclusive, summary)
                .on_fail(FailClass::Investigate)
        };
        if error.is_configuration_error() {
            return inconclusive(format!("{error}; fix the query in the configuration"));
        }
        if self.errors_in_a_row >= limit {
            // Its source is failing now: no unattended action until it answers again.
            return inconclusive(format!(
                "{error} ({} failures in a row); cannot judge until {} answers again",
                self.errors_in_a_row,
                error.provider()
            ))
            .stale();
        }
        let note = format!(
            "query failed ({} of {limit} before it counts): {error}",
            self.errors_in_a_row
        );
        match &self.last_good {
            Some(last) => replay(last, &note),
            None => CheckResult::new(check, Outcome::Pending, note)
                .on_fail(FailClass::Investigate)
                .stale(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unavailable() -> ProviderError {
        ProviderError::Unavailable("connection refused".into())
    }

    #[test]
    fn errors_become_inconclusive_after_the_limit_and_reset_on_success() {
        let mut s = ProviderState::default();
        let pass = CheckResult::new("lag", Outcome::Pass, "no growing backlog");
        s.success(pass.clone());
        for n in 1..4 {
            let r = s.failure("lag", &unavailable(), 4);
            assert_eq!(
                r.outcome,
                Outcome::Pass,
                "failure {n} keeps the last judgement"
            );
            assert!(r.summary.contains(&format!("{n} of 4")), "{}", r.summary);
        }
        let r = s.failure("lag", &unavailable(), 4);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.summary.contains("4 failures in a row"), "{}", r.summary);
        assert_eq!(s.success(pass.clone()), pass);
        assert_eq!(s.errors_in_a_row, 0);
    }

    #[test]
    fn a_replayed_failure_is_inconclusive_never_failed() {
        let mut s = ProviderState::default();
        s.success(CheckResult::new(
            "dependency:kafka",
            Outcome::Fail,
            "kafka is 0 (must be at least 1)",
        ));
        let r = s.failure("dependency:kafka", &unavailable(), 4);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert_eq!(r.on_fail, FailClass::Investigate);
        assert!(r.summary.contains("kafka is 0"), "{}", r.summary);
        assert!(
            r.summary.contains("needs a current answer"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn without_a_previous_answer_the_check_waits() {
        let mut s = ProviderState::default();
        assert_eq!(
            s.failure("lag", &unavailable(), 4).outcome,
            Outcome::Pending
        );
    }

    #[test]
    fn database_errors_are_tolerated_like_prometheus_errors_and_named() {
        let mut s = ProviderState::default();
        s.success(CheckResult::new(
            "migration:sql",
            Outcome::Pass,
            "confirmed",
        ));
        let down = ProviderError::Database("database infomart: connection refused".into());
        assert_eq!(s.failure("migration:sql", &down, 2).outcome, Outcome::Pass);
        let r = s.failure("migration:sql", &down, 2);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(
            r.summary.contains("until the database answers again"),
            "{}",
            r.summary
        );
        let refused = ProviderError::DatabaseQuery(
            "database infomart refused the query: cannot execute INSERT in a read-only transaction"
                .into(),
        );
        let r = ProviderState::default().failure("migration:sql", &refused, 4);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.summary.contains("fix the query"), "{}", r.summary);
    }

    #[test]
    fn a_rejected_query_is_inconclusive_at_once() {
        let mut s = ProviderState::default();
        let r = s.failure(
            "custom:x",
            &ProviderError::BadQuery("parse error".into()),
            4,
        );
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.summary.contains("fix the query"));
    }

    proptest! {
        /// Whatever was judged before, provider errors alone never yield `fail`.
        #[test]
        fn provider_errors_never_replay_a_failure(
            last in proptest::sample::select(Outcome::ALL.to_vec()),
            errors in 1u32..10,
            limit in 1u32..10,
        ) {
            let mut s = ProviderState::default();
            s.success(CheckResult::new("c", last, "judged"));
            for _ in 0..errors {
                prop_assert_ne!(s.failure("c", &unavailable(), limit).outcome, Outcome::Fail);
            }
        }

        /// Only provider errors, in any number, never yield `fail` when no judgement from
        /// real data said so.
        #[test]
        fn provider_errors_alone_never_fail(
            errors in proptest::collection::vec(any::<bool>(), 1..40),
            limit in 1u32..10,
        ) {
            let mut s = ProviderState::default();
            for bad_query in errors {
                let e = if bad_query { ProviderError::BadQuery("x".into()) } else { unavailable() };
                let r = s.failure("c", &e, limit);
                prop_assert_ne!(r.outcome, Outcome::Fail);
            }
        }
    }
}
