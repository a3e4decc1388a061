//! Kubernetes access for tests: a kube-rs client for the test cluster and a fresh namespace
//! per test, deleted when the test ends (even when it panics).

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::sync::atomic::{AtomicU32, Ordering};

use super::stack::stack;

/// A client for the shared test cluster, as cluster admin.
pub async fn client() -> Client {
    client_for(&stack().kubeconfig).await
}

/// A client for the cluster of `kubeconfig`.
pub async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read test kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load test kubeconfig");
    Client::try_from(config).expect("build kube client")
}

/// A namespace created for one test and deleted when dropped.
pub struct TestNamespace {
    /// The namespace's name, unique per test.
    pub name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates a fresh namespace named `<prefix>-<unique suffix>`.
pub async fn namespace(prefix: &str) -> TestNamespace {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "{prefix}-{:x}{:x}{:x}",
        std::process::id() & 0xfff,
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos & 0xffff
    );
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"upgrade-guard.dev/test": "true"}}
    }))
    .expect("namespace object");
    Api::<Namespace>::all(client().await)
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    TestNamespace { name }
}

/// Creates the namespace `name` exactly (for a profile that matches releases by namespace),
/// waiting first for a leftover of an earlier run to be gone. Only one test may use a name.
pub async fn namespace_named(name: &str) -> TestNamespace {
    let api = Api::<Namespace>::all(client().await);
    super::wait::until(
        std::time::Duration::from_secs(120),
        &format!("namespace {name} from an earlier run to be deleted"),
        || async {
            match api.get_opt(name).await {
                Ok(None) => Some(()),
                Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_none() => {
                    let _ = api.delete(name, &DeleteParams::background()).await;
                    None
                }
                _ => None,
            }
        },
    )
    .await;
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"upgrade-guard.dev/test": "true"}}
    }))
    .expect("namespace object");
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    TestNamespace {
        name: name.to_string(),
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await: delete from a thread with its own runtime. The
        // controller-manager's namespace controller removes the contents.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                Api::<Namespace>::all(client().await)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The stack's admin kubeconfig as YAML, to derive variants from.
fn kubeconfig_yaml() -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(&stack().kubeconfig).expect("read test kubeconfig");
    serde_yaml_ng::from_str(&text).expect("parse test kubeconfig")
}

fn write_yaml(value: &serde_yaml_ng::Value) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp kubeconfig");
    std::fs::write(file.path(), serde_yaml_ng::to_string(value).expect("yaml")).expect("write");
    file
}

/// The API server's `host:port`.
pub fn api_address() -> String {
    let config = kubeconfig_yaml();
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server")
        .to_string();
    server.trim_start_matches("https://").to_string()
}

/// The admin kubeconfig with another server URL (for example a proxy in front of the API).
pub fn kubeconfig_with_server(server: &str) -> tempfile::NamedTempFile {
    let mut config = kubeconfig_yaml();
    config["clusters"][0]["cluster"]["server"] = server.into();
    write_yaml(&config)
}

/// The admin kubeconfig split in two files (clusters and users / contexts), as kubectl
/// merges them from `KUBECONFIG=a:b`. Returns the files and the `KUBECONFIG` value.
pub fn split_kubeconfig() -> (Vec<tempfile::NamedTempFile>, String) {
    let config = kubeconfig_yaml();
    let mut first = config.clone();
    let mut second = config;
    if let Some(m) = first.as_mapping_mut() {
        m.remove("contexts");
        m.remove("current-context");
    }
    if let Some(m) = second.as_mapping_mut() {
        m.remove("clusters");
        m.remove("users");
    }
    let files = vec![write_yaml(&first), write_yaml(&second)];
    let value = files
        .iter()
        .map(|f| f.path().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    (files, value)
}

/// A kubeconfig that authenticates with `token` instead of the admin certificate.
pub fn kubeconfig_with_token(token: &str) -> tempfile::NamedTempFile {
    let mut config = kubeconfig_yaml();
    config["users"][0]["user"] = serde_yaml_ng::Value::Mapping(Default::default());
    config["users"][0]["user"]["token"] = token.into();
    write_yaml(&config)
}

/// Creates a ServiceAccount `name` in `ns`, a Role of the same name with `rules` (JSON
/// PolicyRules) bound to it, and returns a token for it (one hour).
pub async fn service_account_token(ns: &str, name: &str, rules: serde_json::Value) -> String {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let client = client().await;
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let role: Role =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "rules": rules}))
            .expect("role");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");
    token_for(ns, name).await
}

