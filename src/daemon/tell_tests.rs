//! What is told, and what a release in `mode: observe` keeps to metrics, with plain values.

use super::*;
use crate::release::event::ReleaseEventKind;
use crate::state::{Notice, NoticeKind};
use crate::test_support::{event, report};
use crate::verdict::{RecommendedAction, Verdict};

fn config(mode: &str) -> Config {
    Config::parse(&format!("defaults: {{mode: {mode}}}\n"), "t").unwrap()
}

/// `ns/app` at revision 2, failed in its bake, and an uninstall notice about it.
fn failed_release() -> State {
    let mut state = State::default();
    state.event(&event(
        2,
        ReleaseEventKind::Upgraded { from: 1, to: 2 },
        true,
    ));
    let mut r = report(2, Verdict::Failed, 10, 100);
    r.results = vec![crate::checks::CheckResult::new(
        "lag",
        crate::checks::Outcome::Fail,
        "the backlog keeps growing",
    )];
    r.action = RecommendedAction::Investigate {
        reason: "look".into(),
    };
    state.judged(&r, false, std::time::Duration::from_secs(1800));
    state.notice(Notice {
        release: ReleaseKey::new("ns", "app"),
        revision: 2,
        kind: NoticeKind::ExportViews,
        words: "update the views".into(),
        command: Some("kubectl exec ...".into()),
        at: jiff::Timestamp::UNIX_EPOCH,
        until: jiff::Timestamp::MAX,
    });
    state
}

