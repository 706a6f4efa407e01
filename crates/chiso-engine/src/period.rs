//! Reporting periods: what `2025-W28`, `2025-07`, `2025-Q3`, `2025`,
//! `2025-07-01..2025-07-15` and `last-week` mean (docs/kpis.md, "Periods").
//!
//! A period is a half-open range of local dates `[start, end)`; its instants
//! are the local midnights of those dates. The evaluation instant is
//! `T = min(end, now)`.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc, Weekday};

use chiso_core::time::{local_date, local_midnight};

/// The kind of a period, which decides what "the previous period" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
    /// A custom range of whole days.
    Range,
}

impl Grain {
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ => return Err(PeriodError::Grain(text.chars().take(32).collect())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
            Self::Range => "range",
        }
    }
}

/// A reporting period: local dates `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub grain: Grain,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The first and last years a period or a date may fall in. Dossiers of
/// the one-stop desks are of this century; bounding the years keeps every
/// piece of date arithmetic (the previous period, local midnights, series)
/// far from chrono's limits, where it would panic.
pub const FIRST_YEAR: i32 = 1900;
pub const LAST_YEAR: i32 = 2100;

/// The most periods one series may have (`kpi_series`, `/api/trend`):
/// a bit more than a year of days.
pub const MAX_SERIES_PERIODS: usize = 400;

/// A period or date that could not be read, with the forms that are accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error(
        "`{0}` is not a period; use 2025-W28 (ISO week), 2025-07 (month), 2025-Q3, 2025, \
         2025-07-14 (day), 2025-07-01..2025-07-15 (inclusive dates), this-week, last-week, \
         this-month, last-month, this-quarter, last-quarter, this-year or last-year"
    )]
    Form(String),
    #[error("`{0}` is not a date; use YYYY-MM-DD, for example 2025-07-14")]
    Date(String),
    #[error("`{0}` is outside the years {FIRST_YEAR}-{LAST_YEAR} that chiso reports on")]
    Years(String),
    #[error(
        "a {grain} series from {from} to {to} has more than {MAX_SERIES_PERIODS} periods; \
         use a coarser grain or a shorter range"
    )]
    SeriesTooLong {
        grain: &'static str,
        from: NaiveDate,
        to: NaiveDate,
    },
    #[error("a series from {from} to {to} is empty: {from} is after {to}")]
    Reversed { from: NaiveDate, to: NaiveDate },
    #[error("unknown grain `{0}`; use day, week, month, quarter or year")]
    Grain(String),
}

/// `at`, read from `text`, when it falls in the years chiso reports on.
pub fn instant_in_years(text: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, PeriodError> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&local_date(at).year()) {
        Ok(at)
    } else {
        Err(PeriodError::Years(text.chars().take(40).collect()))
    }
}

fn clamp_to_years(date: NaiveDate) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).unwrap_or(NaiveDate::MIN);
    let last = NaiveDate::from_ymd_opt(LAST_YEAR, 12, 31).unwrap_or(NaiveDate::MAX);
    date.clamp(first, last)
}

fn within_years(date: NaiveDate) -> bool {
    (FIRST_YEAR..=LAST_YEAR).contains(&date.year())
}

/// Reads a date as `YYYY-MM-DD`, within the years chiso reports on.
pub fn parse_date(text: &str) -> Result<NaiveDate, PeriodError> {
    let date = read_date(text).ok_or_else(|| PeriodError::Date(text.to_owned()))?;
    if within_years(date) {
        Ok(date)
    } else {
        Err(PeriodError::Years(text.to_owned()))
    }
}

impl Period {
    /// Reads a period; `now` resolves the relative forms (`last-week`, …).
    /// Years are checked before any date is computed from them.
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Self, PeriodError> {
        let period = Self::parse_form(text, now)?;
        if within_years(period.start) && within_years(period.last_day()) {
            Ok(period)
        } else {
            Err(PeriodError::Years(text.trim().to_owned()))
        }
    }

