//! `upgrade-guard config default | validate FILE`, and the options every command that
//! judges releases shares (`--config`, `--prometheus-url`).

use std::path::PathBuf;

use crate::config::{Config, DEFAULT_PROFILE};

/// `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the built-in profile (Genesys Info Mart suite), a starting point for a file.
    Default,
    /// Check a configuration file; exits 1 with the field, line and reason if it is wrong.
    Validate {
        /// The file.
        file: PathBuf,
    },
}

/// Where the configuration comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (default: the built-in Genesys Info Mart profile).
    #[arg(long, env = "UPGRADE_GUARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Prometheus URL, overriding `prometheus.url` of the configuration.
    #[arg(long, env = "UPGRADE_GUARD_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,
}

impl ConfigArgs {
    /// Loads and validates the configuration, applying the overrides.
    pub fn load(&self) -> Result<Config, crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default_profile()?,
        };
        if let Some(url) = &self.prometheus_url {
            config.prometheus.url = url.clone();
        }
        Ok(config)
    }
}

/// Runs a `config` subcommand; returns the exit code.
pub fn run(command: &ConfigCommand) -> i32 {
    match command {
        ConfigCommand::Default => {
            print!("{DEFAULT_PROFILE}");
            0
        }
        ConfigCommand::Validate { file } => match Config::load(file) {
            Ok(config) => {
                for w in &config.warnings {
                    eprintln!("warning: {}: {w}", file.display());
                }
                println!("{}: valid", file.display());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
    }
}
