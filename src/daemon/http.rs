//! The daemon's HTTP server (hyper, HTTP/1.1): `/metrics` (OpenMetrics text from the
//! registry when the scraper accepts it, as Prometheus does; the classic text format
//! otherwise, for `promtool check metrics` and older tools; per-release series produced at
//! scrape time), `/livez` (the process serves),
//! `/readyz` (the release watch and the stores synced, and not shutting down),
//! `/api/v1/releases` (JSON of every release, its latest revision and judgement).
//!
//! Hardened for a shared cluster: at most `http.max_connections` connections are served at
//! once (more wait in the listen queue), a client must send its request within
//! `http.read_timeout` and a connection lasts ten times that (then it is closed after the
//! answer in flight, which gets `Connection: close`), the answers that cost
//! work are built one at a time per kind off the runtime's threads and shared by the requests
//! waiting for them (see [`super::answers`]: a flood of reads never stalls the main loop),
//! and with `http.authentication: kubernetes` `/metrics` and `/api/v1/releases` need a
//! bearer token allowed by the API server (see [`super::auth`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::answers::{Answer, Answers, Costly, TEXT};
use crate::state::{ReleaseView, Shared};

/// OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format's content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classic text format of an OpenMetrics exposition: counter families are named with
/// their `_total` suffix, `# UNIT` and `# EOF` are dropped. (prometheus-client writes
/// OpenMetrics only.)
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// What the server serves from.
#[derive(Clone)]
pub struct Served {
    /// The metrics registry (own metrics and the per-release collector).
    pub registry: Arc<Registry>,
    /// The daemon's state.
    pub state: Shared,
    /// Ready: watches synced and not shutting down.
    pub ready: watch::Receiver<Readiness>,
    /// The last email delivery error, when email is configured.
    pub email_error: Option<crate::notify::email::LastError>,
    /// Checks bearer tokens, with `http.authentication: kubernetes`.
    pub auth: Option<Arc<super::auth::Authenticator>>,
    /// Connections at once and how long a client may take.
    pub limits: Limits,
    /// The costly answers, built one at a time and shared.
    pub answers: Arc<Answers>,
    /// The cluster's name, in the API's answer.
    pub cluster: Option<String>,
    /// Counts the costly answers built and shared.
    pub metrics: super::metrics::HttpMetrics,
}

/// Connections at once and how long a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The request must arrive within this; a connection lasts at most ten times this.
    pub read_timeout: std::time::Duration,
}

/// The paths that need a token when authentication is on.
const PROTECTED: [&str; 2] = ["/metrics", "/api/v1/releases"];

/// Why the daemon is or is not ready, in words for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Still listing releases or filling the stores.
    Starting(String),
    /// Serving.
    Ready,
    /// Draining after a shutdown signal.
    ShuttingDown,
}

#[derive(Serialize)]
struct ReleasesBody<'a> {
    /// The cluster's name, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    releases: Vec<&'a ReleaseView>,
    notices: &'a [crate::state::Notice],
    suite_order: &'a [crate::suite::OrderWarning],
    /// Checks whose query cannot work, as last tried against the live cluster.
    config_problems: &'a [crate::probe::plan::Finding],
    notifications: NotificationsBody,
}

