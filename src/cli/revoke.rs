//! `authmd revoke (--registration ID | --user ID | --issuer ISS [--subject SUB] | --all)`:
//! operator revocation. Each registration affected records one
//! `registration.revoked` with `by: operator`; the counts are printed.

use lexopt::prelude::*;

use super::{CliError, Command, Context, print};
use crate::core::revoke::{self, RevokedBy};
use crate::store::registrations::Selection;
use crate::time::{Clock, SystemClock};

pub const COMMAND: Command = Command {
    name: "revoke",
    uses_db: true,
    synopsis: &[
        "revoke --registration ID",
        "revoke --user ID",
        "revoke --issuer ISS [--subject SUB]",
        "revoke --all",
    ],
    summary: "revoke registrations and their credentials",
    details: "\
Revokes the registrations and every credential issued to them, at once.
--issuer revokes every delegation from that provider (or one of its subjects).
ID-JAGs issued before the revocation (by more than clock_skew_secs, as the
provider's clock may differ from this one) are refused; a fresh one from a
provider still on the trust list registers again (`authmd provider remove
ISS` stops those).
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut registration, mut user, mut issuer, mut subject, mut all) = (None, None, None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("registration") => registration = Some(parser.value()?.string()?),
            Long("user") => user = Some(parser.value()?.string()?),
            Long("issuer") => issuer = Some(parser.value()?.string()?),
            Long("subject") => subject = Some(parser.value()?.string()?),
            Long("all") => all = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            other => return Err(other.unexpected().into()),
        }
    }
    let targets = [registration.is_some(), user.is_some(), issuer.is_some(), all]
        .iter()
        .filter(|t| **t)
        .count();
    if targets != 1 || (subject.is_some() && issuer.is_none()) {
        return Err(CliError::usage(format!(
            "give exactly one target\n\n{}",
            COMMAND.usage()
        )));
    }
    let mut conn = ctx.open_db()?;
    let now_ms = SystemClock.now();
    if let Some(id) = registration {
        let revoked = conn.write(|tx| {
            let Some(found) = tx.registration(&id)? else {
                return Ok(Err(format!("no registration {id}")));
            };
            match revoke::revoke_one(tx, &id, &RevokedBy::OPERATOR, now_ms)? {
                Some(credentials) => Ok(Ok(credentials)),
                None => Ok(Err(format!(
                    "registration {id} is already {}; nothing to revoke",
                    found.status
                ))),
            }
        })?;
        let credentials = revoked.map_err(CliError::failure)?;
        return print(&format!(
            "revoked 1 registration ({id}) and {credentials} credentials\n"
        ));
    }
    let selection = match (&user, &issuer) {
        (Some(id), _) => {
            if conn.user(id)?.is_none() {
                return Err(CliError::failure(format!("no user {id}")));
            }
            Selection::User(id)
        }
        (_, Some(iss)) => Selection::Issuer {
            iss,
            sub: subject.as_deref(),
        },
        _ => Selection::All,
    };
    let revoked = conn.write(|tx| revoke::revoke(tx, selection, "operator", now_ms))?;
    print(&format!(
        "revoked {} registrations and {} credentials\n",
        revoked.registrations, revoked.credentials
    ))
}
