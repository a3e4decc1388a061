//! Tests of the payload decoder on payloads written by the real helm (see
//! `tests/fixtures/README.md`) and on hand-broken variants of them.

use std::io::{Read, Write};

use base64::Engine as _;
use proptest::prelude::*;

use super::*;
use crate::release::fingerprint::ValuesDigest;
use crate::release::summary::{ObjectRef, Operation, WorkloadKind};

const FX_V1: &[u8] = include_bytes!("../../tests/fixtures/release-fx-v1.b64");
const FX_V2_HOOK_FAILED: &[u8] =
    include_bytes!("../../tests/fixtures/release-fx-v2-hook-failed.b64");

fn b64(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

fn unb64(text: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim_ascii())
        .unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The JSON inside the fixture, as a value to edit.
fn fixture_json() -> serde_json::Value {
    serde_json::from_slice(&gunzip(&unb64(FX_V1))).unwrap()
}

fn encode_json(value: &serde_json::Value) -> Vec<u8> {
    b64(&gzip(&serde_json::to_vec(value).unwrap()))
}

fn reason_of(data: &[u8]) -> DecodeErrorReason {
    match decode_release(data, DecodeLimits::default()) {
        Ok(summary) => panic!("expected an error, decoded {summary:?}"),
        Err(e) => e.reason,
    }
}

#[test]
fn decodes_a_release_written_by_helm() {
    let s = decode_release(FX_V1, DecodeLimits::default()).unwrap();
    assert_eq!(s.name, "fx");
    assert_eq!(s.namespace, "fixtures");
    assert_eq!(s.revision, 1);
    assert_eq!(s.status, ReleaseStatus::Deployed);
    assert_eq!(s.description, "Install complete");
    assert_eq!(
        s.chart,
        ChartRef {
            name: "demo-app".into(),
            version: "0.1.0".into(),
            app_version: Some("1.0.0".into()),
        }
    );
    assert!(s.first_deployed.is_some());
    assert_eq!(s.first_deployed, s.last_deployed);
    assert_eq!(
        s.workloads,
        vec![ObjectRef {
            kind: WorkloadKind::Deployment,
            name: "fx".into(),
            namespace: "fixtures".into(),
        }]
    );
    assert_eq!(
        s.hooks,
        vec![Hook {
            name: "fx-migrate".into(),
            kind: "Job".into(),
            namespace: "fixtures".into(),
            events: vec!["post-install".into(), "pre-upgrade".into()],
            last_run: Some(HookPhase::Succeeded),
        }]
    );
}

#[test]
fn user_values_are_not_kept() {
    // The fixture was installed with --set database.password=hunter2-do-not-keep.
    assert!(String::from_utf8_lossy(&gunzip(&unb64(FX_V1))).contains("hunter2-do-not-keep"));
    let s = decode_release(FX_V1, DecodeLimits::default()).unwrap();
    let shown = format!("{s:?} {}", serde_json::to_string(&s).unwrap());
    assert!(!shown.contains("hunter2"), "user values leaked: {shown}");
}

#[test]
fn decodes_a_failed_upgrade_with_a_failed_hook() {
    let s = decode_release(FX_V2_HOOK_FAILED, DecodeLimits::default()).unwrap();
    assert_eq!(s.revision, 2);
    assert_eq!(s.status, ReleaseStatus::Failed);
    assert!(
        s.description.starts_with("Upgrade \"fx\" failed"),
        "{}",
        s.description
    );
    assert_eq!(s.hooks.len(), 1);
    assert_eq!(s.hooks[0].last_run, Some(HookPhase::Failed));
}

#[test]
fn accepts_legacy_uncompressed_json_and_surrounding_whitespace() {
    let expected = decode_release(FX_V1, DecodeLimits::default()).unwrap();
    let legacy = b64(&gunzip(&unb64(FX_V1)));
    assert_eq!(
        decode_release(&legacy, DecodeLimits::default()),
        Ok(expected.clone())
    );
    let mut padded = b"\n ".to_vec();
    padded.extend_from_slice(FX_V1);
    padded.extend_from_slice(b"\n");
    assert_eq!(
        decode_release(&padded, DecodeLimits::default()),
        Ok(expected)
    );
}

#[test]
fn workloads_from_many_documents_get_the_release_namespace_by_default() {
    let mut v = fixture_json();
    v["manifest"] = serde_json::json!(
        "---\n# Source: x/templates/a.yaml\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n\
         ---\n# only a comment\n\
         ---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: kube-system\n\
         ---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n\
         ---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n"
    );
    let s = decode_release(&encode_json(&v), DecodeLimits::default()).unwrap();
    let found: Vec<(WorkloadKind, &str, &str)> = s
        .workloads
        .iter()
        .map(|w| (w.kind, w.name.as_str(), w.namespace.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (WorkloadKind::StatefulSet, "db", "fixtures"),
            (WorkloadKind::DaemonSet, "agent", "kube-system"),
            (WorkloadKind::Job, "migrate", "fixtures"),
        ]
    );
}

#[test]
fn one_broken_manifest_document_leaves_the_others_judged() {
    let mut v = fixture_json();
    v["manifest"] = serde_json::json!(
        "---\n# Source: x/templates/db.yaml\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n\
         ---\n# Source: x/templates/secret.yaml\nkind: Secret\nmetadata: {name: s\nstringData:\n  password: hunter2-secret\n\
         ---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n"
    );
    v["hooks"][0]["manifest"] = serde_json::json!("kind: [unclosed\n");
    let s = decode_release(&encode_json(&v), DecodeLimits::default()).unwrap();
    let names: Vec<&str> = s.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["api", "db"]);
    assert_eq!(s.manifest_problems.len(), 2, "{:?}", s.manifest_problems);
    assert!(
        s.manifest_problems[0]
            .starts_with("manifest document 2 (x/templates/secret.yaml) is not valid YAML at line"),
        "{:?}",
        s.manifest_problems
    );
    assert!(
        s.manifest_problems[1].starts_with("hook "),
        "{:?}",
        s.manifest_problems
    );
    // The hook is kept, in the release namespace; no content of a document is quoted.
    assert_eq!(s.hooks.len(), v["hooks"].as_array().unwrap().len());
    assert!(!format!("{:?}", s.manifest_problems).contains("hunter2"));
}