#[derive(Serialize)]
struct NotificationsBody {
    /// The last email delivery error (absent when email works or is not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    email_error: Option<String>,
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// Answers one request; `accept` is its `Accept` header.
pub fn handle(
    served: &Served,
    method: &Method,
    path: &str,
    accept: Option<&str>,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
    }
    match path {
        "/livez" => respond(StatusCode::OK, TEXT, "ok\n"),
        // What runs, for `upgrade-guard version --url` (as public as Kubernetes' /version).
        "/api/v1/version" => match serde_json::to_vec(&crate::metrics::BUILD) {
            Ok(json) => respond(StatusCode::OK, "application/json", json),
            Err(e) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("cannot encode the version: {e}\n"),
            ),
        },
        "/readyz" => match &*served.ready.borrow() {
            Readiness::Ready => respond(StatusCode::OK, TEXT, "ready\n"),
            Readiness::Starting(why) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {why}\n"),
            ),
            Readiness::ShuttingDown => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "not ready: shutting down\n",
            ),
        },
        "/metrics" => build(
            served,
            Costly::Metrics {
                openmetrics: openmetrics(accept),
            },
            Vec::new(),
        )
        .response(),
        "/api/v1/releases" => build(served, Costly::Releases, Vec::new()).response(),
        _ => respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /metrics, /livez, /readyz, /api/v1/releases, /api/v1/version\n",
        ),
    }
}

/// Whether a scraper's `Accept` header asks for OpenMetrics.
fn openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// Builds a costly answer (every metric, or every release) from the state as it is now,
/// into `buffer` (empty, sized after the last answer: a large body is never copied while
/// it grows).
fn build(served: &Served, kind: Costly, buffer: Vec<u8>) -> Answer {
    let answer = |status, content_type, body: Vec<u8>| Answer {
        status,
        content_type,
        body: Bytes::from(body),
    };
    match kind {
        Costly::Metrics { openmetrics } => {
            // upgrade-guard's own metrics, then the standard process metrics (one `# EOF`).
            // A little more than last time: the answer grows with the releases.
            let mut text = String::from_utf8(buffer).unwrap_or_default();
            let encoded = prometheus_client::encoding::text::encode(&mut text, &served.registry)
                .and_then(|()| {
                    let own = text.strip_suffix("# EOF\n").unwrap_or(&text).len();
                    text.truncate(own);
                    prometheus_client::encoding::text::encode(
                        &mut text,
                        &super::process::registry(),
                    )
                });
            match encoded {
                Ok(()) if openmetrics => answer(StatusCode::OK, OPENMETRICS, text.into()),
                Ok(()) => answer(StatusCode::OK, PROMETHEUS_TEXT, classic_text(&text).into()),
                Err(e) => answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    format!("cannot encode the metrics: {e}\n").into(),
                ),
            }
        }
        Costly::Releases => releases(served, &Filter::default(), buffer),
    }
}

/// Which releases an `/api/v1/releases` request asks for: `?namespace=NS&release=NAME`
/// (either or both; the link on each alert names both), or every one.
#[derive(Debug, Default, PartialEq, Eq)]
struct Filter {
    namespace: Option<String>,
    release: Option<String>,
}

impl Filter {
    /// From a query string; other parameters are ignored.
    fn parse(query: Option<&str>) -> Self {
        let mut f = Self::default();
        for (k, v) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            match k {
                "namespace" => f.namespace = Some(v.to_string()),
                "release" => f.release = Some(v.to_string()),
                _ => {}
            }
        }
        f
    }

    fn admits(&self, key: &crate::release::ReleaseKey) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| **n == *key.namespace)
            && self.release.as_ref().is_none_or(|r| **r == *key.name)
    }
}

