//! One installation acts on a namespace (I/O around a pure rule). Two upgrade-guard
//! installations (other namespaces or Lease names) watching the same namespace in
//! `mode: auto` would both roll a failure back: each has its own leader and its own
//! records. So the leader of an installation claims each namespace it acts on with a Lease
//! `upgrade-guard-claim` there, renewed while it leads (about once a minute, and before
//! every action), and never acts on a namespace another installation claims. A claim
//! another installation stopped renewing is taken only once this process has seen it
//! unchanged for [`CLAIM_DURATION`] by its own clock (no trust in other machines' clocks).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

use crate::api_error::ApiErrorKind;
use crate::records::MANAGED_BY;

/// Name of the claim Lease in a watched namespace.
pub const CLAIM_LEASE: &str = "upgrade-guard-claim";
/// How long a claim lasts without renewal.
pub const CLAIM_DURATION: Duration = Duration::from_secs(5 * 60);

/// Whose a namespace is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This installation's (claimed or renewed now).
    Ours,
    /// Another installation's, renewed within its duration.
    Other {
        /// The other installation (`<namespace>/<lease name>` of its leader Lease).
        holder: String,
        /// When it last renewed, by its own clock.
        renewed: Option<Timestamp>,
    },
    /// The claim could not be read or written: nothing is done blind.
    Unknown(String),
}

impl Claim {
    /// What the operator reads when another installation holds `namespace`.
    pub fn words(&self, namespace: &str, own: &str) -> Option<String> {
        match self {
            Self::Ours => None,
            Self::Other { holder, renewed } => Some(format!(
                "another upgrade-guard installation ({holder}) acts on namespace {namespace} (its claim, the Lease {namespace}/{CLAIM_LEASE}, was renewed {}); two installations would both roll back: keep one installation in mode: auto for a namespace (remove {namespace} from the other's watch.namespaces, or set it to recommend). This one is {own}",
                renewed.map_or("at an unknown time".to_string(), |t| format!(
                    "at {}",
                    t.strftime("%Y-%m-%d %H:%M:%S UTC")
                ))
            )),
            Self::Unknown(why) => Some(format!(
                "cannot claim namespace {namespace} for this installation ({why}): nothing is done blind"
            )),
        }
    }
}

/// What the pure rule decides about a claim Lease as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Nobody's, or ours: write it as ours.
    Take,
    /// Another installation's, and not seen unchanged for long enough.
    Held,
}

/// The rule: a claim is ours to take when it names us, names nobody, or has stayed the
/// same (`resource_version`) for [`CLAIM_DURATION`] since `first_seen` by our clock.
pub fn judge(holder: Option<&str>, own: &str, unchanged_for: Option<Duration>) -> Seen {
    match holder {
        None | Some("") => Seen::Take,
        Some(h) if h == own => Seen::Take,
        Some(_) if unchanged_for.is_some_and(|d| d >= CLAIM_DURATION) => Seen::Take,
        Some(_) => Seen::Held,
    }
}

/// The claims of one installation.
pub struct Claims {
    client: kube::Client,
    /// This installation: `<namespace>/<lease name>` of its leader Lease.
    own: String,
    /// Other installations' claims as first seen: namespace → (resourceVersion, when).
    seen: BTreeMap<String, (String, Instant)>,
}

impl Claims {
    /// Claims for the installation whose leader Lease is `lease` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, lease: &str) -> Self {
        Self {
            client,
            own: format!("{namespace}/{lease}"),
            seen: BTreeMap::new(),
        }
    }

    /// This installation's name in the claims.
    pub fn own(&self) -> &str {
        &self.own
    }

    /// Claims (or renews the claim on) `namespace`.
    pub async fn claim(&mut self, namespace: &str) -> Claim {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let lease = match api.get_opt(CLAIM_LEASE).await {
            Ok(l) => l,
            Err(e) => return Claim::Unknown(format!("reading the Lease {CLAIM_LEASE}: {e}")),
        };
        let now = Timestamp::now();
        let Some(mut lease) = lease else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(CLAIM_LEASE.into()),
                    labels: Some([(MANAGED_BY.0.into(), MANAGED_BY.1.into())].into()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, now)),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Claim::Ours,
                // Someone created it meanwhile: theirs until seen again.
                Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => Claim::Other {
                    holder: "another installation (it claimed the namespace just now)".into(),
                    renewed: Some(now),
                },
                Err(e) => Claim::Unknown(format!("creating the Lease {CLAIM_LEASE}: {e}")),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone();
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_for = match self.seen.get(namespace) {
            Some((v, since)) if *v == version => Some(since.elapsed()),
            _ => {
                self.seen
                    .insert(namespace.to_string(), (version, Instant::now()));
                Some(Duration::ZERO)
            }
        };
        if judge(holder.as_deref(), &self.own, unchanged_for) == Seen::Held {
            return Claim::Other {
                holder: holder.unwrap_or_default(),
                renewed: spec.renew_time.map(|t| t.0),
            };
        }
        let acquired = match holder.as_deref() {
            Some(h) if h == self.own => spec.acquire_time.map_or(now, |t| t.0),
            _ => now,
        };
        lease.spec = Some(self.spec(acquired, now));
        match api
            .replace(CLAIM_LEASE, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.seen.remove(namespace);
                Claim::Ours
            }
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::Conflict => Claim::Other {
                holder: "another installation (it renewed its claim just now)".into(),
                renewed: Some(now),
            },
            Err(e) => Claim::Unknown(format!("renewing the Lease {CLAIM_LEASE}: {e}")),
        }
    }

    fn spec(&self, acquired: Timestamp, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.own.clone()),
            lease_duration_seconds: i32::try_from(CLAIM_DURATION.as_secs()).ok(),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_taken_only_when_free_ours_or_left_unchanged_long_enough() {
        let own = "ug/upgrade-guard";
        assert_eq!(judge(None, own, None), Seen::Take);
        assert_eq!(judge(Some(""), own, None), Seen::Take);
        assert_eq!(judge(Some(own), own, Some(Duration::ZERO)), Seen::Take);
        let other = Some("team-b/upgrade-guard");
        assert_eq!(judge(other, own, Some(Duration::ZERO)), Seen::Held);
        assert_eq!(judge(other, own, None), Seen::Held);
        assert_eq!(
            judge(other, own, Some(CLAIM_DURATION - Duration::from_secs(1))),
            Seen::Held
        );
        assert_eq!(judge(other, own, Some(CLAIM_DURATION)), Seen::Take);
        let words = Claim::Other {
            holder: "team-b/upgrade-guard".into(),
            renewed: None,
        }
        .words("gim", own)
        .unwrap();
        assert!(
            words.contains("another upgrade-guard installation (team-b/upgrade-guard)")
                && words.contains("gim")
                && words.contains("This one is ug/upgrade-guard"),
            "{words}"
        );
        assert_eq!(Claim::Ours.words("gim", own), None);
    }
}
