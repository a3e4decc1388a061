//! Webhooks (pure): where each change of a release worth telling is POSTed besides email, in
//! one of two formats: `generic` (the release's view as JSON, signed with HMAC-SHA256 when a
//! secret is given) or `chat` (`{"text": ...}`, what Slack and Microsoft Teams incoming
//! webhooks take).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::FieldError;
use super::fields::Dur;

/// The body a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The release's view as JSON, with `X-Upgrade-Guard-Signature`.
    Generic,
    /// `{"text": "..."}` (Slack, Microsoft Teams, Mattermost, Rocket.Chat incoming webhooks).
    Chat,
}

/// One webhook as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// `name`.
    pub name: Option<String>,
    /// `url`.
    pub url: Option<String>,
    /// `format`.
    pub format: Option<WebhookFormat>,
    /// `secret_file`.
    pub secret_file: Option<PathBuf>,
    /// `url_file`.
    pub url_file: Option<PathBuf>,
    /// `timeout`.
    pub timeout: Option<Dur>,
    /// `give_up_after`.
    pub give_up_after: Option<Dur>,
    /// Refused: secrets never live in the configuration.
    pub secret: Option<serde_yaml_ng::Value>,
}

/// Where the URL comes from: chat webhooks carry their credential in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookUrl {
    /// Written in the configuration.
    Given(String),
    /// Read from a mounted file at each delivery.
    File(PathBuf),
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its name (logs, metrics).
    pub name: String,
    /// Where to POST.
    pub url: WebhookUrl,
    /// The body.
    pub format: WebhookFormat,
    /// The HMAC key, read from this file at each delivery (generic only).
    pub secret_file: Option<PathBuf>,
    /// One attempt.
    pub timeout: Duration,
    /// A message the receiver cannot take is retried this long, then dropped.
    pub give_up_after: Duration,
}

/// Validates `notifications.webhooks`.
pub(super) fn webhooks(raw: &[RawWebhook]) -> Result<Vec<Webhook>, FieldError> {
    let mut out: Vec<Webhook> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let at = format!("notifications.webhooks[{i}]");
        let hook = webhook(&at, w)?;
        if out.iter().any(|o| o.name == hook.name) {
            return Err(FieldError::new(
                format!("{at}.name"),
                format!("{:?} is the name of another webhook", hook.name),
            ));
        }
        out.push(hook);
    }
    Ok(out)
}

fn webhook(at: &str, raw: &RawWebhook) -> Result<Webhook, FieldError> {
    if raw.secret.is_some() {
        return Err(FieldError::new(
            format!("{at}.secret"),
            "secrets never go in the configuration: use secret_file (a mounted Secret)",
        ));
    }
    let name = raw
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FieldError::new(format!("{at}.name"), "required"))?;
    let url = match (&raw.url, &raw.url_file) {
        (Some(u), None) => {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && reqwest::Url::parse(u).is_ok();
            if !ok {
                return Err(FieldError::new(
                    format!("{at}.url"),
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
            WebhookUrl::Given(u.clone())
        }
        (None, Some(f)) => WebhookUrl::File(f.clone()),
        _ => {
            return Err(FieldError::new(
                at.to_string(),
                "give url, or url_file (a mounted Secret: chat webhooks carry their credential in the URL), not both",
            ));
        }
    };
    let format = raw.format.unwrap_or(WebhookFormat::Generic);
    if format == WebhookFormat::Chat && raw.secret_file.is_some() {
        return Err(FieldError::new(
            format!("{at}.secret_file"),
            "chat webhooks are not signed (their URL is the credential)",
        ));
    }
    Ok(Webhook {
        name,
        url,
        format,
        secret_file: raw.secret_file.clone(),
        timeout: raw
            .timeout
            .as_ref()
            .map_or(Duration::from_secs(10), |d| d.0),
        give_up_after: raw
            .give_up_after
            .as_ref()
            .map_or(Duration::from_secs(2 * 3600), |d| d.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Webhook>, FieldError> {
        let raw: Vec<RawWebhook> = serde_yaml_ng::from_str(yaml).unwrap();
        webhooks(&raw)
    }

    #[test]
    fn webhooks_take_their_defaults_and_secrets_from_files() {
        let hooks = parse(
            "- name: ops\n  url: https://hooks.example.com/ug\n  secret_file: /etc/ug/hmac\n\
             - name: chat\n  url_file: /etc/ug/slack-url\n  format: chat\n  timeout: 3s\n",
        )
        .unwrap();
        assert_eq!(hooks[0].format, WebhookFormat::Generic);
        assert_eq!(hooks[0].timeout, Duration::from_secs(10));
        assert_eq!(hooks[0].give_up_after, Duration::from_secs(7200));
        assert_eq!(hooks[1].url, WebhookUrl::File("/etc/ug/slack-url".into()));
        assert_eq!(hooks[1].timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_webhook_that_cannot_work_is_refused_with_its_place() {
        let cases = [
            (
                "- url: https://a\n",
                "notifications.webhooks[0].name",
                "required",
            ),
            ("- name: a\n", "notifications.webhooks[0]", "give url"),
            (
                "- name: a\n  url: ftp://a\n",
                "notifications.webhooks[0].url",
                "not an http(s) URL",
            ),
            (
                "- name: a\n  url: https://a\n  secret: s3cr3t\n",
                "notifications.webhooks[0].secret",
                "never go in the configuration",
            ),
            (
                "- name: a\n  url: https://a\n  format: chat\n  secret_file: /x\n",
                "notifications.webhooks[0].secret_file",
                "not signed",
            ),
            (
                "- name: a\n  url: https://a\n- name: a\n  url: https://b\n",
                "notifications.webhooks[1].name",
                "another webhook",
            ),
        ];
        for (yaml, path, words) in cases {
            let e = parse(yaml).unwrap_err();
            assert_eq!(e.path, path, "{yaml}");
            assert!(e.reason.contains(words), "{yaml}: {}", e.reason);
            assert!(!e.reason.contains("s3cr3t"), "{}", e.reason);
        }
    }
}