/// Every release the filter admits, with its notices and order warnings.
fn releases(served: &Served, filter: &Filter, buffer: Vec<u8>) -> Answer {
    let answer = |status, content_type, body: Vec<u8>| Answer {
        status,
        content_type,
        body: Bytes::from(body),
    };
    // Copied under the lock, encoded without it: the daemon's loop, which writes the state
    // at each judgement, never waits for an encoding.
    let (releases, notices, suite_order, config_problems) = {
        let state = served.state.read();
        (
            state
                .releases()
                .filter(|v| filter.admits(&v.release))
                .cloned()
                .collect::<Vec<_>>(),
            state
                .notices()
                .iter()
                .filter(|n| filter.admits(&n.release))
                .cloned()
                .collect::<Vec<_>>(),
            state
                .order()
                .iter()
                .filter(|w| filter.admits(&w.release))
                .cloned()
                .collect::<Vec<_>>(),
            state
                .config_problems()
                .iter()
                .filter(|f| {
                    f.release.split_once('/').is_some_and(|(ns, name)| {
                        filter.admits(&crate::release::ReleaseKey::new(ns, name))
                    })
                })
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let email_error = served
        .email_error
        .as_ref()
        .and_then(|e| e.lock().ok().and_then(|e| e.clone()));
    let body = ReleasesBody {
        cluster: served.cluster.as_deref(),
        releases: releases.iter().collect(),
        notices: &notices,
        suite_order: &suite_order,
        config_problems: &config_problems,
        notifications: NotificationsBody { email_error },
    };
    let mut json = buffer;
    match serde_json::to_writer_pretty(&mut json, &body) {
        Ok(()) => answer(StatusCode::OK, "application/json", json),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("cannot encode the releases: {e}\n").into(),
        ),
    }
}

/// Binds `address`; the returned listener is served by [`serve`].
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Answers one request: its token checked first when the path needs one; every release or
/// metric encoded on a blocking thread (work the runtime must not wait on), one build at a
/// time, shared by the requests that arrived before it started.
async fn answer(served: Served, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let arrived = tokio::time::Instant::now();
    let path = req.uri().path().to_string();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(auth) = served
        .auth
        .as_ref()
        .filter(|_| PROTECTED.contains(&path.as_str()))
    {
        use super::auth::Decision;
        match auth
            .check(header(hyper::header::AUTHORIZATION).as_deref(), &path)
            .await
        {
            Decision::Allowed => {}
            Decision::Unauthenticated(why) => {
                return respond(StatusCode::UNAUTHORIZED, TEXT, format!("{why}\n"));
            }
            Decision::Forbidden(why) => {
                return respond(StatusCode::FORBIDDEN, TEXT, format!("{why}\n"));
            }
            Decision::Unavailable(why) => {
                return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n"));
            }
        }
    }
    let method = req.method().clone();
    let accept = header(hyper::header::ACCEPT);
    let filter = Filter::parse(req.uri().query());
    if path == "/api/v1/releases" && filter != Filter::default() {
        // One release or one namespace (the link on each alert): cheap, built for it.
        return match method {
            Method::GET | Method::HEAD => releases(&served, &filter, Vec::new()).response(),
            _ => handle(&served, &method, &path, accept.as_deref()),
        };
    }
    let kind = match path.as_str() {
        "/metrics" => Costly::Metrics {
            openmetrics: openmetrics(accept.as_deref()),
        },
        "/api/v1/releases" => Costly::Releases,
        _ => return handle(&served, &method, &path, accept.as_deref()),
    };
    if method != Method::GET && method != Method::HEAD {
        return handle(&served, &method, &path, accept.as_deref());
    }
    let answers = served.answers.clone();
    let metrics = served.metrics.clone();
    let (answer, source) = answers
        .get(kind, arrived, move |buffer| build(&served, kind, buffer))
        .await;
    metrics.answered(&path, source);
    answer.response()
}

/// Serves until `stop` turns true; connections in progress finish on their own.
pub async fn serve(listener: TcpListener, served: Served, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(served.limits.max_connections));
    loop {
        // A connection is accepted only with a free slot: the rest wait in the kernel's
        // listen queue, and slow or idle clients cannot pile up sockets and tasks.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "accepting an HTTP connection failed");
                continue;
            }
        };
        let served = served.clone();
        let limits = served.limits;
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req: Request<Incoming>| {
                let served = served.clone();
                async move { Ok::<_, Infallible>(answer(served, req).await) }
            });
            match connection(TokioIo::new(stream), service, limits.read_timeout).await {
                Ended::Closed => {}
                Ended::Error(e) => debug!(%peer, error = %e, "HTTP connection ended with an error"),
                Ended::TooLong => debug!(%peer, "HTTP connection closed: it lasted too long"),
            }
        });
    }
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    /// The client closed it, or it was closed after its last answer.
    Closed,
    /// An error of the connection.
    Error(hyper::Error),
    /// Cut: its request was still unanswered a lifetime after the lifetime ended.
    TooLong,
}

