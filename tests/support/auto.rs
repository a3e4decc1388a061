//! `mode: auto` on the real stack: the configuration, and what the history, the action
//! records and the daemon's API say about a release.

use std::time::Duration;

use upgrade_guard::records::action::ActionRecord;
use upgrade_guard::records::actions::RecordStore;
use upgrade_guard::release::ReleaseKey;
use upgrade_guard::release::record::{HistoryRow, RowDetail};
use upgrade_guard::tracker::read::read_history;

use super::cli::short_config;
use super::daemon::Running;
use super::{helm, kube as tkube, stack::stack, wait};

/// How long an automatic action and its verification may take on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(150);

/// `mode: auto` with the test's time scale, a short Lease and the stack's helm.
pub fn auto_config(prometheus: &str, n: &str, defaults_extra: &str, rest: &str) -> String {
    auto_config_with(
        &stack().helm_bin.display().to_string(),
        prometheus,
        n,
        defaults_extra,
        rest,
    )
}

/// [`auto_config`] with another helm (a wrapper script).
pub fn auto_config_with(
    helm: &str,
    prometheus: &str,
    n: &str,
    defaults_extra: &str,
    rest: &str,
) -> String {
    short_config(
        prometheus,
        &format!("  mode: auto\n  auto:\n    cooldown: 1s\n{defaults_extra}"),
        &format!(
            "watch:\n  namespaces: [{n}]\nstate:\n  namespace: {n}\n\
             actions:\n  helm: {helm}\n  leader_election:\n    lease_duration: 3s\n    renew_deadline: 2s\n    retry_period: 300ms\n\
             {rest}"
        ),
    )
}

/// The release's history, read as the daemon reads it.
pub async fn history(n: &str, release: &str) -> Vec<HistoryRow> {
    read_history(tkube::client().await, n, release)
        .await
        .unwrap()
}

/// Helm's description of a revision.
pub fn description(row: &HistoryRow) -> String {
    match &row.detail {
        RowDetail::Decoded(s) => s.description.clone(),
        RowDetail::Undecodable { decode_error } => panic!("{decode_error}"),
    }
}

/// The revisions that are rollbacks, with their descriptions.
pub async fn rollbacks(n: &str, release: &str) -> Vec<(u32, String)> {
    history(n, release)
        .await
        .iter()
        .map(|r| (r.revision, description(r)))
        .filter(|(_, d)| d.starts_with("Rollback to"))
        .collect()
}

/// The action records of a release (kept in `n`).
pub async fn records(n: &str, release: &str) -> Vec<ActionRecord> {
    RecordStore::new(tkube::client().await, n)
        .load(&ReleaseKey::new(n, release))
        .await
        .unwrap()
        .records
}

/// The view of `release` in `/api/v1/releases`.
pub async fn view(d: &Running, release: &str) -> Option<serde_json::Value> {
    d.releases().await["releases"]
        .as_array()?
        .iter()
        .find(|r| r["release"]["name"] == release)
        .cloned()
}

/// Waits for `revision` of `release` to end its bake with `verdict`.
pub async fn final_verdict(d: &Running, release: &str, revision: u64, verdict: &str) {
    wait::until(
        WAIT,
        &format!("revision {revision} of {release} {verdict} at the end of its bake"),
        || async {
            let v = view(d, release).await?;
            (v["revision"] == revision
                && v["judgement"]["verdict"] == verdict
                && v["judgement"]["final"] == true)
                .then_some(())
        },
    )
    .await;
}

/// Waits for the daemon to be ready.
pub async fn ready(d: &Running) {
    d.ready().await;
}

/// `helm install` of a test chart, waiting for it.
pub fn install(n: &str, release: &str, chart: &str, set: &[&str]) {
    helm::install(n, release, chart, set);
}

/// Waits for the daemon (its records in `n`) to record revision `revision` of `release`
/// healthy: only such a revision is an automatic rollback's target.
pub async fn baked_healthy(n: &str, release: &str, revision: u32) {
    baked_healthy_in(n, n, release, revision).await;
}

/// [`baked_healthy`] with the daemon's records in `state`.
pub async fn baked_healthy_in(state: &str, n: &str, release: &str, revision: u32) {
    let record = tkube::bake_record(state, n, release, revision).await;
    assert!(
        record.contains("\"verdict\":\"healthy\""),
        "revision {revision} of {n}/{release} must pass its bake before it is a target: {record}"
    );
}

