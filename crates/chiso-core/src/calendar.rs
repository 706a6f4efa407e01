//! Working days and due dates.
//!
//! A working day is Monday to Friday, minus public holidays, plus the make-up
//! Saturdays (làm bù) the government declares. The special days come from an
//! editable CSV `date,kind,name` with `kind` = `holiday` or `workday`; the
//! built-in one covers 2024–2026 and operators replace it as decisions appear.
//!
//! Due dates follow the one-stop software: processing starts on the day of
//! reception if that is a working day and the dossier came in before 15:00,
//! otherwise on the next working day; a procedure with a statutory time of N
//! working days is due by the end of office hours (17:00) of the N-th working
//! day after that start day (N = 0: the start day itself).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc, Weekday};

use crate::CoreError;
use crate::time::{business_offset, local_instant};

/// A day the calendar treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialDayKind {
    /// A public holiday or a swapped day off.
    Holiday,
    /// A weekend day worked in exchange for a day off.
    Workday,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialDay {
    pub kind: SpecialDayKind,
    pub name: String,
}

/// Reception at or after this local time counts from the next working day.
pub fn reception_cutoff() -> NaiveTime {
    NaiveTime::from_hms_opt(15, 0, 0).expect("valid time")
}

/// The end of office hours, at which a due date falls.
pub fn office_close() -> NaiveTime {
    NaiveTime::from_hms_opt(17, 0, 0).expect("valid time")
}

/// Office hours of a working day, local, as seconds since midnight: the
/// morning and afternoon sessions (07:00–11:00, 13:00–17:00), eight hours.
/// The time an officer has left on a dossier counts these alone.
pub const OFFICE_SESSIONS: [(u32, u32); 2] = [(7 * 3600, 11 * 3600), (13 * 3600, 17 * 3600)];

/// The most days [`WorkCalendar::working_seconds_between`] walks: a due date
/// further away than this (30 years) is no question of office hours.
const MOST_DAYS_WALKED: i64 = 30 * 366;

/// The working-day calendar.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    special: BTreeMap<NaiveDate, SpecialDay>,
}

const BUILTIN_HOLIDAYS: &str = include_str!("../data/holidays.csv");

impl WorkCalendar {
    /// Vietnam's holidays and make-up days for 2024–2026 (2026 provisional).
    pub fn builtin() -> Self {
        Self::from_csv("built-in holidays.csv", BUILTIN_HOLIDAYS.as_bytes())
            .expect("the built-in calendar is valid (checked by tests)")
    }

