//! Notification routes (pure): which team hears about which release. Each route matches
//! releases by namespace and name, and gives them their own email recipients and extra
//! Alertmanager labels (a `team` label that Alertmanager's own routing sends on). The first
//! route that matches a release applies; a release no route matches uses
//! `notifications.email.to` and no extra label.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::FieldError;
use crate::release::ReleaseKey;

/// Labels every alert sets itself: a route may not replace them.
const RESERVED: [&str; 7] = [
    "alertname",
    "severity",
    "namespace",
    "release",
    "revision",
    "check",
    "cluster",
];

/// One route as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// `namespaces`.
    pub namespaces: Option<Vec<String>>,
    /// `releases`.
    pub releases: Option<Vec<String>>,
    /// `email_to`.
    pub email_to: Option<Vec<String>>,
    /// `labels`.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Who hears about the releases a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Namespaces matched (any when empty).
    pub namespaces: Vec<String>,
    /// Release names matched (any when empty).
    pub releases: Vec<String>,
    /// Email recipients instead of `notifications.email.to` (none: those; empty: no email).
    pub email_to: Option<Vec<String>>,
    /// Labels added to every alert about these releases.
    pub labels: BTreeMap<String, String>,
}

impl Route {
    /// Whether the route matches `key`.
    pub fn matches(&self, key: &ReleaseKey) -> bool {
        (self.namespaces.is_empty() || self.namespaces.iter().any(|n| *n == *key.namespace))
            && (self.releases.is_empty() || self.releases.iter().any(|r| *r == *key.name))
    }
}

/// The route that applies to `key`: the first that matches.
pub fn route_for<'a>(routes: &'a [Route], key: &ReleaseKey) -> Option<&'a Route> {
    routes.iter().find(|r| r.matches(key))
}

/// Validates `notifications.routes`; `email` says whether email is configured.
pub(super) fn routes(raw: &[RawRoute], email: bool) -> Result<Vec<Route>, FieldError> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| route(&format!("notifications.routes[{i}]"), r, email))
        .collect()
}

fn route(at: &str, raw: &RawRoute, email: bool) -> Result<Route, FieldError> {
    let labels = raw.labels.clone().unwrap_or_default();
    if raw.email_to.is_none() && labels.is_empty() {
        return Err(FieldError::new(
            at.to_string(),
            "says nothing: give email_to, labels or both",
        ));
    }
    for name in labels.keys() {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(FieldError::new(
                format!("{at}.labels.{name}"),
                "is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            ));
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(FieldError::new(
                format!("{at}.labels.{name}"),
                format!(
                    "is set by upgrade-guard on every alert; routes add labels, never replace these: {}",
                    RESERVED.join(", ")
                ),
            ));
        }
    }
    if let Some(to) = &raw.email_to {
        if !email {
            return Err(FieldError::new(
                format!("{at}.email_to"),
                "needs notifications.email (the server the mail goes through)",
            ));
        }
        for (j, a) in to.iter().enumerate() {
            a.parse::<lettre::message::Mailbox>().map_err(|e| {
                FieldError::new(
                    format!("{at}.email_to[{j}]"),
                    format!("{a:?} is not an email address ({e})"),
                )
            })?;
        }
    }
    let names = |field: &str, list: &Option<Vec<String>>| -> Result<Vec<String>, FieldError> {
        let list = list.clone().unwrap_or_default();
        match list.iter().position(String::is_empty) {
            Some(j) => Err(FieldError::new(
                format!("{at}.{field}[{j}]"),
                "must not be empty",
            )),
            None => Ok(list),
        }
    };
    Ok(Route {
        namespaces: names("namespaces", &raw.namespaces)?,
        releases: names("releases", &raw.releases)?,
        email_to: raw.email_to.clone(),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str, email: bool) -> Result<Vec<Route>, FieldError> {
        let raw: Vec<RawRoute> = serde_yaml_ng::from_str(yaml).unwrap();
        routes(&raw, email)
    }

    #[test]
    fn the_first_matching_route_applies() {
        let routes = parse(
            "- namespaces: [gim]\n  releases: [gca]\n  labels: {team: reporting}\n\
             - namespaces: [gim]\n  email_to: [infomart@example.com]\n  labels: {team: infomart}\n\
             - releases: [gsp]\n  email_to: []\n",
            true,
        )
        .unwrap();
        let team = |ns: &str, name: &str| {
            route_for(&routes, &ReleaseKey::new(ns, name)).map(|r| r.labels.get("team").cloned())
        };
        assert_eq!(team("gim", "gca"), Some(Some("reporting".into())));
        assert_eq!(team("gim", "gim"), Some(Some("infomart".into())));
        assert_eq!(team("other", "gsp"), Some(None));
        assert_eq!(team("other", "app"), None);
        let gsp = route_for(&routes, &ReleaseKey::new("x", "gsp")).unwrap();
        assert_eq!(gsp.email_to, Some(vec![]), "no email for it");
    }

    #[test]
    fn a_route_that_cannot_work_is_refused_with_its_place() {
        let cases = [
            (
                "- namespaces: [gim]\n",
                "notifications.routes[0]",
                "says nothing",
            ),
            (
                "- labels: {alertname: x}\n",
                "notifications.routes[0].labels.alertname",
                "never replace",
            ),
            (
                "- labels: {team-name: x}\n",
                "notifications.routes[0].labels.team-name",
                "not a Prometheus label name",
            ),
            (
                "- labels: {team: a}\n- email_to: [not an address]\n",
                "notifications.routes[1].email_to[0]",
                "not an email address",
            ),
            (
                "- releases: ['']\n  labels: {team: a}\n",
                "notifications.routes[0].releases[0]",
                "must not be empty",
            ),
        ];
        for (yaml, path, words) in cases {
            let e = parse(yaml, true).unwrap_err();
            assert_eq!(e.path, path, "{yaml}");
            assert!(e.reason.contains(words), "{yaml}: {}", e.reason);
        }
        let e = parse("- email_to: [a@example.com]\n", false).unwrap_err();
        assert!(
            e.reason.contains("needs notifications.email"),
            "{}",
            e.reason
        );
    }
}