/// Records revision `revision` of `release` healthy as the daemon does at the end of its
/// bake (bound to its content and install), for a remediator run without a daemon.
pub async fn record_healthy(n: &str, release: &str, revision: u32) {
    use upgrade_guard::records::bakes::{BakeEntry, BakeStore};
    use upgrade_guard::release::rollback_target::BakeRecord;
    let rows = history(n, release).await;
    let row = rows.iter().find(|r| r.revision == revision).unwrap();
    let RowDetail::Decoded(s) = &row.detail else {
        panic!("revision {revision} cannot be read: {row:?}")
    };
    let entry = BakeEntry {
        verdict: BakeRecord::Healthy,
        at: jiff::Timestamp::now(),
        chart: format!("{}-{}", s.chart.name, s.chart.version),
        failed_checks: vec![],
        unanswered_checks: vec![],
        content: s.fingerprint.content.clone(),
        install: s.first_deployed,
        during_bake: false,
        accepted: None,
        accepted_over: None,
    };
    BakeStore::new(tkube::client().await, n)
        .record(&ReleaseKey::new(n, release), revision, &entry)
        .await
        .unwrap();
}

/// The intent of a rollback of bad revision `bad` of `app` (namespace `n`) to revision 1,
/// started now by `holder` and still `running`, as the daemon writes it.
pub fn running_rollback(n: &str, bad: u32, holder: &str) -> ActionRecord {
    use upgrade_guard::records::action::{ActionKind, Phase};
    ActionRecord {
        bad_revision: bad,
        attempt: 1,
        action: ActionKind::Rollback,
        target: Some(1),
        command: format!("helm rollback app 1 -n {n} --wait --timeout 5m"),
        holder: holder.into(),
        started: jiff::Timestamp::now(),
        phase: Phase::Running,
        finished: None,
        new_revision: None,
        detail: None,
        process: None,
        taken_over_from: None,
        about: None,
    }
}

/// Waits for `d` to hold the leader Lease.
pub async fn leads(d: &Running, who: &str) {
    wait::until(WAIT, &format!("{who} leads"), || async {
        (d.metric("upgrade_guard_leader").await? == 1.0).then_some(())
    })
    .await;
}

/// Waits until helm is rolling `release` back: `revision` is `pending-rollback`.
pub async fn rolling_back(n: &str, release: &str, revision: u32) {
    wait::until(
        WAIT,
        &format!("helm rolling back (revision {revision} pending-rollback)"),
        || async {
            history(n, release)
                .await
                .iter()
                .any(|r| r.revision == revision && r.status.as_str() == "pending-rollback")
                .then_some(())
        },
    )
    .await;
}

/// Checks that `done`, the verified record of a rollback of revision 2 to 1 whose first
/// holder (`from…`) died with its helm, was completed by `by…` as the same attempt, and
/// that the history holds exactly one completed rollback: revision 3, the dead helm's,
/// unlocked (failed, "Rollback to 1 interrupted…"), then revision 4 deployed.
pub async fn completed_once(n: &str, release: &str, done: &ActionRecord, from: &str, by: &str) {
    assert_eq!(
        (done.bad_revision, done.attempt),
        (2, 1),
        "the same attempt: {done:?}"
    );
    assert!(done.holder.starts_with(by), "{done:?}");
    assert!(
        done.taken_over_from
            .as_deref()
            .is_some_and(|h| h.starts_with(from)),
        "{done:?}"
    );
    assert_eq!(done.new_revision, Some(4), "{done:?}");
    let described: Vec<(u32, String, String)> = history(n, release)
        .await
        .iter()
        .map(|r| (r.revision, r.status.as_str().to_string(), description(r)))
        .collect();
    assert_eq!(described.len(), 4, "{described:?}");
    assert!(
        described[2].1 == "failed" && described[2].2.starts_with("Rollback to 1 interrupted"),
        "the dead helm's revision, unlocked: {described:?}"
    );
    assert_eq!(
        (described[3].1.as_str(), described[3].2.as_str()),
        ("deployed", "Rollback to 1"),
        "exactly one completed rollback: {described:?}"
    );
}

/// The next revision of GIM crash-loops (`fault=CrashLoopBackOff`).
pub fn break_gim(n: &str) {
    break_gim_with(n, "CrashLoopBackOff");
}

/// The next revision of GIM fails with `fault` (new pods when it differs from the last).
pub fn break_gim_with(n: &str, fault: &str) {
    helm::ok(&[
        "upgrade",
        "gim",
        &helm::chart("gim"),
        "-n",
        n,
        "--set",
        &format!("fault={fault}"),
    ]);
}
