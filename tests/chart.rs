//! The deployment chart (`deploy/upgrade-guard`): `helm lint`, `helm template` with the main
//! value combinations (and the ones it must refuse), and `helm install` into the test
//! cluster, checked with kube-rs and the real authorizer; then the daemon runs with the
//! chart's ServiceAccount token and rolls a release back through the chart's RBAC alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_yaml_ng::Value;
use support::cli::short_config;
use support::daemon::{Running, options};
use support::eval::upgrade;
use support::stack::repo_root;
use support::{helm, kube as tkube, stack::stack, wait};
use upgrade_guard::config::Config;
use upgrade_guard::release::ReleaseKey;

const WAIT: Duration = Duration::from_secs(150);

fn chart() -> String {
    repo_root()
        .join("deploy/upgrade-guard")
        .display()
        .to_string()
}

/// `helm template ug <chart> -n upgrade-guard <args>`: the objects, or helm's error.
fn template(args: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart();
    let mut all = vec!["template", "ug", &chart, "-n", "upgrade-guard"];
    all.extend(args);
    let out = helm::shared().run(&all);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect())
}

fn objects<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(all: &'a [Value], kind: &str) -> &'a Value {
    let found = objects(all, kind);
    assert_eq!(found.len(), 1, "one {kind}: {found:?}");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The configuration the chart renders, validated by upgrade-guard itself.
fn config_of(all: &[Value]) -> (Config, Value) {
    let cm = objects(all, "ConfigMap")
        .into_iter()
        .find(|c| c["data"]["config.yaml"].is_string())
        .expect("the configuration ConfigMap");
    let text = cm["data"]["config.yaml"].as_str().unwrap();
    let config = Config::parse(text, "chart").unwrap_or_else(|e| panic!("{e}\n{text}"));
    (config, serde_yaml_ng::from_str(text).unwrap())
}

const READ: [&str; 3] = ["get", "list", "watch"];

#[test]
fn the_chart_lints_and_renders_its_main_value_combinations() {
    let out = helm::shared().run(&["lint", "--strict", &chart()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Defaults: one replica (Recreate), read-only RBAC in the release's own namespace (the
    // generic profile: nothing named, nothing Genesys), a restricted security context.
    let all = template(&[]).unwrap();
    let d = one(&all, "Deployment");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        60
    );
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        strings(&c["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    assert!(strings(&c["args"]).contains(&"--config=/etc/upgrade-guard/config.yaml".into()));
    assert!(!strings(&c["args"]).contains(&"--dry-run".into()));
    assert_eq!(pod["serviceAccountName"], "ug-upgrade-guard");
    let roles = objects(&all, "Role");
    let read_namespaces: Vec<&str> = roles
        .iter()
        .filter(|r| r["metadata"]["name"] == "ug-upgrade-guard-read")
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(read_namespaces, ["upgrade-guard"]);
    for role in &roles {
        let name = role["metadata"]["name"].as_str().unwrap();
        for rule in role["rules"].as_sequence().unwrap() {
            let verbs = strings(&rule["verbs"]);
            if name.ends_with("-read") {
                assert!(verbs.iter().all(|v| READ.contains(&v.as_str())), "{role:?}");
            } else if name == "ug-upgrade-guard-controls" {
                // For the operators who set controls (bound to nobody by default), never
                // to upgrade-guard itself.
                assert_eq!(role["metadata"]["namespace"], "upgrade-guard", "{role:?}");
                assert_eq!(strings(&rule["resources"]), ["configmaps"], "{role:?}");
                assert_eq!(verbs, ["get", "create", "patch"], "{role:?}");
            } else {
                // Writes only its own records and Lease, in its own namespace.
                assert_eq!(name, "ug-upgrade-guard-records");
                assert_eq!(role["metadata"]["namespace"], "upgrade-guard", "{role:?}");
                let resources = strings(&rule["resources"]);
                assert!(
                    resources == ["configmaps"]
                        || resources == ["leases"]
                        || (resources == ["pods"] && verbs == ["get"]),
                    "{role:?}"
                );
            }
        }
    }
    assert!(objects(&all, "ClusterRole").is_empty());
    // Nobody may set the operator's controls until bound with controls.subjects.
    assert!(
        objects(&all, "RoleBinding")
            .iter()
            .all(|b| b["metadata"]["name"] != "ug-upgrade-guard-controls")
    );
    let oncall = template(&[
        "--set-json",
        r#"controls.subjects=[{"kind":"Group","name":"oncall","apiGroup":"rbac.authorization.k8s.io"}]"#,
    ])
    .unwrap();
    let binding = objects(&oncall, "RoleBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == "ug-upgrade-guard-controls")
        .expect("the controls RoleBinding");
    assert_eq!(binding["roleRef"]["name"], "ug-upgrade-guard-controls");
    assert_eq!(binding["subjects"][0]["name"], "oncall", "{binding:?}");
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(objects(&all, kind).is_empty(), "{kind} is opt-in");
    }
    let (config, raw) = config_of(&all);
    assert_eq!(config.watch.namespaces, ["upgrade-guard"]);
    assert_eq!(raw["state"]["namespace"], "upgrade-guard");
    assert_eq!(
        config.actions.leader_election.lease_name,
        "ug-upgrade-guard"
    );
    assert!(
        raw.get("releases").is_none() && raw.get("suites").is_none(),
        "{raw:?}"
    );
    // Alerts link to the API through the chart's Service.
    assert_eq!(
        config.notifications.external_url.as_deref(),
        Some("http://ug-upgrade-guard.upgrade-guard.svc:8080")
    );
    assert_eq!(
        config
            .policy_for(&ReleaseKey::new("gim", "gim"))
            .rollback_timeout,
        Duration::from_secs(5 * 60),
        "no Genesys rule in the generic profile"
    );
    // Named namespaces are watched, and nothing else.
    let all = template(&["--set", "watchNamespaces={shop,payments}"]).unwrap();
    assert_eq!(config_of(&all).0.watch.namespaces, ["shop", "payments"]);
    // The Genesys profile is one value away: its namespaces, its releases (GIM's
    // 15-minute rollback timeout), its suite order.
    let all = template(&["--set", "profile=genesys"]).unwrap();
    let read_namespaces: Vec<&str> = objects(&all, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "ug-upgrade-guard-read")
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(read_namespaces, ["gim", "gsp", "gca"]);
    let (config, _) = config_of(&all);
    assert_eq!(config.watch.namespaces, ["gim", "gsp", "gca"]);
    assert_eq!(
        config
            .policy_for(&ReleaseKey::new("gim", "gim"))
            .rollback_timeout,
        Duration::from_secs(15 * 60)
    );
    assert_eq!(config.suites.len(), 1);
    let contradiction = template(&[
        "--set",
        "watchAllNamespaces=true",
        "--set",
        "watchNamespaces={shop}",
    ])
    .unwrap_err();
    assert!(contradiction.contains("contradict"), "{contradiction}");
    // As a subchart: `global` and `enabled` are accepted.
    template(&["--set", "global.imageRegistry=x", "--set", "enabled=true"]).unwrap();

    // Rollback enabled with mode: auto, two namespaces: a rollback Role in each.
    let all = template(&[
        "--set",
        "profile=genesys",
        "--set",
        "rollback.enabled=true",
        "--set",
        "config.defaults.mode=auto",
        "--set",
        "watchNamespaces={apps,more}",
        "--set",
        "dryRun=true",
    ])
    .unwrap();
    let rollback: Vec<&str> = objects(&all, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "ug-upgrade-guard-rollback")
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(rollback, ["apps", "more"]);
    let (config, _) = config_of(&all);
    assert_eq!(
        config.policy_for(&ReleaseKey::new("apps", "x")).mode,
        upgrade_guard::config::Mode::Auto
    );
    let args =
        strings(&one(&all, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains(&"--dry-run".into()), "{args:?}");
    // Issue 20.1: a stopping pod waits for the longest rollback (GIM's 15m, helm's minute
    // past it, 30 s to record), and helm's memory is in the container's limit.
    let pod = &one(&all, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 15 * 60 + 60 + 30);
    assert_eq!(pod["containers"][0]["resources"]["limits"]["memory"], "1Gi");
    let env: Vec<&str> = pod["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in ["POD_NAME", "POD_NAMESPACE", "CONTAINER_NAME"] {
        assert!(env.contains(&name), "{env:?}");
    }
    let short = template(&[
        "--set",
        "profile=genesys",
        "--set",
        "rollback.enabled=true",
        "--set",
        "terminationGracePeriodSeconds=60",
    ])
    .unwrap_err();
    assert!(
        short.contains(
            "terminationGracePeriodSeconds 60 is shorter than a rollback may take (990 s"
        ),
        "{short}"
    );

    // Issue 20.6: the default rules leave out RBAC objects, service-account tokens,
    // pods/exec, bind and escalate; no wildcard.
    let all = template(&["--set", "rollback.enabled=true"]).unwrap();
    let role = objects(&all, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "ug-upgrade-guard-rollback")
        .unwrap();
    let rules = serde_json::to_string(&role["rules"]).unwrap();
    for never in [
        "rbac.authorization.k8s.io",
        "serviceaccounts/token",
        "pods/exec",
        "\"bind\"",
        "\"escalate\"",
        "\"*\"",
    ] {
        assert!(!rules.contains(never), "{never} in {rules}");
    }
    assert!(rules.contains("\"secrets\"") && rules.contains("\"deployments\""));

    // Every namespace: ClusterRoles instead, only once confirmed.
    let refused = template(&[
        "--set",
        "watchAllNamespaces=true",
        "--set",
        "rollback.enabled=true",
    ])
    .unwrap_err();
    assert!(
        refused.contains("write access to every namespace")
            && refused.contains("rollback.clusterWide=true"),
        "{refused}"
    );
    let all = template(&[
        "--set",
        "watchAllNamespaces=true",
        "--set",
        "rollback.enabled=true",
        "--set",
        "rollback.clusterWide=true",
    ])
    .unwrap();
    let mut cluster: Vec<&str> = objects(&all, "ClusterRole")
        .into_iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    cluster.sort_unstable();
    assert_eq!(
        cluster,
        ["ug-upgrade-guard-read", "ug-upgrade-guard-rollback"]
    );
    assert!(config_of(&all).0.watch.namespaces.is_empty());

    // Issue 20.11: opt-in protection of the HTTP surface. A token checked with the API
    // server (the daemon may review tokens; readers are granted by a ClusterRole, the API
    // path outside Kubernetes' /api/*), and a NetworkPolicy letting only listed peers in
    // (none listed: nobody, never an empty `from`, which would mean everyone).
    let all = template(&[
        "--set",
        "auth.enabled=true",
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
    ])
    .unwrap();
    assert_eq!(
        config_of(&all).0.http.authentication,
        upgrade_guard::config::HttpAuthentication::Kubernetes
    );
    let delegator = objects(&all, "ClusterRoleBinding")
        .into_iter()
        .find(|b| b["roleRef"]["name"] == "system:auth-delegator");
    assert!(delegator.is_some());
    let reader = objects(&all, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "ug-upgrade-guard-reader")
        .unwrap();
    assert_eq!(
        strings(&reader["rules"][0]["nonResourceURLs"]),
        ["/metrics", "/upgrade-guard/api/v1/releases"]
    );
    assert!(
        one(&all, "ServiceMonitor")["spec"]["endpoints"][0]["bearerTokenFile"]
            .as_str()
            .is_some()
    );
    let policy = one(&all, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"].as_sequence().map(Vec::len),
        Some(0)
    );
    let all = template(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        r#"networkPolicy.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]"#,
    ])
    .unwrap();
    let policy = one(&all, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert!(objects(&template(&[]).unwrap(), "NetworkPolicy").is_empty());

    // HA: several replicas rolling one by one.
    let all = template(&["--set", "ha.enabled=true"]).unwrap();
    let d = one(&all, "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");

    // The Prometheus Operator objects and the dashboard: the repository's files as tested;
    // the Genesys runbook's rules only with its profile.
    let generic = template(&["--set", "prometheusRule.enabled=true"]).unwrap();
    let groups: Vec<&str> = one(&generic, "PrometheusRule")["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(!groups.contains(&"genesys-upgrade-runbook"), "{groups:?}");
    let all = template(&[
        "--set",
        "profile=genesys",
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
    ])
    .unwrap();
    one(&all, "ServiceMonitor");
    let rule = one(&all, "PrometheusRule");
    let mut expected: Vec<Value> = Vec::new();
    for file in [
        "upgrade-guard.rules.yml",
        "verdicts.rules.yml",
        "runbook.rules.yml",
    ] {
        let text = std::fs::read_to_string(repo_root().join("alerts").join(file)).unwrap();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        expected.extend(v["groups"].as_sequence().unwrap().iter().cloned());
    }
    assert_eq!(rule["spec"]["groups"].as_sequence().unwrap(), &expected);
    let dashboard = objects(&all, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "ug-upgrade-guard-dashboard")
        .unwrap();
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let rendered: serde_json::Value =
        serde_json::from_str(dashboard["data"]["upgrade-guard.json"].as_str().unwrap()).unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("dashboards/upgrade-guard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rendered, file);

    // Database checks: no access to any Secret by default; the CA ConfigMap mounted where
    // ca_file can name it.
    assert!(
        objects(&all, "Role")
            .iter()
            .all(|r| r["metadata"]["name"] != "ug-upgrade-guard-database-passwords")
    );
    let all = template(&["--set", "databaseCA.configMap=pg-ca"]).unwrap();
    let pod = &one(&all, "Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "database-ca")
        .expect("the CA volume");
    assert_eq!(volume["configMap"]["name"], "pg-ca");
    assert!(
        pod["containers"][0]["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "database-ca"
                && m["mountPath"] == "/etc/upgrade-guard-database-ca")
    );

    // Refused, with the reason.
    for (args, words) in [
        (
            vec!["--set", "config.defaults.mode=auto"],
            "set rollback.enabled=true",
        ),
        (vec!["--set", "replicaCount=2"], "/replicaCount"),
        (
            vec!["--set", "securityContext.readOnlyRootFilesystem=false"],
            "readOnlyRootFilesystem",
        ),
        (
            vec!["--set", "email.existingSecret=smtp"],
            "config.notifications.email",
        ),
        (
            vec!["--set", "watchNamespaces={Bad_Name}"],
            "watchNamespaces",
        ),
    ] {
        let err = template(&args).expect_err(&format!("{args:?} must be refused"));
        assert!(err.contains(words), "{args:?}: {err}");
    }
}

/// The rule groups rendered with `args`, by group name: the alert names of each.
fn rule_groups(args: &[&str]) -> Vec<(String, Vec<Value>)> {
    let mut all_args = vec!["--set", "prometheusRule.enabled=true"];
    all_args.extend(args);
    let all = template(&all_args).unwrap();
    one(&all, "PrometheusRule")["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["rules"].as_sequence().unwrap().clone(),
            )
        })
        .collect()
}

fn group_names(groups: &[(String, Vec<Value>)]) -> Vec<&str> {
    groups.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn the_alert_rules_are_switched_labelled_and_linked_as_kube_prometheus_stack_users_expect() {
    // The daemon pushes its own alerts: the verdict rules stay out (one alert per
    // situation); where it does not push, they are in, under the same names.
    let pushing = rule_groups(&[
        "--set-json",
        r#"config={"notifications":{"alertmanager":{"urls":["http://am:9093"]}}}"#,
    ]);
    assert_eq!(group_names(&pushing), ["upgrade-guard"]);
    let quiet = rule_groups(&[]);
    assert_eq!(
        group_names(&quiet),
        ["upgrade-guard", "upgrade-guard-verdicts"]
    );
    let pushed_names: Vec<&str> = upgrade_guard::notify::names::AlertName::ALL
        .iter()
        .map(|n| n.as_str())
        .collect();
    for rule in &quiet[1].1 {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            pushed_names.contains(&name),
            "{name} is not a pushed alert's name"
        );
    }
    // Forced either way; the runbook's group with its profile or on demand.
    let forced = rule_groups(&[
        "--set-json",
        r#"config={"notifications":{"alertmanager":{"urls":["http://am:9093"]}}}"#,
        "--set",
        "prometheusRule.rules.verdicts=true",
        "--set",
        "prometheusRule.rules.health=false",
        "--set",
        "prometheusRule.rules.runbook=true",
    ]);
    assert_eq!(
        group_names(&forced),
        ["upgrade-guard-verdicts", "genesys-upgrade-runbook"]
    );
    assert_eq!(
        group_names(&rule_groups(&["--set", "profile=genesys"])),
        [
            "upgrade-guard",
            "upgrade-guard-verdicts",
            "genesys-upgrade-runbook"
        ]
    );
    assert!(template(&["--set", "prometheusRule.rules.verdicts=sometimes"]).is_err());

    // A single rule off; a team label on every rule; runbook links to a mirror.
    let tuned = rule_groups(&[
        "--set",
        "prometheusRule.disabled.UpgradeGuardNoLeader=true",
        "--set",
        "prometheusRule.additionalRuleLabels.team=platform",
        "--set",
        "prometheusRule.runbookUrl=https://wiki.example/ops/upgrade-guard-alerts/",
    ]);
    let rules: Vec<&Value> = tuned.iter().flat_map(|(_, r)| r).collect();
    assert_eq!(
        rules.len(),
        quiet.iter().map(|(_, r)| r.len()).sum::<usize>() - 1
    );
    for rule in &rules {
        let name = rule["alert"].as_str().unwrap();
        assert_ne!(name, "UpgradeGuardNoLeader");
        assert_eq!(rule["labels"]["team"], "platform", "{name}");
        assert!(rule["labels"]["severity"].is_string(), "{name}");
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str().unwrap(),
            format!(
                "https://wiki.example/ops/upgrade-guard-alerts#{}",
                name.to_ascii_lowercase()
            )
        );
    }

    // What is rendered is still valid for Prometheus.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.rules.yml");
    let groups: Vec<Value> = tuned
        .iter()
        .map(|(name, rules)| {
            serde_yaml_ng::to_value(serde_json::json!({
                "name": name,
                "rules": serde_json::to_value(rules).unwrap(),
            }))
            .unwrap()
        })
        .collect();
    let mut doc = serde_yaml_ng::Mapping::new();
    doc.insert("groups".into(), Value::Sequence(groups));
    std::fs::write(&file, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every alert name of the rule files under `alerts/`, with its rule.
fn rule_file_alerts() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("alerts")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".rules.yml") {
            continue;
        }
        let v: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in v["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                out.push((rule["alert"].as_str().unwrap().to_string(), rule.clone()));
            }
        }
    }
    out
}

#[test]
fn every_alert_has_a_runbook_section_in_docs_alerts_md() {
    use upgrade_guard::config::defaults::RUNBOOK_URL;
    use upgrade_guard::notify::names::{AlertName, anchor};
    let doc = std::fs::read_to_string(repo_root().join("docs/alerts.md")).unwrap();
    let sections: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(anchor)
        .collect();
    let rules = rule_file_alerts();
    assert!(rules.len() > 10, "{rules:?}");
    for (name, rule) in &rules {
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str(),
            Some(format!("{RUNBOOK_URL}#{}", anchor(name)).as_str()),
            "the runbook_url of rule {name}"
        );
        assert!(
            sections.contains(&anchor(name)),
            "docs/alerts.md has no section for {name}"
        );
    }
    for name in AlertName::ALL {
        assert!(
            sections.contains(&anchor(name.as_str())),
            "docs/alerts.md has no section for the pushed alert {}",
            name.as_str()
        );
    }
    // One name per situation: a rule never takes a pushed alert's name with another severity.
    for (name, rule) in &rules {
        if let Some(pushed) = AlertName::ALL.iter().find(|n| n.as_str() == name) {
            let doc_severity = doc
                .split(&format!("### {}\n", pushed.as_str()))
                .nth(1)
                .and_then(|rest| rest.trim_start().strip_prefix("**"))
                .and_then(|rest| rest.split('.').next())
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert_eq!(
                rule["labels"]["severity"].as_str().unwrap_or_default(),
                doc_severity,
                "{name}"
            );
        }
    }
}

#[test]
fn the_dockerfile_ships_the_helm_the_tests_run() {
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let go_mod = std::fs::read_to_string(repo_root().join("testenv/tools/helm/go.mod")).unwrap();
    let tested = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("helm.sh/helm/v3 "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert!(
        dockerfile.contains(&format!("ARG HELM_VERSION={tested}")),
        "the image's helm must be the tested one ({tested})"
    );
    // Every COPY source exists in the repository, and the image runs as non-root.
    // (`prebuilt/` is the context scripts/image makes, not the repository.)
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from") && !l.contains("prebuilt/"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(repo_root().join(source).exists(), "{line}");
        }
    }
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("--bin upgrade-guard"));
}

/// The values users expect from well-kept charts (issue 21.5), each rendered.
#[test]
fn the_chart_has_the_knobs_users_expect() {
    // Several replicas: a PodDisruptionBudget and a preference for different nodes.
    let all = template(&["--set", "ha.enabled=true"]).unwrap();
    assert_eq!(
        one(&all, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
    let pod = &one(&all, "Deployment")["spec"]["template"]["spec"];
    let term = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        "ug"
    );
    assert!(objects(&template(&[]).unwrap(), "PodDisruptionBudget").is_empty());
    let all = template(&[
        "--set",
        "ha.enabled=true",
        "--set-json",
        r#"topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway"}]"#,
    ])
    .unwrap();
    let spread =
        &one(&all, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(
        spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "upgrade-guard"
    );

    // An existing ServiceAccount: none created, every binding names it.
    let all = template(&[
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=ops-sa",
    ])
    .unwrap();
    assert!(objects(&all, "ServiceAccount").is_empty());
    assert_eq!(
        one(&all, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "ops-sa"
    );
    for b in objects(&all, "RoleBinding") {
        assert_eq!(b["subjects"][0]["name"], "ops-sa", "{b:?}");
    }
    let missing = template(&["--set", "serviceAccount.create=false"]).unwrap_err();
    assert!(missing.contains("serviceAccount.name"), "{missing}");
    let all = template(&["--set", "serviceAccount.annotations.team=ops"]).unwrap();
    assert_eq!(
        one(&all, "ServiceAccount")["metadata"]["annotations"]["team"],
        "ops"
    );

    // The cluster's name reaches the configuration.
    let all = template(&["--set", "clusterName=prod-eu-1"]).unwrap();
    assert_eq!(config_of(&all).0.cluster.as_deref(), Some("prod-eu-1"));
    assert!(template(&["--set", "clusterName=prod eu"]).is_err());

    // Names and common labels.
    let all = template(&[
        "--set",
        "fullnameOverride=guard",
        "--set",
        "commonLabels.team=ops",
    ])
    .unwrap();
    assert_eq!(one(&all, "Deployment")["metadata"]["name"], "guard");
    for o in &all {
        assert_eq!(o["metadata"]["labels"]["team"], "ops", "{o:?}");
    }
    let all = template(&["--set", "nameOverride=guard"]).unwrap();
    assert_eq!(one(&all, "Deployment")["metadata"]["name"], "ug-guard");

    // Extra env, args (the last of an option wins), volumes, mounts and objects.
    let all = template(&[
        "--set-json",
        r#"extraEnv=[{"name":"RUST_LOG","value":"debug"}]"#,
        "--set",
        "extraArgs={--log-format=text}",
        "--set-json",
        r#"extraVolumes=[{"name":"prom-token","secret":{"secretName":"prom"}}]"#,
        "--set-json",
        r#"extraVolumeMounts=[{"name":"prom-token","mountPath":"/etc/prom"}]"#,
        "--set-json",
        r#"extraObjects=[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"{{ .Release.Name }}-extra"}}]"#,
    ])
    .unwrap();
    let pod = &one(&all, "Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert!(
        c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "RUST_LOG")
    );
    assert_eq!(
        strings(&c["args"]).last().map(String::as_str),
        Some("--log-format=text")
    );
    assert!(
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "prom-token")
    );
    assert!(
        c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/prom")
    );
    assert_eq!(one(&all, "Secret")["metadata"]["name"], "ug-extra");

    // ServiceMonitor options, or a PodMonitor instead (never both).
    let all = template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.namespace=monitoring",
        "--set",
        "serviceMonitor.labels.release=kps",
        "--set",
        "serviceMonitor.scrapeTimeout=10s",
        "--set",
        "serviceMonitor.honorLabels=true",
        "--set-json",
        r#"serviceMonitor.metricRelabelings=[{"action":"drop","regex":"go_.*","sourceLabels":["__name__"]}]"#,
    ])
    .unwrap();
    let sm = one(&all, "ServiceMonitor");
    assert_eq!(sm["metadata"]["namespace"], "monitoring");
    assert_eq!(sm["metadata"]["labels"]["release"], "kps");
    assert_eq!(
        strings(&sm["spec"]["namespaceSelector"]["matchNames"]),
        ["upgrade-guard"]
    );
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["scrapeTimeout"], "10s");
    assert_eq!(endpoint["honorLabels"], true);
    assert_eq!(endpoint["metricRelabelings"][0]["action"], "drop");
    let all = template(&["--set", "podMonitor.enabled=true"]).unwrap();
    let pm = one(&all, "PodMonitor");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "http");
    assert!(objects(&all, "ServiceMonitor").is_empty());
    let both = template(&[
        "--set",
        "podMonitor.enabled=true",
        "--set",
        "serviceMonitor.enabled=true",
    ])
    .unwrap_err();
    assert!(both.contains("choose one"), "{both}");
}

