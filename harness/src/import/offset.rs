//! A fixed UTC offset, `+HH:MM` or `-HH:MM`: how a platform's local
//! timestamps (Proxmox's task log prints the node's local time, no zone)
//! become UTC.

use std::fmt;
use std::str::FromStr;

/// A zone's fixed offset east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UtcOffset {
    seconds: i64,
}

impl UtcOffset {
    /// UTC itself, `+00:00`.
    pub const UTC: UtcOffset = UtcOffset { seconds: 0 };

    /// The offset in seconds east of UTC (3600 for CET): local = UTC + this.
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// The offset of `seconds` east of UTC, if a real zone could have it
    /// (−14:00 to +14:00, whole minutes).
    pub fn from_seconds(seconds: i64) -> Option<UtcOffset> {
        (seconds % 60 == 0 && seconds.abs() <= 14 * 3600).then_some(UtcOffset { seconds })
    }
}

impl FromStr for UtcOffset {
    type Err = String;

    /// Reads `+HH:MM` or `-HH:MM` (`Z` for UTC too).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("{text:?} is not a UTC offset: write it as +HH:MM or -HH:MM, e.g. +01:00 for CET, -05:00 for EST")
        };
        if text == "Z" {
            return Ok(UtcOffset::UTC);
        }
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let two_digits = |s: &str| -> Option<i64> {
            (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (h, m) = (
            two_digits(h).ok_or_else(bad)?,
            two_digits(m).ok_or_else(bad)?,
        );
        if m >= 60 {
            return Err(bad());
        }
        UtcOffset::from_seconds(sign * (h * 3600 + m * 60))
            .ok_or_else(|| format!("{text:?}: no zone is more than 14 hours from UTC"))
    }
}

impl fmt::Display for UtcOffset {
    /// `+HH:MM` (`+00:00` for UTC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let a = self.seconds.abs();
        write!(f, "{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn offsets_read_and_write_back() {
        for (text, s) in [
            ("+00:00", 0),
            ("+01:00", 3600),
            ("-05:00", -18000),
            ("+05:45", 20700),
            ("-09:30", -34200),
            ("+14:00", 50400),
        ] {
            let o: UtcOffset = text.parse().unwrap();
            assert_eq!(o.seconds(), s, "{text}");
            assert_eq!(o.to_string(), text);
        }
        assert_eq!("Z".parse::<UtcOffset>().unwrap(), UtcOffset::UTC);
        assert_eq!(UtcOffset::default().to_string(), "+00:00");
    }

    #[test]
    fn bad_offsets_say_how_to_write_one() {
        for bad in [
            "", "01:00", "+1:00", "+0100", "+01:60", "+15:00", "CET", "+01:00 ",
        ] {
            let e = bad.parse::<UtcOffset>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }
}