    fn parse_form(text: &str, now: DateTime<Utc>) -> Result<Self, PeriodError> {
        let error = || PeriodError::Form(text.to_owned());
        let years = || PeriodError::Years(text.trim().to_owned());
        // A year outside the range is refused as such before chrono sees it.
        let bounded_year = |digits: &str| -> Result<i32, PeriodError> {
            let year: i32 = digits.parse().map_err(|_| error())?;
            if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
                Ok(year)
            } else {
                Err(years())
            }
        };
        let trimmed = text.trim();
        let today = local_date(now);
        let relative = match trimmed.to_ascii_lowercase().as_str() {
            "today" => Some(Self::day(today)),
            "yesterday" => Some(Self::day(today - Duration::days(1))),
            "this-week" => Some(Self::week_of(today)),
            "last-week" => Some(Self::week_of(today).previous()),
            "this-month" => Some(Self::month_of(today)),
            "last-month" => Some(Self::month_of(today).previous()),
            "this-quarter" => Some(Self::quarter_of(today)),
            "last-quarter" => Some(Self::quarter_of(today).previous()),
            "this-year" => Some(Self::year_of(today)),
            "last-year" => Some(Self::year_of(today).previous()),
            _ => None,
        };
        if let Some(period) = relative {
            return Ok(period);
        }
        if let Some((from, to)) = trimmed.split_once("..") {
            let bounded = |text: &str| match parse_date(text) {
                Err(PeriodError::Years(_)) => Err(years()),
                Err(_) => Err(error()),
                Ok(date) => Ok(date),
            };
            let (from, to) = (bounded(from)?, bounded(to)?);
            if to < from {
                return Err(error());
            }
            return Ok(Self {
                grain: Grain::Range,
                start: from,
                end: to + Duration::days(1),
            });
        }
        if let Some(date) = read_date(trimmed) {
            return if within_years(date) {
                Ok(Self::day(date))
            } else {
                Err(years())
            };
        }
        let upper = trimmed.to_ascii_uppercase();
        if let Some((year, week)) = upper.split_once("-W") {
            let year = bounded_year(year)?;
            let week = week.parse().map_err(|_| error())?;
            let monday = NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(error)?;
            return Ok(Self::week_of(monday));
        }
        if let Some((year, quarter)) = upper.split_once("-Q") {
            let year = bounded_year(year)?;
            let quarter: u32 = quarter.parse().map_err(|_| error())?;
            if !(1..=4).contains(&quarter) {
                return Err(error());
            }
            let first =
                NaiveDate::from_ymd_opt(year, (quarter - 1) * 3 + 1, 1).ok_or_else(error)?;
            return Ok(Self::quarter_of(first));
        }
        if let Some((year_text, month)) = trimmed.split_once('-') {
            let year = bounded_year(year_text)?;
            let month = month.parse().map_err(|_| error())?;
            let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(error)?;
            return Ok(Self::month_of(first));
        }
        if trimmed.len() == 4 {
            let year = bounded_year(trimmed)?;
            let first = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(error)?;
            return Ok(Self::year_of(first));
        }
        Err(error())
    }

    pub fn day(date: NaiveDate) -> Self {
        Self {
            grain: Grain::Day,
            start: date,
            end: date + Duration::days(1),
        }
    }

    /// The ISO week (Monday to Sunday) holding `date`.
    pub fn week_of(date: NaiveDate) -> Self {
        let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
        Self {
            grain: Grain::Week,
            start: monday,
            end: monday + Duration::days(7),
        }
    }

    pub fn month_of(date: NaiveDate) -> Self {
        let first = date.with_day(1).unwrap_or(date);
        Self {
            grain: Grain::Month,
            start: first,
            end: add_months(first, 1),
        }
    }

    pub fn quarter_of(date: NaiveDate) -> Self {
        let month = (date.month0() / 3) * 3 + 1;
        let first = NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date);
        Self {
            grain: Grain::Quarter,
            start: first,
            end: add_months(first, 3),
        }
    }

    pub fn year_of(date: NaiveDate) -> Self {
        let first = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date);
        Self {
            grain: Grain::Year,
            start: first,
            end: add_months(first, 12),
        }
    }

    /// The period of `grain` holding `date`.
    pub fn of(grain: Grain, date: NaiveDate) -> Self {
        match grain {
            Grain::Day | Grain::Range => Self::day(date),
            Grain::Week => Self::week_of(date),
            Grain::Month => Self::month_of(date),
            Grain::Quarter => Self::quarter_of(date),
            Grain::Year => Self::year_of(date),
        }
    }

    /// The period just before this one, of the same kind (for a custom range:
    /// the same number of days just before it).
    pub fn previous(&self) -> Self {
        match self.grain {
            Grain::Range => {
                let days = self.end - self.start;
                Self {
                    grain: Grain::Range,
                    start: self.start - days,
                    end: self.start,
                }
            }
            grain => Self::of(grain, self.start - Duration::days(1)),
        }
    }

    /// The periods of `grain` that cover `[from, to]`, oldest first; at
    /// most [`MAX_SERIES_PERIODS`], refused before more are made, and at
    /// least one.
    pub fn series(grain: Grain, from: NaiveDate, to: NaiveDate) -> Result<Vec<Self>, PeriodError> {
        if from > to {
            return Err(PeriodError::Reversed { from, to });
        }
        let too_long = move || PeriodError::SeriesTooLong {
            grain: grain.as_str(),
            from,
            to,
        };
        // A page's 13 weeks before 1900-W01 reach into 1899: clamped, so
        // that the dates a series walks stay within the years.
        let (from, to) = (clamp_to_years(from), clamp_to_years(to));
        // A day is the finest grain: more days than periods allowed is
        // refused without walking them.
        if grain == Grain::Day && (to - from).num_days() >= MAX_SERIES_PERIODS as i64 {
            return Err(too_long());
        }
        let mut periods = Vec::new();
        let mut period = Self::of(grain, from);
        while period.start <= to {
            if periods.len() == MAX_SERIES_PERIODS {
                return Err(too_long());
            }
            periods.push(period);
            period = Self::of(grain, period.end);
        }
        Ok(periods)
    }

    /// The instant the period starts (local midnight of `start`).
    pub fn start_at(&self) -> DateTime<Utc> {
        local_midnight(self.start)
    }

    /// The instant the period ends (local midnight of `end`).
    pub fn end_at(&self) -> DateTime<Utc> {
        local_midnight(self.end)
    }

    /// The evaluation instant `T = min(end, now)`.
    pub fn evaluation_instant(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.end_at().min(now)
    }

    /// The last day of the period (inclusive).
    pub fn last_day(&self) -> NaiveDate {
        self.end - Duration::days(1)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.grain {
            Grain::Day => write!(f, "{}", self.start),
            Grain::Week => {
                let week = self.start.iso_week();
                write!(f, "{}-W{:02}", week.year(), week.week())
            }
            Grain::Month => write!(f, "{}", self.start.format("%Y-%m")),
            Grain::Quarter => write!(f, "{}-Q{}", self.start.year(), self.start.month0() / 3 + 1),
            Grain::Year => write!(f, "{}", self.start.year()),
            Grain::Range => write!(f, "{}..{}", self.start, self.last_day()),
        }
    }
}

