//! Evaluation (I/O around the pure checks): every revision under evaluation is re-judged
//! each round. A round gathers Kubernetes state per revision, asks Prometheus one batched
//! query per check type for all revisions together (plus, once per revision, the values at
//! the time of its upgrade), judges with `crate::checks`, and returns one [`Report`] per
//! revision with its verdict and recommended action. A newer revision of a release replaces
//! (cancels) the evaluation of the older one.

pub mod kube;
pub mod prometheus;
pub mod promql;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::checks::kube::{self as kchecks, Revision};
use crate::checks::prom::{self as pchecks, LagAnswers, Samples};
use crate::checks::provider::{ProviderError, ProviderState};
use crate::checks::{CheckResult, FailClass, Outcome};
use crate::config::{Config, FailAction, ReleasePolicy, render_query};
use crate::release::decode::{ReleaseSummary, WorkloadKind};
use crate::release::rollback_target::BakeRecord;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::verdict::{ActionContext, RecommendedAction, Verdict, recommend, verdict};
use prometheus::{Answers, Prometheus};

/// The judgement of one revision at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The release.
    pub release: ReleaseKey,
    /// The revision judged.
    pub revision: u32,
    /// Its status at the time.
    pub status: ReleaseStatus,
    /// `chart-version`.
    pub chart: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What to do about it.
    pub action: RecommendedAction,
    /// Every check's result.
    pub results: Vec<CheckResult>,
    /// When the upgrade started.
    pub started: Timestamp,
    /// When the bake window ends.
    pub bake_ends: Timestamp,
    /// When this judgement was made.
    pub evaluated_at: Timestamp,
}

/// What starts an evaluation.
#[derive(Debug, Clone)]
pub struct Start {
    /// The release.
    pub release: ReleaseKey,
    /// The decoded revision.
    pub summary: Arc<ReleaseSummary>,
    /// Its status.
    pub status: ReleaseStatus,
    /// Since when it has that status.
    pub status_since: Timestamp,
    /// The release history (revision, status).
    pub history: Vec<(u32, ReleaseStatus)>,
}

#[derive(Debug, Clone, Default)]
struct Baseline {
    presence: Vec<Samples>,
    lag_slope: Samples,
    lag_level: Samples,
}

#[derive(Debug)]
struct Evaluation {
    start: Start,
    started: Timestamp,
    policy: ReleasePolicy,
    bake_ends: Timestamp,
    baseline: Option<Baseline>,
    providers: BTreeMap<String, ProviderState>,
}

impl Evaluation {
    fn key(&self) -> &ReleaseKey {
        &self.start.release
    }

    fn query(&self, q: &str) -> String {
        render_query(q, self.key())
    }

    fn restart_command(&self) -> String {
        let s = &self.start.summary;
        let named = self
            .policy
            .migration
            .as_ref()
            .and_then(|m| m.restart.clone());
        let workload = s
            .workloads
            .iter()
            .filter(|w| w.kind != WorkloadKind::Job)
            .find(|w| named.as_ref().is_none_or(|n| *n == w.name));
        match workload {
            Some(w) => format!(
                "kubectl rollout restart {}/{} -n {}",
                format!("{:?}", w.kind).to_lowercase(),
                w.name,
                w.namespace
            ),
            None => format!(
                "kubectl delete pod -l app.kubernetes.io/instance={} -n {}",
                s.name, s.namespace
            ),
        }
    }
}

fn add(d: Timestamp, by: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(by)
        .ok()
        .and_then(|s| d.checked_add(s).ok())
        .unwrap_or(Timestamp::MAX)
}

/// What judging needs from the global configuration.
#[derive(Debug, Clone, Copy)]
struct Settings {
    errors_before_inconclusive: u32,
    scrape_interval: Duration,
    stuck_pending_after: Duration,
}

/// Every revision under evaluation and what is remembered about earlier ones.
pub struct Evaluator {
    client: ::kube::Client,
    prometheus: Prometheus,
    settings: Settings,
    evaluations: BTreeMap<ReleaseKey, Evaluation>,
    bakes: BTreeMap<ReleaseKey, BTreeMap<u32, BakeRecord>>,
    provider_trouble: bool,
}

