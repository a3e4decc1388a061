//! The `check`, `history` and `config` commands as an operator and a script use them, on the
//! real stack: documented exit codes for errors (never a verdict's), kubeconfig inference,
//! uninstalled releases, a newer revision during `--wait`, bake records (with and without
//! permission), and a Kubernetes API that drops out during `--wait`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use support::cli::{self, check, config_file, short_config, spawn};
use support::eval::{install_then_upgrade, upgrade};
use support::proxy::Proxy;
use support::{helm, kube as tkube};

/// No Prometheus checks are configured: its URL is never used.
const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

/// Issue 7.11: an error exits with its own code, never 1 (failed) or 2 (inconclusive).
#[tokio::test]
async fn errors_have_their_own_exit_codes_never_a_verdict() {
    let ns = tkube::namespace("cli-errors").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let good = config_file(&short_config(NO_PROMETHEUS, "", ""));
    let good = good.arg();
    let check_args =
        |release: &'static str| vec!["check", release, "-n", &ns.name, "--config", &good];

    // Missing configuration file: EX_CONFIG.
    let run = cli::run(
        &[
            "check",
            "app",
            "-n",
            &ns.name,
            "--config",
            "/nonexistent.yaml",
        ],
        &[],
    );
    assert_eq!(run.code, 78, "{}", run.stderr);
    run.says_on_stderr("cannot read the file");
    // Invalid configuration: EX_CONFIG.
    let bad = config_file("defaults:\n  bake_window: 15x\n");
    let run = cli::run(
        &["check", "app", "-n", &ns.name, "--config", &bad.arg()],
        &[],
    );
    assert_eq!(run.code, 78, "{}", run.stderr);
    run.says_on_stderr("defaults.bake_window");
    // Unreadable kubeconfig: EX_CONFIG.
    let mut args = check_args("app");
    args.extend(["--kubeconfig", "/nonexistent-kubeconfig"]);
    let run = cli::run(&args, &[]);
    assert_eq!(run.code, 78, "{}", run.stderr);
    // Cluster unreachable: EX_UNAVAILABLE.
    let nowhere = tkube::kubeconfig_with_server(&format!(
        "https://127.0.0.1:{}",
        support::prometheus::free_port()
    ));
    let nowhere = nowhere.path().to_string_lossy().into_owned();
    let mut args = check_args("app");
    args.extend(["--kubeconfig", &nowhere]);
    let run = cli::run(&args, &[]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    run.says_on_stderr("the Kubernetes API server");
    // Missing release: EX_NOINPUT, for check and for history.
    let run = cli::run(&check_args("nosuchrelease"), &[]);
    assert_eq!(run.code, 66, "{}", run.stderr);
    run.says_on_stderr("release \"nosuchrelease\" not found");
    let run = cli::run(&["history", "nosuchrelease", "-n", &ns.name], &[]);
    assert_eq!(run.code, 66, "{}", run.stderr);
    // Bad arguments: EX_USAGE, not clap's 2.
    let run = cli::run(&["check", "app", "--wait", "5x"], &[]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    let run = cli::run(&["check"], &[]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    // And a verdict still exits with the verdict's code (a bake window that cannot have
    // passed during the runs above, however slowly they went).
    let baking = config_file(
        &short_config(NO_PROMETHEUS, "", "").replace("bake_window: 6s", "bake_window: 30m"),
    );
    let baking = baking.arg();
    let run = cli::run(&["check", "app", "-n", &ns.name, "--config", &baking], &[]);
    assert_eq!(
        run.code, 3,
        "progressing right after the upgrade:\n{}",
        run.stdout
    );
}

/// Found in review: a KUBECONFIG listing several files, as kubectl accepts it.
#[tokio::test]
async fn a_kubeconfig_split_across_files_is_merged() {
    let ns = tkube::namespace("cli-kubeconfig").await;
    helm::ok(&["install", "app", &helm::chart("demo-app"), "-n", &ns.name]);
    let (_files, kubeconfig) = tkube::split_kubeconfig();
    assert!(kubeconfig.contains(':'));
    let run = cli::run(
        &["history", "app", "-n", &ns.name],
        &[("KUBECONFIG", &kubeconfig)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Install complete"), "{}", run.stdout);
}

/// Issue 7.8: uninstalled is reported as such, with no action.
#[tokio::test]
async fn an_uninstalled_release_is_reported_without_action() {
    let ns = tkube::namespace("cli-uninstalled").await;
    install_then_upgrade(&ns.name, "app", &["unschedulable=true"]);
    helm::ok(&["uninstall", "app", "-n", &ns.name, "--keep-history"]);
    let run = check("app", &ns.name, &short_config(NO_PROMETHEUS, "", ""), &[]);
    run.expect(
        5,
        &[
            "revision 2 is uninstalled",
            "nothing to judge and no action",
        ],
    );
    run.refuse("helm rollback");
}

/// `check --wait 90s` started on revision 2 of `app`, whose pods stay Pending (they would
/// fail after 30 s), once it says it judges revision 2.
async fn waiting_on_revision_2(ns: &str) -> cli::Spawned {
    install_then_upgrade(ns, "app", &["unschedulable=true"]);
    let config = config_file(&short_config(
        NO_PROMETHEUS,
        "",
        "releases:\n  - name: app\n    pending_timeout: 30s\n",
    ));
    let path = config.arg();
    let mut running = spawn(
        &["check", "app", "-n", ns, "--config", &path, "--wait", "90s"],
        &[],
        Some(config),
    );
    running.wait_for_stderr("judging revision 2", Duration::from_secs(60));
    running
}

/// Issue 7.8: a release uninstalled (history not kept) while `check --wait` judges it ends
/// the command as uninstalled, with no action for revisions that no longer exist.
#[tokio::test]
async fn an_uninstall_during_wait_ends_without_action() {
    let ns = tkube::namespace("cli-uninstall-wait").await;
    let running = waiting_on_revision_2(&ns.name).await;
    helm::ok(&["uninstall", "app", "-n", &ns.name]);
    let run = running.finish();
    run.expect(
        5,
        &["the release was uninstalled, nothing to judge and no action"],
    );
    run.refuse("helm rollback");
}

/// Issue 7.9: `check --wait` switches to a newer revision and never prints an action for
/// the one it stopped judging.
#[tokio::test]
async fn check_wait_follows_a_newer_revision() {
    let ns = tkube::namespace("cli-newer").await;
    let running = waiting_on_revision_2(&ns.name).await;
    upgrade(&ns.name, "app", "1.2.0", &["unschedulable=false"]);
    let run = running.finish();
    run.expect(
        0,
        &["revision 3 (deployed)", "verdict: healthy", "action: none"],
    );
    run.says_on_stderr("the evaluation of revision 2 is cancelled, judging 3 instead");
    run.refuse("helm rollback");
}

/// A ServiceAccount allowed to read what `check` needs in `ns` and nothing else.
async fn restricted_token(ns: &str) -> String {
    tkube::service_account_token(
        ns,
        "reader",
        serde_json::json!([
            {"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "verbs": ["get", "list"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]}
        ]),
    )
    .await
}

/// Issue 7.10: each revision's final verdict is kept in upgrade-guard's namespace and
/// chooses the rollback target; without permission to read it, `check` says so and falls
/// back to the history.
#[tokio::test]
async fn bake_records_choose_the_rollback_target_and_are_ignored_without_permission() {
    let ns = tkube::namespace("cli-bakes").await;
    let state = tkube::namespace("cli-state").await;
    let config = short_config(
        NO_PROMETHEUS,
        "",
        &format!("state:\n  namespace: {}\n", state.name),
    );
    // Revision 2 is good and recorded so.
    install_then_upgrade(&ns.name, "app", &[]);
    check("app", &ns.name, &config, &["--record"]).expect(0, &["verdict: healthy"]);
    // Revision 3 is bad and recorded so.
    upgrade(&ns.name, "app", "1.2.0", &["unschedulable=true"]);
    let run = check("app", &ns.name, &config, &["--record"]);
    run.expect(1, &[&format!("helm rollback app 2 -n {}", ns.name)]);
    let records = Api::<ConfigMap>::namespaced(tkube::client().await, &state.name)
        .get(&format!("upgrade-guard.bakes.{}.app", ns.name))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(
        records["2"].contains("\"verdict\":\"healthy\""),
        "{records:?}"
    );
    assert!(
        records["3"].contains("\"verdict\":\"failed\""),
        "{records:?}"
    );
    // Revision 4 is bad too: 3 ran (superseded) but failed its bake, so the target is 2.
    upgrade(&ns.name, "app", "1.3.0", &["unschedulable=true"]);
    let run = check("app", &ns.name, &config, &["-o", "json"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["action"]["target"], 2, "{}", run.stdout);
    assert_eq!(report["action"]["basis"], "passed_bake");
    // Someone without access to upgrade-guard's namespace: told, and the history decides.
    let token = restricted_token(&ns.name).await;
    let kubeconfig = tkube::kubeconfig_with_token(&token);
    let path = kubeconfig.path().to_string_lossy().into_owned();
    let file = config_file(&config);
    let run = cli::run(
        &[
            "check",
            "app",
            "-n",
            &ns.name,
            "--config",
            &file.arg(),
            "--wait",
            "60s",
            "--kubeconfig",
            &path,
        ],
        &[],
    );
    run.expect(1, &[&format!("helm rollback app 3 -n {}", ns.name)]);
    run.says_on_stderr("bake records not used (not allowed to read ConfigMaps in namespace");
}

/// Issue 7.11: a Kubernetes API that drops out during `--wait` makes rounds inconclusive
/// (tolerated like Prometheus errors); the command carries on and ends with a verdict.
#[tokio::test]
async fn a_transient_api_outage_during_wait_is_a_round_not_the_end() {
    let ns = tkube::namespace("cli-apidown").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let proxy = Proxy::start(&tkube::api_address());
    let kubeconfig = tkube::kubeconfig_with_server(&format!("https://{}", proxy.address));
    let path = kubeconfig.path().to_string_lossy().into_owned();
    let config = config_file(&short_config(
        NO_PROMETHEUS,
        "",
        "releases:\n  - name: app\n    bake_window: 10s\n",
    ));
    let config_path = config.arg();
    let mut running = spawn(
        &[
            "check",
            "app",
            "-n",
            &ns.name,
            "--config",
            &config_path,
            "--wait",
            "90s",
            "--kubeconfig",
            &path,
        ],
        &[],
        Some(config),
    );
    running.wait_for_stderr("judging revision 2", Duration::from_secs(60));
    proxy.cut();
    running.wait_for_stderr("cannot re-read the history", Duration::from_secs(30));
    proxy.restore();
    let run = running.finish();
    run.expect(0, &["verdict: healthy"]);
}

/// `config validate` names settings that defeat each other, and still accepts the file.
#[test]
fn config_validate_warns_about_settings_that_defeat_each_other() {
    let file = config_file("defaults:\n  readiness_deadline: 12m\n  bake_window: 15m\n");
    let run = cli::run(&["config", "validate", &file.arg()], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.says_on_stderr(
        "readiness_deadline (12m) plus stall_timeout (5m) is longer than bake_window (15m)",
    );
}

/// Issue 22.3: the bash completion script loads into a real bash and completes the
/// subcommands and their flags.
#[test]
fn the_bash_completion_loads_and_completes_subcommands_and_flags() {
    let script = r#"
        source <("$UG" completion bash)
        spec=$(complete -p upgrade-guard) || exit 10
        f=$(sed -E 's/.*-F ([^ ]+).*/\1/' <<<"$spec")
        COMP_WORDS=(upgrade-guard sta); COMP_CWORD=1; COMP_LINE="upgrade-guard sta"; COMP_POINT=${#COMP_LINE}
        "$f" upgrade-guard sta upgrade-guard
        printf '%s\n' "${COMPREPLY[@]}"
        COMP_WORDS=(upgrade-guard check --wa); COMP_CWORD=2; COMP_LINE="upgrade-guard check --wa"; COMP_POINT=${#COMP_LINE}
        "$f" upgrade-guard --wa check
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .env("UG", env!("CARGO_BIN_EXE_upgrade-guard"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = text.lines().collect();
    assert!(words.contains(&"status"), "{words:?}");
    assert!(words.contains(&"--wait"), "{words:?}");
}

/// Issue 22.2: without `-n`, the namespace is chosen as helm chooses it: $HELM_NAMESPACE,
/// else the current kubeconfig context's namespace, else `default`.
#[tokio::test]
async fn the_namespace_defaults_as_helm_chooses_it() {
    let ns = tkube::namespace("cli-context-ns").await;
    let n = ns.name.as_str();
    helm::ok(&["install", "app", &helm::chart("demo-app"), "-n", n]);
    // A kubeconfig whose current context names the namespace.
    let mut kubeconfig: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(&support::stack::stack().kubeconfig).unwrap(),
    )
    .unwrap();
    let current = kubeconfig["current-context"].as_str().unwrap().to_string();
    for context in kubeconfig["contexts"].as_sequence_mut().unwrap() {
        if context["name"] == current.as_str() {
            context["context"]["namespace"] = n.into();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
    let with_context = path.to_string_lossy().into_owned();
    for command in [vec!["history", "app"], vec!["check", "app", "--wait", "0s"]] {
        let run = cli::run(&command, &[("KUBECONFIG", with_context.as_str())]);
        assert!(
            run.code != 66 && !run.stderr.contains("not found"),
            "{command:?} in the context's namespace: {}{}",
            run.stdout,
            run.stderr
        );
    }
    // $HELM_NAMESPACE comes first, as in helm; `-n` before both.
    let elsewhere = cli::run(
        &["history", "app"],
        &[
            ("KUBECONFIG", with_context.as_str()),
            ("HELM_NAMESPACE", "default"),
        ],
    );
    assert_eq!(
        elsewhere.code, 66,
        "{}{}",
        elsewhere.stdout, elsewhere.stderr
    );
    let run = cli::run(&["history", "app"], &[("HELM_NAMESPACE", n)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = cli::run(
        &["history", "app", "-n", n],
        &[("HELM_NAMESPACE", "default")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The stack's own context names none: `default`, where there is no such release.
    assert_eq!(cli::run(&["history", "app"], &[]).code, 66);
}

/// Issue 22.4: `check --wait` says what it waits for, on stderr, one line per verdict
/// change when stderr is not a terminal (a CI log); `--quiet` says nothing; stdout holds
/// only the result either way.
#[tokio::test]
async fn check_wait_shows_each_verdict_change_and_quiet_shows_none() {
    let ns = tkube::namespace("cli-progress").await;
    let n = ns.name.as_str();
    install_then_upgrade(n, "app", &[]);
    // A bake long enough that the first rounds are surely inside it.
    let config = short_config(
        NO_PROMETHEUS,
        "",
        "releases:\n  - name: app\n    bake_window: 20s\n",
    );
    let run = check("app", n, &config, &["-o", "json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "healthy");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(&format!("{n}/app revision 2: ")))
        .collect();
    assert!(
        lines.len() >= 2
            && lines[0].contains(": progressing, bake ends in ")
            && lines.last().unwrap().ends_with(": healthy"),
        "{}",
        run.stderr
    );
    // One line per change, never one per round.
    let mut verdicts: Vec<&str> = lines
        .iter()
        .map(|l| l.split(": ").nth(1).unwrap().split(',').next().unwrap())
        .collect();
    let all = verdicts.len();
    verdicts.dedup();
    assert_eq!(verdicts.len(), all, "{}", run.stderr);

    let quiet = check("app", n, &config, &["--quiet"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert!(!quiet.stderr.contains("revision 2: "), "{}", quiet.stderr);
}

/// Issue 23.6: `config validate --live` runs every query of every release the configuration
/// covers on the real Prometheus: one that answers is fine, a renamed metric returns no
/// series, a series scraped less often than the configuration says cannot fill its windows,
/// a typo is refused by Prometheus; each is named with its release and check, and the exit
/// code says something is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_validate_live_names_each_query_that_cannot_work() {
    let ns = tkube::namespace("live-config").await;
    let n = ns.name.as_str();
    helm::install(n, "app", "demo-app", &[]);
    let prom = support::prometheus::Prometheus::with_app_up(n).await;
    let config = config_file(&short_config(
        &prom.url,
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nreleases:\n  - name: app\n    metrics_presence:\n      \
             - name: up\n        query: 'app_up{{namespace=\"{{{{namespace}}}}\"}}'\n      \
             - name: renamed\n        query: 'app_upp{{namespace=\"{{{{namespace}}}}\"}}'\n      \
             - name: sparse\n        query: 'max(app_sparse{{namespace=\"{{{{namespace}}}}\"}})'\n    custom:\n      \
             - name: typo\n        query: 'sum(rate(app_up[5m])'\n        max: 1\n"
        ),
    ));
    let path = config.arg();
    let out = cli::run(&["config", "validate", &path, "--live", "-o", "json"], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let of = |check: &str| {
        findings
            .iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
            .clone()
    };
    assert!(
        of("metrics_presence:up")["problem"].is_null(),
        "{findings:#?}"
    );
    // The objects the Kubernetes checks read can be listed (the stack's admin).
    assert!(of("kubernetes")["problem"].is_null(), "{findings:#?}");
    let renamed = of("metrics_presence:renamed");
    assert_eq!(renamed["release"], format!("{n}/app"));
    assert_eq!(renamed["tried"], format!("app_upp{{namespace=\"{n}\"}}"));
    assert!(
        renamed["problem"]
            .as_str()
            .unwrap()
            .starts_with("returns no series now"),
        "{renamed:#}"
    );
    // Scraped every 5 s where the configuration says 1 s: its windows were sized for 1 s.
    let sparse = of("metrics_presence:sparse")["problem"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        sparse.starts_with(&format!(
            "its series app_sparse{{namespace=\"{n}\"}} are sampled about every 5s"
        )),
        "{sparse}"
    );
    assert!(
        sparse.contains("prometheus.scrape_interval says 1s"),
        "{sparse}"
    );
    assert!(
        of("custom:typo")["problem"]
            .as_str()
            .unwrap()
            .contains("Prometheus refuses the query"),
        "{findings:#?}"
    );
    let table = cli::run(&["config", "validate", &path, "--live"], &[]);
    assert_eq!(table.code, 1);
    assert!(
        table
            .stdout
            .contains(&format!("{n}/app metrics_presence:renamed: `app_upp")),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .ends_with("5 check(s) of 1 release(s) tried: 3 problem(s)\n"),
        "{}",
        table.stdout
    );
}
