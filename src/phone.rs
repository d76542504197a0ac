//! Phone numbers as authmd compares them (SPEC.md 4.4 step 3): E.164, a `+`
//! and 8 to 15 digits, country code first. Providers send numbers as people
//! typed them (`+1 (415) 555-0100`, `+1.415.555.0100`); the separators people
//! use (spaces, dashes, dots, parentheses) are dropped, so each number has
//! one spelling and one user. Anything else is refused rather than guessed:
//! a national number (`0415 555 0100`) means a different line in each
//! country, and no country is assumed.

/// Digits in an E.164 number, country code included.
const DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// The number in E.164 (`+14155550100`), or what is wrong with it. The
/// message does not repeat the number.
pub fn normalize(number: &str) -> Result<String, String> {
    let compact: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let Some(digits) = compact.strip_prefix('+') else {
        return Err("`phone_number` is not in E.164 form: it must start with + and the country code".into());
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("`phone_number` is not in E.164 form: only digits may follow the +".into());
    }
    if !DIGITS.contains(&digits.len()) || digits.starts_with('0') {
        return Err(format!(
            "`phone_number` is not in E.164 form: a country code (not 0) and {} to {} digits in all",
            DIGITS.start(),
            DIGITS.end()
        ));
    }
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    /// Regression for issue 10: numbers were compared as typed, so
    /// `+1 555 0100` and `+15550100` were two users.
    #[test]
    fn the_ways_people_write_a_number_are_one_number() {
        for typed in [
            "+14155550100",
            "+1 415 555 0100",
            "+1 (415) 555-0100",
            "+1.415.555.0100",
            "+1-415-555-0100",
        ] {
            assert_eq!(normalize(typed).unwrap(), "+14155550100", "{typed:?}");
        }
        assert_eq!(normalize("+1 555 0100").unwrap(), normalize("+15550100").unwrap());
        assert_eq!(normalize("+447911123456").unwrap(), "+447911123456");
    }

    #[test]
    fn what_is_not_e164_is_refused() {
        for bad in [
            "",
            "+",
            "4155550100",
            "0415 555 0100",
            "00 1 415 555 0100",
            "+0 415 555 0100",
            "+1 555 01",
            "+1234567890123456",
            "+1 415 555 0100 ext 2",
            "+1\u{a0}415\u{a0}555\u{a0}0100",
            "+1/415/555/0100",
            "+١٤١٥٥٥٥٠١٠٠",
            "++14155550100",
        ] {
            let err = normalize(bad).expect_err(bad);
            assert!(err.contains("E.164"), "{bad:?}: {err}");
            assert!(
                bad.len() < 8 || !err.contains(bad),
                "{bad:?}: the message repeats the number"
            );
        }
    }
}
