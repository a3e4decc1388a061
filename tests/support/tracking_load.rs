//! Helm release records at scale, written exactly as helm's storage driver writes them, and
//! the real `upgrade-guard watch` process measured from outside (RSS from `/proc`, requests
//! from the API server's own metrics). Shared by the scale regression test and the
//! tracking benchmark.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};

/// Deterministic, incompressible filler (xorshift64*), standing for chart templates and
/// bundled files: what makes real payloads big.
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

const MANIFEST: &str = r#"---
# Source: gim/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: RELEASE
  labels:
    app.kubernetes.io/name: gim
spec:
  ports:
    - port: 8080
      name: http
  selector:
    app.kubernetes.io/instance: RELEASE
---
# Source: gim/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: RELEASE-config
data:
  application.properties: |
    kafka.bootstrap=kafka:9092
    db.url=jdbc:postgresql://postgres:5432/gim
---
# Source: gim/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: RELEASE
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/instance: RELEASE
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: RELEASE
    spec:
      containers:
        - name: gim
          image: "registry.invalid/gim:100.0.116"
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet:
              path: /health
              port: 8080
---
# Source: gim/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: RELEASE-state
spec:
  serviceName: RELEASE
  selector:
    matchLabels:
      app.kubernetes.io/instance: RELEASE
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: RELEASE
    spec:
      containers:
        - name: state
          image: "registry.invalid/gim-state:100.0.116"
"#;

/// `data.release` as helm writes it: base64(gzip(release JSON)).
pub fn payload(ns: &str, name: &str, revision: u32, status: &str, filler_bytes: usize) -> Vec<u8> {
    let description = match status {
        "pending-upgrade" => "Preparing upgrade",
        _ if revision == 1 => "Install complete",
        _ => "Upgrade complete",
    };
    let seed = u64::from(revision)
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let template = base64::engine::general_purpose::STANDARD.encode(filler(seed, filler_bytes));
    let json = serde_json::json!({
        "name": name,
        "namespace": ns,
        "version": revision,
        "info": {
            "first_deployed": "2026-11-01T10:00:00.000000000Z",
            // Written now, as helm does (the evaluation's bake counts from it).
            "last_deployed": jiff::Timestamp::now().to_string(),
            "deleted": "",
            "description": description,
            "status": status,
        },
        "chart": {
            "metadata": {"name": "gim", "version": "100.0.116+2900", "appVersion": "100.0.116",
                          "apiVersion": "v2", "description": "Genesys Info Mart"},
            "lock": null,
            "templates": [{"name": "templates/bundle.yaml", "data": template}],
            "values": {"image": {"repository": "registry.invalid/gim", "tag": "100.0.116"}},
            "schema": null,
            "files": [],
        },
        "config": {"image": {"tag": "100.0.116"}, "db": {"password": "bench-not-a-secret"}},
        "manifest": MANIFEST.replace("RELEASE", name),
        "hooks": [{
            "name": format!("{name}-migrate"), "kind": "Job",
            "path": "gim/templates/migrate.yaml",
            "manifest": format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}-migrate\n"),
            "events": ["pre-upgrade"],
            "last_run": {"started_at": "2026-11-25T10:00:00Z", "completed_at": "2026-11-25T10:01:00Z", "phase": "Succeeded"},
            "delete_policies": ["before-hook-creation"],
        }],
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&json).unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(gz.finish().unwrap())
        .into_bytes()
}

/// One release record Secret.
pub fn secret(ns: &str, name: &str, revision: u32, status: &str, filler_bytes: usize) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(format!("sh.helm.release.v1.{name}.v{revision}"));
    s.metadata.namespace = Some(ns.to_string());
    s.metadata.labels = Some(BTreeMap::from([
        ("name".to_string(), name.to_string()),
        ("owner".to_string(), "helm".to_string()),
        ("status".to_string(), status.to_string()),
        ("version".to_string(), revision.to_string()),
        ("modifiedAt".to_string(), "1795600000".to_string()),
    ]));
    s.type_ = Some("helm.sh/release.v1".to_string());
    s.data = Some(BTreeMap::from([(
        "release".to_string(),
        ByteString(payload(ns, name, revision, status, filler_bytes)),
    )]));
    s
}

/// `(namespace, release)` names: `releases` spread over `namespaces` namespaces `<prefix>-NN`.
pub fn release_names(prefix: &str, releases: usize, namespaces: usize) -> Vec<(String, String)> {
    (0..releases)
        .map(|i| {
            (
                format!("{prefix}-{:02}", i % namespaces.max(1)),
                format!("svc-{i:04}"),
            )
        })
        .collect()
}

