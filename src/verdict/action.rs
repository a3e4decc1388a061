//! What to do about a verdict (pure): the recommended action, its exact `helm rollback`
//! command, and the one sentence that puts it into words for alerts, mails, the API's readers
//! and the terminal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::release::ReleaseKey;
use crate::release::labels::Storage;
use crate::release::rollback_target::TargetBasis;
use crate::units::human;

/// What the operator (or the daemon, in `auto` mode) should do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RecommendedAction {
    /// Nothing.
    None,
    /// Roll back to a known-good revision.
    Rollback {
        /// Revision to roll back to.
        target: u32,
        /// Why that one.
        basis: TargetBasis,
        /// The exact command.
        command: String,
    },
    /// Restart the pod so the migration resumes.
    RestartPod {
        /// The exact command.
        command: String,
    },
    /// Fix the named dependency first; a rollback would not work.
    FixDependency {
        /// The dependency.
        name: String,
    },
    /// A hook that runs before the manifest failed: the new version never ran; fix the
    /// hook's cause and run the operation again.
    FixHook {
        /// The hook.
        hook: String,
        /// The command that shows its logs.
        command: String,
    },
    /// Someone has to look.
    Investigate {
        /// Why.
        reason: String,
    },
    /// Nothing may be done now (the judged revision is no longer the latest, a Helm
    /// operation holds the release, or it was uninstalled).
    Hold {
        /// Why.
        reason: String,
    },
}

impl RecommendedAction {
    /// The action in one sentence, its command (if any) last and whole so it can be copied:
    /// the words of alerts, mails, `status` and `check`.
    pub fn words(&self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Rollback {
                target, command, ..
            } => format!("roll back to revision {target}: {command}"),
            Self::RestartPod { command } => {
                format!("restart the pod, the migration resumes (no rollback): {command}")
            }
            Self::FixDependency { name } => {
                format!(
                    "fix the dependency {name} first: a rollback will not work until it is healthy"
                )
            }
            Self::FixHook { hook, command } => format!(
                "fix what made the hook {hook} fail, then run the upgrade again (the new version never ran: no rollback, no restart); its logs: {command}"
            ),
            Self::Investigate { reason } => format!("investigate: {reason}"),
            Self::Hold { reason } => format!("no action now: {reason}"),
        }
    }
}

/// The arguments of `helm rollback <release> <target> -n <namespace> [--wait] --timeout <t>`:
/// always a target (a bare `helm rollback <release>` goes to the previous revision even
/// when it failed). `--wait` for what upgrade-guard runs itself.
pub fn rollback_args(
    release: &ReleaseKey,
    target: u32,
    timeout: Duration,
    wait: bool,
) -> Vec<String> {
    let mut args = vec![
        "rollback".to_string(),
        release.name.to_string(),
        target.to_string(),
        "-n".to_string(),
        release.namespace.to_string(),
    ];
    if wait {
        args.push("--wait".to_string());
    }
    args.extend(["--timeout".to_string(), human(timeout)]);
    args
}

/// [`rollback_args`] as the command line an operator types, preceded by
/// `HELM_DRIVER=configmap` for a release Helm keeps in ConfigMaps (helm would not find it
/// otherwise).
pub fn rollback_command(
    release: &ReleaseKey,
    storage: Storage,
    target: u32,
    timeout: Duration,
    wait: bool,
) -> String {
    let driver = match storage {
        Storage::Secret => String::new(),
        other => format!("HELM_DRIVER={} ", other.as_str()),
    };
    format!(
        "{driver}helm {}",
        rollback_args(release, target, timeout, wait).join(" ")
    )
}
