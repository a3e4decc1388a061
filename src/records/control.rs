//! The operator's controls over one release (pure): a suspension until a time, revisions
//! accepted as good, a request to judge the latest revision again. Each says who set it,
//! when and why. They are kept in a ConfigMap per release (`controls.rs`), one key per
//! control, so that two operators acting at once never overwrite each other.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Key of the suspension in the ConfigMap.
pub const SUSPEND_KEY: &str = "suspend";
/// Key of the re-check request.
pub const RECHECK_KEY: &str = "recheck";
/// Prefix of an acceptance's key (`accept.<revision>`).
pub const ACCEPT_PREFIX: &str = "accept.";

/// Who set a control, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBy {
    /// The user (`$USER@host`, or the Kubernetes user the CLI ran as).
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why, in the operator's words (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl SetBy {
    /// "by alice at 2026-12-03T10:00:00Z: maintenance window".
    pub fn words(&self) -> String {
        let why = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        format!(
            "by {} at {}{why}",
            self.by,
            self.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// The release is left alone until `until`: still watched, judged and shown, never acted on,
/// its verdicts neither alerted nor mailed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// Who, when, why.
    #[serde(flatten)]
    pub set: SetBy,
    /// When it expires by itself.
    pub until: Timestamp,
}

/// A revision accepted as good: judged `healthy` whatever was found, its alerts resolved, a
/// valid rollback target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// Who, when, why.
    #[serde(flatten)]
    pub set: SetBy,
}

/// Judge `revision` again, with a fresh bake window from `set.at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recheck {
    /// The revision that was the latest when asked.
    pub revision: u32,
    /// Who, when, why.
    #[serde(flatten)]
    pub set: SetBy,
}

/// Every control of one release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    /// The suspension, expired or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
    /// Accepted revisions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted: BTreeMap<u32, Acceptance>,
    /// The latest re-check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<Recheck>,
    /// Entries that cannot be read (key: why), reported and otherwise ignored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, String>,
}

impl Controls {
    /// The controls a ConfigMap's data holds; entries that do not parse are listed in
    /// `unreadable`, never guessed at.
    pub fn parse(data: &BTreeMap<String, String>) -> Self {
        let mut out = Self::default();
        for (key, value) in data {
            let bad = |e: serde_json::Error| format!("not a valid control ({e})");
            let result = if key == SUSPEND_KEY {
                serde_json::from_str(value)
                    .map(|s| out.suspension = Some(s))
                    .map_err(bad)
            } else if key == RECHECK_KEY {
                serde_json::from_str(value)
                    .map(|r| out.recheck = Some(r))
                    .map_err(bad)
            } else if let Some(revision) = key.strip_prefix(ACCEPT_PREFIX) {
                match revision.parse::<u32>() {
                    Ok(revision) => serde_json::from_str(value)
                        .map(|a| {
                            out.accepted.insert(revision, a);
                        })
                        .map_err(bad),
                    Err(_) => Err(format!("`{revision}` is not a revision number")),
                }
            } else {
                Err("not a control upgrade-guard knows".to_string())
            };
            if let Err(why) = result {
                out.unreadable.insert(key.clone(), why);
            }
        }
        out
    }

    /// The suspension in force at `now` (not expired).
    pub fn suspended(&self, now: Timestamp) -> Option<&Suspension> {
        self.suspension.as_ref().filter(|s| s.until > now)
    }

    /// Whether `revision` stands accepted: accepted, and not re-checked since.
    pub fn accepted_over_recheck(&self, revision: u32) -> bool {
        let Some(a) = self.accepted.get(&revision) else {
            return false;
        };
        self.recheck
            .as_ref()
            .filter(|r| r.revision == revision)
            .is_none_or(|r| a.set.at > r.set.at)
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.suspension.is_none()
            && self.accepted.is_empty()
            && self.recheck.is_none()
            && self.unreadable.is_empty()
    }
}

/// The key of an acceptance of `revision`.
pub fn accept_key(revision: u32) -> String {
    format!("{ACCEPT_PREFIX}{revision}")
}

/// What the API and `status` show of a release's controls at a moment: the suspension in
/// force and the acceptance of the revision shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlView {
    /// The suspension in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
    /// The acceptance of the revision shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Acceptance>,
    /// The re-check asked of the revision shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<Recheck>,
}

