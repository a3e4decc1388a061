//! Choice of the revision to roll back to (pure). Never "current − 1" blindly: `helm rollback`
//! without a revision goes to the previous revision even when that one failed.
//!
//! Rule: among revisions older than the bad one whose status says they ran
//! (`deployed`/`superseded`; never `pending-*`, `uninstall*`, `unknown`, nor `failed` unless
//! upgrade-guard recorded it healthy: Helm's own `--wait` timed out on it), take the
//! newest that passed its own bake; when none did, the newest that is not known to have
//! failed its bake and was not abandoned by a rollback (a revision that a later "Rollback to
//! N" skipped: someone rolled back past it, so it is not known to be good).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ReleaseStatus;

/// What upgrade-guard recorded about a revision's own bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BakeRecord {
    /// The revision was judged healthy.
    Healthy,
    /// The bake ended with warnings.
    Degraded,
    /// The revision was judged failed.
    Failed,
    /// No verdict could be reached by the end of the bake and its grace.
    Inconclusive,
}

/// Why a target was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetBasis {
    /// The target passed its own bake.
    PassedBake,
    /// No bake record: the newest revision that ran.
    NewestThatRan,
}

/// The chosen revision and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RollbackTarget {
    /// Revision to pass to `helm rollback`.
    pub revision: u32,
    /// Why this one.
    pub basis: TargetBasis,
}

/// Revisions abandoned by a rollback: for each rollback revision `R` ("Rollback to `N`"),
/// every revision strictly between `N` and `R`.
pub fn abandoned(rollbacks: &BTreeMap<u32, u32>) -> BTreeSet<u32> {
    rollbacks
        .iter()
        .flat_map(|(rollback, target)| (target + 1)..*rollback)
        .collect()
}

