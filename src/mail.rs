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
use lettre::{Message, SmtpTransport, Transport as _};
use serde_json::json;

use crate::model::EventName;
use crate::store::{audit, outbox};
use crate::time::{Clock, UnixMs, rfc3339};
use crate::{log, url};

pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How an `smtp://` or `smtps://` connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://`: STARTTLS, required. A server that does not offer it gets
    /// nothing: no password, no message (a downgrade by whoever sits on the
    /// path would otherwise reveal both).
    StartTls,
    /// `smtp://host?tls=none`: plaintext, asked for by name, and only without
    /// credentials (a relay on loopback, the test server).
    Plaintext,
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// `smtp://` (STARTTLS required), `smtps://` (TLS from the start), or
    /// `smtp://...?tls=none` (plaintext, no credentials).
    Smtp {
        transport: SmtpTransport,
        security: Security,
        shown: String,
    },
    /// `file:DIR`: one RFC 5322 `.eml` file per message, for development.
    File(PathBuf),
    /// `log`: one line per message (recipient, subject, registration); never the body.
    Log,
}

const MAIL_SPEC_FORMS: &str = "smtp://user:pass@host:port (STARTTLS required), smtps://user:pass@host:port, \
     smtp://host:port?tls=none (plaintext, no credentials), file:DIR or log";

impl Transport {
    /// Parses `smtp://user:pass@host:port`, `smtps://...`,
    /// `smtp://host:port?tls=none`, `file:DIR` or `log`. Errors never repeat
    /// the user part of the URL (it holds the password).
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
            _ => return Err(format!("--mail must be one of {MAIL_SPEC_FORMS}")),
        };
        // The password may hold `?` or `/`: split the user part off first.
        let (userinfo, after_userinfo) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (Some(userinfo), after),
            None => (None, rest),
        };
        let (hostport, query) = match after_userinfo.split_once('?') {
            Some((hostport, query)) => (hostport, Some(query)),
            None => (after_userinfo, None),
        };
        let security = match (implicit_tls, query) {
            (true, None) => Security::Tls,
            (false, None) => Security::StartTls,
            (false, Some("tls=none")) => Security::Plaintext,
            (true, Some("tls=none")) => {
                return Err("--mail: smtps:// is TLS from the start; ?tls=none contradicts it".into());
            }
            (_, Some(other)) => {
                return Err(format!(
                    "--mail: unknown option `?{other}`; the only one is ?tls=none (plaintext, for a relay without credentials)"
                ));
            }
        };
        if security == Security::Plaintext && userinfo.is_some() {
            return Err(
                "--mail: ?tls=none would send the password in clear; use smtps:// or STARTTLS (drop ?tls=none)".into(),
            );
        }
        let hostport = hostport.trim_end_matches('/');
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
            .tls(match security {
                Security::Tls => Tls::Wrapper(parameters),
                Security::StartTls => Tls::Required(parameters),
                Security::Plaintext => Tls::None,
            });
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let undecodable = |_: String| "--mail: the user or password has a malformed %-escape".to_string();
            builder = builder.credentials(Credentials::new(
                url::percent_decode(user).map_err(undecodable)?,
                url::percent_decode(password).map_err(undecodable)?,
            ));
        }
        let shown = match security {
            Security::Tls => format!("smtps://{host}:{port}"),
            Security::StartTls => format!("smtp://{host}:{port} (STARTTLS required)"),
            Security::Plaintext => format!("smtp://{host}:{port}?tls=none (plaintext)"),
        };
        Ok(Transport::Smtp {
            transport: builder.build(),
            security,
            shown,
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
            Transport::Smtp {
                transport, security, ..
            } => transport.send(&email).map(|_| ()).map_err(|e| {
                if *security == Security::StartTls && e.to_string().contains("STARTTLS") {
                    format!(
                        "{e}: nothing was sent in clear (use smtps://, or ?tls=none for a relay without credentials)"
                    )
                } else {
                    e.to_string()
                }
            }),
            Transport::File(dir) => write_eml(dir, &email.formatted()),
            Transport::Log => Ok(()),
        }
    }
}

