//! Tests of the presence check with plain answers.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::release::ReleaseStatus;
use crate::test_support::*;

const SCRAPE: Duration = Duration::from_secs(30);

fn pol() -> PresencePolicy {
    PresencePolicy {
        name: "gim_kafka_timestamp_behind".into(),
        query: "x".into(),
    }
}

fn before(job: &str, n: f64) -> PresenceBaseline {
    PresenceBaseline {
        namespaces: Default::default(),
        by_job: BTreeMap::from([(job.to_string(), n)]),
    }
}

fn answers(now: &[f64], seen: &[f64], scrapes: Option<&[f64]>) -> PresenceAnswers {
    PresenceAnswers {
        now: now.to_vec(),
        seen: seen.to_vec(),
        scrapes: scrapes.map(<[f64]>::to_vec),
    }
}

fn ctx() -> PresenceContext {
    PresenceContext {
        scrape_interval: SCRAPE,
        scraping_at_upgrade: true,
        answering_since: None,
    }
}

/// grace = max(30s, 2 × 30s) = 1m; scrapes needed = max(2, (1m / 30s) / 2) = 2;
/// readiness deadline 10m.
#[test]
fn presence_table() {
    let mut p = policy();
    p.metrics_grace = Duration::from_secs(30);
    let s = summary(&[], &[]);
    let gim = before("gim", 3.0);
    let cases: Vec<(
        &str,
        PresenceBaseline,
        PresenceAnswers,
        PresenceContext,
        i64,
        Outcome,
        &str,
    )> = vec![
        (
            "present",
            gim.clone(),
            answers(&[3.0], &[3.0], Some(&[4.0])),
            ctx(),
            2,
            Outcome::Pass,
            "3 series (before the upgrade: 3)",
        ),
        (
            "never existed",
            PresenceBaseline::default(),
            answers(&[], &[], None),
            ctx(),
            2,
            Outcome::Pass,
            "nothing vanished",
        ),
        (
            "unknown before",
            PresenceBaseline::default(),
            answers(&[], &[], None),
            PresenceContext {
                scraping_at_upgrade: false,
                ..ctx()
            },
            2,
            Outcome::Pending,
            "whether it existed is unknown",
        ),
        (
            "unknown before, late",
            PresenceBaseline::default(),
            answers(&[], &[], None),
            PresenceContext {
                scraping_at_upgrade: false,
                ..ctx()
            },
            11,
            Outcome::Inconclusive,
            "cannot tell absence from a scrape problem",
        ),
        (
            "inside the grace",
            gim.clone(),
            answers(&[], &[], Some(&[4.0])),
            ctx(),
            0,
            Outcome::Pending,
            "absent only after 1m without a sample",
        ),
        (
            "Prometheus just came back",
            gim.clone(),
            answers(&[], &[], Some(&[4.0])),
            PresenceContext {
                answering_since: Some(at(2) - jiff::SignedDuration::from_secs(30)),
                ..ctx()
            },
            2,
            Outcome::Pending,
            "absence counts from then",
        ),
        (
            "sampled within the grace",
            gim.clone(),
            answers(&[], &[1.0], Some(&[4.0])),
            ctx(),
            2,
            Outcome::Pending,
            "sampled within the last 1m",
        ),
        (
            "absent while the job was scraped",
            gim.clone(),
            answers(&[], &[], Some(&[2.0])),
            ctx(),
            2,
            Outcome::Fail,
            "no metrics: gim_kafka_timestamp_behind had 3 series before the upgrade (job gim) and none for 1m, although Prometheus scraped that job successfully 2 times",
        ),
        (
            "absent, job not scraped",
            gim.clone(),
            answers(&[], &[], Some(&[1.0])),
            ctx(),
            2,
            Outcome::Pending,
            "the pods that exposed it are not running or not scraped",
        ),
        (
            "absent, job not scraped, late",
            gim.clone(),
            answers(&[], &[], Some(&[])),
            ctx(),
            10,
            Outcome::Inconclusive,
            "cannot tell absence from a scrape problem 10m after the upgrade",
        ),
        (
            "absent, no job label",
            before("", 1.0),
            answers(&[], &[], None),
            ctx(),
            2,
            Outcome::Pending,
            "carry no job label",
        ),
        (
            "absent, no job label, late",
            before("", 1.0),
            answers(&[], &[], None),
            ctx(),
            12,
            Outcome::Inconclusive,
            "carry no job label",
        ),
    ];
    for (name, b, a, c, minutes, outcome, words) in cases {
        let r = presence(
            &rev(&s, &p, minutes, ReleaseStatus::Deployed),
            &pol(),
            &b,
            &a,
            c,
        );
        assert_eq!(r.outcome, outcome, "{name}: {}", r.summary);
        assert!(r.summary.contains(words), "{name}: {}", r.summary);
        assert_eq!(r.window, Some(Duration::from_secs(60)), "{name}");
        if outcome == Outcome::Inconclusive {
            assert_eq!(r.on_fail, crate::checks::FailClass::Investigate);
        }
    }
    assert_eq!(
        absence_grace(Duration::ZERO, Duration::from_secs(15)),
        Duration::from_secs(30)
    );
    assert_eq!(lookback(SCRAPE), Duration::from_secs(300));
    assert_eq!(lookback(Duration::from_secs(60)), Duration::from_secs(600));
    assert_eq!(scrapes_needed(Duration::from_secs(600), SCRAPE), 10.0);
}

proptest! {
    /// Absence is never a failure from one empty answer: not while the series was sampled
    /// within the grace, not before Prometheus has answered for a whole grace again, and not
    /// without evidence that Prometheus scraped the job.
    #[test]
    fn absence_never_fails_without_evidence(
        minutes in 0i64..120,
        seen in 0.0f64..3.0,
        scrapes in proptest::option::of(0.0f64..1.9),
        back_secs in 0i64..59,
        case in 0u8..3,
    ) {
        let p = policy();
        let s = summary(&[], &[]);
        let r = rev(&s, &p, minutes, ReleaseStatus::Deployed);
        let (a, c) = match case {
            // Sampled within the grace.
            0 => (answers(&[], &[seen.max(1.0)], Some(&[100.0])), ctx()),
            // Prometheus answers again for less than the grace.
            1 => (answers(&[], &[], Some(&[100.0])), PresenceContext {
                answering_since: Some(at(minutes) - jiff::SignedDuration::from_secs(back_secs)),
                ..ctx()
            }),
            // Too few successful scrapes of the job (or no job at all).
            _ => (answers(&[], &[], scrapes.map(|s| vec![s]).as_deref()), ctx()),
        };
        let b = if case == 2 && scrapes.is_none() { before("", 2.0) } else { before("gim", 2.0) };
        let result = presence(&r, &pol(), &b, &a, c);
        prop_assert_ne!(result.outcome, Outcome::Fail, "{}", result.summary);
    }
}