impl ControlView {
    /// What `controls` say about `revision` at `now`.
    pub fn of(controls: &Controls, revision: u32, now: Timestamp) -> Self {
        Self {
            suspended: controls.suspended(now).cloned(),
            accepted: controls
                .accepted
                .get(&revision)
                .filter(|_| controls.accepted_over_recheck(revision))
                .cloned(),
            recheck: controls.recheck.clone().filter(|r| r.revision == revision),
        }
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.suspended.is_none() && self.accepted.is_none() && self.recheck.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn set(by: &str, t: &str) -> SetBy {
        SetBy {
            by: by.into(),
            at: at(t),
            reason: "maintenance".into(),
        }
    }

    #[test]
    fn controls_round_trip_through_their_keys() {
        let suspension = Suspension {
            set: set("alice", "2026-12-03T10:00:00Z"),
            until: at("2026-12-03T12:00:00Z"),
        };
        let accept = Acceptance {
            set: set("bob", "2026-12-03T10:05:00Z"),
        };
        let recheck = Recheck {
            revision: 7,
            set: set("carol", "2026-12-03T10:06:00Z"),
        };
        let data = BTreeMap::from([
            (
                SUSPEND_KEY.to_string(),
                serde_json::to_string(&suspension).unwrap(),
            ),
            (accept_key(6), serde_json::to_string(&accept).unwrap()),
            (
                RECHECK_KEY.to_string(),
                serde_json::to_string(&recheck).unwrap(),
            ),
        ]);
        let c = Controls::parse(&data);
        assert_eq!(c.suspension, Some(suspension.clone()));
        assert_eq!(c.accepted.get(&6), Some(&accept));
        assert_eq!(c.recheck, Some(recheck));
        assert!(c.unreadable.is_empty(), "{:?}", c.unreadable);
        assert!(
            data[SUSPEND_KEY].contains("\"by\":\"alice\""),
            "{}",
            data[SUSPEND_KEY]
        );
    }

    #[test]
    fn a_suspension_expires_by_itself() {
        let c = Controls {
            suspension: Some(Suspension {
                set: set("alice", "2026-12-03T10:00:00Z"),
                until: at("2026-12-03T12:00:00Z"),
            }),
            ..Controls::default()
        };
        assert!(c.suspended(at("2026-12-03T11:59:59Z")).is_some());
        assert!(c.suspended(at("2026-12-03T12:00:00Z")).is_none());
        let view = ControlView::of(&c, 3, at("2026-12-03T13:00:00Z"));
        assert!(view.is_empty(), "{view:?}");
    }

    #[test]
    fn a_recheck_asked_after_an_acceptance_judges_again() {
        let mut c = Controls::default();
        c.accepted.insert(
            4,
            Acceptance {
                set: set("bob", "2026-12-03T10:05:00Z"),
            },
        );
        assert!(c.accepted_over_recheck(4));
        assert!(!c.accepted_over_recheck(5));
        c.recheck = Some(Recheck {
            revision: 4,
            set: set("carol", "2026-12-03T10:06:00Z"),
        });
        assert!(
            !c.accepted_over_recheck(4),
            "re-checked after the acceptance"
        );
        c.accepted.insert(
            4,
            Acceptance {
                set: set("bob", "2026-12-03T10:07:00Z"),
            },
        );
        assert!(
            c.accepted_over_recheck(4),
            "accepted again after the re-check"
        );
    }

    #[test]
    fn unreadable_entries_are_reported_never_guessed() {
        let data = BTreeMap::from([
            (SUSPEND_KEY.to_string(), "{not json".to_string()),
            ("accept.x".to_string(), "{}".to_string()),
            ("pause".to_string(), "{}".to_string()),
        ]);
        let c = Controls::parse(&data);
        assert!(c.suspension.is_none());
        assert!(c.accepted.is_empty());
        assert_eq!(c.unreadable.len(), 3, "{:?}", c.unreadable);
        assert!(c.unreadable["accept.x"].contains("not a revision number"));
        assert!(c.unreadable["pause"].contains("not a control"));
    }

    #[test]
    fn the_view_shows_what_concerns_the_revision_shown() {
        let c = Controls {
            accepted: BTreeMap::from([(
                4,
                Acceptance {
                    set: set("bob", "2026-12-03T10:05:00Z"),
                },
            )]),
            recheck: Some(Recheck {
                revision: 4,
                set: set("carol", "2026-12-03T10:04:00Z"),
            }),
            ..Controls::default()
        };
        let now = at("2026-12-03T10:10:00Z");
        assert!(ControlView::of(&c, 4, now).accepted.is_some());
        assert!(ControlView::of(&c, 4, now).recheck.is_some());
        let newer = ControlView::of(&c, 5, now);
        assert!(newer.is_empty(), "{newer:?}");
        assert_eq!(
            set("a", "2026-12-03T10:05:00Z").words(),
            "by a at 2026-12-03 10:05:00 UTC: maintenance"
        );
    }
}
