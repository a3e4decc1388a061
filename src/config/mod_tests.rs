//! Tests of configuration parsing, validation and per-release resolution.

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "test.yaml").map_err(|e| e.to_string())
}

fn key(ns: &str, name: &str) -> ReleaseKey {
    ReleaseKey::new(ns, name)
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn the_built_in_profile_is_valid_and_follows_the_runbook() {
    let c = Config::default_profile().unwrap();
    assert_eq!(c.watch.namespaces, ["gim", "gsp", "gca"]);
    assert_eq!(c.prometheus.errors_before_inconclusive, 4);
    assert_eq!(c.prometheus.retry_interval, Duration::from_secs(10));
    assert_eq!(c.watch.max_payload_bytes, 16 * 1024 * 1024);

    let gim = c.policy_for(&key("gim", "gim"));
    assert_eq!(gim.rollback_timeout, 15 * MIN);
    assert!(
        gim.readiness_deadline >= 30 * MIN,
        "long enough for the first transformation job"
    );
    let lag = gim.lag.unwrap();
    assert!(lag.query.contains("gim_kafka_timestamp_behind"));
    assert!(
        gim.migration
            .unwrap()
            .job_name_pattern
            .unwrap()
            .is_match("Job_MigrateGIM")
    );
    assert_eq!(gim.metrics_presence[0].name, "gim_kafka_timestamp_behind");

    assert_eq!(c.policy_for(&key("gsp", "gsp")).rollback_timeout, 15 * MIN);
    for (ns, name) in [
        ("gim", "gim-monitoring"),
        ("gca", "gca"),
        ("gca", "gca-monitoring"),
    ] {
        assert_eq!(
            c.policy_for(&key(ns, name)).rollback_timeout,
            5 * MIN,
            "{name}"
        );
    }
    // A release the profile does not name gets the defaults.
    let other = c.policy_for(&key("web", "shop"));
    assert_eq!(other.bake_window, 15 * MIN);
    assert!(other.lag.is_none());
    assert_eq!(other.mode, Mode::Recommend);
}

#[test]
fn an_empty_file_means_defaults() {
    let c = parse("").unwrap();
    assert!(c.watch.namespaces.is_empty());
    assert_eq!(c.evaluation_interval, Duration::from_secs(30));
    assert_eq!(c.policy_for(&key("a", "b")).pending_timeout, 5 * MIN);
}

#[test]
fn overrides_apply_field_by_field_in_file_order() {
    let c = parse(
        "defaults:\n  bake_window: 20m\n  pending_timeout: 3m\n\
         releases:\n  - name: api\n    bake_window: 1h\n  - name: api\n    namespace: prod\n    mode: auto\n",
    )
    .unwrap();
    let prod = c.policy_for(&key("prod", "api"));
    assert_eq!(
        (prod.bake_window, prod.pending_timeout, prod.mode),
        (60 * MIN, 3 * MIN, Mode::Auto)
    );
    let dev = c.policy_for(&key("dev", "api"));
    assert_eq!((dev.bake_window, dev.mode), (60 * MIN, Mode::Recommend));
}

#[test]
fn errors_name_the_field_and_the_line() {
    let cases = [
        (
            "releases:\n  - name: gim\n    rollback_timout: 15m\n",
            &["releases[0]", "unknown field `rollback_timout`", "line 3"][..],
        ),
        (
            "defaults:\n  bake_window: 15x\n",
            &[
                "defaults.bake_window",
                "\"15x\" is not a duration",
                "line 2",
            ],
        ),
        (
            "prometheus:\n  timeout: -5s\n",
            &["prometheus.timeout", "must not be negative"],
        ),
        (
            "defaults:\n  custom:\n    - name: errors\n      query: up\n      min: 5\n      max: 1\n",
            &["defaults.custom[0]", "min 5 is above max 1", "line 3"],
        ),
        (
            "defaults:\n  custom:\n    - name: errors\n      query: up\n",
            &["needs min, max, both, or equals"],
        ),
        (
            "defaults:\n  custom:\n    - name: e\n      query: up\n      min: 1\n      on_no_data: maybe\n",
            &["on_no_data", "unknown variant `maybe`"],
        ),
        (
            "defaults:\n  migration:\n    job_name_pattern: \"(unclosed\"\n",
            &[
                "defaults.migration.job_name_pattern",
                "not a valid regular expression",
            ],
        ),
        (
            "defaults:\n  lag:\n    query: 'x{ns=\"{{namespac}}\"}'\n    window: 5m\n    max_slope: 1\n",
            &["defaults.lag.query", "unknown placeholder"],
        ),
        (
            "defaults:\n  name: gim\n",
            &["defaults: name and namespace belong"],
        ),
        (
            "releases:\n  - namespace: gim\n",
            &["releases[0]: needs the name"],
        ),
        (
            "prometheus:\n  url: prometheus:9090\n",
            &["prometheus.url", "http://"],
        ),
        (
            "notifications:\n  external_url: upgrade-guard:8080\n",
            &["notifications.external_url", "http://"],
        ),
        (
            "notifications:\n  runbook_url: wiki/alerts\n",
            &["notifications.runbook_url", "\"\" for none"],
        ),
        (
            "evaluation:\n  interval: 0s\n",
            &["evaluation.interval", "longer than zero"],
        ),
        ("watch: [gim]\n", &["watch", "expected struct"]),
        (
            "defaults:\n  custom:\n    - {name: a, query: up, min: 1}\n    - {name: a, query: up, min: 2}\n",
            &["used twice"],
        ),
    ];
    for (text, expected) in cases {
        let err = parse(text).expect_err(text);
        assert!(err.starts_with("test.yaml: "), "{err}");
        for part in expected {
            assert!(
                err.contains(part),
                "error {err:?} lacks {part:?} (input {text:?})"
            );
        }
    }
}

#[test]
fn placeholders_are_rendered_per_release() {
    assert_eq!(
        render_query(
            "up{namespace=\"{{namespace}}\",app=\"{{release}}\"}",
            &key("gim", "gim-monitoring")
        ),
        "up{namespace=\"gim\",app=\"gim-monitoring\"}"
    );
}

/// Issue 7.4: a failure must hold for a `for:`; one sample never decides.
#[test]
fn for_durations_default_to_two_evaluations_and_at_least_one_scrape() {
    let c = parse(
        "prometheus:\n  scrape_interval: 30s\nevaluation:\n  interval: 10s\n\
         defaults:\n  dependencies:\n    - {name: kafka, query: up, min: 1}\n    - {name: pg, query: up, min: 1, for: 5m}\n\
         \x20 lag:\n    query: x\n    window: 10m\n    max_slope: 1\n",
    )
    .unwrap();
    let p = c.policy_for(&key("a", "b"));
    assert_eq!(
        p.dependencies[0].hold,
        30 * Duration::from_secs(1),
        "max(2 × 10s, 30s)"
    );
    assert_eq!(p.dependencies[1].hold, 5 * MIN);
    let lag = p.lag.unwrap();
    assert_eq!(
        (lag.hold, lag.min_samples),
        (30 * Duration::from_secs(1), 5)
    );
    let c = parse("evaluation:\n  interval: 1m\n").unwrap();
    assert_eq!(c.default_hold.promql, 2 * MIN);
    // The built-in profile: two evaluation intervals of 30 s.
    let gim = Config::default_profile()
        .unwrap()
        .policy_for(&key("gim", "gim"));
    assert_eq!(gim.lag.unwrap().hold, MIN);
}

#[test]
fn windows_and_holds_that_let_one_sample_decide_are_refused() {
    let cases = [
        (
            "defaults:\n  custom:\n    - {name: e, query: up, max: 0, for: 10s}\n",
            &[
                "defaults.custom[0].for",
                "shorter than one scrape interval (30s)",
            ][..],
        ),
        (
            "defaults:\n  lag:\n    query: x\n    window: 2m\n    max_slope: 1\n",
            &[
                "defaults.lag.window",
                "2m holds fewer than the 5 points a slope needs at the 30s scrape interval; use at least 2m30s",
            ],
        ),
        (
            "defaults:\n  lag:\n    query: x\n    window: 10m\n    max_slope: 1\n    min_samples: 2\n",
            &["defaults.lag.min_samples", "too few"],
        ),
        (
            "releases:\n  - name: gim\n    lag: {query: x, window: 10m, max_slope: 1, for: 1s}\n",
            &["releases[0].lag.for"],
        ),
        ("state:\n  namespace: ''\n", &["state.namespace"]),
    ];
    for (text, expected) in cases {
        let err = parse(text).expect_err(text);
        for part in expected {
            assert!(err.contains(part), "error {err:?} lacks {part:?}");
        }
    }
}

/// Issue 7.1: validation warns when a setting defeats another.
#[test]
fn warnings_say_which_setting_defeats_which() {
    let c = parse(
        "defaults:\n  readiness_deadline: 5m\n  stall_timeout: 11m\n\
         releases:\n  - name: gim\n    bake_window: 20m\n    lag: {query: x, window: 25m, max_slope: 1}\n",
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with(
            "defaults: readiness_deadline (5m) plus stall_timeout (11m) is longer than bake_window (15m)"
        ),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings[1]
            .starts_with("releases[0] (gim): lag.window (25m) is longer than bake_window (20m)"),
        "{:?}",
        c.warnings
    );
    assert!(Config::default_profile().unwrap().warnings.is_empty());
    assert_eq!(parse("").unwrap().state.namespace, "upgrade-guard");
}

/// Issue 19.15: settings that make a check unanswerable are warned about at `config
/// validate` and start-up: a presence query that aggregates (its absence can never be
/// proven), a release entry whose namespace is not watched.
#[test]
fn settings_that_make_a_check_unanswerable_are_warned_about() {
    let c = parse(
        "watch:\n  namespaces: [gim]\n\
         releases:\n  - name: gsp\n    namespace: gsp\n\
         \x20   metrics_presence:\n      - {name: flink, query: 'sum by (job) (flink_up)'}\n      - {name: raw, query: 'summary_metric{a=\"b\"}'}\n",
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with(
            "releases[0] (gsp): namespace gsp is not among watch.namespaces: its revisions are never seen"
        ),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings[1].starts_with(
            "releases[0] (gsp): metrics_presence[0] (flink): the query aggregates, so its series carry no job label"
        ),
        "{:?}",
        c.warnings
    );
}

/// The profile with the commented block that starts at the line `marker` uncommented.
fn uncommented(text: &str, marker: &str) -> String {
    let start = text
        .find(&format!("\n{marker}\n"))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{marker:?} is in the profile"));
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| format!("{}\n", l.replacen("# ", "", 1)))
        .collect();
    let end = start
        + text[start..]
            .lines()
            .take_while(|l| l.trim_start().starts_with('#'))
            .map(|l| l.len() + 1)
            .sum::<usize>();
    format!("{}{block}{}", &text[..start], &text[end..])
}