/// A tool scripts/setup builds into `~/.cache/upgrade-guard/bin`.
fn cached_tool(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"))
        .join("upgrade-guard/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/setup builds it",
        path.display()
    );
    path
}

/// The chart's README is what helm-docs makes of `values.yaml` (every value, with its
/// comment): a value added without regenerating it fails here.
#[test]
fn the_chart_readme_is_generated_from_its_values() {
    let out = std::process::Command::new(cached_tool("helm-docs"))
        .args([
            "--dry-run",
            "--template-files=README.md.gotmpl",
            "--chart-search-root",
        ])
        .arg(chart())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let kept = std::fs::read_to_string(repo_root().join("deploy/upgrade-guard/README.md")).unwrap();
    assert!(
        generated.trim() == kept.trim(),
        "deploy/upgrade-guard/README.md is stale: run ~/.cache/upgrade-guard/bin/helm-docs --chart-search-root=deploy/upgrade-guard --template-files=README.md.gotmpl"
    );
    let values =
        std::fs::read_to_string(repo_root().join("deploy/upgrade-guard/values.yaml")).unwrap();
    for key in [
        "profile",
        "watchNamespaces",
        "serviceAccount.create",
        "podMonitor",
    ] {
        assert!(kept.contains(&format!("| {key} |")), "{key} in the README");
        assert!(values.contains(key.split('.').next().unwrap()));
    }
}

