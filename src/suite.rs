//! The upgrade order of a suite (pure): "upgrade GIM first, then GSP, then GCA" and "do not
//! attempt to upgrade a service unless all the services are operating normally". From plain
//! facts per release (its revision, when its upgrade started, whether it operates normally),
//! a release of a later step upgraded within the suite's cycle is warned
//! about when a release of an earlier step was upgraded after it in the same cycle (wrong
//! order), or when an earlier one is not healthy now; the warning names the release to look
//! at first.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::config::Suite;
use crate::release::ReleaseKey;

/// Why the order is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderProblem {
    /// An earlier service was upgraded after this one in the same cycle.
    WrongOrder,
    /// An earlier service is not operating normally.
    EarlierNotHealthy,
}

/// One warning about the suite's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderWarning {
    /// The release upgraded too early.
    pub release: ReleaseKey,
    /// Its revision.
    pub revision: u32,
    /// The release to look at first.
    pub look_first: ReleaseKey,
    /// Why.
    pub problem: OrderProblem,
    /// In words.
    pub words: String,
}

/// What a suite's order is judged from, for one of its releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its latest revision.
    pub revision: u32,
    /// When that revision's upgrade started, if it is an upgrade (not an install or a
    /// rollback).
    pub upgraded_at: Option<Timestamp>,
    /// Whether it operates normally, or why not, in words.
    pub operating_normally: Result<(), String>,
}

