//! Pod checks (pure): the pods of the revision's current templates that are not Ready, each
//! judged by its own reason and age, and the restarts of its containers during the bake.
//!
//! Readiness follows the service: a pod waiting for a node, an image, a volume, its init
//! containers or its readiness probe is starting, however slowly, and has the readiness
//! deadline by default; a crash, a restart loop or an error is broken and has the pending
//! timeout by default; `pod_timeouts` sets either per reason. Each pod's clock starts when it
//! stopped being Ready and never before the upgrade, so a replica added or replaced late in
//! the bake (a scale-up, an eviction) has its own full time. A pod not Ready since before the
//! upgrade is reported as such, never charged to the revision.

use std::collections::BTreeMap;
use std::time::Duration;

use super::observe::{PodObs, PodProblem};
use super::{Bound, CheckId, CheckResult, Outcome, Revision};
use crate::units::{between, human};

/// Creation and transition times are truncated to the second: a pod the upgrade created
/// may look up to this much older than the upgrade.
const TIMESTAMP_TRUNCATION: Duration = Duration::from_secs(1);

/// Where one not-Ready pod stands against its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not Ready since before the upgrade: not the revision's doing.
    BeforeUpgrade,
    /// Within its timeout: `waited` of `limit`.
    Within {
        /// How long it has not been Ready (since the upgrade at most).
        waited: Duration,
        /// Its reason's timeout.
        limit: Duration,
    },
    /// Past its timeout.
    Over {
        /// How long it has not been Ready.
        waited: Duration,
        /// Its reason's timeout.
        limit: Duration,
    },
}

/// Where pod `p`, not Ready for `problem`, stands at `r.now`.
pub fn standing(r: &Revision<'_>, p: &PodObs, problem: PodProblem) -> Standing {
    if broken_before_upgrade(r, p) {
        return Standing::BeforeUpgrade;
    }
    let waited = between(p.not_ready_since.max(r.started), r.now);
    let limit = r.policy.pod_timeout(problem);
    if waited >= limit {
        Standing::Over { waited, limit }
    } else {
        Standing::Within { waited, limit }
    }
}

/// Whether pod `p` has not been Ready since before the upgrade: not the revision's doing.
pub fn broken_before_upgrade(r: &Revision<'_>, p: &PodObs) -> bool {
    p.problem.is_some() && p.not_ready_since + TIMESTAMP_TRUNCATION < r.started
}

/// Whether pod `p` is not Ready but still within its own time: a replica still coming up.
pub fn coming_up(r: &Revision<'_>, p: &PodObs) -> bool {
    p.problem
        .is_some_and(|k| matches!(standing(r, p, k), Standing::Within { .. }))
}

/// The revision's pods that are not Ready: a fail when one is past its reason's timeout
/// (the `for:` is applied by the caller), pending while some are within theirs, a warning
/// for pods not Ready since before the upgrade.
pub fn pending_pods(r: &Revision<'_>, pods: &[PodObs]) -> CheckResult {
    // (pod, reason, waited, limit)
    let mut over: Vec<(&PodObs, PodProblem, Duration, Duration)> = Vec::new();
    let mut within: Vec<(&PodObs, PodProblem, Duration, Duration)> = Vec::new();
    let mut before: Vec<(&PodObs, PodProblem)> = Vec::new();
    let mut counts: BTreeMap<&'static str, u32> = BTreeMap::new();
    for p in pods {
        let Some(problem) = p.problem else { continue };
        *counts.entry(problem.as_str()).or_default() += 1;
        match standing(r, p, problem) {
            Standing::BeforeUpgrade => before.push((p, problem)),
            Standing::Within { waited, limit } => within.push((p, problem, waited, limit)),
            Standing::Over { waited, limit } => over.push((p, problem, waited, limit)),
        }
    }
    let window = over
        .iter()
        .map(|o| o.3)
        .chain(within.iter().map(|w| w.3))
        .max()
        .unwrap_or(r.policy.pending_timeout);
    let result = |outcome, summary: String| {
        CheckResult::new(CheckId::PendingPods, outcome, summary)
            .counts(counts.clone())
            .value(over.len() as f64)
            .threshold(Bound::Max, 0.0)
            .window(window)
    };
    let before_words = (!before.is_empty()).then(|| {
        format!(
            "{} pod(s) not Ready since before the upgrade ({}): not charged to this revision",
            before.len(),
            by_reason(before.iter().map(|(_, k)| *k))
        )
    });
    if let Some(oldest) = over
        .iter()
        .max_by(|a, b| a.2.cmp(&b.2).then(b.0.name.cmp(&a.0.name)))
    {
        let mut summary = format!(
            "{} pod(s) not Ready past their timeout: {} (longest {}, {} for {}, timeout {})",
            over.len(),
            by_reason(over.iter().map(|o| o.1)),
            oldest.0.name,
            human(oldest.2),
            oldest.1.as_str(),
            human(oldest.3)
        );
        if let Some(b) = before_words {
            summary.push_str(&format!("; {b}"));
        }
        return result(Outcome::Fail, summary);
    }
    if !within.is_empty() {
        type Waiting<'p> = (&'p PodObs, PodProblem, Duration, Duration);
        let (slow, broken): (Vec<&Waiting<'_>>, Vec<&Waiting<'_>>) =
            within.iter().partition(|w| w.1.is_slow_start());
        let mut parts = Vec::new();
        for (list, what) in [(&broken, "broken"), (&slow, "starting")] {
            if !list.is_empty() {
                // The pod nearest its timeout (then by name): what decides next.
                let nearest = list
                    .iter()
                    .min_by(|a, b| (a.3 - a.2).cmp(&(b.3 - b.2)).then(a.0.name.cmp(&b.0.name)));
                let tail = nearest.map_or(String::new(), |(p, k, waited, limit)| {
                    format!(
                        ", nearest its timeout {} ({} of its {} {} timeout)",
                        p.name,
                        human(*waited),
                        human(*limit),
                        k.as_str()
                    )
                });
                parts.push(format!(
                    "{} {what} ({}){tail}",
                    list.len(),
                    by_reason(list.iter().map(|w| w.1))
                ));
            }
        }
        if let Some(b) = before_words {
            parts.push(b);
        }
        return result(
            Outcome::Pending,
            format!("pod(s) not Ready yet: {}", parts.join("; ")),
        );
    }
    match before_words {
        Some(b) => result(Outcome::Warn, b),
        None => result(Outcome::Pass, "every pod is Ready".to_string()),
    }
}

