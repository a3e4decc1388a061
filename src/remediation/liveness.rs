//! Whether the process that holds an action, and the helm it started, are provably gone
//! (pure), from what another process observed: on the same machine and `/proc`, the
//! holder's pid and start time, when the holder was the first process of its PID namespace
//! (as in a container: the kernel stops everything in it when it exits); in Kubernetes, the
//! holder's pod and its container's restarts. Only `Gone` lets another process complete
//! the action; anything uncertain is `Running` or `Unknown`.

use crate::records::action::ProcessMark;

/// What this process observed about a holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// This process's machine boot.
    pub boot_id: Option<String>,
    /// The device of the `/proc` this process sees.
    pub proc_dev: Option<u64>,
    /// `/proc/<holder pid>`: `Some(Some(start ticks))` present, `Some(None)` absent, `None`
    /// not looked at or unreadable.
    pub holder: Option<Option<u64>>,
    /// The holder's pod, when it has one and it was read.
    pub pod: Option<PodSeen>,
}

/// The holder's pod as read from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodSeen {
    /// Not found: deleted (Kubernetes removes a pod once its containers stopped).
    Absent,
    /// Found.
    Present {
        /// Its UID.
        uid: Option<String>,
        /// `Succeeded` or `Failed`: none of its containers runs.
        terminal: bool,
        /// The holder's container's restart count now.
        restarts: Option<i32>,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Provably gone, and why.
    Gone(String),
    /// Still runs, or may: why.
    Running(String),
    /// Nothing observed tells.
    Unknown(String),
}

/// Whether the holder marked `mark` is gone, from `seen`.
pub fn judge(mark: Option<&ProcessMark>, seen: &Seen) -> Liveness {
    let Some(mark) = mark else {
        return Liveness::Unknown(
            "its record does not say where it ran (written by an older upgrade-guard)".into(),
        );
    };
    let same_proc = mark.boot_id.is_some()
        && mark.boot_id == seen.boot_id
        && mark.proc_dev.is_some()
        && mark.proc_dev == seen.proc_dev;
    if same_proc && let Some(pid) = mark.pid {
        match seen.holder {
            Some(Some(start)) if Some(start) == mark.start_ticks => {
                return Liveness::Running(format!("its process {pid} still runs on this machine"));
            }
            Some(_) if mark.namespace_init => {
                return Liveness::Gone(format!(
                    "its process {pid} on this machine, the first of its PID namespace (as in a container), has exited: the kernel stopped everything it started (helm) with it"
                ));
            }
            Some(_) if mark.pod.is_none() => {
                return Liveness::Unknown(format!(
                    "its process {pid} has exited, but the helm it started outlives it (it was not the first process of a PID namespace) and may still be rolling back"
                ));
            }
            _ => {}
        }
    }
    if let Some(pm) = &mark.pod {
        let pod = format!("{}/{}", pm.namespace, pm.name);
        return match &seen.pod {
            Some(PodSeen::Absent) => Liveness::Gone(format!("its pod {pod} no longer exists")),
            Some(PodSeen::Present { uid, .. })
                if pm.uid.is_some() && uid.is_some() && *uid != pm.uid =>
            {
                Liveness::Gone(format!(
                    "its pod {pod} was replaced by another pod of that name"
                ))
            }
            Some(PodSeen::Present { terminal: true, .. }) => {
                Liveness::Gone(format!("its pod {pod} has terminated"))
            }
            Some(PodSeen::Present {
                restarts: Some(now),
                ..
            }) if pm.restarts.is_some_and(|then| *now > then) => Liveness::Gone(format!(
                "the container it ran in (pod {pod}) has restarted since"
            )),
            Some(PodSeen::Present { .. }) => Liveness::Running(format!("its pod {pod} still runs")),
            None => Liveness::Unknown(format!("its pod {pod} could not be read")),
        };
    }
    Liveness::Unknown("it ran on another machine and outside any pod this process can check".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::action::PodMark;

    fn on_host() -> ProcessMark {
        ProcessMark {
            boot_id: Some("boot".into()),
            proc_dev: Some(22),
            pid: Some(4242),
            start_ticks: Some(1000),
            namespace_init: true,
            pod: None,
        }
    }

    fn here(holder: Option<Option<u64>>) -> Seen {
        Seen {
            boot_id: Some("boot".into()),
            proc_dev: Some(22),
            holder,
            pod: None,
        }
    }

    fn gone(l: &Liveness) -> bool {
        matches!(l, Liveness::Gone(_))
    }

    #[test]
    fn on_the_same_machine_the_first_process_of_a_pid_namespace_takes_its_helm_with_it() {
        let m = on_host();
        assert!(gone(&judge(Some(&m), &here(Some(None)))));
        // Its pid now belongs to another process.
        assert!(gone(&judge(Some(&m), &here(Some(Some(2000))))));
        assert!(matches!(
            judge(Some(&m), &here(Some(Some(1000)))),
            Liveness::Running(_)
        ));
        assert!(!gone(&judge(Some(&m), &here(None))), "not looked at");
        // A plain process: the helm it started outlives it and may still roll back.
        let plain = ProcessMark {
            namespace_init: false,
            ..on_host()
        };
        let l = judge(Some(&plain), &here(Some(None)));
        assert!(
            matches!(l, Liveness::Unknown(ref w) if w.contains("helm")),
            "{l:?}"
        );
        // Another boot or another /proc: its pid means nothing here.
        let mut other = here(Some(None));
        other.boot_id = Some("other".into());
        assert!(!gone(&judge(Some(&m), &other)));
        let mut other = here(Some(None));
        other.proc_dev = Some(23);
        assert!(!gone(&judge(Some(&m), &other)));
        assert!(!gone(&judge(None, &here(Some(None)))), "an old record");
    }

    #[test]
    fn in_kubernetes_its_pod_deleted_replaced_terminated_or_restarted_proves_it_gone() {
        let m = ProcessMark {
            proc_dev: Some(99),
            pod: Some(PodMark {
                namespace: "ug".into(),
                name: "ug-0".into(),
                uid: Some("u1".into()),
                container: Some("upgrade-guard".into()),
                restarts: Some(2),
            }),
            ..on_host()
        };
        let with = |pod: Option<PodSeen>| Seen {
            pod,
            ..here(Some(None))
        };
        let present = |uid: &str, terminal: bool, restarts: i32| {
            Some(PodSeen::Present {
                uid: Some(uid.into()),
                terminal,
                restarts: Some(restarts),
            })
        };
        assert!(gone(&judge(Some(&m), &with(Some(PodSeen::Absent)))));
        assert!(gone(&judge(Some(&m), &with(present("u2", false, 0)))));
        assert!(gone(&judge(Some(&m), &with(present("u1", true, 2)))));
        assert!(gone(&judge(Some(&m), &with(present("u1", false, 3)))));
        // Still there, same container: it may be running helm right now.
        assert!(matches!(
            judge(Some(&m), &with(present("u1", false, 2))),
            Liveness::Running(_)
        ));
        assert!(matches!(judge(Some(&m), &with(None)), Liveness::Unknown(_)));
    }
}