/// The commented database, migration query and dependency examples of the built-in
/// profile are valid once uncommented, and mean what they say.
#[test]
fn the_profile_s_commented_examples_are_valid_when_uncommented() {
    let mut text = DEFAULT_PROFILE.to_string();
    for marker in ["# databases:", "      # sql:", "    # dependencies:"] {
        text = uncommented(&text, marker);
    }
    let c = Config::parse(&text, "uncommented").unwrap();
    let db = &c.databases["infomart"];
    assert_eq!(db.tls, TlsMode::VerifyFull);
    assert_eq!(
        db.password,
        Some(PasswordSource::Secret {
            namespace: "upgrade-guard".into(),
            name: "upgrade-guard-infomart".into(),
            key: "password".into()
        })
    );
    let gim = c.policy_for(&key("gim", "gim"));
    let names: Vec<&str> = gim.dependencies.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["kafka", "postgresql"]);
    assert_eq!(
        gim.dependencies[0].source,
        Source::PromQL("kafka_brokers{job=\"kafka-exporter\"}".into())
    );
    assert_eq!(gim.dependencies[0].hold, 2 * MIN);
    assert_eq!(
        gim.dependencies[1].source.sql().map(|s| s.query.as_str()),
        Some("select 1")
    );
    let migration = gim.migration.unwrap();
    assert!(
        migration.job_name_pattern.is_some(),
        "the Job pattern stays"
    );
    let sql = migration.sql.unwrap();
    assert_eq!(sql.on_no_data, OnNoData::Fail);
    assert_eq!((sql.min, sql.max), (Some(1.0), Some(1.0)));
    let query = &sql.source.sql().unwrap().query;
    assert!(
        query.contains("TABLE_FROM_THE_RELEASE_NOTES") && !query.contains('\n'),
        "a placeholder, not an invented table: {query}"
    );
}

