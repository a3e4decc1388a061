//! The daemon-wide sections that are more than defaults (pure): email, suites and automatic
//! actions, each checked field by field.

use std::collections::BTreeSet;
use std::time::Duration;

use super::error::FieldError;
use super::raw;
use super::settings::{
    ActionsConfig, EmailConfig, HttpAuthentication, HttpConfig, LeaderElectionConfig, SmtpSecurity,
    Suite,
};
use super::validate::positive;
use crate::units::human;

pub(super) fn email(raw: &raw::RawEmail) -> Result<EmailConfig, FieldError> {
    const AT: &str = "notifications.email";
    if raw.password.is_some() || raw.username.is_some() {
        return Err(FieldError::new(
            AT.to_string(),
            "credentials never go in the configuration: set UPGRADE_GUARD_SMTP_USERNAME and \
             UPGRADE_GUARD_SMTP_PASSWORD, or username_file / password_file (a mounted Secret)",
        ));
    }
    let smtp_host = raw
        .smtp_host
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| FieldError::new(format!("{AT}.smtp_host"), "required"))?;
    let security = raw.security.ok_or_else(|| {
        FieldError::new(
            format!("{AT}.security"),
            "required (starttls, tls, or none for a local relay)",
        )
    })?;
    let smtp_port = raw.smtp_port.unwrap_or(match security {
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    });
    let address = |field: &str, a: &str| -> Result<(), FieldError> {
        a.parse::<lettre::message::Mailbox>()
            .map(|_| ())
            .map_err(|e| {
                FieldError::new(
                    format!("{AT}.{field}"),
                    format!("{a:?} is not an email address ({e})"),
                )
            })
    };
    let from = raw
        .from
        .clone()
        .ok_or_else(|| FieldError::new(format!("{AT}.from"), "required"))?;
    address("from", &from)?;
    let to = raw.to.clone().unwrap_or_default();
    if to.is_empty() {
        return Err(FieldError::new(
            format!("{AT}.to"),
            "name at least one recipient",
        ));
    }
    for (i, a) in to.iter().enumerate() {
        address(&format!("to[{i}]"), a)?;
    }
    let timeout = raw
        .timeout
        .as_ref()
        .map_or(Duration::from_secs(30), |d| d.0);
    positive(&format!("{AT}.timeout"), timeout)?;
    let give_up_after = raw
        .give_up_after
        .as_ref()
        .map_or(Duration::from_secs(2 * 60 * 60), |d| d.0);
    positive(&format!("{AT}.give_up_after"), give_up_after)?;
    Ok(EmailConfig {
        smtp_host,
        smtp_port,
        security,
        from,
        to,
        username_file: raw.username_file.clone(),
        password_file: raw.password_file.clone(),
        timeout,
        give_up_after,
        templates_dir: raw.templates_dir.clone(),
    })
}

pub(super) fn suites(raw: &[raw::RawSuite]) -> Result<Vec<Suite>, FieldError> {
    let mut names = BTreeSet::new();
    let mut members: std::collections::BTreeMap<crate::release::ReleaseKey, String> =
        Default::default();
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("suites[{i}]");
        if s.name.is_empty() || !names.insert(s.name.clone()) {
            return Err(FieldError::new(
                format!("{at}.name"),
                "needs a name of its own",
            ));
        }
        if s.order.is_empty() || s.order.iter().any(Vec::is_empty) {
            return Err(FieldError::new(
                format!("{at}.order"),
                "list the steps in upgrade order, each with at least one namespace/release",
            ));
        }
        let mut order = Vec::new();
        for (j, step) in s.order.iter().enumerate() {
            let mut keys = Vec::new();
            for entry in step {
                let Some((ns, name)) = entry
                    .split_once('/')
                    .filter(|(n, r)| !n.is_empty() && !r.is_empty())
                else {
                    return Err(FieldError::new(
                        format!("{at}.order[{j}]"),
                        format!("{entry:?} must read namespace/release, like gim/gim"),
                    ));
                };
                let key = crate::release::ReleaseKey::new(ns, name);
                if let Some(other) = members.insert(key.clone(), s.name.clone()) {
                    return Err(FieldError::new(
                        format!("{at}.order[{j}]"),
                        format!(
                            "{entry} is already in suite {other:?}: a release belongs to one suite, once"
                        ),
                    ));
                }
                keys.push(key);
            }
            order.push(keys);
        }
        let cycle = s.cycle.map_or(Duration::from_secs(24 * 3600), |d| d.0);
        positive(&format!("{at}.cycle"), cycle)?;
        out.push(Suite {
            name: s.name.clone(),
            order,
            cycle,
        });
    }
    Ok(out)
}

pub(super) fn http(raw: &raw::RawHttp) -> Result<HttpConfig, FieldError> {
    let auth_cache = raw
        .auth_cache
        .as_ref()
        .map_or(Duration::from_secs(60), |d| d.0);
    let read_timeout = raw
        .read_timeout
        .as_ref()
        .map_or(Duration::from_secs(10), |d| d.0);
    positive("http.read_timeout", read_timeout)?;
    let max_connections = raw.max_connections.unwrap_or(64);
    if max_connections == 0 {
        return Err(FieldError::new(
            "http.max_connections",
            "must be at least 1",
        ));
    }
    Ok(HttpConfig {
        authentication: raw.authentication.unwrap_or(HttpAuthentication::None),
        auth_cache,
        max_connections,
        read_timeout,
    })
}

