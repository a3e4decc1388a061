//! PostgreSQL access (I/O) for the `sql` checks: a connection per check, TLS through rustls
//! (aws-lc-rs, `verify-full` unless the configuration says `disable`), the password read at
//! each connection, and nothing but the configured query, run through the extended protocol
//! (one statement) inside a read-only transaction with a `statement_timeout`, then rolled
//! back. Only startup parameters every pooler accepts are sent.
//!
//! Errors are sorted for the checks: [`SqlError::Unreachable`] (no connection could be made:
//! refused, timed out, no such host, or the server is shutting down, starting up or full),
//! [`SqlError::Unavailable`] (connected but could not query: TLS, authentication, missing
//! database, timeout) and [`SqlError::Query`] (the query or its answer is wrong). None of
//! them is a failure of the judged release; only a dependency probe reports "unreachable" as
//! a finding (`crate::checks::sql`).

mod password;
mod value;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::metrics::{DatabaseMetrics, DatabaseOutcome};
use crate::checks::provider::ProviderError;
use crate::config::{DatabaseConfig, SqlSource, TlsMode};

/// Why a check's query gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// No connection could be made.
    #[error("PostgreSQL unreachable: {0}")]
    Unreachable(String),
    /// Connected (or could have), but the query could not run.
    #[error("{0}")]
    Unavailable(String),
    /// The database refused the query, or its answer is not one number.
    #[error("{0}")]
    Query(String),
    /// A replay: a database's state in the past cannot be queried.
    #[error("{0}")]
    NoHistory(String),
}

impl SqlError {
    /// The error as the checks' provider tolerance sees it.
    pub fn provider_error(&self) -> ProviderError {
        match self {
            Self::Unreachable(_) | Self::Unavailable(_) => {
                ProviderError::Database(self.to_string())
            }
            Self::Query(_) => ProviderError::DatabaseQuery(self.to_string()),
            Self::NoHistory(_) => ProviderError::NoHistory(self.to_string()),
        }
    }
}

/// The answer of one check's query: its single value, `None` for no row or NULL.
pub type SqlAnswer = Result<Option<f64>, SqlError>;

