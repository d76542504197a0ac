//! Lines on stderr: the access log (one line per request) and the server's
//! own messages, as text or as one JSON object per line (`--log-format json`).
//!
//! Callers pass only facts that are safe to print: paths without query
//! strings, ids, counts, reasons. No function here takes a secret.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::time::{Clock, SystemClock, rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

static FORMAT: OnceLock<Format> = OnceLock::new();

/// Chooses the format for the life of the process (first call wins).
pub fn init(format: Format) {
    let _ = FORMAT.set(format);
}

fn format() -> Format {
    *FORMAT.get().unwrap_or(&Format::Text)
}

fn emit(level: &str, message: &str, fields: Map<String, Value>) {
    let now = rfc3339(SystemClock.now());
    let line = match format() {
        Format::Json => {
            let mut object = Map::new();
            object.insert("time".into(), json!(now));
            object.insert("level".into(), json!(level));
            object.insert("msg".into(), json!(message));
            object.extend(fields);
            json_printable(&Value::Object(object).to_string())
        }
        Format::Text => {
            let mut line = format!("{now} {level} {}", printable(message));
            for (key, value) in fields {
                match value {
                    Value::String(text) => line += &format!(" {key}={}", text_value(&text)),
                    other => line += &format!(" {key}={other}"),
                }
            }
            line
        }
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// A field value for a text line: bare when it is plainly one token, else
/// quoted with every non-printable character escaped (`\n`, `\r`,
/// `\u{1b}`), so a request path can neither end the line nor drive the
/// terminal the log is read on.
fn text_value(text: &str) -> String {
    let bare = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '='));
    if bare { text.to_string() } else { format!("{text:?}") }
}

/// Free text (a message): printable characters as they are, the rest
/// escaped, so an SMTP server's multi-line answer stays on one line.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\'' | '\\') || c.escape_debug().len() == 1 {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    out
}

/// A JSON line with what the encoder leaves raw (DEL, C1 controls, line and
/// paragraph separators, bidirectional overrides) written as `\uXXXX`.
/// They can only occur inside strings, where the escape means the same.
fn json_printable(line: &str) -> String {
    let raw = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !line.chars().any(raw) {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if raw(c) {
            out += &format!("\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

pub fn info(message: &str) {
    emit("info", message, Map::new());
}

pub fn warn(message: &str) {
    emit("warn", message, Map::new());
}

pub fn error(message: &str, request_id: Option<&str>) {
    let mut fields = Map::new();
    if let Some(id) = request_id {
        fields.insert("request_id".into(), json!(id));
    }
    emit("error", message, fields);
}

/// What the access log says of one request.
pub struct Access<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// Without the query string, which may carry a token.
    pub path: &'a str,
    pub status: u16,
    pub duration_us: u128,
    pub client_ip: Option<&'a str>,
    /// The precise reason of a refusal, when there was one (never a secret).
    pub reason: Option<&'a str>,
}

pub fn access(entry: &Access<'_>) {
    let mut fields = Map::new();
    fields.insert("request_id".into(), json!(entry.request_id));
    fields.insert("method".into(), json!(entry.method));
    fields.insert("path".into(), json!(entry.path));
    fields.insert("status".into(), json!(entry.status));
    fields.insert(
        "duration_ms".into(),
        json!((entry.duration_us as f64 / 1000.0 * 1000.0).round() / 1000.0),
    );
    fields.insert("client_ip".into(), json!(entry.client_ip.unwrap_or("-")));
    if let Some(reason) = entry.reason {
        fields.insert("reason".into(), json!(reason));
    }
    emit("access", "request", fields);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression for issue 10: only values with spaces were quoted, so a
    /// bare LF, CR or ESC in a request path forged log lines.
    #[test]
    fn text_values_and_messages_never_carry_a_control_character() {
        assert_eq!(text_value("/agent/auth"), "/agent/auth");
        assert_eq!(text_value("a b"), "\"a b\"");
        assert_eq!(text_value(""), "\"\"");
        assert_eq!(
            text_value("/x\n2026-01-01T00:00:00.000Z access request status=200"),
            "\"/x\\n2026-01-01T00:00:00.000Z access request status=200\""
        );
        assert_eq!(text_value("/x\r\u{1b}[2J"), "\"/x\\r\\u{1b}[2J\"");
        assert_eq!(text_value("/x\u{202e}"), "\"/x\\u{202e}\"", "bidi override");
        assert_eq!(text_value("a=b"), "\"a=b\"");
        assert_eq!(text_value("/caf\u{e9}"), "\"/caf\u{e9}\"", "printable, quoted");
        assert_eq!(
            printable("550 no\r\nsuch user \u{1b}[0m"),
            "550 no\\r\\nsuch user \\u{1b}[0m"
        );
        assert_eq!(printable("say \"hi\" it's"), "say \"hi\" it's");
    }

    #[test]
    fn json_lines_escape_what_the_encoder_leaves_raw() {
        let line = json!({ "path": "/x\u{7f}\u{9b}2J\u{2028}\u{202e}\n" }).to_string();
        let escaped = json_printable(&line);
        assert_eq!(escaped, r#"{"path":"/x\u007f\u009b2J\u2028\u202e\n"}"#);
        let back: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["path"], "/x\u{7f}\u{9b}2J\u{2028}\u{202e}\n");
    }
}