/// One `.eml` file in `dir`, whole or not at all: written under a temporary
/// name, synced, then renamed, so whoever watches the directory never reads
/// half a message, and a message marked sent is on disk.
fn write_eml(dir: &std::path::Path, message: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let name = crate::secrets::new_request_id();
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temp).map_err(fail)?;
    file.write_all(message).and_then(|()| file.sync_all()).map_err(fail)?;
    std::fs::rename(&temp, dir.join(format!("{name}.eml"))).map_err(fail)
}

/// The sign-in email (SPEC-v0.7 7.1): who asks, the code, when it expires,
/// and that ignoring it is safe. Returns (subject, text, html).
pub fn signin_email(resource_name: &str, code: &str, expires_ms: UnixMs) -> (String, String, String) {
    let subject = format!("Your sign-in code for {resource_name}");
    let expires = rfc3339(expires_ms);
    let text = format!(
        "Someone asked to sign in to {resource_name} with this address.\n\n\
         Your code: {code}\n\n\
         It expires at {expires}. Type it on the sign-in page.\n\n\
         If you did not ask to sign in, ignore this email: nothing happens without the code.\n"
    );
    let e = crate::http::pages::escape;
    let html = format!(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;line-height:1.5;color:#1c2430\">\
         <p>Someone asked to sign in to <strong>{name}</strong> with this address.</p>\
         <p>Your code: <strong style=\"font-size:22px;letter-spacing:.15em\">{code}</strong></p>\
         <p style=\"color:#5b6573\">It expires at {expires}. Type it on the sign-in page.</p>\
         <p style=\"color:#5b6573\">If you did not ask to sign in, ignore this email: nothing happens without the code.</p>\
         </body></html>",
        name = e(resource_name),
        code = e(code),
        expires = e(&expires),
    );
    (subject, text, html)
}

/// The claim email (SPEC.md 5.2): who asks, the link, when it expires, the
/// registration, and that ignoring it is safe. Returns (subject, text, html).
pub fn claim_email(
    resource_name: &str,
    link: &str,
    expires_ms: UnixMs,
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
    pub retry_base_secs: u64,
}

/// The outbox sender thread.
pub struct Sender {
    pub transport: Transport,
    pub clock: Arc<dyn Clock>,
    pub policy: Box<dyn Fn() -> Policy + Send>,
    pub stopping: Arc<AtomicBool>,
    /// Bookkeeping writes go through the server's one writer.
    pub writer: Arc<crate::store::Writer>,
    /// A message on it says "look now" (a new message was committed).
    pub wake: Receiver<()>,
}

const IDLE_POLL: Duration = Duration::from_millis(500);

