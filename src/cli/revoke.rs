//! `authmd revoke (--registration ID | --all)`: operator revocation. Each
//! registration affected records one `registration.revoked` with `by: operator`.

use lexopt::prelude::*;

use super::{CliError, Context, print};
use crate::store::{self, registrations};
use crate::time::{Clock, SystemClock};

const USAGE: &str = "\
usage: authmd [--db PATH] revoke --registration ID
       authmd [--db PATH] revoke --all

Revokes the registration(s) and every credential issued to them, at once.
";

enum Target {
    Registration(String),
    All,
}

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let mut target = None;
    while let Some(arg) = parser.next()? {
        let next = match arg {
            Long("registration") => Target::Registration(parser.value()?.string()?),
            Long("all") => Target::All,
            Short('h') | Long("help") => return print(USAGE),
            other => return Err(other.unexpected().into()),
        };
        if target.replace(next).is_some() {
            return Err(CliError::usage(format!("give one target\n\n{USAGE}")));
        }
    }
    let target = target.ok_or_else(|| CliError::usage(USAGE))?;
    let mut conn = ctx.open_db()?;
    let now_ms = SystemClock.now_ms();
    match target {
        Target::Registration(id) => {
            let revoked = store::write(&mut conn, |tx| {
                let Some(found) = registrations::by_id(tx, &id)? else {
                    return Ok(Err(format!("no registration {id}")));
                };
                if registrations::revoke(tx, &id, &registrations::RevokedBy::OPERATOR, now_ms)?.is_none() {
                    return Ok(Err(format!(
                        "registration {id} is already {}; nothing to revoke",
                        found.status
                    )));
                }
                Ok(Ok(()))
            })?;
            revoked.map_err(CliError::failure)?;
            print(&format!("revoked 1 registration ({id})\n"))
        }
        Target::All => {
            let count = store::write(&mut conn, |tx| registrations::revoke_all(tx, "operator", now_ms))?;
            print(&format!("revoked {count} registrations\n"))
        }
    }
}
