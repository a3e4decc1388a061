//! `upgrade-guard suspend | resume | accept | recheck`: the operator's controls, written to
//! the release's control ConfigMap in upgrade-guard's namespace (see
//! `records/controls.rs`), where every replica of the daemon honours them within one round.
//! Each says who set it (the Kubernetes user the command ran as) and why.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::error::CliError;
use super::output::Output;
use crate::records::control::{
    Acceptance, RECHECK_KEY, Recheck, SUSPEND_KEY, SetBy, Suspension, accept_key,
};
use crate::records::controls::{ControlStore, configmap_name};
use crate::release::ReleaseKey;
use crate::tracker::read::read_statuses;
use crate::units::parse_duration;

/// What every control names: the release, where upgrade-guard keeps its records, why.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Release name.
    pub release: String,
    /// Namespace of the release. Default, as helm: $HELM_NAMESPACE, else the current
    /// kubeconfig context's namespace, else `default`.
    #[arg(short, long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Why, in words: shown with the control in the API, `status`, the alerts and the logs.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// upgrade-guard's namespace, where the daemon reads the controls (`state.namespace`
    /// of its configuration). Default: that of --config, else `upgrade-guard`.
    #[arg(long, env = "UPGRADE_GUARD_STATE_NAMESPACE", value_name = "NAMESPACE")]
    pub state_namespace: Option<String>,
    /// The daemon's configuration file, read for `state.namespace` only.
    #[arg(long, env = "UPGRADE_GUARD_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Arguments of `suspend`.
#[derive(Debug, clap::Args)]
pub struct SuspendArgs {
    /// The release, and why.
    #[command(flatten)]
    pub target: Target,
    /// How long: the suspension expires by itself after this (a suspension nobody lifts
    /// must not leave a release unguarded for ever).
    #[arg(long = "for", default_value = "4h", value_parser = parse_duration)]
    pub duration: Duration,
}

/// Arguments of `accept`.
#[derive(Debug, clap::Args)]
pub struct AcceptArgs {
    /// The release, and why.
    #[command(flatten)]
    pub target: Target,
    /// The revision accepted as good.
    #[arg(long)]
    pub revision: u32,
}

/// What a control command did, as printed.
#[derive(Debug, Serialize)]
pub struct Done {
    /// `namespace/name`.
    pub release: String,
    /// `suspended`, `resumed`, `accepted`, `recheck`.
    pub control: &'static str,
    /// The revision concerned (accept, recheck).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// When it was set (a re-check's bake window starts then).
    pub at: Timestamp,
    /// When a suspension ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// The ConfigMap written (`namespace/name`).
    pub record: String,
}

impl Done {
    fn line(&self) -> String {
        let why = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.reason)
        };
        let what = match (self.control, self.revision, self.until) {
            ("suspended", _, Some(until)) => format!(
                "suspended until {}: judged and shown, neither alerted nor acted on",
                until.strftime("%Y-%m-%d %H:%M:%S UTC")
            ),
            ("resumed", ..) => "resumed: alerted and acted on again".to_string(),
            ("accepted", Some(r), _) => format!(
                "revision {r} accepted as good: its alerts resolve, it is a valid rollback target"
            ),
            ("recheck", Some(r), _) => {
                format!("revision {r} will be judged again with a fresh bake window")
            }
            (other, ..) => other.to_string(),
        };
        format!(
            "{}: {what}, by {}{why}; upgrade-guard honours it within one round (record {})\n",
            self.release, self.by, self.record
        )
    }
}

/// `suspend`.
pub async fn suspend(client: kube::Client, args: &SuspendArgs) -> Result<i32, CliError> {
    if args.duration.is_zero() {
        return Err(CliError::Usage("--for must be longer than 0s".into()));
    }
    let t = &args.target;
    let (at, store) = prepare(&client, t).await?;
    let key = &at.key;
    let set = set_by(&client, &t.reason).await;
    let until = crate::units::plus(set.at, args.duration);
    let value = Suspension {
        set: set.clone(),
        until,
    };
    store.set(key, SUSPEND_KEY, Some(json(&value)?)).await?;
    finish(t, &at, "suspended", None, Some(until), set)
}

