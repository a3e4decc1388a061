//! The password of a database connection, read at each connection from where the
//! configuration says (an environment variable, a mounted file, a Kubernetes Secret), so a
//! rotated password is used at the next check. It is never logged: [`Password`] prints as
//! `<redacted>`, and errors say where it should have come from, never what it is.

use k8s_openapi::api::core::v1::Secret;

use crate::api_error::ApiErrorKind;
use crate::config::PasswordSource;

/// A password; its `Debug` output is redacted.
pub(super) struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Password {
    /// The bytes to send to the server.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

/// A password file or Secret value without its trailing line end (files written with `echo`
/// have one; the password does not).
fn without_line_end(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// Reads the password from `source`; `client` reads Secrets.
pub(super) async fn read(
    source: &PasswordSource,
    client: Option<&kube::Client>,
) -> Result<Password, String> {
    let from = source.describe();
    let text = match source {
        PasswordSource::Env(var) => std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => {
                format!("the password is not set: {from} is not in the environment")
            }
            std::env::VarError::NotUnicode(_) => {
                format!("the password in {from} is not valid UTF-8")
            }
        })?,
        PasswordSource::File(path) => without_line_end(
            tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("cannot read the password from {from}: {e}"))?,
        ),
        PasswordSource::Secret {
            namespace,
            name,
            key,
        } => {
            let client = client.ok_or_else(|| {
                format!("cannot read the password from {from}: no Kubernetes client")
            })?;
            let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
            let secret = api.get(name).await.map_err(|e| match ApiErrorKind::of(&e) {
                ApiErrorKind::Forbidden => format!(
                    "cannot read the password from {from}: upgrade-guard may not get this Secret (forbidden); the chart grants get on the Secrets named under databases"
                ),
                ApiErrorKind::NotFound => {
                    format!("cannot read the password from {from}: the Secret does not exist")
                }
                _ => format!("cannot read the password from {from}: {e}"),
            })?;
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .ok_or_else(|| format!("cannot read the password: {from} does not exist"))?;
            without_line_end(
                String::from_utf8(bytes.0.clone())
                    .map_err(|_| format!("the password in {from} is not valid UTF-8"))?,
            )
        }
    };
    if text.is_empty() {
        return Err(format!("the password in {from} is empty"));
    }
    Ok(Password(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let p = Password("hunter2".into());
        assert_eq!(format!("{p:?}"), "<redacted>");
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn only_one_trailing_line_end_is_dropped() {
        assert_eq!(without_line_end("s3cret\n".into()), "s3cret");
        assert_eq!(without_line_end("s3cret\r\n".into()), "s3cret");
        assert_eq!(without_line_end("s3cret \n\n".into()), "s3cret \n");
        assert_eq!(without_line_end("s3cret".into()), "s3cret");
    }

    #[tokio::test]
    async fn a_missing_source_is_named_without_a_value() {
        let e = read(
            &PasswordSource::Env("UPGRADE_GUARD_TEST_SURELY_UNSET".into()),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            e.contains(
                "environment variable UPGRADE_GUARD_TEST_SURELY_UNSET is not in the environment"
            ),
            "{e}"
        );
        let e = read(&PasswordSource::File("/nonexistent/pw".into()), None)
            .await
            .unwrap_err();
        assert!(e.contains("file /nonexistent/pw"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "\n").unwrap();
        let e = read(&PasswordSource::File(path), None).await.unwrap_err();
        assert!(e.contains("is empty"), "{e}");
    }
}
