//! Calendar days, the unit every screening rule is written in.
//!
//! FHIR `date` and `dateTime` values are reduced to the calendar day they name (in the time zone they
//! were written in), plus an instant used only to order same-day observations.

use std::fmt;

/// A calendar day, counted from 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

/// A FHIR date or dateTime: the day it names and a sortable instant (seconds since the epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    pub instant: i64,
    pub day: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a FHIR date or dateTime (expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)"
)]
pub struct DateError;

impl Date {
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date(days_from_civil(year, month, day)))
    }

    /// Parses `YYYY-MM-DD`; a partial date (`YYYY` or `YYYY-MM`) is read as its first day.
    pub fn parse(text: &str) -> Result<Date, DateError> {
        DateTime::parse(text).map(|dt| dt.day)
    }

    pub fn from_days_since_epoch(days: i32) -> Date {
        Date(days)
    }

    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    pub fn plus_days(self, days: i32) -> Date {
        Date(self.0 + days)
    }

    pub fn days_until(self, later: Date) -> i32 {
        later.0 - self.0
    }

    /// The same day `months` calendar months earlier, clamped to the month's last day.
    pub fn minus_months(self, months: u32) -> Date {
        let (y, m, d) = self.ymd();
        let total = y * 12 + (m as i32 - 1) - months as i32;
        let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
        let nd = d.min(days_in_month(ny, nm));
        Date(days_from_civil(ny, nm, nd))
    }

    /// Whole calendar months from `self` to `later` (0 when `later` is earlier).
    pub fn whole_months_until(self, later: Date) -> u32 {
        if later <= self {
            return 0;
        }
        let (y1, m1, d1) = self.ymd();
        let (y2, m2, d2) = later.ymd();
        let mut months = (y2 - y1) * 12 + (m2 as i32 - m1 as i32);
        if d2 < d1 {
            months -= 1;
        }
        months.max(0) as u32
    }

    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        // Years 0 to 9999 (any real record) are written digit by digit: the formatting machinery
        // costs more than the calendar arithmetic, and every trial and reason shows dates.
        if let Ok(year) = u16::try_from(y)
            && year <= 9999
        {
            let digit = |n: u32| b'0' + (n % 10) as u8;
            let year = u32::from(year);
            let text = [
                digit(year / 1000),
                digit(year / 100),
                digit(year / 10),
                digit(year),
                b'-',
                digit(m / 10),
                digit(m),
                b'-',
                digit(d / 10),
                digit(d),
            ];
            return f.write_str(std::str::from_utf8(&text).expect("ASCII digits"));
        }
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl DateTime {
    /// Parses a FHIR `date`, `dateTime` or `instant` as R4 defines them: years 0001 to 9999,
    /// a time only with seconds, zone offsets from -14:00 to +14:00 (a missing zone is read as
    /// UTC, since only ordering depends on it).
    pub fn parse(text: &str) -> Result<DateTime, DateError> {
        let bytes = text.as_bytes();
        let num = |range: std::ops::Range<usize>| digits(bytes.get(range).ok_or(DateError)?);
        let year = num(0..4)? as i32;
        if year == 0 {
            return Err(DateError);
        }
        let (month, day, rest) = match bytes.len() {
            4 => (1, 1, ""),
            7 if bytes[4] == b'-' => (num(5..7)?, 1, ""),
            n if n >= 10 && bytes[4] == b'-' && bytes[7] == b'-' => {
                (num(5..7)?, num(8..10)?, &text[10..])
            }
            _ => return Err(DateError),
        };
        let day = Date::from_ymd(year, month, day).ok_or(DateError)?;
        let local_seconds = if rest.is_empty() {
            0
        } else {
            time_of_day(rest)?
        };
        let offset = if rest.is_empty() {
            0
        } else {
            zone_offset(rest)?
        };
        Ok(DateTime {
            instant: i64::from(day.0) * 86_400 + local_seconds - offset,
            day,
        })
    }

    pub fn from_day(day: Date) -> DateTime {
        DateTime {
            instant: i64::from(day.0) * 86_400,
            day,
        }
    }
}

/// A short run of ASCII digits as a number (at most four digits are ever read); anything else, or
/// nothing, is an error.
fn digits(part: &[u8]) -> Result<u32, DateError> {
    if part.is_empty() {
        return Err(DateError);
    }
    part.iter().try_fold(0u32, |value, b| match b {
        b'0'..=b'9' => Ok(value * 10 + u32::from(b - b'0')),
        _ => Err(DateError),
    })
}