impl Sender {
    pub fn run(self) {
        let mut conn = None;
        while !self.stopping.load(Ordering::SeqCst) {
            if self.writer.shared() {
                self.deliver_claimed();
            } else {
                if conn.is_none() {
                    conn = self.writer.reader().ok();
                }
                if let Some(db) = &mut conn {
                    let _ = db.with(|db| self.deliver_due(db));
                }
            }
            match self.wake.recv_timeout(IDLE_POLL) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(IDLE_POLL),
            }
        }
    }

    /// SQLite: the due messages read on the sender's own connection, each
    /// sent outside any transaction (the one writer is not held while a
    /// mail server answers), then marked through the writer. One sender
    /// per file (the server locks it), so none is taken twice.
    fn deliver_due(&self, conn: &dyn crate::store::Tx) {
        let now_ms = self.clock.now();
        let Ok(due) = conn.due_mail(now_ms, 20) else { return };
        for message in due {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let policy = (self.policy)();
            let result = self.transport.send(&policy.from, &message);
            let now_ms = self.clock.now();
            let outcome = self.writer.write(|tx| mark(tx, &message, &result, &policy, now_ms));
            self.log(&message, &result, outcome);
        }
    }

    /// A database several nodes share: each message is claimed, sent and
    /// marked in one write transaction (`due_mail` there locks it and every
    /// other node's skips it), one message per transaction, so each is sent
    /// by one node. A transaction run again (a deadlock) sends nothing
    /// twice: what was sent is remembered across runs. A commit that fails
    /// after the send leaves the message due: it is sent again, as on
    /// SQLite when the marking fails.
    fn deliver_claimed(&self) {
        let mut sent: Vec<(i64, Result<(), String>)> = Vec::new();
        for _ in 0..20 {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let policy = (self.policy)();
            let mut taken = None;
            let outcome = self.writer.write(|tx| {
                let Some(message) = tx.due_mail(self.clock.now(), 1)?.into_iter().next() else {
                    return Ok(false);
                };
                let result = match sent.iter().find(|(id, _)| *id == message.id) {
                    Some((_, result)) => result.clone(),
                    None => {
                        let result = self.transport.send(&policy.from, &message);
                        sent.push((message.id, result.clone()));
                        result
                    }
                };
                mark(tx, &message, &result, &policy, self.clock.now())?;
                taken = Some((message, result));
                Ok(true)
            });
            match (taken, outcome) {
                (_, Ok(false)) => return,
                (Some((message, result)), outcome) => self.log(&message, &result, outcome.map(|_| ())),
                (None, Err(err)) => {
                    log::error(&format!("outbox: cannot take due mail: {err:?}"), None);
                    return;
                }
                (None, Ok(true)) => return,
            }
        }
    }

    fn log(&self, message: &outbox::Pending, result: &Result<(), String>, outcome: Result<(), crate::error::Error>) {
        match (result, outcome) {
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

/// Records how sending `message` went: sent, to be retried later (the
/// delay doubling), or failed for good (and audited).
fn mark(
    tx: &dyn crate::store::Tx,
    message: &outbox::Pending,
    result: &Result<(), String>,
    policy: &Policy,
    now_ms: crate::time::UnixMs,
) -> Result<(), crate::error::Error> {
    match result {
        Ok(()) => tx.mark_mail_sent(message.id, now_ms)?,
        Err(why) if message.attempts + 1 >= policy.max_attempts => {
            tx.mark_mail_failed(message.id, why, now_ms)?;
            tx.record_event(
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
            tx.mark_mail_retry(message.id, why, now_ms + Duration::from_secs(delay_secs))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(spec: &str) -> Result<Security, String> {
        match Transport::parse(spec)? {
            Transport::Smtp { security, .. } => Ok(security),
            _ => panic!("{spec} is not SMTP"),
        }
    }

    /// Regression for issue 10: `smtp://` used opportunistic TLS, so a
    /// server (or a man in the middle) not offering STARTTLS got the
    /// password and the claim link in clear.
    #[test]
    fn smtp_requires_starttls_unless_plaintext_is_asked_for_by_name() {
        assert_eq!(security("smtp://mail.example:587").unwrap(), Security::StartTls);
        assert_eq!(security("smtp://u:p@mail.example:587").unwrap(), Security::StartTls);
        assert_eq!(security("smtps://u:p@mail.example").unwrap(), Security::Tls);
        assert_eq!(security("smtp://127.0.0.1:2525?tls=none").unwrap(), Security::Plaintext);
        assert_eq!(
            security("smtp://127.0.0.1:2525/?tls=none").unwrap(),
            Security::Plaintext
        );
        assert_eq!(
            Transport::parse("smtp://127.0.0.1:2525?tls=none").unwrap().describe(),
            "smtp://127.0.0.1:2525?tls=none (plaintext)"
        );
    }

    #[test]
    fn credentials_never_go_in_clear_and_errors_never_show_them() {
        for spec in [
            "smtp://user:hunter2@mail.example:25?tls=none",
            "smtps://user:hunter2@mail.example?tls=none",
            "smtp://user:hunter2@mail.example?tls=maybe",
            "smtp://user:hunter2%zz@mail.example",
            "smtp://user:hunter2@",
        ] {
            let err = Transport::parse(spec)
                .err()
                .unwrap_or_else(|| panic!("{spec} accepted"));
            assert!(!err.contains("hunter2"), "{spec}: {err}");
        }
        // A password holding `?` is not mistaken for an option.
        assert_eq!(
            security("smtp://user:a?tls=none@mail.example").unwrap(),
            Security::StartTls
        );
        let shown = Transport::parse("smtp://user:hunter2@mail.example:587")
            .unwrap()
            .describe();
        assert!(!shown.contains("hunter2") && !shown.contains("user"), "{shown}");
    }
}
