//! Unlocking a revision left pending by a helm that is gone (pure): its payload rewritten
//! with status `failed` and a description saying why, the way Flux's helm-controller unlocks
//! a release it left pending, so that Helm accepts the next operation. Everything else in
//! the payload — the user's values included — is carried over byte for byte, never parsed
//! into numbers and never kept.

use std::io::{Read, Write};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ReleaseStatus;
use super::decode::DecodeLimits;

/// Why a payload cannot be unlocked, in words.
pub type UnlockError = String;

#[derive(Deserialize)]
struct Identity {
    name: String,
    version: u32,
}

/// The payload of `name` revision `revision` (the inner base64 text of `data.release`)
/// rewritten as `failed` with `description`. Refused, in words, when the payload is not that
/// revision (a record whose name and content disagree), is not pending, or cannot be read.
pub fn unlocked_payload(
    data: &[u8],
    (name, revision): (&str, u32),
    description: &str,
    limits: DecodeLimits,
) -> Result<String, UnlockError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let compressed = b64
        .decode(data.trim_ascii())
        .map_err(|e| format!("the payload is not base64: {e}"))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .take(limits.max_decompressed_bytes as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("the payload is not gzip: {e}"))?;
    if json.len() > limits.max_decompressed_bytes {
        return Err(format!(
            "the payload exceeds {} bytes",
            limits.max_decompressed_bytes
        ));
    }
    // Top-level fields stay raw text; only `info` is parsed (timestamps, status, words).
    let raw: std::collections::BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(&json).map_err(|e| format!("the payload is not a release: {e}"))?;
    let id: Identity = serde_json::from_slice(&json)
        .map_err(|e| format!("the payload names no release and revision: {e}"))?;
    if id.name != name || id.version != revision {
        return Err(format!(
            "the record of {name} revision {revision} holds {} revision {}: it is not touched",
            id.name, id.version
        ));
    }
    let info = raw
        .get("info")
        .ok_or("the payload has no info")?
        .get()
        .to_string();
    let mut info: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&info).map_err(|e| format!("the payload's info is invalid: {e}"))?;
    let status = info
        .get("status")
        .and_then(|s| s.as_str())
        .and_then(|s| s.parse::<ReleaseStatus>().ok())
        .ok_or("the payload has no known status")?;
    if !status.is_pending() {
        return Err(format!(
            "revision {revision} is {status}, not pending: nothing to unlock"
        ));
    }
    info.insert("status".into(), "failed".into());
    info.insert("description".into(), description.into());
    let mut out = Vec::with_capacity(json.len());
    out.push(b'{');
    for (i, (k, v)) in raw.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).map_err(|e| e.to_string())?;
        out.push(b':');
        if k == "info" {
            serde_json::to_writer(&mut out, &info).map_err(|e| e.to_string())?;
        } else {
            out.extend_from_slice(v.get().as_bytes());
        }
    }
    out.push(b'}');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&out).map_err(|e| e.to_string())?;
    let gz = gz.finish().map_err(|e| e.to_string())?;
    Ok(b64.encode(gz))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::decode::decode_release;

    fn payload(json: &str) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(json.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    fn inflate(b64: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    const PENDING: &str = r#"{"name":"app","namespace":"ns","version":3,
        "info":{"first_deployed":"2026-01-01T00:00:00Z","last_deployed":"2026-01-01T00:05:00Z","status":"pending-rollback","description":"Preparing rollback"},
        "chart":{"metadata":{"name":"app","version":"1.0.0"}},
        "config":{"big":123456789012345678901234567890,"float":1.10,"s":"x"},
        "manifest":""}"#;

    #[test]
    fn a_pending_revision_becomes_failed_and_nothing_else_changes() {
        let out = unlocked_payload(
            payload(PENDING).as_bytes(),
            ("app", 3),
            "Rollback to 1 interrupted",
            DecodeLimits::default(),
        )
        .unwrap();
        let summary = decode_release(out.as_bytes(), DecodeLimits::default()).unwrap();
        assert_eq!(summary.status, ReleaseStatus::Failed);
        assert_eq!(summary.description, "Rollback to 1 interrupted");
        assert_eq!(summary.revision, 3);
        // The user's values are carried over as written: no number rounded or reformatted.
        let json = inflate(&out);
        assert!(
            json.contains(
                r#""config":{"big":123456789012345678901234567890,"float":1.10,"s":"x"}"#
            ),
            "{json}"
        );
        assert!(
            json.contains(r#""last_deployed":"2026-01-01T00:05:00Z""#),
            "{json}"
        );
    }

    #[test]
    fn a_payload_that_is_not_the_pending_revision_is_refused() {
        let unlock = |data: &str, who: (&str, u32)| {
            unlocked_payload(data.as_bytes(), who, "x", DecodeLimits::default()).unwrap_err()
        };
        assert!(unlock(&payload(PENDING), ("app", 4)).contains("holds app revision 3"));
        assert!(unlock(&payload(PENDING), ("other", 3)).contains("holds app revision 3"));
        let deployed = PENDING.replace("pending-rollback", "deployed");
        assert!(unlock(&payload(&deployed), ("app", 3)).contains("not pending"));
        assert!(unlock("not base64!", ("app", 3)).contains("not base64"));
        assert!(unlock(&payload("[1]"), ("app", 3)).contains("not a release"));
    }
}
