//! Time as authmd sees it: a [`Clock`] passed into every flow, so each rule
//! that depends on "now" can be tested at a chosen instant, and the one wire
//! format of SPEC.md section 10 (RFC 3339 UTC with milliseconds).
//!
//! Instants are [`UnixMs`] (this server's clock, Unix milliseconds: database
//! columns end in `_ms`) or, in JWT claims, [`UnixSecs`] (NumericDate, Unix
//! seconds, often another party's clock). Each converts to the other only
//! through the named conversions here, and moves only by a [`Duration`], so
//! no instant is multiplied or divided by 1000 anywhere else; the raw `i64`
//! comes out only for storage and the wire. Intervals that only this process measures
//! (cache freshness, refetch limits) use a [`Ticker`] instead: monotonic, so
//! a wall clock that jumps backward cannot stretch them. No calendar crate:
//! the civil-date conversion below is Howard Hinnant's `days_from_civil` and
//! its inverse, exact for the proleptic Gregorian calendar.

use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::words::count;

/// An instant on this server's wall clock: milliseconds since the Unix
/// epoch (negative before it). Arithmetic saturates instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMs(i64);

/// A JWT NumericDate (RFC 7519 section 2): seconds since the Unix epoch.
/// Arithmetic saturates instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixSecs(i64);

/// `count` moved later (or earlier) by `by` units, saturating at the ends of `i64`.
fn shifted(count: i64, by: u128, later: bool) -> i64 {
    let by = i128::try_from(by).unwrap_or(i128::MAX);
    let moved = if later {
        i128::from(count).saturating_add(by)
    } else {
        i128::from(count).saturating_sub(by)
    };
    i64::try_from(moved).unwrap_or(if later { i64::MAX } else { i64::MIN })
}

impl UnixMs {
    pub const fn from_millis(millis: i64) -> UnixMs {
        UnixMs(millis)
    }

    /// The raw count, for storage and the wire only.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The second this instant falls in (rounded toward the past, also
    /// before the epoch): what a NumericDate says of it.
    pub const fn secs_floor(self) -> UnixSecs {
        UnixSecs(self.0.div_euclid(1000))
    }

    /// How long after `earlier` this is; zero when it is not after it
    /// (as `std::time::Instant::saturating_duration_since`).
    pub fn saturating_since(self, earlier: UnixMs) -> Duration {
        let millis = i128::from(self.0) - i128::from(earlier.0);
        Duration::from_millis(u64::try_from(millis.max(0)).unwrap_or(u64::MAX))
    }
}

impl UnixSecs {
    pub const fn new(secs: i64) -> UnixSecs {
        UnixSecs(secs)
    }

    /// The raw count, for storage and the wire only.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn saturating_since(self, earlier: UnixSecs) -> Duration {
        let secs = i128::from(self.0) - i128::from(earlier.0);
        Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(u64::MAX))
    }
}

/// The start of the second, in milliseconds (saturating far from the epoch).
impl From<UnixSecs> for UnixMs {
    fn from(secs: UnixSecs) -> UnixMs {
        UnixMs(secs.0.saturating_mul(1000))
    }
}

/// Later by the duration's whole milliseconds.
impl Add<Duration> for UnixMs {
    type Output = UnixMs;

    fn add(self, by: Duration) -> UnixMs {
        UnixMs(shifted(self.0, by.as_millis(), true))
    }
}

/// Earlier by the duration's whole milliseconds.
impl Sub<Duration> for UnixMs {
    type Output = UnixMs;

    fn sub(self, by: Duration) -> UnixMs {
        UnixMs(shifted(self.0, by.as_millis(), false))
    }
}

/// Later by the duration's whole seconds.
impl Add<Duration> for UnixSecs {
    type Output = UnixSecs;

    fn add(self, by: Duration) -> UnixSecs {
        UnixSecs(shifted(self.0, u128::from(by.as_secs()), true))
    }
}

/// Earlier by the duration's whole seconds.
impl Sub<Duration> for UnixSecs {
    type Output = UnixSecs;

    fn sub(self, by: Duration) -> UnixSecs {
        UnixSecs(shifted(self.0, u128::from(by.as_secs()), false))
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixMs;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMs {
        UnixMs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        )
    }
}

