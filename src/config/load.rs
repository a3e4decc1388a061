//! The one file the configuration reads: the file named on the command line.

use super::{Config, ConfigError};

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole(&source_name, format!("cannot read the file: {e}")))?;
        Self::parse(&text, &source_name)
    }
}
