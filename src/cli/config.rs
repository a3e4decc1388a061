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
    /// With --live, also against the cluster: every PromQL query of every release it covers
    /// runs once on its Prometheus (it must parse and return series now, sampled as often as
    /// prometheus.scrape_interval says), every SQL query once; exits 1 with a sentence per
    /// problem (release, check, fix).
    Validate {
        /// The file.
        file: PathBuf,
        /// Also try every query against the live cluster, Prometheus and databases.
        #[arg(long)]
        live: bool,
        /// With --live: the releases of these namespaces (default: the configuration's
        /// `watch.namespaces`, else every namespace).
        #[arg(short, long = "namespace")]
        namespaces: Vec<String>,
        /// With --live: output format.
        #[arg(short, long, value_enum, default_value_t = super::output::Output::Table)]
        output: super::output::Output,
    },
}

impl ConfigCommand {
    /// Whether the command needs the cluster.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Validate { live: true, .. })
    }
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
        ConfigCommand::Validate { file, .. } => match Config::load(file) {
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

/// `config validate FILE --live`: the file, then every query of every release it covers
/// against the live cluster. Exit 0 when nothing is wrong, 1 with the problems.
pub async fn run_live(
    client: kube::Client,
    command: &ConfigCommand,
) -> Result<i32, super::CliError> {
    let ConfigCommand::Validate {
        file,
        namespaces,
        output,
        ..
    } = command
    else {
        return Ok(run(command));
    };
    let config = Config::load(file)?;
    for w in &config.warnings {
        eprintln!("warning: {}: {w}", file.display());
    }
    let namespaces = if namespaces.is_empty() {
        config.watch.namespaces.clone()
    } else {
        namespaces.clone()
    };
    let releases = super::spot::releases(&client, &namespaces, &config.watch.storage).await?;
    let mut registry = prometheus_client::registry::Registry::default();
    let prometheus = crate::gather::prometheus::Prometheus::new(
        &config.prometheus,
        crate::gather::metrics::PrometheusMetrics::register(&mut registry),
    )?;
    let postgres =
        crate::gather::postgres::Postgres::new(config.databases.clone(), Some(client.clone()));
    let findings =
        crate::probe::run(&config, &releases, &prometheus, &postgres, Some(&client)).await;
    let problems = findings.iter().filter(|f| !f.ok()).count();
    output.print(&findings, |f| live_table(f, releases.len()))?;
    Ok(i32::from(problems > 0))
}

/// The findings for a person: one line per problem, then a count.
fn live_table(findings: &[crate::probe::plan::Finding], releases: usize) -> String {
    let mut out = String::new();
    for f in findings.iter().filter(|f| !f.ok()) {
        out.push_str(&format!(
            "{} {}: `{}` {}\n",
            f.release,
            f.check,
            f.tried,
            f.problem.as_deref().unwrap_or_default()
        ));
    }
    let problems = findings.iter().filter(|f| !f.ok()).count();
    out.push_str(&format!(
        "{} check(s) of {releases} release(s) tried: {}\n",
        findings.len(),
        if problems == 0 {
            "all answer".to_string()
        } else {
            format!("{problems} problem(s)")
        }
    ));
    out
}
