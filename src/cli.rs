//! Command-line surface: one `Args` parsed by clap, turned into typed values in one place.

use clap::Parser;

/// Watches Helm release revisions in a Kubernetes cluster, judges every upgrade over a bake
/// window and tells the operator (or, where allowed, does) what to do about a bad one.
#[derive(Debug, Parser)]
#[command(name = "upgrade-guard", version, about, long_about = None)]
pub struct Args {}