impl Evaluator {
    /// An evaluator using `config` for policies and Prometheus settings.
    pub fn new(client: ::kube::Client, config: &Config, prometheus: Prometheus) -> Self {
        Self {
            client,
            prometheus,
            settings: Settings {
                errors_before_inconclusive: config.prometheus.errors_before_inconclusive,
                scrape_interval: config.prometheus.scrape_interval,
                stuck_pending_after: config.watch.stuck_pending_after,
            },
            evaluations: BTreeMap::new(),
            bakes: BTreeMap::new(),
            provider_trouble: false,
        }
    }

    /// Starts evaluating a revision with `policy`. Returns the revision whose evaluation it
    /// cancels, if an older one of the same release was under way.
    pub fn begin(&mut self, start: Start, policy: ReleasePolicy) -> Option<u32> {
        let started = start.summary.last_deployed.unwrap_or(start.status_since);
        let evaluation = Evaluation {
            bake_ends: add(started, policy.bake_window),
            started,
            policy,
            baseline: None,
            providers: BTreeMap::new(),
            start,
        };
        let key = evaluation.key().clone();
        let new_revision = evaluation.start.summary.revision;
        match self.evaluations.get(&key) {
            // Late news of an older revision, or the same one again: keep what runs.
            Some(old) if old.start.summary.revision >= new_revision => None,
            _ => self
                .evaluations
                .insert(key, evaluation)
                .map(|old| old.start.summary.revision)
                .filter(|old| *old != new_revision),
        }
    }

    /// The revision's status or the release history changed.
    pub fn update(
        &mut self,
        release: &ReleaseKey,
        revision: u32,
        status: ReleaseStatus,
        since: Timestamp,
        history: Vec<(u32, ReleaseStatus)>,
    ) {
        if let Some(e) = self.evaluations.get_mut(release)
            && e.start.summary.revision == revision
        {
            if e.start.status != status {
                e.start.status_since = since;
            }
            e.start.status = status;
            e.start.history = history;
        }
    }

    /// Stops evaluating a release (uninstalled).
    pub fn end(&mut self, release: &ReleaseKey) {
        self.evaluations.remove(release);
    }

    /// The revision under evaluation for each release.
    pub fn active(&self) -> Vec<(ReleaseKey, u32)> {
        self.evaluations
            .iter()
            .map(|(k, e)| (k.clone(), e.start.summary.revision))
            .collect()
    }

    /// Whether the last round had a Prometheus failure (retry sooner).
    pub fn provider_trouble(&self) -> bool {
        self.provider_trouble
    }

    /// Records the outcome of a revision's bake (used to prefer known-good rollback targets).
    pub fn record_bake(&mut self, release: &ReleaseKey, revision: u32, record: BakeRecord) {
        self.bakes
            .entry(release.clone())
            .or_default()
            .insert(revision, record);
    }