/// The release workflow passes actionlint (with shellcheck on its scripts), and the
/// README's install command renders: its values exist and name the published image.
#[test]
fn the_release_workflow_lints_and_the_readme_install_command_renders() {
    let actionlint = cached_tool("actionlint");
    let workflows = repo_root().join(".github/workflows");
    let out = std::process::Command::new(&actionlint)
        .arg("-shellcheck=shellcheck")
        .arg(workflows.join("release.yml"))
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let workflow = std::fs::read_to_string(workflows.join("release.yml")).unwrap();
    for needed in [
        "file: deploy/Dockerfile",
        "platforms: linux/amd64,linux/arm64",
        "cosign sign",
        "helm push",
    ] {
        assert!(workflow.contains(needed), "release.yml lacks {needed}");
    }

    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let install = readme
        .lines()
        .find(|l| l.starts_with("helm install upgrade-guard oci://$REGISTRY/charts/upgrade-guard"))
        .expect("README: the install command");
    let words: Vec<String> = install
        .replace("$REGISTRY", "registry/org")
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    let mut sets = vec![];
    for pair in words.windows(2).filter(|p| p[0] == "--set") {
        sets.extend(["--set", pair[1].as_str()]);
    }
    assert!(!sets.is_empty(), "{install}");
    let all = template(&sets).unwrap();
    let deployment = one(&all, "Deployment");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(image.starts_with("registry/org/upgrade-guard:"), "{image}");
    let (config, _) = config_of(&all);
    assert_eq!(config.watch.namespaces, ["my-app"], "{install}");
    assert!(
        readme.contains("kubectl -n upgrade-guard exec deploy/upgrade-guard -- upgrade-guard status --url http://127.0.0.1:8080"),
        "README: the second command"
    );
}

