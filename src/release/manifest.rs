//! A release's manifest read for what the checks need (pure): each YAML document's kind, name
//! and namespace, the workloads among them, and the documents that could not be read.

use serde::Deserialize;

use super::summary::{ObjectRef, WorkloadKind};

/// One object of the manifest: what is read of it.
#[derive(Deserialize)]
pub(super) struct ManifestObject {
    kind: Option<String>,
    pub(super) metadata: Option<ManifestMetadata>,
}

/// The name and namespace of a manifest object.
#[derive(Deserialize)]
pub(super) struct ManifestMetadata {
    name: Option<String>,
    pub(super) namespace: Option<String>,
}

/// A manifest: its objects and what could not be read.
pub(super) struct Manifest {
    /// The objects read.
    pub(super) objects: Vec<ManifestObject>,
    /// Documents that could not be read, in words.
    pub(super) problems: Vec<String>,
}

/// Splits a manifest into its YAML documents at `---` lines (Helm joins rendered templates
/// that way; block scalars are indented, so a document marker cannot hide inside one).
fn documents(manifest: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in manifest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            docs.push(&manifest[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&manifest[start..]);
    docs
}

/// Parses every YAML document of a manifest, keeping only kind, name and namespace. A
/// document that is not valid YAML is left out and described (with its `# Source:` line
/// when Helm wrote one), so one broken object does not hide the others.
pub(super) fn manifest_objects(manifest: &str) -> Manifest {
    let mut out = Manifest {
        objects: Vec::new(),
        problems: Vec::new(),
    };
    let documents = documents(manifest)
        .into_iter()
        .filter(|d| !d.trim().is_empty());
    for (i, doc) in documents.enumerate() {
        match serde_yaml_ng::from_str::<Option<ManifestObject>>(doc) {
            Ok(object) => out.objects.extend(object),
            Err(e) => {
                let source = doc
                    .lines()
                    .find_map(|l| l.strip_prefix("# Source: "))
                    .map(|s| format!(" ({})", s.trim()))
                    .unwrap_or_default();
                let at = e
                    .location()
                    .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                    .unwrap_or_default();
                out.problems.push(format!(
                    "manifest document {}{source} is not valid YAML{at}; its object is not judged",
                    i + 1
                ));
            }
        }
    }
    out
}

/// The workloads among the objects, in the release's namespace unless they name another.
pub(super) fn workloads_in(
    objects: Vec<ManifestObject>,
    release_namespace: &str,
) -> Vec<ObjectRef> {
    let mut refs: Vec<ObjectRef> = objects
        .into_iter()
        .filter_map(|o| {
            let kind = WorkloadKind::from_kind(o.kind.as_deref()?)?;
            let meta = o.metadata?;
            Some(ObjectRef {
                kind,
                name: meta.name?,
                namespace: meta
                    .namespace
                    .unwrap_or_else(|| release_namespace.to_string()),
            })
        })
        .collect();
    refs.sort();
    refs.dedup();
    refs
}
