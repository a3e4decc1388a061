//! Configuration: one YAML file read into raw serde structs (unknown fields refused), then
//! validated into typed values with units. Errors name the field and, where the parser knows
//! it, the line. Without a file the built-in Genesys Info Mart profile (`default.yaml`, the
//! text `upgrade-guard config default` prints) is used.
//!
//! This file holds the validated [`Config`] and what the rest of the crate asks of it (a
//! release's policy, mode, bake window, suite). The types are `policy.rs` (per release) and
//! `settings.rs` (daemon-wide); reading the file is `load.rs`, validating it `resolve.rs`, on `raw.rs` and
//! `fields.rs` (the file as written), `defaults.rs`, `overlay.rs`, `sections.rs`,
//! `database.rs` and `validate.rs`; `error.rs` says what is wrong, field by field;
//! `routes.rs` says which team hears about which release, `webhooks.rs` where else changes
//! are POSTed.

mod database;
pub mod defaults;
mod error;
mod fields;
mod load;
mod overlay;
mod policy;
mod raw;
mod resolve;
pub mod routes;
mod sections;
mod settings;
mod validate;
pub mod webhooks;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::release::ReleaseKey;
use overlay::DefaultHold;
use raw::RawRelease;

pub use database::{DatabaseConfig, PasswordSource, TlsMode};
pub use error::{ConfigError, FieldError};
pub use policy::{
    AfterBakePolicy, AutoPolicy, ExportViewsPolicy, FailAction, LagPolicy, MigrationPolicy, Mode,
    OnNoData, PodPolicy, PodProblem, PresencePolicy, ReleasePolicy, Source, SqlSource,
    ThresholdPolicy, render_query,
};
pub use settings::{
    ActionsConfig, ClientAuthorization, ClientBasicAuth, ClientTls, EmailConfig,
    HttpAuthentication, HttpClientConfig, HttpConfig, LeaderElectionConfig, MIN_PAYLOAD_BYTES,
    NotificationsConfig, PrometheusConfig, SmtpSecurity, StateConfig, Suite, WatchConfig,
};

/// The built-in profile, exactly as printed by `upgrade-guard config default`.
pub const DEFAULT_PROFILE: &str = include_str!("default.yaml");

/// An entry of `releases`: which release it applies to and what it sets.
#[derive(Debug)]
struct Override {
    name: String,
    namespace: Option<String>,
    raw: RawRelease,
}

impl Override {
    fn matches(&self, key: &ReleaseKey) -> bool {
        self.name == *key.name
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == &*key.namespace)
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The cluster's name, on every pushed alert, email and API answer (when set).
    pub cluster: Option<String>,
    /// Prometheus access.
    pub prometheus: PrometheusConfig,
    /// What to watch.
    pub watch: WatchConfig,
    /// Re-judging interval.
    pub evaluation_interval: Duration,
    /// How often the daemon tries every query against the live cluster (`probe`); zero:
    /// only at start-up.
    pub config_check_interval: Duration,
    /// upgrade-guard's own records.
    pub state: StateConfig,
    /// Where alerts go.
    pub notifications: NotificationsConfig,
    /// Automatic actions.
    pub actions: ActionsConfig,
    /// The HTTP server's protection.
    pub http: HttpConfig,
    /// Suites of releases upgraded in order.
    pub suites: Vec<Suite>,
    /// PostgreSQL databases of the `sql` checks, by name.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Settings that are valid but probably not what the operator meant, in words.
    pub warnings: Vec<String>,
    defaults: ReleasePolicy,
    overrides: Vec<Override>,
    /// `for:` of checks that do not set one.
    default_hold: DefaultHold,
}

impl Config {
    /// The suite `key` belongs to, if any.
    pub fn suite_of(&self, key: &ReleaseKey) -> Option<&Suite> {
        self.suites.iter().find(|s| s.step_of(key).is_some())
    }

    /// The bake window of a release (what [`Config::policy_for`] would say, without building
    /// the whole policy).
    pub fn bake_window(&self, key: &ReleaseKey) -> Duration {
        self.overrides
            .iter()
            .filter(|o| o.matches(key))
            .filter_map(|o| o.raw.bake_window)
            .next_back()
            .map_or(self.defaults.bake_window, |d| d.0)
    }

    /// The mode of a release (what [`Config::policy_for`] would say, without building the
    /// whole policy).
    pub fn mode_for(&self, key: &ReleaseKey) -> Mode {
        self.overrides
            .iter()
            .filter(|o| o.matches(key))
            .filter_map(|o| o.raw.mode)
            .next_back()
            .unwrap_or(self.defaults.mode)
    }

    /// The notification route of a release (`notifications.routes`): the first that
    /// matches, none when no route does.
    pub fn route_for(&self, key: &ReleaseKey) -> Option<&routes::Route> {
        routes::route_for(&self.notifications.routes, key)
    }

    /// The policy for a release: the defaults, then every matching entry in file order.
    pub fn policy_for(&self, key: &ReleaseKey) -> ReleasePolicy {
        self.overrides
            .iter()
            .filter(|o| o.matches(key))
            .fold(self.defaults.clone(), |policy, o| {
                overlay::overlay(policy, &o.raw, self.default_hold)
            })
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
