//! The messages the stack's SMTP server received, read from its Maildir.

use std::path::Path;

use super::stack::stack;

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Message {
    /// `Subject:` header.
    pub subject: String,
    /// `To:` header.
    pub to: String,
    /// The envelope recipients the server saw (`X-RcptTo`, added by aiosmtpd).
    pub rcpt_to: String,
    /// Every `text/plain` part, concatenated.
    pub text: String,
    /// Every `text/html` part, concatenated.
    pub html: String,
    /// `Message-ID:`.
    pub message_id: String,
    /// `In-Reply-To:`.
    pub in_reply_to: String,
    /// `References:`.
    pub references: String,
}

/// Every message received so far, in no particular order.
pub fn messages() -> Vec<Message> {
    let root = &stack().maildir;
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(root.join(sub)).ok())
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| parse(&entry.path()))
        .collect()
}

fn parse(path: &Path) -> Option<Message> {
    let raw = std::fs::read(path).ok()?;
    let mail = mailparse::parse_mail(&raw).ok()?;
    use mailparse::MailHeaderMap;
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
    let mut text = String::new();
    let mut html = String::new();
    collect(&mail, &mut text, &mut html);
    Some(Message {
        subject: header("Subject"),
        to: header("To"),
        rcpt_to: header("X-RcptTo"),
        text,
        html,
        message_id: header("Message-ID"),
        in_reply_to: header("In-Reply-To"),
        references: header("References"),
    })
}

fn collect(part: &mailparse::ParsedMail<'_>, text: &mut String, html: &mut String) {
    if part.subparts.is_empty() {
        let body = part.get_body().unwrap_or_default();
        match part.ctype.mimetype.as_str() {
            "text/html" => html.push_str(&body),
            _ => text.push_str(&body),
        }
    }
    for sub in &part.subparts {
        collect(sub, text, html);
    }
}
