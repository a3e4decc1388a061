//! Test support shared by the integration tests: the real local stack (Kubernetes, helm,
//! Alertmanager, SMTP) started once per test binary or reused, a fresh namespace per test,
//! and helpers for helm, Prometheus on backfilled series, Alertmanager and received mail.
//!
//! Nothing here fakes a component. When a binary is missing the helpers panic with the
//! command that installs it; no test skips silently.
#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses a different part of it"
)]

pub mod alertmanager;
pub mod auto;
pub mod bench;
pub mod cli;
pub mod container;
pub mod control_plane;
pub mod daemon;
pub mod eval;
pub mod exporter;
pub mod helm;
pub mod kube;
pub mod mail;
pub mod postgres;
pub mod profile;
pub mod prometheus;
pub mod proxy;
pub mod receiver;
pub mod stack;
pub mod tracker;
pub mod tracking_load;
pub mod wait;