#[test]
fn watch_settings_are_checked_with_their_units() {
    let bad = [
        (
            "watch:\n  max_payload_bytes: 0\n",
            "watch.max_payload_bytes: must be at least 1024",
        ),
        (
            "watch:\n  storage: []\n",
            "watch.storage: name at least one",
        ),
        (
            "watch:\n  storage: [etcd]\n",
            "unknown variant `etcd`, expected `secret` or `configmap`",
        ),
        (
            "watch:\n  watch_timeout: 60s\n  idle_timeout: 60s\n",
            "watch.idle_timeout: must be longer than watch_timeout (1m)",
        ),
        (
            "watch:\n  fetch_timeout: 0s\n",
            "watch.fetch_timeout: must be greater than 0",
        ),
    ];
    for (text, expected) in bad {
        let err = Config::parse(text, "t.yaml").unwrap_err();
        assert!(
            err.message().contains(expected),
            "{text:?}: {}",
            err.message()
        );
    }
    let ok = Config::parse(
        "watch:\n  storage: [configmap, secret]\n  watch_timeout: 10s\n  idle_timeout: 15s\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(
        ok.watch.storage,
        [
            crate::release::labels::Storage::ConfigMap,
            crate::release::labels::Storage::Secret
        ]
    );
    assert_eq!(ok.watch.idle_timeout, Duration::from_secs(15));
}

