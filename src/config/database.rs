//! `databases:`: how upgrade-guard reaches each PostgreSQL database its `sql` checks query.
//! Connection settings live in the file; the password never does: it is read at each
//! connection from an environment variable, a mounted file or a Kubernetes Secret.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::FieldError;
use super::fields::Dur;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// TLS required; the server's certificate must chain to the trusted CAs and name the
    /// host (libpq's `verify-full`).
    VerifyFull,
    /// Plain TCP: only by explicit choice (the password and the answers travel in clear).
    Disable,
}

/// Where the password is read, at each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable of the upgrade-guard process.
    Env(String),
    /// A file (a mounted Secret); a trailing line end is not part of the password.
    File(PathBuf),
    /// A key of a Kubernetes Secret, read through the API.
    Secret {
        /// Its namespace (default: `state.namespace`).
        namespace: String,
        /// Its name.
        name: String,
        /// The key holding the password.
        key: String,
    },
}

impl PasswordSource {
    /// Where the password comes from, in words (never the password).
    pub fn describe(&self) -> String {
        match self {
            Self::Env(var) => format!("environment variable {var}"),
            Self::File(path) => format!("file {}", path.display()),
            Self::Secret {
                namespace,
                name,
                key,
            } => format!("key {key} of Secret {namespace}/{name}"),
        }
    }
}

/// One PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The name checks refer to it by.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name on the server.
    pub database: String,
    /// User name.
    pub user: String,
    /// Transport security.
    pub tls: TlsMode,
    /// PEM file of the CAs trusted for the server's certificate (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Where the password is read; none for servers that do not ask for one.
    pub password: Option<PasswordSource>,
    /// Deadline of the TCP connection.
    pub connect_timeout: Duration,
    /// `statement_timeout` of the check's transaction.
    pub statement_timeout: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
    tls: Option<TlsMode>,
    ca_file: Option<PathBuf>,
    password_from: Option<RawPasswordFrom>,
    connect_timeout: Option<Dur>,
    statement_timeout: Option<Dur>,
    /// Refused with a message: credentials never live in the configuration.
    password: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPasswordFrom {
    env: Option<String>,
    file: Option<PathBuf>,
    secret: Option<RawSecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    name: String,
    key: String,
    namespace: Option<String>,
}

/// Validates `databases:`; Secrets without a namespace are looked up in `state_namespace`.
pub(super) fn databases(
    raw: &BTreeMap<String, RawDatabase>,
    state_namespace: &str,
) -> Result<BTreeMap<String, DatabaseConfig>, FieldError> {
    raw.iter()
        .map(|(name, r)| Ok((name.clone(), database(name, r, state_namespace)?)))
        .collect()
}

fn database(
    name: &str,
    r: &RawDatabase,
    state_namespace: &str,
) -> Result<DatabaseConfig, FieldError> {
    let at = format!("databases.{name}");
    if r.password.is_some() {
        return Err(FieldError::new(
            format!("{at}.password"),
            "credentials never go in the configuration: use password_from with env (an environment variable), file (a mounted Secret) or secret (name and key of a Kubernetes Secret)",
        ));
    }
    let required = |field: &str, v: &Option<String>| {
        v.clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| FieldError::new(format!("{at}.{field}"), "required"))
    };
    let host = required("host", &r.host)?;
    let database = required("database", &r.database)?;
    let user = required("user", &r.user)?;
    let tls = r.tls.unwrap_or(TlsMode::VerifyFull);
    if tls == TlsMode::Disable && r.ca_file.is_some() {
        return Err(FieldError::new(
            format!("{at}.ca_file"),
            "tls is disable, so no certificate is checked; remove ca_file or use tls: verify-full",
        ));
    }
    let password = r
        .password_from
        .as_ref()
        .map(|p| password_source(&at, p, state_namespace))
        .transpose()?;
    let connect_timeout = r.connect_timeout.map_or(Duration::from_secs(5), |d| d.0);
    let statement_timeout = r.statement_timeout.map_or(Duration::from_secs(10), |d| d.0);
    for (field, d) in [
        ("connect_timeout", connect_timeout),
        ("statement_timeout", statement_timeout),
    ] {
        if d < Duration::from_millis(1) {
            return Err(FieldError::new(
                format!("{at}.{field}"),
                "must be at least 1ms",
            ));
        }
    }
    Ok(DatabaseConfig {
        name: name.to_string(),
        host,
        port: r.port.unwrap_or(5432),
        database,
        user,
        tls,
        ca_file: r.ca_file.clone(),
        password,
        connect_timeout,
        statement_timeout,
    })
}

fn password_source(
    at: &str,
    p: &RawPasswordFrom,
    state_namespace: &str,
) -> Result<PasswordSource, FieldError> {
    let at = format!("{at}.password_from");
    let source = match (&p.env, &p.file, &p.secret) {
        (Some(var), None, None) if !var.is_empty() => PasswordSource::Env(var.clone()),
        (None, Some(path), None) if !path.as_os_str().is_empty() => {
            PasswordSource::File(path.clone())
        }
        (None, None, Some(s)) => {
            if s.name.is_empty() || s.key.is_empty() {
                return Err(FieldError::new(
                    format!("{at}.secret"),
                    "name and key are required",
                ));
            }
            PasswordSource::Secret {
                namespace: s
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| state_namespace.to_string()),
                name: s.name.clone(),
                key: s.key.clone(),
            }
        }
        _ => {
            return Err(FieldError::new(
                at.to_string(),
                "name exactly one of env (a variable name), file (a path) or secret (name and key)",
            ));
        }
    };
    Ok(source)
}
