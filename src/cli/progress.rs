//! A progress line for long commands (`migrate`, `backup`): on a terminal
//! one line rewritten in place (`\r`), elsewhere nothing until a step is
//! done, which [`Line::finish`] prints as a plain line, so a log keeps one
//! line per table or file instead of a stream of carriage returns. A line
//! on stderr ([`Line::on_stderr`], `backup`'s) is drawn only on a terminal
//! and leaves stdout to the command's result.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a terminal's line is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub struct Line {
    terminal: bool,
    /// Drawn on stderr (and only on a terminal), not stdout.
    stderr: bool,
    drawn: Option<Instant>,
    width: usize,
}

impl Line {
    /// `quiet`: nothing at all (`--json` output owns stdout).
    pub fn new(quiet: bool) -> Line {
        Line {
            terminal: !quiet && std::io::stdout().is_terminal(),
            stderr: false,
            drawn: None,
            width: 0,
        }
    }

    /// On stderr, when it is a terminal; otherwise nothing at all.
    pub fn on_stderr() -> Line {
        Line {
            terminal: std::io::stderr().is_terminal(),
            stderr: true,
            drawn: None,
            width: 0,
        }
    }

    /// Redraws the line (on a terminal, at most every [`REDRAW_EVERY`]).
    pub fn update(&mut self, text: &str) {
        if !self.terminal || self.drawn.is_some_and(|at| at.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        self.draw(text, false);
    }

    /// The step's last state, as the line that stays (not when quiet).
    pub fn finish(&mut self, text: &str, quiet: bool) {
        if quiet {
            return;
        }
        if self.terminal {
            self.draw(text, true);
        } else if !self.stderr {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
        self.drawn = None;
        self.width = 0;
    }

    fn draw(&mut self, text: &str, end: bool) {
        let pad = self.width.saturating_sub(text.len());
        self.width = text.len();
        let line = format!("\r{text}{}{}", " ".repeat(pad), if end { "\n" } else { "" });
        if self.stderr {
            let mut out = std::io::stderr().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}