#[test]
fn go_zero_times_and_empty_app_version_mean_absent() {
    let mut v = fixture_json();
    v["info"]["first_deployed"] = serde_json::json!("0001-01-01T00:00:00Z");
    v["info"]["last_deployed"] = serde_json::json!("2026-11-25T17:46:29.895899686+01:00");
    v["chart"]["metadata"]["appVersion"] = serde_json::json!("");
    let s = decode_release(&encode_json(&v), DecodeLimits::default()).unwrap();
    assert_eq!(s.first_deployed, None);
    assert_eq!(
        s.last_deployed.map(|t| t.as_second()),
        Some(
            "2026-11-25T16:46:29Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        )
    );
    assert_eq!(s.chart.app_version, None);
}

#[test]
fn broken_payloads_give_typed_reasons() {
    let gz = unb64(FX_V1);
    let json = gunzip(&gz);
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 0xff; // inside the CRC32 trailer
    let mut bad_deflate = gz.clone();
    bad_deflate[12] = 0xff; // first bytes of the deflate stream
    bad_deflate[13] = 0xff;
    bad_deflate[14] = 0xff;
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = fixture_json();
        edit(&mut v);
        encode_json(&v)
    };

    let cases: Vec<(&str, Vec<u8>, DecodeErrorReason)> = vec![
        ("empty", b"".to_vec(), DecodeErrorReason::Empty),
        ("whitespace only", b" \n".to_vec(), DecodeErrorReason::Empty),
        (
            "not base64",
            b"H4sI!!!not base64".to_vec(),
            DecodeErrorReason::Base64,
        ),
        (
            "base64 of garbage",
            b64(b"\x00\x01garbage"),
            DecodeErrorReason::Gzip,
        ),
        (
            "gzip cut in half",
            b64(&gz[..gz.len() / 2]),
            DecodeErrorReason::Truncated,
        ),
        (
            "gzip header only",
            b64(&gz[..10]),
            DecodeErrorReason::Truncated,
        ),
        ("gzip bad checksum", b64(&bad_crc), DecodeErrorReason::Gzip),
        (
            "gzip bad deflate data",
            b64(&bad_deflate),
            DecodeErrorReason::Gzip,
        ),
        (
            "gzip of non-JSON",
            b64(&gzip(b"hello")),
            DecodeErrorReason::Json,
        ),
        (
            "legacy JSON cut",
            b64(&json[..json.len() / 2]),
            DecodeErrorReason::Truncated,
        ),
        (
            "JSON of the wrong shape",
            b64(&gzip(br#"{"name": 5}"#)),
            DecodeErrorReason::Json,
        ),
        (
            "no name",
            with(&|v| {
                v.as_object_mut().unwrap().remove("name");
            }),
            DecodeErrorReason::MissingField,
        ),
        (
            "no info.status",
            with(&|v| {
                v["info"].as_object_mut().unwrap().remove("status");
            }),
            DecodeErrorReason::MissingField,
        ),
        (
            "no chart",
            with(&|v| {
                v.as_object_mut().unwrap().remove("chart");
            }),
            DecodeErrorReason::MissingField,
        ),
        (
            "unknown status",
            with(&|v| v["info"]["status"] = serde_json::json!("exploded")),
            DecodeErrorReason::UnknownStatus,
        ),
    ];
    for (name, data, expected) in cases {
        assert_eq!(reason_of(&data), expected, "case {name:?}");
    }
}

#[test]
fn error_messages_say_what_is_wrong() {
    let mut v = fixture_json();
    v["info"]["status"] = serde_json::json!("exploded");
    let err = decode_release(&encode_json(&v), DecodeLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), "unknown release status \"exploded\"");
    let err = decode_release(b"", DecodeLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), "the release payload is empty");
}