    /// One round: gather, judge, report.
    pub async fn round(&mut self, now: Timestamp) -> Vec<Report> {
        let keys: Vec<ReleaseKey> = self.evaluations.keys().cloned().collect();
        let mut kube_obs = BTreeMap::new();
        for key in &keys {
            if let Some(e) = self.evaluations.get(key) {
                let jobs = e.policy.migration.is_some()
                    || e.start
                        .summary
                        .workloads
                        .iter()
                        .any(|w| w.kind == WorkloadKind::Job);
                let result = kube::gather(&self.client, &e.start.summary, jobs, now).await;
                kube_obs.insert(key.clone(), result.map_err(|e| e.to_string()));
            }
        }
        self.fill_baselines().await;
        let answers = self.batched_queries(&keys).await;
        self.provider_trouble = answers.values().any(Result::is_err);
        let mut reports = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(kube) = kube_obs.remove(key) else {
                continue;
            };
            let bakes = self.bakes.get(key).cloned().unwrap_or_default();
            let Some(e) = self.evaluations.get_mut(key) else {
                continue;
            };
            let report = judge(e, i, now, kube, &answers, &bakes, self.settings);
            match report.verdict {
                Verdict::Healthy => self.record_bake(key, report.revision, BakeRecord::Healthy),
                Verdict::Failed => self.record_bake(key, report.revision, BakeRecord::Failed),
                _ => {}
            }
            reports.push(report);
        }
        reports
    }

    /// Values at the time of each upgrade, asked once per revision (retried until answered).
    async fn fill_baselines(&mut self) {
        for e in self
            .evaluations
            .values_mut()
            .filter(|e| e.baseline.is_none())
        {
            let mut items: Vec<(String, String)> = e
                .policy
                .metrics_presence
                .iter()
                .enumerate()
                .map(|(j, p)| (format!("p{j}"), promql::count(&e.query(&p.query))))
                .collect();
            if let Some(lag) = &e.policy.lag {
                let q = e.query(&lag.query);
                items.push((
                    "ls".into(),
                    promql::slope(&q, lag.window, self.settings.scrape_interval),
                ));
                items.push(("ll".into(), q));
            }
            if items.is_empty() {
                e.baseline = Some(Baseline::default());
                continue;
            }
            let answers = self.prometheus.batch(&items, Some(e.started)).await;
            if answers.values().any(Result::is_err) {
                continue;
            }
            let take = |k: &str| {
                answers
                    .get(k)
                    .and_then(|a| a.as_ref().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            e.baseline = Some(Baseline {
                presence: (0..e.policy.metrics_presence.len())
                    .map(|j| take(&format!("p{j}")))
                    .collect(),
                lag_slope: take("ls"),
                lag_level: take("ll"),
            });
        }
    }

    /// One batched query per check type for every revision under evaluation.
    async fn batched_queries(&self, keys: &[ReleaseKey]) -> Answers {
        let mut presence = Vec::new();
        let mut lag = Vec::new();
        let mut deps = Vec::new();
        let mut custom = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(e) = self.evaluations.get(key) else {
                continue;
            };
            for (j, p) in e.policy.metrics_presence.iter().enumerate() {
                presence.push((
                    batch_key(i, &format!("p{j}")),
                    promql::count(&e.query(&p.query)),
                ));
            }
            if let Some(l) = &e.policy.lag {
                let q = e.query(&l.query);
                lag.push((
                    batch_key(i, "ls"),
                    promql::slope(&q, l.window, self.settings.scrape_interval),
                ));
                lag.push((batch_key(i, "ll"), q));
            }
            for (j, d) in e.policy.dependencies.iter().enumerate() {
                deps.push((batch_key(i, &format!("d{j}")), e.query(&d.query)));
            }
            for (j, c) in e.policy.custom.iter().enumerate() {
                custom.push((batch_key(i, &format!("c{j}")), e.query(&c.query)));
            }
        }
        let (a, b, c, d) = futures::join!(
            self.prometheus.batch(&presence, None),
            self.prometheus.batch(&lag, None),
            self.prometheus.batch(&deps, None),
            self.prometheus.batch(&custom, None),
        );
        a.into_iter().chain(b).chain(c).chain(d).collect()
    }
}

/// Key of a sub-expression in a round's batch: revision `i`, item `p0`, `ls`, `ll`, `d0`, `c0`.
fn batch_key(i: usize, item: &str) -> String {
    format!("r{i}-{item}")
}

fn answer(answers: &Answers, key: String) -> Result<Samples, ProviderError> {
    answers
        .get(&key)
        .cloned()
        .unwrap_or_else(|| Err(ProviderError::Unavailable("no answer".into())))
}

fn baseline_missing() -> ProviderError {
    ProviderError::Unavailable("the values at the time of the upgrade could not be read yet".into())
}

