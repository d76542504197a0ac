//! Mail: the transports (`--mail`), the claim email (SPEC.md 5.2), and the
//! sender thread that delivers the durable outbox.
//!
//! Requests never send mail themselves: they write an `outbox` row in the
//! same transaction as the registration or claim, and [`Sender`] delivers it,
//! retrying with doubling delays (`mail_retry_base_secs`) up to
//! `mail_max_attempts`, then records `mail.failed`. Delivered or abandoned
//! messages have their bodies erased. A slow or absent mail server only
//! delays mail, never a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{FileTransport, Message, SmtpTransport, Transport as _};
use serde_json::json;

use crate::model::EventName;
use crate::store::{self, audit, outbox};
use crate::time::{Clock, rfc3339};
use crate::{log, url};

pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// `smtp://` (STARTTLS when the server offers it) or `smtps://` (TLS from the start).
    Smtp { transport: SmtpTransport, shown: String },
    /// `file:DIR`: one RFC 5322 `.eml` file per message, for development.
    File(PathBuf),
    /// `log`: one line per message (recipient, subject, registration); never the body.
    Log,
}

impl Transport {
    /// Parses `smtp://user:pass@host:port`, `smtps://...`, `file:DIR` or `log`.
    pub fn parse(spec: &str) -> Result<Transport, String> {
        if spec == "log" {
            return Ok(Transport::Log);
        }
        if let Some(dir) = spec.strip_prefix("file:") {
            if dir.is_empty() {
                return Err("file: needs a directory, such as file:./authmd-outbox".into());
            }
            return Ok(Transport::File(PathBuf::from(dir)));
        }
        let (implicit_tls, rest) = match (spec.strip_prefix("smtps://"), spec.strip_prefix("smtp://")) {
            (Some(rest), _) => (true, rest),
            (_, Some(rest)) => (false, rest),
            _ => return Err("--mail must be smtp://user:pass@host:port, smtps://..., file:DIR or log".into()),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("--mail: `{port}` is not a port"))?,
            ),
            _ => (hostport, if implicit_tls { 465 } else { 25 }),
        };
        if host.is_empty() {
            return Err("--mail: no host".into());
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let parameters = TlsParameters::new(host.clone()).map_err(|e| format!("--mail: {e}"))?;
        let mut builder = SmtpTransport::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(SMTP_TIMEOUT))
            .tls(if implicit_tls {
                Tls::Wrapper(parameters)
            } else {
                Tls::Opportunistic(parameters)
            });
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            builder = builder.credentials(Credentials::new(
                url::percent_decode(user)?,
                url::percent_decode(password)?,
            ));
        }
        let scheme = if implicit_tls { "smtps" } else { "smtp" };
        Ok(Transport::Smtp {
            transport: builder.build(),
            shown: format!("{scheme}://{host}:{port}"),
        })
    }

    /// For logs: never the password.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp { shown, .. } => shown.clone(),
            Transport::File(dir) => format!("file:{}", dir.display()),
            Transport::Log => "log".into(),
        }
    }

    /// Sends one message; the error is the server's own words where there are some.
    pub fn send(&self, from: &str, message: &outbox::Pending) -> Result<(), String> {
        if let Transport::Log = self {
            log::info(&format!(
                "mail (log transport) to {} subject {:?} registration {}",
                message.recipient,
                message.subject,
                message.registration_id.as_deref().unwrap_or("-")
            ));
            return Ok(());
        }
        let from: Mailbox = from.parse().map_err(|e| format!("mail_from: {e}"))?;
        let to: Mailbox = message.recipient.parse().map_err(|e| format!("recipient: {e}"))?;
        let email = Message::builder()
            .from(from)
            .to(to)
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.body_text.clone(),
                message.body_html.clone(),
            ))
            .map_err(|e| format!("building the message: {e}"))?;
        match self {
            Transport::Smtp { transport, .. } => transport.send(&email).map(|_| ()).map_err(|e| e.to_string()),
            Transport::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                FileTransport::new(dir)
                    .send(&email)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Transport::Log => Ok(()),
        }
    }
}

