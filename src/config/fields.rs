//! Field values checked on their own while the file is parsed (pure), so their errors carry
//! the line: durations, regular expressions and PromQL queries with their placeholders.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::units::parse_duration;

/// A duration written like `90s`, `15m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A regular expression, compiled when the file is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text).map(Pattern).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a valid regular expression: {e}"))
        })
    }
}

/// A PromQL query: non-empty; `{{namespace}}` and `{{release}}` are substituted per release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query(pub String);

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().is_empty() {
            return Err(serde::de::Error::custom("the query is empty"));
        }
        for placeholder in text.match_indices("{{").map(|(i, _)| &text[i..]) {
            let known = ["{{namespace}}", "{{release}}"]
                .iter()
                .any(|p| placeholder.starts_with(p));
            if !known {
                let shown: String = placeholder.chars().take(20).collect();
                return Err(serde::de::Error::custom(format!(
                    "unknown placeholder {shown:?}: only {{{{namespace}}}} and {{{{release}}}} exist"
                )));
            }
        }
        Ok(Query(text))
    }
}
