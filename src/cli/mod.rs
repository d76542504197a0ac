//! The command line (DESIGN.md "Command line"): global options, environment
//! variables, and dispatch to one file per command. Each command file holds
//! its `COMMAND` (name, usage synopsis, help, `run`) and its arguments; the
//! top-level usage and the dispatch are built from the table [`COMMANDS`].
//!
//! Exit statuses: 0 success, 1 failure, 2 usage error, 78 (EX_CONFIG) bad
//! configuration, so a service manager stops restarting.

mod audit;
mod backup;
mod config;
mod healthcheck;
mod keys;
mod mail;
mod migrate;
mod progress;
mod provider;
mod registrations;
mod revoke;
mod serve;
mod sessions;
mod users;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;

use lexopt::prelude::*;

pub const EX_USAGE: u8 = 2;
pub const EX_CONFIG: u8 = 78;

/// One command: its usage synopsis (the forms after `authmd`, defined once,
/// for its own `--help` and the top-level usage alike), its help and `run`.
pub struct Command {
    pub name: &'static str,
    /// Whether it takes the global `--db PATH`.
    pub uses_db: bool,
    pub synopsis: &'static [&'static str],
    /// One line for the top-level usage.
    pub summary: &'static str,
    /// What `authmd COMMAND --help` prints below the synopsis.
    pub details: &'static str,
    pub run: fn(&mut lexopt::Parser, &Context) -> Result<(), CliError>,
}

impl Command {
    /// `authmd COMMAND --help`.
    pub fn usage(&self) -> String {
        let program = if self.uses_db { "authmd [--db PATH]" } else { "authmd" };
        let mut text = String::new();
        for (i, form) in self.synopsis.iter().enumerate() {
            let lead = if i == 0 { "usage:" } else { "      " };
            text.push_str(&format!("{lead} {program} {form}\n"));
        }
        if !self.details.is_empty() {
            text.push('\n');
            text.push_str(self.details);
        }
        text
    }
}

/// Every command, in the order the top-level usage lists them.
const COMMANDS: [&Command; 13] = [
    &serve::COMMAND,
    &healthcheck::COMMAND,
    &config::COMMAND,
    &registrations::COMMAND,
    &audit::COMMAND,
    &revoke::COMMAND,
    &provider::COMMAND,
    &users::COMMAND,
    &mail::COMMAND,
    &keys::COMMAND,
    &sessions::COMMAND,
    &backup::COMMAND,
    &migrate::COMMAND,
];

/// `authmd --help`: built from [`COMMANDS`], so it cannot drift from theirs.
fn usage() -> String {
    let mut text = String::from(
        "authmd: the service side of the auth.md agent-registration protocol\n\n\
         usage: authmd [--db PATH] COMMAND [OPTIONS]\n\ncommands:\n",
    );
    for command in COMMANDS {
        for form in command.synopsis {
            text.push_str(&format!("  {form}\n"));
        }
        text.push_str(&format!("      {}\n", command.summary));
    }
    text.push_str(
        "\nglobal options:
  --db PATH        the database file (env AUTHMD_DB, default ./authmd.db), or a
                   postgres:// URL (AUTHMD_DB_FILE: a file holding it, password included)
  -h, --help       this text; `authmd COMMAND --help` for a command's own
  -V, --version    print the version

Any variable may be given as NAME_FILE instead, naming a file that holds the value.
",
    );
    text
}

#[derive(Debug)]
pub struct CliError {
    pub status: u8,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            status: EX_USAGE,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> CliError {
        CliError {
            status: EX_CONFIG,
            message: message.into(),
        }
    }

    pub fn failure(message: impl Into<String>) -> CliError {
        CliError {
            status: 1,
            message: message.into(),
        }
    }

    /// Quiet exit with a status (the command already said what it had to).
    pub fn silent(status: u8) -> CliError {
        CliError {
            status,
            message: String::new(),
        }
    }
}

impl From<lexopt::Error> for CliError {
    fn from(err: lexopt::Error) -> CliError {
        CliError::usage(format!("{err} (see --help)"))
    }
}

impl From<crate::error::Error> for CliError {
    fn from(err: crate::error::Error) -> CliError {
        match err {
            crate::error::Error::Internal(detail) => CliError::failure(detail),
            other => CliError::failure(other.to_string()),
        }
    }
}

impl From<crate::store::Error> for CliError {
    fn from(err: crate::store::Error) -> CliError {
        crate::error::Error::from(err).into()
    }
}

impl From<crate::store::OpenError> for CliError {
    fn from(err: crate::store::OpenError) -> CliError {
        CliError::config(err.0)
    }
}

