//! Database checks on the real stack: a real PostgreSQL (TLS with a test CA, password
//! authentication) answers the `sql` checks; the real helm and API server hold the judged
//! release. What a query may return, what a connection failure says, a migration confirmed
//! or missing, and a database that stops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use support::cli::{config_file, run, short_config};
use support::eval::{
    evaluator_with, install_then_upgrade, install_then_upgrade_ready, result, rounds_until,
    start_for,
};
use support::kube as tkube;
use support::postgres::{
    self as pg, PASSWORD_ENV, Private, admin, database_yaml, fresh_database, password,
};
use upgrade_guard::checks::{FailClass, Outcome};
use upgrade_guard::config::{Config, SqlSource};
use upgrade_guard::gather::postgres::{Postgres, SqlAnswer, SqlError};
use upgrade_guard::verdict::{RecommendedAction, Verdict};

/// A file holding `text` (a password file, as a mounted Secret would be), kept alive by the
/// returned directory.
fn password_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("password");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    let shown = path.to_string_lossy().into_owned();
    (dir, shown)
}

/// upgrade-guard's client for one database `db` configured by `entry` (a `databases:` item).
async fn client_for(entry: &str) -> Postgres {
    let config = Config::parse(&format!("databases:\n{entry}"), "test").unwrap();
    Postgres::new(config.databases, Some(tkube::client().await))
}

async fn ask(pg: &Postgres, query: &str) -> SqlAnswer {
    pg.query(&SqlSource {
        database: "db".into(),
        query: query.into(),
    })
    .await
}

fn with_file(file: &str) -> String {
    format!("    password_from:\n      file: {file}\n")
}