/// A token (one hour) for the existing ServiceAccount `name` in `ns`.
pub async fn token_for(ns: &str, name: &str) -> String {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}}))
            .expect("token request");
    Api::<ServiceAccount>::namespaced(client().await, ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("create token")
        .status
        .and_then(|s| s.token)
        .expect("a token")
}

/// Whether the real authorizer lets `user` do `verb` on `resource` (`group/resource`, or
/// just `resource` for the core group) in `ns`.
pub async fn can(user: &str, verb: &str, resource: &str, ns: &str) -> bool {
    can_on(user, verb, resource, ns, "").await
}

/// [`can`] for the object named `name` (empty: any).
pub async fn can_on(user: &str, verb: &str, resource: &str, ns: &str, name: &str) -> bool {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let (group, resource) = resource.split_once('/').unwrap_or(("", resource));
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "namespace": ns, "verb": verb, "group": group, "resource": resource,
                "name": name
            }
        }
    }))
    .expect("review");
    Api::<SubjectAccessReview>::all(client().await)
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// The kubelet's report of a pod whose container crashed four times and waits in back-off.
pub fn crash_looping(mut pod: k8s_openapi::api::core::v1::Pod) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting,
    };
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let status = pod.status.as_mut().unwrap();
    for c in status.conditions.iter_mut().flatten() {
        if c.type_ == "Ready" || c.type_ == "ContainersReady" {
            c.status = "False".into();
            c.last_transition_time = Some(now.clone());
        }
    }
    for c in status.container_statuses.iter_mut().flatten() {
        c.ready = false;
        c.restart_count = 4;
        c.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("CrashLoopBackOff".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                reason: Some("Error".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    pod
}

/// The kubelet's report of a pod whose containers were OOM-killed `times` times and run
/// (and are Ready) again: a pod that crashes every few minutes is Ready most of the time.
pub fn restarted(
    mut pod: k8s_openapi::api::core::v1::Pod,
    times: i32,
) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated};
    let status = pod.status.as_mut().unwrap();
    for c in status.container_statuses.iter_mut().flatten() {
        c.restart_count = times;
        c.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some("OOMKilled".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    pod
}

/// Waits until the pod of namespace `ns` crash-loops and has not been Ready for two seconds
/// (more than a truncated second before what follows).
pub async fn crash_looping_for_two_seconds(ns: &str) {
    use super::wait;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client().await, ns);
    let since: jiff::Timestamp =
        wait::until(super::eval::WAIT, "the pod crash-looping", || async {
            let pod = pods
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()?;
            let status = pod.status?;
            let looping = status
                .container_statuses
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
                });
            let ready = status
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            looping.then(|| ready.last_transition_time.map(|t| t.0))?
        })
        .await;
    wait::until(super::eval::WAIT, "two seconds after it broke", || async {
        (jiff::Timestamp::now() >= since + std::time::Duration::from_secs(2)).then_some(())
    })
    .await;
}

/// The daemon's bake record of `release` (in `namespace`) for `revision`, kept in `state_ns`;
/// waited for, because the daemon writes it after it has served the final verdict.
pub async fn bake_record(state_ns: &str, namespace: &str, release: &str, revision: u32) -> String {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api = Api::<ConfigMap>::namespaced(client().await, state_ns);
    let name = format!("upgrade-guard.bakes.{namespace}.{release}");
    let what = format!("the record of {namespace}/{release} revision {revision}");
    super::wait::until(std::time::Duration::from_secs(120), &what, || async {
        let data = api.get_opt(&name).await.ok()??.data?;
        data.get(&revision.to_string()).cloned()
    })
    .await
}

/// Waits (up to `within`) for a Kubernetes Event in `ns` that `matches`, and returns it.
pub async fn event(
    within: std::time::Duration,
    ns: &str,
    what: &str,
    matches: impl Fn(&k8s_openapi::api::events::v1::Event) -> bool,
) -> k8s_openapi::api::events::v1::Event {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client().await, ns);
    super::wait::until(within, what, || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| matches(e))
    })
    .await
}
