//! How a command prints its answer: aligned columns for a person, JSON or YAML for a
//! script (the same fields in both).

use clap::ValueEnum;
use serde::Serialize;

use super::error::CliError;

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns / readable lines.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl Output {
    /// Prints `value` on stdout: through `table` for a person, as pretty JSON or as YAML for
    /// a script.
    pub fn print<T: Serialize + ?Sized>(
        self,
        value: &T,
        table: impl FnOnce(&T) -> String,
    ) -> Result<(), CliError> {
        match self {
            Self::Table => print!("{}", table(value)),
            Self::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?
            ),
            Self::Yaml => print!("{}", yaml(value)?),
        }
        Ok(())
    }
}

/// `value` as one YAML document.
pub fn yaml<T: Serialize + ?Sized>(value: &T) -> Result<String, CliError> {
    Ok(serde_yaml_ng::to_string(value).map_err(anyhow::Error::from)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_holds_the_same_fields_as_json() {
        let value =
            serde_json::json!({"release": "gim/gim", "failing": ["lag fail"], "revision": 3});
        let text = super::yaml(&value).unwrap();
        let back: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}
