//! Secrets and identifiers: how they are made, checked and hashed.
//!
//! Credentials (SPEC.md section 7) are `<prefix><43 base62 chars><6 base62
//! chars of checksum>`: 43 characters drawn uniformly from 62 carry 256 bits,
//! the prefix lets secret scanners recognise them, and the checksum (the
//! first bytes of a SHA-256 of everything before it) refuses a typo or a
//! truncated paste without touching the database. The prefix is not needed to
//! check the checksum, so keys minted under an older prefix keep working after
//! the operator changes it.
//!
//! Secrets are stored only as [`hash`]es and looked up by hash, so no
//! comparison of secret bytes ever happens in the database or here.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use crate::time::UnixMs;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_CHARS: usize = 43; // 43 * log2(62) = 256.1 bits
const CHECKSUM_CHARS: usize = 6;
const ID_CHARS: usize = 25; // 8 characters of time, 17 random (101 bits)
/// 62^8 ms is about 6,900 years: the time prefix never wraps.
const TIME_CHARS: usize = 8;

/// The prefix of claim tokens (SPEC.md 5.6).
pub const CLAIM_TOKEN_PREFIX: &str = "clm_";

/// SHA-256 of a secret, the only form in which a secret is stored.
pub type SecretHash = [u8; 32];

pub fn hash(secret: &str) -> SecretHash {
    digest(&SHA256, secret.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// `count` characters drawn uniformly from the base62 alphabet by the system CSPRNG.
fn random_base62(count: usize) -> String {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(count);
    let mut buf = [0u8; 64];
    while out.len() < count {
        rng.fill(&mut buf).expect("the system CSPRNG is available");
        // 248 = 4 * 62: rejecting bytes above it keeps every character equally likely.
        for &byte in buf.iter().filter(|&&b| b < 248) {
            if out.len() == count {
                break;
            }
            out.push(BASE62[usize::from(byte % 62)] as char);
        }
    }
    out
}

fn checksum(body: &str) -> String {
    let sum = digest(&SHA256, body.as_bytes());
    let mut value = u64::from_be_bytes(sum.as_ref()[..8].try_into().expect("8 bytes"));
    let mut chars = [0u8; CHECKSUM_CHARS];
    for slot in chars.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(chars.to_vec()).expect("base62 is ASCII")
}

/// A fresh credential (API key or access token) with the given prefix.
pub fn new_credential(prefix: &str) -> String {
    let body = format!("{prefix}{}", random_base62(SECRET_CHARS));
    let sum = checksum(&body);
    body + &sum
}

/// True when `token` has the shape of a credential authmd minted and its
/// checksum holds. Cheap; no database.
pub fn credential_checksum_ok(token: &str) -> bool {
    if token.len() <= SECRET_CHARS + CHECKSUM_CHARS || !token.is_ascii() {
        return false;
    }
    let (body, sum) = token.split_at(token.len() - CHECKSUM_CHARS);
    checksum(body) == sum
}

/// A fresh claim attempt token of the current generation (`cvt_` + 256
/// bits; SPEC-v0.7 3 asks for at least 192).
pub fn new_attempt_token() -> String {
    format!("cvt_{}", random_base62(SECRET_CHARS))
}

/// A fresh claim token (`clm_` + 256 bits).
pub fn new_claim_token() -> String {
    format!("{CLAIM_TOKEN_PREFIX}{}", random_base62(SECRET_CHARS))
}

/// A fresh identifier such as `reg_...`: not a secret, but unguessable (101
/// random bits), and time-ordered (it starts with the creation time in
/// milliseconds), so new rows append to the end of their primary-key index
/// instead of landing on a random page: fewer pages touched per insert.
/// `now_ms` is the caller's clock (the request's instant).
pub fn new_id(prefix: &str, now_ms: UnixMs) -> String {
    let millis = u64::try_from(now_ms.millis()).unwrap_or(0);
    let mut time = [0u8; TIME_CHARS];
    let mut value = millis;
    for slot in time.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    let time = std::str::from_utf8(&time).expect("base62 is ASCII");
    format!("{prefix}{time}{}", random_base62(ID_CHARS - TIME_CHARS))
}

/// A random (version 4) UUID, RFC 9562 section 5.4, as lower-case hex.
pub fn new_uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system CSPRNG is available");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A short identifier for one request, for correlating logs and 500s.
pub fn new_request_id() -> String {
    random_base62(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_variant_1() {
        let a = new_uuid_v4();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_ne!(a, new_uuid_v4());
    }

    #[test]
    fn credentials_carry_prefix_entropy_and_a_valid_checksum() {
        let key = new_credential("authmd_sk_");
        assert!(key.starts_with("authmd_sk_"));
        assert_eq!(key.len(), "authmd_sk_".len() + SECRET_CHARS + CHECKSUM_CHARS);
        assert!(key.bytes().skip(10).all(|b| b.is_ascii_alphanumeric()));
        assert!(credential_checksum_ok(&key));
        assert_ne!(key, new_credential("authmd_sk_"));
    }

    #[test]
    fn checksum_refuses_typos_and_truncation() {
        let key = new_credential("authmd_at_");
        let mut typo = key.clone().into_bytes();
        typo[15] = if typo[15] == b'a' { b'b' } else { b'a' };
        assert!(!credential_checksum_ok(&String::from_utf8(typo).unwrap()));
        assert!(!credential_checksum_ok(&key[..key.len() - 1]));
        assert!(!credential_checksum_ok(""));
        assert!(!credential_checksum_ok("authmd_sk_é"));
    }

    #[test]
    fn random_characters_cover_the_alphabet() {
        let sample = random_base62(20_000);
        for c in BASE62 {
            assert!(sample.as_bytes().contains(c), "{} never drawn", *c as char);
        }
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = new_id("reg_", UnixMs::from_millis(1_800_000_000_000));
        let second = new_id("reg_", UnixMs::from_millis(1_800_000_000_001));
        assert!(first < second, "{first} {second}");
        assert_eq!(first.len(), 4 + ID_CHARS);
        assert_ne!(
            new_id("reg_", UnixMs::from_millis(0)),
            new_id("reg_", UnixMs::from_millis(0))
        );
    }

    #[test]
    fn hash_is_sha256() {
        let h = hash("abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
