//! Decoding of a Helm release payload (pure): the Secret's `data.release` bytes, which are
//! base64 text of gzip-compressed JSON (or, in legacy records, uncompressed JSON), become a
//! compact [`ReleaseSummary`].
//!
//! Guarantees: the user values (`config`; only a keyed hash of them is computed as they
//! stream past, see [`super::fingerprint`]), the chart's templates, files and default
//! values, and the notes are skipped by the JSON parser and never held in memory; the decompressed
//! size is capped, so a zip bomb cannot exhaust memory; every malformed input gives a
//! [`DecodeError`] with a [`DecodeErrorReason`] and no panic.

use std::io::{self, Read};

use base64::Engine as _;
use jiff::Timestamp;
use serde::Deserialize;

use super::ReleaseStatus;
use super::error::{DecodeError, DecodeErrorReason};
use super::fingerprint::{ValuesDigest, content_digest};
use super::manifest::{manifest_objects, workloads_in};
use super::summary::{ChartRef, Fingerprint, Hook, HookPhase, ReleaseSummary};

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

/// Decodes `data.release` of a release Secret (the inner base64 text, as kube-rs hands it
/// over after removing the API's own base64 layer).
pub fn decode_release(data: &[u8], limits: DecodeLimits) -> Result<ReleaseSummary, DecodeError> {
    let text = data.trim_ascii();
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
    } else if bytes.trim_ascii().first() == Some(&b'{') {
        parse_json(bytes, limits, false)?
    } else {
        return Err(DecodeError::new(
            DecodeErrorReason::Gzip,
            "neither gzip (no 1f 8b magic) nor JSON",
        ));
    };
    raw.into_summary()
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
    /// The user values, hashed as the parser streams past them; never held.
    config: Option<ValuesDigest>,
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
        let text = self.manifest.unwrap_or_default();
        let raw_hooks = self.hooks.unwrap_or_default();
        let content = content_digest(
            [
                &chart.name,
                &chart.version,
                chart.app_version.as_deref().unwrap_or(""),
            ],
            &text,
            raw_hooks.iter().map(|h| {
                (
                    h.name.as_deref().unwrap_or(""),
                    h.kind.as_deref().unwrap_or(""),
                    h.events.as_deref().unwrap_or(&[]),
                    h.manifest.as_deref().unwrap_or(""),
                )
            }),
        );
        let manifest = manifest_objects(&text);
        let mut manifest_problems = manifest.problems;
        let workloads = workloads_in(manifest.objects, &namespace);
        let hooks = raw_hooks
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
            recorded: None,
            chart,
            hooks,
            workloads,
            manifest_problems,
            fingerprint: Fingerprint {
                content,
                values: self.config.unwrap_or_default(),
            },
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

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
