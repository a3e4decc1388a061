//! Runs the real helm binary against the test cluster.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::stack::{repo_root, stack};

/// Path of a chart under `tests/charts/`.
pub fn chart(name: &str) -> PathBuf {
    repo_root().join("tests/charts").join(name)
}

/// A `helm` command with the test cluster's kubeconfig and private helm homes.
pub fn command(args: &[&str]) -> Command {
    let stack = stack();
    let mut cmd = Command::new(&stack.helm_bin);
    cmd.args(args).envs(stack.child_env());
    cmd
}

/// Runs helm and returns its output, whatever the exit status.
pub fn run(args: &[&str]) -> Output {
    command(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run helm ({}): {e}; run scripts/setup",
            stack().helm_bin.display()
        )
    })
}

/// Runs helm and panics with its stderr unless it succeeded. Returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "helm {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
