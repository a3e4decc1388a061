//! upgrade-guard: notices every Helm release revision change, judges the upgrade over a bake
//! window from Kubernetes objects and Prometheus, and reports or acts on the verdict.
//!
//! The crate follows the data flow of `docs/architecture.md`: each box is one module, the
//! pure decision steps take plain values and never a client.

pub mod api_error;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod evaluation;
pub mod gather;
pub mod http_client;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod records;
pub mod release;
pub mod remediation;
pub mod replay;
pub mod state;
pub mod suite;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tracker;
pub mod units;
pub mod verdict;