#[tokio::test]
async fn a_check_reads_one_number_from_a_read_only_query_and_nothing_else() {
    let name = fresh_database("sql_answers");
    admin(&name, "create table t (i int)");
    let (_dir, file) = password_file(&password());
    let pg = client_for(&database_yaml("db", &name, pg::port(), &with_file(&file))).await;

    for (query, value) in [
        (
            "select count(*) from pg_database where datname = 'sql_answers'",
            Some(1.0),
        ),
        (
            "select exists (select 1 from information_schema.tables where table_name = 't')",
            Some(1.0),
        ),
        ("select 2.5::numeric", Some(2.5)),
        ("select 7::smallint", Some(7.0)),
        ("select ' 42 '::text", Some(42.0)),
        ("select null::int", None),
        ("select 1 where false", None),
    ] {
        assert_eq!(ask(&pg, query).await, Ok(value), "{query}");
    }
    for (query, words) in [
        ("select generate_series(1, 3)", "more than one row"),
        ("select 1, 2", "2 columns"),
        ("select now()", "of type timestamptz"),
        ("select 'abc'::text", "the text \"abc\", not a number"),
        (
            "select * from no_such_table",
            "relation \"no_such_table\" does not exist",
        ),
        // A write is refused by the read-only transaction, even for a superuser ...
        (
            "insert into t values (1) returning 1",
            "cannot execute INSERT in a read-only transaction",
        ),
        (
            "create table u (i int)",
            "cannot execute CREATE TABLE in a read-only transaction",
        ),
        // ... and nothing but one statement runs.
        (
            "select 1; drop table t",
            "cannot insert multiple commands into a prepared statement",
        ),
    ] {
        match ask(&pg, query).await {
            Err(SqlError::Query(e)) => {
                assert!(e.contains(words), "{query}: {e:?} lacks {words:?}");
                assert!(e.contains("database db (sql_answers on 127.0.0.1:"), "{e}");
            }
            other => panic!("{query}: {other:?}"),
        }
    }
    assert_eq!(
        admin(&name, "select count(*) from t"),
        "0",
        "nothing was written"
    );

    // A query longer than the statement timeout (2s) is cut by the server: a provider
    // error, not the query's fault.
    match ask(&pg, "select 1 from pg_sleep(30)").await {
        Err(SqlError::Unavailable(e)) => {
            assert!(e.contains("ran longer than statement_timeout (2s)"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connection_failures_say_what_is_wrong_and_never_show_the_password() {
    let name = fresh_database("sql_failures");
    let wrong = "not-the-password-5b1e9";
    let (_dir, wrong_file) = password_file(wrong);
    let (_dir2, file) = password_file(&password());
    let port = pg::port();
    let cases: Vec<(String, &str)> = vec![
        (
            database_yaml("db", &name, port, &with_file(&wrong_file)),
            "authentication failed for user postgres",
        ),
        (
            database_yaml("db", &name, port, &with_file(&file)).replace(
                &format!("ca_file: {}", pg::ca_file()),
                &format!("ca_file: {}", pg::other_ca_file()),
            ),
            "TLS (verify-full) failed",
        ),
        (
            database_yaml("db", "no_such_database", port, &with_file(&file)),
            "database \"no_such_database\" does not exist",
        ),
        (
            database_yaml("db", &name, port, &with_file("/nonexistent/pw")),
            "cannot read the password from file /nonexistent/pw",
        ),
    ];
    for (entry, words) in cases {
        match ask(&client_for(&entry).await, "select 1").await {
            Err(SqlError::Unavailable(e)) => {
                assert!(e.contains(words), "{e:?} lacks {words:?}");
                assert!(!e.contains(wrong) && !e.contains(&password()), "{e}");
            }
            other => panic!("{entry}: {other:?}"),
        }
    }

    // tls: disable is plain TCP, which this server refuses (it takes TLS only).
    let plain = database_yaml("db", &name, port, &with_file(&file)).replace(
        &format!("    ca_file: {}\n", pg::ca_file()),
        "    tls: disable\n",
    );
    match ask(&client_for(&plain).await, "select 1").await {
        Err(SqlError::Unavailable(e)) => assert!(e.contains("no encryption"), "{e}"),
        other => panic!("{other:?}"),
    }

    // Nothing listens: unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let entry = database_yaml("db", &name, closed_port, &with_file(&file));
    match ask(&client_for(&entry).await, "select 1").await {
        Err(SqlError::Unreachable(e)) => {
            assert!(e.contains(&format!("127.0.0.1:{closed_port}")), "{e}");
            assert!(
                SqlError::Unreachable(e.clone())
                    .to_string()
                    .starts_with("PostgreSQL unreachable"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_password_can_come_from_a_kubernetes_secret() {
    let ns = tkube::namespace("sql-secret").await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(tkube::client().await, &ns.name);
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "infomart-db"},
        "stringData": {"password": password()},
    }))
    .unwrap();
    secrets.create(&Default::default(), &secret).await.unwrap();
    let from = |key: &str| {
        format!(
            "    password_from:\n      secret: {{namespace: {}, name: infomart-db, key: {key}}}\n",
            ns.name
        )
    };
    let entry = database_yaml("db", "postgres", pg::port(), &from("password"));
    assert_eq!(
        ask(&client_for(&entry).await, "select 1").await,
        Ok(Some(1.0))
    );

    let entry = database_yaml("db", "postgres", pg::port(), &from("pw"));
    match ask(&client_for(&entry).await, "select 1").await {
        Err(SqlError::Unavailable(e)) => assert!(
            e.contains(&format!(
                "key pw of Secret {}/infomart-db does not exist",
                ns.name
            )),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
}

/// The migration query of the migration tests: is the table the migration adds there?
const MARKER_QUERY: &str =
    "select count(*) from information_schema.tables where table_name = 'gim_schema_marker'";

/// A short configuration whose release `app` has the migration check `query` (equal to 1)
/// against `database`, and readiness deadline `deadline`.
fn migration_config(database: &str, query: &str, deadline: &str) -> String {
    short_config(
        "http://127.0.0.1:9",
        "",
        &format!(
            "databases:\n{}releases:\n  - name: app\n    readiness_deadline: {deadline}\n    bake_window: 8s\n    migration:\n      sql:\n        database: infomart\n        query: \"{query}\"\n      equals: 1\n",
            database_yaml("infomart", database, pg::port(), "")
        ),
    )
}

/// `upgrade-guard check app -n <ns> -o json` with the password in the environment.
fn check_json(
    ns: &str,
    config: &str,
    wait: &str,
    env: &[(&str, &str)],
) -> (i32, serde_json::Value, String) {
    let file = config_file(config);
    let path = file.arg();
    let password = password();
    let mut all = vec![(PASSWORD_ENV, password.as_str())];
    all.extend(env);
    let out = run(
        &[
            "check", "app", "-n", ns, "--config", &path, "--wait", wait, "-o", "json",
        ],
        &all,
    );
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    (out.code, report, out.stderr)
}

fn check_result<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

/// How the upgrade under judgement is made.
enum Upgrade<'a> {
    /// `helm upgrade --wait`, then the rollout waited for to its end (Helm 3's `--wait`
    /// returns before the old pod is gone): the workloads pass however slowly a loaded
    /// machine starts and stops pods.
    Ready,
    /// `helm upgrade --set <values>`, not waiting for the pods to be Ready, only for the
    /// controller to have created them.
    With(&'a [&'a str]),
}

/// The judgement of `app`, installed then upgraded in a fresh namespace, whose migration
/// query runs against `db`: (exit code, report, stderr, namespace).
async fn judge_migration(
    db: &str,
    prefix: &str,
    upgrade: Upgrade<'_>,
    deadline: &str,
) -> (i32, serde_json::Value, String, tkube::TestNamespace) {
    let ns = tkube::namespace(prefix).await;
    match upgrade {
        Upgrade::Ready => {
            install_then_upgrade_ready(&ns.name, "app");
            support::eval::rolled_out(&ns.name, "app").await;
        }
        Upgrade::With(set) => {
            install_then_upgrade(&ns.name, "app", set);
            support::eval::pods_created(&ns.name, "app").await;
        }
    }
    let config = migration_config(db, MARKER_QUERY, deadline);
    let (code, report, stderr) = check_json(&ns.name, &config, "90s", &[]);
    (code, report, stderr, ns)
}

#[tokio::test]
async fn a_migration_confirmed_in_the_database_passes() {
    let db = fresh_database("mig_done");
    admin(&db, "create table gim_schema_marker (version int)");
    let (code, report, stderr, _ns) =
        judge_migration(&db, "sql-mig-done", Upgrade::Ready, "40s").await;
    assert_eq!(report["verdict"], "healthy", "{report:#}\n{stderr}");
    assert_eq!(code, 0);
    let m = check_result(&report, "migration:sql");
    assert_eq!(m["outcome"], "pass", "{m:#}");
    assert_eq!(m["value"], 1.0);
}

#[tokio::test]
async fn a_migration_missing_after_the_readiness_deadline_fails_with_a_pod_restart_never_a_rollback()
 {
    let db = fresh_database("mig_missing");
    let (code, report, stderr, ns) =
        judge_migration(&db, "sql-mig-missing", Upgrade::Ready, "12s").await;
    assert_eq!(report["verdict"], "failed", "{report:#}\n{stderr}");
    assert_eq!(code, 1);
    let m = check_result(&report, "migration:sql");
    assert_eq!(m["outcome"], "fail");
    assert_eq!(m["on_fail"]["kind"], "restart_pod");
    let summary = m["summary"].as_str().unwrap();
    assert!(
        summary.contains("not confirmed in the database"),
        "{summary}"
    );
    // The workloads were fine: only the migration failed, and the remedy is a restart.
    let rollout = check_result(&report, "rollout:Deployment/app");
    assert_eq!(rollout["outcome"], "pass", "{rollout:#}\n{stderr}");
    assert_eq!(report["action"]["action"], "restart_pod", "{report:#}");
    let command = format!("kubectl rollout restart deployment/app -n {}", ns.name);
    assert_eq!(report["action"]["command"], command.as_str());
    assert!(!report.to_string().contains("helm rollback"), "{report:#}");
}

/// Like GIM, whose pod is not Ready until its migration (inside the pod) has run: the pod
/// still starting at the readiness deadline, its rollout not done, are the migration's
/// consequences; the remedy is still the restart.
#[tokio::test]
async fn a_pod_waiting_for_its_migration_is_restarted_not_rolled_back() {
    let db = fresh_database("mig_waiting");
    let (code, report, stderr, _ns) = judge_migration(
        &db,
        "sql-mig-waiting",
        Upgrade::With(&["fault=NotReady"]),
        "12s",
    )
    .await;
    assert_eq!(report["verdict"], "failed", "{report:#}\n{stderr}");
    assert_eq!(code, 1);
    assert_eq!(
        check_result(&report, "migration:sql")["outcome"],
        "fail",
        "{report:#}"
    );
    // The pod is still starting (NotReady, no crash): its rollout and the pod itself are not
    // passing (failed, held for their `for:`, or the pod still within its own time when the
    // controller created it late on a busy machine).
    let pods = check_result(&report, "pending_pods");
    assert_eq!(pods["counts"]["NotReady"], 1, "{pods:#}");
    for r in [check_result(&report, "rollout:Deployment/app"), pods] {
        assert_ne!(r["outcome"], "pass", "{r:#}");
    }
    assert_eq!(report["action"]["action"], "restart_pod", "{report:#}");
    assert!(!report.to_string().contains("helm rollback"), "{report:#}");
}

#[tokio::test]
async fn a_wrong_password_is_inconclusive_with_a_clear_error_and_never_logged() {
    let db = fresh_database("mig_wrong_pw");
    let ns = tkube::namespace("sql-wrong-pw").await;
    install_then_upgrade(&ns.name, "app", &[]);
    let wrong = "wrong-password-81c4a";
    // Long enough for the 4 failed queries in a row that make it inconclusive, however
    // slowly the rounds go on a busy machine (an inconclusive verdict is never final, so
    // `check` waits all of it).
    let (_, report, stderr) = check_json(
        &ns.name,
        &migration_config(&db, "select 1", "40s"),
        "20s",
        &[(PASSWORD_ENV, wrong), ("RUST_LOG", "debug")],
    );
    let m = check_result(&report, "migration:sql");
    assert_eq!(m["outcome"], "inconclusive", "{m:#}");
    let summary = m["summary"].as_str().unwrap();
    assert!(
        summary.contains("authentication failed for user postgres")
            && summary.contains("database infomart"),
        "{summary}"
    );
    assert_ne!(report["verdict"], "failed");
    for text in [report.to_string(), stderr] {
        assert!(!text.contains(wrong), "the password is shown: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_database_makes_the_migration_inconclusive_and_the_probe_unreachable() {
    let mut server = Private::start();
    let ns = tkube::namespace("sql-stopped").await;
    tokio::task::spawn_blocking({
        let ns = ns.name.clone();
        move || install_then_upgrade(&ns, "app", &[])
    })
    .await
    .unwrap();
    let (_dir, file) = password_file(&password());
    let config = short_config(
        "http://127.0.0.1:9",
        "",
        &format!(
            "databases:\n{}releases:\n  - name: app\n    bake_window: 10m\n    migration:\n      sql: {{database: infomart, query: select 1}}\n      equals: 1\n    dependencies:\n      - name: postgresql\n        sql: {{database: infomart, query: select 1}}\n        equals: 1\n",
            database_yaml("infomart", "postgres", server.port, &with_file(&file))
        ),
    );
    let (mut evaluator, config, _) = evaluator_with(&config).await;
    let key = upgrade_guard::release::ReleaseKey::new(&ns.name, "app");
    evaluator.begin(start_for(&ns.name, "app").await, config.policy_for(&key));
    let mut seen = Vec::new();
    let up = rounds_until(&mut evaluator, &mut seen, |r| {
        r.results
            .iter()
            .filter(|c| c.check == "migration:sql" || c.check == "dependency:postgresql")
            .all(|c| c.outcome == Outcome::Pass)
    })
    .await;
    assert_eq!(up.verdict, Verdict::Progressing);

    server.stop();
    // The probe's `for:` (two evaluations) must pass before it counts; meanwhile the
    // migration replays its last answer, then is inconclusive — never failed.
    let down = rounds_until(&mut evaluator, &mut seen, |r| {
        result(r, "dependency:postgresql").outcome == Outcome::Fail
            && result(r, "migration:sql").outcome == Outcome::Inconclusive
    })
    .await;
    let probe = result(&down, "dependency:postgresql");
    assert!(
        probe.summary.starts_with("PostgreSQL unreachable"),
        "{}",
        probe.summary
    );
    assert_eq!(
        probe.on_fail,
        FailClass::FixDependency {
            name: "postgresql".into()
        }
    );
    assert_eq!(down.verdict, Verdict::Failed);
    assert_eq!(
        down.action,
        RecommendedAction::FixDependency {
            name: "postgresql".into()
        }
    );
    for r in &seen {
        let m = result(r, "migration:sql");
        assert_ne!(
            m.outcome,
            Outcome::Fail,
            "a database error never fails the migration: {}",
            m.summary
        );
        if result(r, "dependency:postgresql").outcome == Outcome::Pending {
            assert!(!matches!(r.action, RecommendedAction::Rollback { .. }));
        }
    }
    let m = result(&down, "migration:sql");
    assert!(
        m.summary.contains("PostgreSQL unreachable"),
        "{}",
        m.summary
    );
    assert!(
        m.summary.contains("until the database answers again"),
        "{}",
        m.summary
    );
}

/// The database check of the release in `/api/v1/releases`, once the revision is judged.
fn served_check(releases: &serde_json::Value, check: &str) -> Option<serde_json::Value> {
    releases["releases"]
        .as_array()?
        .iter()
        .find(|r| r["release"]["name"] == "app")?["judgement"]["results"]
        .as_array()?
        .iter()
        .find(|r| r["check"] == check)
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_keeps_judging_and_counting_while_its_database_goes_away() {
    use support::daemon::Running;
    use support::wait;

    let mut server = Private::start();
    let ns = tkube::namespace("sql-daemon").await;
    let n = ns.name.clone();
    let (_dir, file) = password_file(&password());
    let config = short_config(
        "http://127.0.0.1:9",
        "",
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\ndatabases:\n{}releases:\n  - name: app\n    bake_window: 10m\n    dependencies:\n      - name: postgresql\n        sql: {{database: infomart, query: select 1}}\n        equals: 1\n",
            database_yaml("infomart", "postgres", server.port, &with_file(&file))
        ),
    );
    let d = Running::start(&support::stack::stack().kubeconfig, &config).await;
    d.ready().await;
    tokio::task::spawn_blocking({
        let n = n.clone();
        move || install_then_upgrade(&n, "app", &[])
    })
    .await
    .unwrap();
    let series = |outcome: &str| {
        format!(
            r#"upgrade_guard_database_queries_total{{database="infomart",outcome="{outcome}"}}"#
        )
    };
    wait::until(
        support::eval::WAIT,
        "the probe confirmed by the daemon",
        || async {
            let c = served_check(&d.releases().await, "dependency:postgresql")?;
            (c["outcome"] == "pass").then_some(())
        },
    )
    .await;
    assert!(d.metric(&series("success")).await.unwrap() >= 1.0);
    assert_eq!(d.metric(&series("unreachable")).await, Some(0.0));

    server.stop();
    let probe = wait::until(
        support::eval::WAIT,
        "the probe reporting PostgreSQL unreachable",
        || async {
            let c = served_check(&d.releases().await, "dependency:postgresql")?;
            (c["outcome"] == "fail").then_some(c)
        },
    )
    .await;
    assert!(
        probe["summary"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL unreachable"),
        "{probe:#}"
    );
    assert!(d.metric(&series("unreachable")).await.unwrap() >= 1.0);
    let (status, _) = d.get("/readyz").await;
    assert_eq!(
        status, 200,
        "a database going away does not make the daemon unready"
    );
    let v = d.releases().await;
    let j = &v["releases"][0]["judgement"];
    assert_eq!(j["action"]["action"], "fix_dependency", "{j:#}");
    d.stop().await;
}
