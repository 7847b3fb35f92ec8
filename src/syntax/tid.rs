//! TIDs: 64-bit timestamp identifiers, written as 13 characters of base32-sortable.
//!
//! Layout: top bit 0, then 53 bits of microseconds since the UNIX epoch, then a 10-bit clock id.
//! The alphabet `234567abcdefghijklmnopqrstuvwxyz` is in ASCII order and every TID has 13
//! characters, so string order equals integer order (repo revisions rely on this).

use super::{SyntaxError, bad_char, string_format_impls};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
const LEN: usize = 13;
const CLOCK_BITS: u32 = 10;
const CLOCK_MASK: u64 = (1 << CLOCK_BITS) - 1;
/// Largest timestamp that fits the 53-bit field (around the year 2255).
const MAX_TIMESTAMP: u64 = (1 << 53) - 1;

/// A TID. Holds the integer and its 13-character text (so [`Tid::as_str`] needs no allocation).
///
/// The string syntax (first character in `[2-7a-j]`) admits every `u64`, including values with
/// the top bit set; such TIDs parse, but [`Tid::new`] and [`TidClock`] never produce them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid {
    // Field order matters: the derived `Ord` compares `value` first.
    value: u64,
    text: [u8; LEN],
}

const fn encode(value: u64) -> [u8; LEN] {
    let mut text = [0u8; LEN];
    let mut i = 0;
    while i < LEN {
        let shift = 5 * (LEN - 1 - i) as u32;
        text[i] = ALPHABET[((value >> shift) & 31) as usize];
        i += 1;
    }
    text
}

fn decode_char(b: u8) -> Option<u64> {
    match b {
        b'2'..=b'7' => Some(u64::from(b - b'2')),
        b'a'..=b'z' => Some(u64::from(b - b'a') + 6),
        _ => None,
    }
}

impl Tid {
    /// The zero TID, `2222222222222`.
    pub const ZERO: Tid = Tid::from_u64(0);

    /// Builds a TID from a timestamp (microseconds since the UNIX epoch, below 2^53) and a clock
    /// id (below 1024).
    pub fn new(timestamp_micros: u64, clock_id: u16) -> Result<Tid, SyntaxError> {
        if timestamp_micros > MAX_TIMESTAMP {
            return Err(SyntaxError::new(
                "tid",
                &timestamp_micros.to_string(),
                "timestamp does not fit in 53 bits",
            ));
        }
        if u64::from(clock_id) > CLOCK_MASK {
            return Err(SyntaxError::new(
                "tid",
                &clock_id.to_string(),
                "clock id does not fit in 10 bits",
            ));
        }
        Ok(Tid::from_u64(
            (timestamp_micros << CLOCK_BITS) | u64::from(clock_id),
        ))
    }

    /// The TID for an integer. Every `u64` has a valid TID string.
    pub const fn from_u64(value: u64) -> Tid {
        Tid {
            value,
            text: encode(value),
        }
    }

    /// A fresh TID from the process-wide [`TidClock`]: strictly greater than every TID this
    /// function returned before, from any thread.
    pub fn now() -> Tid {
        static GLOBAL: LazyLock<TidClock> = LazyLock::new(TidClock::new);
        GLOBAL.next()
    }

    /// The integer value.
    pub fn as_u64(&self) -> u64 {
        self.value
    }

