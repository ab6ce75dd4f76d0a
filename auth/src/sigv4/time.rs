//! The timestamps SigV4 uses: `YYYYMMDDTHHMMSSZ` (X-Amz-Date, and the string to sign) and the
//! HTTP `Date` format botocore falls back to. Seconds since the Unix epoch throughout; no
//! date crate needed for two fixed formats.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch (negative before it, which only a broken clock gives).
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: the inverse of [`days_from_civil`].
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

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Seconds since the epoch of a validated calendar time.
fn seconds_of(year: i64, month: i64, day: i64, h: i64, m: i64, s: i64) -> Option<i64> {
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&h)
        && (0..60).contains(&m)
        && (0..60).contains(&s);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0i64, |n, b| n * 10 + i64::from(b - b'0')))
}

/// Parses `YYYYMMDDTHHMMSSZ` (SigV4's `X-Amz-Date`) into seconds since the epoch.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, to: usize| b.get(from..to).and_then(digits);
    seconds_of(
        num(0, 4)?,
        num(4, 6)?,
        num(6, 8)?,
        num(9, 11)?,
        num(11, 13)?,
        num(13, 15)?,
    )
}

/// Parses an HTTP date in the IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`), also with
/// the zone written `-0000` or `+0000`, which is what botocore writes (Python's
/// `email.utils.formatdate`) when it signs a request that already has a `Date` header.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut fields = s.split(' ');
    let (Some(weekday), Some(day), Some(month), Some(year), Some(clock), Some(zone), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    if weekday.len() != 4
        || !weekday.ends_with(',')
        || day.len() != 2
        || year.len() != 4
        || !matches!(zone, "GMT" | "-0000" | "+0000")
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)?;
    let mut hms = clock.split(':');
    let (Some(h), Some(m), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    if h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    seconds_of(
        digits(year.as_bytes())?,
        i64::try_from(month).ok()? + 1,
        digits(day.as_bytes())?,
        digits(h.as_bytes())?,
        digits(m.as_bytes())?,
        digits(sec.as_bytes())?,
    )
}

/// Formats seconds since the epoch as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        for t in [0, 1_440_938_160, 1_709_251_199, 4_102_444_800, 951_782_400] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t), "{t}");
        }
        for bad in [
            "",
            "20150830T123600",
            "20150830 123600Z",
            "20150230T123600Z",
            "20230229T000000Z",
            "20151330T123600Z",
            "20150830T243600Z",
            "20150830T126000Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "20150830T123600Zx",
            "２０150830T1236Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_parse_as_botocore_writes_them() {
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 -0000"),
            Some(1_440_938_160)
        );
        for bad in [
            "Sun, 30 Aug 2015 12:36:00 +0100",
            "Sun, 30 Aug 2015 12:36:00 UTC",
            "Sunday, 30-Aug-15 12:36:00 GMT",
            "Sun, 31 Sep 2015 12:36:00 GMT",
            "Sun, 30 Aug 2015 12:36 GMT",
            "Sun, 30 Aug 2015 12:36:00 GMT extra",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
