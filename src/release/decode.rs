//! Decoding of a Helm release payload (pure): the Secret's `data.release` bytes, which are
//! base64 text of gzip-compressed JSON (or, in legacy records, uncompressed JSON), become a
//! compact [`ReleaseSummary`].
//!
//! Guarantees: the user values (`config`), the chart's templates, files and default values,
//! and the notes are skipped by the JSON parser and never held in memory; the decompressed
//! size is capped, so a zip bomb cannot exhaust memory; every malformed input gives a
//! [`DecodeError`] with a [`DecodeErrorReason`] and no panic.

use std::io::{self, Read};

use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ReleaseStatus;

/// Default cap on the decompressed payload: real releases are a few MiB at most.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 16 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest decompressed JSON accepted, in bytes.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// What upgrade-guard keeps of one release revision. Holds no user values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseSummary {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Revision number (Helm's `version`).
    pub revision: u32,
    /// Status recorded in the payload.
    pub status: ReleaseStatus,
    /// Helm's description ("Upgrade complete", "Rollback to 3", ...).
    pub description: String,
    /// When the release was first deployed.
    pub first_deployed: Option<Timestamp>,
    /// When this revision was deployed.
    pub last_deployed: Option<Timestamp>,
    /// Chart identity.
    pub chart: ChartRef,
    /// Hooks with the result of their last run.
    pub hooks: Vec<Hook>,
    /// Deployments, StatefulSets, DaemonSets and Jobs named in the manifest.
    pub workloads: Vec<ObjectRef>,
    /// Manifest documents that are not valid YAML, in words (which document, where): the
    /// summary lacks their objects. Never quotes the document's content.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifest_problems: Vec<String>,
}

/// Chart name and versions from `chart.metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartRef {
    /// Chart name.
    pub name: String,
    /// Chart version.
    pub version: String,
    /// Version of the packaged application, when the chart declares one.
    pub app_version: Option<String>,
}

/// A Helm hook and its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// Name of the hook's object.
    pub name: String,
    /// Kind of the hook's object (`Job`, `Pod`, ...).
    pub kind: String,
    /// Namespace of the hook's object (the release namespace unless the manifest says).
    pub namespace: String,
    /// Events the hook runs on (`pre-upgrade`, `post-install`, ...).
    pub events: Vec<String>,
    /// Phase of the last run; `None` when the hook never ran.
    pub last_run: Option<HookPhase>,
}

impl Hook {
    /// The hook runs before Helm applies the manifest of the operation that wrote `revision`
    /// (`pre-install` for an install, `pre-rollback` for a rollback, `pre-upgrade` otherwise):
    /// when it fails, the new manifest was never applied.
    pub fn runs_before_apply(&self, operation: Operation) -> bool {
        let event = match operation {
            Operation::Install => "pre-install",
            Operation::Upgrade => "pre-upgrade",
            Operation::Rollback => "pre-rollback",
        };
        self.events.iter().any(|e| e == event)
    }
}

/// The Helm operation that wrote a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `helm install` (revision 1).
    Install,
    /// `helm upgrade`.
    Upgrade,
    /// `helm rollback` (description `Rollback to N`).
    Rollback,
}

impl Operation {
    /// The hook event suffix Helm uses (`install`, `upgrade`, `rollback`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Upgrade => "upgrade",
            Self::Rollback => "rollback",
        }
    }
}

impl ReleaseSummary {
    /// The revision this one rolled back to, when Helm's description says `Rollback to N`.
    pub fn rollback_to(&self) -> Option<u32> {
        super::event::rollback_target_in(&self.description)
    }

    /// The operation that wrote this revision, from Helm's description ("Install
    /// complete", "Upgrade \"x\" failed: ...", "Rollback to 3", "Rollback \"x\" failed:
    /// ..."), else its pending status, else its number (1 is an install).
    pub fn operation(&self) -> Operation {
        let d = self.description.as_str();
        if d.starts_with("Rollback ") || self.status == ReleaseStatus::PendingRollback {
            Operation::Rollback
        } else if d.starts_with("Upgrade ") || self.status == ReleaseStatus::PendingUpgrade {
            Operation::Upgrade
        } else if d.starts_with("Install")
            || d.contains("failed pre-install")
            || self.status == ReleaseStatus::PendingInstall
            || self.revision <= 1
        {
            Operation::Install
        } else {
            Operation::Upgrade
        }
    }
}

/// Helm's `HookPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookPhase {
    /// `Unknown`.
    Unknown,
    /// `Running`.
    Running,
    /// `Succeeded`.
    Succeeded,
    /// `Failed`.
    Failed,
}

/// Workload kinds upgrade-guard watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `batch/v1` Job.
    Job,
}

impl WorkloadKind {
    /// The kind as Kubernetes writes it (`Deployment`), for sentences and check names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Job => "Job",
        }
    }

    /// The resource as `kubectl` names it (`deployment`), for commands.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
            Self::Job => "job",
        }
    }

    fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(Self::Deployment),
            "StatefulSet" => Some(Self::StatefulSet),
            "DaemonSet" => Some(Self::DaemonSet),
            "Job" => Some(Self::Job),
            _ => None,
        }
    }
}