/// The configured databases.
#[derive(Clone)]
pub struct Postgres {
    databases: Arc<BTreeMap<String, DatabaseConfig>>,
    client: Option<kube::Client>,
    metrics: Option<DatabaseMetrics>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("databases", &self.databases.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// SQLSTATEs of a server that does not take connections now: shutting down
/// (`57P01`, `57P02`), starting up or in recovery (`57P03`), too many connections (`53300`),
/// and the connection exceptions (class `08`).
fn refuses_connections(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
}

/// SQLSTATE classes of errors caused by the query itself: syntax and access rules (`42`),
/// data exceptions (`22`), a write in a read-only transaction (`25006`), feature not
/// supported (`0A`), cardinality (`21`).
fn query_at_fault(code: &str) -> bool {
    ["42", "22", "0A", "21"].iter().any(|c| code.starts_with(c)) || code == "25006"
}

/// The words of a driver error: the server's message with its SQLSTATE, or the chain of
/// causes.
fn words(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(hint) = db.hint() {
            s.push_str(&format!("; hint: {hint}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    s
}

/// The TLS verification failed somewhere in the chain of causes.
fn is_tls(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    e.to_string().contains("TLS")
}

/// The system's trusted CAs, loaded once.
fn system_roots() -> &'static Result<Arc<rustls::RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(loaded.certs);
        if roots.is_empty() {
            Err("no trusted CA certificates found on the system: set ca_file".into())
        } else {
            Ok(Arc::new(roots))
        }
    })
}

/// The rustls connector of `db`: its `ca_file` (read now, so a renewed CA is used), else
/// the system's CAs; aws-lc-rs, TLS 1.2 and 1.3.
fn tls_connector(db: &DatabaseConfig) -> Result<MakeRustlsConnect, SqlError> {
    let unavailable = |why: String| SqlError::Unavailable(format!("{}: {why}", target(db)));
    let roots = match &db.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| unavailable(format!("cannot read ca_file {}: {e}", path.display())))?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(unavailable(format!(
                    "ca_file {} holds no usable CA certificate",
                    path.display()
                )));
            }
            Arc::new(roots)
        }
        None => system_roots().clone().map_err(unavailable)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| unavailable(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `database infomart (gim on db.example:5432)`.
fn target(db: &DatabaseConfig) -> String {
    format!(
        "database {} ({} on {}:{})",
        db.name, db.database, db.host, db.port
    )
}

impl Postgres {
    /// The databases of the configuration; `client` reads passwords kept in Secrets.
    pub fn new(databases: BTreeMap<String, DatabaseConfig>, client: Option<kube::Client>) -> Self {
        Self {
            databases: Arc::new(databases),
            client,
            metrics: None,
        }
    }

    /// Counts every query in `metrics`.
    pub fn with_metrics(mut self, metrics: DatabaseMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs one check's query; the whole of it (connection included) is bounded by the
    /// database's `connect_timeout` plus twice its `statement_timeout`.
    pub async fn query(&self, sql: &SqlSource) -> SqlAnswer {
        let Some(db) = self.databases.get(&sql.database) else {
            return Err(SqlError::Query(format!(
                "no database {:?} is configured",
                sql.database
            )));
        };
        let limit = db.connect_timeout + db.statement_timeout * 2;
        let started = std::time::Instant::now();
        let answer = match tokio::time::timeout(limit, self.run(db, &sql.query)).await {
            Ok(answer) => answer,
            Err(_) => Err(SqlError::Unavailable(format!(
                "{}: no answer within {}",
                target(db),
                crate::units::human(limit)
            ))),
        };
        if let Some(m) = &self.metrics {
            let outcome = match &answer {
                Ok(_) => DatabaseOutcome::Success,
                Err(SqlError::Unreachable(_)) => DatabaseOutcome::Unreachable,
                Err(SqlError::Unavailable(_) | SqlError::NoHistory(_)) => DatabaseOutcome::Error,
                Err(SqlError::Query(_)) => DatabaseOutcome::BadQuery,
            };
            m.query(&db.name, outcome);
        }
        tracing::debug!(
            database = %db.name,
            ok = answer.is_ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sql check"
        );
        answer
    }

    async fn run(&self, db: &DatabaseConfig, query: &str) -> SqlAnswer {
        let at = target(db);
        let mut config = tokio_postgres::Config::new();
        config
            .user(&db.user)
            .dbname(&db.database)
            .application_name("upgrade-guard");
        if let Some(source) = &db.password {
            let p = password::read(source, self.client.as_ref())
                .await
                .map_err(|e| SqlError::Unavailable(format!("{at}: {e}")))?;
            config.password(p.expose());
        }
        let connect = TcpStream::connect((db.host.as_str(), db.port));
        let stream = match tokio::time::timeout(db.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(SqlError::Unreachable(format!("{at}: {e}"))),
            Err(_) => {
                return Err(SqlError::Unreachable(format!(
                    "{at}: no connection within {}",
                    crate::units::human(db.connect_timeout)
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        match db.tls {
            TlsMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                session(&config, stream, NoTls, db, query).await
            }
            TlsMode::VerifyFull => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let mut make = tls_connector(db)?;
                let tls = <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::make_tls_connect(
                    &mut make, &db.host,
                )
                .map_err(|e| SqlError::Unavailable(format!("{at}: {e}")))?;
                session(&config, stream, tls, db, query).await
            }
        }
    }
}

/// Starts the session on `stream` and runs the query while the connection is driven.
async fn session<T>(
    config: &tokio_postgres::Config,
    stream: TcpStream,
    tls: T,
    db: &DatabaseConfig,
    query: &str,
) -> SqlAnswer
where
    T: TlsConnect<TcpStream>,
    T::Stream: Send + 'static,
{
    let at = target(db);
    let (mut client, connection) = config.connect_raw(stream, tls).await.map_err(|e| {
        let why = words(&e);
        match e.as_db_error().map(|d| d.code().code()) {
            Some(code) if refuses_connections(code) => {
                SqlError::Unreachable(format!("{at}: the server refuses connections: {why}"))
            }
            Some("28P01" | "28000") => SqlError::Unavailable(format!(
                "{at}: authentication failed for user {}: {why}",
                db.user
            )),
            _ if is_tls(&e) => {
                SqlError::Unavailable(format!(
                    "{at}: TLS (verify-full) failed: {why} (is ca_file the CA that signed the server's certificate, and does the certificate name the host?)"
                ))
            }
            _ => SqlError::Unavailable(format!("{at}: {why}")),
        }
    })?;
    let work = ask(&mut client, query, db.statement_timeout);
    tokio::pin!(connection);
    let answer = tokio::select! {
        answer = work => answer,
        ended = &mut connection => Err(match ended {
            Ok(()) => ("the server closed the connection".to_string(), None),
            Err(e) => failed(e),
        }),
    };
    answer.map_err(|(why, code)| match code.as_deref() {
        Some(c) if query_at_fault(c) => SqlError::Query(format!("{at} refused the query: {why}")),
        Some("57014") => SqlError::Unavailable(format!(
            "{at}: the query ran longer than statement_timeout ({}): {why}",
            crate::units::human(db.statement_timeout)
        )),
        _ if why.starts_with("the query returned") => SqlError::Query(format!("{at}: {why}")),
        _ => SqlError::Unavailable(format!("{at}: {why}")),
    })
}

/// A driver error as (words, SQLSTATE).
fn failed(e: tokio_postgres::Error) -> (String, Option<String>) {
    (
        words(&e),
        e.as_db_error().map(|d| d.code().code().to_string()),
    )
}

/// Runs `query` alone in a read-only transaction with a statement timeout, reads at most two
/// rows, and rolls back.
async fn ask(
    client: &mut tokio_postgres::Client,
    query: &str,
    statement_timeout: Duration,
) -> Result<Option<f64>, (String, Option<String>)> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(failed)?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        statement_timeout.as_millis().max(1)
    ))
    .await
    .map_err(failed)?;
    let stream = tx
        .query_raw(query, std::iter::empty::<i32>())
        .await
        .map_err(failed)?;
    let rows: Vec<tokio_postgres::Row> = stream.take(2).try_collect().await.map_err(failed)?;
    let value = value::single(&rows).map_err(|why| (why, None))?;
    tx.rollback().await.map_err(failed)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_sorted_by_who_is_at_fault() {
        for code in ["57P01", "57P03", "53300", "08006", "08001"] {
            assert!(refuses_connections(code), "{code}");
        }
        for code in ["28P01", "3D000", "42601", "25006"] {
            assert!(!refuses_connections(code), "{code}");
        }
        for code in [
            "42601", "42P01", "42501", "25006", "22012", "0A000", "21000",
        ] {
            assert!(query_at_fault(code), "{code}");
        }
        for code in ["57014", "53300", "08006", "40001"] {
            assert!(!query_at_fault(code), "{code}");
        }
    }

    #[test]
    fn only_a_query_error_is_a_configuration_error() {
        let e = SqlError::Unreachable("database infomart (gim on db:5432): refused".into());
        assert_eq!(
            e.provider_error(),
            ProviderError::Database(
                "PostgreSQL unreachable: database infomart (gim on db:5432): refused".into()
            )
        );
        assert!(matches!(
            SqlError::Query("x".into()).provider_error(),
            ProviderError::DatabaseQuery(_)
        ));
        assert!(matches!(
            SqlError::Unavailable("x".into()).provider_error(),
            ProviderError::Database(_)
        ));
    }
}
