//! Words for people: the one place a count is given its noun, for the
//! command line, the pages' spans (`time::span_words`) and `/auth.md`'s
//! durations alike.

/// `1 credential`, `2 credentials`: a count with its noun (plural by `s`).
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: "revoked 1 registration and 1 credentials".
    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(0, "credential"), "0 credentials");
        assert_eq!(count(1, "credential"), "1 credential");
        assert_eq!(count(2, "registration"), "2 registrations");
    }
}