/// `Thh:mm:ss[.f...]` → seconds into the day.
fn time_of_day(rest: &str) -> Result<i64, DateError> {
    let b = rest.as_bytes();
    if b.len() < 9 || b[0] != b'T' || b[3] != b':' || b[6] != b':' {
        return Err(DateError);
    }
    let field = |r: std::ops::Range<usize>, max: i64| -> Result<i64, DateError> {
        // Bytes, not `str` slices: a multi-byte character must be an error, not a panic.
        let value = i64::from(digits(&b[r])?);
        if value > max {
            Err(DateError)
        } else {
            Ok(value)
        }
    };
    Ok(field(1..3, 23)? * 3600 + field(4..6, 59)? * 60 + field(7..9, 60)?)
}

/// The zone suffix (`Z`, `+hh:mm`, `-hh:mm`) → offset in seconds east of UTC. FHIR requires it when a
/// time is given; a missing zone is read as UTC rather than rejected, since only ordering depends on it.
fn zone_offset(rest: &str) -> Result<i64, DateError> {
    let mut zone = &rest.as_bytes()[9..];
    if let [b'.', fraction @ ..] = zone {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(DateError);
        }
        zone = &fraction[digits..];
    }
    match zone {
        [] | [b'Z'] => Ok(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = i64::from(digits(&[*h1, *h2])?);
            let minutes = i64::from(digits(&[*m1, *m2])?);
            // R4: (0[0-9]|1[0-3]):[0-5][0-9] or 14:00.
            if minutes > 59 || hours > 14 || (hours == 14 && minutes > 0) {
                return Err(DateError);
            }
            let magnitude = hours * 3600 + minutes * 60;
            Ok(if *sign == b'+' { magnitude } else { -magnitude })
        }
        _ => Err(DateError),
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_calendar_days() {
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2024-12-31",
            "1899-03-01",
            "2100-02-28",
        ] {
            assert_eq!(Date::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Date::parse("1970-01-02").unwrap().days_since_epoch(), 1);
    }

    #[test]
    fn partial_dates_read_as_their_first_day() {
        assert_eq!(Date::parse("2024").unwrap().to_string(), "2024-01-01");
        assert_eq!(Date::parse("2024-03").unwrap().to_string(), "2024-03-01");
    }

    #[test]
    fn date_times_keep_their_local_day_and_order_by_instant() {
        let evening_ny = DateTime::parse("2024-01-01T23:00:00-05:00").unwrap();
        let morning_utc = DateTime::parse("2024-01-02T01:00:00Z").unwrap();
        assert_eq!(evening_ny.day.to_string(), "2024-01-01");
        // Its local day is earlier, but as an instant it is later (04:00Z): ordering uses the instant.
        assert!(evening_ny.day < morning_utc.day);
        assert!(evening_ny.instant > morning_utc.instant);
        assert!(DateTime::parse("2024-01-01T10:00:00.123+01:00").is_ok());
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2023-02-29",
            "2024-1-1",
            "2024-01-01T25:00:00Z",
            "20x4",
            "2024-01-01T10:00:0é",
            "2024-01-01Té0:00:00Z",
            "2024-01-01T10:é:00Z",
            "2024-01-01T10:00:00é",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn year_zero_and_zone_offsets_beyond_fourteen_hours_are_not_fhir_dates() {
        for bad in [
            "0000",
            "0000-01",
            "0000-01-01",
            "0000-01-01T10:00:00Z",
            "2024-01-01T10:00:00+25:00",
            "2024-01-01T10:00:00-14:30",
            "2024-01-01T10:00:00+14:01",
            "2024-01-01T10:00:00+05:60",
            "2024-01-01T10:00:00.+01:00",
            "2024-01-01T10:00:00..5Z",
            "2024-01-01T10:00:00.1.2Z",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn the_edges_of_the_fhir_grammar_are_dates() {
        for good in [
            "0001-01-01",
            "9999-12-31",
            "2024-01-01T10:00:00+14:00",
            "2024-01-01T10:00:00-14:00",
            "2024-01-01T10:00:00-13:59",
            "2024-06-30T23:59:60Z",
            "2024-01-01T10:00:00.123456789+05:30",
        ] {
            assert!(DateTime::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn month_arithmetic_clamps_to_month_end() {
        let d = Date::parse("2024-03-31").unwrap();
        assert_eq!(d.minus_months(1).to_string(), "2024-02-29");
        assert_eq!(d.minus_months(24).to_string(), "2022-03-31");
        let start = Date::parse("2023-01-15").unwrap();
        assert_eq!(
            start.whole_months_until(Date::parse("2024-01-14").unwrap()),
            11
        );
        assert_eq!(
            start.whole_months_until(Date::parse("2024-01-15").unwrap()),
            12
        );
    }
}
