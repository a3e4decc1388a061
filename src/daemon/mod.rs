//! `upgrade-guard run`: the long-running daemon. The tracker's release events start
//! evaluations (a newer revision cancels the older one's); rounds re-judge every revision
//! under evaluation at the configured interval (sooner after a provider failure); an
//! evaluation ends with its final verdict once the bake window passed, is recorded in the
//! bake records and stops querying. Everything decided lands in one [`State`], which
//! the HTTP server exposes (`/metrics`, `/api/v1/releases`).
//!
//! Shutdown: the first signal stops taking events and rounds, answers `/readyz` with 503 and
//! returns once the round in progress ended; a second signal exits at once.

pub mod exposition;
pub mod http;
pub mod metrics;
pub mod notices;
mod restore;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::evaluation::metrics::{DatabaseMetrics, PrometheusMetrics};
use crate::evaluation::prometheus::{ClientError, Prometheus};
use crate::evaluation::stores::Stores;
use crate::evaluation::{Evaluator, Start};
use crate::metrics::registry;
use crate::notify::alertmanager::Alertmanagers;
use crate::notify::alerts::{Ledger, desired, notice_alerts, order_alerts};
use crate::notify::email::Mailer;
use crate::notify::mail::Mailbook;
use crate::notify::metrics::NotifyMetrics;
use crate::records::bakes::BakeStore;
use crate::release::ReleaseKey;
use crate::release::event::{EventName, ReleaseEvent, ReleaseEventKind};
use crate::release::record::{RowDetail, rollbacks_of};
use crate::release::rollback_target::BakeRecord;
use crate::remediation::helm::HelmRunner;
use crate::remediation::leader::{self, Elector};
use crate::remediation::metrics::ActionMetrics;
use crate::remediation::{Finished, Remediator};
use crate::state::{self, ReleaseView, State};
use crate::suite::order_warnings;
use crate::tracker::metrics::TrackerMetrics;
use crate::tracker::read::{read_history, read_statuses};
use crate::tracker::{Tracker, TrackerConfig, client_config};
use crate::verdict::{ActionContext, RecommendedAction, Report, Verdict, guard, recommend};
use http::{Readiness, Served};
use metrics::DaemonMetrics;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The kube client could not be built.
    #[error("kubeconfig: {0}")]
    Kube(String),
    /// `prometheus.url` cannot be used.
    #[error(transparent)]
    Prometheus(#[from] ClientError),
    /// The HTTP address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Daemon settings that are not in the configuration file.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Arguments given to every `helm` run before the subcommand (`--kubeconfig`,
    /// `--kube-context`), so helm reaches the cluster the daemon watches.
    pub helm_args: Vec<String>,
    /// `--dry-run`: automatic actions are reported, never run (also `actions.dry_run`).
    pub dry_run: bool,
    /// Identity in the leader Lease and the action records (default: [`leader::identity`]).
    pub identity: Option<String>,
}

impl DaemonOptions {
    /// Listening on `listen`, everything else by default.
    pub fn listen(listen: SocketAddr) -> Self {
        Self {
            listen,
            helm_args: Vec::new(),
            dry_run: false,
            identity: None,
        }
    }
}

/// Called once the HTTP server is bound (tests learn the port).
pub type OnListening = Box<dyn FnOnce(SocketAddr) + Send>;

