//! `authmd mail test EMAIL [--mail SPEC]`: sends one message through the
//! transport `serve` would use and says what happened, with the server's own
//! words when it refuses.

use lexopt::prelude::*;

use super::serve::DEFAULT_MAIL;
use super::{CliError, Command, Context, print};
use crate::mail::Transport;
use crate::settings::Settings;
use crate::store::outbox;

pub const COMMAND: Command = Command {
    name: "mail",
    uses_db: true,
    synopsis: &["mail test EMAIL [--mail SPEC]"],
    summary: "send a test message through the configured transport",
    details: "\
Sends a test message to EMAIL through --mail (or AUTHMD_MAIL, AUTHMD_MAIL_FILE;
default file:./authmd-outbox), from the `mail_from` setting. SPEC is
smtp://user:pass@host:port (STARTTLS required), smtps://user:pass@host:port,
smtp://host:port?tls=none (plaintext, no credentials), file:DIR or log.
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut words, mut spec) = (Vec::new(), ctx.env.get("AUTHMD_MAIL")?);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("mail") => spec = Some(parser.value()?.string()?),
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(word) => words.push(word.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let [command, address] = &words[..] else {
        return Err(CliError::usage(COMMAND.usage()));
    };
    if command != "test" {
        return Err(CliError::usage(COMMAND.usage()));
    }
    let address = crate::email::normalize(address).map_err(CliError::usage)?;
    let transport = Transport::parse(spec.as_deref().unwrap_or(DEFAULT_MAIL)).map_err(CliError::config)?;
    let conn = ctx.open_db()?;
    let settings = Settings::from_stored(&conn.stored_settings()?).map_err(CliError::config)?;
    let message = outbox::Pending {
        id: 0,
        recipient: address.clone(),
        subject: format!("authmd test message for {}", settings.resource_name),
        body_text: "This is a test message from authmd. Mail delivery works.\n".into(),
        body_html: "<p>This is a test message from authmd. Mail delivery works.</p>".into(),
        registration_id: None,
        attempts: 0,
    };
    transport
        .send(&settings.mail_from, &message)
        .map_err(|why| CliError::failure(format!("sending through {} failed: {why}", transport.describe())))?;
    print(&format!(
        "sent a test message to {address} through {}\n",
        transport.describe()
    ))
}