#[test]
fn mode_for_agrees_with_the_whole_policy() {
    let c = Config::parse(
        "defaults: {mode: observe}\n\
         releases:\n\
         - {name: gim, mode: auto}\n\
         - {name: gim, namespace: staging, bake_window: 1m}\n\
         - {name: gim, namespace: lab, mode: recommend}\n\
         - {name: gsp, bake_window: 1m}\n",
        "t",
    )
    .unwrap();
    for (ns, name, want) in [
        ("gim", "gim", Mode::Auto),
        ("staging", "gim", Mode::Auto),
        ("lab", "gim", Mode::Recommend),
        ("gsp", "gsp", Mode::Observe),
        ("x", "y", Mode::Observe),
    ] {
        let key = ReleaseKey::new(ns, name);
        assert_eq!(c.mode_for(&key), want, "{key}");
        assert_eq!(c.policy_for(&key).mode, want, "{key}");
    }
}

#[test]
fn bake_window_agrees_with_the_whole_policy() {
    let c = Config::parse(
        "defaults: {bake_window: 20m}\n\
         releases:\n\
         - {name: gim, bake_window: 1h}\n\
         - {name: gim, namespace: staging, bake_window: 1m}\n\
         - {name: gim, namespace: lab, mode: auto}\n",
        "t",
    )
    .unwrap();
    for (ns, name, want) in [
        ("gim", "gim", 60 * MIN),
        ("staging", "gim", MIN),
        ("lab", "gim", 60 * MIN),
        ("x", "y", 20 * MIN),
    ] {
        let key = ReleaseKey::new(ns, name);
        assert_eq!(c.bake_window(&key), want, "{key}");
        assert_eq!(c.policy_for(&key).bake_window, want, "{key}");
    }
}

#[test]
fn the_profile_orders_the_suite_gim_gsp_gca_and_bad_suites_are_refused() {
    let c = Config::default_profile().unwrap();
    let suite = &c.suites[0];
    assert_eq!(suite.name, "genesys-info-mart");
    let step = |ns: &str, name: &str| suite.step_of(&ReleaseKey::new(ns, name));
    assert_eq!(
        (
            step("gim", "gim"),
            step("gim", "gim-monitoring"),
            step("gsp", "gsp"),
            step("gca", "gca")
        ),
        (Some(0), Some(0), Some(1), Some(2))
    );
    assert_eq!(step("gim", "other"), None);
    assert_eq!(suite.cycle, Duration::from_secs(24 * 3600));
    assert_eq!(
        c.suite_of(&ReleaseKey::new("gca", "gca-monitoring"))
            .map(|s| s.name.as_str()),
        Some("genesys-info-mart")
    );
    for (text, words) in [
        (
            "suites: [{name: s, order: [[gim]]}]",
            "must read namespace/release",
        ),
        ("suites: [{name: s, order: []}]", "list the steps"),
        ("suites: [{name: s, order: [[a/a], []]}]", "list the steps"),
        (
            "suites: [{name: s, order: [[a/a]]}, {name: t, order: [[a/a]]}]",
            "already in suite \"s\"",
        ),
        (
            "suites: [{name: s, order: [[a/a]]}, {name: s, order: [[b/b]]}]",
            "a name of its own",
        ),
        (
            "suites: [{name: s, order: [[a/a]], cycle: 0s}]",
            "suites[0].cycle",
        ),
    ] {
        let e = Config::parse(text, "t").unwrap_err();
        assert!(e.message().contains(words), "{text}: {}", e.message());
    }
}