/// The claim email (SPEC.md 5.2): who asks, the link, when it expires, the
/// registration, and that ignoring it is safe. Returns (subject, text, html).
pub fn claim_email(
    resource_name: &str,
    link: &str,
    expires_ms: i64,
    registration_id: &str,
) -> (String, String, String) {
    let subject = format!("Confirm the AI agent registered with {resource_name}");
    let expires = rfc3339(expires_ms);
    let text = format!(
        "An AI agent registered with {resource_name} and says it acts for you.\n\n\
         To confirm, open this link, press the button, and read the six-digit code back to your agent:\n\n\
         {link}\n\n\
         The link expires at {expires}. Registration: {registration_id}.\n\n\
         If you did not ask an agent to do this, ignore this email: nothing happens unless the code is read back.\n"
    );
    let e = crate::http::pages::escape;
    let html = format!(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;line-height:1.5;color:#1c2430\">\
         <p>An AI agent registered with <strong>{name}</strong> and says it acts for you.</p>\
         <p>To confirm, open this link, press the button, and read the six-digit code back to your agent:</p>\
         <p><a href=\"{link}\">Confirm the agent</a></p>\
         <p style=\"color:#5b6573\">The link expires at {expires}. Registration: {reg}.</p>\
         <p style=\"color:#5b6573\">If you did not ask an agent to do this, ignore this email: nothing happens unless the code is read back.</p>\
         </body></html>",
        name = e(resource_name),
        link = e(link),
        expires = e(&expires),
        reg = e(registration_id),
    );
    (subject, text, html)
}

/// What the sender needs from the live settings.
pub struct Policy {
    pub from: String,
    pub max_attempts: i64,
    pub retry_base_secs: i64,
}

/// The outbox sender thread.
pub struct Sender {
    pub db: PathBuf,
    pub transport: Transport,
    pub clock: Arc<dyn Clock>,
    pub policy: Box<dyn Fn() -> Policy + Send>,
    pub stopping: Arc<AtomicBool>,
    /// Bookkeeping writes go through the server's one writer.
    pub writer: Arc<crate::store::writer::Writer>,
    /// A message on it says "look now" (a new message was committed).
    pub wake: Receiver<()>,
}

const IDLE_POLL: Duration = Duration::from_millis(500);

impl Sender {
    pub fn run(self) {
        let mut conn = None;
        while !self.stopping.load(Ordering::SeqCst) {
            if conn.is_none() {
                conn = store::connect(&self.db).ok();
            }
            if let Some(db) = &conn {
                self.deliver_due(db);
            }
            match self.wake.recv_timeout(IDLE_POLL) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(IDLE_POLL),
            }
        }
    }

    fn deliver_due(&self, conn: &rusqlite::Connection) {
        let now_ms = self.clock.now_ms();
        let Ok(due) = outbox::due(conn, now_ms, 20) else { return };
        for message in due {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let policy = (self.policy)();
            let result = self.transport.send(&policy.from, &message);
            let now_ms = self.clock.now_ms();
            let outcome = self.writer.write(|tx| {
                match &result {
                    Ok(()) => outbox::mark_sent(tx, message.id, now_ms)?,
                    Err(why) if message.attempts + 1 >= policy.max_attempts => {
                        outbox::mark_failed(tx, message.id, why, now_ms)?;
                        audit::record(
                            tx,
                            now_ms,
                            EventName::MailFailed,
                            audit::NewEvent {
                                registration_id: message.registration_id.as_deref(),
                                detail: json!({ "recipient": message.recipient, "attempts": message.attempts + 1, "error": why })
                                    .as_object()
                                    .cloned()
                                    .unwrap_or_default(),
                                ..Default::default()
                            },
                        )?;
                    }
                    Err(why) => {
                        let delay_secs = policy
                            .retry_base_secs
                            .saturating_mul(1 << message.attempts.clamp(0, 20));
                        outbox::mark_retry(tx, message.id, why, now_ms + delay_secs * 1000)?;
                    }
                }
                Ok(())
            });
            match (&result, outcome) {
                (_, Err(err)) => log::error(&format!("outbox bookkeeping failed: {err:?}"), None),
                (Ok(()), _) => log::info(&format!(
                    "mail delivered to {} via {}",
                    message.recipient,
                    self.transport.describe()
                )),
                (Err(why), _) => log::warn(&format!(
                    "mail to {} not delivered (attempt {}): {why}",
                    message.recipient,
                    message.attempts + 1
                )),
            }
        }
    }
}
