//! What identifies a revision's content without keeping it (pure): a SHA-256 of what
//! `helm rollback` would apply (chart identity, manifest, hooks), written into the bake
//! records so a Helm record rewritten after upgrade-guard judged it is never trusted; and a
//! keyed hash of the user values, computed while the JSON parser streams past them (the
//! values are never held), comparable only inside this process and never written anywhere.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

/// SHA-256 (lower-case hex) of what a revision applies: chart name, version and app
/// version, the manifest, and each hook's name, kind, events and manifest. The values are
/// not in it (the manifest is what they rendered).
pub fn content_digest<'a>(
    chart: [&str; 3],
    manifest: &str,
    hooks: impl IntoIterator<Item = (&'a str, &'a str, &'a [String], &'a str)>,
) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    for part in chart {
        field(part);
    }
    field(manifest);
    for (name, kind, events, manifest) in hooks {
        field(name);
        field(kind);
        field(&events.join(","));
        field(manifest);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of the values hash: random per process, so a hash says nothing outside it.
static VALUES_KEY: LazyLock<std::collections::hash_map::RandomState> =
    LazyLock::new(std::collections::hash_map::RandomState::new);

/// A keyed hash of a revision's user values (`config`). Two revisions decoded by this
/// process have the same digest when their values are the same (Helm writes map keys
/// sorted); it is never serialized, logged or compared across processes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ValuesDigest(u64);

impl std::fmt::Debug for ValuesDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValuesDigest(..)")
    }
}

impl Default for ValuesDigest {
    /// The digest of no values (Helm omits an empty `config`).
    fn default() -> Self {
        let mut h = VALUES_KEY.build_hasher();
        h.write_u8(Tag::Map as u8);
        h.write_u8(Tag::End as u8);
        Self(h.finish())
    }
}

impl<'de> serde::Deserialize<'de> for ValuesDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut h = VALUES_KEY.build_hasher();
        Hashing(&mut h).deserialize(d)?;
        Ok(Self(h.finish()))
    }
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Tag {
    Null = 1,
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Seq,
    Map,
    End,
}

/// Feeds every token of a JSON value to the hasher as the parser passes it.
struct Hashing<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> Hashing<'_, H> {
    fn tag(&mut self, t: Tag) {
        self.0.write_u8(t as u8);
    }
}

impl<'de, H: Hasher> DeserializeSeed<'de> for Hashing<'_, H> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, H: Hasher> Visitor<'de> for Hashing<'_, H> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.tag(Tag::Null);
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: serde::de::Error>(mut self, v: bool) -> Result<(), E> {
        self.tag(Tag::Bool);
        self.0.write_u8(u8::from(v));
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(mut self, v: i64) -> Result<(), E> {
        self.tag(Tag::Int);
        self.0.write_i64(v);
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(mut self, v: u64) -> Result<(), E> {
        self.tag(Tag::Uint);
        self.0.write_u64(v);
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(mut self, v: f64) -> Result<(), E> {
        self.tag(Tag::Float);
        self.0.write_u64(v.to_bits());
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<(), E> {
        self.tag(Tag::Str);
        self.0.write_usize(v.len());
        self.0.write(v.as_bytes());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.tag(Tag::Seq);
        while seq.next_element_seed(Hashing(&mut *self.0))?.is_some() {}
        self.tag(Tag::End);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.tag(Tag::Map);
        while map.next_key_seed(Hashing(&mut *self.0))?.is_some() {
            map.next_value_seed(Hashing(&mut *self.0))?;
        }
        self.tag(Tag::End);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(json: &str) -> ValuesDigest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_same_values_have_the_same_digest_and_any_change_shows() {
        let a = r#"{"image":{"tag":"1.2"},"replicas":3,"flags":[true,null,1.5],"s":"x"}"#;
        assert_eq!(values(a), values(a));
        assert_eq!(values("{}"), ValuesDigest::default());
        for other in [
            r#"{"image":{"tag":"1.3"},"replicas":3,"flags":[true,null,1.5],"s":"x"}"#,
            r#"{"image":{"tag":"1.2"},"replicas":"3","flags":[true,null,1.5],"s":"x"}"#,
            r#"{"image":{"tag":"1.2"},"replicas":3,"flags":[true,null],"s":"x"}"#,
            r#"{"image":{"tag":"1.2"},"replicas":3,"flags":[[true],null,1.5],"s":"x"}"#,
            r#"{"image":{"tag":"1.2"},"replicas":3,"flags":[true,null,1.5],"s":"xy"}"#,
        ] {
            assert_ne!(values(a), values(other), "{other}");
        }
        assert_eq!(format!("{:?}", values(a)), "ValuesDigest(..)");
    }

    #[test]
    fn the_content_digest_covers_the_chart_the_manifest_and_the_hooks() {
        let events = vec!["pre-upgrade".to_string()];
        let base = content_digest(
            ["gim", "1.0", "9"],
            "kind: Deployment",
            [("m", "Job", events.as_slice(), "kind: Job")],
        );
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            content_digest(
                ["gim", "1.0", "9"],
                "kind: Deployment",
                [("m", "Job", events.as_slice(), "kind: Job")]
            )
        );
        assert_ne!(
            base,
            content_digest(["gim", "1.0", "9"], "kind: Deployment", [])
        );
        assert_ne!(
            base,
            content_digest(
                ["gim", "1.1", "9"],
                "kind: Deployment",
                [("m", "Job", events.as_slice(), "kind: Job")]
            )
        );
        assert_ne!(
            base,
            content_digest(
                ["gim", "1.0", "9"],
                "kind: Deployment",
                [("m", "Job", events.as_slice(), "kind: Job\nspec: {}")]
            )
        );
        // Fields are length-prefixed: moving a boundary changes the digest.
        assert_ne!(
            content_digest(["ab", "c", ""], "", []),
            content_digest(["a", "bc", ""], "", [])
        );
    }
}
