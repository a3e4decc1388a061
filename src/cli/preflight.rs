//! `upgrade-guard preflight`: "do not attempt to upgrade a service unless all the services
//! are operating normally". Exits 0 only when every installed release of the suite is
//! `deployed`, not `pending-*`, judged healthy right now (its bake over, every check
//! passing from a current answer, its dependencies up); otherwise says what is wrong and
//! exits 1. It never says yes without having reached the cluster (an error exits 69) or
//! Prometheus (a check that could not be asked is not a pass).

use serde::Serialize;

use super::config::ConfigArgs;
use super::error::{CliError, exit};
use super::output::Output;
use super::spot::{self, Spot};
use crate::checks::Outcome;
use crate::config::{Config, Suite};
use crate::release::{ReleaseKey, ReleaseStatus};
use crate::verdict::Verdict;

/// Arguments of `preflight`.
#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// The suite to check (default: the suite of `--release`, else the first one).
    #[arg(long)]
    pub suite: Option<String>,
    /// The release about to be upgraded: its suite is checked (or it alone when it is in
    /// none).
    #[arg(long)]
    pub release: Option<String>,
    /// Namespace of `--release`. Default, as helm: $HELM_NAMESPACE, else the current
    /// kubeconfig context's namespace, else `default`.
    #[arg(short, long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// What was found about one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `namespace/name`.
    pub release: String,
    /// Operating normally.
    pub ok: bool,
    /// What is wrong, or what was checked.
    pub reasons: Vec<String>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// The suite checked (none: a release in no suite).
    pub suite: Option<String>,
    /// Every release upgraded together may now be upgraded.
    pub ready: bool,
    /// Per release, in the suite's order.
    pub releases: Vec<Finding>,
}

/// Why a judged release is not operating normally (pure).
pub fn problems(spot: &Spot) -> Vec<String> {
    let rev = spot.revision;
    let mut out = Vec::new();
    if let Some(p) = &spot.problem {
        out.push(p.clone());
        return out;
    }
    if spot.status != ReleaseStatus::Deployed {
        out.push(format!("revision {rev} is {}, not deployed", spot.status));
    }
    let Some(r) = &spot.report else {
        out.push(format!("revision {rev} could not be judged"));
        return out;
    };
    for c in r.results.iter().filter(|c| c.outcome != Outcome::Pass) {
        let what = if c.check.dependency().is_some() {
            "dependency "
        } else {
            ""
        };
        let stale = if c.stale {
            " (not a current answer: its source could not be asked)"
        } else {
            ""
        };
        out.push(format!(
            "{what}{}: {}: {}{stale}",
            c.check,
            c.outcome.as_str(),
            c.summary
        ));
    }
    match r.verdict {
        Verdict::Healthy => {}
        Verdict::Progressing if out.is_empty() => out.push(format!(
            "revision {rev} is still being verified: its bake window ends {}",
            r.bake_ends.strftime("%Y-%m-%d %H:%M:%S UTC")
        )),
        v => {
            if out.is_empty() {
                out.push(format!("revision {rev} is {}", v.as_str()));
            }
        }
    }
    out
}

/// The preflight answer from the judged releases of `suite` (pure); `installed` holds the
/// releases found.
pub fn assess(suite: Option<&Suite>, wanted: &[ReleaseKey], spots: &[Spot]) -> Preflight {
    let mut releases = Vec::new();
    for key in wanted {
        let Some(spot) = spots.iter().find(|s| &s.release == key) else {
            releases.push(Finding {
                release: key.to_string(),
                ok: true,
                reasons: vec!["not installed: nothing to check".into()],
            });
            continue;
        };
        let wrong = problems(spot);
        releases.push(if wrong.is_empty() {
            Finding {
                release: key.to_string(),
                ok: true,
                reasons: vec![format!(
                    "revision {} deployed and healthy{}",
                    spot.revision,
                    spot.report
                        .as_ref()
                        .map(|r| {
                            let deps: Vec<&str> = r
                                .results
                                .iter()
                                .filter_map(|c| c.check.dependency())
                                .collect();
                            if deps.is_empty() {
                                String::new()
                            } else {
                                format!("; dependencies up: {}", deps.join(", "))
                            }
                        })
                        .unwrap_or_default()
                )],
            }
        } else {
            Finding {
                release: key.to_string(),
                ok: false,
                reasons: wrong,
            }
        });
    }
    Preflight {
        suite: suite.map(|s| s.name.clone()),
        ready: releases.iter().all(|f| f.ok),
        releases,
    }
}

/// Which releases to check.
fn scope<'a>(
    config: &'a Config,
    args: &PreflightArgs,
    namespace: &str,
) -> Result<(Option<&'a Suite>, Vec<ReleaseKey>), CliError> {
    let release = args.release.as_ref().map(|r| ReleaseKey::new(namespace, r));
    let suite = match (&args.suite, &release) {
        (Some(name), _) => Some(config.suites.iter().find(|s| &s.name == name).ok_or_else(
            || {
                CliError::Usage(format!(
                    "no suite {name:?} in the configuration (suites: {})",
                    config
                        .suites
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            },
        )?),
        (None, Some(key)) => config.suite_of(key),
        (None, None) => config.suites.first(),
    };
    let mut keys: Vec<ReleaseKey> = suite
        .map(|s| s.releases().cloned().collect())
        .unwrap_or_default();
    if let Some(key) = release
        && !keys.contains(&key)
    {
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(CliError::Usage(
            "nothing to check: name a --release or a --suite (the configuration has no suite)"
                .into(),
        ));
    }
    Ok((suite, keys))
}

/// Renders the answer.
pub fn render(p: &Preflight) -> String {
    let mut out = String::new();
    for f in &p.releases {
        let mark = if f.ok { "ok       " } else { "NOT READY" };
        out.push_str(&format!("{mark}  {}\n", f.release));
        for r in &f.reasons {
            out.push_str(&format!("           {r}\n"));
        }
    }
    let what = p
        .suite
        .as_ref()
        .map_or_else(|| "the release".to_string(), |s| format!("suite {s}"));
    if p.ready {
        out.push_str(&format!(
            "ready: every installed release of {what} operates normally; go ahead with the upgrade\n"
        ));
    } else {
        let names: Vec<&str> = p
            .releases
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.release.as_str())
            .collect();
        out.push_str(&format!(
            "not ready: {} of {what} {} not operating normally; do not upgrade until {} fixed\n",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
            if names.len() == 1 {
                "it is"
            } else {
                "they are"
            }
        ));
    }
    out
}

/// Runs `preflight`; returns the exit code (0 ready, 1 not ready).
pub async fn run(client: kube::Client, args: &PreflightArgs) -> Result<i32, CliError> {
    let config = args.config.load()?;
    let namespace = super::scope::namespace(args.namespace.as_deref(), &client);
    let (suite, wanted) = scope(&config, args, &namespace)?;
    let mut installed = Vec::new();
    for key in &wanted {
        // One listing per release keeps the RBAC to its namespace.
        let found = spot::releases(
            &client,
            std::slice::from_ref(&key.namespace.to_string()),
            &config.watch.storage,
        )
        .await?;
        if found.contains(key) {
            installed.push(key.clone());
        }
    }
    let spots = spot::judge(&client, &config, &installed).await?;
    let answer = assess(suite, &wanted, &spots);
    args.output.print(&answer, render)?;
    Ok(if answer.ready {
        exit::HEALTHY
    } else {
        exit::FAILED
    })
}