/// A namespaced object named in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// Object kind.
    pub kind: WorkloadKind,
    /// Object name.
    pub name: String,
    /// Object namespace (the release namespace when the manifest omits it).
    pub namespace: String,
}

/// Why a payload could not be decoded; bounded, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeErrorReason {
    /// The Secret has no `release` key or it is empty.
    Empty,
    /// The inner base64 text is invalid.
    Base64,
    /// The gzip stream is invalid (bad header, bad data, bad checksum).
    Gzip,
    /// The gzip stream or JSON document ends early.
    Truncated,
    /// The decompressed payload exceeds the configured cap.
    TooLarge,
    /// The JSON is invalid or has the wrong shape.
    Json,
    /// A required field (name, namespace, version, info.status, chart metadata) is absent.
    MissingField,
    /// The status is not one of Helm's.
    UnknownStatus,
    /// A manifest document is not valid YAML (counted; the revision is still announced,
    /// without that document's object).
    Manifest,
    /// The Secret's labels do not identify a release revision.
    Labels,
}

impl DecodeErrorReason {
    /// Every reason, for exporting zeroes.
    pub const ALL: [DecodeErrorReason; 10] = [
        Self::Empty,
        Self::Base64,
        Self::Gzip,
        Self::Truncated,
        Self::TooLarge,
        Self::Json,
        Self::MissingField,
        Self::UnknownStatus,
        Self::Manifest,
        Self::Labels,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Base64 => "base64",
            Self::Gzip => "gzip",
            Self::Truncated => "truncated",
            Self::TooLarge => "too_large",
            Self::Json => "json",
            Self::MissingField => "missing_field",
            Self::UnknownStatus => "unknown_status",
            Self::Manifest => "manifest",
            Self::Labels => "labels",
        }
    }
}

/// A payload that could not be decoded, with the reason and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct DecodeError {
    /// Bounded reason (metric label).
    pub reason: DecodeErrorReason,
    /// What exactly is wrong.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(reason: DecodeErrorReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decodes `data.release` of a release Secret (the inner base64 text, as kube-rs hands it
/// over after removing the API's own base64 layer).
pub fn decode_release(data: &[u8], limits: DecodeLimits) -> Result<ReleaseSummary, DecodeError> {
    let text = trim_ascii_whitespace(data);
    if text.is_empty() {
        return Err(DecodeError::new(
            DecodeErrorReason::Empty,
            "the release payload is empty",
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DecodeError::new(DecodeErrorReason::Base64, format!("invalid base64: {e}")))?;
    decode_release_bytes(&bytes, limits)
}

/// Decodes the payload after base64: gzip-compressed JSON, or legacy uncompressed JSON.
pub fn decode_release_bytes(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<ReleaseSummary, DecodeError> {
    let raw = if bytes.starts_with(&GZIP_MAGIC) {
        parse_json(flate2::read::GzDecoder::new(bytes), limits, true)?
    } else if trim_ascii_whitespace(bytes).first() == Some(&b'{') {
        parse_json(bytes, limits, false)?
    } else {
        return Err(DecodeError::new(
            DecodeErrorReason::Gzip,
            "neither gzip (no 1f 8b magic) nor JSON",
        ));
    };
    raw.into_summary()
}

fn trim_ascii_whitespace(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// A reader that stops with an error once more than `remaining` bytes were asked of it.
struct Capped<R> {
    inner: R,
    remaining: usize,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // One more byte would exceed the cap: probe for it.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded = true;
                    Err(io::Error::other("decompressed payload exceeds the cap"))
                }
            };
        }
        let want = buf.len().min(self.remaining);
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n;
        Ok(n)
    }
}

fn parse_json<R: Read>(
    reader: R,
    limits: DecodeLimits,
    gzip: bool,
) -> Result<RawRelease, DecodeError> {
    let mut capped = Capped {
        inner: reader,
        remaining: limits.max_decompressed_bytes,
        exceeded: false,
    };
    let result = serde_json::from_reader::<_, RawRelease>(io::BufReader::new(&mut capped));
    result.map_err(|e| {
        if capped.exceeded {
            return DecodeError::new(
                DecodeErrorReason::TooLarge,
                format!(
                    "the decompressed payload exceeds {} bytes",
                    limits.max_decompressed_bytes
                ),
            );
        }
        match (e.io_error_kind(), e.classify()) {
            (Some(io::ErrorKind::UnexpectedEof), _) => {
                DecodeError::new(DecodeErrorReason::Truncated, "the gzip stream ends early")
            }
            (Some(_), _) if gzip => {
                DecodeError::new(DecodeErrorReason::Gzip, format!("invalid gzip data: {e}"))
            }
            (_, serde_json::error::Category::Eof) => DecodeError::new(
                DecodeErrorReason::Truncated,
                format!("the JSON document ends early: {e}"),
            ),
            _ => DecodeError::new(
                DecodeErrorReason::Json,
                format!("invalid release JSON: {e}"),
            ),
        }
    })
}

