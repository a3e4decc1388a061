//! How a command prints its answer: aligned columns for a person, JSON for a script.

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
}

impl Output {
    /// Prints `value` on stdout: through `table` for a person, as pretty JSON for a script.
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
        }
        Ok(())
    }
}