/// Picks the revision to roll back to from `bad_revision`, given the release history
/// (revision, status) in any order, the bake records known for it and its rollbacks
/// (rollback revision → the revision it rolled back to, from Helm's descriptions).
pub fn select_rollback_target(
    history: &[(u32, ReleaseStatus)],
    bad_revision: u32,
    bakes: &BTreeMap<u32, BakeRecord>,
    rollbacks: &BTreeMap<u32, u32>,
) -> Option<RollbackTarget> {
    // Helm marks a revision failed when its own `--wait` times out although the revision
    // was applied and may run well: upgrade-guard's healthy bake record says it did.
    let ran = |r: &u32, s: &ReleaseStatus| {
        s.was_deployed()
            || (*s == ReleaseStatus::Failed && bakes.get(r) == Some(&BakeRecord::Healthy))
    };
    let mut candidates: Vec<u32> = history
        .iter()
        .filter(|(r, s)| *r < bad_revision && ran(r, s))
        .map(|(r, _)| *r)
        .filter(|r| bakes.get(r) != Some(&BakeRecord::Failed))
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    let skipped = abandoned(rollbacks);
    candidates
        .iter()
        .find(|r| bakes.get(r) == Some(&BakeRecord::Healthy))
        .map(|r| RollbackTarget {
            revision: *r,
            basis: TargetBasis::PassedBake,
        })
        .or_else(|| {
            candidates
                .iter()
                .find(|r| !skipped.contains(r))
                .map(|r| RollbackTarget {
                    revision: *r,
                    basis: TargetBasis::NewestThatRan,
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReleaseStatus::*;

    fn pick(
        history: &[(u32, ReleaseStatus)],
        bad: u32,
        bakes: &[(u32, BakeRecord)],
    ) -> Option<(u32, TargetBasis)> {
        pick_with(history, bad, bakes, &[])
    }

    fn pick_with(
        history: &[(u32, ReleaseStatus)],
        bad: u32,
        bakes: &[(u32, BakeRecord)],
        rollbacks: &[(u32, u32)],
    ) -> Option<(u32, TargetBasis)> {
        select_rollback_target(
            history,
            bad,
            &bakes.iter().copied().collect(),
            &rollbacks.iter().copied().collect(),
        )
        .map(|t| (t.revision, t.basis))
    }

    /// Issue 19.4: a revision Helm marked failed because its `--wait` timed out, and that
    /// upgrade-guard judged healthy, ran well: a target. One Helm marked failed that has no
    /// healthy record is never one.
    #[test]
    fn a_helm_failed_revision_recorded_healthy_is_a_target() {
        use TargetBasis::*;
        let history = [(1, Superseded), (2, Failed), (3, Deployed)];
        assert_eq!(
            pick(&history, 3, &[(2, BakeRecord::Healthy)]),
            Some((2, PassedBake))
        );
        assert_eq!(pick(&history, 3, &[]), Some((1, NewestThatRan)));
        assert_eq!(
            pick(&history, 3, &[(2, BakeRecord::Degraded)]),
            Some((1, NewestThatRan))
        );
    }

    #[test]
    fn a_revision_abandoned_by_a_rollback_is_never_a_target_without_a_record() {
        use TargetBasis::*;
        // 1 ran, 2 was upgraded to and then someone rolled back to 1 (revision 3, which
        // skipped 2); 4 is the new bad upgrade.
        let history = [
            (1, Superseded),
            (2, Superseded),
            (3, Superseded),
            (4, Deployed),
        ];
        assert_eq!(
            pick_with(&history, 4, &[], &[(3, 1)]),
            Some((3, NewestThatRan)),
            "the rollback revision itself runs the content of 1"
        );
        let history = [(1, Superseded), (2, Superseded), (3, Failed), (4, Deployed)];
        assert_eq!(
            pick_with(&history, 4, &[], &[(3, 1)]),
            Some((1, NewestThatRan)),
            "3 failed, 2 was abandoned by it: 1"
        );
        // Rolled back past several: 2..=4 abandoned by 5 ("Rollback to 1").
        let history = [
            (1, Superseded),
            (2, Superseded),
            (3, Superseded),
            (4, Superseded),
            (5, Failed),
            (6, Deployed),
        ];
        assert_eq!(
            pick_with(&history, 6, &[], &[(5, 1)]),
            Some((1, NewestThatRan))
        );
        // A record that it passed its bake still wins.
        assert_eq!(
            pick_with(&history, 6, &[(3, BakeRecord::Healthy)], &[(5, 1)]),
            Some((3, PassedBake))
        );
        assert_eq!(
            abandoned(&BTreeMap::from([(5, 1), (9, 7)])),
            BTreeSet::from([2, 3, 4, 8])
        );
    }

    #[test]
    fn degraded_bakes_ran_but_did_not_pass() {
        use TargetBasis::*;
        let history = [(1, Superseded), (2, Superseded), (3, Deployed)];
        assert_eq!(
            pick(&history, 3, &[(2, BakeRecord::Degraded)]),
            Some((2, NewestThatRan))
        );
        assert_eq!(
            pick(
                &history,
                3,
                &[(2, BakeRecord::Degraded), (1, BakeRecord::Healthy)]
            ),
            Some((1, PassedBake))
        );
    }

    /// (name, history, bad revision, bake records, expected target)
    type Case = (
        &'static str,
        Vec<(u32, ReleaseStatus)>,
        u32,
        Vec<(u32, BakeRecord)>,
        Option<(u32, TargetBasis)>,
    );

    #[test]
    fn table() {
        use BakeRecord::{Failed as Bad, Healthy};
        use TargetBasis::*;
        let h = |v: &[(u32, ReleaseStatus)]| v.to_vec();
        let cases: Vec<Case> = vec![
            (
                "previous deployed",
                h(&[(1, Superseded), (2, Deployed), (3, Failed)]),
                3,
                vec![],
                Some((2, NewestThatRan)),
            ),
            (
                "skip a failed one in between",
                h(&[(1, Superseded), (2, Failed), (3, Deployed)]),
                3,
                vec![],
                Some((1, NewestThatRan)),
            ),
            (
                "skip pending",
                h(&[(4, Superseded), (5, PendingUpgrade), (6, Failed)]),
                6,
                vec![],
                Some((4, NewestThatRan)),
            ),
            (
                "skip pending-rollback too",
                h(&[(4, Superseded), (5, PendingRollback), (6, Deployed)]),
                6,
                vec![],
                Some((4, NewestThatRan)),
            ),
            (
                "prefer the one that passed its bake",
                h(&[(1, Superseded), (2, Superseded), (3, Deployed)]),
                3,
                vec![(1, Healthy)],
                Some((1, PassedBake)),
            ),
            (
                "newest healthy wins",
                h(&[(1, Superseded), (2, Superseded), (3, Deployed)]),
                3,
                vec![(1, Healthy), (2, Healthy)],
                Some((2, PassedBake)),
            ),
            (
                "never one that failed its bake",
                h(&[(1, Superseded), (2, Superseded), (3, Deployed)]),
                3,
                vec![(2, Bad)],
                Some((1, NewestThatRan)),
            ),
            (
                "nothing ran before",
                h(&[(1, Failed), (2, Failed)]),
                2,
                vec![],
                None,
            ),
            (
                "only newer revisions",
                h(&[(5, Superseded), (6, Deployed)]),
                4,
                vec![],
                None,
            ),
            (
                "first revision has no target",
                h(&[(1, Deployed)]),
                1,
                vec![],
                None,
            ),
            (
                "order of input does not matter",
                h(&[(3, Failed), (1, Superseded), (2, Superseded)]),
                3,
                vec![],
                Some((2, NewestThatRan)),
            ),
            (
                "uninstalled is not a target",
                h(&[(1, Uninstalled), (2, Deployed)]),
                2,
                vec![],
                None,
            ),
        ];
        for (name, history, bad, bakes, want) in cases {
            assert_eq!(pick(&history, bad, &bakes), want, "case {name}");
        }
    }
}