#[test]
fn a_release_told_about_fires_its_alerts_and_notices_and_observe_keeps_quiet() {
    let state = failed_release();
    for (mode, told_about) in [("recommend", true), ("auto", true), ("observe", false)] {
        let c = config(mode);
        let names: Vec<String> = alerts(&state, &c, &Links::default())
            .iter()
            .map(|a| {
                a.labels
                    .iter()
                    .find(|(k, _)| **k == "alertname")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        if told_about {
            assert!(
                names.contains(&"UpgradeFailed".to_string()),
                "{mode}: {names:?}"
            );
            assert_eq!(notices(&state, &c).len(), 1, "{mode}");
        } else {
            assert_eq!(names, Vec::<String>::new(), "{mode}");
            assert_eq!(notices(&state, &c), vec![], "{mode}");
        }
    }
}

#[test]
fn mails_go_once_per_change_and_never_about_an_observed_release() {
    let state = failed_release();
    let mut book = Mailbook::default();
    let first = mails(&mut book, &state, &config("recommend"), &Links::default());
    assert!(!first.is_empty(), "the failure and the notice");
    assert!(first.iter().all(Result::is_ok));
    assert_eq!(
        mails(&mut book, &state, &config("recommend"), &Links::default()).len(),
        0,
        "told once"
    );
    let mut quiet = Mailbook::default();
    assert_eq!(
        mails(&mut quiet, &state, &config("observe"), &Links::default()).len(),
        0
    );
}

#[test]
fn order_warnings_only_consider_releases_told_about() {
    let text = "defaults: {mode: MODE}\n\
                releases:\n  - {name: gsp, namespace: gsp, mode: recommend}\n\
                suites:\n  - {name: s, order: [[gim/gim], [gsp/gsp]], cycle: 24h}\n";
    let now = jiff::Timestamp::from_second(1_800_000_000 + 30 * 60).unwrap();
    let mut state = State::default();
    for (ns, minute, verdict) in [("gim", 0, Verdict::Failed), ("gsp", 10, Verdict::Healthy)] {
        let mut e = event(2, ReleaseEventKind::Upgraded { from: 1, to: 2 }, true);
        e.release = ReleaseKey::new(ns, ns);
        let started = jiff::Timestamp::from_second(1_800_000_000 + minute * 60).unwrap();
        let mut s = (*e.summary.clone().unwrap()).clone();
        s.last_deployed = Some(started);
        e.summary = Some(std::sync::Arc::new(s));
        state.event(&e);
        let mut r = report(2, verdict, 100, 100);
        r.release = e.release.clone();
        r.started = started;
        state.judged(&r, true, std::time::Duration::from_secs(1800));
    }
    let warned = order(
        &state,
        &Config::parse(&text.replace("MODE", "recommend"), "t").unwrap(),
        now,
    );
    assert_eq!(warned.len(), 1, "gsp upgraded while gim failed: {warned:?}");
    assert_eq!(warned[0].look_first, ReleaseKey::new("gim", "gim"));
    // gim observed: its failure is not a reason to warn about gsp.
    let quiet = order(
        &state,
        &Config::parse(&text.replace("MODE", "observe"), "t").unwrap(),
        now,
    );
    assert_eq!(quiet, vec![]);
}

/// Issue 21.8: with `cluster` set, every alert carries it as a label and every mail names
/// it in its subject's tag and first in its body; an invalid name is refused.
#[test]
fn the_cluster_is_named_in_every_alert_and_mail() {
    let state = failed_release();
    let c = Config::parse("cluster: prod-eu-1\n", "t").unwrap();
    let told = alerts(&state, &c, &Links::default());
    assert!(!told.is_empty());
    assert!(
        told.iter()
            .all(|a| a.labels.get("cluster").map(String::as_str) == Some("prod-eu-1"))
    );
    assert!(
        alerts(&state, &config("recommend"), &Links::default())
            .iter()
            .all(|a| !a.labels.contains_key("cluster"))
    );
    let mut book = crate::notify::mail::Mailbook::default();
    let links = Links {
        external: Some("http://ug.ops.svc:8080".into()),
        ..Links::default()
    };
    let mails: Vec<_> = mails(&mut book, &state, &c, &links)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(!mails.is_empty());
    for m in &mails {
        // Issue 22.8: each mail links to what upgrade-guard knows about the release.
        let api = "http://ug.ops.svc:8080/api/v1/releases?namespace=ns&release=app";
        assert!(m.text.contains(&format!("API: {api}")), "{}", m.text);
        // In the HTML part, escaped as attribute values are (the browser reads it back).
        let escaped = api
            .replace('/', "&#x2f;")
            .replace('&', "&amp;")
            .replace("&amp;#x2f;", "&#x2f;");
        assert!(
            m.html.contains(&format!("href=\"{escaped}\"")),
            "{}",
            m.html
        );
        assert!(
            m.subject.starts_with("[upgrade-guard prod-eu-1] "),
            "{}",
            m.subject
        );
        assert!(m.text.starts_with("Cluster: prod-eu-1\n"), "{}", m.text);
        assert!(m.html.contains("Cluster: <b>prod-eu-1</b>"));
    }
    let e = Config::parse("cluster: 'prod eu'\n", "t")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cluster") && e.contains("at most 63 letters"),
        "{e}"
    );
}

#[test]
fn a_route_labels_the_alerts_and_addresses_the_mails_of_its_releases() {
    let state = failed_release();
    let with = |routes: &str| {
        Config::parse(
            &format!(
                "notifications:\n  email:\n    smtp_host: mail\n    security: none\n    from: ug@example.test\n    to: [ops@example.test]\n  routes:\n{routes}"
            ),
            "t",
        )
        .unwrap()
    };
    let team = with(
        "    - namespaces: [ns]\n      email_to: [infomart@example.test]\n      labels: {team: infomart}\n",
    );
    let fired = alerts(&state, &team, &Links::default());
    assert!(!fired.is_empty());
    for a in &fired {
        assert_eq!(
            a.labels.get("team").map(String::as_str),
            Some("infomart"),
            "{a:?}"
        );
    }
    let mails = mails(&mut Mailbook::default(), &state, &team, &Links::default());
    assert!(!mails.is_empty());
    for m in mails {
        assert_eq!(
            m.unwrap().to,
            Some(vec!["infomart@example.test".to_string()])
        );
    }
    // Another namespace's route: the defaults.
    let elsewhere = with("    - namespaces: [other]\n      labels: {team: x}\n");
    assert!(alerts_have_no_team(&state, &elsewhere));
    let mails = mails_to(&state, &elsewhere);
    assert!(mails.iter().all(Option::is_none), "{mails:?}");
    // No recipients: no mail, the alerts still fire.
    let quiet = with("    - releases: [app]\n      email_to: []\n      labels: {team: q}\n");
    assert!(mails_to(&state, &quiet).is_empty());
    assert!(!alerts(&state, &quiet, &Links::default()).is_empty());
}

fn alerts_have_no_team(state: &State, config: &Config) -> bool {
    alerts(state, config, &Links::default())
        .iter()
        .all(|a| !a.labels.contains_key("team"))
}

fn mails_to(state: &State, config: &Config) -> Vec<Option<Vec<String>>> {
    mails(&mut Mailbook::default(), state, config, &Links::default())
        .into_iter()
        .map(|m| m.unwrap().to)
        .collect()
}
