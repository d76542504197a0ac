//! Email addresses as authmd accepts them: a pragmatic subset of RFC 5322
//! that mail servers deliver to, compared case-insensitively (SPEC.md 4.4).

/// Checks an address and returns it lower-cased, or says what is wrong.
pub fn normalize(address: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("`email` is not a usable address: {why}"));
    if address.len() > 254 {
        return bad("longer than 254 characters");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("no @");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the part before @ must be 1 to 64 characters");
    }
    let local_ok = local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return bad("unexpected characters before @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !domain_ok && domain != "localhost" {
        return bad("the domain after @ is not a host name such as example.com");
    }
    Ok(address.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepts_ordinary_addresses_lower_cased() {
        assert_eq!(
            normalize("Alice.Smith+agents@Example.COM").unwrap(),
            "alice.smith+agents@example.com"
        );
        assert!(normalize("bob@localhost").is_ok());
    }

    #[test]
    fn refuses_what_mail_would_not_deliver() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            ".a@example.com",
            "a..b@example.com",
            "alice@-x.com",
            "alice@exa mple.com",
            "alice@example.com\r\nBcc: x@y.z",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