/// Environment variables authmd reads; each may also come as `<NAME>_FILE`.
const KNOWN_VARIABLES: &[&str] = &[
    "AUTHMD_DB",
    "AUTHMD_LISTEN",
    "AUTHMD_BASE_URL",
    "AUTHMD_MAIL",
    "AUTHMD_TRUST_PROXY",
    "AUTHMD_ALLOW_LOOPBACK_FETCH",
    "AUTHMD_UPSTREAM",
    "AUTHMD_WORKERS",
    "AUTHMD_LOG_FORMAT",
    "AUTHMD_MAX_CONNECTIONS",
    "AUTHMD_HEADER_TIMEOUT_SECS",
    "AUTHMD_BODY_TIMEOUT_SECS",
    "AUTHMD_IDLE_TIMEOUT_SECS",
];

/// The `AUTHMD_*` environment, read once.
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    pub fn from_process() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("AUTHMD_"))
            .collect();
        Env { vars }
    }

    /// Variables that look like ours but are not: likely typos.
    pub fn unknown(&self) -> Vec<&str> {
        self.vars
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_VARIABLES.contains(&k.strip_suffix("_FILE").unwrap_or(k)))
            .collect()
    }

    /// `NAME`, or the contents of the file named by `NAME_FILE` (one trailing
    /// newline dropped). Both at once is a configuration error.
    pub fn get(&self, name: &str) -> Result<Option<String>, CliError> {
        let file_var = format!("{name}_FILE");
        match (self.vars.get(name), self.vars.get(&file_var)) {
            (Some(_), Some(_)) => Err(CliError::config(format!("set {name} or {file_var}, not both"))),
            (Some(value), None) => Ok(Some(value.clone())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::config(format!("{file_var}: cannot read {path}: {e}")))?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Ok(Some(text.strip_suffix('\r').unwrap_or(text).to_string()))
            }
            (None, None) => Ok(None),
        }
    }
}

/// A true/false environment variable (unset: false).
pub fn env_flag(ctx: &Context, name: &str) -> Result<bool, CliError> {
    match ctx.env.get(name)?.as_deref() {
        None | Some("" | "false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(CliError::config(format!("{name} must be true or false, not `{other}`"))),
    }
}

/// What every command gets.
pub struct Context {
    /// `--db`: a SQLite file or a PostgreSQL URL.
    pub db: crate::store::Target,
    pub env: Env,
}

impl Context {
    /// Opens and migrates an existing database. A SQLite file that does not
    /// exist is refused (EX_CONFIG) rather than created: a mistyped `--db`
    /// would otherwise answer from a new, empty database. Only `serve`
    /// creates one.
    pub fn open_db(&self) -> Result<crate::store::Db, CliError> {
        self.check_db_exists()?;
        Ok(crate::store::Db::open(&self.db)?)
    }

    /// Refuses a `--db` file that does not exist (PostgreSQL URLs pass).
    pub fn check_db_exists(&self) -> Result<(), CliError> {
        match &self.db {
            crate::store::Target::Sqlite(path) if !path.exists() => Err(CliError::config(format!(
                "no database at {}: check --db (or AUTHMD_DB); `authmd serve` creates a new one",
                path.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// Runs the command line `args` (without the program name).
pub fn run(args: Vec<OsString>) -> Result<(), CliError> {
    let env = Env::from_process();
    for name in env.unknown() {
        eprintln!("authmd: warning: ignoring unknown environment variable {name}");
    }
    let mut parser = lexopt::Parser::from_args(args);
    let mut db = env.get("AUTHMD_DB")?;
    let command = loop {
        match parser.next()? {
            Some(Long("db")) => db = Some(parser.value()?.string()?),
            Some(Short('h') | Long("help")) => return print(&usage()),
            Some(Short('V') | Long("version")) => return print(&format!("authmd {}\n", env!("CARGO_PKG_VERSION"))),
            Some(Value(command)) => break command.string()?,
            Some(other) => return Err(other.unexpected().into()),
            None => return Err(CliError::usage(format!("a command is needed\n\n{}", usage()))),
        }
    };
    let ctx = Context {
        db: crate::store::Target::parse(db.as_deref().unwrap_or("./authmd.db")),
        env,
    };
    match COMMANDS.iter().find(|c| c.name == command) {
        Some(found) => (found.run)(&mut parser, &ctx),
        None => Err(CliError::usage(format!("unknown command `{command}`\n\n{}", usage()))),
    }
}

/// Writes to stdout; a closed pipe (`authmd audit | head`) is not an error.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::silent(0)),
        Err(e) => Err(CliError::failure(format!("cannot write output: {e}"))),
        Ok(()) => Ok(()),
    }
}

/// Prints one line per item.
pub fn print_lines(lines: impl IntoIterator<Item = String>) -> Result<(), CliError> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression for issue 11: the top-level usage listed two of `revoke`'s
    /// five forms. Each command's synopsis appears in it, and in its own.
    #[test]
    fn the_top_level_usage_holds_every_commands_synopsis() {
        let top = usage();
        for command in COMMANDS {
            assert!(!command.synopsis.is_empty(), "{}", command.name);
            for form in command.synopsis {
                assert!(form.starts_with(command.name), "{form}");
                assert!(top.contains(&format!("  {form}\n")), "`{form}` is missing from:\n{top}");
                assert!(command.usage().contains(form), "{form}");
            }
        }
    }
}