fn read_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    (text.len() == 10)
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_add_months(Months::new(months)).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        // Wednesday 2025-07-16 09:00 local.
        chiso_core::time::parse_timestamp("2025-07-16T09:00:00+07:00").unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn every_form_reads_as_local_dates() {
        let cases = [
            ("2025-W28", "2025-07-07", "2025-07-14"),
            ("2025-w01", "2024-12-30", "2025-01-06"),
            ("2025-07", "2025-07-01", "2025-08-01"),
            ("2025-Q3", "2025-07-01", "2025-10-01"),
            ("2025", "2025-01-01", "2026-01-01"),
            ("2025-07-14", "2025-07-14", "2025-07-15"),
            ("2025-07-01..2025-07-15", "2025-07-01", "2025-07-16"),
            ("this-week", "2025-07-14", "2025-07-21"),
            ("last-week", "2025-07-07", "2025-07-14"),
            ("this-month", "2025-07-01", "2025-08-01"),
            ("last-month", "2025-06-01", "2025-07-01"),
            ("last-quarter", "2025-04-01", "2025-07-01"),
            ("last-year", "2024-01-01", "2025-01-01"),
        ];
        for (text, start, end) in cases {
            let period = Period::parse(text, now()).unwrap();
            assert_eq!(
                (period.start, period.end),
                (date(start), date(end)),
                "{text}"
            );
        }
    }

    #[test]
    fn labels_read_back() {
        for text in [
            "2025-W28",
            "2025-07",
            "2025-Q3",
            "2025",
            "2025-07-14",
            "2025-07-01..2025-07-15",
        ] {
            assert_eq!(Period::parse(text, now()).unwrap().to_string(), text);
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        for text in [
            "",
            "2025-W54",
            "2025-13",
            "2025-Q5",
            "July",
            "2025-07-15..2025-07-01",
            "25",
        ] {
            let error = Period::parse(text, now()).unwrap_err();
            assert!(error.to_string().contains("2025-W28"), "{text}");
        }
    }

    #[test]
    fn evaluation_instant_is_the_end_or_now() {
        let past = Period::parse("2025-W27", now()).unwrap();
        assert_eq!(past.evaluation_instant(now()), past.end_at());
        let running = Period::parse("this-week", now()).unwrap();
        assert_eq!(running.evaluation_instant(now()), now());
        assert_eq!(past.end_at().to_rfc3339(), "2025-07-06T17:00:00+00:00");
    }

    #[test]
    fn previous_and_series() {
        let week = Period::parse("2025-W01", now()).unwrap();
        assert_eq!(week.previous().to_string(), "2024-W52");
        let range = Period::parse("2025-07-01..2025-07-10", now()).unwrap();
        assert_eq!(range.previous().to_string(), "2025-06-21..2025-06-30");
        let months = Period::series(Grain::Month, date("2025-01-15"), date("2025-12-31"));
        assert_eq!(months.map(|m| m.len()), Ok(12));
        let weeks = Period::series(Grain::Week, date("2025-01-01"), date("2025-12-31"));
        assert_eq!(weeks.map(|w| w.len()), Ok(53));
    }

    #[test]
    fn years_outside_the_range_are_refused_before_any_arithmetic() {
        for text in [
            "-262143-Q1",
            "-262143-W01",
            "+262142-12",
            "1899",
            "2101-01",
            "1899-12-31",
            "1899-12-31..2025-01-01",
            "2025-01-01..2101-01-01",
        ] {
            let error = Period::parse(text, now()).expect_err(text);
            assert!(matches!(error, PeriodError::Years(_)), "{text}: {error}");
            assert!(error.to_string().contains("1900-2100"), "{text}: {error}");
        }
        assert!(Period::parse("2101-W01", now()).is_err());
        assert_eq!(
            Period::parse("1900", now()).map(|p| p.to_string()),
            Ok("1900".into())
        );
        assert!(Period::parse("1900-01-01", now()).is_ok_and(|p| p.previous().end == p.start));
        assert!(parse_date("-100000-01-01").is_err());
        assert!(matches!(
            parse_date("2101-01-01"),
            Err(PeriodError::Years(_))
        ));
    }

    #[test]
    fn series_are_refused_before_they_grow() {
        let too_long = Period::series(Grain::Day, date("1900-01-01"), date("2100-12-31"));
        assert!(matches!(too_long, Err(PeriodError::SeriesTooLong { .. })));
        let weeks = Period::series(Grain::Week, date("2000-01-01"), date("2025-01-01"));
        assert!(matches!(weeks, Err(PeriodError::SeriesTooLong { .. })));
        let days = Period::series(Grain::Day, date("2025-01-01"), date("2025-12-31"));
        assert_eq!(days.map(|d| d.len()), Ok(365));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_period_or_an_error(text in "\\PC{0,40}") {
            let _ = Period::parse(&text, now());
            let _ = parse_date(&text);
        }

        #[test]
        fn period_shaped_text_is_a_period_or_an_error(
            sign in "[-+]?",
            year in 0u32..10_000_000,
            separator in "-|-W|-w|-Q|-q|",
            number in 0u32..100_000,
            tail in "(\\.\\.[-+]?[0-9]{1,7}-[0-9]{2}-[0-9]{2})?",
        ) {
            let text = format!("{sign}{year}{separator}{number}{tail}");
            if let Ok(period) = Period::parse(&text, now()) {
                // Whatever parses can be worked with.
                let _ = (period.previous(), period.start_at(), period.end_at(), period.to_string());
                let _ = Period::series(Grain::Day, period.start, period.last_day());
            }
        }

        #[test]
        fn series_of_any_dates_are_bounded(
            from in -400_000i32..400_000,
            days in 0i64..200_000,
            grain in 0usize..5,
        ) {
            let grain = [Grain::Day, Grain::Week, Grain::Month, Grain::Quarter, Grain::Year][grain];
            if let Some(from) = NaiveDate::from_num_days_from_ce_opt(from)
                && let Some(to) = from.checked_add_signed(Duration::days(days))
                && let Ok(periods) = Period::series(grain, from, to)
            {
                proptest::prop_assert!(periods.len() <= MAX_SERIES_PERIODS);
            }
        }
    }
}