/// Creates the namespaces of `names` and `revisions` records per release (the last one
/// `deployed`), `writers` at a time. Returns how long it took.
pub async fn load(
    client: &kube::Client,
    names: &[(String, String)],
    revisions: u32,
    filler_bytes: usize,
    writers: usize,
) -> Duration {
    let started = Instant::now();
    let mut namespaces: Vec<&String> = names.iter().map(|(ns, _)| ns).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let jobs = names
        .iter()
        .flat_map(|(ns, name)| (1..=revisions).map(move |rev| (ns.clone(), name.clone(), rev)));
    futures::stream::iter(jobs)
        .map(|(ns, name, rev)| {
            let client = client.clone();
            async move {
                let status = if rev == revisions {
                    "deployed"
                } else {
                    "superseded"
                };
                let s = tokio::task::spawn_blocking(move || {
                    secret(&ns, &name, rev, status, filler_bytes)
                })
                .await
                .unwrap();
                let ns = s.metadata.namespace.clone().unwrap();
                Api::<Secret>::namespaced(client, &ns)
                    .create(&PostParams::default(), &s)
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(writers.max(1))
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// Timings of one new revision written in helm's order.
pub struct Upgrade {
    /// When the settling write (`deployed`) started.
    pub settle_started: Instant,
    /// How long the API server took to answer that write.
    pub settle_write: Duration,
}

/// Writes revision `new` of a release as `helm upgrade` does with history-max `keep`:
/// delete the oldest, create `pending-upgrade`, mark the previous `superseded`, mark the
/// new one `deployed`.
pub async fn upgrade(
    client: &kube::Client,
    ns: &str,
    name: &str,
    new: u32,
    keep: u32,
    filler_bytes: usize,
) -> Upgrade {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    if new > keep {
        api.delete(
            &format!("sh.helm.release.v1.{name}.v{}", new - keep),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    }
    let pending = secret(ns, name, new, "pending-upgrade", filler_bytes);
    api.create(&PostParams::default(), &pending).await.unwrap();
    let old = secret(ns, name, new - 1, "superseded", filler_bytes);
    api.replace(
        old.metadata.name.as_deref().unwrap(),
        &PostParams::default(),
        &old,
    )
    .await
    .unwrap();
    let deployed = secret(ns, name, new, "deployed", filler_bytes);
    let settle_started = Instant::now();
    api.replace(
        deployed.metadata.name.as_deref().unwrap(),
        &PostParams::default(),
        &deployed,
    )
    .await
    .unwrap();
    Upgrade {
        settle_started,
        settle_write: settle_started.elapsed(),
    }
}

/// Sum of `apiserver_request_total` for Secrets, by verb.
pub async fn secret_requests(client: &kube::Client) -> BTreeMap<String, u64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client
        .request_text(req)
        .await
        .expect("read apiserver /metrics");
    let mut by_verb = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("resource=\"secrets\""))
    {
        let verb = line
            .split("verb=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by_verb.entry(verb.to_string()).or_insert(0) += value as u64;
    }
    by_verb
}

/// `after - before` for `verb`.
pub fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, verb: &str) -> u64 {
    after.get(verb).copied().unwrap_or(0) - before.get(verb).copied().unwrap_or(0)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Events printed by the watch process: (`namespace/name`, revision, kind, when read).
pub type Seen = Arc<Mutex<Vec<(String, u32, String, Instant)>>>;

/// The release binary's `watch -o json`, all namespaces, killed when dropped.
pub struct WatchProcess {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// Every event line it printed.
    pub seen: Seen,
    /// When it logged that its first listing completed.
    pub synced_at: Instant,
    /// When it was started.
    pub started: Instant,
    _config: tempfile::NamedTempFile,
}

impl WatchProcess {
    /// Starts the release binary against `kubeconfig` with configuration `config` (YAML
    /// text) and waits (up to `timeout`) for its initial sync.
    pub fn start(binary: &Path, kubeconfig: &Path, config: &str, timeout: Duration) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), config).unwrap();
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args([
                "--log-format",
                "json",
                "watch",
                "-n",
                "*",
                "-o",
                "json",
                "--config",
            ])
            .arg(file.path())
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("UPGRADE_GUARD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start upgrade-guard watch");
        let pid = child.id();
        let (synced_tx, synced_rx) = std::sync::mpsc::channel::<Instant>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("release records listed") {
                    let _ = synced_tx.send(Instant::now());
                }
            }
        });
        let seen: Seen = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let writer = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let key = format!(
                    "{}/{}",
                    v["release"]["namespace"].as_str().unwrap_or(""),
                    v["release"]["name"].as_str().unwrap_or("")
                );
                let rev = v["revision"].as_u64().unwrap_or(0) as u32;
                let kind = v["kind"].as_str().unwrap_or("").to_string();
                writer.lock().unwrap().push((key, rev, kind, now));
            }
        });
        let synced_at = match synced_rx.recv_timeout(timeout) {
            Ok(at) => at,
            Err(_) => {
                let _ = child.kill();
                panic!("upgrade-guard watch did not sync within {timeout:?}");
            }
        };
        Self {
            child,
            pid,
            seen,
            synced_at,
            started,
            _config: file,
        }
    }

    /// When the event for `key` revision `revision` was read (waits up to `timeout`).
    pub async fn event_time(&self, key: &str, revision: u32, timeout: Duration) -> Instant {
        super::wait::until(timeout, "the upgrade event", || {
            let seen = self.seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .iter()
                    .find(|(k, r, _, _)| k == key && *r == revision)
                    .map(|(_, _, _, t)| *t)
            }
        })
        .await
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
