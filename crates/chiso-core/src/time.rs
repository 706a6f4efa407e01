//! The business time zone and timestamp parsing.
//!
//! Every date boundary of the product (day, ISO week, month, quarter, year) is
//! taken in Asia/Ho_Chi_Minh. Vietnam has kept UTC+07:00 without daylight
//! saving since 1975, so a fixed offset is exact for every date the product
//! handles and avoids carrying a time-zone database.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// IANA name of the business time zone, for engines that want a zone name.
pub const BUSINESS_TIME_ZONE: &str = "Asia/Ho_Chi_Minh";

/// Offset of the business time zone from UTC, in seconds.
pub const BUSINESS_OFFSET_SECONDS: i32 = 7 * 3600;

/// The business time zone as a chrono offset.
pub fn business_offset() -> FixedOffset {
    FixedOffset::east_opt(BUSINESS_OFFSET_SECONDS).expect("+07:00 is a valid offset")
}

/// The local calendar date of an instant.
pub fn local_date(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&business_offset()).date_naive()
}

/// The instant at which a local date and clock time occur.
pub fn local_instant(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    business_offset()
        .from_local_datetime(&local)
        .single()
        .expect("a fixed offset maps every local time to exactly one instant")
        .with_timezone(&Utc)
}

/// Local midnight at the start of `date`.
pub fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    local_instant(date, NaiveTime::MIN)
}

/// An instant written as ISO-8601 in local time, e.g. `2025-07-14T08:03:00+07:00`.
pub fn format_local(instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&business_offset())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a timestamp: expected ISO-8601 such as 2025-07-14T08:03:00+07:00, \
     2025-07-14T01:03:00Z or 2025-07-14 08:03:00 (local time)"
)]
pub struct TimestampError(pub String);

const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Reads an event timestamp as `docs/events.md` allows: ISO-8601 with an offset or
/// `Z`, or without an offset, which means local time in Asia/Ho_Chi_Minh.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, TimestampError> {
    let text = text.trim();
    if let Some(instant) = parse_canonical(text.as_bytes()) {
        return Ok(instant);
    }
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    for format in LOCAL_FORMATS {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(local_instant(local.date(), local.time()));
        }
    }
    Err(TimestampError(text.to_owned()))
}

/// The shape one-stop exports use almost always, `2025-07-14T08:03:00+07:00`
/// or `2025-07-14T01:03:00Z`, read without the general parser: ingestion
/// reads tens of millions of these. Anything else returns `None` and takes
/// the general path, which also produces the error messages.
fn parse_canonical(b: &[u8]) -> Option<DateTime<Utc>> {
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let offset_seconds = match &b[19..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let seconds = (digits(20..22)? * 3600 + digits(23..25)? * 60) as i32;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let time = NaiveTime::from_hms_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?)?;
    let offset = FixedOffset::east_opt(offset_seconds)?;
    Some(
        offset
            .from_local_datetime(&date.and_time(time))
            .single()?
            .with_timezone(&Utc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_zulu_and_local_text_agree() {
        let a = parse_timestamp("2025-07-14T08:03:00+07:00").unwrap();
        let b = parse_timestamp("2025-07-14T01:03:00Z").unwrap();
        let c = parse_timestamp("2025-07-14 08:03:00").unwrap();
        let d = parse_timestamp("2025-07-14T08:03").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(format_local(a), "2025-07-14T08:03:00+07:00");
    }

    #[test]
    fn utc_evening_is_next_local_day() {
        let t = parse_timestamp("2025-07-13T17:30:00Z").unwrap();
        assert_eq!(local_date(t), NaiveDate::from_ymd_opt(2025, 7, 14).unwrap());
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_parser() {
        for text in [
            "2025-07-14T08:03:00+07:00",
            "2025-07-14T01:03:00Z",
            "2024-02-29T23:59:59-05:30",
            "2025-12-31T23:59:59+14:00",
        ] {
            let fast = parse_canonical(text.as_bytes()).unwrap();
            let general = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(fast, general, "{text}");
        }
        for text in [
            "2025-02-30T08:00:00Z",
            "2025-07-14T24:00:00Z",
            "2025-07-14T08:03:00.5Z",
            "2025-07-14 08:03:00",
        ] {
            assert_eq!(parse_canonical(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in ["", "yesterday", "2025-13-01T00:00:00Z", "14/07/2025"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
