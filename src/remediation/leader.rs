//! Leader election (I/O) with a `coordination.k8s.io/v1` Lease in upgrade-guard's namespace,
//! the way client-go's leaderelection does it: the holder renews every `retry_period`; a
//! candidate takes the Lease only once it has seen the same record unchanged for
//! `lease_duration` by its own clock (no trust in other nodes' clocks); every write is a
//! replace with the `resourceVersion` read, so two candidates never both win.
//!
//! Leadership is a deadline, not a flag: [`Leadership::is_leader`] is true only until
//! `renew_deadline` after the start of the last successful renewal, so a holder cut off
//! from the API server stops acting at once, before anyone else may take the Lease
//! (`renew_deadline` < `lease_duration`). Written by hand because the crates for this keep
//! reporting leadership while renewals fail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::api_error::ApiErrorKind;
use crate::config::LeaderElectionConfig;

/// Whether this process leads, shared with the daemon.
#[derive(Clone)]
pub struct Leadership {
    until: Arc<Mutex<Option<Instant>>>,
    /// Until when another replica is known to lead (its Lease record seen renewed).
    others_until: Arc<Mutex<Option<Instant>>>,
    /// Whether the Lease was looked at once (before, nobody is known to lead or not).
    looked: Arc<std::sync::atomic::AtomicBool>,
    identity: Arc<str>,
}

impl Leadership {
    /// Leads now (until the renew deadline of the last renewal).
    pub fn is_leader(&self) -> bool {
        self.until
            .lock()
            .map(|u| u.is_some_and(|u| Instant::now() < u))
            .unwrap_or(false)
    }

    /// Whether another replica is known to lead now: its renewals of the Lease were seen
    /// within the Lease's duration. False when the Lease cannot be read (this replica then
    /// sees no leader, and keeps telling Alertmanager what fires rather than let it
    /// resolve).
    pub fn another_leads(&self) -> bool {
        self.others_until
            .lock()
            .map(|u| u.is_some_and(|u| Instant::now() < u))
            .unwrap_or(false)
    }

    /// Whether this process tells what fires (Alertmanager, email): it leads, or the Lease
    /// was looked at and no other replica is seen leading (a replica cut off from the API
    /// server keeps firing rather than let every alert resolve).
    pub fn tells(&self) -> bool {
        self.is_leader()
            || (self.looked.load(std::sync::atomic::Ordering::SeqCst) && !self.another_leads())
    }

    fn set_others(&self, until: Option<Instant>) {
        if let Ok(mut u) = self.others_until.lock() {
            *u = until;
        }
    }

    /// This process's identity in the Lease and in the action records.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn set(&self, until: Option<Instant>) {
        if let Ok(mut u) = self.until.lock() {
            *u = until;
        }
    }

    /// A leadership decided by the caller through [`Leadership::set_leading`] (a caller
    /// running its own election, tests); it starts not leading.
    pub fn manual(identity: &str) -> Self {
        Self {
            until: Arc::new(Mutex::new(None)),
            others_until: Arc::new(Mutex::new(None)),
            looked: Arc::default(),
            identity: identity.into(),
        }
    }

    /// Leads from now on, or no longer, for a [`Leadership::manual`] one.
    pub fn set_leading(&self, leading: bool) {
        self.set(leading.then(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)));
    }
}

/// This process's identity: `POD_NAME` (set by the chart) or the host name, plus the
/// process id and a random suffix so that a restarted process is never taken for the old one.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "upgrade-guard".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{base}-{}-{nanos:08x}", std::process::id())
}

/// The election loop.
pub struct Elector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    leadership: Leadership,
    /// The record last seen from another holder and since when (local clock).
    observed: Option<(String, Instant)>,
}

impl Elector {
    /// An elector for `identity` on the Lease named in `config`, in `namespace`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        config: LeaderElectionConfig,
        identity: String,
    ) -> (Self, Leadership) {
        let leadership = Leadership {
            until: Arc::new(Mutex::new(None)),
            others_until: Arc::new(Mutex::new(None)),
            looked: Arc::default(),
            identity: identity.into(),
        };
        (
            Self {
                api: Api::namespaced(client, namespace),
                config,
                leadership: leadership.clone(),
                observed: None,
            },
            leadership,
        )
    }

    /// Tries and renews until `stop` turns true, then gives the Lease up (so another
    /// replica takes over at once instead of after `lease_duration`).
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut leading = false;
        loop {
            let started = Instant::now();
            let attempt = tokio::time::timeout(self.config.renew_deadline, self.try_once()).await;
            self.leadership
                .looked
                .store(true, std::sync::atomic::Ordering::SeqCst);
            match attempt {
                Ok(Ok(true)) => {
                    self.leadership
                        .set(Some(started + self.config.renew_deadline));
                    if !leading {
                        info!(identity = %self.leadership.identity(), lease = %self.config.lease_name, "leading: this replica alerts and acts");
                    }
                    leading = true;
                }
                Ok(Ok(false)) => {
                    self.leadership.set(None);
                    if leading {
                        warn!(lease = %self.config.lease_name, "the Lease is held by another replica: no longer leading");
                    }
                    leading = false;
                }
                Ok(Err(e)) => {
                    if leading && !self.leadership.is_leader() {
                        warn!(error = %e, "the Lease could not be renewed before the renew deadline: no longer leading");
                        leading = false;
                    } else {
                        warn!(error = %e, "cannot read or write the leader Lease");
                    }
                }
                Err(_) => {
                    if leading && !self.leadership.is_leader() {
                        warn!("renewing the Lease timed out: no longer leading");
                        leading = false;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(started + self.config.retry_period) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if leading {
            self.leadership.set(None);
            if let Err(e) = self.release().await {
                warn!(error = %e, "could not give the Lease up; another replica takes it once it expires");
            } else {
                info!("gave the leader Lease up");
            }
        }
    }

    fn spec(&self, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.leadership.identity().to_string()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: acquire,
            renew_time: Some(MicroTime(Timestamp::now())),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt: `Ok(true)` when this process holds the Lease afterwards.
    async fn try_once(&mut self) -> Result<bool, kube::Error> {
        let name = self.config.lease_name.clone();
        let pp = PostParams {
            field_manager: Some("upgrade-guard".into()),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(Some(MicroTime(Timestamp::now())), 0)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(_) => Ok(true),
                Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let me = self.leadership.identity().to_string();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if holder == me {
            self.spec(spec.acquire_time.clone(), transitions)
        } else {
            // Another holder (or none): free once its record stayed the same for its
            // lease duration, by our clock.
            let fingerprint = format!(
                "{holder}|{:?}|{:?}",
                spec.renew_time.as_ref().map(|t| t.0),
                lease.metadata.resource_version
            );
            let since = match &self.observed {
                Some((f, at)) if *f == fingerprint => *at,
                _ => {
                    let now = Instant::now();
                    self.observed = Some((fingerprint, now));
                    now
                }
            };
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            if !holder.is_empty() && since.elapsed() < duration {
                // Another replica leads for as long as its last renewal seen lasts.
                self.leadership.set_others(Some(since + duration));
                return Ok(false);
            }
            self.spec(Some(MicroTime(Timestamp::now())), transitions + 1)
        };
        lease.spec = Some(new_spec);
        match self.api.replace(&name, &pp, &lease).await {
            Ok(_) => {
                self.leadership.set_others(None);
                Ok(true)
            }
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.leadership.identity()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}