    /// The 13-character string.
    pub fn as_str(&self) -> &str {
        // Always ASCII from `ALPHABET`; the fallback is unreachable but keeps this panic-free.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// Whether `s` is a valid TID (no allocation).
    pub fn is_valid(s: &str) -> bool {
        decode(s).is_ok()
    }

    /// Microseconds since the UNIX epoch (the 53-bit field; a set top bit is ignored).
    pub fn timestamp_micros(&self) -> u64 {
        (self.value >> CLOCK_BITS) & MAX_TIMESTAMP
    }

    /// The 10-bit clock id.
    pub fn clock_id(&self) -> u16 {
        (self.value & CLOCK_MASK) as u16
    }

    /// The timestamp as a UTC datetime. TIDs are user-controlled: do not trust it as a creation
    /// time.
    pub fn timestamp(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let micros = i64::try_from(self.timestamp_micros()).ok()?;
        chrono::DateTime::from_timestamp_micros(micros)
    }
}

fn decode(s: &str) -> Result<u64, std::borrow::Cow<'static, str>> {
    let b = s.as_bytes();
    if b.len() != LEN {
        return Err("must be exactly 13 characters".into());
    }
    let mut value = 0u64;
    for (i, &c) in b.iter().enumerate() {
        let Some(d) = decode_char(c) else {
            return Err(if c.is_ascii_uppercase() {
                "must be lowercase base32-sortable".into()
            } else {
                bad_char(super::char_at(s, i))
            });
        };
        // The first character carries only 4 bits (13 * 5 = 65); more would overflow 64.
        if i == 0 && d >= 16 {
            return Err("first character must be one of 234567abcdefghij".into());
        }
        value = (value << 5) | d;
    }
    Ok(value)
}

impl FromStr for Tid {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, SyntaxError> {
        let value = decode(s).map_err(|r| SyntaxError::new("tid", s, r))?;
        Ok(Tid::from_u64(value))
    }
}

impl TryFrom<String> for Tid {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, SyntaxError> {
        s.parse()
    }
}

impl fmt::Debug for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tid").field(&self.as_str()).finish()
    }
}

impl From<Tid> for String {
    fn from(t: Tid) -> String {
        t.as_str().to_owned()
    }
}

string_format_impls!(Tid, "a TID");

/// A TID generator with a random clock id, safe to share between threads.
///
/// Each [`TidClock::next`] is strictly greater than the one before: it takes the current
/// microsecond, but if that is not past the last TID (two calls in the same microsecond, or the
/// system clock stepped backwards) it uses the last timestamp plus one. The clock therefore runs
/// ahead of wall time for a while after a backwards step, never behind its own output.
#[derive(Debug)]
pub struct TidClock {
    clock_id: u16,
    last: AtomicU64,
}

impl Default for TidClock {
    fn default() -> Self {
        TidClock::new()
    }
}

impl TidClock {
    /// A clock with a random 10-bit clock id, so that generators in different processes rarely
    /// collide.
    pub fn new() -> TidClock {
        TidClock::with_clock_id(rand::random::<u16>())
    }

    /// A clock with a fixed clock id (only the low 10 bits are used).
    pub fn with_clock_id(clock_id: u16) -> TidClock {
        TidClock {
            clock_id: (u64::from(clock_id) & CLOCK_MASK) as u16,
            last: AtomicU64::new(0),
        }
    }

    /// This clock's id.
    pub fn clock_id(&self) -> u16 {
        self.clock_id
    }

    /// The next TID, from the system clock.
    pub fn next(&self) -> Tid {
        self.next_at(now_micros())
    }

    /// The next TID, taking `now_micros` as the current time (lets callers and tests supply the
    /// clock). Still strictly greater than every earlier TID from this clock.
    ///
    /// After 2^53 - 1 microseconds (year 2255) the timestamp saturates and values repeat.
    pub fn next_at(&self, now_micros: u64) -> Tid {
        let step = |last: u64| {
            let ts = now_micros
                .max((last >> CLOCK_BITS).saturating_add(1))
                .min(MAX_TIMESTAMP);
            (ts << CLOCK_BITS) | u64::from(self.clock_id)
        };
        // `fetch_update` retries on contention, so concurrent callers get distinct values.
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(step(last)))
            .unwrap_or_else(|last| last);
        Tid::from_u64(step(prev))
    }

    /// Makes every later TID from this clock greater than `seen` (for example the last repo
    /// revision stored before a restart, in case the system clock is now behind it).
    pub fn observe(&self, seen: Tid) {
        self.last.fetch_max(seen.as_u64(), Ordering::AcqRel);
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
