//! Choice of the revision to roll back to (pure). Never "current − 1" blindly: `helm rollback`
//! without a revision goes to the previous revision even when that one failed.
//!
//! Rule: among revisions older than the bad one whose status says they ran
//! (`deployed`/`superseded`; never `failed`, `pending-*`, `uninstall*`, `unknown`), take the
//! newest that passed its own bake; when none did, the newest that is not known to have
//! failed its bake.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ReleaseStatus;

/// What upgrade-guard recorded about a revision's own bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BakeRecord {
    /// The revision was judged healthy.
    Healthy,
    /// The revision was judged failed.
    Failed,
}

/// Why a target was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Picks the revision to roll back to from `bad_revision`, given the release history
/// (revision, status) in any order and the bake records known for it.
pub fn select_rollback_target(
    history: &[(u32, ReleaseStatus)],
    bad_revision: u32,
    bakes: &BTreeMap<u32, BakeRecord>,
) -> Option<RollbackTarget> {
    let mut candidates: Vec<u32> = history
        .iter()
        .filter(|(r, s)| *r < bad_revision && s.was_deployed())
        .map(|(r, _)| *r)
        .filter(|r| bakes.get(r) != Some(&BakeRecord::Failed))
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    candidates
        .iter()
        .find(|r| bakes.get(r) == Some(&BakeRecord::Healthy))
        .map(|r| RollbackTarget {
            revision: *r,
            basis: TargetBasis::PassedBake,
        })
        .or_else(|| {
            candidates.first().map(|r| RollbackTarget {
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
        select_rollback_target(history, bad, &bakes.iter().copied().collect())
            .map(|t| (t.revision, t.basis))
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