const INFOMART: &str = "databases:\n  infomart:\n    host: pg.gim.svc\n    database: gim\n    user: upgrade_guard\n    password_from:\n      env: INFOMART_PASSWORD\n";

#[test]
fn databases_are_read_with_safe_defaults_and_never_hold_a_password() {
    let c = parse(INFOMART).unwrap();
    let db = &c.databases["infomart"];
    assert_eq!(db.port, 5432);
    assert_eq!(
        db.tls,
        TlsMode::VerifyFull,
        "verify-full unless told otherwise"
    );
    assert_eq!(
        db.password,
        Some(PasswordSource::Env("INFOMART_PASSWORD".into()))
    );
    assert_eq!(db.connect_timeout, Duration::from_secs(5));
    assert_eq!(db.statement_timeout, Duration::from_secs(10));

    let secret = parse(
        "state:\n  namespace: ug\ndatabases:\n  infomart:\n    host: h\n    database: d\n    user: u\n    tls: disable\n    password_from:\n      secret: {name: infomart-db, key: password}\n",
    )
    .unwrap();
    let db = &secret.databases["infomart"];
    assert_eq!(db.tls, TlsMode::Disable);
    assert!(
        secret
            .warnings
            .iter()
            .any(|w| w.contains("databases.infomart.tls: disable")),
        "{:?}",
        secret.warnings
    );
    assert!(parse(INFOMART).unwrap().warnings.is_empty());
    assert_eq!(
        db.password,
        Some(PasswordSource::Secret {
            namespace: "ug".into(),
            name: "infomart-db".into(),
            key: "password".into()
        }),
        "a Secret without a namespace is upgrade-guard's own"
    );

    let bad = [
        (
            "databases:\n  x:\n    host: h\n    database: d\n    user: u\n    password: hunter2\n",
            "credentials never go in the configuration",
        ),
        (
            "databases:\n  x:\n    host: h\n    database: d\n    user: u\n    password_from: {env: A, file: /b}\n",
            "name exactly one of env",
        ),
        (
            "databases:\n  x:\n    database: d\n    user: u\n",
            "databases.x.host: required",
        ),
        (
            "databases:\n  x:\n    host: h\n    database: d\n    user: u\n    tls: require\n",
            "unknown variant `require`",
        ),
        (
            "databases:\n  x:\n    host: h\n    database: d\n    user: u\n    tls: disable\n    ca_file: /ca.pem\n",
            "no certificate is checked",
        ),
    ];
    for (text, words) in bad {
        let err = parse(text).expect_err(text);
        assert!(err.contains(words), "{err:?} lacks {words:?}");
        assert!(
            !err.contains("hunter2"),
            "the password is never repeated: {err}"
        );
    }
}

