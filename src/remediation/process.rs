//! This process as another one can check it, and the checks (I/O): the machine's boot, the
//! `/proc` it sees, its pid and start time, whether it is the first process of its PID
//! namespace, its pod and its container's restarts (read once, when first needed); for a
//! holder, what `/proc` and the API server show of it now. The decision is
//! [`super::liveness::judge`].

use std::os::unix::fs::MetadataExt;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tracing::warn;

use super::liveness::{PodSeen, Seen};
use crate::api_error::ApiErrorKind;
use crate::records::action::{PodMark, ProcessMark};

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

fn proc_dev() -> Option<u64> {
    std::fs::metadata("/proc").ok().map(|m| m.dev())
}

/// Start time (clock ticks after boot) of `/proc/<pid>`: field 22 of `stat`, counted after
/// the command name's closing parenthesis (the name may hold spaces).
fn start_ticks(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn stat_of(pid: &str) -> std::io::Result<Option<u64>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => Ok(start_ticks(&s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// This process's mark; its pod is read from the API server when `POD_NAMESPACE` and
/// `POD_NAME` are set (the chart sets them), its container named by `CONTAINER_NAME` or
/// the pod's only one.
pub async fn this_process(client: &kube::Client) -> ProcessMark {
    // `/proc/self` is this process as the `/proc` it sees numbers it, which is what another
    // process reading that `/proc` compares (in a PID namespace of its own, its pid is 1).
    let pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok());
    let start = pid.and_then(|p| stat_of(&p.to_string()).ok().flatten());
    ProcessMark {
        boot_id: boot_id(),
        proc_dev: proc_dev(),
        pid,
        start_ticks: start,
        namespace_init: std::process::id() == 1,
        pod: own_pod(client).await,
    }
}

async fn own_pod(client: &kube::Client) -> Option<PodMark> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (namespace, name) = (env("POD_NAMESPACE")?, env("POD_NAME")?);
    let mut mark = PodMark {
        namespace,
        name,
        container: env("CONTAINER_NAME"),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(client.clone(), &mark.namespace)
        .get(&mark.name)
        .await
    {
        Ok(pod) => {
            mark.uid = pod.metadata.uid.clone();
            let statuses = pod
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default();
            let mine = match &mark.container {
                Some(c) => statuses.iter().find(|s| &s.name == c),
                None if statuses.len() == 1 => statuses.first(),
                None => None,
            };
            if let Some(s) = mine {
                mark.container = Some(s.name.clone());
                mark.restarts = Some(s.restart_count);
            }
        }
        Err(e) => warn!(
            pod = %mark.name,
            "cannot read this process's own pod: a successor can tell this process gone only once the pod is deleted: {e}"
        ),
    }
    Some(mark)
}

/// What this process sees now of the holder marked `mark`.
pub async fn observe(client: &kube::Client, mark: Option<&ProcessMark>) -> Seen {
    let mut seen = Seen {
        boot_id: boot_id(),
        proc_dev: proc_dev(),
        ..Default::default()
    };
    let Some(mark) = mark else { return seen };
    if mark.boot_id.is_some() && mark.boot_id == seen.boot_id && mark.proc_dev == seen.proc_dev {
        seen.holder = mark.pid.and_then(|p| stat_of(&p.to_string()).ok());
    }
    if let Some(pm) = &mark.pod {
        seen.pod = match Api::<Pod>::namespaced(client.clone(), &pm.namespace)
            .get(&pm.name)
            .await
        {
            Ok(pod) => {
                let status = pod.status.unwrap_or_default();
                let restarts = status
                    .container_statuses
                    .unwrap_or_default()
                    .iter()
                    .find(|s| Some(&s.name) == pm.container.as_ref())
                    .map(|s| s.restart_count);
                Some(PodSeen::Present {
                    uid: pod.metadata.uid,
                    terminal: matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")),
                    restarts,
                })
            }
            Err(e) if ApiErrorKind::of(&e) == ApiErrorKind::NotFound => Some(PodSeen::Absent),
            Err(e) => {
                warn!(pod = %pm.name, "cannot read the pod of an action's holder: {e}");
                None
            }
        };
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_after_a_command_name_with_spaces() {
        let stat = "4242 (upgrade guard) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 123456 1000 10";
        assert_eq!(start_ticks(stat), Some(123456));
        assert_eq!(start_ticks("garbage"), None);
    }

    #[test]
    fn this_process_is_marked_and_seen_running() {
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(start_ticks(&me).is_some(), "{me}");
        assert!(boot_id().is_some() && proc_dev().is_some());
    }
}