/// Serves one connection: a request's headers must come within `read_timeout`, and the
/// connection lasts ten times that (a client cannot hold a slot for ever). Then it is
/// closed gracefully: the request in flight is still answered (with `Connection: close`,
/// so a keep-alive client such as Prometheus opens a new connection instead of failing a
/// scrape), within one more lifetime; only a request still unanswered then is cut.
async fn connection<I, S>(io: I, service: S, read_timeout: std::time::Duration) -> Ended
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let lifetime = read_timeout * 10;
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let ended = |r: Result<(), hyper::Error>| r.map_or_else(Ended::Error, |()| Ended::Closed);
    if let Ok(r) = tokio::time::timeout(lifetime, conn.as_mut()).await {
        return ended(r);
    }
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(lifetime, conn.as_mut()).await {
        Ok(r) => ended(r),
        Err(_) => Ended::TooLong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose answer is still being built when the connection's lifetime ends is
    /// answered, and the client told to reconnect: before, the connection was cut under it
    /// (at 5,000 releases a keep-alive scraper lost a request about every lifetime).
    #[tokio::test]
    async fn a_request_in_flight_when_the_lifetime_ends_is_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let read_timeout = std::time::Duration::from_millis(100);
        let (client, server) = tokio::io::duplex(64 * 1024);
        let slow = service_fn(move |_req: Request<Incoming>| async move {
            // Longer than the lifetime (1 s), shorter than the lifetime after it.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"answered"))))
        });
        let served = tokio::spawn(connection(TokioIo::new(server), slow, read_timeout));
        let (mut rx, mut tx) = tokio::io::split(client);
        tx.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        rx.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response).to_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        assert!(text.ends_with("answered"), "{text}");
        assert!(matches!(served.await.unwrap(), Ended::Closed));
    }

    #[test]
    fn the_classic_format_names_counters_with_their_suffix_and_has_no_eof() {
        let om = "# HELP upgrade_guard_release_events Release events.\n\
                  # TYPE upgrade_guard_release_events counter\n\
                  upgrade_guard_release_events_total{kind=\"upgraded\"} 2\n\
                  # HELP upgrade_guard_watch_synced 1 once listed.\n\
                  # TYPE upgrade_guard_watch_synced gauge\n\
                  upgrade_guard_watch_synced 1\n\
                  # EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP upgrade_guard_release_events_total Release events.\n\
             # TYPE upgrade_guard_release_events_total counter\n\
             upgrade_guard_release_events_total{kind=\"upgraded\"} 2\n\
             # HELP upgrade_guard_watch_synced 1 once listed.\n\
             # TYPE upgrade_guard_watch_synced gauge\n\
             upgrade_guard_watch_synced 1\n"
        );
    }

    #[test]
    fn a_query_names_one_release_or_one_namespace() {
        let f = Filter::parse(Some("namespace=gim&release=gim-a&x=1"));
        assert!(f.admits(&crate::release::ReleaseKey::new("gim", "gim-a")));
        assert!(!f.admits(&crate::release::ReleaseKey::new("gim", "gim")));
        assert!(!f.admits(&crate::release::ReleaseKey::new("gsp", "gim-a")));
        let ns = Filter::parse(Some("namespace=gsp"));
        assert!(ns.admits(&crate::release::ReleaseKey::new("gsp", "any")));
        assert!(!ns.admits(&crate::release::ReleaseKey::new("gim", "any")));
        assert_eq!(Filter::parse(None), Filter::default());
        assert_eq!(Filter::parse(Some("pretty")), Filter::default());
    }
}
