//! The suite's upgrade order on the real stack: a later service upgraded before an earlier
//! one in the same cycle, or while an earlier one is not healthy, is warned about in
//! Alertmanager, naming the release to look at first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::time::Duration;

use support::cli::short_config;
use support::daemon::{Running, options};
use support::eval::upgrade;
use support::{alertmanager, helm, kube as tkube, stack::stack, wait};

const WAIT: Duration = Duration::from_secs(150);

fn install(n: &str, release: &str) {
    helm::install(n, release, "demo-app", &[]);
}

async fn out_of_order(ns: &str, release: &str) -> Option<serde_json::Value> {
    alertmanager::alerts(&[
        ("namespace", ns),
        ("release", release),
        ("alertname", "UpgradeOutOfOrder"),
    ])
    .await
    .into_iter()
    .next()
}

/// Issue 11.2: GIM, then GSP, then GCA. GCA upgraded before GSP in one cycle is warned
/// (look at GSP first); GSP upgraded while GIM is failing is warned (look at GIM first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_out_of_the_suite_order_are_warned_naming_the_release_to_look_at_first() {
    let gim = tkube::namespace("suite-gim").await;
    let gsp = tkube::namespace("suite-gsp").await;
    let gca = tkube::namespace("suite-gca").await;
    let (gim, gsp, gca) = (gim.name.as_str(), gsp.name.as_str(), gca.name.as_str());
    let config = short_config(
        "http://127.0.0.1:9",
        "",
        &format!(
            "watch:\n  namespaces: [{gim}, {gsp}, {gca}]\nstate:\n  namespace: {gim}\n\
             notifications:\n  alertmanager:\n    urls: [{}]\n    resend_interval: 1s\n\
             suites:\n  - name: test-suite\n    order: [[{gim}/gim], [{gsp}/gsp], [{gca}/gca]]\n",
            stack().alertmanager_url
        ),
    );
    let d = Running::start_with(&stack().kubeconfig, &config, options("replica-a")).await;
    d.ready().await;
    install(gim, "gim");
    install(gsp, "gsp");
    install(gca, "gca");

    // GCA before GSP: warned on GCA once GSP follows.
    upgrade(gca, "gca", "1.1.0", &[]);
    upgrade(gsp, "gsp", "1.1.0", &[]);
    let alert = wait::until(WAIT, "GCA warned", || out_of_order(gca, "gca")).await;
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["check"], "suite_order");
    assert_eq!(alert["annotations"]["look_first"], format!("{gsp}/gsp"));
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("was upgraded before"),
        "{alert:#}"
    );

    // GIM fails; GSP upgraded again meanwhile: warned on GSP, look at GIM first.
    upgrade(gim, "gim", "1.1.0", &["unschedulable=true"]);
    wait::until(WAIT, "GIM failed", || async {
        let v = d.releases().await;
        v["releases"]
            .as_array()?
            .iter()
            .any(|r| r["release"]["name"] == "gim" && r["judgement"]["verdict"] == "failed")
            .then_some(())
    })
    .await;
    upgrade(gsp, "gsp", "1.2.0", &[]);
    let alert = wait::until(WAIT, "GSP warned about GIM", || async {
        // (GIM upgraded after GSP's revision 2 also warned that one, wrong order; the new
        // revision 3 is warned because GIM is failing.)
        let a = alertmanager::alerts(&[
            ("namespace", gsp),
            ("release", "gsp"),
            ("alertname", "UpgradeOutOfOrder"),
            ("revision", "3"),
        ])
        .await
        .into_iter()
        .next()?;
        (a["annotations"]["look_first"] == format!("{gim}/gim")).then_some(a)
    })
    .await;
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("is not operating normally (revision 2 is failed)"),
        "{alert:#}"
    );
    assert_eq!(alert["labels"]["revision"], "3");
    d.stop().await;
}
