//! The timestamp of a task log line: `YYYY-MM-DD HH:MM:SS` in the node's
//! local time (pve-guest-common prints `strftime("%F %H:%M:%S",
//! localtime)`), and the civil-date arithmetic that turns it into epoch
//! seconds without a time-zone database.

use serde::{Deserialize, Serialize};

/// A line's local date and time, to the second, as Proxmox printed it.
/// The zone is not in the log: the caller knows the node's UTC offset.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTimestamp {
    /// Year, 0–9999.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31 (as the month has).
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub min: u8,
    /// Second, 0–60 (60 only in a leap second).
    pub sec: u8,
}

/// The length of `YYYY-MM-DD HH:MM:SS`.
pub const TIMESTAMP_LEN: usize = 19;

impl LocalTimestamp {
    /// Reads exactly `YYYY-MM-DD HH:MM:SS` (ASCII digits, a valid date and
    /// time of day); `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let layout_ok = b.len() == TIMESTAMP_LEN
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            });
        if !layout_ok {
            return None;
        }
        // All ASCII digits at these places: the slices are valid numbers.
        let num = |from: usize, to: usize| -> u16 {
            b[from..to]
                .iter()
                .fold(0, |n, d| n * 10 + u16::from(d - b'0'))
        };
        let t = LocalTimestamp {
            year: num(0, 4),
            month: num(5, 7) as u8,
            day: num(8, 10) as u8,
            hour: num(11, 13) as u8,
            min: num(14, 16) as u8,
            sec: num(17, 19) as u8,
        };
        t.is_valid().then_some(t)
    }

    /// Whether the fields name a real date and time of day.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(i64::from(self.year), self.month)
            && self.hour < 24
            && self.min < 60
            && self.sec <= 60
    }

    /// Seconds since 1970-01-01 00:00:00 of this local time read as if
    /// it were UTC: the epoch second is this minus the zone's UTC offset.
    pub fn naive_epoch_s(&self) -> i64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.min) * 60 + i64::from(self.sec)
    }

    /// The epoch second (UTC) of this local time in a zone `utc_offset_s`
    /// east of UTC (3600 for CET): local − offset. `None` on overflow.
    pub fn utc_epoch_s(&self, utc_offset_s: i64) -> Option<i64> {
        self.naive_epoch_s().checked_sub(utc_offset_s)
    }
}

impl std::fmt::Display for LocalTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.min, self.sec
        )
    }
}

/// Whether `year` of the proleptic Gregorian calendar is a leap year.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`; 0 for a month outside 1–12.
pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to `year-month-day` of the proleptic Gregorian
/// calendar (negative before it). Howard Hinnant's `days_from_civil`:
/// years counted from March, so the leap day is the last of its year, in
/// eras of 400 years (146097 days) that repeat exactly.
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    // March = 0 … February = 11.
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468: days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn civil_days_at_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // 2025-03-14 00:00:00 UTC is 1741910400 (`date -u -d 2025-03-14 +%s`).
        assert_eq!(days_from_civil(2025, 3, 14) * 86_400, 1_741_910_400);
        assert_eq!(
            days_from_civil(2024, 2, 29) + 1,
            days_from_civil(2024, 3, 1)
        );
    }

    #[test]
    fn timestamps_are_checked() {
        let t = LocalTimestamp::parse("2025-03-14 10:15:02").unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.min, t.sec),
            (2025, 3, 14, 10, 15, 2)
        );
        assert_eq!(t.to_string(), "2025-03-14 10:15:02");
        assert_eq!(
            t.utc_epoch_s(3600),
            Some(1_741_910_400 + 9 * 3600 + 15 * 60 + 2)
        );
        for bad in [
            "2025-02-29 10:00:00",
            "2025-13-01 10:00:00",
            "2025-03-14 24:00:00",
            "2025-03-14T10:00:00",
            "2025-03-14 10:00:0",
            "２025-03-14 10:00:00",
        ] {
            assert_eq!(LocalTimestamp::parse(bad), None, "{bad:?}");
        }
    }
}
