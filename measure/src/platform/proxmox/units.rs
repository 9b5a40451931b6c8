//! Proxmox's sizes and durations, read and written as its task logs show
//! them.
//!
//! pve-common's `render_bytes(value, 1)` prints `%.1f` and a unit of 1024:
//! `0.0 B`, `512.0 B`, `1.5 GiB` (the unit is the largest power of 1024
//! not above the value once it exceeds 1023 bytes, so `1024.0 KiB` can
//! occur). `render_duration` prints `0s`, `9s`, `7m 49s`, `2h 5m 3s`
//! (weeks and days too, a part only when not zero); the migration's total
//! is `%02d:%02d:%02d`. Older releases printed plain byte counts (`N B`).

/// Proxmox's size units, each 1024 times the one before.
const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/// Reads a size as Proxmox prints it, `NUMBER UNIT` (`1.5 GiB`, `0.0 B`,
/// `1048576 B`), into bytes rounded to the nearest one. `None` for
/// anything else: another unit, no space, a sign, an exponent, or a value
/// above 2^64. Exactly 2^64 (`16384.0 PiB`, which is how the largest
/// sizes print) reads as `u64::MAX`, so every size [`format_size`] writes
/// reads back.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = text.split_once(' ')?;
    let power = UNITS.iter().position(|u| *u == unit)?;
    let value = parse_decimal(number)? * 1024f64.powi(i32::try_from(power).ok()?);
    // 2^64 is exactly representable; `as` saturates it to u64::MAX.
    if value > 18_446_744_073_709_551_616.0 {
        return None;
    }
    Some(value.round() as u64)
}

/// How far a size read by [`parse_size`] may lie from the true value:
/// half the last printed digit in its unit (`%.1f` → 0.05 units), bytes.
/// `None` when the text is not a size.
pub fn size_resolution(text: &str) -> Option<u64> {
    let (number, unit) = text.split_once(' ')?;
    let power = UNITS.iter().position(|u| *u == unit)?;
    parse_decimal(number)?;
    let decimals = number.split_once('.').map_or(0, |(_, f)| f.len());
    let unit_bytes = 1024f64.powi(i32::try_from(power).ok()?);
    let half_digit = unit_bytes * 0.5 * 10f64.powi(-i32::try_from(decimals).ok()?);
    Some(half_digit.ceil() as u64)
}

/// Writes a size as Proxmox's `render_bytes(value, 1)` does. Values above
/// 1024 PiB stay in PiB (Proxmox would print no unit there).
pub fn format_size(bytes: f64) -> String {
    let mut power = 0;
    let mut value = bytes;
    if value > 1023.0 {
        // Truncation, as Perl's int(): 1024^k - 1 bytes is still unit k-1.
        power = ((value.ln() / 1024f64.ln()) as usize).min(UNITS.len() - 1);
        value /= 1024f64.powi(power as i32);
    }
    format!("{value:.1} {}", UNITS[power])
}

/// Reads a rate `SIZE/s` (`372.4 MiB/s`) into bytes per second.
pub fn parse_rate(text: &str) -> Option<u64> {
    parse_size(text.strip_suffix("/s")?)
}

/// Reads a duration in either of Proxmox's forms into seconds: the short
/// `render_duration` form (`0s`, `9s`, `7m 49s`, `2h 5m 3s`, `1w 2d 3h`:
/// parts in falling order, one space apart) or the total's `HH:MM:SS`
/// (hours of any width, minutes and seconds below 60). `None` for anything
/// else or beyond `u64`.
pub fn parse_duration(text: &str) -> Option<u64> {
    if text.contains(':') {
        parse_clock_duration(text)
    } else {
        parse_short_duration(text)
    }
}

/// `HH:MM:SS` into seconds.
fn parse_clock_duration(text: &str) -> Option<u64> {
    let mut parts = text.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (parse_digits(h)?, parse_digits(m)?, parse_digits(s)?);
    if m >= 60 || s >= 60 {
        return None;
    }
    h.checked_mul(3600)?.checked_add(m * 60 + s)
}

