//! What `mode: auto` trusts (issue 20.4, 20.6, 20.7, 20.8) on the real stack: a rollback
//! target is a revision upgrade-guard judged healthy with the content it judged (a Helm
//! record rewritten since is refused, a record whose name, labels and payload disagree is
//! reported); the version it rolled back, applied again, is held, not rolled back in a
//! loop; a revision seen failed during its bake stays known bad when superseded; an
//! uninstalled release's records are retired; a second installation on the same namespace
//! does not act; and a record whose write fails is written once it can be.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use support::auto::{
    WAIT, auto_config, baked_healthy, final_verdict, history, install, ready, records, rollbacks,
    view,
};
use support::daemon::{Running, options};
use support::eval::upgrade;
use support::{alertmanager, helm, kube as tkube, stack::stack, wait};
use upgrade_guard::records::action::Phase;

const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// Alertmanager for namespace `n`.
fn alerting() -> String {
    format!(
        "notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n",
        stack().alertmanager_url
    )
}

/// Waits for the plan shown for `revision` of `app` to hold with `reason`.
async fn held(d: &Running, revision: u64, reason: &str) -> serde_json::Value {
    wait::until(
        WAIT,
        &format!("revision {revision} held: {reason}"),
        || async {
            let v = view(d, "app").await?;
            (v["revision"] == revision && v["automation"]["plan"]["reason"] == reason).then_some(v)
        },
    )
    .await
}

/// Issue 20.6: someone with Secret rights rewrites the record of revision 1 (which passed
/// its bake) with another manifest, keeping its name, labels and status. The next failed
/// upgrade is not rolled back to it: held `target_refused`, alerted, no helm run. A record
/// whose name, labels and payload disagree is reported as not written by Helm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_rewritten_after_its_bake_is_never_rolled_back_to() {
    let ns = tkube::namespace("trust-forged").await;
    let n = ns.name.as_str();
    let d = Running::start_with(
        &stack().kubeconfig,
        &auto_config(NO_PROMETHEUS, n, "", &alerting()),
        options("replica-a"),
    )
    .await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    baked_healthy(n, "app", 1).await;

    let secrets: Api<Secret> = Api::namespaced(tkube::client().await, n);
    let name = "sh.helm.release.v1.app.v1";
    let mut secret = secrets.get(name).await.unwrap();
    let mut release = helm::payload(&secret);
    release["manifest"] = serde_json::json!(format!(
        "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: planted\ndata:\n  x: y\n",
        release["manifest"].as_str().unwrap()
    ));
    secret
        .data
        .as_mut()
        .unwrap()
        .insert("release".into(), helm::encoded(&release));
    secrets
        .replace(name, &Default::default(), &secret)
        .await
        .unwrap();

    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    final_verdict(&d, "app", 2, "failed").await;
    let v = held(&d, 2, "target_refused").await;
    let detail = v["automation"]["plan"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("revision 1 would be the rollback target")
            && detail.contains("changed after upgrade-guard judged it healthy")
            && detail.contains(name),
        "{detail}"
    );
    let alert = alertmanager::fired(WAIT, n, "UpgradeAutoActionHeld").await;
    assert_eq!(
        alert["annotations"]["hold_reason"], "target_refused",
        "{alert:#}"
    );
    assert!(rollbacks(n, "app").await.is_empty());
    assert!(records(n, "app").await.is_empty());

    // A record whose labels and payload disagree (revision 7 by its name and labels, 2
    // inside): refused as history, and said so.
    let mut forged = secrets.get("sh.helm.release.v1.app.v2").await.unwrap();
    forged.metadata = kube::api::ObjectMeta {
        name: Some("sh.helm.release.v1.app.v7".into()),
        labels: forged.metadata.labels.map(|mut l| {
            l.insert("version".into(), "7".into());
            l.insert("status".into(), "deployed".into());
            l
        }),
        ..Default::default()
    };
    secrets.create(&Default::default(), &forged).await.unwrap();
    let rows = history(n, "app").await;
    let row = rows.iter().find(|r| r.revision == 7).unwrap();
    let words = serde_json::to_value(row).unwrap()["decode_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        words.contains("not as Helm writes it") && words.contains("its payload is revision 2"),
        "{words}"
    );
    let shown = wait::until(WAIT, "revision 7 shown as not written by Helm", || async {
        let v = view(&d, "app").await?;
        let text = v.to_string();
        (v["revision"] == 7 && text.contains("forged")).then_some(v)
    })
    .await;
    assert!(records(n, "app").await.is_empty(), "{shown:#}");
    d.stop().await;
}

