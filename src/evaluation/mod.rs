//! Evaluation (I/O around the pure checks): every revision under evaluation is re-judged
//! each round. A round gathers Kubernetes state per revision, asks Prometheus one batched
//! query per check type for all revisions together (plus one batched query for the values at
//! the time of each new revision's upgrade), judges with `crate::checks`, and returns one
//! [`Report`] per revision with its verdict and recommended action. A newer revision of a
//! release replaces (cancels) the evaluation of the older one; an uninstalled release is
//! not evaluated.
//!
//! The `sql` checks of all revisions run concurrently with the Prometheus queries, each
//! distinct query once per round, each on a connection of its own (`postgres`).
//!
//! Provider failures (Prometheus, the Kubernetes API or a database) are tolerated the same
//! way: the last judgement from real data is replayed (never as a failure) for fewer than
//! `errors_before_inconclusive` rounds in a row, then the checks are inconclusive.

mod after_bake;
mod judge;
mod queries;
mod revision;
pub mod schedule;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::checks::provider::ProviderError;
use crate::config::{Config, ReleasePolicy};
use crate::gather::prometheus::{self, Prometheus};
use crate::gather::{kube, metrics, postgres, stores};
use crate::release::rollback_target::BakeRecord;
use crate::release::summary::WorkloadKind;
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::verdict::Report;
use revision::{AfterBake, Evaluation, Settings};

pub use revision::Start;

/// SQL checks run at the same time, at most (each holds a database connection).
const SQL_CONCURRENCY: usize = 4;

/// Whether Prometheus answers, and since when again after it failed.
#[derive(Debug, Clone, Copy, Default)]
struct PrometheusHealth {
    failing: bool,
    answering_since: Option<Timestamp>,
}

impl PrometheusHealth {
    fn observe(&mut self, failed: bool, now: Timestamp) {
        if failed {
            self.failing = true;
            self.answering_since = None;
        } else if self.failing {
            self.failing = false;
            self.answering_since = Some(now);
        }
    }
}

/// What one round of the watch after the bake found.
#[derive(Debug, Default)]
pub struct AfterBakeRound {
    /// One report per revision looked at, with the watch's span (since, until).
    pub reports: Vec<(Report, Timestamp, Timestamp)>,
    /// Watches that ended (release, revision).
    pub ended: Vec<(ReleaseKey, u32)>,
}

/// Every revision under evaluation and what is remembered about earlier ones.
pub struct Evaluator {
    source: kube::Source,
    prometheus: Prometheus,
    postgres: postgres::Postgres,
    settings: Settings,
    evaluations: BTreeMap<ReleaseKey, Evaluation>,
    /// Revisions whose bake ended, watched for `after_bake.watch_for`.
    watching: BTreeMap<ReleaseKey, (Evaluation, AfterBake)>,
    bakes: BTreeMap<ReleaseKey, BTreeMap<u32, BakeRecord>>,
    trouble: bool,
    health: PrometheusHealth,
    /// A replay: every round is judged from Prometheus' history at the round's time.
    replaying: Option<Prometheus>,
}

/// Why a replay does not judge the `sql` checks.
pub const SQL_NOT_REPLAYED: &str =
    "not judged: a database's state in the past cannot be queried (sql checks are not replayed)";

impl Evaluator {
    /// An evaluator using `config` for policies and Prometheus settings.
    pub fn new(client: ::kube::Client, config: &Config, prometheus: Prometheus) -> Self {
        Self {
            postgres: postgres::Postgres::new(config.databases.clone(), Some(client.clone())),
            source: kube::Source::Api(client),
            prometheus,
            settings: Settings {
                errors_before_inconclusive: config.prometheus.errors_before_inconclusive,
                scrape_interval: config.prometheus.scrape_interval,
                stuck_pending_after: config.watch.stuck_pending_after,
            },
            evaluations: BTreeMap::new(),
            watching: BTreeMap::new(),
            bakes: BTreeMap::new(),
            trouble: false,
            health: PrometheusHealth::default(),
            replaying: None,
        }
    }

