//! The configuration checked against the live cluster (I/O): for every release it covers,
//! every PromQL query runs once on the configured Prometheus (it must parse and return series
//! now) and every SQL query once in its read-only transaction; each answer becomes a
//! finding in words (`plan.rs`). `upgrade-guard config validate --live` prints them.

pub mod plan;

use crate::config::Config;
use crate::gather::postgres::Postgres;
use crate::gather::prometheus::Prometheus;
use crate::release::ReleaseKey;
use plan::{Finding, Probe, probes, promql_finding, sql_finding};

/// Runs every probe of `releases` under `config`, one at a time (a check of the
/// configuration, not a load on Prometheus or the databases).
pub async fn run(
    config: &Config,
    releases: &[ReleaseKey],
    prometheus: &Prometheus,
    postgres: &Postgres,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for key in releases {
        for probe in probes(key, &config.policy_for(key)) {
            out.push(match probe {
                Probe::PromQL { check, query } => {
                    let answer = prometheus.instant(&query).await.map(|s| s.len());
                    promql_finding(key, &check, &query, &answer)
                }
                Probe::Sql { check, source } => {
                    let answer = postgres.query(&source).await;
                    sql_finding(key, &check, &source, &answer)
                }
            });
        }
    }
    out
}