/// A clock that stands still until told to move: for tests.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn at(instant: UnixMs) -> FixedClock {
        FixedClock(AtomicI64::new(instant.0))
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixMs {
        UnixMs(self.0.load(Ordering::SeqCst))
    }
}

/// Monotonic time: how long since an arbitrary origin. Never goes back.
pub trait Ticker: Send + Sync {
    fn elapsed(&self) -> Duration;
}

/// The real monotonic clock (`std::time::Instant`).
#[derive(Debug, Clone, Copy)]
pub struct SystemTicker(Instant);

impl Default for SystemTicker {
    fn default() -> SystemTicker {
        SystemTicker(Instant::now())
    }
}

impl Ticker for SystemTicker {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A ticker that moves only when told: for tests.
#[derive(Debug, Default)]
pub struct ManualTicker(AtomicU64);

impl ManualTicker {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Ticker for ManualTicker {
    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// `2026-05-04T13:00:00.000Z`
pub fn rfc3339(instant: UnixMs) -> String {
    let secs = instant.secs_floor().0;
    let millis = instant.0.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// An instant for people: the minute in UTC and how far it is from `now`
/// in words, `2026-12-03 17:30 UTC (in 9 minutes)`, `(3 hours ago)`,
/// `(just now)`. Pages show every time this way: a reader anywhere knows
/// the zone, and needs no arithmetic to know whether it is soon.
pub fn human(at: UnixMs, now: UnixMs) -> String {
    let wire = rfc3339(at);
    format!("{} {} UTC ({})", &wire[..10], &wire[11..16], relative(at, now))
}

/// `in 9 minutes`, `3 hours ago`, `just now`: the distance rounded to the
/// nearest whole unit ([`span_words`]); less than a minute ahead is `in
/// less than a minute`, less than a minute behind is `just now`.
fn relative(at: UnixMs, now: UnixMs) -> String {
    let ahead = at.saturating_since(now);
    let behind = now.saturating_since(at);
    if ahead >= Duration::from_secs(60) {
        format!("in {}", span_words(ahead))
    } else if behind >= Duration::from_secs(60) {
        format!("{} ago", span_words(behind))
    } else if ahead > Duration::ZERO {
        "in less than a minute".into()
    } else {
        "just now".into()
    }
}

/// A span in words, rounded to the nearest unit: minutes below an hour,
/// hours below two days, days beyond (`1 minute`, `58 minutes`, `3 hours`,
/// `2 days`). Under a minute it is `less than a minute`.
pub fn span_words(span: Duration) -> String {
    let secs = span.as_secs();
    let minutes = (secs + 30) / 60;
    let hours = (secs + 1800) / 3600;
    if secs < 60 {
        "less than a minute".into()
    } else if minutes < 60 {
        count(minutes, "minute")
    } else if hours < 48 {
        count(hours, "hour")
    } else {
        count((secs + 43_200) / 86_400, "day")
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` followed by `Z` or an
/// offset `+HH:MM` / `-HH:MM` (a bare date means midnight UTC).
pub fn parse_rfc3339(text: &str) -> Option<UnixMs> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * 86_400_000;
    if bytes.len() == 10 {
        return Some(UnixMs(date_ms));
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes.len() < 16 || bytes[13] != b':' {
        return None;
    }
    let (hour, minute) = (number(11..13)?, number(14..16)?);
    let mut rest = 16;
    let mut second = 0;
    let mut millis = 0;
    if bytes.get(rest) == Some(&b':') {
        second = number(rest + 1..rest + 3)?;
        rest += 3;
        if bytes.get(rest) == Some(&b'.') {
            let start = rest + 1;
            let mut end = start;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            if end == start {
                return None;
            }
            let fraction = &text[start..end.min(start + 3)];
            millis = fraction.parse::<i64>().ok()? * 10_i64.pow(3 - fraction.len() as u32);
            rest = end;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset_secs = match &text[rest..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && zone.as_bytes()[3] == b':' => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (number(rest + 1..rest + 3)?, number(rest + 4..rest + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    Some(UnixMs(
        date_ms + ((hour * 3600 + minute * 60 + second - offset_secs) * 1000) + millis,
    ))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_for_people_say_the_utc_minute_and_how_far_it_is() {
        let now = parse_rfc3339("2026-12-03T17:21:00Z").unwrap();
        let at = |text: &str| parse_rfc3339(text).unwrap();
        assert_eq!(
            human(at("2026-12-03T17:30:00Z"), now),
            "2026-12-03 17:30 UTC (in 9 minutes)"
        );
        assert_eq!(
            human(at("2026-12-03T14:21:00Z"), now),
            "2026-12-03 14:21 UTC (3 hours ago)"
        );
        assert_eq!(human(now, now), "2026-12-03 17:21 UTC (just now)");
        assert_eq!(
            human(at("2026-12-03T17:20:30Z"), now),
            "2026-12-03 17:20 UTC (just now)"
        );
        assert_eq!(
            human(at("2026-12-03T17:21:40Z"), now),
            "2026-12-03 17:21 UTC (in less than a minute)"
        );
        // Singular and plural.
        assert_eq!(
            human(at("2026-12-03T17:22:00Z"), now),
            "2026-12-03 17:22 UTC (in 1 minute)"
        );
        assert_eq!(
            human(at("2026-12-03T17:23:00Z"), now),
            "2026-12-03 17:23 UTC (in 2 minutes)"
        );
        assert_eq!(
            human(at("2026-12-03T17:20:00Z"), now),
            "2026-12-03 17:20 UTC (1 minute ago)"
        );
        assert_eq!(
            human(at("2026-12-03T18:21:00Z"), now),
            "2026-12-03 18:21 UTC (in 1 hour)"
        );
        assert_eq!(
            human(at("2026-12-05T17:21:00Z"), now),
            "2026-12-05 17:21 UTC (in 2 days)"
        );
        assert_eq!(
            human(at("2026-12-02T17:21:00Z"), now),
            "2026-12-02 17:21 UTC (24 hours ago)"
        );
        assert_eq!(
            human(at("2026-11-02T17:21:00Z"), now),
            "2026-11-02 17:21 UTC (31 days ago)"
        );
        // The minute shown is the one the instant falls in.
        assert_eq!(
            human(at("2026-12-03T17:30:59.999Z"), now),
            "2026-12-03 17:30 UTC (in 10 minutes)"
        );
    }

    #[test]
    fn spans_round_to_the_nearest_unit() {
        let words = |secs| span_words(Duration::from_secs(secs));
        assert_eq!(words(0), "less than a minute");
        assert_eq!(words(59), "less than a minute");
        assert_eq!(words(60), "1 minute");
        assert_eq!(words(89), "1 minute");
        assert_eq!(words(90), "2 minutes");
        assert_eq!(words(3487), "58 minutes");
        assert_eq!(words(3569), "59 minutes");
        assert_eq!(words(3570), "1 hour");
        assert_eq!(words(2 * 3600), "2 hours");
        assert_eq!(words(47 * 3600), "47 hours");
        assert_eq!(words(48 * 3600), "2 days");
        assert_eq!(words(30 * 86_400), "30 days");
    }

    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(rfc3339(UnixMs(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UnixMs(1_777_899_600_123)), "2026-05-04T13:00:00.123Z");
        assert_eq!(rfc3339(UnixMs(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(UnixMs(-1)), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_what_it_formats_and_common_forms() {
        for ms in [0, 1_777_899_600_123, 951_782_400_000, 4_102_444_799_999].map(UnixMs) {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339("2026-05-04"), Some(UnixMs(1_777_852_800_000)));
        assert_eq!(parse_rfc3339("2026-05-04T13:00Z"), Some(UnixMs(1_777_899_600_000)));
        assert_eq!(
            parse_rfc3339("2026-05-04T15:00:00+02:00"),
            Some(UnixMs(1_777_899_600_000))
        );
        assert_eq!(parse_rfc3339("2026-05-04T13:00:00.5Z"), Some(UnixMs(1_777_899_600_500)));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "yesterday",
            "2026-02-30",
            "2026-13-01",
            "2026-05-04T25:00Z",
            "2026-05-04T13:00",
            "2026-05-04T13:00:00.Z",
            "-026-05-04",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn milliseconds_floor_to_the_second_they_fall_in() {
        assert_eq!(UnixMs::from_millis(1_999).secs_floor(), UnixSecs::new(1));
        assert_eq!(UnixMs::from_millis(2_000).secs_floor(), UnixSecs::new(2));
        assert_eq!(UnixMs::from_millis(0).secs_floor(), UnixSecs::new(0));
        // Before the epoch, toward the past: -1 ms is in second -1, not 0.
        assert_eq!(UnixMs::from_millis(-1).secs_floor(), UnixSecs::new(-1));
        assert_eq!(UnixMs::from_millis(-1_000).secs_floor(), UnixSecs::new(-1));
        assert_eq!(UnixMs::from_millis(-1_001).secs_floor(), UnixSecs::new(-2));
        assert_eq!(
            UnixMs::from_millis(i64::MIN).secs_floor(),
            UnixSecs::new(i64::MIN.div_euclid(1000))
        );
    }

    #[test]
    fn seconds_become_the_start_of_their_second_saturating() {
        assert_eq!(
            UnixMs::from(UnixSecs::new(1_800_000_000)),
            UnixMs::from_millis(1_800_000_000_000)
        );
        assert_eq!(UnixMs::from(UnixSecs::new(-2)), UnixMs::from_millis(-2_000));
        assert_eq!(UnixMs::from(UnixSecs::new(i64::MAX)), UnixMs::from_millis(i64::MAX));
        assert_eq!(UnixMs::from(UnixSecs::new(i64::MIN)), UnixMs::from_millis(i64::MIN));
        for secs in [-5, 0, 7, 1_800_000_000] {
            assert_eq!(UnixMs::from(UnixSecs::new(secs)).secs_floor(), UnixSecs::new(secs));
        }
    }

    #[test]
    fn instants_move_by_durations_saturating() {
        let t = UnixMs::from_millis(1_000);
        assert_eq!(t + Duration::from_secs(2), UnixMs::from_millis(3_000));
        assert_eq!(t - Duration::from_secs(2), UnixMs::from_millis(-1_000));
        assert_eq!(t + Duration::from_micros(1_999), UnixMs::from_millis(1_001), "whole ms");
        assert_eq!(t + Duration::MAX, UnixMs::from_millis(i64::MAX));
        assert_eq!(t - Duration::MAX, UnixMs::from_millis(i64::MIN));
        assert_eq!(
            UnixMs::from_millis(i64::MAX - 1) + Duration::from_millis(5),
            UnixMs::from_millis(i64::MAX)
        );

        let s = UnixSecs::new(10);
        assert_eq!(s + Duration::from_secs(60), UnixSecs::new(70));
        assert_eq!(s - Duration::from_secs(60), UnixSecs::new(-50));
        assert_eq!(s + Duration::from_millis(1_999), UnixSecs::new(11), "whole seconds");
        assert_eq!(s + Duration::MAX, UnixSecs::new(i64::MAX));
        assert_eq!(s - Duration::MAX, UnixSecs::new(i64::MIN));
    }

    #[test]
    fn the_time_between_two_instants_is_never_negative() {
        let (early, late) = (UnixMs::from_millis(-500), UnixMs::from_millis(1_500));
        assert_eq!(late.saturating_since(early), Duration::from_millis(2_000));
        assert_eq!(early.saturating_since(late), Duration::ZERO);
        assert_eq!(
            UnixMs::from_millis(i64::MAX).saturating_since(UnixMs::from_millis(i64::MIN)),
            Duration::from_millis(u64::MAX)
        );
        assert_eq!(
            UnixSecs::new(70).saturating_since(UnixSecs::new(9)),
            Duration::from_secs(61)
        );
        assert_eq!(UnixSecs::new(9).saturating_since(UnixSecs::new(70)), Duration::ZERO);
        assert_eq!(
            UnixSecs::new(i64::MAX).saturating_since(UnixSecs::new(i64::MIN)),
            Duration::from_secs(u64::MAX)
        );
    }

    #[test]
    fn instants_order_as_their_counts() {
        assert!(UnixMs::from_millis(-1) < UnixMs::from_millis(0));
        assert!(UnixSecs::new(-1) < UnixSecs::new(0));
        assert_eq!(UnixMs::from_millis(42).millis(), 42);
        assert_eq!(UnixSecs::new(42).secs(), 42);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let clock = FixedClock::at(UnixMs::from_millis(1_000));
        assert_eq!(clock.now(), UnixMs::from_millis(1_000));
        clock.advance_secs(2);
        assert_eq!(clock.now(), UnixMs::from_millis(3_000));
    }
}
