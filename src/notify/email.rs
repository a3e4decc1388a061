//! Email delivery (I/O, lettre over SMTP): `starttls` is required when configured (a server
//! that does not offer it gets no mail, never a silent downgrade), `tls` is implicit TLS,
//! `none` is an explicit opt-in for a local relay. Credentials come from
//! `UPGRADE_GUARD_SMTP_USERNAME` / `UPGRADE_GUARD_SMTP_PASSWORD` or from mounted files, read
//! at each attempt (so a rotated Secret is picked up). Messages queue (bounded, the oldest
//! dropped and counted) for one worker that retries with backoff for up to
//! `email.give_up_after` (2 hours: an SMTP server down for an hour loses nothing); a message the server
//! refuses for good (a 5xx other than authentication) is counted `rejected`. Nothing here
//! ever waits for the SMTP server on behalf of the daemon. A message the server accepted is
//! confirmed in the cluster (`records::mailed`), so a replica that takes over sends only
//! what nobody confirmed.

use std::sync::{Arc, Mutex};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::{info, warn};

use super::mail::Mail;
use super::metrics::{Channel, Delivery, NotifyMetrics};
use super::queue::{Attempt, Delivered, Queue, deliver};
use crate::config::{EmailConfig, SmtpSecurity};
use crate::records::mailed::MailedStore;

/// The channel label of these notifications.
pub const CHANNEL: Channel = Channel::Email;

/// The last delivery error, in words, for `/api/v1/releases`.
pub type LastError = Arc<Mutex<Option<String>>>;

/// Sends emails in the background.
pub struct Mailer {
    queue: Arc<Queue<Mail>>,
    metrics: NotifyMetrics,
    task: tokio::task::JoinHandle<()>,
    /// The last delivery error.
    pub last_error: LastError,
}

impl Drop for Mailer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn secret(file: Option<&std::path::Path>, env: &str) -> Result<Option<String>, String> {
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    Ok(std::env::var(env).ok().filter(|v| !v.is_empty()))
}

fn transport(config: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = config.smtp_host.as_str();
    let builder = match config.security {
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            host,
        )),
    }
    .map_err(|e| format!("SMTP server {host}: {e}"))?;
    let mut builder = builder.port(config.smtp_port).timeout(Some(config.timeout));
    let user = secret(
        config.username_file.as_deref(),
        "UPGRADE_GUARD_SMTP_USERNAME",
    )?;
    let password = secret(
        config.password_file.as_deref(),
        "UPGRADE_GUARD_SMTP_PASSWORD",
    )?;
    if let (Some(user), Some(password)) = (user, password) {
        builder = builder.credentials(Credentials::new(user, password));
    }
    Ok(builder.build())
}

