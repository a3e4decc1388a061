//! The stack's PostgreSQL (TLS with a test CA, password authentication), reached with the
//! real `psql` for setup and by upgrade-guard for the checks; and [`Private`], one more server
//! like it that a test may stop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::stack::{repo_root, stack};

/// The environment variable the test configurations name in `password_from.env`.
pub const PASSWORD_ENV: &str = "UG_TEST_PG_PASSWORD";

/// `psql -tA -c <sql>` against `database` of the stack's PostgreSQL as its superuser, with
/// `env` over the libpq variables: (success, stdout, stderr).
pub fn psql_in(database: &str, sql: &str, env: &[(&str, String)]) -> (bool, String, String) {
    let out = Command::new("psql")
        .args(["-tA", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql])
        .envs(stack().postgres_env())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("psql (apt-get install postgresql-client; scripts/setup)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `psql` in the `postgres` database; see [`psql_in`].
pub fn psql(sql: &str, env: &[(&str, String)]) -> (bool, String, String) {
    psql_in("postgres", sql, env)
}

/// Runs `sql` in `database` and returns its output; panics with psql's error.
pub fn admin(database: &str, sql: &str) -> String {
    let (ok, out, err) = psql_in(database, sql, &[]);
    assert!(ok, "psql {sql:?}: {err}");
    out
}

/// A fresh database named `name` (dropped first if a previous run left it).
pub fn fresh_database(name: &str) -> String {
    admin(
        "postgres",
        &format!("drop database if exists {name} with (force)"),
    );
    admin("postgres", &format!("create database {name}"));
    name.to_string()
}

/// The superuser's password (for `password_from`).
pub fn password() -> String {
    stack().env["PGPASSWORD"].clone()
}

/// The stack server's port.
pub fn port() -> u16 {
    stack().env["PGPORT"].parse().expect("PGPORT")
}

/// The CA that signed the server's certificate.
pub fn ca_file() -> String {
    stack().env["PGSSLROOTCERT"].clone()
}

/// A CA that did not sign it.
pub fn other_ca_file() -> String {
    stack().env["PG_OTHER_CA"].clone()
}

/// A `databases:` entry named `name` for `database` on `port` as the superuser, with the
/// password from [`PASSWORD_ENV`] and the test CA; `extra` lines (4 spaces) override.
pub fn database_yaml(name: &str, database: &str, port: u16, extra: &str) -> String {
    format!(
        "  {name}:\n    host: 127.0.0.1\n    port: {port}\n    database: {database}\n    user: postgres\n    ca_file: {}\n    connect_timeout: 2s\n    statement_timeout: 2s\n{}{extra}",
        ca_file(),
        if extra.contains("password_from") {
            String::new()
        } else {
            format!("    password_from:\n      env: {PASSWORD_ENV}\n")
        }
    )
}

/// One more PostgreSQL server like the stack's (same CA, certificate and password) on its
/// own port, that a test can stop; stopped when dropped.
pub struct Private {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
}

impl Private {
    /// Starts it and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(repo_root().join("scripts/stack"))
            .args(["postgres", &dir.path().to_string_lossy(), &port.to_string()])
            .env("UPGRADE_GUARD_STACK_DIR", &stack().dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).expect("log"))
            .spawn()
            .expect("scripts/stack postgres");
        let private = Self {
            child: Some(child),
            _dir: dir,
            port,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, _, err) = psql("select 1", &[("PGPORT", port.to_string())]);
            if ok {
                return private;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the private PostgreSQL did not answer: {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it (fast shutdown) and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The script execs the server: the child is the postmaster.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
