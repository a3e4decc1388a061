//! What each webhook is sent (pure): for each change of a release worth telling (the same
//! changes as the emails, once each), one request per webhook. `generic`: the release's view
//! as JSON, with an id for the receiver to drop repeats and an HMAC-SHA256 signature of the
//! body; `chat`: `{"text": ...}` with the headline, the recommended command and the links.

use hmac::{KeyInit, Mac};
use serde::Serialize;

use super::mail::News;
use super::names::Links;
use crate::config::webhooks::{Webhook, WebhookFormat};
use crate::release::ReleaseKey;
use crate::state::ReleaseView;

/// Header carrying the signature: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Upgrade-Guard-Signature";
/// Header carrying the id of the change (the same on every retry).
pub const ID_HEADER: &str = "X-Upgrade-Guard-Delivery";
/// Header carrying what happened (`failed`, `healthy`, `rolled_back`, ...).
pub const EVENT_HEADER: &str = "X-Upgrade-Guard-Event";

/// One request to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The webhook's name.
    pub webhook: String,
    /// The release it is about.
    pub release: ReleaseKey,
    /// `<namespace>.<release>.r<revision>.<state>`: the same for every retry of it.
    pub id: String,
    /// The state told.
    pub event: &'static str,
    /// The JSON body.
    pub body: String,
}

/// The generic body.
#[derive(Serialize)]
struct Generic<'a> {
    kind: &'static str,
    version: u32,
    id: &'a str,
    state: &'static str,
    headline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    release: &'a ReleaseView,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dashboard: Option<String>,
}

/// The requests the changes call for: one per change and webhook.
pub fn hooks(
    changes: &[(&ReleaseView, News)],
    webhooks: &[Webhook],
    links: &Links,
    cluster: Option<&str>,
) -> Vec<Hook> {
    let mut out = Vec::new();
    for (view, news) in changes {
        let id = format!(
            "{}.{}.r{}.{}",
            view.release.namespace,
            view.release.name,
            view.revision,
            news.as_str()
        );
        let headline = format!(
            "{} revision {}: {}",
            view.release,
            view.revision,
            news.headline()
        );
        for w in webhooks {
            let body = match w.format {
                WebhookFormat::Generic => serde_json::to_string(&Generic {
                    kind: "upgrade-guard.release",
                    version: 1,
                    id: &id,
                    state: news.as_str(),
                    headline: headline.clone(),
                    cluster,
                    release: view,
                    api: links.generator(&view.release),
                    dashboard: links.dashboard(&view.release),
                }),
                WebhookFormat::Chat => serde_json::to_string(&serde_json::json!({
                    "text": chat_text(view, &headline, links, cluster),
                })),
            };
            let Ok(body) = body else { continue };
            out.push(Hook {
                webhook: w.name.clone(),
                release: view.release.clone(),
                id: id.clone(),
                event: news.as_str(),
                body,
            });
        }
    }
    out
}

/// The chat message: the headline, what to do, the links.
fn chat_text(view: &ReleaseView, headline: &str, links: &Links, cluster: Option<&str>) -> String {
    let mut lines = vec![match cluster {
        Some(c) => format!("*[upgrade-guard {c}] {headline}*"),
        None => format!("*[upgrade-guard] {headline}*"),
    }];
    if let Some(p) = &view.problem {
        lines.push(p.clone());
    }
    if let Some(j) = &view.judgement {
        let failing: Vec<String> = j
            .results
            .iter()
            .filter(|r| r.outcome == crate::checks::Outcome::Fail)
            .map(|r| format!("• {}: {}", r.check, r.summary))
            .collect();
        lines.extend(failing);
        let words = j.action.words();
        if !words.is_empty() {
            lines.push(format!("Recommended: {words}"));
        }
    }
    if let Some(words) = view
        .automation
        .as_deref()
        .and_then(crate::remediation::automation::Automation::words)
    {
        lines.push(format!("Automatic action: {words}"));
    }
    if let Some(url) = links.dashboard(&view.release) {
        lines.push(format!("Dashboard: {url}"));
    }
    if let Some(url) = links.generator(&view.release) {
        lines.push(format!("API: {url}"));
    }
    lines.join("\n")
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as GitHub signs its webhooks.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Outcome};
    use crate::notify::mail::Changebook;
    use crate::test_support::view;
    use crate::verdict::Verdict;

    fn hook(format: &str) -> Webhook {
        crate::config::Config::parse(
            &format!(
                "notifications:\n  webhooks:\n    - name: w\n      url: http://127.0.0.1:9/\n      format: {format}\n"
            ),
            "t",
        )
        .unwrap()
        .notifications
        .webhooks
        .remove(0)
    }

    #[test]
    fn each_change_is_one_request_per_webhook_with_a_stable_id() {
        let failed = view(
            Verdict::Failed,
            false,
            vec![CheckResult::new(
                "lag",
                Outcome::Fail,
                "the backlog keeps growing",
            )],
        );
        let mut book = Changebook::default();
        let changes = book.changes([&failed].into_iter());
        let hooks = hooks(
            &changes,
            &[hook("generic"), hook("chat")],
            &Links::default(),
            Some("prod"),
        );
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].id, "ns.app.r3.failed");
        assert_eq!(hooks[0].event, "failed");
        let body: serde_json::Value = serde_json::from_str(&hooks[0].body).unwrap();
        assert_eq!(body["state"], "failed");
        assert_eq!(body["cluster"], "prod");
        assert_eq!(body["release"]["revision"], 3);
        assert_eq!(body["release"]["judgement"]["verdict"], "failed");
        let chat: serde_json::Value = serde_json::from_str(&hooks[1].body).unwrap();
        let text = chat["text"].as_str().unwrap();
        assert!(
            text.starts_with("*[upgrade-guard prod] ns/app revision 3: failed*"),
            "{text}"
        );
        assert!(text.contains("• lag: the backlog keeps growing"), "{text}");
        assert!(
            text.contains("Recommended: roll back to revision 2: helm rollback app 2"),
            "{text}"
        );
        // The same state again: nothing.
        assert!(book.changes([&failed].into_iter()).is_empty());
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