/// What the restarts check remembers: per pod, the restarts it had when first seen, for pods
/// that existed before the upgrade (a pod created by it starts from zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartBaseline {
    first_seen: BTreeMap<String, i32>,
}

/// The restarts of the current templates' containers since the upgrade: a fail beyond
/// `max_restarts` (the `for:` is applied by the caller). `baseline` keeps what pods that
/// predate the upgrade had already; a pod not Ready since before the upgrade is not the
/// revision's doing (`pending_pods` reports it) and its restarts are not counted.
pub fn restarts(r: &Revision<'_>, pods: &[PodObs], baseline: &mut RestartBaseline) -> CheckResult {
    restarts_since(r, pods, baseline, "the upgrade")
}

/// [`restarts`] counted from `r.started`, which the summary calls `since` ("the upgrade",
/// "the bake ended").
pub fn restarts_since(
    r: &Revision<'_>,
    pods: &[PodObs],
    baseline: &mut RestartBaseline,
    since: &str,
) -> CheckResult {
    let max = r.policy.pods.max_restarts;
    baseline
        .first_seen
        .retain(|name, _| pods.iter().any(|p| &p.name == name));
    let mut per_pod: Vec<(&str, i64)> = Vec::new();
    for p in pods.iter().filter(|p| !broken_before_upgrade(r, p)) {
        let since_upgrade = if p.created + TIMESTAMP_TRUNCATION < r.started {
            let first = *baseline
                .first_seen
                .entry(p.name.clone())
                .or_insert(p.restarts);
            p.restarts.saturating_sub(first)
        } else {
            p.restarts
        };
        if since_upgrade > 0 {
            per_pod.push((&p.name, i64::from(since_upgrade)));
        }
    }
    per_pod.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: i64 = per_pod.iter().map(|(_, n)| n).sum();
    let words = per_pod
        .iter()
        .take(3)
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let result = |outcome, summary: String| {
        CheckResult::new(CheckId::Restarts, outcome, summary)
            .value(total as f64)
            .threshold(Bound::Max, f64::from(max))
            .window(between(r.started, r.now))
    };
    if total > i64::from(max) {
        result(
            Outcome::Fail,
            format!(
                "{total} container restart(s) since {since}, more than the {max} tolerated: {words}"
            ),
        )
    } else if total > 0 {
        result(
            Outcome::Pass,
            format!(
                "{total} container restart(s) since {since}, within the {max} tolerated: {words}"
            ),
        )
    } else {
        result(
            Outcome::Pass,
            format!("no container restarted since {since}"),
        )
    }
}

/// `CrashLoopBackOff 2, Unschedulable 1`.
fn by_reason(problems: impl Iterator<Item = PodProblem>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in problems {
        *counts.entry(k.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