fn message(config: &EmailConfig, mail: &Mail) -> Result<Message, String> {
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|e| format!("from {:?}: {e}", config.from))?;
    // One thread per release and revision: each mail has its own Message-ID and refers to
    // the revision's (the first of the thread or not, mail readers group them).
    let root = mail.thread_root(from.email.domain());
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .message_id(None)
        .in_reply_to(root.clone())
        .references(root);
    for to in mail.to.as_ref().unwrap_or(&config.to) {
        builder = builder.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// Words for an SMTP failure, naming a refused STARTTLS plainly.
fn explain(config: &EmailConfig, e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string();
    if config.security == SmtpSecurity::Starttls
        && (text.contains("STARTTLS")
            || text.contains("starttls")
            || text.contains("not supported"))
    {
        return format!(
            "{}:{} does not offer STARTTLS, which security: starttls requires; no mail is sent in clear text ({text})",
            config.smtp_host, config.smtp_port
        );
    }
    format!("{}:{}: {text}", config.smtp_host, config.smtp_port)
}

impl Mailer {
    /// Starts the worker; `capacity` messages are kept while the server cannot be reached;
    /// each message accepted is confirmed in `confirmed`, if given.
    pub fn start(
        config: EmailConfig,
        capacity: usize,
        metrics: NotifyMetrics,
        confirmed: Option<MailedStore>,
    ) -> Self {
        let queue = Arc::new(Queue::new(capacity));
        let last_error: LastError = Arc::default();
        let task = tokio::spawn(worker(
            config,
            queue.clone(),
            metrics.clone(),
            last_error.clone(),
            confirmed,
        ));
        Self {
            queue,
            metrics,
            task,
            last_error,
        }
    }

    /// Queues a message; never waits.
    pub fn send(&self, mail: Mail) {
        for old in self.queue.push(mail) {
            self.metrics.notification(CHANNEL, Delivery::Dropped);
            warn!(release = %old.release, subject = %old.subject, "email queue full: dropped the oldest message");
        }
    }
}

/// A response the server will give again however often it is asked (a 5xx refusal of the
/// message or a recipient), unlike a connection failure, a 4xx or an authentication
/// failure (credentials get fixed).
fn refused_for_good(e: &lettre::transport::smtp::Error) -> bool {
    e.is_permanent()
        && !e
            .status()
            .is_some_and(|c| (530..=538).contains(&u16::from(c)))
}

async fn worker(
    config: EmailConfig,
    queue: Arc<Queue<Mail>>,
    metrics: NotifyMetrics,
    last_error: LastError,
    confirmed: Option<MailedStore>,
) {
    let remember = |e: Option<String>| {
        if let Ok(mut l) = last_error.lock() {
            *l = e;
        }
    };
    loop {
        let taken = queue.front().await;
        let mail = &taken.item;
        let attempt = || async {
            match (transport(&config), message(&config, mail)) {
                (Ok(t), Ok(m)) => match t.send(m).await {
                    Ok(_) => Attempt::Delivered,
                    Err(e) if refused_for_good(&e) => Attempt::Refused(explain(&config, &e)),
                    Err(e) => Attempt::Failed(explain(&config, &e)),
                },
                (Err(e), _) | (_, Err(e)) => Attempt::Failed(e),
            }
        };
        let failed = |e: &str| {
            warn!(release = %mail.release, "cannot send the email (retried): {e}");
            remember(Some(e.to_string()));
        };
        match deliver(config.give_up_after, &metrics, CHANNEL, attempt, failed).await {
            Delivered::Yes => {
                info!(release = %mail.release, subject = %mail.subject, "email sent");
                remember(None);
                confirm(confirmed.as_ref(), mail).await;
            }
            Delivered::Refused(e) => {
                warn!(release = %mail.release, subject = %mail.subject,
                    "the SMTP server refuses this email for good, not retried: {e}");
                remember(Some(e));
            }
            Delivered::GaveUp => warn!(release = %mail.release, subject = %mail.subject,
                "giving up this email after {} of failures",
                crate::units::human(config.give_up_after)),
        }
        queue.done(&taken);
    }
}

/// Records that `mail` was accepted (a failure only costs a second copy after a failover).
async fn confirm(store: Option<&MailedStore>, mail: &Mail) {
    let (Some(store), Some(c)) = (store, mail.confirm.as_ref()) else {
        return;
    };
    if let Err(e) = store.confirm(&c.key, &c.value).await {
        warn!(release = %mail.release, "the email was sent but its confirmation was not recorded (a replica taking over may send it again): {e}");
    }
}

/// The operator's templates in `dir` (`email.txt`, `email.html`; a missing one keeps the
/// built-in), checked: an error names the file and what is wrong.
pub fn read_templates(dir: &std::path::Path) -> Result<super::mail::Templates, String> {
    let read = |name: &str| -> Result<Option<String>, String> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    let templates = super::mail::Templates {
        text: read("email.txt")?,
        html: read("email.html")?,
    };
    if templates.text.is_none() && templates.html.is_none() {
        return Err(format!(
            "{} holds neither email.txt nor email.html",
            dir.display()
        ));
    }
    super::mail::Mailbook::with_templates(&templates)
        .map_err(|e| format!("a template in {} does not parse: {e:#}", dir.display()))?;
    Ok(templates)
}
