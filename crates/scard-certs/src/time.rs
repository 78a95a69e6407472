//! Points in time, UTC: the `now` every rule takes as input (the caller reads the clock), the
//! certificate validity ends, RFC 3339 input (`--at`) and `YYYY-MM-DDTHH:MM:SSZ` output.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::CertError;

/// Seconds and nanoseconds since 1970-01-01T00:00:00Z (no leap seconds, as POSIX time).
/// Ordered: a later time is greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: u64,
    nanos: u32,
}

const SECS_PER_DAY: u64 = 86_400;

impl Timestamp {
    /// A whole number of seconds since the epoch.
    pub fn from_unix(secs: u64) -> Self {
        Self { secs, nanos: 0 }
    }

    /// A duration since the epoch.
    pub fn from_duration(since_epoch: Duration) -> Self {
        Self { secs: since_epoch.as_secs(), nanos: since_epoch.subsec_nanos() }
    }

    /// A system time; times before the epoch become the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        Self::from_duration(time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
    }

    /// Whole seconds since the epoch.
    pub fn unix_secs(self) -> u64 {
        self.secs
    }

    /// Nanoseconds past [`Timestamp::unix_secs`].
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Parses RFC 3339 `date-time` (RFC 3339 §5.6): `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or
    /// `+HH:MM` / `-HH:MM`; `t`, `z` and a space for `T` are accepted (§5.6 NOTE). A leap
    /// second (`:60`) counts as the next second. Times before 1970 are refused.
    pub fn parse_rfc3339(text: &str) -> Result<Self, CertError> {
        let err = |reason: &'static str| CertError::Time { text: text.to_owned(), reason };
        let b = text.as_bytes();
        let num = |from: usize, len: usize| -> Result<u64, CertError> {
            let digits = b.get(from..from + len).ok_or_else(|| err("too short"))?;
            digits.iter().try_fold(0u64, |acc, d| {
                if d.is_ascii_digit() {
                    Ok(acc * 10 + u64::from(d - b'0'))
                } else {
                    Err(err("expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset"))
                }
            })
        };
        let sep = |at: usize, allowed: &[u8]| -> Result<(), CertError> {
            match b.get(at) {
                Some(c) if allowed.contains(c) => Ok(()),
                _ => Err(err("expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset")),
            }
        };
        let year = num(0, 4)?;
        sep(4, b"-")?;
        let month = num(5, 2)?;
        sep(7, b"-")?;
        let day = num(8, 2)?;
        sep(10, b"Tt ")?;
        let hour = num(11, 2)?;
        sep(13, b":")?;
        let minute = num(14, 2)?;
        sep(16, b":")?;
        let second = num(17, 2)?;
        let mut at = 19;
        let mut nanos = 0u32;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            let mut scale = 100_000_000u32;
            while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
                nanos += u32::from(d - b'0') * scale;
                scale /= 10;
                at += 1;
            }
            if at == start {
                return Err(err("a fraction of a second needs digits"));
            }
        }
        // time-offset = "Z" / time-numoffset
        let offset: i64 = match b.get(at) {
            Some(b'Z' | b'z') => {
                at += 1;
                0
            }
            Some(sign @ (b'+' | b'-')) => {
                let hours = num(at + 1, 2)?;
                sep(at + 3, b":")?;
                let minutes = num(at + 4, 2)?;
                if hours > 23 || minutes > 59 {
                    return Err(err("offset out of range"));
                }
                let secs = i64::try_from(hours * 3600 + minutes * 60).unwrap_or(0);
                at += 6;
                if *sign == b'+' { secs } else { -secs }
            }
            _ => return Err(err("missing time zone (Z or +HH:MM)")),
        };
        if at != b.len() {
            return Err(err("trailing characters"));
        }
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(err("no such date"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(err("no such time of day"));
        }
        let days = days_from_civil(year, month, day).ok_or_else(|| err("before 1970"))?;
        let local = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
        let utc = i64::try_from(local).map_err(|_| err("too far in the future"))? - offset;
        let secs = u64::try_from(utc).map_err(|_| err("before 1970"))?;
        Ok(Self { secs, nanos })
    }
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: u64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date; `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if year < 1970 {
        return None;
    }
    let whole_years: u64 = (1970..year).map(|y| if is_leap(y) { 366 } else { 365 }).sum();
    let whole_months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    Some(whole_years + whole_months + day - 1)
}

/// The civil date of a day count since 1970-01-01, in constant time (the usual 400-year era
/// arithmetic, with years starting on March 1 so the leap day comes last).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719_468 days from 0000-03-01 to 1970-01-01; an era is 400 years = 146_097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 { march_month + 3 } else { march_month - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (fractions of a second are not shown).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.secs / SECS_PER_DAY);
        let rest = self.secs % SECS_PER_DAY;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_examples() {
        // RFC 3339 §5.8 examples.
        let t = Timestamp::parse_rfc3339("1985-04-12T23:20:50.52Z").unwrap();
        assert_eq!(t.unix_secs(), 482_196_050);
        assert_eq!(t.subsec_nanos(), 520_000_000);
        assert_eq!(t.to_string(), "1985-04-12T23:20:50Z");
        let t = Timestamp::parse_rfc3339("1996-12-19T16:39:57-08:00").unwrap();
        assert_eq!(t.to_string(), "1996-12-20T00:39:57Z");
        let t = Timestamp::parse_rfc3339("1990-12-31T23:59:60Z").unwrap();
        assert_eq!(t.to_string(), "1991-01-01T00:00:00Z");
        let t = Timestamp::parse_rfc3339("1990-12-31t15:59:60-08:00").unwrap();
        assert_eq!(t.to_string(), "1991-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T00:00:00+01:00").unwrap().to_string(),
            "2024-02-28T23:00:00Z"
        );
    }

    #[test]
    fn rfc3339_rejects() {
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00ZZ",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+2400",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "２024-01-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_and_order() {
        assert_eq!(Timestamp::from_unix(0).to_string(), "1970-01-01T00:00:00Z");
        // 2049-12-31T23:59:59Z, the last UTCTime (RFC 5280 §4.1.2.5.1).
        assert_eq!(Timestamp::from_unix(2_524_607_999).to_string(), "2049-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix(951_782_400).to_string(), "2000-02-29T00:00:00Z");
        assert!(Timestamp::from_duration(Duration::new(5, 1)) > Timestamp::from_unix(5));
        for secs in [0u64, 59, 86_399, 86_400, 1_709_164_800, 4_102_444_800, 253_402_300_799] {
            let t = Timestamp::from_unix(secs);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
        }
    }
}
