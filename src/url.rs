//! The little URL handling authmd needs, without a URL crate: checking the
//! absolute `http(s)` URLs operators configure, and taking them apart.
//!
//! Configured URLs end up in headers (`WWW-Authenticate`) and in HTML, so
//! anything that could break out of a quoted string is refused here, once.

/// An absolute `http://` or `https://` URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub scheme: &'static str,
    /// `host[:port]`, as written.
    pub authority: String,
    /// Starts with `/`; `/` when the URL has no path.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            ("http", rest)
        } else {
            return Err(format!(
                "`{}` is not an absolute http:// or https:// URL",
                shorten(text)
            ));
        };
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '<' | '>' | '`'))
        {
            return Err(format!("a URL may not contain {bad:?}"));
        }
        if text.contains('#') {
            return Err("a URL here may not have a #fragment".into());
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{}` has no usable host", shorten(text)));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(HttpUrl {
            scheme,
            authority: authority.to_string(),
            path,
        })
    }

    /// `scheme://authority`, no trailing slash.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Percent-encodes `text` for a query value: everything but RFC 3986's
/// unreserved characters.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes (for user names and passwords in `--mail` URLs).
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a % escape is cut short")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a % escape is not hexadecimal")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a % escape is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        let text = "/claim?claim_attempt_token=cvt_x&a=b c/é";
        assert_eq!(percent_decode(&percent_encode(text)).unwrap(), text);
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn takes_urls_apart() {
        let url = HttpUrl::parse("https://api.example.com:8443/api/").unwrap();
        assert_eq!(url.scheme, "https");
        assert_eq!(url.authority, "api.example.com:8443");
        assert_eq!(url.path, "/api/");
        assert_eq!(url.origin(), "https://api.example.com:8443");
        assert_eq!(HttpUrl::parse("http://127.0.0.1:9").unwrap().path, "/");
    }

    #[test]
    fn refuses_what_could_break_a_header_or_page() {
        for bad in [
            "ftp://x/",
            "example.com",
            "http://",
            "http://a b/",
            "http://x/\"",
            "http://x/#f",
            "http://u@x/",
            "https://x/\r\n",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