#[test]
fn a_payload_over_the_cap_is_refused() {
    let json_len = gunzip(&unb64(FX_V1)).len();
    let tight = DecodeLimits {
        max_decompressed_bytes: json_len - 1,
    };
    assert_eq!(
        decode_release(FX_V1, tight).map_err(|e| e.reason),
        Err(DecodeErrorReason::TooLarge)
    );
    let exact = DecodeLimits {
        max_decompressed_bytes: json_len,
    };
    assert!(decode_release(FX_V1, exact).is_ok());
}

#[test]
fn a_zip_bomb_stops_at_the_cap() {
    // 64 MiB of spaces before the JSON compress to ~64 KiB; the default cap is 16 MiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&chunk).unwrap();
    }
    enc.write_all(&gunzip(&unb64(FX_V1))).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    assert_eq!(reason_of(&b64(&bomb)), DecodeErrorReason::TooLarge);
}

fn expected_reasons(r: DecodeErrorReason) -> bool {
    !matches!(r, DecodeErrorReason::Labels)
}

#[test]
fn the_operation_of_a_revision_comes_from_helm_s_description() {
    let mut s = decode_release(FX_V1, DecodeLimits::default()).unwrap();
    let cases = [
        (
            1,
            ReleaseStatus::Deployed,
            "Install complete",
            Operation::Install,
        ),
        (
            5,
            ReleaseStatus::Deployed,
            "Install complete",
            Operation::Install,
        ),
        (
            2,
            ReleaseStatus::Failed,
            "Release \"fx\" failed: failed pre-install",
            Operation::Install,
        ),
        (
            2,
            ReleaseStatus::Deployed,
            "Upgrade complete",
            Operation::Upgrade,
        ),
        (
            3,
            ReleaseStatus::Failed,
            "Upgrade \"fx\" failed: pre-upgrade hooks failed",
            Operation::Upgrade,
        ),
        (
            4,
            ReleaseStatus::Deployed,
            "Rollback to 2",
            Operation::Rollback,
        ),
        (
            4,
            ReleaseStatus::Failed,
            "Rollback \"fx\" failed: x",
            Operation::Rollback,
        ),
        (4, ReleaseStatus::PendingRollback, "", Operation::Rollback),
        (4, ReleaseStatus::PendingUpgrade, "", Operation::Upgrade),
        (
            6,
            ReleaseStatus::Failed,
            "Release \"fx\" failed: timed out",
            Operation::Upgrade,
        ),
    ];
    for (revision, status, description, operation) in cases {
        s.revision = revision;
        s.status = status;
        s.description = description.into();
        assert_eq!(s.operation(), operation, "{description}");
    }
    s.description = "Rollback to 2".into();
    assert_eq!(s.rollback_to(), Some(2));
    let hook = Hook {
        name: "m".into(),
        kind: "Job".into(),
        namespace: "fx".into(),
        events: vec!["post-install".into(), "pre-upgrade".into()],
        last_run: Some(HookPhase::Failed),
    };
    assert!(hook.runs_before_apply(Operation::Upgrade));
    assert!(!hook.runs_before_apply(Operation::Install));
    assert!(!hook.runs_before_apply(Operation::Rollback));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Err(e) = decode_release(&data, DecodeLimits::default()) {
            prop_assert!(expected_reasons(e.reason));
            prop_assert!(!e.detail.is_empty());
        }
        let _ = decode_release(&b64(&data), DecodeLimits::default());
    }

    #[test]
    fn truncated_helm_payloads_are_errors(cut in 0usize..2000) {
        let gz = unb64(FX_V1);
        let cut = cut.min(gz.len() - 1);
        let result = decode_release(&b64(&gz[..cut]), DecodeLimits::default());
        prop_assert!(result.is_err(), "a truncated payload decoded");
    }

    #[test]
    fn corrupted_helm_payloads_never_panic(pos in 0usize..2200, byte in any::<u8>()) {
        let mut gz = unb64(FX_V1);
        let pos = pos % gz.len();
        gz[pos] = byte;
        match decode_release(&b64(&gz), DecodeLimits::default()) {
            Ok(s) => prop_assert_eq!(s.name, "fx"),
            Err(e) => prop_assert!(expected_reasons(e.reason)),
        }
    }
}