// ---- the JSON shape; fields not named here (config, chart templates/values/files, notes)
// ---- are skipped by serde without being kept.

#[derive(Deserialize)]
struct RawRelease {
    name: Option<String>,
    namespace: Option<String>,
    version: Option<u32>,
    info: Option<RawInfo>,
    chart: Option<RawChart>,
    manifest: Option<String>,
    hooks: Option<Vec<RawHook>>,
}

#[derive(Deserialize)]
struct RawInfo {
    first_deployed: Option<String>,
    last_deployed: Option<String>,
    description: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct RawChart {
    metadata: Option<RawChartMetadata>,
}

#[derive(Deserialize)]
struct RawChartMetadata {
    name: Option<String>,
    version: Option<String>,
    #[serde(rename = "appVersion")]
    app_version: Option<String>,
}

#[derive(Deserialize)]
struct RawHook {
    name: Option<String>,
    kind: Option<String>,
    manifest: Option<String>,
    events: Option<Vec<String>>,
    last_run: Option<RawHookRun>,
}

#[derive(Deserialize)]
struct RawHookRun {
    phase: Option<String>,
}

fn missing(field: &str) -> DecodeError {
    DecodeError::new(
        DecodeErrorReason::MissingField,
        format!("the release JSON has no {field}"),
    )
}

/// Go's zero `time.Time` and unparsable times mean "not set".
fn timestamp(s: Option<String>) -> Option<Timestamp> {
    let t: Timestamp = s?.parse().ok()?;
    (t > Timestamp::UNIX_EPOCH).then_some(t)
}

impl RawRelease {
    fn into_summary(self) -> Result<ReleaseSummary, DecodeError> {
        let name = self
            .name
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("name"))?;
        let namespace = self
            .namespace
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("namespace"))?;
        let revision = self.version.ok_or_else(|| missing("version"))?;
        let info = self.info.ok_or_else(|| missing("info"))?;
        let status_text = info.status.ok_or_else(|| missing("info.status"))?;
        let status = status_text
            .parse::<ReleaseStatus>()
            .map_err(|e| DecodeError::new(DecodeErrorReason::UnknownStatus, e.to_string()))?;
        let meta = self
            .chart
            .and_then(|c| c.metadata)
            .ok_or_else(|| missing("chart.metadata"))?;
        let chart = ChartRef {
            name: meta.name.ok_or_else(|| missing("chart.metadata.name"))?,
            version: meta
                .version
                .ok_or_else(|| missing("chart.metadata.version"))?,
            app_version: meta.app_version.filter(|v| !v.is_empty()),
        };
        let manifest = manifest_objects(self.manifest.as_deref().unwrap_or(""));
        let mut manifest_problems = manifest.problems;
        let workloads = workloads_in(manifest.objects, &namespace);
        let hooks = self
            .hooks
            .unwrap_or_default()
            .into_iter()
            .map(|h| hook(h, &namespace, &mut manifest_problems))
            .collect();
        Ok(ReleaseSummary {
            name,
            namespace,
            revision,
            status,
            description: info.description.unwrap_or_default(),
            first_deployed: timestamp(info.first_deployed),
            last_deployed: timestamp(info.last_deployed),
            chart,
            hooks,
            workloads,
            manifest_problems,
        })
    }
}

fn hook(raw: RawHook, release_namespace: &str, problems: &mut Vec<String>) -> Hook {
    let manifest = manifest_objects(raw.manifest.as_deref().unwrap_or(""));
    let name = raw.name.unwrap_or_default();
    problems.extend(
        manifest
            .problems
            .into_iter()
            .map(|p| format!("hook {name:?}: {p}")),
    );
    let namespace = manifest
        .objects
        .into_iter()
        .find_map(|o| o.metadata.and_then(|m| m.namespace))
        .unwrap_or_else(|| release_namespace.to_string());
    let last_run = match raw.last_run.and_then(|r| r.phase).as_deref() {
        None | Some("") => None,
        Some("Running") => Some(HookPhase::Running),
        Some("Succeeded") => Some(HookPhase::Succeeded),
        Some("Failed") => Some(HookPhase::Failed),
        Some(_) => Some(HookPhase::Unknown),
    };
    Hook {
        name,
        kind: raw.kind.unwrap_or_default(),
        namespace,
        events: raw.events.unwrap_or_default(),
        last_run,
    }
}

#[derive(Deserialize)]
struct ManifestObject {
    kind: Option<String>,
    metadata: Option<ManifestMetadata>,
}

#[derive(Deserialize)]
struct ManifestMetadata {
    name: Option<String>,
    namespace: Option<String>,
}

struct Manifest {
    objects: Vec<ManifestObject>,
    /// Documents that could not be read, in words.
    problems: Vec<String>,
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
fn manifest_objects(manifest: &str) -> Manifest {
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

fn workloads_in(objects: Vec<ManifestObject>, release_namespace: &str) -> Vec<ObjectRef> {
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

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
