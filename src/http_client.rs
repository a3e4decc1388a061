//! HTTP clients to the servers upgrade-guard calls (Prometheus, Alertmanager), as their
//! `http_config` says (I/O): the CA and client certificate read once, when the client is
//! built; the bearer token or basic-auth password read again at each request, so a rotated
//! file is used at once; extra headers on every request. Every error names the file.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::config::HttpClientConfig;

/// Why a client or a request's headers could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// A file named by the configuration could not be read.
    #[error("cannot read {what} {path}: {source}")]
    File {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but does not hold what it should.
    #[error("{what} {path} is not usable: {why}")]
    Content {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, HttpClientError> {
    std::fs::read(path).map_err(|source| HttpClientError::File {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn unusable(what: &'static str, path: &Path, why: impl ToString) -> HttpClientError {
    HttpClientError::Content {
        what,
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// A client for `config` whose requests time out after `timeout` (connecting: after at most
/// 5 s). The system's CAs are trusted, and `tls_config.ca_file`'s too.
pub fn build(
    config: &HttpClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)));
    if let Some(ca) = &config.tls.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read("the CA file", ca)?)
            .map_err(|e| unusable("the CA file", ca, e))?;
        if certs.is_empty() {
            return Err(unusable("the CA file", ca, "it holds no PEM certificate"));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        let mut pem = read("the client certificate", cert)?;
        pem.push(b'\n');
        pem.extend(read("the client key", key)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| unusable("the client certificate and key", cert, e))?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(HttpClientError::Build)
}

/// The headers of one request, the credential files read now.
pub fn headers(config: &HttpClientConfig) -> Result<HeaderMap, HttpClientError> {
    let mut map = HeaderMap::new();
    for (name, value) in &config.headers {
        // Names and values were checked with the configuration.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(n, v);
        }
    }
    let credentials = if let Some(a) = &config.authorization {
        let what = "the credentials file";
        let token = read(what, &a.credentials_file)?;
        let token = String::from_utf8(token).map_err(|e| unusable(what, &a.credentials_file, e))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(unusable(what, &a.credentials_file, "it is empty"));
        }
        Some((format!("{} {token}", a.kind), what, &a.credentials_file))
    } else if let Some(b) = &config.basic_auth {
        let what = "the password file";
        let password = read(what, &b.password_file)?;
        let password =
            String::from_utf8(password).map_err(|e| unusable(what, &b.password_file, e))?;
        // One trailing newline is the file's, not the password's.
        let password = password.strip_suffix('\n').unwrap_or(&password);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", b.username));
        Some((format!("Basic {encoded}"), what, &b.password_file))
    } else {
        None
    };
    if let Some((value, what, path)) = credentials {
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| unusable(what, path, "it holds characters a header cannot carry"))?;
        value.set_sensitive(true);
        map.insert(AUTHORIZATION, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuthorization, ClientBasicAuth};

    #[test]
    fn a_rotated_token_is_sent_at_the_next_request_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "first\n").unwrap();
        let config = HttpClientConfig {
            authorization: Some(ClientAuthorization {
                kind: "Bearer".into(),
                credentials_file: token.clone(),
            }),
            headers: [("X-Scope-OrgID".to_string(), "tenant-a".to_string())].into(),
            ..Default::default()
        };
        let h = headers(&config).unwrap();
        assert_eq!(h[AUTHORIZATION], "Bearer first");
        assert!(h[AUTHORIZATION].is_sensitive());
        assert_eq!(h["x-scope-orgid"], "tenant-a");
        std::fs::write(&token, "second").unwrap();
        assert_eq!(headers(&config).unwrap()[AUTHORIZATION], "Bearer second");
        std::fs::remove_file(&token).unwrap();
        let e = headers(&config).unwrap_err().to_string();
        assert!(e.starts_with("cannot read the credentials file "), "{e}");
        assert!(e.contains("token"), "{e}");
        std::fs::write(&token, "  \n").unwrap();
        assert!(
            headers(&config)
                .unwrap_err()
                .to_string()
                .contains("it is empty")
        );
    }

    #[test]
    fn basic_auth_reads_its_password_file_without_the_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").unwrap();
        let config = HttpClientConfig {
            basic_auth: Some(ClientBasicAuth {
                username: "ops".into(),
                password_file: password,
            }),
            ..Default::default()
        };
        // base64("ops:s3cret")
        assert_eq!(
            headers(&config).unwrap()[AUTHORIZATION],
            "Basic b3BzOnMzY3JldA=="
        );
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut config = HttpClientConfig::default();
        config.tls.ca_file = Some(ca);
        let e = build(&config, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the CA file") && e.contains("ca.pem"), "{e}");
        assert!(build(&HttpClientConfig::default(), Duration::from_secs(1)).is_ok());
    }
}