/// Issue 20.4 and 20.6: the values are hashed (keyed, never kept) and the applied content
/// digested; a status change (`deployed` → `superseded`) changes neither, the values or
/// the manifest do.
#[test]
fn the_fingerprint_follows_values_and_content_not_status() {
    let decode = |v: &serde_json::Value| {
        decode_release(&encode_json(v), DecodeLimits::default())
            .unwrap()
            .fingerprint
    };
    let mut v = fixture_json();
    v["config"] = serde_json::json!({"image": {"tag": "1.2"}, "password": "hunter2"});
    let base = decode(&v);
    assert_eq!(base.content.len(), 64);
    assert!(!format!("{base:?}").contains("hunter2"));
    let mut superseded = v.clone();
    superseded["info"]["status"] = serde_json::json!("superseded");
    assert_eq!(decode(&superseded), base);
    let mut other_values = v.clone();
    other_values["config"]["image"]["tag"] = serde_json::json!("1.3");
    let f = decode(&other_values);
    assert_ne!(f.values, base.values);
    assert_eq!(f.content, base.content);
    let mut other_manifest = v.clone();
    other_manifest["manifest"] = serde_json::json!("kind: ConfigMap\nmetadata: {name: forged}\n");
    assert_ne!(decode(&other_manifest).content, base.content);
    let mut no_values = v;
    no_values.as_object_mut().unwrap().remove("config");
    assert_eq!(decode(&no_values).values, ValuesDigest::default());
}