/// Runs the daemon until `shutdown` resolves (then drains); `second` resolving afterwards
/// aborts the drain.
pub async fn run(
    kube: kube::Config,
    config: Arc<Config>,
    options: DaemonOptions,
    shutdown: impl Future<Output = ()>,
    on_listening: Option<OnListening>,
) -> Result<(), DaemonError> {
    let mut registry = registry();
    let tracker_metrics = TrackerMetrics::register(&mut registry);
    let prometheus_metrics = PrometheusMetrics::register(&mut registry);
    let database_metrics = DatabaseMetrics::register(&mut registry, config.databases.keys());
    let notify_metrics = NotifyMetrics::register(&mut registry);
    let action_metrics = ActionMetrics::register(&mut registry);
    let daemon_metrics = DaemonMetrics::register(&mut registry);
    let state = Arc::new(RwLock::new(State::default()));
    registry.register_collector(Box::new(exposition::ReleaseCollector::new(state.clone())));

    let client = kube::Client::try_from(client_config(kube, config.watch.idle_timeout))
        .map_err(|e| DaemonError::Kube(e.to_string()))?;
    let prometheus = Prometheus::new(&config.prometheus, prometheus_metrics)?;
    let stores = Stores::start(
        &client,
        &config.watch.namespaces,
        config.watch.watch_timeout,
    );
    let mut evaluator = Evaluator::new(client.clone(), &config, prometheus)
        .with_stores(stores.clone())
        .with_database_metrics(database_metrics);
    let store = BakeStore::new(client.clone(), &config.state.namespace);
    let (elector, leadership) = Elector::new(
        client.clone(),
        &config.state.namespace,
        config.actions.leader_election.clone(),
        options.identity.clone().unwrap_or_else(leader::identity),
    );
    let mut actions_config = config.actions.clone();
    actions_config.dry_run |= options.dry_run;
    let (remediator, mut finished) = Remediator::new(
        client.clone(),
        &config.state.namespace,
        HelmRunner {
            program: config.actions.helm.clone(),
            global_args: options.helm_args.clone(),
        },
        actions_config,
        leadership.clone(),
        action_metrics.clone(),
    );

    let notifications = &config.notifications;
    let alertmanagers = Alertmanagers::start(
        &notifications.alertmanager_urls,
        notifications.queue_size,
        config.prometheus.timeout,
        notify_metrics.clone(),
    );
    let mut ledger = Ledger::new(notifications.resend_interval);
    let mailer = notifications
        .email
        .clone()
        .map(|email| Mailer::start(email, 100, notify_metrics.clone()));
    let mut mailbook = Mailbook::default();
    // How often the ledger is asked whether a resend is due.
    let notify_tick =
        (notifications.resend_interval / 4).max(std::time::Duration::from_millis(100));
    let mut next_notify = tokio::time::Instant::now();
    let (ready_tx, ready_rx) = watch::channel(Readiness::Starting(
        "listing Helm release records".to_string(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let elector = tokio::spawn(elector.run(stop_rx.clone()));
    let mut leading = false;
    let leader_tick = config.actions.leader_election.retry_period;
    let listener = http::bind(options.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            address: options.listen,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(options.listen);
    info!(address = %bound, "serving /metrics, /livez, /readyz, /api/v1/releases");
    if let Some(f) = on_listening {
        f(bound);
    }
    let server = tokio::spawn(http::serve(
        listener,
        Served {
            registry: Arc::new(registry),
            state: state.clone(),
            ready: ready_rx,
            email_error: mailer.as_ref().map(|m| m.last_error.clone()),
        },
        stop_rx,
    ));

    let bake_config = config.clone();
    let tracker_config = TrackerConfig::from_settings(
        &config.watch,
        Arc::new(move |key| Some(bake_config.bake_window(key))),
    );
    let (events_tx, mut events) = mpsc::channel::<ReleaseEvent>(256);
    let (synced_tx, mut synced) = watch::channel(false);
    let tracker = tokio::spawn(
        Tracker::new(client.clone(), tracker_config, tracker_metrics).run(events_tx, synced_tx),
    );

    let mut daemon = Daemon {
        client,
        config: config.clone(),
        state,
        store,
        rollbacks: BTreeMap::new(),
        guarded: BTreeMap::new(),
        rounds: daemon_metrics.rounds.clone(),
        remediator,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let mut stores_ready = std::pin::pin!({
        let stores = stores.clone();
        async move { stores.ready().await }
    });
    let mut stores_listed = false;
    let mut records_listed = false;
    let mut next_round = tokio::time::Instant::now();
    loop {
        let active = !evaluator.active().is_empty();
        tokio::select! {
            () = &mut shutdown => break,
            // Enabled until handled, not until listed: the listing may complete while
            // another branch wins this select, and must still be acted on.
            listed_now = async { synced.wait_for(|s| *s).await.is_ok() }, if !records_listed => {
                records_listed = true;
                if listed_now {
                    daemon.restore().await;
                    if leading {
                        // What a previous process left unfinished, shown with the restored views.
                        daemon.resume().await;
                    }
                }
                if listed_now && stores_listed {
                    info!("release records and workloads listed: ready");
                    ready_tx.send_replace(Readiness::Ready);
                } else if listed_now {
                    ready_tx.send_replace(Readiness::Starting(
                        "listing workloads, pods and Jobs".to_string(),
                    ));
                }
            }
            () = &mut stores_ready, if !stores_listed => {
                stores_listed = true;
                if records_listed {
                    info!("release records and workloads listed: ready");
                    ready_tx.send_replace(Readiness::Ready);
                }
            }
            event = events.recv() => match event {
                Some(event) => daemon.event(&mut evaluator, event).await,
                None => {
                    warn!("the release tracker stopped");
                    break;
                }
            },
            // No round before the stores are listed: an empty store would read as
            // missing workloads.
            () = tokio::time::sleep_until(next_round), if active && stores_listed => {
                daemon.round(&mut evaluator).await;
                let pause = if evaluator.provider_trouble() {
                    config.prometheus.retry_interval.min(config.evaluation_interval)
                } else {
                    config.evaluation_interval
                };
                next_round = tokio::time::Instant::now() + pause;
            }
            () = tokio::time::sleep_until(next_notify), if !alertmanagers.is_empty() => {
                next_notify = tokio::time::Instant::now() + notify_tick;
            }
            Some(done) = finished.recv() => daemon.finished(done),
            () = tokio::time::sleep(leader_tick) => {}
        }
        let now_leading = leadership.is_leader();
        action_metrics.leader.set(i64::from(now_leading));
        if now_leading != leading {
            leading = now_leading;
            if leading {
                // Alertmanager hears everything that fires from the new leader at once.
                ledger = Ledger::new(notifications.resend_interval);
                if records_listed {
                    daemon.resume().await;
                }
            }
        }
        if leading && records_listed && daemon.remediator.resume_due() {
            daemon.resume().await;
        }
        // `mode: observe` releases are exported as metrics only: no alert, no email.
        let told = |v: &&ReleaseView| config.mode_for(&v.release) != crate::config::Mode::Observe;
        {
            let mut state = daemon.state();
            let now = Timestamp::now();
            state.prune(now);
            let mut order = Vec::new();
            for suite in &config.suites {
                order.extend(order_warnings(
                    suite,
                    |k| state.get(k).filter(|v| told(v)).map(ReleaseView::member),
                    now,
                ));
            }
            state.set_order(order);
        }
        if leading && !alertmanagers.is_empty() {
            let wanted = {
                let state = daemon.state();
                let dashboard = notifications.dashboard_url.as_deref();
                let mut wanted = desired(state.releases().filter(told), dashboard);
                let notices = told_notices(&state, &config);
                wanted.extend(notice_alerts(&notices, dashboard));
                wanted.extend(order_alerts(state.order(), dashboard));
                wanted
            };
            if let Some(batch) = ledger.update(wanted, Timestamp::now()) {
                alertmanagers.send(batch);
            }
            DaemonMetrics::set(&daemon_metrics.firing, ledger.firing());
        }
        if let Some(mailer) = &mailer {
            let mails = {
                let state = daemon.state();
                let notices = told_notices(&state, &config);
                let mut mails = mailbook.notices(&notices, notifications.dashboard_url.as_deref());
                mails.extend(mailbook.changes(
                    state.releases().filter(told),
                    notifications.dashboard_url.as_deref(),
                ));
                mails
            };
            // Every replica follows the changes; only the leader tells them.
            for mail in mails.into_iter().filter(|_| leading) {
                match mail {
                    Ok(mail) => mailer.send(mail),
                    Err(e) => warn!("cannot render an email: {e}"),
                }
            }
        }
        DaemonMetrics::set(&daemon_metrics.evaluations_active, evaluator.active().len());
        DaemonMetrics::set(&daemon_metrics.store_objects, stores.len());
        if !active && !evaluator.active().is_empty() {
            // A new evaluation: its first round now.
            next_round = tokio::time::Instant::now();
        }
    }
    info!("shutting down: no new events or rounds");
    ready_tx.send_replace(Readiness::ShuttingDown);
    tracker.abort();
    daemon.remediator.drain().await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = elector.await;
    Ok(())
}

struct Daemon {
    client: kube::Client,
    config: Arc<Config>,
    state: Arc<RwLock<State>>,
    store: BakeStore,
    /// Per release, rollback revisions seen and their targets.
    rollbacks: BTreeMap<ReleaseKey, BTreeMap<u32, u32>>,
    /// Per release, the last action proposed for a revision and what it became once guarded
    /// against the history: the history is read again only when the proposal changes, not
    /// every round (a new revision arrives as an event and replaces the evaluation anyway).
    guarded: BTreeMap<ReleaseKey, (u32, RecommendedAction, RecommendedAction)>,
    /// Rounds run.
    rounds: prometheus_client::metrics::counter::Counter,
    /// Automatic actions.
    remediator: Remediator,
}

impl Daemon {
    fn state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn event(&mut self, evaluator: &mut Evaluator, event: ReleaseEvent) {
        let key = event.release.clone();
        if let ReleaseEventKind::RolledBack { to, target } = event.kind {
            self.rollbacks
                .entry(key.clone())
                .or_default()
                .insert(to, target);
            self.remediator.rolled_back(&key, to, target);
        }
        let evaluate = {
            let mut state = self.state();
            let evaluate = state.event(&event);
            state.set_mode(&key, self.config.mode_for(&key));
            evaluate
        };
        if let ReleaseEventKind::Uninstalled { .. } = event.kind {
            if let Some(revision) = evaluator.end(&key) {
                info!(release = %key, revision, "uninstalled: evaluation ended");
            }
            let policy = self.config.policy_for(&key);
            let notice = notices::uninstalled(
                &self.client,
                &key,
                event.revision,
                &policy,
                Timestamp::now(),
            )
            .await;
            info!(release = %key, "{}", notice.words);
            self.state().notice(notice);
            self.rollbacks.remove(&key);
            self.guarded.remove(&key);
            self.remediator.forget(&key);
            return;
        }
        if self.config.policy_for(&key).mode == crate::config::Mode::Auto {
            // The records say whether this revision is a rollback upgrade-guard made.
            self.remediator.load(&key).await;
            let automation = self.remediator.automation(&key, event.revision);
            self.state().automate(&key, event.revision, automation);
        }
        let Some(summary) = event.summary.clone().filter(|_| evaluate) else {
            return;
        };
        let history = match read_statuses(self.client.clone(), &key.namespace, &key.name).await {
            Ok(h) => h,
            Err(e) => {
                warn!(release = %key, error = %e,
                    "cannot read the release history; judging with this revision alone");
                vec![(event.revision, event.status)]
            }
        };
        match self.store.load(&key).await {
            Ok(records) => {
                for (revision, entry) in records {
                    evaluator.record_bake(&key, revision, entry.verdict);
                }
            }
            Err(e) => warn!(release = %key, "bake records not available: {e}"),
        }
        let start = Start {
            release: key.clone(),
            status: event.status,
            status_since: summary.last_deployed.unwrap_or_else(Timestamp::now),
            history,
            rollbacks: self.rollbacks.get(&key).cloned().unwrap_or_default(),
            storage: event.storage,
            summary,
        };
        let cancelled = evaluator.begin(start, self.config.policy_for(&key));
        info!(release = %key, revision = event.revision, event = %event.kind.name(),
            resumed = event.resumed, cancelled = ?cancelled, "evaluating");
    }

    /// An automatic action finished: its record is shown with the release.
    fn finished(&mut self, done: Finished) {
        self.remediator.finished(&done);
        let key = done.0;
        let revision = self
            .state
            .read()
            .ok()
            .and_then(|s| s.get(&key).map(|v| v.revision));
        if let Some(revision) = revision {
            let automation = self.remediator.automation(&key, revision);
            self.state().automate(&key, revision, automation);
        }
    }

    /// This replica became the leader: actions left unfinished by another process are
    /// resolved (never run again).
    async fn resume(&mut self) {
        let config = self.config.clone();
        self.remediator
            .resume(|key| config.policy_for(key).rollback_timeout)
            .await;
        let views: Vec<(ReleaseKey, u32)> = self
            .state
            .read()
            .map(|s| {
                s.releases()
                    .map(|v| (v.release.clone(), v.revision))
                    .collect()
            })
            .unwrap_or_default();
        for (key, revision) in views {
            if config.policy_for(&key).mode == crate::config::Mode::Auto {
                let automation = self.remediator.automation(&key, revision);
                self.state().automate(&key, revision, automation);
            }
        }
    }

    async fn round(&mut self, evaluator: &mut Evaluator) {
        let reports = evaluator.round(Timestamp::now()).await;
        self.rounds.inc();
        for mut report in reports {
            if report.action != RecommendedAction::None {
                let cached = self
                    .guarded
                    .get(&report.release)
                    .filter(|(r, proposed, _)| *r == report.revision && *proposed == report.action)
                    .map(|(_, _, decided)| decided.clone());
                let decided = match cached {
                    Some(decided) => decided,
                    None => {
                        let decided = self.guarded(&report).await;
                        self.guarded.insert(
                            report.release.clone(),
                            (report.revision, report.action.clone(), decided.clone()),
                        );
                        decided
                    }
                };
                report.action = decided;
            }
            let done = report.is_final();
            let previous = self
                .state
                .read()
                .ok()
                .and_then(|s| s.get(&report.release).and_then(|v| v.judgement.clone()))
                .map(|j| j.verdict);
            if previous != Some(report.verdict) {
                info!(release = %report.release, revision = report.revision,
                    verdict = report.verdict.as_str(), "verdict");
            }
            self.state().judged(&report, done);
            let policy = self.config.policy_for(&report.release);
            if done
                && policy.export_views.enabled
                && matches!(report.verdict, Verdict::Healthy | Verdict::Degraded)
                && self
                    .state
                    .read()
                    .ok()
                    .and_then(|s| {
                        s.get(&report.release)
                            .map(|v| v.event == EventName::Upgraded)
                    })
                    .unwrap_or(false)
                && let Some(notice) = notices::export_views(
                    &self.client,
                    &report.release,
                    report.revision,
                    &policy,
                    Timestamp::now(),
                )
                .await
            {
                info!(release = %report.release, revision = report.revision, "{}", notice.words);
                self.state().notice(notice);
            }
            if policy.mode == crate::config::Mode::Auto {
                self.remediator.verify(&report, done).await;
                let storage = self
                    .state
                    .read()
                    .ok()
                    .and_then(|s| s.get(&report.release).map(|v| v.storage))
                    .unwrap_or(crate::release::labels::Storage::Secret);
                self.remediator.decide(&report, &policy, storage).await;
                let automation = self.remediator.automation(&report.release, report.revision);
                self.state()
                    .automate(&report.release, report.revision, automation);
            }
            if done {
                self.record(&report).await;
                evaluator.end(&report.release);
                info!(release = %report.release, revision = report.revision,
                    verdict = report.verdict.as_str(), "evaluation ended with its final verdict");
            }
        }
    }

    /// After a restart: a release whose latest revision ended its bake `failed` (and that
    /// nothing newer replaced) is served and alerted again from its bake record, so a
    /// restart never resolves a failure.
    async fn restore(&mut self) {
        let all = match self.store.all().await {
            Ok(all) => all,
            Err(e) => {
                warn!(
                    "bake records not available; failures judged before the restart are not alerted again: {e}"
                );
                return;
            }
        };
        for (key, records) in all {
            let Some((&revision, entry)) = records.iter().next_back() else {
                continue;
            };
            if entry.verdict != BakeRecord::Failed {
                continue;
            }
            if self.state().get(&key).is_some() {
                continue;
            }
            let rows = match read_history(self.client.clone(), &key.namespace, &key.name).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(release = %key, error = %e, "cannot read the history of a recorded failure");
                    continue;
                }
            };
            let Some(row) = rows.last().filter(|r| r.revision == revision) else {
                continue;
            };
            let RowDetail::Decoded(summary) = &row.detail else {
                continue;
            };
            let history: Vec<_> = rows.iter().map(|r| (r.revision, r.status)).collect();
            let rollbacks = rollbacks_of(&rows);
            let results = restore::recorded_failure(entry);
            let bakes: BTreeMap<u32, BakeRecord> =
                records.iter().map(|(r, e)| (*r, e.verdict)).collect();
            let policy = self.config.policy_for(&key);
            let action = recommend(
                Verdict::Failed,
                &results,
                &ActionContext {
                    release: &key,
                    revision,
                    history: &history,
                    rollbacks: &rollbacks,
                    bakes: &bakes,
                    rollback_timeout: policy.rollback_timeout,
                    storage: row.storage,
                    restart_command: String::new(),
                },
            );
            let action = guard(action, &history, revision);
            let view = ReleaseView {
                release: key.clone(),
                storage: row.storage,
                revision,
                status: row.status,
                event: EventName::Restored,
                chart: Some(state::ChartView {
                    name: summary.chart.name.clone(),
                    version: summary.chart.version.clone(),
                    app_version: summary.chart.app_version.clone(),
                }),
                started: summary.last_deployed,
                judgement: Some(state::Judgement {
                    verdict: Verdict::Failed,
                    action,
                    results,
                    notes: vec!["restored from the bake record after a restart".into()],
                    bake_ends: entry.at,
                    evaluated_at: entry.at,
                    is_final: true,
                }),
                problem: None,
                mode: Some(self.config.mode_for(&key)),
                automation: None,
            };
            if self.state().restore(view) {
                info!(release = %key, revision, "failure recorded before the restart: served and alerted again");
            }
        }
    }

    /// The action, held when the history as re-read now says the revision is no longer
    /// current (or the history cannot be read).
    async fn guarded(&self, report: &Report) -> RecommendedAction {
        let key = &report.release;
        match read_statuses(self.client.clone(), &key.namespace, &key.name).await {
            Ok(history) => guard(report.action.clone(), &history, report.revision),
            Err(e) => RecommendedAction::Hold {
                reason: format!(
                    "cannot re-read the release history before recommending an action: {e}"
                ),
            },
        }
    }

    async fn record(&self, report: &Report) {
        if let Err(e) = self.store.record_final(report).await {
            warn!(release = %report.release, revision = report.revision,
                "the final verdict was not recorded: {e}");
        }
    }
}

/// The notices to tell: none about a release in `mode: observe` (metrics only).
fn told_notices(state: &State, config: &Config) -> Vec<state::Notice> {
    state
        .notices()
        .iter()
        .filter(|n| config.mode_for(&n.release) != crate::config::Mode::Observe)
        .cloned()
        .collect()
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
pub async fn signals() {
    wait_signal().await;
    info!("signal received: draining (a second signal exits at once)");
    tokio::spawn(async {
        wait_signal().await;
        warn!("second signal: exiting now");
        std::process::exit(143);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