fn judge(
    e: &mut Evaluation,
    i: usize,
    now: Timestamp,
    kube: Result<kube::KubeObservations, String>,
    answers: &Answers,
    bakes: &BTreeMap<u32, BakeRecord>,
    settings: Settings,
) -> Report {
    let Settings {
        errors_before_inconclusive: limit,
        scrape_interval,
        stuck_pending_after,
    } = settings;
    let restart = e.restart_command();
    let summary = e.start.summary.clone();
    let rev = Revision {
        now,
        started: e.started,
        summary: &summary,
        status: e.start.status,
        status_since: e.start.status_since,
        policy: &e.policy,
        stuck_pending_after,
    };
    let mut results = vec![kchecks::release_status(&rev)];
    results.extend(kube_results(&rev, &kube, &restart));
    let prom_results = prom_results(e, i, &rev, answers, scrape_interval);
    for (check, result) in prom_results {
        let state = e.providers.entry(check.clone()).or_default();
        results.push(match result {
            Ok(r) => state.success(r),
            Err(err) => state.failure(&check, &err, limit),
        });
    }
    let bake_over = now >= e.bake_ends;
    let v = verdict(&results, bake_over);
    let action = recommend(
        v,
        &results,
        &ActionContext {
            release: e.key(),
            revision: summary.revision,
            history: &e.start.history,
            bakes,
            rollback_timeout: e.policy.rollback_timeout,
            restart_command: restart,
        },
    );
    Report {
        release: e.key().clone(),
        revision: summary.revision,
        status: e.start.status,
        chart: format!("{}-{}", summary.chart.name, summary.chart.version),
        verdict: v,
        action,
        results,
        started: e.started,
        bake_ends: e.bake_ends,
        evaluated_at: now,
    }
}

/// The Kubernetes checks, or one inconclusive result when the API could not be read.
fn kube_results(
    rev: &Revision<'_>,
    kube: &Result<kube::KubeObservations, String>,
    restart: &str,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    match kube {
        Ok(obs) => {
            results.extend(kchecks::rollout(rev, &obs.workloads));
            results.push(kchecks::pending_pods(rev, &obs.pods));
            results.extend(kchecks::migration(rev, &obs.jobs, restart));
            results.extend(kchecks::hooks(rev));
            results.extend(kchecks::manifest_jobs(rev, &obs.jobs));
        }
        Err(err) => results.push(
            CheckResult::new(
                "kubernetes",
                Outcome::Inconclusive,
                format!("cannot read the release's workloads from the API server: {err}"),
            )
            .on_fail(FailClass::Investigate),
        ),
    }
    results
}

/// The Prometheus checks of revision `i`: judged from this round's answers, or the error.
fn prom_results(
    e: &Evaluation,
    i: usize,
    rev: &Revision<'_>,
    answers: &Answers,
    scrape_interval: Duration,
) -> Vec<(String, Result<CheckResult, ProviderError>)> {
    let mut prom_results = Vec::new();
    let baseline = e.baseline.clone();
    for (j, p) in e.policy.metrics_presence.iter().enumerate() {
        let check = format!("metrics_presence:{}", p.name);
        let now_answer = answer(answers, batch_key(i, &format!("p{j}")));
        let before = baseline
            .as_ref()
            .and_then(|b| b.presence.get(j).cloned())
            .ok_or_else(baseline_missing);
        prom_results.push((
            check,
            now_answer
                .and_then(|n| before.map(|b| (b, n)))
                .map(|(b, n)| pchecks::presence(rev, p, &b, &n, scrape_interval)),
        ));
    }
    if let Some(l) = &e.policy.lag {
        let answered = answer(answers, batch_key(i, "ls")).and_then(|slope_now| {
            let level_now = answer(answers, batch_key(i, "ll"))?;
            let b = baseline.as_ref().ok_or_else(baseline_missing)?;
            Ok(LagAnswers {
                slope_now,
                level_now,
                slope_before: b.lag_slope.clone(),
                level_before: b.lag_level.clone(),
            })
        });
        prom_results.push((
            "lag".to_string(),
            answered.map(|a| pchecks::lag(rev, l, &a)),
        ));
    }
    for (j, d) in e.policy.dependencies.iter().enumerate() {
        let check = format!("dependency:{}", d.name);
        let class = FailClass::FixDependency {
            name: d.name.clone(),
        };
        let r = answer(answers, batch_key(i, &format!("d{j}")))
            .map(|s| pchecks::threshold(&check, d, &s, class));
        prom_results.push((check, r));
    }
    for (j, c) in e.policy.custom.iter().enumerate() {
        let check = format!("custom:{}", c.name);
        let class = match c.action {
            FailAction::Rollback => FailClass::Rollback,
            FailAction::Investigate => FailClass::Investigate,
        };
        let r = answer(answers, batch_key(i, &format!("c{j}")))
            .map(|s| pchecks::threshold(&check, c, &s, class));
        prom_results.push((check, r));
    }
    prom_results
}
