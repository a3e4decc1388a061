//! Prometheus and Alertmanager that demand TLS, a client certificate and basic auth (issue
//! 21.6), the real servers started with their own `--web.config.file`: upgrade-guard
//! queries and posts with the CA, client certificate and password file of its
//! configuration; a wrong password, a missing file or no certificate is a monitoring error
//! said in words (never a verdict), and a password file changed on disk is used at the
//! next request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use upgrade_guard::config::Config;
use upgrade_guard::gather::prometheus::Prometheus;
use upgrade_guard::http_client;
use upgrade_guard::notify::alertmanager::Alertmanagers;

/// bcrypt (cost 4) of `test-password`, as the servers' web configuration wants it.
const HASH: &str = "$2b$04$SeEZjPOXdKOj7rCZnUIJI.tuivQllhyTM1c/3gw0btpm44lfabvTO";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it;
/// the web configuration that requires the client certificate and the password.
fn pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    // Version 3 certificates (rustls refuses v1): the server's for 127.0.0.1, the client's
    // for client authentication.
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["server", "client"] {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
    }
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {d}/ca.crt\n\
             basic_auth_users:\n  ops: {HASH}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("password"), "test-password\n").unwrap();
}

/// The client side of the configuration, each line indented by `indent`.
fn client(dir: &Path, password_file: &str, indent: &str) -> String {
    format!(
        "{indent}basic_auth: {{username: ops, password_file: {d}/{password_file}}}\n\
         {indent}tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}\n\
         {indent}headers: {{X-Scope-OrgID: tenant-a}}\n",
        d = dir.display()
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(program: &str, args: &[String], log: &Path) -> Server {
    Server(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (scripts/setup installs it)")),
    )
}

/// Waits until `url` answers 200 to a client with every credential.
async fn ready(config: &upgrade_guard::config::HttpClientConfig, url: &str) {
    let http = http_client::build(config, Duration::from_secs(2)).unwrap();
    support::wait::until(Duration::from_secs(60), url, || async {
        let h = http_client::headers(config).ok()?;
        let r = http.get(url).headers(h).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

fn parse(text: &str) -> Config {
    Config::parse(text, "test").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_with_tls_a_client_certificate_and_basic_auth_is_queried() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    std::fs::write(d.join("prometheus.yml"), "global: {}\n").unwrap();
    let port = support::prometheus::free_port();
    let _server = start(
        "prometheus",
        &[
            format!("--config.file={}/prometheus.yml", d.display()),
            format!("--storage.tsdb.path={}/data", d.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}/web.yml", d.display()),
        ],
        &d.join("prometheus.log"),
    );
    let url = format!("https://127.0.0.1:{port}");
    let config = |password: &str| {
        parse(&format!(
            "prometheus:\n  url: {url}\n  timeout: 5s\n{}",
            client(d, password, "  ")
        ))
    };
    let good = config("password");
    ready(&good.prometheus.client, &format!("{url}/-/ready")).await;
    // One query of `vector(7)` through a client of `config`: its value, or the error's words.
    async fn seven(p: &Prometheus) -> Result<f64, String> {
        let answer = p.instant("vector(7)").await.map_err(|e| e.to_string())?;
        Ok(answer.first().map_or(f64::NAN, |s| s.1))
    }
    let client = |c: &upgrade_guard::config::PrometheusConfig| {
        let metrics =
            upgrade_guard::gather::metrics::PrometheusMetrics::register(&mut Default::default());
        Prometheus::new(c, metrics).unwrap()
    };
    assert_eq!(seven(&client(&good.prometheus)).await, Ok(7.0));

    // A wrong password: an error in words (a check makes it inconclusive, never failed).
    // The same client reads the file again at its next request: corrected, it passes.
    std::fs::write(d.join("wrong"), "not-it").unwrap();
    let rotated = client(&config("wrong").prometheus);
    let e = seven(&rotated).await.unwrap_err();
    assert!(
        e.contains("credentials refused") && e.contains("basic_auth"),
        "{e}"
    );
    std::fs::write(d.join("wrong"), "test-password").unwrap();
    assert_eq!(seven(&rotated).await, Ok(7.0));
    // A missing file is named.
    let e = seven(&client(&config("missing").prometheus))
        .await
        .unwrap_err();
    assert!(
        e.contains("cannot read the password file") && e.contains("missing"),
        "{e}"
    );
    // Without the client certificate, or without the CA, the TLS handshake fails.
    let mut no_cert = good.prometheus.clone();
    no_cert.client.tls.cert_file = None;
    no_cert.client.tls.key_file = None;
    assert!(seven(&client(&no_cert)).await.is_err());
    let mut no_ca = good.prometheus.clone();
    no_ca.client.tls.ca_file = None;
    assert!(seven(&client(&no_ca)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_with_tls_a_client_certificate_and_basic_auth_gets_the_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    std::fs::write(
        d.join("alertmanager.yml"),
        "route: {receiver: none}\nreceivers: [{name: none}]\n",
    )
    .unwrap();
    let port = support::prometheus::free_port();
    let _server = start(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}/alertmanager.yml", d.display()),
            format!("--storage.path={}/data", d.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}/web.yml", d.display()),
            "--cluster.listen-address=".to_string(),
        ],
        &d.join("alertmanager.log"),
    );
    let url = format!("https://127.0.0.1:{port}");
    let config = parse(&format!(
        "notifications:\n  alertmanager:\n    urls: [{url}]\n{}",
        client(d, "password", "    ")
    ));
    let client = &config.notifications.alertmanager_client;
    ready(client, &format!("{url}/-/ready")).await;
    let mut registry = Default::default();
    let metrics = upgrade_guard::notify::metrics::NotifyMetrics::register(&mut registry);
    let alertmanagers = Alertmanagers::start(
        &config.notifications.alertmanager_urls,
        client,
        10,
        Duration::from_secs(5),
        metrics,
    )
    .unwrap();
    let now = jiff::Timestamp::now();
    alertmanagers.send(vec![upgrade_guard::notify::alerts::PostableAlert {
        labels: [
            ("alertname".to_string(), "UpgradeFailed".to_string()),
            ("release".to_string(), "secured".to_string()),
        ]
        .into(),
        annotations: Default::default(),
        starts_at: now,
        ends_at: now + jiff::SignedDuration::from_secs(600),
        generator_url: None,
    }]);
    let http = http_client::build(client, Duration::from_secs(5)).unwrap();
    support::wait::until(
        Duration::from_secs(60),
        "the alert in the secured Alertmanager",
        || async {
            let h = http_client::headers(client).ok()?;
            let alerts: serde_json::Value = http
                .get(format!("{url}/api/v2/alerts"))
                .headers(h)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            alerts
                .as_array()?
                .iter()
                .any(|a| a["labels"]["release"] == "secured")
                .then_some(())
        },
    )
    .await;
    // Plain HTTP, or TLS without credentials, is refused by the server.
    let anonymous = reqwest::Client::builder()
        .tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(d.join("ca.crt")).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let refused = match anonymous.get(format!("{url}/api/v2/alerts")).send().await {
        Ok(r) => !r.status().is_success(),
        Err(_) => true,
    };
    assert!(
        refused,
        "a client without certificate or password is refused"
    );
}
