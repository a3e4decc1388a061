//! Daemon-wide settings (pure data): Prometheus, what to watch, upgrade-guard's own records,
//! notifications, suites and automatic actions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::release::ReleaseKey;
use crate::release::labels::Storage;

/// Prometheus access.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL of the HTTP API.
    pub url: String,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Retry delay after a failed query.
    pub retry_interval: Duration,
    /// Failed queries in a row before a check reports an error.
    pub errors_before_inconclusive: u32,
    /// Scrape interval of the judged metrics.
    pub scrape_interval: Duration,
    /// How requests authenticate.
    pub client: HttpClientConfig,
}

/// How upgrade-guard authenticates to a server it calls (Prometheus, Alertmanager), in the
/// words of Prometheus' own `http_config`. Credentials come from files, read again at each
/// request (a rotated token is used at once); the TLS files are read at start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpClientConfig {
    /// `Authorization: <kind> <the file's content>` (kind `Bearer` by default).
    pub authorization: Option<ClientAuthorization>,
    /// Basic authentication with the password read from a file.
    pub basic_auth: Option<ClientBasicAuth>,
    /// The CA that signed the server's certificate (else the system's), a client certificate.
    pub tls: ClientTls,
    /// More headers on every request (a tenant for Mimir, Cortex or Thanos).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// `authorization:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientAuthorization {
    /// The scheme (`Bearer`).
    pub kind: String,
    /// The file holding the credentials.
    pub credentials_file: std::path::PathBuf,
}

/// `basic_auth:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientBasicAuth {
    /// The user name.
    pub username: String,
    /// The file holding the password.
    pub password_file: std::path::PathBuf,
}

/// `tls_config:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientTls {
    /// PEM CA certificates trusted for the server (in addition to the system's).
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate, with `key_file`.
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
}

/// What to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Namespaces; empty means all.
    pub namespaces: Vec<String>,
    /// Helm storage drivers whose records are watched.
    pub storage: Vec<Storage>,
    /// Pending revisions older than this are reported stuck.
    pub stuck_pending_after: Duration,
    /// Largest decompressed release payload accepted.
    pub max_payload_bytes: usize,
    /// The API server ends each watch after this long (it is then resumed, not relisted).
    pub watch_timeout: Duration,
    /// A request with no byte received for this long fails (dead connection).
    pub idle_timeout: Duration,
    /// Deadline of one read of a revision's record.
    pub fetch_timeout: Duration,
}

/// Smallest accepted `watch.max_payload_bytes`.
pub const MIN_PAYLOAD_BYTES: usize = 1024;

impl WatchConfig {
    /// What is wrong with these settings, as (field, reason); the same rules apply to the
    /// file and to command-line overrides.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let zero = |d: Duration| d.is_zero();
        if zero(self.stuck_pending_after) {
            return Some(("stuck_pending_after", "must be greater than 0".into()));
        }
        if self.max_payload_bytes < MIN_PAYLOAD_BYTES {
            return Some((
                "max_payload_bytes",
                format!("must be at least {MIN_PAYLOAD_BYTES}"),
            ));
        }
        if self.storage.is_empty() {
            return Some(("storage", "name at least one of secret, configmap".into()));
        }
        if self.watch_timeout < Duration::from_secs(1) {
            return Some(("watch_timeout", "must be at least 1s".into()));
        }
        if self.idle_timeout <= self.watch_timeout {
            return Some((
                "idle_timeout",
                format!(
                    "must be longer than watch_timeout ({}), or quiet healthy watches would be cut",
                    crate::units::human(self.watch_timeout)
                ),
            ));
        }
        if zero(self.fetch_timeout) {
            return Some(("fetch_timeout", "must be greater than 0".into()));
        }
        None
    }
}

/// Where upgrade-guard keeps its own records (bake results) in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// Namespace of upgrade-guard's ConfigMaps (never Helm's Secrets).
    pub namespace: String,
}

/// Who may read `/metrics` and `/api/v1/releases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAuthentication {
    /// Anyone who can reach the port (restrict it with a NetworkPolicy).
    None,
    /// A bearer token the API server authenticates (TokenReview) for a user allowed to
    /// `get` the path (SubjectAccessReview on the non-resource URL), as kube-rbac-proxy
    /// checks it.
    Kubernetes,
}

/// The HTTP server's protection.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Who may read `/metrics` and `/api/v1/releases` (`/livez` and `/readyz` stay open).
    pub authentication: HttpAuthentication,
    /// How long the API server's answer about a token and a path is reused.
    pub auth_cache: Duration,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// A client must send its request within this, and a connection lasts at most ten
    /// times this: a slow client cannot hold a socket.
    pub read_timeout: Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// STARTTLS, required: a server that does not offer it gets no mail.
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// Plain text: only for a relay on the same host or network, by explicit choice.
    None,
}

