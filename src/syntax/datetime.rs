//! Lexicon `datetime`: the intersection of RFC 3339 and ISO 8601, with a mandatory timezone.
//!
//! Two steps, mirroring the fixtures' `syntax` and `parse` files:
//! 1. syntax: `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `±HH:MM`; upper-case `T`/`Z`; at most
//!    64 characters and 20 fraction digits; no `-00:00` (ISO 8601 forbids negative zero);
//! 2. semantics: fields in range (month 1-12, day within the month, hour 0-23, minute and second
//!    0-59), and the instant, normalised to UTC, not before year 0.
//!
//! Leap seconds (`:60`) are rejected, as by the reference implementations, so records accepted
//! here are accepted elsewhere.

use super::{Reason, SyntaxError, string_format_impls};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

const MAX_LEN: usize = 64;
const MAX_FRACTION_DIGITS: usize = 20;

/// A valid datetime. Keeps the original string (re-serialising a record must not change its
/// bytes) together with the parsed instant.
///
/// Equality and hashing are those of the string; ordering is chronological, with the string as a
/// tie-break so that it agrees with equality.
#[derive(Clone, Debug)]
pub struct Datetime {
    text: String,
    instant: DateTime<FixedOffset>,
}

/// The fields of a syntactically valid datetime, not yet range-checked.
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// Offset east of UTC, in (hours, minutes, sign).
    offset: Option<(u32, u32, bool)>,
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b.iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0')),
    )
}

/// Checks one fixed-width numeric field and the separator after it.
fn field(b: &[u8], start: usize, width: usize, name: &'static str) -> Result<u32, Reason> {
    b.get(start..start + width)
        .and_then(digits)
        .ok_or_else(|| format!("{name} must be exactly {width} digits").into())
}

fn sep(b: &[u8], at: usize, want: u8, what: &'static str) -> Result<(), Reason> {
    if b.get(at) == Some(&want) {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn syntax(s: &str) -> Result<Fields, Reason> {
    let b = s.as_bytes();
    if b.len() > MAX_LEN {
        return Err("longer than 64 characters".into());
    }
    let year = field(b, 0, 4, "year")?;
    sep(b, 4, b'-', "year must be exactly 4 digits followed by '-'")?;
    let month = field(b, 5, 2, "month")?;
    sep(b, 7, b'-', "month must be exactly 2 digits followed by '-'")?;
    let day = field(b, 8, 2, "day")?;
    sep(
        b,
        10,
        b'T',
        "day must be exactly 2 digits followed by an upper-case 'T' and the time",
    )?;
    let hour = field(b, 11, 2, "hour")?;
    sep(b, 13, b':', "hour must be exactly 2 digits followed by ':'")?;
    let minute = field(b, 14, 2, "minute")?;
    sep(
        b,
        16,
        b':',
        "minute must be exactly 2 digits followed by ':' (seconds are required)",
    )?;
    let second = field(b, 17, 2, "second")?;
    let mut pos = 19;
    let mut nanos = 0u32;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let n = b[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err("fractional seconds need at least one digit".into());
        }
        if n > MAX_FRACTION_DIGITS {
            return Err("more than 20 fractional-second digits".into());
        }
        // Nanosecond precision for the parsed instant; the text keeps every digit.
        for i in 0..9 {
            let d = if i < n {
                u32::from(b[pos + i] - b'0')
            } else {
                0
            };
            nanos = nanos * 10 + d;
        }
        pos += n;
    }
    let offset = match &b[pos..] {
        b"Z" => None,
        [] => return Err("timezone is required ('Z' or '+HH:MM')".into()),
        b"z" => return Err("timezone 'Z' must be upper-case".into()),
        b"-00:00" => return Err("\"-00:00\" is not allowed; use 'Z' or \"+00:00\"".into()),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (Some(h), Some(m)) = (digits(&[*h1, *h2]), digits(&[*m1, *m2])) else {
                return Err("timezone offset must be '+HH:MM' or '-HH:MM'".into());
            };
            Some((h, m, *sign == b'+'))
        }
        [b'+' | b'-', ..] => return Err("timezone offset must be '+HH:MM' or '-HH:MM'".into()),
        _ => return Err("unexpected characters after the time".into()),
    };
    Ok(Fields {
        year: year as i32,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset,
    })
}

