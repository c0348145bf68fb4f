//! Timestamp parsing shared by the syslog header layer and the grammar transforms.
//!
//! Hand-written digit scanning rather than a format-string parser: these run once or
//! twice per message on the hot path, and the vendor forms are few and fixed.

use chrono::{NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// The zone applied to timestamps that carry none (RFC 3164 stamps, CEF `rt` without zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DefaultZone {
    #[default]
    Utc,
    /// Fixed offset in seconds east of UTC.
    Fixed(i32),
    Named(Tz),
}

impl DefaultZone {
    /// Accepts `UTC`, `Z`, `+02:00`, `-0530` or an IANA name such as `Europe/Berlin`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = crate::format::trim(text);
        if text.eq_ignore_ascii_case("utc") || text == "Z" || text.eq_ignore_ascii_case("gmt") {
            return Ok(DefaultZone::Utc);
        }
        if let Some(offset) = parse_offset(text.as_bytes()) {
            return Ok(DefaultZone::Fixed(offset));
        }
        text.parse::<Tz>().map(DefaultZone::Named).map_err(|_| {
            format!("unknown time zone {text:?}: use UTC, an offset such as +02:00, or an IANA name such as Europe/Berlin")
        })
    }

    /// Milliseconds since the epoch for a wall-clock time in this zone.
    pub fn civil_to_ms(&self, c: &Civil) -> Option<i64> {
        match self {
            DefaultZone::Utc => c.to_ms(0),
            DefaultZone::Fixed(offset) => c.to_ms(*offset),
            DefaultZone::Named(tz) => {
                let naive = c.to_naive()?;
                // In a DST gap or fold, take the earlier instant: deterministic and documented.
                let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
                    tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                })?;
                Some(local.with_timezone(&chrono::Utc).timestamp_millis())
            }
        }
    }

    /// Offset in seconds in force at a UTC instant (used for `timezone_offset`).
    pub fn offset_at(&self, ms: i64) -> i32 {
        match self {
            DefaultZone::Utc => 0,
            DefaultZone::Fixed(offset) => *offset,
            DefaultZone::Named(tz) => {
                let Some(utc) = chrono::DateTime::from_timestamp_millis(ms) else {
                    return 0;
                };
                tz.offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc()
            }
        }
    }
}

/// A wall-clock date and time without zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    fn valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            // 60 for a leap second, which is folded into :59.999 below.
            && self.second <= 60
            && self.millis < 1000
    }

    /// Milliseconds since the epoch, given the zone's offset in seconds east of UTC.
    pub fn to_ms(&self, offset_secs: i32) -> Option<i64> {
        if !self.valid() {
            return None;
        }
        let days = days_from_civil(self.year as i64, self.month, self.day);
        let second = self.second.min(59) as i64;
        let millis = if self.second == 60 {
            999
        } else {
            self.millis as i64
        };
        let secs = days * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + second
            - offset_secs as i64;
        Some(secs * 1000 + millis)
    }

    fn to_naive(self) -> Option<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)?.and_hms_milli_opt(
            self.hour,
            self.minute,
            self.second.min(59),
            self.millis,
        )
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 (proleptic Gregorian), after Howard Hinnant's algorithm.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Month number from a three-letter English abbreviation, any case.
pub fn month_from_abbr(text: &[u8]) -> Option<u32> {
    if text.len() < 3 {
        return None;
    }
    let key = [
        text[0].to_ascii_lowercase(),
        text[1].to_ascii_lowercase(),
        text[2].to_ascii_lowercase(),
    ];
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    MONTHS.iter().position(|m| **m == key).map(|i| i as u32 + 1)
}

/// Reads exactly `n` ASCII digits at the start of `text`.
fn digits(text: &[u8], n: usize) -> Option<u32> {
    if text.len() < n {
        return None;
    }
    let mut value = 0u32;
    for &b in &text[..n] {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + (b - b'0') as u32;
    }
    Some(value)
}

/// Reads a fraction `.ddd…` and returns (milliseconds, bytes consumed).
fn fraction(text: &[u8]) -> (u32, usize) {
    if text.first() != Some(&b'.') && text.first() != Some(&b',') {
        return (0, 0);
    }
    let mut i = 1;
    let mut millis = 0u32;
    while i < text.len() && text[i].is_ascii_digit() {
        if i <= 3 {
            millis = millis * 10 + (text[i] - b'0') as u32;
        }
        i += 1;
    }
    if i == 1 {
        return (0, 0);
    }
    for _ in i..4 {
        millis *= 10;
    }
    (millis, i)
}