/// Issue 20.4: upgrade-guard rolled revision 2 back; whoever upgraded applies the same
/// chart, app version and values again (revision 4). Without the rule it would be rolled
/// back again, and again after each cooldown: held `reapplied`, with words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_rolled_back_applied_again_is_held_not_rolled_back_again() {
    let ns = tkube::namespace("trust-again").await;
    let n = ns.name.as_str();
    let d = Running::start_with(
        &stack().kubeconfig,
        &auto_config(NO_PROMETHEUS, n, "", ""),
        options("replica-a"),
    )
    .await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    baked_healthy(n, "app", 1).await;
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    wait::until(WAIT, "the rollback of revision 2 verified", || async {
        let r = records(n, "app").await;
        (r.len() == 1 && r[0].phase == Phase::Verified).then_some(())
    })
    .await;
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    final_verdict(&d, "app", 4, "failed").await;
    let v = held(&d, 4, "reapplied").await;
    let detail = v["automation"]["plan"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("revision 4 applies again the version upgrade-guard rolled back")
            && detail.contains("revision 2: demo-app-")
            && detail.contains("same values"),
        "{detail}"
    );
    assert_eq!(rollbacks(n, "app").await.len(), 1, "one rollback, no loop");
    // Another value is another version: a fix is judged (and rolled back) on its own.
    upgrade(n, "app", "1.1.0", &["unschedulable=true", "replicaCount=2"]);
    final_verdict(&d, "app", 5, "failed").await;
    wait::until(WAIT, "revision 5 rolled back", || async {
        (rollbacks(n, "app").await.len() == 2).then_some(())
    })
    .await;
    d.stop().await;
}