/// Email notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// SMTP server.
    pub smtp_host: String,
    /// SMTP port (default: 587 for starttls, 465 for tls, 25 for none).
    pub smtp_port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// `From:` address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// File holding the SMTP user name (a mounted Secret); else `UPGRADE_GUARD_SMTP_USERNAME`.
    pub username_file: Option<std::path::PathBuf>,
    /// File holding the SMTP password; else `UPGRADE_GUARD_SMTP_PASSWORD`.
    pub password_file: Option<std::path::PathBuf>,
    /// Deadline of one delivery attempt.
    pub timeout: Duration,
    /// A message the server cannot be reached for is retried this long, then given up
    /// (counted `dropped`).
    pub give_up_after: Duration,
    /// A directory whose `email.txt` and `email.html` replace the built-in templates.
    pub templates_dir: Option<std::path::PathBuf>,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationsConfig {
    /// Base URLs of every Alertmanager (each one is posted to; not a load balancer).
    pub alertmanager_urls: Vec<String>,
    /// Firing alerts are sent again this often (`endsAt` = now + 4 × this).
    pub resend_interval: Duration,
    /// Batches kept per Alertmanager while it cannot be reached (the oldest is dropped).
    pub queue_size: usize,
    /// How requests to Alertmanager authenticate.
    pub alertmanager_client: HttpClientConfig,
    /// Link to a dashboard in each alert, with `{{namespace}}` and `{{release}}`.
    pub dashboard_url: Option<String>,
    /// The page whose sections are the alerts (`runbook_url` of each alert); none when
    /// set to "".
    pub runbook_url: Option<String>,
    /// Where people reach this daemon's API, for the `generatorURL` of each alert; none:
    /// `http://<hostname>:<port>`, as Prometheus does.
    pub external_url: Option<String>,
    /// Publish Kubernetes Events about the releases (needs `create` and `patch` on
    /// `events.k8s.io` Events in the watched namespaces).
    pub kubernetes_events: bool,
    /// Email, when configured.
    pub email: Option<EmailConfig>,
    /// A revision `inconclusive` for longer than this is alerted and mailed (warning).
    pub inconclusive_after: Duration,
    /// Per release or namespace: other email recipients, extra alert labels.
    pub routes: Vec<super::routes::Route>,
    /// Where each change worth telling is POSTed besides email.
    pub webhooks: Vec<super::webhooks::Webhook>,
}

/// Leader election among replicas (a Lease in `state.namespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// How long a holder's claim lasts without renewal.
    pub lease_duration: Duration,
    /// A holder that could not renew for this long stops acting (shorter than the duration).
    pub renew_deadline: Duration,
    /// How often the Lease is tried and renewed.
    pub retry_period: Duration,
}

/// Releases upgraded together, in a prescribed order (the Genesys Info Mart suite: GIM,
/// then GSP, then GCA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// Its name (`preflight --suite`).
    pub name: String,
    /// Steps in upgrade order; the releases of one step may go in any order.
    pub order: Vec<Vec<ReleaseKey>>,
    /// Upgrades within this long of each other belong to one upgrade cycle.
    pub cycle: Duration,
}

impl Suite {
    /// The step of `key` in this suite, if it belongs to it.
    pub fn step_of(&self, key: &ReleaseKey) -> Option<usize> {
        self.order.iter().position(|step| step.contains(key))
    }

    /// Every release of the suite, in order.
    pub fn releases(&self) -> impl Iterator<Item = &ReleaseKey> {
        self.order.iter().flatten()
    }
}

/// How automatic actions run, for every release in `mode: auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsConfig {
    /// Log and report what would run; run nothing.
    pub dry_run: bool,
    /// Automatic actions at most, across all releases, within `budget_window`.
    pub budget: u32,
    /// The window of `budget`.
    pub budget_window: Duration,
    /// A failure still held for a passing reason (not the leader, a source failing, the
    /// history unreadable, a Helm operation under way) when the bake ends goes on being
    /// judged, and its action decided again, for this long after the bake.
    pub retry_holds_for: Duration,
    /// No automatic action sooner than this after Helm marked the revision failed: helm
    /// itself (`--atomic`) or a controller may be rolling it back.
    pub settle_after_failed: Duration,
    /// The helm binary.
    pub helm: String,
    /// Leader election.
    pub leader_election: LeaderElectionConfig,
}
