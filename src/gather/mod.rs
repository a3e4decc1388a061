//! The evaluation's providers (I/O): what a round gathers about the revisions it judges.
//! Kubernetes objects (`kube`, from the daemon's reflector stores in `stores` or by request),
//! Prometheus answers to batched queries (`prometheus`, expressions built in `promql`), and
//! the `sql` checks' read-only queries (`postgres`); for a replay, Kubernetes state in the
//! past from kube-state-metrics series (`history`, read by `ksm`). Every failure is a `ProviderError`, a
//! monitoring error that the judge tolerates and never turns into a failure.

pub mod history;
pub mod ksm;
pub mod kube;
pub mod metrics;
pub mod postgres;
pub mod prometheus;
pub mod promql;
pub mod slim;
pub mod stores;
