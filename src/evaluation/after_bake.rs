//! One look at a revision after its bake (pure): its pods as upgrade-guard's own watches
//! show them (never a new Kubernetes request) and its `metrics_presence` answers in, a
//! [`Report`] out whose `failed` means something broke since the bake. Pod findings hold
//! for the Kubernetes `for:` like during the bake; presence goes through the same provider
//! tolerance. The report is told (alert, mail), never acted on.

use super::judge::{RoundEnv, presence_judged, report, revision, settle};
use super::queries::RevisionAnswers;
use super::revision::{AfterBake, Evaluation};
use crate::checks::provider::ProviderError;
use crate::checks::{CheckId, CheckResult, FailClass, Outcome, after_bake};
use crate::gather::kube::KubeObservations;
use crate::verdict::{Report, verdict};

/// What the watch could read of the revision's pods.
pub(super) enum Pods {
    /// From the stores.
    Read(KubeObservations),
    /// The stores cannot be trusted now (a watch failed recently).
    Failing(ProviderError),
    /// No store covers the namespace: not looked at (no request is made for the watch).
    NotWatched,
}

/// Judges the watched revision `e` this round.
pub(super) fn judge(
    e: &mut Evaluation,
    w: &mut AfterBake,
    env: &RoundEnv<'_>,
    pods: Pods,
    answers: RevisionAnswers,
) -> Report {
    let summary = e.start.summary.clone();
    let policy = e.policy.clone();
    let rev = revision(e, env, &summary, &policy);
    let since_bake = after_bake::from_bake_end(&rev, w.since);
    let mut notes = Vec::new();
    let mut results: Vec<CheckResult> = match pods {
        Pods::Read(obs) => {
            let found = [
                after_bake::broken_pods(&since_bake, &obs.pods),
                after_bake::restarts(&since_bake, &obs.pods, &mut w.restarts),
            ];
            found
                .into_iter()
                .map(|r| {
                    let hold = w.holds.entry(r.check.clone()).or_default();
                    hold.apply(r, policy.pods.hold, env.now)
                })
                .collect()
        }
        Pods::Failing(err) => vec![
            CheckResult::new(
                CheckId::Kubernetes,
                Outcome::Inconclusive,
                format!("cannot read the release's pods: {err}"),
            )
            .on_fail(FailClass::Investigate)
            .stale(),
        ],
        Pods::NotWatched => {
            notes.push(format!(
                "namespace {} is not among watch.namespaces: its pods are not watched after the bake",
                e.key().namespace
            ));
            Vec::new()
        }
    };
    // Past the bake the workloads had their time: absence counts at once.
    let presence = presence_judged(e, &rev, env, answers.presence, true);
    results.extend(settle(e, env, presence));
    let v = verdict(&results, true);
    report(e, env, v, results, notes)
}