fn sa_user(ns: &str) -> String {
    sa_user_named(ns, "ug-upgrade-guard")
}

fn sa_user_named(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

/// Issue 10.7: installed into the cluster, the chart's RBAC is read-only in the watched
/// namespace until rollback is enabled; then the daemon, authenticated as the chart's
/// ServiceAccount, rolls a failed upgrade back with nothing but that RBAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_chart_is_read_only_until_rollback_is_enabled() {
    let home = tkube::namespace("chart").await;
    let apps = tkube::namespace("chart-apps").await;
    let (h, a) = (home.name.as_str(), apps.name.as_str());
    let chart = chart();
    let watch = format!("watchNamespaces={{{a}}}");
    helm::ok(&["install", "ug", &chart, "-n", h, "--set", &watch]);

    let client = tkube::client().await;
    let d = Api::<Deployment>::namespaced(client.clone(), h)
        .get("ug-upgrade-guard")
        .await
        .unwrap();
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let sc = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), h)
        .get("ug-upgrade-guard")
        .await
        .unwrap();
    let config = Config::parse(&cm.data.unwrap()["config.yaml"], "installed").unwrap();
    assert_eq!(config.watch.namespaces, [a]);

    let user = sa_user(h);
    let check = |verb: &'static str, resource: &'static str, ns: String| {
        let user = user.clone();
        async move { tkube::can(&user, verb, resource, &ns).await }
    };
    for (verb, resource) in [
        ("list", "secrets"),
        ("watch", "secrets"),
        ("get", "configmaps"),
        ("watch", "apps/deployments"),
        ("list", "pods"),
        ("list", "batch/jobs"),
    ] {
        assert!(
            check(verb, resource, a.into()).await,
            "{verb} {resource} in {a}"
        );
    }
    for (verb, resource) in [
        ("create", "secrets"),
        ("update", "secrets"),
        ("delete", "secrets"),
        ("patch", "apps/deployments"),
        ("delete", "pods"),
        ("create", "events.k8s.io/events"),
    ] {
        assert!(
            !check(verb, resource, a.into()).await,
            "read-only by default, yet allowed to {verb} {resource} in {a}"
        );
    }
    // Kubernetes Events: a write, granted only when asked for, in the watched namespaces.
    helm::ok(&[
        "upgrade",
        "ug",
        &chart,
        "-n",
        h,
        "--set",
        &watch,
        "--set",
        "events.enabled=true",
    ]);
    for verb in ["create", "patch"] {
        assert!(
            check(verb, "events.k8s.io/events", a.into()).await,
            "{verb} events in {a}"
        );
    }
    assert!(!check("delete", "events.k8s.io/events", a.into()).await);
    assert!(!check("create", "events.k8s.io/events", "default".into()).await);
    let cm = Api::<ConfigMap>::namespaced(client.clone(), h)
        .get("ug-upgrade-guard")
        .await
        .unwrap();
    assert!(
        Config::parse(&cm.data.unwrap()["config.yaml"], "installed")
            .unwrap()
            .notifications
            .kubernetes_events
    );
    for (verb, resource) in [
        ("update", "configmaps"),
        ("create", "configmaps"),
        ("update", "coordination.k8s.io/leases"),
    ] {
        assert!(
            check(verb, resource, h.into()).await,
            "{verb} {resource} in {h}"
        );
    }
    assert!(!check("list", "secrets", "default".into()).await);

    helm::ok(&[
        "upgrade",
        "ug",
        &chart,
        "-n",
        h,
        "--set",
        &watch,
        "--set",
        "rollback.enabled=true",
        "--set",
        "config.defaults.mode=auto",
    ]);
    for (verb, resource) in [
        ("create", "secrets"),
        ("update", "secrets"),
        ("patch", "apps/deployments"),
        ("delete", "pods"),
    ] {
        assert!(
            check(verb, resource, a.into()).await,
            "{verb} {resource} in {a}"
        );
    }
    assert!(!check("create", "secrets", "default".into()).await);

    // The daemon as the chart's ServiceAccount: it watches, records, takes the Lease and
    // rolls back with only the chart's RBAC.
    let token = tkube::token_for(h, "ug-upgrade-guard").await;
    let kubeconfig = tkube::kubeconfig_with_token(&token);
    let config = short_config(
        "http://127.0.0.1:9",
        "  mode: auto\n",
        &format!(
            "watch:\n  namespaces: [{a}]\nstate:\n  namespace: {h}\n\
             actions:\n  helm: {}\n  leader_election:\n    lease_name: ug-upgrade-guard\n",
            stack().helm_bin.display()
        ),
    );
    let mut opts = options("chart-sa");
    opts.helm_args = vec![
        "--kubeconfig".into(),
        kubeconfig.path().display().to_string(),
    ];
    let daemon = Running::start_with(kubeconfig.path(), &config, opts).await;
    daemon.ready().await;
    let demo = helm::chart("demo-app");
    helm::ok(&[
        "install",
        "app",
        &demo,
        "-n",
        a,
        "--wait",
        "--timeout",
        "60s",
    ]);
    support::auto::baked_healthy_in(h, a, "app", 1).await;
    upgrade(a, "app", "1.1.0", &["unschedulable=true"]);
    let record = wait::until(
        WAIT,
        "the rollback done by the chart's ServiceAccount",
        || async {
            let v = daemon.releases().await;
            let r = v["releases"][0]["automation"]["record"].clone();
            (r["phase"] == "done" || r["phase"] == "verified").then_some(r)
        },
    )
    .await;
    assert_eq!(record["target"], 1, "{record:#}");
    assert!(record["holder"].as_str().unwrap().starts_with("chart-sa"));
    daemon.stop().await;
    helm::ok(&["uninstall", "ug", "-n", h]);
}