    /// Judges the past instead of the present: each round's Prometheus queries are
    /// evaluated at the round's time, and Kubernetes state is read from the
    /// kube-state-metrics series recorded then (a replay; `sql` checks are not judged).
    pub fn replaying(mut self) -> Self {
        let history = crate::gather::history::KubeHistory::new(
            self.prometheus.clone(),
            self.settings.scrape_interval,
        );
        self.source = kube::Source::History(Box::new(history), self.source.client().clone());
        self.replaying = Some(self.prometheus.clone());
        self
    }

    /// Counts the database checks' queries in `metrics`.
    pub fn with_database_metrics(mut self, metrics: metrics::DatabaseMetrics) -> Self {
        self.postgres = self.postgres.with_metrics(metrics);
        self
    }

    /// Reads Kubernetes state from `stores` (the daemon's watches) instead of per-round
    /// requests.
    pub fn with_stores(mut self, stores: std::sync::Arc<stores::Stores>) -> Self {
        let client = self.source.client().clone();
        self.source = kube::Source::Stores(stores, client);
        self
    }

    /// Starts evaluating a revision with `policy`. Returns the revision whose evaluation it
    /// cancels, if an older one of the same release was under way. A revision that is
    /// `uninstalled` or `uninstalling` ends the release's evaluation instead (and returns the
    /// revision it ended).
    pub fn begin(&mut self, start: Start, policy: ReleasePolicy) -> Option<u32> {
        if matches!(
            start.status,
            ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
        ) {
            return self.end(&start.release);
        }
        let started = start.summary.started_at().unwrap_or(start.status_since);
        let evaluation = Evaluation::new(start, policy, started);
        let key = evaluation.key().clone();
        let new_revision = evaluation.start.summary.revision;
        match self.watching.get(&key) {
            // The same revision again after its bake: it stays watched, not baked again.
            Some((old, _)) if old.start.summary.revision >= new_revision => return None,
            // A newer revision: the older one's watch after its bake is over.
            Some(_) => {
                self.watching.remove(&key);
            }
            None => {}
        }
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

    /// Judges a revision again from scratch (an operator's re-check), its bake window
    /// starting at `from`: whatever was evaluated or watched of the release is replaced.
    /// Returns the revision it replaces.
    pub fn recheck(&mut self, start: Start, policy: ReleasePolicy, from: Timestamp) -> Option<u32> {
        let key = start.release.clone();
        let replaced = self.end(&key);
        self.evaluations
            .insert(key, Evaluation::new(start, policy, from));
        replaced
    }

    /// The revision's status or the release history changed. An uninstall ends the
    /// evaluation.
    pub fn update(
        &mut self,
        release: &ReleaseKey,
        revision: u32,
        status: ReleaseStatus,
        since: Timestamp,
        history: Vec<(u32, ReleaseStatus)>,
    ) {
        if matches!(
            status,
            ReleaseStatus::Uninstalled | ReleaseStatus::Uninstalling
        ) {
            self.end(release);
            return;
        }
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

    /// Stops evaluating a release (uninstalled), and watching it after its bake. Returns the
    /// revision that was evaluated.
    pub fn end(&mut self, release: &ReleaseKey) -> Option<u32> {
        self.watching.remove(release);
        self.evaluations
            .remove(release)
            .map(|e| e.start.summary.revision)
    }

    /// Ends the evaluation of a release whose verdict is final and watches its revision
    /// after the bake, for the policy's `after_bake.watch_for` from the end of the bake.
    /// Returns until when, `None` when the watch is off or already over.
    pub fn watch_after_bake(&mut self, release: &ReleaseKey, now: Timestamp) -> Option<Timestamp> {
        let e = self.evaluations.remove(release)?;
        let policy = e.policy.after_bake;
        if policy.watch_for.is_zero() {
            return None;
        }
        let since = e.bake_ends;
        let until = crate::units::plus(since, policy.watch_for);
        if until <= now {
            return None;
        }
        let watch = AfterBake {
            since,
            until,
            next: now,
            restarts: Default::default(),
            holds: BTreeMap::new(),
        };
        self.watching.insert(release.clone(), (e, watch));
        Some(until)
    }

    /// Whether any revision is under evaluation or watched after its bake (rounds are due).
    pub fn busy(&self) -> bool {
        !self.evaluations.is_empty() || !self.watching.is_empty()
    }

    /// The revisions watched after their bake, and until when.
    pub fn watching(&self) -> Vec<(ReleaseKey, u32, Timestamp)> {
        self.watching
            .iter()
            .map(|(k, (e, w))| (k.clone(), e.start.summary.revision, w.until))
            .collect()
    }

    /// One look at each watched revision whose interval has passed: its pods from the stores
    /// (never a request), its `metrics_presence` series from Prometheus (one batch).
    /// Watches whose time is over end.
    pub async fn after_bake_round(&mut self, now: Timestamp) -> AfterBakeRound {
        let mut round = AfterBakeRound::default();
        self.watching.retain(|k, (e, w)| {
            let going = w.until > now;
            if !going {
                round.ended.push((k.clone(), e.start.summary.revision));
            }
            going
        });
        let due: Vec<ReleaseKey> = self
            .watching
            .iter()
            .filter(|(_, (_, w))| w.next <= now)
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return round;
        }
        let mut items = queries::RoundItems::default();
        for (i, key) in due.iter().enumerate() {
            if let Some((e, _)) = self.watching.get(key) {
                items.add_presence(i, e, self.settings.scrape_interval);
            }
        }
        let answers = if items.presence.is_empty() {
            prometheus::Answers::new()
        } else {
            self.prometheus.batch(&items.presence).await
        };
        let no_sql = BTreeMap::new();
        for (i, key) in due.iter().enumerate() {
            let bakes = self.bakes(key);
            let env = self.env(now, &bakes);
            let Some((e, w)) = self.watching.get_mut(key) else {
                continue;
            };
            let pods = if !self.source.stored(&key.namespace) {
                after_bake::Pods::NotWatched
            } else if let Some(why) = self.source.trouble() {
                after_bake::Pods::Failing(ProviderError::Kubernetes(why))
            } else {
                match kube::gather(&self.source, &e.start.summary, false, now).await {
                    Ok(obs) => after_bake::Pods::Read(obs),
                    Err(err) => {
                        after_bake::Pods::Failing(ProviderError::Kubernetes(err.to_string()))
                    }
                }
            };
            let revision_answers =
                queries::revision_answers(i, e, &answers, &no_sql, self.settings.scrape_interval);
            let report = after_bake::judge(e, w, &env, pods, revision_answers);
            w.next = crate::units::plus(now, e.policy.after_bake.interval);
            round.reports.push((report, w.since, w.until));
        }
        round
    }

    /// The revision under evaluation for each release.
    pub fn active(&self) -> Vec<(ReleaseKey, u32)> {
        self.evaluations
            .iter()
            .map(|(k, e)| (k.clone(), e.start.summary.revision))
            .collect()
    }

    /// Whether the last round had a provider failure (Prometheus or the Kubernetes API):
    /// retry sooner.
    pub fn provider_trouble(&self) -> bool {
        self.trouble
    }

    /// Records the outcome of a revision's bake (used to prefer known-good rollback targets).
    pub fn record_bake(&mut self, release: &ReleaseKey, revision: u32, record: BakeRecord) {
        self.bakes
            .entry(release.clone())
            .or_default()
            .insert(revision, record);
    }

    /// Bake records known for a release.
    pub fn bakes(&self, release: &ReleaseKey) -> BTreeMap<u32, BakeRecord> {
        self.bakes.get(release).cloned().unwrap_or_default()
    }

    /// What a round shares between the revisions it judges.
    fn env<'a>(&self, now: Timestamp, bakes: &'a BTreeMap<u32, BakeRecord>) -> judge::RoundEnv<'a> {
        judge::RoundEnv {
            now,
            answering_since: self.health.answering_since,
            bakes,
            settings: self.settings,
        }
    }

    /// One round: gather, judge, report.
    pub async fn round(&mut self, now: Timestamp) -> Vec<Report> {
        if let Some(base) = &self.replaying {
            self.prometheus = base.at(now);
        }
        let keys: Vec<ReleaseKey> = self.evaluations.keys().cloned().collect();
        let mut kube_obs = BTreeMap::new();
        for key in &keys {
            if let Some(e) = self.evaluations.get(key) {
                let jobs = e
                    .policy
                    .migration
                    .as_ref()
                    .is_some_and(|m| m.job_name_pattern.is_some())
                    || e.start
                        .summary
                        .workloads
                        .iter()
                        .any(|w| w.kind == WorkloadKind::Job);
                // Stale stores are a monitoring error, judged as one (never a failure).
                let result = match self.source.trouble() {
                    Some(why) => Err(ProviderError::Kubernetes(why)),
                    None => kube::observe(&self.source, &e.start.summary, jobs, now).await,
                };
                kube_obs.insert(key.clone(), result);
            }
        }
        let baselines_failed = self.fill_baselines(&keys).await;
        let (answers, sql) = futures::join!(self.batched_queries(&keys), self.sql_queries());
        let prometheus_failed = baselines_failed
            || answers
                .values()
                .any(|a| matches!(a, Err(ProviderError::Unavailable(_))));
        self.health.observe(prometheus_failed, now);
        self.trouble = prometheus_failed
            || answers.values().any(Result::is_err)
            || sql.values().any(Result::is_err)
            || kube_obs.values().any(Result::is_err);
        let mut reports = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(kube) = kube_obs.remove(key) else {
                continue;
            };
            let bakes = self.bakes(key);
            let env = self.env(now, &bakes);
            let Some(e) = self.evaluations.get_mut(key) else {
                continue;
            };
            let revision_answers =
                queries::revision_answers(i, e, &answers, &sql, self.settings.scrape_interval);
            let report = judge::judge(e, &env, kube, revision_answers);
            if let Some(record) = report.bake_record() {
                self.record_bake(key, report.revision, record);
            }
            reports.push(report);
        }
        reports
    }

    /// Values at the time of each new revision's upgrade, in one batched query for all of
    /// them (retried next round until answered). Returns whether Prometheus failed.
    async fn fill_baselines(&mut self, keys: &[ReleaseKey]) -> bool {
        let mut items = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(e) = self.evaluations.get(key).filter(|e| e.baseline.is_none()) {
                items.extend(queries::baseline_items(i, e, self.settings.scrape_interval));
            }
        }
        let answers = if items.is_empty() {
            prometheus::Answers::new()
        } else {
            self.prometheus.batch(&items).await
        };
        let mut failed = false;
        for (i, key) in keys.iter().enumerate() {
            if let Some(e) = self
                .evaluations
                .get_mut(key)
                .filter(|e| e.baseline.is_none())
            {
                match queries::baseline_from(i, e, &answers) {
                    Ok(b) => e.baseline = Some(b),
                    Err(_) => failed = true,
                }
            }
        }
        failed
    }

    /// Every distinct SQL query of the revisions under evaluation, run concurrently (a few
    /// at a time), each once.
    async fn sql_queries(&self) -> BTreeMap<crate::config::SqlSource, postgres::SqlAnswer> {
        use futures::StreamExt;
        let distinct: std::collections::BTreeSet<crate::config::SqlSource> = self
            .evaluations
            .values()
            .flat_map(|e| e.policy.sql_sources())
            .cloned()
            .collect();
        if self.replaying.is_some() {
            let not_replayed = || Err(postgres::SqlError::NoHistory(SQL_NOT_REPLAYED.into()));
            return distinct.into_iter().map(|q| (q, not_replayed())).collect();
        }
        futures::stream::iter(distinct)
            .map(|sql| async move {
                let answer = self.postgres.query(&sql).await;
                (sql, answer)
            })
            .buffer_unordered(SQL_CONCURRENCY)
            .collect()
            .await
    }

    /// One batched query per check type for every revision under evaluation.
    async fn batched_queries(&self, keys: &[ReleaseKey]) -> prometheus::Answers {
        let mut items = queries::RoundItems::default();
        for (i, key) in keys.iter().enumerate() {
            if let Some(e) = self.evaluations.get(key) {
                items.add(i, e, self.settings.scrape_interval);
            }
        }
        let (a, b, c, d) = futures::join!(
            self.prometheus.batch(&items.presence),
            self.prometheus.batch(&items.lag),
            self.prometheus.batch(&items.dependencies),
            self.prometheus.batch(&items.custom),
        );
        a.into_iter().chain(b).chain(c).chain(d).collect()
    }
}
