//! How a command prints its answer: aligned columns for a person, JSON for a script.

use clap::ValueEnum;

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns / readable lines.
    Table,
    /// JSON.
    Json,
}
