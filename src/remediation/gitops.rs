//! Who else manages a release (pure): a GitOps controller that re-applies what Git says
//! undoes upgrade-guard's rollback at its next reconciliation, and the upgrade fails again:
//! one outage and one rollback per cooldown, for ever. Told from what the cluster shows on
//! the release's objects: Flux's helm-controller labels them
//! (`helm.toolkit.fluxcd.io/name`, `.../namespace`), Argo CD tracks them by label or
//! annotation (`argocd.argoproj.io/instance`, `argocd.argoproj.io/tracking-id`), and a
//! controller's field manager shows in `managedFields`.

use std::collections::BTreeMap;

/// The controller that manages a release, with what the operator does instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    /// A Flux `HelmRelease`.
    Flux {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An Argo CD `Application`.
    ArgoCd {
        /// Its name.
        app: String,
    },
    /// Another controller, by its field manager.
    Controller(String),
}

impl Manager {
    /// What the operator does instead of an automatic rollback, with the exact command
    /// where there is one.
    pub fn words(&self) -> String {
        match self {
            Self::Flux { namespace, name } => format!(
                "the release is managed by Flux (HelmRelease {namespace}/{name}), which would upgrade it again: revert the change in Git, or suspend it first (flux suspend helmrelease {name} -n {namespace}) and roll back by hand"
            ),
            Self::ArgoCd { app } => format!(
                "the release is managed by Argo CD (Application {app}), which would sync it again: revert the change in Git, or turn off its automated sync first (argocd app set {app} --sync-policy none) and roll back by hand"
            ),
            Self::Controller(m) => format!(
                "the release's objects are managed by the controller {m:?}, which may apply them again: roll back through it, not behind it"
            ),
        }
    }
}

/// Field managers of controllers known to re-apply a release.
const CONTROLLERS: [&str; 3] = [
    "helm-controller",
    "argocd-controller",
    "argocd-application-controller",
];

/// The manager shown by one object's labels, annotations and field managers.
pub fn manager_of(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    field_managers: &[&str],
) -> Option<Manager> {
    if let Some(name) = labels.get("helm.toolkit.fluxcd.io/name") {
        let namespace = labels
            .get("helm.toolkit.fluxcd.io/namespace")
            .cloned()
            .unwrap_or_default();
        return Some(Manager::Flux {
            namespace,
            name: name.clone(),
        });
    }
    let argo = labels
        .get("argocd.argoproj.io/instance")
        .cloned()
        .or_else(|| {
            // `<app>:<group>/<kind>:<namespace>/<name>`
            let id = annotations.get("argocd.argoproj.io/tracking-id")?;
            Some(id.split(':').next()?.to_string())
        });
    if let Some(app) = argo.filter(|a| !a.is_empty()) {
        return Some(Manager::ArgoCd { app });
    }
    field_managers
        .iter()
        .find(|m| CONTROLLERS.contains(m))
        .map(|m| Manager::Controller((*m).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn flux_argo_and_known_controllers_are_told_apart_from_plain_helm() {
        let none = BTreeMap::new();
        let flux = map(&[
            ("helm.toolkit.fluxcd.io/name", "gim"),
            ("helm.toolkit.fluxcd.io/namespace", "flux-system"),
        ]);
        let m = manager_of(&flux, &none, &["helm"]).unwrap();
        assert!(
            m.words()
                .contains("flux suspend helmrelease gim -n flux-system"),
            "{}",
            m.words()
        );
        let tracked = map(&[(
            "argocd.argoproj.io/tracking-id",
            "gim-prod:apps/Deployment:gim/gim",
        )]);
        assert_eq!(
            manager_of(&none, &tracked, &[]),
            Some(Manager::ArgoCd {
                app: "gim-prod".into()
            })
        );
        let argo = map(&[("argocd.argoproj.io/instance", "gim-prod")]);
        assert!(
            manager_of(&argo, &none, &[])
                .unwrap()
                .words()
                .contains("argocd app set gim-prod --sync-policy none")
        );
        assert_eq!(
            manager_of(
                &none,
                &none,
                &["helm", "kube-controller-manager", "helm-controller"]
            ),
            Some(Manager::Controller("helm-controller".into()))
        );
        // Helm's own labels, a CI job running helm, kubectl: nobody re-applies it.
        let helm = map(&[
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/instance", "gim"),
        ]);
        assert_eq!(manager_of(&helm, &none, &["helm", "kubectl-edit"]), None);
    }
}
