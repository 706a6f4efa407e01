//! Instants as whole seconds since the Unix epoch, and local office hours.
//!
//! The generator handles tens of millions of instants; plain `i64` seconds
//! keep its structures small and its arithmetic cheap. Conversions to chrono
//! happen only at the edges.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use chiso_core::calendar::WorkCalendar;
use chiso_core::time::BUSINESS_OFFSET_SECONDS;

use crate::rng::Rng;

pub const DAY: i64 = 86_400;
pub const HOUR: i64 = 3_600;
pub const MINUTE: i64 = 60;
const OFFSET: i64 = BUSINESS_OFFSET_SECONDS as i64;
const OPEN: i64 = 7 * HOUR + 30 * MINUTE;
const LUNCH: i64 = 11 * HOUR + 30 * MINUTE;
const AFTERNOON: i64 = 13 * HOUR + 30 * MINUTE;
const CLOSE: i64 = 17 * HOUR;
/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAY_FROM_CE: i64 = 719_163;

pub fn local_date(t: i64) -> NaiveDate {
    let days = (t + OFFSET).div_euclid(DAY) + UNIX_EPOCH_DAY_FROM_CE;
    NaiveDate::from_num_days_from_ce_opt(days as i32).expect("instants stay within chrono's range")
}

pub fn seconds_of_day(t: i64) -> i64 {
    (t + OFFSET).rem_euclid(DAY)
}

/// The instant of a local date and a number of seconds after local midnight.
pub fn at(date: NaiveDate, seconds: i64) -> i64 {
    (i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAY_FROM_CE) * DAY + seconds - OFFSET
}

pub fn to_chrono(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("instants stay within chrono's range")
}

pub fn from_chrono(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// A random instant within office hours (07:30–11:30, 13:30–17:00) of `date`.
pub fn office_time(rng: &mut Rng, date: NaiveDate) -> i64 {
    let morning = LUNCH - OPEN;
    let offset = rng.below((morning + CLOSE - AFTERNOON) as u64) as i64;
    let seconds = if offset < morning {
        OPEN + offset
    } else {
        AFTERNOON + offset - morning
    };
    at(date, seconds)
}

/// The reception instant of a dossier on `date`: mornings are busier than
/// afternoons, and on days off only online submissions trickle in.
pub fn reception_time(rng: &mut Rng, calendar: &WorkCalendar, date: NaiveDate) -> i64 {
    if !calendar.is_working_day(date) {
        return at(date, 7 * HOUR + rng.below((14 * HOUR) as u64) as i64);
    }
    if rng.chance(0.64) {
        at(date, OPEN + rng.below((LUNCH - OPEN) as u64) as i64)
    } else {
        let span = (CLOSE - AFTERNOON) as f64;
        at(date, AFTERNOON + (span * rng.unit().powf(1.3)) as i64)
    }
}

/// `t` if it falls in office hours of a working day, otherwise a moment
/// early in the next office session; never earlier than `t`.
pub fn snap_to_office(rng: &mut Rng, calendar: &WorkCalendar, t: i64) -> i64 {
    let date = local_date(t);
    let seconds = seconds_of_day(t);
    if calendar.is_working_day(date) {
        if (OPEN..LUNCH).contains(&seconds) || (AFTERNOON..CLOSE).contains(&seconds) {
            return t;
        }
        if seconds < OPEN {
            return at(date, OPEN + rng.below(HOUR as u64) as i64);
        }
        if seconds < AFTERNOON {
            return at(date, AFTERNOON + rng.below(HOUR as u64) as i64);
        }
    }
    at(
        calendar.next_working_day(date),
        OPEN + rng.below((90 * MINUTE) as u64) as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dates_and_instants_round_trip() {
        let date = NaiveDate::from_ymd_opt(2025, 7, 14).unwrap();
        let t = at(date, 8 * HOUR + 3 * MINUTE);
        assert_eq!(
            chiso_core::time::format_local(to_chrono(t)),
            "2025-07-14T08:03:00+07:00"
        );
        assert_eq!(local_date(t), date);
        assert_eq!(local_date(at(date, DAY - 1)), date);
        assert_eq!(local_date(at(date, DAY)), date.succ_opt().unwrap());
        assert_eq!(seconds_of_day(t), 8 * HOUR + 3 * MINUTE);
    }

    #[test]
    fn snapping_moves_forward_into_office_hours() {
        let cal = WorkCalendar::builtin();
        let mut rng = Rng::new(3, 3);
        let friday_evening = at(NaiveDate::from_ymd_opt(2025, 7, 18).unwrap(), 19 * HOUR);
        let snapped = snap_to_office(&mut rng, &cal, friday_evening);
        assert_eq!(
            local_date(snapped),
            NaiveDate::from_ymd_opt(2025, 7, 21).unwrap()
        );
        assert!(snapped > friday_evening);
    }
}
