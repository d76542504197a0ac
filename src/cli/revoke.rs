//! `authmd revoke (--registration ID | --user ID|EMAIL | --issuer ISS [--subject SUB] | --all) [--yes]`:
//! operator revocation. Each registration affected records one
//! `registration.revoked` with `by: operator`; the counts are printed.
//!
//! A revocation of more than one registration (and `--all`, always) is
//! confirmed first (issue 15): on a terminal by asking, elsewhere only by
//! `--yes`. The counts shown come from the same revocation run once and
//! rolled back, so the question names exactly what the selection means;
//! nothing is held open while the person answers.

use std::io::{BufRead, IsTerminal, Write};

use lexopt::prelude::*;

use super::{CliError, Command, Context, EX_USAGE, print};
use crate::core::revoke::{self, Revoked, RevokedBy};
use crate::error::Error;
use crate::store::registrations::Selection;
use crate::time::{Clock, SystemClock};
use crate::words::count;

/// Exit status when nothing matched (nothing was revoked), so a script can
/// tell a typo from a failure.
pub const EX_NO_MATCH: u8 = 3;

pub const COMMAND: Command = Command {
    name: "revoke",
    uses_db: true,
    synopsis: &[
        "revoke --registration ID",
        "revoke --user ID|EMAIL [--yes]",
        "revoke --issuer ISS [--subject SUB] [--yes]",
        "revoke --all [--yes]",
    ],
    summary: "revoke registrations and their credentials",
    details: "\
Revokes the registrations and every credential issued to them, at once.
--user takes a user id (usr_...) or an email address (any case).
--issuer revokes every delegation from that provider (or one of its subjects).
ID-JAGs issued before the revocation (by more than clock_skew_secs, as the
provider's clock may differ from this one) are refused; a fresh one from a
provider still on the trust list registers again (`authmd provider remove
ISS` stops those).

--all, and any revocation of more than one registration, asks first on a
terminal, showing how many registrations and credentials it revokes;
without a terminal it is refused unless --yes (-y) is given.

Exit status: 0 revoked; 1 declined at the question, or a failure; 2 a usage
error, or confirmation needed without a terminal (--yes); 3 nothing matched
(no such registration or user, or no live registration in the selection):
nothing was revoked.
",
    run,
};

/// The dry run's way out of its transaction (never shown).
const DRY_RUN: &str = "revoke: counting only";

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut registration, mut user, mut issuer, mut subject, mut all, mut yes) =
        (None, None, None, None, false, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("registration") => registration = Some(parser.value()?.string()?),
            Long("user") => user = Some(parser.value()?.string()?),
            Long("issuer") => issuer = Some(parser.value()?.string()?),
            Long("subject") => subject = Some(parser.value()?.string()?),
            Long("all") => all = true,
            Long("yes") | Short('y') => yes = true,
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
                return Ok(Err(format!("no registration matches --registration {id}")));
            };
            match revoke::revoke_one(tx, &id, &RevokedBy::OPERATOR, now_ms)? {
                Some(credentials) => Ok(Ok(credentials)),
                None => Ok(Err(format!(
                    "registration {id} is already {}; nothing to revoke",
                    found.status
                ))),
            }
        })?;
        let credentials = revoked.map_err(no_match)?;
        return print(&format!(
            "revoked 1 registration ({id}) and {}\n",
            count(credentials as u64, "credential")
        ));
    }
    let user_id = match &user {
        Some(given) => Some(user_id(&conn, given)?),
        None => None,
    };
    let (selection, described) = match (&user_id, &issuer) {
        (Some(id), _) => (Selection::User(id), format!("--user {}", user.as_deref().unwrap_or(id))),
        (_, Some(iss)) => (
            Selection::Issuer {
                iss,
                sub: subject.as_deref(),
            },
            match &subject {
                Some(sub) => format!("--issuer {iss} --subject {sub}"),
                None => format!("--issuer {iss}"),
            },
        ),
        _ => (Selection::All, "--all".to_string()),
    };
    let mut would = Revoked::default();
    match conn.write(|tx| {
        would = revoke::revoke(tx, selection, "operator", now_ms)?;
        Err::<(), _>(Error::Internal(DRY_RUN.into()))
    }) {
        Err(Error::Internal(why)) if why == DRY_RUN => {}
        Err(other) => return Err(other.into()),
        Ok(()) => unreachable!("the dry run never commits"),
    }
    if would.registrations == 0 {
        return Err(no_match(format!(
            "no live registration matches {described}; nothing revoked"
        )));
    }
    if (all || would.registrations > 1) && !yes {
        confirm(&format!(
            "revoke {} and {} ({described})?",
            count(would.registrations as u64, "registration"),
            count(would.credentials as u64, "credential"),
        ))?;
    }
    let revoked = conn.write(|tx| revoke::revoke(tx, selection, "operator", now_ms))?;
    print(&format!(
        "revoked {} and {}\n",
        count(revoked.registrations as u64, "registration"),
        count(revoked.credentials as u64, "credential"),
    ))
}

fn no_match(message: String) -> CliError {
    CliError {
        status: EX_NO_MATCH,
        message,
    }
}

/// `--user`'s value: a user id, or an email address matched as the store
/// matches them (case-insensitively).
fn user_id(conn: &crate::store::Db, given: &str) -> Result<String, CliError> {
    let found = match conn.user(given)? {
        Some(user) => Some(user),
        None if given.contains('@') => conn.user_by_email(given)?,
        None => None,
    };
    found
        .map(|user| user.id)
        .ok_or_else(|| no_match(format!("no user matches --user {given}; nothing revoked")))
}

/// Asks `question` on a terminal (stdin one, the question on stderr); `y`
/// or `yes` goes on. Without a terminal, refuses: `--yes` says it instead.
fn confirm(question: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError {
            status: EX_USAGE,
            message: format!(
                "this would {}; nothing revoked: confirm on a terminal, or pass --yes",
                question.trim_end_matches('?')
            ),
        });
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::failure(format!("cannot read the answer: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::failure("not confirmed; nothing revoked")),
    }
}