#[test]
fn sql_checks_name_a_database_and_their_bounds() {
    let text = format!(
        "{INFOMART}evaluation:\n  interval: 10s\ndefaults:\n  migration:\n    sql:\n      database: infomart\n      query: select exists (select 1 from information_schema.tables where table_name = 'x')\n    equals: true\n    on_no_data: fail\n  dependencies:\n    - name: postgresql\n      sql: {{database: infomart, query: select 1}}\n      equals: 1\n"
    );
    let c = parse(&text).unwrap();
    let p = c.policy_for(&key("gim", "gim"));
    let m = p.migration.clone().unwrap();
    assert!(m.job_name_pattern.is_none());
    let sql = m.sql.unwrap();
    assert_eq!(
        (sql.min, sql.max),
        (Some(1.0), Some(1.0)),
        "equals: true is 1"
    );
    assert_eq!(sql.on_no_data, OnNoData::Fail);
    assert_eq!(
        sql.hold,
        Duration::from_secs(20),
        "two evaluation intervals"
    );
    assert_eq!(
        p.dependencies[0].source.sql().map(|s| s.database.as_str()),
        Some("infomart")
    );
    assert_eq!(p.sql_sources().count(), 2);

    let bad = [
        (
            "defaults:\n  dependencies:\n    - {name: pg, sql: {database: nope, query: select 1}, min: 1}\n".to_string(),
            "\"nope\" is not under databases",
        ),
        (
            format!("{INFOMART}defaults:\n  custom:\n    - {{name: pg, query: up, sql: {{database: infomart, query: select 1}}, min: 1}}\n"),
            "either query (PromQL) or sql",
        ),
        (
            format!("{INFOMART}defaults:\n  custom:\n    - {{name: pg, sql: {{database: infomart, query: select 1}}, equals: 1, min: 1}}\n"),
            "equals replaces min and max",
        ),
        (
            format!("{INFOMART}evaluation:\n  interval: 30s\ndefaults:\n  custom:\n    - {{name: pg, sql: {{database: infomart, query: select 1}}, min: 1, for: 10s}}\n"),
            "shorter than the evaluation interval",
        ),
        (
            format!("{INFOMART}defaults:\n  custom:\n    - {{name: pg, sql: {{database: infomart, query: \"select count(*) from t where ns = '{{{{namespace}}}}'\"}}, min: 1}}\n"),
            "placeholders are not filled in SQL",
        ),
        (
            "defaults:\n  migration:\n    required: true\n".to_string(),
            "name the migration's Job",
        ),
        (
            "defaults:\n  migration:\n    job_name_pattern: migrat\n    equals: 1\n".to_string(),
            "apply to the sql check",
        ),
        (
            format!("{INFOMART}defaults:\n  migration:\n    sql: {{database: infomart, query: select 1}}\n"),
            "needs min, max, both, or equals",
        ),
    ];
    for (text, words) in bad {
        let err = parse(&text).expect_err(&text);
        assert!(err.contains(words), "{err:?} lacks {words:?}");
    }
}

#[test]
fn errors_carry_the_field_path_and_the_line_as_data() {
    let e = Config::parse("defaults:\n  bake_window: 0s\n", "t").unwrap_err();
    assert_eq!(
        (e.field.as_deref(), e.reason.as_str(), e.line),
        (
            Some("defaults.bake_window"),
            "must be longer than zero",
            None
        )
    );
    assert_eq!(
        e.to_string(),
        "t: defaults.bake_window: must be longer than zero"
    );
    let e = Config::parse(
        "prometheus:\n  url: http://p:9090\ndefaults:\n  bake_window: 15x\n",
        "t",
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("defaults.bake_window"));
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.reason.contains("not a duration"), "{e}");
    let e = Config::load(std::path::Path::new("/nonexistent.yaml")).unwrap_err();
    assert_eq!((e.field, e.line), (None, None));
    assert!(e.reason.starts_with("cannot read the file"), "{}", e.reason);
}

/// Issue 19.10: a custom check that fails on an empty answer and recommends a rollback turns
/// a Prometheus that lost its data into a rollback: refused under `mode: auto`, warned
/// otherwise.
#[test]
fn on_no_data_fail_with_a_rollback_is_refused_in_auto_and_warned_otherwise() {
    let check = "    custom:\n      - {name: jobs, query: up, min: 1, on_no_data: fail}\n";
    let auto = format!("releases:\n  - name: gsp\n    mode: auto\n{check}");
    let err = parse(&auto).unwrap_err();
    assert!(
        err.contains("releases[0].custom[0].on_no_data")
            && err.contains("would roll \"jobs\" back whenever Prometheus lost its data"),
        "{err}"
    );
    let recommend = format!("releases:\n  - name: gsp\n{check}");
    let c = parse(&recommend).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.starts_with(
            "releases[0] (gsp): custom[0] (jobs): on_no_data: fail with action: rollback"
        )),
        "{:?}",
        c.warnings
    );
    // Investigating on no data, or inconclusive with a rollback, is fine under auto.
    for ok in [
        "      - {name: jobs, query: up, min: 1, on_no_data: fail, action: investigate}\n",
        "      - {name: jobs, query: up, min: 1, on_no_data: inconclusive}\n",
    ] {
        let text = format!("releases:\n  - name: gsp\n    mode: auto\n    custom:\n{ok}");
        let c = parse(&text).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }
}