pub(super) fn actions(raw: &raw::RawActions) -> Result<ActionsConfig, FieldError> {
    let le = &raw.leader_election;
    let dur = |v: &Option<raw::Dur>, d: u64| v.map_or(Duration::from_secs(d), |d| d.0);
    let leader_election = LeaderElectionConfig {
        lease_name: le
            .lease_name
            .clone()
            .unwrap_or_else(|| "upgrade-guard".to_string()),
        lease_duration: dur(&le.lease_duration, 15),
        renew_deadline: dur(&le.renew_deadline, 10),
        retry_period: dur(&le.retry_period, 2),
    };
    const LE: &str = "actions.leader_election";
    if leader_election.lease_name.is_empty() {
        return Err(FieldError::new(
            format!("{LE}.lease_name"),
            "must name a Lease",
        ));
    }
    positive(&format!("{LE}.retry_period"), leader_election.retry_period)?;
    if leader_election.renew_deadline >= leader_election.lease_duration {
        return Err(FieldError::new(
            format!("{LE}.renew_deadline"),
            format!(
                "{} must be shorter than lease_duration ({}): a holder must stop acting before another replica may take the Lease",
                human(leader_election.renew_deadline),
                human(leader_election.lease_duration)
            ),
        ));
    }
    if leader_election.retry_period >= leader_election.renew_deadline {
        return Err(FieldError::new(
            format!("{LE}.retry_period"),
            format!(
                "{} must be shorter than renew_deadline ({}): the Lease must be renewed at least once before the deadline",
                human(leader_election.retry_period),
                human(leader_election.renew_deadline)
            ),
        ));
    }
    let budget_window = dur(&raw.budget_window, 60 * 60);
    positive("actions.budget_window", budget_window)?;
    let retry_holds_for = dur(&raw.retry_holds_for, 15 * 60);
    let settle_after_failed = dur(&raw.settle_after_failed, 60);
    let helm = raw.helm.clone().unwrap_or_else(|| "helm".to_string());
    if helm.is_empty() {
        return Err(FieldError::new("actions.helm", "must name the helm binary"));
    }
    Ok(ActionsConfig {
        dry_run: raw.dry_run.unwrap_or(false),
        budget: raw.budget.unwrap_or(3),
        budget_window,
        retry_holds_for,
        settle_after_failed,
        helm,
        leader_election,
    })
}

/// The authentication of requests to a server (`section`: `prometheus`,
/// `notifications.alertmanager`): one scheme at most, a key with its certificate, header
/// names HTTP accepts and never `Authorization` (that is `authorization:`).
pub(super) fn http_client(
    section: &str,
    authorization: Option<&raw::RawAuthorization>,
    basic_auth: Option<&raw::RawBasicAuth>,
    tls: Option<&raw::RawTlsConfig>,
    headers: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<super::settings::HttpClientConfig, FieldError> {
    use super::settings::{ClientAuthorization, ClientBasicAuth, ClientTls, HttpClientConfig};
    let field = |f: &str| format!("{section}.{f}");
    if authorization.is_some() && basic_auth.is_some() {
        return Err(FieldError::new(
            field("authorization"),
            "authorization and basic_auth are two ways to authenticate: choose one",
        ));
    }
    let authorization = authorization
        .map(|a| {
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".to_string());
            if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(FieldError::new(
                    field("authorization.type"),
                    "must be a scheme such as Bearer",
                ));
            }
            let credentials_file = a.credentials_file.clone().ok_or_else(|| {
                FieldError::new(
                    field("authorization.credentials_file"),
                    "required: the file holding the token (credentials are never written in the configuration)",
                )
            })?;
            Ok(ClientAuthorization {
                kind,
                credentials_file,
            })
        })
        .transpose()?;
    let basic_auth = basic_auth
        .map(|b| {
            let username = b
                .username
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| FieldError::new(field("basic_auth.username"), "required"))?;
            let password_file = b.password_file.clone().ok_or_else(|| {
                FieldError::new(
                    field("basic_auth.password_file"),
                    "required: the file holding the password (never written in the configuration)",
                )
            })?;
            Ok(ClientBasicAuth {
                username,
                password_file,
            })
        })
        .transpose()?;
    let tls = tls.map_or_else(ClientTls::default, |t| ClientTls {
        ca_file: t.ca_file.clone(),
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
    });
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err(FieldError::new(
            field("tls_config"),
            "cert_file and key_file go together (a client certificate and its key)",
        ));
    }
    let headers = headers.cloned().unwrap_or_default();
    for (name, value) in &headers {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(FieldError::new(
                field("headers"),
                format!("{name:?} is not an HTTP header name"),
            ));
        }
        if name.eq_ignore_ascii_case("authorization") {
            return Err(FieldError::new(
                field("headers"),
                "Authorization is set by authorization: or basic_auth: (from a file), not as a header",
            ));
        }
        if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(FieldError::new(
                field("headers"),
                format!("the value of {name} holds a control character"),
            ));
        }
    }
    Ok(HttpClientConfig {
        authorization,
        basic_auth,
        tls,
        headers,
    })
}