/// `render_duration`'s `2h 5m 3s` into seconds.
fn parse_short_duration(text: &str) -> Option<u64> {
    const STEPS: [(char, u64); 5] = [
        ('w', 7 * 24 * 3600),
        ('d', 24 * 3600),
        ('h', 3600),
        ('m', 60),
        ('s', 1),
    ];
    let mut total: u64 = 0;
    // Index into STEPS of the next unit allowed: parts come largest first.
    let mut next = 0;
    for part in text.split(' ') {
        let unit = part.chars().last()?;
        let step = STEPS[next..].iter().position(|(u, _)| *u == unit)? + next;
        let value = parse_digits(&part[..part.len() - unit.len_utf8()])?;
        total = total.checked_add(value.checked_mul(STEPS[step].1)?)?;
        next = step + 1;
    }
    Some(total)
}

/// Writes seconds as Proxmox's `render_duration` does (no accuracy limit).
pub fn format_short_duration(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (unit, len) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if rest >= len {
            parts.push(format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    parts.join(" ")
}

/// Writes seconds as the migration's total duration, `%02d:%02d:%02d`.
pub fn format_total_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    format!("{h:02}:{m:02}:{s:02}")
}

/// Reads an unsigned decimal integer: ASCII digits only (no sign, no
/// space), within `u64`.
pub fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Reads a plain decimal number as Perl prints one (`100`, `0.5`,
/// `12.34`): digits, at most one point with digits on both sides. No
/// sign, no exponent; finite only.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn sizes_read_as_proxmox_prints_them() {
        assert_eq!(parse_size("0.0 B"), Some(0));
        assert_eq!(parse_size("512.0 B"), Some(512));
        assert_eq!(parse_size("1.5 GiB"), Some(1_610_612_736));
        assert_eq!(parse_size("1048576 B"), Some(1_048_576));
        assert_eq!(parse_size("16.0 PiB"), Some(16 << 50));
        for bad in [
            "", "1.5", "1.5GiB", "1.5 GB", "-1.0 B", "1e3 B", ".5 B", "5. B", "1.5  GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("99999999.0 PiB"), None);
        assert_eq!(parse_size("16384.1 PiB"), None);
        // The largest sizes print as 2^64 and read back as the largest u64.
        assert_eq!(format_size(u64::MAX as f64), "16384.0 PiB");
        assert_eq!(parse_size("16384.0 PiB"), Some(u64::MAX));
        assert_eq!(size_resolution("1.5 GiB"), Some(53_687_092));
        assert_eq!(size_resolution("1048576 B"), Some(1));
    }

    #[test]
    fn sizes_write_as_render_bytes() {
        assert_eq!(format_size(0.0), "0.0 B");
        assert_eq!(format_size(1023.0), "1023.0 B");
        assert_eq!(format_size(1024.0), "1.0 KiB");
        assert_eq!(format_size(1_610_612_736.0), "1.5 GiB");
        assert_eq!(format_size(1_048_575.0), "1024.0 KiB");
    }

    #[test]
    fn durations_in_both_forms() {
        assert_eq!(parse_duration("0s"), Some(0));
        assert_eq!(parse_duration("9s"), Some(9));
        assert_eq!(parse_duration("7m 49s"), Some(469));
        assert_eq!(parse_duration("2h 5m 3s"), Some(7503));
        assert_eq!(parse_duration("1w 1h"), Some(608_400));
        assert_eq!(parse_duration("00:01:01"), Some(61));
        assert_eq!(parse_duration("123:59:59"), Some(123 * 3600 + 3599));
        for bad in [
            "",
            "s",
            "5",
            "5s 3m",
            "5m  3s",
            "3m3s",
            "00:60:00",
            "1:2:3",
            "00:00:00:00",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(format_short_duration(3605), "1h 5s");
        assert_eq!(format_total_duration(61), "00:01:01");
    }
}
