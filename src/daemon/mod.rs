//! `upgrade-guard run`: the long-running daemon. The tracker's release events start
//! evaluations (a newer revision cancels the older one's); rounds re-judge every revision
//! under evaluation at the configured interval (sooner after a provider failure); an
//! evaluation ends with its final verdict once the bake window passed, is recorded in the
//! bake records and stops querying. Everything decided lands in one [`State`], which
//! the HTTP server exposes (`/metrics`, `/api/v1/releases`).
//!
//! This file wires the parts together and runs the loop; the handlers are `handle.rs`
//! (I/O), what they decide is `decide.rs`, `restore.rs` and `tell.rs` (pure).
//!
//! Shutdown: the first signal stops taking events and rounds, answers `/readyz` with 503 and
//! returns once the round in progress ended; a second signal (see `signals.rs`) stops the
//! process at once.

mod answers;
mod auth;
mod controls;
mod decide;
pub mod exposition;
mod handle;
pub mod http;
pub mod metrics;
pub mod notices;
mod process;
mod restore;
pub mod signals;
mod tell;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::evaluation::Evaluator;
use crate::gather::metrics::{DatabaseMetrics, PrometheusMetrics};
use crate::gather::prometheus::{ClientError, Prometheus};
use crate::gather::stores::Stores;
use crate::metrics::registry;
use crate::notify::alertmanager::Alertmanagers;
use crate::notify::alerts::Ledger;
use crate::notify::email::Mailer;
use crate::notify::mail::Mailbook;
use crate::notify::metrics::NotifyMetrics;
use crate::records::bakes::BakeStore;
use crate::records::mailed::MailedStore;
use crate::release::event::ReleaseEvent;
use crate::remediation::Remediator;
use crate::remediation::helm::HelmRunner;
use crate::remediation::leader::{self, Elector};
use crate::remediation::metrics::ActionMetrics;
use crate::state::Shared;
use crate::tracker::metrics::TrackerMetrics;
use crate::tracker::{Tracker, TrackerConfig, client_config};
use decide::Guards;
use handle::Daemon;
use http::{Readiness, Served};
use metrics::DaemonMetrics;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The kube client could not be built.
    #[error("kubeconfig: {0}")]
    Kube(#[source] kube::Error),
    /// `prometheus.url` cannot be used.
    #[error(transparent)]
    Prometheus(#[from] ClientError),
    /// The client to Alertmanager cannot be built (its TLS files).
    #[error("notifications.alertmanager: {0}")]
    Alertmanager(#[source] crate::http_client::HttpClientError),
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
    let http_metrics = metrics::HttpMetrics::register(&mut registry);
    let state = Shared::default();
    registry.register_collector(Box::new(exposition::ReleaseCollector::new(state.clone())));

    let client = kube::Client::try_from(client_config(kube, config.watch.idle_timeout))
        .map_err(DaemonError::Kube)?;
    let prometheus = Prometheus::new(&config.prometheus, prometheus_metrics)?;
    let stores = Stores::start(
        &client,
        &config.watch.namespaces,
        config.watch.watch_timeout,
    );
    let probe_prometheus = prometheus.clone();
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
        &notifications.alertmanager_client,
        notifications.queue_size,
        config.prometheus.timeout,
        notify_metrics.clone(),
    )
    .map_err(DaemonError::Alertmanager)?;
    let mut ledger = Ledger::new(notifications.resend_interval);
    let mailer = notifications.email.clone().map(|email| {
        Mailer::start(
            email,
            100,
            notify_metrics.clone(),
            Some(MailedStore::new(client.clone(), &config.state.namespace)),
        )
    });
    // The operator's templates, read and checked once; the built-in ones otherwise.
    let templates = match notifications
        .email
        .as_ref()
        .and_then(|e| e.templates_dir.as_deref())
    {
        Some(dir) => crate::notify::email::read_templates(dir).unwrap_or_else(|e| {
            warn!("notifications.email.templates_dir: {e}; the built-in templates are used");
            Default::default()
        }),
        None => Default::default(),
    };
    let new_mailbook = || Mailbook::with_templates(&templates).unwrap_or_default();
    let mut mailbook = new_mailbook();
    // Read once: it names this replica in Events and in the alerts' links.
    let host = host_name();
    let kube_events = notifications.kubernetes_events.then(|| {
        crate::notify::kube_events::EventSink::start(
            client.clone(),
            host.clone(),
            notify_metrics.clone(),
        )
    });
    let mut eventbook = crate::notify::events::EventBook::default();
    let webhooks = crate::notify::webhooks::Webhooks::start(
        &notifications.webhooks,
        notifications.queue_size,
        notify_metrics.clone(),
    );
    let mut hookbook = crate::notify::mail::Changebook::default();
    // How often the ledger is asked whether a resend is due.
    let notify_tick =
        (notifications.resend_interval / 4).max(std::time::Duration::from_millis(100));
    let mut next_notify = tokio::time::Instant::now();
    let (ready_tx, ready_rx) = watch::channel(Readiness::Starting(
        "listing Helm release records".to_string(),
    ));
    let probe = tokio::spawn(check_configuration(
        client.clone(),
        config.clone(),
        probe_prometheus,
        crate::gather::postgres::Postgres::new(config.databases.clone(), Some(client.clone())),
        state.clone(),
        ready_rx.clone(),
        daemon_metrics.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let elector = tokio::spawn(elector.run(stop_rx.clone()));
    let mut leading = false;
    let mut telling = false;
    // Every replica serves the action records as the cluster holds them.
    let (records_tx, mut action_records) = mpsc::channel(64);
    let records_watch = tokio::spawn({
        let (client, ns) = (client.clone(), config.state.namespace.clone());
        let timeout =
            u32::try_from(config.watch.watch_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
        async move { crate::records::actions::watch(client, &ns, timeout, records_tx).await }
    });
    // Every replica honours the operator's controls as the cluster holds them.
    let (controls_tx, mut controls) = mpsc::channel(64);
    let controls_watch = tokio::spawn({
        let (client, ns) = (client.clone(), config.state.namespace.clone());
        let timeout =
            u32::try_from(config.watch.watch_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
        async move { crate::records::controls::watch(client, &ns, timeout, controls_tx).await }
    });
    let mailed = MailedStore::new(client.clone(), &config.state.namespace);
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
    // As Prometheus does without --web.external-url: this host's name and the port served.
    let links = tell::links(&config, &format!("http://{host}:{}", bound.port()));
    let server = tokio::spawn(http::serve(
        listener,
        Served {
            registry: Arc::new(registry),
            state: state.clone(),
            ready: ready_rx,
            email_error: mailer.as_ref().map(|m| m.last_error.clone()),
            auth: (config.http.authentication == crate::config::HttpAuthentication::Kubernetes)
                .then(|| {
                    Arc::new(auth::Authenticator::new(
                        client.clone(),
                        config.http.auth_cache,
                    ))
                }),
            answers: Arc::default(),
            cluster: config.cluster.clone(),
            metrics: http_metrics,
            limits: http::Limits {
                max_connections: config.http.max_connections,
                read_timeout: config.http.read_timeout,
            },
        },
        stop_rx,
    ));

    let bake_config = config.clone();
    let mut tracker_config = TrackerConfig::from_settings(
        &config.watch,
        Arc::new(move |key| Some(decide::resume_window(&bake_config.policy_for(key)))),
    );
    // Every release is shown after a restart, not only those still evaluated.
    tracker_config.list_settled = true;
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
        guards: Guards::default(),
        metrics: daemon_metrics.clone(),
        remediator,
        retrying: Default::default(),
        failed_during_bake: Default::default(),
        listed: false,
        applied: Default::default(),
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
        let active = evaluator.busy();
        tokio::select! {
            () = &mut shutdown => break,
            // Enabled until handled, not until listed: the listing may complete while
            // another branch wins this select, and must still be acted on.
            listed_now = async { synced.wait_for(|s| *s).await.is_ok() }, if !records_listed => {
                records_listed = true;
                // The listing's events were all sent before it said so: each release is
                // shown before the daemon says it is ready.
                while let Ok(event) = events.try_recv() {
                    daemon.event(&mut evaluator, event).await;
                }
                if listed_now {
                    daemon.restore().await;
                    daemon.listed = true;
                    daemon.apply_controls(&mut evaluator).await;
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
                Some(event) => {
                    daemon.event(&mut evaluator, event).await;
                    // A new revision may be one an operator accepted already.
                    if daemon.listed {
                        daemon.apply_controls(&mut evaluator).await;
                    }
                }
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
            Some(done) = finished.recv() => daemon.finished(done).await,
            Some((key, records)) = action_records.recv() => daemon.records_changed(key, records),
            Some((key, set)) = controls.recv() => {
                daemon.controls_changed(&mut evaluator, key, set).await;
            }
            () = tokio::time::sleep(leader_tick) => {}
        }
        let now_leading = leadership.is_leader();
        action_metrics.leader.set(i64::from(now_leading));
        if now_leading != leading {
            leading = now_leading;
            if leading && records_listed {
                daemon.resume().await;
            }
        }
        let now_telling = leadership.tells();
        if now_telling && !telling {
            // Telling from now on (leading, or no replica is seen leading): Alertmanager
            // hears everything that fires at once, and what no replica confirmed mailed is
            // mailed.
            ledger = Ledger::new(notifications.resend_interval);
            mailbook = new_mailbook();
            eventbook = crate::notify::events::EventBook::default();
            tell::events_seen(&mut eventbook, &daemon.state_mut(), &config);
            hookbook = crate::notify::mail::Changebook::default();
            tell::hooks_seen(&mut hookbook, &daemon.state_mut(), &config);
            if mailer.is_some() {
                match mailed.load().await {
                    Ok(confirmed) => mailbook.seed(&confirmed),
                    Err(e) => warn!(
                        "the emails confirmed sent cannot be read; what fails now is mailed again: {e}"
                    ),
                }
            }
        }
        telling = now_telling;
        if leading && records_listed && daemon.remediator.resume_due() {
            daemon.resume().await;
        }
        // Records whose write failed, written again (when their pause is over).
        daemon.remediator.flush_records().await;
        {
            let mut state = daemon.state_mut();
            let now = Timestamp::now();
            state.prune(now);
            let order = tell::order(&state, &config, now);
            state.set_order(order);
        }
        if telling && !alertmanagers.is_empty() {
            let wanted = tell::alerts(&daemon.state_mut(), &config, &links);
            if let Some(batch) = ledger.update(wanted, Timestamp::now()) {
                alertmanagers.send(batch);
            }
            DaemonMetrics::set(&daemon_metrics.firing, ledger.firing());
        }
        if let Some(sink) = kube_events.as_ref().filter(|_| telling) {
            for event in tell::events(&mut eventbook, &daemon.state_mut(), &config) {
                sink.send(event);
            }
        }
        if telling && !webhooks.is_empty() {
            for hook in tell::hooks(&mut hookbook, &daemon.state_mut(), &config, &links) {
                webhooks.send(hook);
            }
        }
        if let Some(mailer) = mailer.as_ref().filter(|_| telling) {
            // Only a replica that tells follows the changes: one that starts telling reads
            // what was confirmed mailed instead.
            let mails = tell::mails(&mut mailbook, &daemon.state_mut(), &config, &links);
            for mail in mails {
                match mail {
                    Ok(mail) => {
                        if let Some(e) = &mail.template_error {
                            warn!(release = %mail.release, "the email template does not render, the built-in one was used: {e}");
                        }
                        mailer.send(mail);
                    }
                    Err(e) => warn!("cannot render an email: {e}"),
                }
            }
        }
        DaemonMetrics::set(&daemon_metrics.evaluations_active, evaluator.active().len());
        DaemonMetrics::set(&daemon_metrics.store_objects, stores.len());
        if !active && evaluator.busy() {
            // A new evaluation: its first round now.
            next_round = tokio::time::Instant::now();
        }
    }
    info!("shutting down: no new events or rounds");
    ready_tx.send_replace(Readiness::ShuttingDown);
    tracker.abort();
    records_watch.abort();
    controls_watch.abort();
    probe.abort();
    daemon.remediator.drain().await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = elector.await;
    Ok(())
}

/// Tries every query of the configuration against the live cluster once the daemon is
/// ready (the releases listed), then every `evaluation.config_check_interval`: what cannot work is logged when it
/// starts or stops, and shown (API, `config_problem` metric) until it works.
async fn check_configuration(
    client: kube::Client,
    config: Arc<Config>,
    prometheus: Prometheus,
    postgres: crate::gather::postgres::Postgres,
    state: Shared,
    mut ready: watch::Receiver<Readiness>,
    metrics: DaemonMetrics,
) {
    // The first look once the releases are listed (the state has them).
    if ready
        .wait_for(|r| matches!(r, Readiness::Ready))
        .await
        .is_err()
    {
        return;
    }
    let mut known: std::collections::BTreeSet<(String, String)> = Default::default();
    loop {
        let releases: Vec<crate::release::ReleaseKey> =
            state.read().releases().map(|v| v.release.clone()).collect();
        let started = std::time::Instant::now();
        let problems: Vec<_> =
            crate::probe::run(&config, &releases, &prometheus, &postgres, Some(&client))
                .await
                .into_iter()
                // A monitoring outage is told by its own alerts, not as a configuration fault.
                .filter(|f| !f.ok() && !f.untried)
                .collect();
        metrics.config_checks.inc();
        metrics
            .config_check_duration
            .set(started.elapsed().as_secs_f64());
        let now: std::collections::BTreeSet<(String, String)> = problems
            .iter()
            .map(|f| (f.release.clone(), f.check.clone()))
            .collect();
        for f in problems
            .iter()
            .filter(|f| !known.contains(&(f.release.clone(), f.check.clone())))
        {
            warn!(release = %f.release, check = %f.check, query = %f.tried,
                "the configuration cannot work here: {}", f.problem.as_deref().unwrap_or_default());
        }
        for (release, check) in known.iter().filter(|k| !now.contains(k)) {
            info!(release = %release, check = %check, "the check's query answers again");
        }
        known = now;
        state.write().set_config_problems(problems);
        if config.config_check_interval.is_zero() {
            return;
        }
        tokio::time::sleep(config.config_check_interval).await;
    }
}

/// This host's name (a pod's name in Kubernetes), for links to the API.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