/// `resume`.
pub async fn resume(client: kube::Client, t: &Target) -> Result<i32, CliError> {
    let (at, store) = prepare(&client, t).await?;
    let key = &at.key;
    let set = set_by(&client, &t.reason).await;
    store.set(key, SUSPEND_KEY, None).await?;
    finish(t, &at, "resumed", None, None, set)
}

/// `accept`.
pub async fn accept(client: kube::Client, args: &AcceptArgs) -> Result<i32, CliError> {
    let t = &args.target;
    let (at, store) = prepare(&client, t).await?;
    let key = &at.key;
    let history = read_statuses(client.clone(), &key.namespace, &key.name).await?;
    if !history.iter().any(|(r, _)| *r == args.revision) {
        let known: Vec<String> = history.iter().map(|(r, _)| r.to_string()).collect();
        return Err(CliError::Usage(format!(
            "{key} has no revision {} (its revisions: {})",
            args.revision,
            known.join(", ")
        )));
    }
    let set = set_by(&client, &t.reason).await;
    let value = Acceptance { set: set.clone() };
    store
        .set(key, &accept_key(args.revision), Some(json(&value)?))
        .await?;
    finish(t, &at, "accepted", Some(args.revision), None, set)
}

/// `recheck`.
pub async fn recheck(client: kube::Client, t: &Target) -> Result<i32, CliError> {
    let (at, store) = prepare(&client, t).await?;
    let key = &at.key;
    let history = read_statuses(client.clone(), &key.namespace, &key.name).await?;
    let Some(latest) = history.iter().map(|(r, _)| *r).max() else {
        return Err(not_found(key));
    };
    let set = set_by(&client, &t.reason).await;
    let value = Recheck {
        revision: latest,
        set: set.clone(),
    };
    store.set(key, RECHECK_KEY, Some(json(&value)?)).await?;
    finish(t, &at, "recheck", Some(latest), None, set)
}

/// The release (which must exist) and the store of upgrade-guard's namespace.
async fn prepare(client: &kube::Client, t: &Target) -> Result<(Where, ControlStore), CliError> {
    let ns = super::scope::namespace(t.namespace.as_deref(), client);
    let key = ReleaseKey::new(&ns, &t.release);
    if read_statuses(client.clone(), &ns, &t.release)
        .await?
        .is_empty()
    {
        return Err(not_found(&key));
    }
    let state_ns = match (&t.state_namespace, &t.config) {
        (Some(ns), _) => ns.clone(),
        (None, Some(path)) => crate::config::Config::load(path)?.state.namespace,
        (None, None) => crate::config::Config::default_profile()?.state.namespace,
    };
    let store = ControlStore::new(client.clone(), &state_ns);
    Ok((Where { key, state_ns }, store))
}

/// The release a control is about, and upgrade-guard's namespace that keeps it.
struct Where {
    key: ReleaseKey,
    state_ns: String,
}

fn not_found(key: &ReleaseKey) -> CliError {
    CliError::ReleaseNotFound {
        release: key.name.to_string(),
        namespace: key.namespace.to_string(),
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, CliError> {
    Ok(serde_json::to_string(value).map_err(anyhow::Error::from)?)
}

fn finish(
    t: &Target,
    at: &Where,
    control: &'static str,
    revision: Option<u32>,
    until: Option<Timestamp>,
    set: SetBy,
) -> Result<i32, CliError> {
    let done = Done {
        release: at.key.to_string(),
        control,
        revision,
        at: set.at,
        until,
        by: set.by,
        reason: set.reason,
        record: format!("{}/{}", at.state_ns, configmap_name(&at.key)),
    };
    t.output.print(&done, Done::line)?;
    Ok(0)
}

/// Who runs this command, as the cluster knows them (a SelfSubjectReview), else the local
/// user; now; why.
async fn set_by(client: &kube::Client, reason: &str) -> SetBy {
    SetBy {
        by: who(client).await,
        at: Timestamp::now(),
        reason: reason.to_string(),
    }
}

async fn who(client: &kube::Client) -> String {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(client.clone());
    let asked = api
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await;
    match asked
        .ok()
        .and_then(|r| r.status?.user_info?.username)
        .filter(|u| !u.is_empty())
    {
        Some(user) => user,
        None => {
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            if host.is_empty() {
                user
            } else {
                format!("{user}@{host}")
            }
        }
    }
}