fn semantics(f: &Fields) -> Result<DateTime<FixedOffset>, Reason> {
    if !(1..=12).contains(&f.month) {
        return Err(format!("month {:02} out of range", f.month).into());
    }
    let Some(date) = NaiveDate::from_ymd_opt(f.year, f.month, f.day) else {
        return Err(format!(
            "day {:02} out of range for {:04}-{:02}",
            f.day, f.year, f.month
        )
        .into());
    };
    if f.hour > 23 {
        return Err(format!("hour {:02} out of range", f.hour).into());
    }
    if f.minute > 59 {
        return Err(format!("minute {:02} out of range", f.minute).into());
    }
    if f.second > 59 {
        return Err(format!(
            "second {:02} out of range (leap seconds are not accepted)",
            f.second
        )
        .into());
    }
    let time = date
        .and_hms_nano_opt(f.hour, f.minute, f.second, f.nanos)
        .ok_or_else(|| Reason::from("time out of range"))?;
    let offset_secs = match f.offset {
        None => 0,
        Some((h, m, east)) => {
            if h > 23 || m > 59 {
                return Err("timezone offset out of range".into());
            }
            let secs = (h * 3600 + m * 60) as i32;
            if east { secs } else { -secs }
        }
    };
    let tz = FixedOffset::east_opt(offset_secs)
        .ok_or_else(|| Reason::from("timezone offset out of range"))?;
    let instant = tz
        .from_local_datetime(&time)
        .single()
        .ok_or_else(|| Reason::from("time out of range"))?;
    // The spec disallows datetimes before year 0; an offset can push year 0000 below it.
    if instant.with_timezone(&Utc).year() < 0 {
        return Err("normalizes to a time before year 0".into());
    }
    Ok(instant)
}

fn parse(s: &str) -> Result<DateTime<FixedOffset>, SyntaxError> {
    let err = |r| SyntaxError::new("datetime", s, r);
    let fields = syntax(s).map_err(err)?;
    semantics(&fields).map_err(err)
}

impl Datetime {
    /// The datetime as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` is a valid datetime (syntax and semantics).
    pub fn is_valid(s: &str) -> bool {
        parse(s).is_ok()
    }

    /// The syntax step only: `Ok` for strings that look right even if, like `1985-13-01T...`, they
    /// name no real time. Parsing (`FromStr`) applies both steps.
    pub fn check_syntax(s: &str) -> Result<(), SyntaxError> {
        syntax(s)
            .map(|_| ())
            .map_err(|r| SyntaxError::new("datetime", s, r))
    }

    /// The current time in the reference format, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn now() -> Datetime {
        Datetime::from_utc(Utc::now())
    }

    /// Formats a UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, truncated to milliseconds. Years outside
    /// 0000-9999 are clamped to that range, which the 4-digit format can express.
    pub fn from_utc(t: DateTime<Utc>) -> Datetime {
        let t = t.min(max_utc()).max(min_utc());
        let millis = t.nanosecond().min(999_999_999) / 1_000_000;
        let mut text = String::with_capacity(24);
        let _ = write!(
            text,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis
        );
        let instant = t
            .with_nanosecond(millis * 1_000_000)
            .unwrap_or(t)
            .fixed_offset();
        Datetime { text, instant }
    }

    /// The parsed instant, with the offset as written. Fractions beyond nanoseconds are truncated.
    pub fn to_chrono(&self) -> DateTime<FixedOffset> {
        self.instant
    }

    /// The instant in UTC.
    pub fn to_utc(&self) -> DateTime<Utc> {
        self.instant.with_timezone(&Utc)
    }

    /// Milliseconds since the UNIX epoch (negative before 1970).
    pub fn timestamp_millis(&self) -> i64 {
        self.instant.timestamp_millis()
    }

    /// Microseconds since the UNIX epoch (negative before 1970).
    pub fn timestamp_micros(&self) -> i64 {
        self.instant.timestamp_micros()
    }
}

fn min_utc() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn max_utc() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .and_then(|t| t.with_nanosecond(999_999_999))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl FromStr for Datetime {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        let instant = parse(s)?;
        Ok(Datetime {
            text: s.to_owned(),
            instant,
        })
    }
}

impl TryFrom<String> for Datetime {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        let instant = parse(&s)?;
        Ok(Datetime { text: s, instant })
    }
}

impl From<DateTime<Utc>> for Datetime {
    fn from(t: DateTime<Utc>) -> Self {
        Datetime::from_utc(t)
    }
}

impl PartialEq for Datetime {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Datetime {}

impl PartialOrd for Datetime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Datetime {
    fn cmp(&self, other: &Self) -> Ordering {
        self.instant
            .cmp(&other.instant)
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl Hash for Datetime {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl From<Datetime> for String {
    fn from(d: Datetime) -> String {
        d.text
    }
}

string_format_impls!(Datetime, "a datetime");