/// `Z`, `+hh:mm`, `+hhmm`, `+hh` → seconds east of UTC.
pub fn parse_offset(text: &[u8]) -> Option<i32> {
    match text {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let hours = digits(rest, 2)?;
            let minutes = match &rest[2..] {
                [] => 0,
                [b':', m @ ..] if m.len() == 2 => digits(m, 2)?,
                m if m.len() == 2 => digits(m, 2)?,
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = (hours * 3600 + minutes * 60) as i32;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// Parses `hh:mm:ss[.fff]` and returns (h, m, s, ms, consumed).
fn clock(text: &[u8]) -> Option<(u32, u32, u32, u32, usize)> {
    let hour = digits(text, 2)?;
    if text.get(2) != Some(&b':') {
        return None;
    }
    let minute = digits(&text[3..], 2)?;
    if text.get(5) != Some(&b':') {
        return None;
    }
    let second = digits(&text[6..], 2)?;
    let (millis, used) = fraction(&text[8..]);
    Some((hour, minute, second, millis, 8 + used))
}

/// An ISO 8601 / RFC 3339 stamp at the start of `text`: `yyyy-mm-dd[T ]hh:mm:ss[.f][zone]`.
/// Returns the civil time, its offset if one was written, and the bytes consumed.
pub fn parse_iso_prefix(text: &[u8]) -> Option<(Civil, Option<i32>, usize)> {
    let year = digits(text, 4)?;
    if text.get(4) != Some(&b'-') || text.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(&text[5..], 2)?;
    let day = digits(&text[8..], 2)?;
    if !matches!(text.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hour, minute, second, millis, used) = clock(&text[11..])?;
    let mut end = 11 + used;
    let rest = &text[end..];
    let offset = match rest.first() {
        Some(b'Z' | b'z') => {
            end += 1;
            Some(0)
        }
        Some(b'+' | b'-') => {
            let len = if rest.get(3) == Some(&b':') {
                6
            } else if rest.len() >= 5 && rest[1..5].iter().all(u8::is_ascii_digit) {
                5
            } else {
                3
            };
            let offset = parse_offset(rest.get(..len)?)?;
            end += len;
            Some(offset)
        }
        _ => None,
    };
    let civil = Civil {
        year: year as i32,
        month,
        day,
        hour,
        minute,
        second,
        millis,
    };
    civil.valid().then_some((civil, offset, end))
}

/// A whole-string ISO 8601 stamp → epoch ms; zone-less stamps use `zone`.
pub fn parse_iso(text: &str, zone: &DefaultZone) -> Option<i64> {
    let bytes = crate::format::trim(text).as_bytes();
    let (civil, offset, used) = parse_iso_prefix(bytes)?;
    if used != bytes.len() {
        return None;
    }
    match offset {
        Some(offset) => civil.to_ms(offset),
        None => zone.civil_to_ms(&civil),
    }
}

/// Epoch seconds, optionally with a fraction (`1612422455.63`) → ms.
pub fn parse_epoch_seconds(text: &str) -> Option<i64> {
    // One pass over the digits: splitting, checking and `str::parse` walked them three
    // times, and every Perception Point event carries such a stamp.
    let bytes = crate::format::trim(text).as_bytes();
    let mut secs: i64 = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        // Twelve digits at most: no overflow below.
        if i == 12 {
            return None;
        }
        secs = secs * 10 + i64::from(b - b'0');
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut millis = 0i64;
    if let Some((&dot, fraction)) = bytes[i..].split_first() {
        if dot != b'.' {
            return None;
        }
        for (k, &b) in fraction.iter().enumerate() {
            if !b.is_ascii_digit() {
                return None;
            }
            if k < 3 {
                millis += i64::from(b - b'0') * [100, 10, 1][k];
            }
        }
    }
    Some(secs * 1000 + millis)
}

/// Epoch milliseconds as an integer string.
pub fn parse_epoch_millis(text: &str) -> Option<i64> {
    let text = crate::format::trim(text);
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// CEF date forms (ArcSight spec): epoch milliseconds, `MMM dd yyyy HH:mm:ss[.SSS][ zone]`,
/// `MMM dd HH:mm:ss[.SSS][ zone]` (no year: nearest to `now_ms`), or ISO 8601.
pub fn parse_cef_time(text: &str, zone: &DefaultZone, now_ms: i64) -> Option<i64> {
    let text = crate::format::trim(text);
    if let Some(ms) = parse_epoch_millis(text) {
        return Some(ms);
    }
    if let Some(ms) = parse_iso(text, zone) {
        return Some(ms);
    }
    // The same `Mmm dd [yyyy] hh:mm:ss[.SSS]` stamp as RFC 3164, then an optional zone.
    let (mut civil, year_written, used) = parse_3164_prefix(text.as_bytes())?;
    let rest = &text.as_bytes()[used..];
    let zone_text = std::str::from_utf8(rest).ok()?.trim();
    let explicit = if zone_text.is_empty() {
        None
    } else {
        Some(DefaultZone::parse(zone_text).ok()?)
    };
    let zone = explicit.as_ref().unwrap_or(zone);
    if year_written {
        zone.civil_to_ms(&civil)
    } else {
        infer_year(&mut civil, zone, now_ms)
    }
}

/// Day of month, one or two digits: `5`, `05` (returns the value and bytes used).
fn day_of_month(text: &[u8]) -> Option<(u32, usize)> {
    match (text.first(), text.get(1)) {
        (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((((a - b'0') * 10 + (b - b'0')) as u32, 2))
        }
        (Some(a), _) if a.is_ascii_digit() => Some(((a - b'0') as u32, 1)),
        _ => None,
    }
}

/// Gives a year-less stamp the year that puts it closest to the receive time.
pub fn infer_year(civil: &mut Civil, zone: &DefaultZone, now_ms: i64) -> Option<i64> {
    let (now_year, now_month) = year_and_month_of_ms(now_ms);
    // The likely year from the months alone (a December stamp received in January is from
    // the year before). If the stamp then lies within this of the receive time, it is
    // closer than in either other year: those are a year (less at most a day of offset
    // change) further off. So most stamps need one conversion, not three.
    const SURELY_CLOSEST_MS: i64 = 100 * 86_400_000;
    let likely = match civil.month as i32 - now_month as i32 {
        ..-6 => now_year + 1,
        7.. => now_year - 1,
        _ => now_year,
    };
    if let Some(ms) = zone.civil_to_ms(&Civil {
        year: likely,
        ..*civil
    }) {
        if (ms - now_ms).abs() < SURELY_CLOSEST_MS {
            civil.year = likely;
            return Some(ms);
        }
    }
    closest_of_three_years(civil, zone, now_ms, now_year)
}

/// Tries the stamp in the years around `now_year` and keeps the one closest to `now_ms`.
fn closest_of_three_years(
    civil: &mut Civil,
    zone: &DefaultZone,
    now_ms: i64,
    now_year: i32,
) -> Option<i64> {
    let mut best: Option<(i64, i32)> = None;
    for year in [now_year - 1, now_year, now_year + 1] {
        let candidate = Civil { year, ..*civil };
        if let Some(ms) = zone.civil_to_ms(&candidate) {
            let distance = (ms - now_ms).abs();
            if best.is_none_or(|(best_ms, _)| distance < (best_ms - now_ms).abs()) {
                best = Some((ms, year));
            }
        }
    }
    let (ms, year) = best?;
    civil.year = year;
    Some(ms)
}

/// The UTC year and month of a Unix time in milliseconds (January 1970 where chrono has
/// none).
fn year_and_month_of_ms(ms: i64) -> (i32, u32) {
    if (YEAR_0_MS..YEAR_10000_MS).contains(&ms) {
        let (year, month, _) = civil_from_days(ms.div_euclid(86_400_000));
        return (year as i32, month);
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| (chrono::Datelike::year(&t), chrono::Datelike::month(&t)))
        .unwrap_or((1970, 1))
}

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in Unix milliseconds: the years written
/// here without chrono.
const YEAR_0_MS: i64 = -62_167_219_200_000;
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// An RFC 3164 stamp at the start of `text`: `Mmm dd hh:mm:ss`, `Mmm  d hh:mm:ss`,
/// `Mmm d hh:mm:ss`, optionally `Mmm dd yyyy hh:mm:ss` and a trailing `:` after the time.
/// Returns (civil with year if written, year_written, bytes consumed).
pub fn parse_3164_prefix(text: &[u8]) -> Option<(Civil, bool, usize)> {
    let month = month_from_abbr(text)?;
    let mut i = 3;
    if text.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // Single-digit days are padded with a space (`Feb  1`), or not at all (`Feb 1`).
    if text.get(i) == Some(&b' ') {
        i += 1;
    }
    let (day, used) = day_of_month(&text[i..])?;
    i += used;
    if text.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let mut year = None;
    if let Some(y) = digits(&text[i..], 4) {
        if text.get(i + 4) == Some(&b' ') {
            year = Some(y as i32);
            i += 5;
        }
    }
    let (hour, minute, second, millis, used) = clock(&text[i..])?;
    i += used;
    if text.get(i) == Some(&b':') {
        i += 1;
    }
    let civil = Civil {
        year: year.unwrap_or(1970),
        month,
        day,
        hour,
        minute,
        second,
        millis,
    };
    if !(Civil {
        year: 2000,
        ..civil
    })
    .valid()
    {
        return None;
    }
    Some((civil, year.is_some(), i))
}

/// Epoch ms → RFC 3339 in UTC with milliseconds, as OCSF `*_dt` fields want.
pub fn ms_to_rfc3339(ms: i64) -> Option<String> {
    // Years 0 to 9999: every stamp a sender can mean. Outside them chrono's form (a sign,
    // more digits) or nothing, as chrono gives.
    if !(YEAR_0_MS..YEAR_10000_MS).contains(&ms) {
        return chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }
    // Written by hand, date included: chrono's format string is interpreted on every call,
    // and every event carries this stamp.
    let days = ms.div_euclid(86_400_000);
    let of_day = ms.rem_euclid(86_400_000) as u32;
    let (year, month, day) = civil_from_days(days);
    let year = year as u32;
    // Two digits at a time from a table: a division and a lookup for each pair, where each
    // digit cost a division (every event carries this stamp).
    let pair = |value: u32| {
        let at = value as usize % 100 * 2;
        [TWO_DIGITS[at], TWO_DIGITS[at + 1]]
    };
    let [y0, y1] = pair(year / 100);
    let [y2, y3] = pair(year);
    let [mo0, mo1] = pair(month);
    let [d0, d1] = pair(day);
    let [h0, h1] = pair(of_day / 3_600_000);
    let [mi0, mi1] = pair(of_day / 60_000 % 60);
    let [s0, s1] = pair(of_day / 1000 % 60);
    let millis = of_day % 1000;
    let [ms1, ms2] = pair(millis);
    let out = [
        y0,
        y1,
        y2,
        y3,
        b'-',
        mo0,
        mo1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
        b'.',
        b'0' + (millis / 100) as u8,
        ms1,
        ms2,
        b'Z',
    ];
    Some(
        std::str::from_utf8(&out)
            .expect("ASCII digits and separators")
            .to_owned(),
    )
}

/// "00" to "99", each number's two digits at twice its index.
const TWO_DIGITS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        table[2 * n] = b'0' + (n / 10) as u8;
        table[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    table
};

/// (year, month, day) of a day counted from 1970-01-01 (proleptic Gregorian), after
/// Howard Hinnant's algorithm: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule of `parse_epoch_seconds` as plainly stated: digits (1 to 12), then
    /// optionally a dot and digits, of which the first three are the milliseconds.
    fn epoch_seconds_by_parts(text: &str) -> Option<i64> {
        let text = crate::format::trim(text);
        let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
        if int_part.is_empty()
            || int_part.len() > 12
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let millis: i64 = format!("{frac_part:0<3}")[..3].parse().ok()?;
        Some(int_part.parse::<i64>().ok()? * 1000 + millis)
    }

    proptest::proptest! {
        #[test]
        fn epoch_seconds_follow_the_rule(text in r"[ 0-9.x+-]{0,18}") {
            proptest::prop_assert_eq!(parse_epoch_seconds(&text), epoch_seconds_by_parts(&text));
        }
    }

    #[test]
    fn rfc3339_stamps_match_chrono() {
        let chrono_form = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        };
        let mut samples = vec![
            0,
            -1,
            -62_167_219_200_000,
            -62_167_219_200_001,
            253_402_300_799_999,
            253_402_300_800_000,
            1_485_335_896_914,
            i64::MIN,
            i64::MAX,
        ];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x % 400_000_000_000_000);
        }
        for ms in samples {
            assert_eq!(ms_to_rfc3339(ms), chrono_form(ms), "{ms}");
        }
    }

    #[test]
    fn iso_forms() {
        let z = DefaultZone::Utc;
        assert_eq!(
            parse_iso("2017-01-25T09:18:16.914Z", &z),
            Some(1485335896914)
        );
        assert_eq!(
            parse_iso("2022-07-15T08:55:12.279Z", &z),
            Some(1657875312279)
        );
        assert_eq!(
            parse_iso("2003-10-11T22:14:15.003-07:00", &z),
            Some(1065935655003)
        );
        assert_eq!(
            parse_iso("2003-08-24T05:14:15.000003-07:00", &z),
            Some(1061727255000)
        );
        assert_eq!(parse_iso("2017-13-25T09:18:16Z", &z), None);
        let berlin = DefaultZone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            parse_iso("2020-01-01T01:00:00", &berlin),
            Some(1577836800000)
        );
    }

    #[test]
    fn epoch_forms() {
        assert_eq!(parse_epoch_seconds("1612422455.63"), Some(1612422455630));
        assert_eq!(parse_epoch_seconds("1612422455"), Some(1612422455000));
        assert_eq!(parse_epoch_seconds("16124x"), None);
        assert_eq!(
            parse_epoch_seconds(" 1612422455.6349 "),
            Some(1612422455634)
        );
        assert_eq!(parse_epoch_seconds("5."), Some(5000));
        for text in [".5", "", "1.2.3", "1 2", "1234567890123", "-5", "+5", "1e3"] {
            assert_eq!(parse_epoch_seconds(text), None, "{text:?}");
        }
        assert_eq!(parse_epoch_millis("1542903452000"), Some(1542903452000));
    }

    #[test]
    fn cef_dates() {
        let z = DefaultZone::Utc;
        assert_eq!(
            parse_cef_time("Apr 25 2025 04:59:16", &z, 0),
            Some(1745557156000)
        );
        assert_eq!(
            parse_cef_time("Jan 17 2020 08:52:10", &z, 0),
            Some(1579251130000)
        );
        assert_eq!(
            parse_cef_time("Jan 17 2020 08:52:10.250 +01:00", &z, 0),
            Some(1579247530250)
        );
        assert_eq!(parse_cef_time("1542903452000", &z, 0), Some(1542903452000));
        assert_eq!(parse_cef_time("yesterday", &z, 0), None);
    }

    #[test]
    fn year_inference_picks_nearest() {
        let z = DefaultZone::Utc;
        // Received 2026-01-02: a "Dec 31" stamp belongs to 2025.
        let now = parse_iso("2026-01-02T00:00:00Z", &z).unwrap();
        let (mut civil, written, _) = parse_3164_prefix(b"Dec 31 23:00:00 host").unwrap();
        assert!(!written);
        let ms = infer_year(&mut civil, &z, now).unwrap();
        assert_eq!(ms, parse_iso("2025-12-31T23:00:00Z", &z).unwrap());
    }

    /// Year inference as first written: all three candidate years, chrono for the year.
    fn infer_year_of_three(civil: &mut Civil, zone: &DefaultZone, now_ms: i64) -> Option<i64> {
        let now_year = chrono::DateTime::from_timestamp_millis(now_ms)
            .map(|t| chrono::Datelike::year(&t))
            .unwrap_or(1970);
        closest_of_three_years(civil, zone, now_ms, now_year)
    }

    proptest::proptest! {
        /// One conversion where the receive year is surely closest; the same year and time
        /// as trying all three years, in zones with and without daylight saving time.
        #[test]
        fn year_inference_agrees_with_trying_three_years(
            now_ms in proptest::prop_oneof![
                -70_000_000_000_000i64..260_000_000_000_000,
                1_700_000_000_000i64..1_900_000_000_000,
            ],
            month in 1u32..=12, day in 1u32..=31, hour in 0u32..24, minute in 0u32..60,
            zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/Sao_Paulo", "Pacific/Apia", "+05:30"]),
        ) {
            let zone = DefaultZone::parse(zone).unwrap();
            let civil = Civil { year: 0, month, day, hour, minute, second: 7, millis: 250 };
            let (mut fast, mut slow) = (civil, civil);
            let got = infer_year(&mut fast, &zone, now_ms);
            proptest::prop_assert_eq!(got, infer_year_of_three(&mut slow, &zone, now_ms));
            if got.is_some() {
                proptest::prop_assert_eq!(fast.year, slow.year);
            }
        }
    }

    #[test]
    fn rfc3164_day_padding() {
        assert_eq!(parse_3164_prefix(b"Feb  1 11:07:06 x").unwrap().0.day, 1);
        assert_eq!(parse_3164_prefix(b"Feb 1 11:07:06 x").unwrap().0.day, 1);
        assert_eq!(parse_3164_prefix(b"Feb 01 11:07:06 x").unwrap().0.day, 1);
        assert!(parse_3164_prefix(b"Feb 31 11:07:06 x").is_none());
    }
}