/// Issue 11.1: the example pre-upgrade hook (`deploy/examples/preflight-hook.yaml`) is
/// accepted by the API server as written (namespaces adjusted), and its ServiceAccount,
/// bound to the chart's read Roles, is enough for `preflight` to judge the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_preflight_hook_has_what_preflight_needs() {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::{ApiResource, Discovery};
    let home = tkube::namespace("hook-ug").await;
    let gim = tkube::namespace("hook-gim").await;
    let gsp = tkube::namespace("hook-gsp").await;
    let gca = tkube::namespace("hook-gca").await;
    let (h, ns) = (
        home.name.as_str(),
        [gim.name.as_str(), gsp.name.as_str(), gca.name.as_str()],
    );
    let watch = format!("watchNamespaces={{{},{},{}}}", ns[0], ns[1], ns[2]);
    helm::ok(&[
        "install",
        "upgrade-guard",
        &chart(),
        "-n",
        h,
        "--set",
        &watch,
    ]);
    let demo = helm::chart("demo-app");
    for (n, release) in ns.iter().zip(["gim", "gsp", "gca"]) {
        helm::ok(&[
            "install",
            release,
            &demo,
            "-n",
            n,
            "--wait",
            "--timeout",
            "60s",
        ]);
    }

    let text = std::fs::read_to_string(repo_root().join("deploy/examples/preflight-hook.yaml"))
        .unwrap()
        .replace("namespace: gim", &format!("namespace: {}", ns[0]))
        .replace("namespace: gsp", &format!("namespace: {}", ns[1]))
        .replace("namespace: gca", &format!("namespace: {}", ns[2]));
    let client = tkube::client().await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut job = None;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let obj: DynamicObject = serde::Deserialize::deserialize(doc).unwrap();
        let types = obj.types.clone().unwrap();
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let (resource, _) = discovery
            .resolve_gvk(&kube::core::GroupVersionKind::gvk(
                group,
                version,
                &types.kind,
            ))
            .unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            obj.metadata.namespace.as_deref().unwrap(),
            &ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk(group, version, &types.kind),
                &resource.plural,
            ),
        );
        if types.kind == "Job" {
            // The Job is only validated: nothing here runs its container.
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            api.create(&dry, &obj).await.unwrap();
            job = Some(obj);
        } else {
            api.create(&PostParams::default(), &obj).await.unwrap();
        }
    }
    let job = job.expect("the example has a Job");
    let args: Vec<String> = serde_json::from_value(
        job.data["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .unwrap();
    assert_eq!(args[0], "preflight");
    assert!(args.contains(&"--release=gim".to_string()), "{args:?}");

    // preflight as the hook's ServiceAccount, for a suite of the three namespaces.
    let token = tkube::token_for(ns[0], "upgrade-guard-preflight").await;
    let kubeconfig = tkube::kubeconfig_with_token(&token);
    let config = support::cli::config_file(&short_config(
        "http://127.0.0.1:9",
        "",
        &format!(
            "suites:\n  - name: gim\n    order: [[{}/gim], [{}/gsp], [{}/gca]]\n",
            ns[0], ns[1], ns[2]
        ),
    ));
    let kubeconfig_path = kubeconfig.path().display().to_string();
    let gim_ns = ns[0].to_string();
    let run = wait::until(WAIT, "preflight ready as the hook's ServiceAccount", || {
        let (config, kubeconfig_path, gim_ns) =
            (config.arg(), kubeconfig_path.clone(), gim_ns.clone());
        async move {
            let r = tokio::task::spawn_blocking(move || {
                support::cli::run(
                    &[
                        "preflight",
                        "--config",
                        &config,
                        "--release",
                        "gim",
                        "-n",
                        &gim_ns,
                    ],
                    &[("KUBECONFIG", &kubeconfig_path)],
                )
            })
            .await
            .unwrap();
            // Forbidden would be 77: the Roles must be enough.
            assert_ne!(r.code, 77, "{}\n{}", r.stdout, r.stderr);
            (r.code == 0).then_some(r)
        }
    })
    .await;
    assert!(
        run.stdout
            .contains("ready: every installed release of suite gim"),
        "{}",
        run.stdout
    );
    helm::ok(&["uninstall", "upgrade-guard", "-n", h]);
}

/// Issue 12.2: a database password kept in a Kubernetes Secret is read with a Role of its
/// own that allows `get` on that Secret alone; with nothing but the chart's RBAC, the
/// ServiceAccount reads it and the database check connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_lets_upgrade_guard_get_exactly_the_database_password_secrets() {
    use k8s_openapi::api::core::v1::Secret;
    use support::postgres;
    use upgrade_guard::config::SqlSource;
    use upgrade_guard::gather::postgres::Postgres;

    let home = tkube::namespace("chart-db").await;
    let apps = tkube::namespace("chart-db-apps").await;
    let (h, a) = (home.name.as_str(), apps.name.as_str());
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        values.path(),
        format!(
            "watchNamespaces: [{a}]\nconfig:\n  databases:\n    infomart:\n      host: 127.0.0.1\n      port: {}\n      database: postgres\n      user: postgres\n      ca_file: {}\n      password_from:\n        secret: {{name: infomart-db, key: password}}\n",
            postgres::port(),
            postgres::ca_file()
        ),
    )
    .unwrap();
    let values_path = values.path().display().to_string();
    helm::ok(&["install", "ug", &chart(), "-n", h, "-f", &values_path]);

    let user = sa_user(h);
    assert!(tkube::can_on(&user, "get", "secrets", h, "infomart-db").await);
    for (verb, name) in [
        ("get", "other"),
        ("list", ""),
        ("watch", ""),
        ("update", "infomart-db"),
    ] {
        assert!(
            !tkube::can_on(&user, verb, "secrets", h, name).await,
            "may {verb} secrets {name:?} in its own namespace"
        );
    }

    let client = tkube::client().await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "infomart-db"},
        "stringData": {"password": postgres::password()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client, h)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let token = tkube::token_for(h, "ug-upgrade-guard").await;
    let kubeconfig = tkube::kubeconfig_with_token(&token);
    let as_chart = tkube::client_for(kubeconfig.path()).await;
    let config = Config::parse(
        &format!(
            "state:\n  namespace: {h}\ndatabases:\n  infomart:\n    host: 127.0.0.1\n    port: {}\n    database: postgres\n    user: postgres\n    ca_file: {}\n    password_from:\n      secret: {{name: infomart-db, key: password}}\n",
            postgres::port(),
            postgres::ca_file()
        ),
        "test",
    )
    .unwrap();
    let answer = Postgres::new(config.databases, Some(as_chart))
        .query(&SqlSource {
            database: "infomart".into(),
            query: "select 1".into(),
        })
        .await;
    assert_eq!(answer, Ok(Some(1.0)));
    helm::ok(&["uninstall", "ug", "-n", h]);
}

