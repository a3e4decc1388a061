//! What is wrong with a configuration, as data: the field's path (`releases[0].lag.window`),
//! the reason in words and, where the parser knows it, the line. Rendered as before:
//! `<file>: <path>: <reason>`.

use std::fmt;

/// One field that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FieldError {
    /// Where, as a path into the file (`notifications.email.to[1]`).
    pub path: String,
    /// Why, in words.
    pub reason: String,
}

impl FieldError {
    /// `path` is wrong because of `reason`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or "built-in profile").
    pub source_name: String,
    /// The field at fault, when one is (a file that cannot be read has none).
    pub field: Option<String>,
    /// Why, in words (with the parser's line and column when it gave them).
    pub reason: String,
    /// The line in the file, when the parser knows it.
    pub line: Option<usize>,
}

impl ConfigError {
    /// An error about the whole source (unreadable, not YAML).
    pub fn whole(source_name: &str, reason: impl Into<String>) -> Self {
        Self {
            source_name: source_name.to_string(),
            field: None,
            reason: reason.into(),
            line: None,
        }
    }

    /// An error about one field of `source_name`.
    pub fn field(source_name: &str, e: FieldError) -> Self {
        Self {
            source_name: source_name.to_string(),
            field: Some(e.path),
            reason: e.reason,
            line: None,
        }
    }

    /// What is wrong, without the source's name: `<path>: <reason>`.
    pub fn message(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}: {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source_name, self.message())
    }
}