fn order_words(suite: &Suite) -> String {
    suite
        .order
        .iter()
        .map(|step| {
            step.iter()
                .map(|k| k.name.to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

/// The warnings for `suite` at `now`, from what is known of its releases (by key).
pub fn order_warnings(
    suite: &Suite,
    member: impl Fn(&ReleaseKey) -> Option<Member>,
    now: Timestamp,
) -> Vec<OrderWarning> {
    let cycle = SignedDuration::try_from(suite.cycle).unwrap_or(SignedDuration::MAX);
    let mut out = Vec::new();
    for (k, step) in suite.order.iter().enumerate().skip(1) {
        for later in step {
            let Some(lv) = member(later) else { continue };
            let Some(l_at) = lv.upgraded_at else {
                continue;
            };
            if now.duration_since(l_at) > cycle {
                continue;
            }
            'earlier: for earlier in suite.order[..k].iter().flatten() {
                let Some(ev) = member(earlier) else { continue };
                if let Some(e_at) = ev.upgraded_at
                    && e_at > l_at
                    && e_at.duration_since(l_at) <= cycle
                {
                    out.push(OrderWarning {
                        release: later.clone(),
                        revision: lv.revision,
                        look_first: earlier.clone(),
                        problem: OrderProblem::WrongOrder,
                        words: format!(
                            "{later} was upgraded before {earlier} in the same upgrade cycle; the order is {}: verify {earlier} first, then {later} again",
                            order_words(suite)
                        ),
                    });
                    continue 'earlier;
                }
                if let Err(why) = &ev.operating_normally {
                    out.push(OrderWarning {
                        release: later.clone(),
                        revision: lv.revision,
                        look_first: earlier.clone(),
                        problem: OrderProblem::EarlierNotHealthy,
                        words: format!(
                            "{later} was upgraded while {earlier} is not operating normally ({why}); look at {earlier} first: the services of a suite are upgraded one at a time, each verified before the next"
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::release::ReleaseStatus;
    use crate::release::event::EventName;
    use crate::release::labels::Storage;
    use crate::state::{Judgement, ReleaseView};
    use crate::verdict::RecommendedAction;
    use crate::verdict::Verdict;
    use std::collections::BTreeMap;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
    }

    fn view(
        ns: &str,
        name: &str,
        event: EventName,
        started: i64,
        verdict: Option<(Verdict, bool)>,
    ) -> ReleaseView {
        ReleaseView {
            release: ReleaseKey::new(ns, name),
            storage: Storage::Secret,
            revision: 2,
            status: ReleaseStatus::Deployed,
            event,
            chart: None,
            previous_chart: None,
            started: Some(at(started)),
            judgement: verdict.map(|(verdict, is_final)| Judgement {
                inconclusive_since: None,
                overdue: false,
                verdict,
                action: RecommendedAction::None,
                results: vec![],
                notes: vec![],
                bake_ends: at(started + 15),
                evaluated_at: at(started + 15),
                is_final,
            }),
            problem: None,
            mode: None,
            automation: None,
            after_bake: None,
            controls: Default::default(),
        }
    }

    fn warnings(views: &[ReleaseView], now: i64) -> Vec<(String, String, OrderProblem)> {
        let suite = Config::default_profile().unwrap().suites[0].clone();
        let by_key: BTreeMap<ReleaseKey, &ReleaseView> =
            views.iter().map(|v| (v.release.clone(), v)).collect();
        order_warnings(&suite, |k| by_key.get(k).map(|v| v.member()), at(now))
            .into_iter()
            .map(|w| (w.release.to_string(), w.look_first.to_string(), w.problem))
            .collect()
    }

    const OK: Option<(Verdict, bool)> = Some((Verdict::Healthy, true));

    #[test]
    fn in_order_and_each_verified_first_is_quiet() {
        let views = [
            view("gim", "gim", EventName::Upgraded, 0, OK),
            view("gsp", "gsp", EventName::Upgraded, 60, OK),
            view(
                "gca",
                "gca",
                EventName::Upgraded,
                120,
                Some((Verdict::Progressing, false)),
            ),
        ];
        assert_eq!(warnings(&views, 125), vec![]);
    }

    #[test]
    fn a_later_service_upgraded_before_an_earlier_one_in_the_cycle_is_warned() {
        let views = [
            view("gim", "gim", EventName::Upgraded, 0, OK),
            view("gca", "gca", EventName::Upgraded, 30, OK),
            view(
                "gsp",
                "gsp",
                EventName::Upgraded,
                60,
                Some((Verdict::Progressing, false)),
            ),
        ];
        assert_eq!(
            warnings(&views, 70),
            vec![("gca/gca".into(), "gsp/gsp".into(), OrderProblem::WrongOrder)]
        );
        // A day later the cycle is over: quiet.
        assert_eq!(warnings(&views, 30 + 24 * 60 + 1), vec![]);
    }

    #[test]
    fn a_later_service_upgraded_while_an_earlier_one_is_not_healthy_names_it() {
        for earlier in [
            Some((Verdict::Failed, false)),
            Some((Verdict::Inconclusive, false)),
            Some((Verdict::Progressing, false)),
        ] {
            let views = [
                view("gim", "gim", EventName::Upgraded, 0, earlier),
                view("gsp", "gsp", EventName::Upgraded, 10, OK),
            ];
            assert_eq!(
                warnings(&views, 20),
                vec![(
                    "gsp/gsp".into(),
                    "gim/gim".into(),
                    OrderProblem::EarlierNotHealthy
                )],
                "{earlier:?}"
            );
        }
        // A stuck earlier release too; an install or a rollback of the later one is not an
        // upgrade.
        let mut stuck = view("gim", "gim", EventName::Upgraded, 0, None);
        stuck.problem = Some("stuck in pending-upgrade since ...".into());
        assert_eq!(
            warnings(
                &[
                    stuck.clone(),
                    view("gsp", "gsp", EventName::Upgraded, 10, None)
                ],
                20
            )
            .len(),
            1
        );
        assert_eq!(
            warnings(
                &[
                    stuck.clone(),
                    view("gsp", "gsp", EventName::RolledBack, 10, None)
                ],
                20
            ),
            vec![]
        );
        assert_eq!(
            warnings(
                &[stuck, view("gsp", "gsp", EventName::Installed, 10, None)],
                20
            ),
            vec![]
        );
    }
}