/// The Prometheus Operator's resource types, as kube-prometheus-stack installs them (their
/// schemas left open: what is checked is where the chart puts its objects and labels).
async fn prometheus_operator_crds() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds = Api::<CustomResourceDefinition>::all(tkube::client().await);
    for (plural, kind) in [
        ("servicemonitors", "ServiceMonitor"),
        ("podmonitors", "PodMonitor"),
        ("prometheusrules", "PrometheusRule"),
    ] {
        let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        }))
        .unwrap();
        let _ = crds.create(&kube::api::PostParams::default(), &crd).await;
        wait::until(WAIT, "the resource type served", || async {
            let c = crds
                .get(&format!("{plural}.monitoring.coreos.com"))
                .await
                .ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

/// docs/deploy.md's walkthrough, as written: its values file and its install command (the
/// chart from this checkout instead of the registry, the namespaces made unique), installed
/// into the test cluster; then what it says it creates is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_walkthrough_wires_into_kube_prometheus_stack() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let doc = std::fs::read_to_string(repo_root().join("docs/deploy.md")).unwrap();
    let walk = doc
        .split("## Walkthrough: next to kube-prometheus-stack")
        .nth(1)
        .unwrap();
    let values = walk
        .split("```yaml\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .unwrap();
    let install = walk
        .lines()
        .find(|l| l.starts_with("helm install upgrade-guard oci://"))
        .unwrap();
    let ug = tkube::namespace("walk-ug").await;
    let mon = tkube::namespace("walk-mon").await;
    let app = tkube::namespace("walk-app").await;
    let (u, m, a) = (ug.name.as_str(), mon.name.as_str(), app.name.as_str());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upgrade-guard-values.yaml");
    std::fs::write(
        &file,
        values
            .replace("[my-app]", &format!("[{a}]"))
            .replace("namespace: monitoring", &format!("namespace: {m}")),
    )
    .unwrap();
    prometheus_operator_crds().await;
    let chart = chart();
    let command = install
        .replace(
            "oci://$REGISTRY/charts/upgrade-guard --version 0.1.0",
            &chart,
        )
        .replace("$REGISTRY", "registry/org")
        .replace("-n upgrade-guard", &format!("-n {u}"))
        .replace("upgrade-guard-values.yaml", file.to_str().unwrap());
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    helm::ok(&args);

    let client = tkube::client().await;
    // Step 3: it rolls out (kwok runs its pod).
    wait::until(WAIT, "the Deployment available", || async {
        let d = Api::<Deployment>::namespaced(client.clone(), u)
            .get("upgrade-guard")
            .await
            .ok()?;
        (d.status?.available_replicas? == 1).then_some(())
    })
    .await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), u)
        .get("upgrade-guard")
        .await
        .unwrap();
    let config = Config::parse(&cm.data.unwrap()["config.yaml"], "walkthrough").unwrap();
    assert_eq!(config.watch.namespaces, [a]);
    assert_eq!(config.cluster.as_deref(), Some("prod-eu-1"));
    assert_eq!(
        config.prometheus.url,
        "http://kps-kube-prometheus-stack-prometheus.monitoring.svc:9090"
    );
    assert_eq!(
        config.notifications.alertmanager_urls,
        ["http://kps-kube-prometheus-stack-alertmanager.monitoring.svc:9093"]
    );
    assert!(config.notifications.kubernetes_events);
    let operator = |kind: &str| {
        let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind);
        Api::<DynamicObject>::namespaced_with(client.clone(), u, &ApiResource::from_gvk(&gvk))
    };
    let sm = operator("ServiceMonitor")
        .get("upgrade-guard")
        .await
        .unwrap();
    assert_eq!(sm.metadata.labels.unwrap()["release"], "kps");
    let rule = operator("PrometheusRule")
        .get("upgrade-guard")
        .await
        .unwrap();
    assert_eq!(rule.metadata.labels.unwrap()["release"], "kps");
    let groups: Vec<&str> = rule.data["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        ["upgrade-guard"],
        "the daemon pushes: no verdict rules"
    );
    let dashboard = Api::<ConfigMap>::namespaced(client.clone(), m)
        .get("upgrade-guard-dashboard")
        .await
        .unwrap();
    assert_eq!(dashboard.metadata.labels.unwrap()["grafana_dashboard"], "1");
    assert!(
        tkube::can(
            &sa_user_named(u, "upgrade-guard"),
            "create",
            "events.k8s.io/events",
            a
        )
        .await
    );
    helm::ok(&["uninstall", "upgrade-guard", "-n", u]);
}