/// Issue 20.7 and 20.8: revision 2, judged failed during its bake, is superseded by 3
/// before its bake ends: its record says so (never a target later, after a restart too).
/// Uninstalled, the release's records are retired: a new install starts clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_seen_during_the_bake_is_kept_and_an_uninstall_retires_the_records() {
    let ns = tkube::namespace("trust-records").await;
    let n = ns.name.as_str();
    let config = auto_config(
        NO_PROMETHEUS,
        n,
        "",
        "releases:\n  - name: app\n    bake_window: 90s\n",
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    upgrade(n, "app", "1.1.0", &["fault=ImagePullBackOff"]);
    wait::until(WAIT, "revision 2 judged failed during its bake", || async {
        let v = view(&d, "app").await?;
        (v["revision"] == 2
            && v["judgement"]["verdict"] == "failed"
            && v["judgement"]["final"] == false)
            .then_some(())
    })
    .await;
    let record = tkube::bake_record(n, n, "app", 2).await;
    upgrade(n, "app", "1.2.0", &[]);
    let kept: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(kept["verdict"], "failed", "{kept}");
    assert_eq!(kept["during_bake"], true, "{kept}");
    wait::until(WAIT, "revision 3 under evaluation", || async {
        (view(&d, "app").await?["revision"] == 3).then_some(())
    })
    .await;
    d.stop().await;
    // After the daemon is gone, and superseded: still recorded failed.
    let again = tkube::bake_record(n, n, "app", 2).await;
    assert!(again.contains("\"verdict\":\"failed\""), "{again}");

    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-b")).await;
    ready(&d).await;
    helm::ok(&["uninstall", "app", "-n", n]);
    let maps: Api<ConfigMap> = Api::namespaced(tkube::client().await, n);
    wait::until(WAIT, "the records retired", || async {
        let left = maps
            .list(
                &kube::api::ListParams::default()
                    .labels("app.kubernetes.io/managed-by=upgrade-guard"),
            )
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    d.stop().await;
}

/// Issue 20.5: two installations (each its own records and leader Lease) watch the same
/// namespace in `mode: auto`. Before, both rolled the failure back. The first to claim the
/// namespace acts; the other holds `another_installation`, says who, and exports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_on_one_namespace_roll_back_once() {
    let ns = tkube::namespace("trust-two").await;
    let n = ns.name.as_str();
    let other = tkube::namespace("trust-two-state").await;
    let m = other.name.as_str();
    let first = auto_config(NO_PROMETHEUS, n, "", "");
    let second = first.replace(
        &format!("state:\n  namespace: {n}\n"),
        &format!("state:\n  namespace: {m}\n"),
    );
    assert_ne!(first, second);
    let a = Running::start_with(&stack().kubeconfig, &first, options("install-a")).await;
    let b = Running::start_with(&stack().kubeconfig, &second, options("install-b")).await;
    ready(&a).await;
    ready(&b).await;
    install(n, "app", "demo-app", &[]);
    support::auto::baked_healthy_in(n, n, "app", 1).await;
    support::auto::baked_healthy_in(m, n, "app", 1).await;
    upgrade(n, "app", "1.1.0", &["unschedulable=true"]);
    let held = r#"upgrade_guard_action_holds_total{reason="another_installation"}"#;
    let holding = wait::until(
        WAIT,
        "one installation held: another_installation",
        || async {
            for d in [&a, &b] {
                if d.metric(held).await? >= 1.0 {
                    return Some(d);
                }
            }
            None
        },
    )
    .await;
    let series = format!("upgrade_guard_namespace_claimed_elsewhere{{namespace=\"{n}\"}}");
    assert_eq!(holding.metric(&series).await, Some(1.0));
    wait::until(WAIT, "the rollback by the other installation", || async {
        (rollbacks(n, "app").await.len() == 1).then_some(())
    })
    .await;
    let in_a = records(n, "app").await.len();
    let in_b = upgrade_guard::records::actions::RecordStore::new(tkube::client().await, m)
        .load(&upgrade_guard::release::ReleaseKey::new(n, "app"))
        .await
        .unwrap()
        .records
        .len();
    assert_eq!(in_a + in_b, 1, "one action recorded, by one installation");
    assert_eq!(rollbacks(n, "app").await.len(), 1, "one rollback");
    a.stop().await;
    b.stop().await;
}

/// Issue 20.9: the final verdict of a bake cannot be written (RBAC does not allow it yet).
/// It was only logged, and the evidence a rollback target needs was lost. Now it waits,
/// counted and exported, the daemon keeps judging and serving, and it is written once the
/// API accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_that_cannot_be_written_is_written_once_it_can() {
    use k8s_openapi::api::rbac::v1::Role;
    let ns = tkube::namespace("trust-write").await;
    let n = ns.name.as_str();
    let read = |resources: &[&str], group: &str| serde_json::json!({"apiGroups": [group], "resources": resources, "verbs": ["get", "list", "watch"]});
    let mut rules = serde_json::json!([
        read(&["secrets", "configmaps", "pods"], ""),
        read(&["deployments", "statefulsets", "daemonsets", "replicasets"], "apps"),
        read(&["jobs"], "batch"),
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    ]);
    let token = tkube::service_account_token(n, "reader", rules.clone()).await;
    let kubeconfig = tkube::kubeconfig_with_token(&token);
    let config = support::cli::short_config(
        NO_PROMETHEUS,
        "",
        &format!("watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n"),
    );
    let d = Running::start_with(kubeconfig.path(), &config, options("replica-a")).await;
    ready(&d).await;
    install(n, "app", "demo-app", &[]);
    final_verdict(&d, "app", 1, "healthy").await;
    let failed = r#"upgrade_guard_record_writes_total{kind="bake",outcome="failed"}"#;
    wait::until(WAIT, "the refused write counted", || async {
        (d.metric(failed).await? >= 1.0).then_some(())
    })
    .await;
    assert_eq!(d.metric("upgrade_guard_records_unwritten").await, Some(1.0));
    let maps: Api<ConfigMap> = Api::namespaced(tkube::client().await, n);
    let name = format!("upgrade-guard.bakes.{n}.app");
    assert!(maps.get_opt(&name).await.unwrap().is_none());

    rules.as_array_mut().unwrap().push(serde_json::json!(
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update", "patch"]}
    ));
    let roles: Api<Role> = Api::namespaced(tkube::client().await, n);
    let mut role = roles.get("reader").await.unwrap();
    role.rules = serde_json::from_value(rules).unwrap();
    roles
        .replace("reader", &Default::default(), &role)
        .await
        .unwrap();
    let record = tkube::bake_record(n, n, "app", 1).await;
    assert!(record.contains("\"verdict\":\"healthy\""), "{record}");
    wait::until(WAIT, "the late write counted", || async {
        let late = d
            .metric(r#"upgrade_guard_record_writes_total{kind="bake",outcome="written_late"}"#)
            .await?;
        (late >= 1.0 && d.metric("upgrade_guard_records_unwritten").await? == 0.0).then_some(())
    })
    .await;
    d.stop().await;
}
