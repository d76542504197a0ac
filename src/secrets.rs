//! Secrets and identifiers: how they are made, checked and hashed.
//!
//! Credentials (SPEC.md section 7) are `<prefix><8 base62 chars of time><43
//! base62 chars><6 base62 chars of checksum>`: 43 characters drawn uniformly
//! from 62 carry 256 bits, the prefix lets secret scanners recognise them,
//! and the checksum (the first bytes of a SHA-256 of everything before it)
//! refuses a typo or a truncated paste without touching the database. The
//! prefix is not needed to check the checksum, so keys minted under an older
//! prefix keep working after the operator changes it.
//!
//! Secrets are stored only as hashes and looked up by hash, so no
//! comparison of secret bytes ever happens in the database or here. The
//! secrets authmd looks up by their hash (credentials, refresh tokens, claim
//! tokens) carry the millisecond they were made (not secret; the holder
//! knows it anyway), and are stored under [`stored_hash`]: that time, then
//! 24 bytes of the secret's SHA-256. A new row's key then sorts after every
//! older one, so its unique index grows at its end, where a plain hash lands
//! on a random page of an index that outgrows any cache (and each such page
//! is written to the WAL and synced with its batch). **(authmd)** Secrets
//! made before they carried their time stay stored under their plain
//! SHA-256, which [`find_stored`] tries after the timed key.

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

/// A fresh credential (API key, access token or refresh token) with the
/// given prefix, made at `now_ms`.
pub fn new_credential(prefix: &str, now_ms: UnixMs) -> String {
    let body = format!("{prefix}{}{}", time_chars(now_ms), random_base62(SECRET_CHARS));
    let sum = checksum(&body);
    body + &sum
}

/// `now_ms` in [`TIME_CHARS`] base62 characters, most significant first,
/// so that the characters sort as the times do.
fn time_chars(now_ms: UnixMs) -> String {
    let mut value = u64::try_from(now_ms.millis()).unwrap_or(0);
    let mut time = [0u8; TIME_CHARS];
    for slot in time.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(time.to_vec()).expect("base62 is ASCII")
}

/// Where a looked-up secret keeps its time: just before its 43 random
/// characters, which end a claim token and precede a credential's (or a
/// refresh token's) checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Checksummed,
    ClaimToken,
}

/// The millisecond `secret` says it was made, if it has the shape's
/// characters of time where they belong.
fn made_ms(secret: &str, shape: Shape) -> Option<u64> {
    let tail = match shape {
        Shape::Checksummed => SECRET_CHARS + CHECKSUM_CHARS,
        Shape::ClaimToken => SECRET_CHARS,
    };
    let end = secret.len().checked_sub(tail)?;
    let time = secret.get(end.checked_sub(TIME_CHARS)?..end)?;
    time.bytes().try_fold(0u64, |value, c| {
        let digit = BASE62.iter().position(|&b| b == c)? as u64;
        value.checked_mul(62)?.checked_add(digit)
    })
}

/// The key a secret of `shape` is stored under: the time it carries
/// (8 bytes, big-endian), then the first 24 bytes of its SHA-256; the plain
/// SHA-256 for one that carries no time.
pub fn stored_hash(secret: &str, shape: Shape) -> SecretHash {
    stored_key(secret, shape, &hash(secret))
}

/// [`stored_hash`] from the secret's plain SHA-256, computed once.
fn stored_key(secret: &str, shape: Shape, plain: &SecretHash) -> SecretHash {
    let Some(ms) = made_ms(secret, shape) else {
        return *plain;
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&ms.to_be_bytes());
    key[8..].copy_from_slice(&plain[..24]);
    key
}

