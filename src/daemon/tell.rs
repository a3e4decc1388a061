//! What the daemon tells (pure): the alerts that should fire, the mails to send and the
//! suites' order warnings, from the state and the configuration. A release in `mode:
//! observe` is exported as metrics only: no alert, no mail, no order warning. A release an
//! operator suspended is told as suspended, its verdicts neither alerted nor mailed.

use jiff::Timestamp;

use crate::config::{Config, Mode};
use crate::notify::alerts::{Alert, desired, notice_alerts, order_alerts, suspended_alerts};
use crate::notify::events::{EventBook, KubeEvent};
use crate::notify::mail::{Changebook, Mail, Mailbook};
use crate::notify::names::Links;
use crate::notify::webhook::Hook;
use crate::release::ReleaseKey;
use crate::state::{Notice, ReleaseView, State};
use crate::suite::{OrderWarning, order_warnings};

/// Whether a release is told about (any mode but `observe`).
pub fn told(config: &Config, key: &ReleaseKey) -> bool {
    config.mode_for(key) != Mode::Observe
}

/// The releases told about.
fn told_views<'a>(
    state: &'a State,
    config: &'a Config,
) -> impl Iterator<Item = &'a ReleaseView> + 'a {
    state.releases().filter(|v| told(config, &v.release))
}

/// The releases whose verdicts are told: those told about that no operator suspended
/// (a suspended one is told as suspended; what was held is told when it ends).
fn verdicts_told<'a>(
    state: &'a State,
    config: &'a Config,
) -> impl Iterator<Item = &'a ReleaseView> + 'a {
    told_views(state, config).filter(|v| v.controls.suspended.is_none())
}

/// The notices to tell.
pub fn notices(state: &State, config: &Config) -> Vec<Notice> {
    state
        .notices()
        .iter()
        .filter(|n| told(config, &n.release))
        .cloned()
        .collect()
}

/// The suites' order warnings at `now`, judged from the releases told about.
pub fn order(state: &State, config: &Config, now: Timestamp) -> Vec<OrderWarning> {
    config
        .suites
        .iter()
        .flat_map(|suite| {
            order_warnings(
                suite,
                |k| {
                    state
                        .get(k)
                        .filter(|v| told(config, &v.release))
                        .map(ReleaseView::member)
                },
                now,
            )
        })
        .collect()
}

/// The links on every alert: the configured ones, and `default_external` (where this
/// process serves its API) when `notifications.external_url` is not set.
pub fn links(config: &Config, default_external: &str) -> Links {
    let n = &config.notifications;
    Links {
        dashboard: n.dashboard_url.clone(),
        runbook: n.runbook_url.clone(),
        external: Some(
            n.external_url
                .clone()
                .unwrap_or_else(|| default_external.trim_end_matches('/').to_string()),
        ),
    }
}

/// Every alert that should fire now: verdicts and automatic actions, notices, order
/// warnings.
pub fn alerts(state: &State, config: &Config, links: &Links) -> Vec<Alert> {
    let mut wanted = desired(verdicts_told(state, config), links);
    wanted.extend(suspended_alerts(told_views(state, config), links));
    wanted.extend(notice_alerts(&notices(state, config), links));
    wanted.extend(order_alerts(state.order(), links));
    wanted
        .into_iter()
        .map(|a| {
            let a = match routed(config, &a.labels) {
                Some(route) => a.with_labels(&route.labels),
                None => a,
            };
            match &config.cluster {
                Some(c) => a.in_cluster(c),
                None => a,
            }
        })
        .collect()
}

/// The route of the release an alert is about (from its `namespace` and `release` labels).
fn routed<'a>(
    config: &'a Config,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<&'a crate::config::routes::Route> {
    let key = ReleaseKey::new(labels.get("namespace")?, labels.get("release")?);
    config.route_for(&key)
}

/// The mails due since the mailbook last looked: new notices and changes of the releases
/// told about.
pub fn mails(
    mailbook: &mut Mailbook,
    state: &State,
    config: &Config,
    links: &Links,
) -> Vec<Result<Mail, minijinja::Error>> {
    let mut mails = mailbook.notices(&notices(state, config), links);
    mails.extend(mailbook.changes(verdicts_told(state, config), links));
    mails
        .into_iter()
        .map(|m| {
            m.map(|mut m| {
                // The release's team, when a route names other recipients.
                m.to = config
                    .route_for(&m.release)
                    .and_then(|r| r.email_to.clone());
                match &config.cluster {
                    Some(c) => m.in_cluster(c),
                    None => m,
                }
            })
        })
        // A route with no recipients: no email about its releases.
        .filter(|m| !matches!(m, Ok(m) if m.to.as_ref().is_some_and(Vec::is_empty)))
        .collect()
}

/// The webhook requests due: one per change of a release whose verdicts are told, per
/// webhook.
pub fn hooks(book: &mut Changebook, state: &State, config: &Config, links: &Links) -> Vec<Hook> {
    let changes = book.changes(verdicts_told(state, config));
    crate::notify::webhook::hooks(
        &changes,
        &config.notifications.webhooks,
        links,
        config.cluster.as_deref(),
    )
}

/// What the releases whose verdicts are told state now, taken as told (a replica that
/// starts telling posts what changes from then on).
pub fn hooks_seen(book: &mut Changebook, state: &State, config: &Config) {
    book.seen(verdicts_told(state, config));
}

/// The Kubernetes Events due since the book last looked, about the releases told about.
pub fn events(book: &mut EventBook, state: &State, config: &Config) -> Vec<KubeEvent> {
    book.new_events(told_views(state, config))
}

/// What the releases told about state now, taken as published (a replica that starts
/// telling publishes what changes from then on, not what another one published).
pub fn events_seen(book: &mut EventBook, state: &State, config: &Config) {
    book.seen(told_views(state, config));
}

#[cfg(test)]
#[path = "tell_tests.rs"]
mod tests;
