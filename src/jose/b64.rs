//! Strict base64url (RFC 7515 section 2): the URL-safe alphabet, no padding,
//! no whitespace, and canonical trailing bits, so each byte string has
//! exactly one accepted encoding.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    // The engine refuses padding, `+` `/`, whitespace and non-zero trailing bits.
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn only_the_canonical_encoding_is_accepted() {
        assert_eq!(decode("Zm9v").unwrap(), b"foo");
        assert_eq!(decode("Zm8").unwrap(), b"fo");
        assert_eq!(decode("").unwrap(), b"");
        for bad in ["Zm8=", "Zm9", "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n", "Zm8==", "Z"] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
        // `Zm9` carries non-zero bits past the last byte; `Zm8` is the canonical form.
        assert!(decode("Zm9").is_none());
    }
}
