//! `upgrade-guard version [--url URL]`: this client's version and the git revision it was
//! built from, and with `--url` the running daemon's (as `kubectl version` shows both).

use serde::{Deserialize, Serialize};

use super::error::CliError;
use super::output::Output;

/// Arguments of `version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// A running daemon (`http://upgrade-guard.upgrade-guard:8080`): its version too.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// A version and its git revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The version.
    pub version: String,
    /// The git revision (`unknown` outside the image build).
    pub revision: String,
}

/// What `version` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// This program.
    pub client: Version,
    /// The daemon at `--url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Version>,
}

/// The lines a person reads.
pub fn render(v: &Versions) -> String {
    let line = |who: &str, v: &Version| format!("{who}: {} (git {})\n", v.version, v.revision);
    let mut out = line("client", &v.client);
    if let Some(d) = &v.daemon {
        out.push_str(&line("daemon", d));
    }
    out
}

/// Runs `version`; exit code 0, or the daemon's error.
pub async fn run(args: &VersionArgs) -> Result<i32, CliError> {
    let build = crate::metrics::BUILD;
    let versions = Versions {
        client: Version {
            version: build.version.to_string(),
            revision: build.revision.to_string(),
        },
        daemon: match &args.url {
            Some(url) => Some(super::status::daemon_json(url, "/api/v1/version").await?),
            None => None,
        },
    };
    args.output.print(&versions, render)?;
    Ok(0)
}