    /// Reads an edited calendar from a file.
    pub fn from_path(path: &Path) -> Result<Self, CoreError> {
        let file = std::fs::File::open(path).map_err(|source| CoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_csv(&path.display().to_string(), file)
    }

    /// Reads a calendar CSV with the columns `date,kind,name`.
    pub fn from_csv(source_name: &str, reader: impl Read) -> Result<Self, CoreError> {
        let invalid = |line: u64, reason: String| CoreError::Invalid {
            source_name: source_name.to_owned(),
            line,
            reason,
        };
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let mut special = BTreeMap::new();
        for (i, record) in csv.records().enumerate() {
            let line = i as u64 + 2;
            let record = record.map_err(|e| invalid(line, e.to_string()))?;
            let date_text = record.get(0).unwrap_or("");
            let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
                .map_err(|_| invalid(line, format!("`{date_text}` is not a date (YYYY-MM-DD)")))?;
            let kind = match record.get(1).unwrap_or("") {
                "holiday" => SpecialDayKind::Holiday,
                "workday" => SpecialDayKind::Workday,
                other => {
                    return Err(invalid(
                        line,
                        format!("kind `{other}` is not `holiday` or `workday`"),
                    ));
                }
            };
            let name = record.get(2).unwrap_or("").to_owned();
            if special.insert(date, SpecialDay { kind, name }).is_some() {
                return Err(invalid(line, format!("{date} is listed twice")));
            }
        }
        Ok(Self { special })
    }

    /// The holidays and make-up days, in date order.
    pub fn special_days(&self) -> impl Iterator<Item = (NaiveDate, &SpecialDay)> {
        self.special.iter().map(|(d, s)| (*d, s))
    }

    pub fn special_day(&self, date: NaiveDate) -> Option<&SpecialDay> {
        self.special.get(&date)
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.special.get(&date).map(|s| s.kind) {
            Some(SpecialDayKind::Holiday) => false,
            Some(SpecialDayKind::Workday) => true,
            None => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> NaiveDate {
        let mut day = date;
        loop {
            day = day.succ_opt().expect("dates stay far from chrono's limits");
            if self.is_working_day(day) {
                return day;
            }
        }
    }

    /// The `n`-th working day after `date` (`date` itself when `n` is 0).
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> NaiveDate {
        (0..n).fold(date, |day, _| self.next_working_day(day))
    }

    /// The day processing of a dossier received at `received_at` starts.
    pub fn processing_start_day(&self, received_at: DateTime<Utc>) -> NaiveDate {
        let local = received_at.with_timezone(&business_offset());
        let date = local.date_naive();
        if self.is_working_day(date) && local.time() < reception_cutoff() {
            date
        } else {
            self.next_working_day(date)
        }
    }

    /// The appointment instant (ngày hẹn trả) of a dossier received at
    /// `received_at` for a procedure of `working_days` statutory days.
    pub fn due_at(&self, received_at: DateTime<Utc>, working_days: u32) -> DateTime<Utc> {
        let start = self.processing_start_day(received_at);
        local_instant(self.add_working_days(start, working_days), office_close())
    }

    /// Office close on the `n`-th working day after the local day of `at`
    /// (that day itself when `n` is 0): the horizon of "due within the
    /// next `n` working days".
    pub fn working_day_close(&self, at: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        let day = at.with_timezone(&business_offset()).date_naive();
        local_instant(self.add_working_days(day, n), office_close())
    }

    /// Seconds of office hours ([`OFFICE_SESSIONS`] on working days) from
    /// `from` to `to`; 0 when `to` is not after `from`, `None` when they
    /// are more than 30 years apart.
    pub fn working_seconds_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<i64> {
        if to <= from {
            return Some(0);
        }
        let local = |instant: DateTime<Utc>| instant.with_timezone(&business_offset());
        let (first, last) = (local(from).date_naive(), local(to).date_naive());
        if (last - first).num_days() > MOST_DAYS_WALKED {
            return None;
        }
        let mut seconds = 0i64;
        for day in first.iter_days().take_while(|day| *day <= last) {
            if !self.is_working_day(day) {
                continue;
            }
            let start = if day == first {
                local_seconds_of_day(from)
            } else {
                0
            };
            let end = if day == last {
                local_seconds_of_day(to)
            } else {
                86_400
            };
            for (open, close) in OFFICE_SESSIONS {
                seconds += i64::from(end.min(close))
                    .saturating_sub(i64::from(start.max(open)))
                    .max(0);
            }
        }
        Some(seconds)
    }

    /// Working days in the half-open local date range `[from, to)`; negative
    /// when `to` is before `from`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let (lo, hi, sign) = if from <= to {
            (from, to, 1)
        } else {
            (to, from, -1)
        };
        let count = lo
            .iter_days()
            .take_while(|d| *d < hi)
            .filter(|d| self.is_working_day(*d))
            .count() as i64;
        sign * count
    }
}

/// Seconds since local midnight of an instant, for callers that place events
/// within office hours.
pub fn local_seconds_of_day(instant: DateTime<Utc>) -> u32 {
    instant
        .with_timezone(&business_offset())
        .time()
        .num_seconds_from_midnight()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_timestamp;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn due(received: &str, days: u32) -> String {
        let cal = WorkCalendar::builtin();
        crate::time::format_local(cal.due_at(parse_timestamp(received).unwrap(), days))
    }

    #[test]
    fn office_hours_skip_lunch_weekends_holidays_but_not_make_up_saturdays() {
        let cal = WorkCalendar::builtin();
        let at = |text: &str| parse_timestamp(text).unwrap();
        let hours = |from: &str, to: &str| {
            cal.working_seconds_between(at(from), at(to)).unwrap() as f64 / 3600.0
        };
        // Friday 2025-04-25 08:00 to its close: 08–11 and 13–17.
        assert_eq!(
            hours("2025-04-25T08:00:00+07:00", "2025-04-25T17:00:00+07:00"),
            7.0
        );
        // Over the lunch break only: nothing.
        assert_eq!(
            hours("2025-04-25T11:15:00+07:00", "2025-04-25T12:45:00+07:00"),
            0.0
        );
        // To Saturday 04-26, a make-up working day, 12:00: 7 + 4.
        assert_eq!(
            hours("2025-04-25T08:00:00+07:00", "2025-04-26T12:00:00+07:00"),
            11.0
        );
        // To Monday 04-28 17:00: 7 + 8 (Saturday) + 0 (Sunday) + 8.
        assert_eq!(
            hours("2025-04-25T08:00:00+07:00", "2025-04-28T17:00:00+07:00"),
            23.0
        );
        // Tuesday 04-29 08:00 to Monday 05-05 17:00: 7, then 30 April to 2 May
        // are holidays and the weekend is off, then 8.
        assert_eq!(
            hours("2025-04-29T08:00:00+07:00", "2025-05-05T17:00:00+07:00"),
            15.0
        );
        // Past due: nothing left.
        assert_eq!(
            hours("2025-04-29T08:00:00+07:00", "2025-04-28T17:00:00+07:00"),
            0.0
        );
        assert_eq!(
            cal.working_seconds_between(at("2025-01-01T00:00:00Z"), at("2099-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn the_close_of_the_nth_working_day() {
        let cal = WorkCalendar::builtin();
        let close = |at: &str, n: u32| {
            crate::time::format_local(cal.working_day_close(parse_timestamp(at).unwrap(), n))
        };
        // Friday, then the make-up Saturday, then Monday.
        assert_eq!(
            close("2025-04-25T08:00:00+07:00", 0),
            "2025-04-25T17:00:00+07:00"
        );
        assert_eq!(
            close("2025-04-25T08:00:00+07:00", 2),
            "2025-04-28T17:00:00+07:00"
        );
        // Over the 30 April – 2 May holidays.
        assert_eq!(
            close("2025-04-29T08:00:00+07:00", 2),
            "2025-05-06T17:00:00+07:00"
        );
        // From a Sunday: Monday and Tuesday.
        assert_eq!(
            close("2025-07-13T10:00:00+07:00", 2),
            "2025-07-15T17:00:00+07:00"
        );
    }

    #[test]
    fn weekends_holidays_and_make_up_saturdays() {
        let cal = WorkCalendar::builtin();
        assert!(cal.is_working_day(d(2025, 7, 14))); // Monday
        assert!(!cal.is_working_day(d(2025, 7, 19))); // Saturday
        assert!(!cal.is_working_day(d(2025, 1, 29))); // Tết
        assert!(cal.is_working_day(d(2025, 4, 26))); // make-up Saturday
        assert!(!cal.is_working_day(d(2025, 9, 2))); // National Day
        assert_eq!(
            cal.special_day(d(2025, 1, 27)).unwrap().name,
            "Tết Nguyên đán"
        );
    }

    // Expected dates below were counted by hand on a printed 2025 calendar.
    #[test]
    fn due_dates_by_hand() {
        // Monday morning, 3 working days: Thursday.
        assert_eq!(
            due("2025-07-14T09:00:00+07:00", 3),
            "2025-07-17T17:00:00+07:00"
        );
        // Monday 15:00 sharp is after the cut-off: counting starts Tuesday.
        assert_eq!(
            due("2025-07-14T15:00:00+07:00", 3),
            "2025-07-18T17:00:00+07:00"
        );
        // 14:59 is still the same day.
        assert_eq!(
            due("2025-07-14T14:59:59+07:00", 3),
            "2025-07-17T17:00:00+07:00"
        );
        // Friday afternoon, 1 day: start Monday, due Tuesday.
        assert_eq!(
            due("2025-07-18T16:10:00+07:00", 1),
            "2025-07-22T17:00:00+07:00"
        );
        // Same-day procedure received before the cut-off.
        assert_eq!(
            due("2025-07-15T10:00:00+07:00", 0),
            "2025-07-15T17:00:00+07:00"
        );
        // Received on a Sunday: start Monday.
        assert_eq!(
            due("2025-07-20T10:00:00+07:00", 0),
            "2025-07-21T17:00:00+07:00"
        );
    }

    #[test]
    fn due_dates_across_tet_and_make_up_days() {
        // Friday 24 Jan 2025, 5 days: Mon 27 – Fri 31 are Tết, so
        // Feb 3, 4, 5, 6, 7 → Friday 7 February.
        assert_eq!(
            due("2025-01-24T08:30:00+07:00", 5),
            "2025-02-07T17:00:00+07:00"
        );
        // Received in UTC late on 23 Jan = 24 Jan 06:00 local: same as above.
        assert_eq!(due("2025-01-23T23:00:00Z", 5), "2025-02-07T17:00:00+07:00");
        // Thursday 24 Apr 2025, 2 days: Fri 25, Sat 26 (make-up) → Saturday.
        assert_eq!(
            due("2025-04-24T08:00:00+07:00", 2),
            "2025-04-26T17:00:00+07:00"
        );
        // Tue 29 Apr 2025, 3 days: 30/4, 1/5, 2/5 off, weekend → 5, 6, 7 May.
        assert_eq!(
            due("2025-04-29T10:00:00+07:00", 3),
            "2025-05-07T17:00:00+07:00"
        );
        // Friday 29 Aug 2025 after 15:00, 1 day: 1–2 Sep off → start Wed 3, due Thu 4.
        assert_eq!(
            due("2025-08-29T15:30:00+07:00", 1),
            "2025-09-04T17:00:00+07:00"
        );
    }

    #[test]
    fn working_days_between_counts_half_open() {
        let cal = WorkCalendar::builtin();
        assert_eq!(cal.working_days_between(d(2025, 7, 14), d(2025, 7, 21)), 5);
        assert_eq!(cal.working_days_between(d(2025, 1, 24), d(2025, 2, 4)), 2);
        assert_eq!(cal.working_days_between(d(2025, 7, 21), d(2025, 7, 14)), -5);
    }

    #[test]
    fn an_edited_calendar_is_read_and_errors_name_the_line() {
        let text = "date,kind,name\n2027-01-01,holiday,Tết Dương lịch\n2027-02-31,holiday,X\n";
        let err = WorkCalendar::from_csv("h.csv", text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "h.csv, line 3: `2027-02-31` is not a date (YYYY-MM-DD)"
        );
        let ok =
            WorkCalendar::from_csv("h.csv", "date,kind,name\n2027-01-01,holiday,X\n".as_bytes())
                .unwrap();
        assert!(!ok.is_working_day(d(2027, 1, 1)));
    }
}