/// Issue 20.10: an email is retried for at least an hour of SMTP outage by default, and
/// the time is configurable (never zero).
#[test]
fn email_is_retried_for_hours_unless_told_otherwise() {
    let email = "notifications:\n  email:\n    smtp_host: smtp.example.com\n    security: starttls\n    from: a@example.com\n    to: [b@example.com]\n";
    let c = parse(email).unwrap();
    let e = c.notifications.email.unwrap();
    assert!(e.give_up_after >= std::time::Duration::from_secs(3600));
    let c = parse(&format!("{email}    give_up_after: 10m\n")).unwrap();
    assert_eq!(
        c.notifications.email.unwrap().give_up_after,
        std::time::Duration::from_secs(600)
    );
    let err = parse(&format!("{email}    give_up_after: 0s\n")).unwrap_err();
    assert!(err.contains("notifications.email.give_up_after"), "{err}");
}

#[test]
fn prometheus_and_alertmanager_authenticate_from_files_and_bad_settings_are_named() {
    let c = Config::parse(
        "prometheus:\n  url: https://prom:9090\n  authorization:\n    credentials_file: /var/run/token\n  \
         tls_config:\n    ca_file: /etc/ca.pem\n    cert_file: /etc/c.pem\n    key_file: /etc/k.pem\n  \
         headers:\n    X-Scope-OrgID: tenant-a\n\
         notifications:\n  alertmanager:\n    urls: [https://am:9093]\n    basic_auth:\n      username: ops\n      password_file: /etc/am-password\n",
        "test",
    )
    .unwrap();
    let p = &c.prometheus.client;
    let a = p.authorization.as_ref().unwrap();
    assert_eq!(
        (a.kind.as_str(), a.credentials_file.to_str()),
        ("Bearer", Some("/var/run/token"))
    );
    assert_eq!(
        p.tls.ca_file.as_deref().and_then(|f| f.to_str()),
        Some("/etc/ca.pem")
    );
    assert_eq!(p.headers["X-Scope-OrgID"], "tenant-a");
    let b = c
        .notifications
        .alertmanager_client
        .basic_auth
        .as_ref()
        .unwrap();
    assert_eq!(b.username, "ops");
    assert_eq!(
        Config::parse("{}", "test").unwrap().prometheus.client,
        Default::default()
    );

    for (text, words) in [
        (
            "prometheus: {authorization: {credentials_file: /t}, basic_auth: {username: u, password_file: /p}}",
            "prometheus.authorization: authorization and basic_auth are two ways to authenticate: choose one",
        ),
        (
            "prometheus: {authorization: {type: Bearer}}",
            "prometheus.authorization.credentials_file: required",
        ),
        (
            "notifications: {alertmanager: {basic_auth: {username: u}}}",
            "notifications.alertmanager.basic_auth.password_file: required",
        ),
        (
            "prometheus: {basic_auth: {username: u, password: p}}",
            "password",
        ),
        (
            "prometheus: {tls_config: {cert_file: /c}}",
            "prometheus.tls_config: cert_file and key_file go together",
        ),
        (
            "prometheus: {headers: {Authorization: x}}",
            "prometheus.headers: Authorization is set by authorization:",
        ),
        (
            "prometheus: {headers: {'bad name': x}}",
            "is not an HTTP header name",
        ),
    ] {
        let e = Config::parse(text, "test").unwrap_err().to_string();
        assert!(e.contains(words), "{text}: {e}");
    }
}

#[test]
fn alert_links_default_to_the_project_docs_and_can_be_switched_off() {
    let c = Config::parse("{}\n", "t").unwrap();
    assert_eq!(
        c.notifications.runbook_url.as_deref(),
        Some(super::defaults::RUNBOOK_URL)
    );
    assert_eq!(c.notifications.external_url, None);
    let c = Config::parse(
        "notifications:\n  runbook_url: \"\"\n  external_url: https://ug.example/\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.notifications.runbook_url, None);
    assert_eq!(
        c.notifications.external_url.as_deref(),
        Some("https://ug.example")
    );
    // Longer than a normal `helm upgrade --wait --timeout 15m`, pending all that time.
    assert!(super::defaults::STUCK_PENDING_AFTER > std::time::Duration::from_secs(15 * 60));
}