/// Looks `secret` up with `lookup` under the keys it may be stored under,
/// the likeliest first: its [`stored_hash`], then the plain SHA-256 that a
/// secret made before secrets carried their time is stored under. Returns
/// the key that found it with what was found.
pub fn find_stored<T, E>(
    secret: &str,
    shape: Shape,
    mut lookup: impl FnMut(&SecretHash) -> Result<Option<T>, E>,
) -> Result<Option<(SecretHash, T)>, E> {
    let plain = hash(secret);
    let stored = stored_key(secret, shape, &plain);
    if let Some(found) = lookup(&stored)? {
        return Ok(Some((stored, found)));
    }
    if plain == stored {
        return Ok(None);
    }
    Ok(lookup(&plain)?.map(|found| (plain, found)))
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

/// 43 random base62 characters: 256 bits.
pub fn random_secret() -> String {
    random_base62(SECRET_CHARS)
}

/// A fresh claim token (`clm_`, the time it was made, 256 bits).
pub fn new_claim_token(now_ms: UnixMs) -> String {
    format!(
        "{CLAIM_TOKEN_PREFIX}{}{}",
        time_chars(now_ms),
        random_base62(SECRET_CHARS)
    )
}

/// A fresh identifier such as `reg_...`: not a secret, but unguessable (101
/// random bits), and time-ordered (it starts with the creation time in
/// milliseconds), so new rows append to the end of their primary-key index
/// instead of landing on a random page: fewer pages touched per insert.
/// `now_ms` is the caller's clock (the request's instant).
pub fn new_id(prefix: &str, now_ms: UnixMs) -> String {
    format!("{prefix}{}{}", time_chars(now_ms), random_base62(ID_CHARS - TIME_CHARS))
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
        let key = new_credential("authmd_sk_", UnixMs::from_millis(1_800_000_000_000));
        assert!(key.starts_with("authmd_sk_"));
        assert_eq!(
            key.len(),
            "authmd_sk_".len() + TIME_CHARS + SECRET_CHARS + CHECKSUM_CHARS
        );
        assert!(key.bytes().skip(10).all(|b| b.is_ascii_alphanumeric()));
        assert!(credential_checksum_ok(&key));
        assert_ne!(
            key,
            new_credential("authmd_sk_", UnixMs::from_millis(1_800_000_000_000))
        );
    }

    #[test]
    fn checksum_refuses_typos_and_truncation() {
        let key = new_credential("authmd_at_", UnixMs::from_millis(0));
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

    /// Each new secret's stored key sorts after every older one's (so its
    /// index grows at its end), and is found again from the secret alone.
    #[test]
    fn looked_up_secrets_are_stored_in_the_order_they_were_made() {
        let at = |ms| UnixMs::from_millis(ms);
        for (shape, make) in [
            (
                Shape::Checksummed,
                &(|ms| new_credential("authmd_sk_", at(ms))) as &dyn Fn(i64) -> String,
            ),
            (Shape::Checksummed, &|ms| new_credential("custom", at(ms))),
            (Shape::ClaimToken, &|ms| new_claim_token(at(ms))),
        ] {
            let made: Vec<String> = [1_800_000_000_000, 1_800_000_000_001, 1_800_000_086_400]
                .iter()
                .flat_map(|&ms| [make(ms), make(ms)])
                .collect();
            let keys: Vec<SecretHash> = made.iter().map(|secret| stored_hash(secret, shape)).collect();
            assert!(keys[0] < keys[2] && keys[2] < keys[4], "{shape:?}");
            assert!(keys[1] < keys[2] && keys[3] < keys[4], "{shape:?}");
            assert_eq!(keys[0][..8], 1_800_000_000_000u64.to_be_bytes());
            assert_eq!(keys[0][8..], hash(&made[0])[..24], "then the secret's SHA-256");
            assert_ne!(keys[0], keys[1], "two secrets of one millisecond differ");
            let stored = std::collections::HashMap::from([(keys[2], "found")]);
            let found = find_stored(&made[2], shape, |key| Ok::<_, ()>(stored.get(key).copied()));
            assert_eq!(found, Ok(Some((keys[2], "found"))));
        }
    }

    /// A secret made before secrets carried their time, stored under its
    /// plain SHA-256, is still found; whatever its characters look like.
    #[test]
    fn secrets_made_before_they_carried_their_time_are_found_by_their_plain_hash() {
        let legacy = [
            format!("authmd_sk_{}", random_base62(SECRET_CHARS)),
            format!("skABCDEFGH{}", random_base62(SECRET_CHARS)),
        ]
        .map(|body| {
            let sum = checksum(&body);
            body + &sum
        });
        for secret in legacy.iter().chain([&format!("clm_{}", random_base62(SECRET_CHARS))]) {
            let shape = if secret.starts_with("clm_") {
                Shape::ClaimToken
            } else {
                Shape::Checksummed
            };
            let stored = std::collections::HashMap::from([(hash(secret), "found")]);
            let mut probes = 0;
            let found = find_stored(secret, shape, |key| {
                probes += 1;
                Ok::<_, ()>(stored.get(key).copied())
            });
            assert_eq!(found, Ok(Some((hash(secret), "found"))), "{secret}");
            assert!(probes <= 2);
        }
        let unknown = new_credential("authmd_sk_", UnixMs::from_millis(5));
        assert_eq!(
            find_stored(&unknown, Shape::Checksummed, |_| Ok::<Option<()>, ()>(None)),
            Ok(None)
        );
    }

    #[test]
    fn hash_is_sha256() {
        let h = hash("abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
