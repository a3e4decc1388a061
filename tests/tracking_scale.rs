//! Tracking at scale as a regression check (issue 8.9): 100 releases × 10 revisions written
//! as helm's storage driver writes them on a private API server, the release binary's
//! `watch` measured from outside. Asserts only what is deterministic: the number of paged
//! LISTs for the initial sync, exactly one GET and no LIST per new revision, one event per
//! new revision and none for settled ones, and an RSS ceiling with generous headroom. The
//! full benchmark (`cargo bench --bench tracking`) measures times.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::control_plane::ControlPlane;
use support::kube::client_for;
use support::tracking_load as load;

const RELEASES: usize = 100;
const REVISIONS: u32 = 10;
const NEW_REVISIONS: usize = 10;
/// kube's watcher lists in pages of 500.
const PAGE: usize = 500;
/// The benchmark measures 15–20 MiB for 5,000 records with the release build; this is a
/// debug build and a ceiling, not a measurement.
const RSS_CEILING_KIB: u64 = 64 * 1024;

#[tokio::test]
async fn one_get_and_no_list_per_new_revision_at_scale() {
    let plane = ControlPlane::start();
    let client = client_for(&plane.kubeconfig).await;
    let names = load::release_names("scale", RELEASES, 10);
    load::load(&client, &names, REVISIONS, 2 * 1024, 16).await;

    // Every namespace; a 1 s bake window, so only a revision settled in the last second
    // could be announced again at start: the writer waits for that second to pass.
    let config = "watch:\n  namespaces: []\ndefaults:\n  bake_window: 1s\n";
    support::wait::until(
        Duration::from_secs(10),
        "the bake window to pass",
        || async {
            let newest = names.last().unwrap();
            let secret: k8s_openapi::api::core::v1::Secret =
                kube::Api::namespaced(client.clone(), &newest.0)
                    .get(&format!("sh.helm.release.v1.{}.v{REVISIONS}", newest.1))
                    .await
                    .unwrap();
            let created = secret.metadata.creation_timestamp.unwrap().0;
            (jiff::Timestamp::now().duration_since(created) > jiff::SignedDuration::from_secs(2))
                .then_some(())
        },
    )
    .await;
    let before_sync = load::secret_requests(&client).await;
    let watch = load::WatchProcess::start(
        Path::new(env!("CARGO_BIN_EXE_upgrade-guard")),
        &plane.kubeconfig,
        config,
        Duration::from_secs(120),
    );
    let after_sync = load::secret_requests(&client).await;
    let records = RELEASES * REVISIONS as usize;
    assert_eq!(
        load::delta(&after_sync, &before_sync, "LIST"),
        records.div_ceil(PAGE) as u64,
        "paged LISTs for the initial sync of {records} records"
    );
    assert_eq!(
        load::delta(&after_sync, &before_sync, "GET"),
        0,
        "the initial sync reads no payload"
    );

    let before = load::secret_requests(&client).await;
    for (i, (ns, name)) in names.iter().take(NEW_REVISIONS).enumerate() {
        let new = REVISIONS + 1;
        load::upgrade(&client, ns, name, new, REVISIONS, 2 * 1024).await;
        watch
            .event_time(&format!("{ns}/{name}"), new, Duration::from_secs(60))
            .await;
        assert_eq!(watch.seen.lock().unwrap().len(), i + 1, "one event each");
    }
    let after = load::secret_requests(&client).await;
    assert_eq!(
        load::delta(&after, &before, "GET"),
        NEW_REVISIONS as u64,
        "one GET per new revision"
    );
    assert_eq!(load::delta(&after, &before, "LIST"), 0, "no LIST");
    let kinds: Vec<String> = watch
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, kind, _)| kind.clone())
        .collect();
    assert!(kinds.iter().all(|k| k == "upgraded"), "{kinds:?}");
    let rss = load::rss_kib(watch.pid, "VmRSS:");
    eprintln!(
        "scale: {records} records, RSS {:.1} MiB after {NEW_REVISIONS} new revisions",
        rss as f64 / 1024.0
    );
    assert!(
        rss > 0 && rss <= RSS_CEILING_KIB,
        "RSS {rss} KiB over the {RSS_CEILING_KIB} KiB ceiling"
    );
}
