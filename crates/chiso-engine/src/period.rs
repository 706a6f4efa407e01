//! Reporting periods: what `2025-W28`, `2025-07`, `2025-Q3`, `2025`,
//! `2025-07-01..2025-07-15` and `last-week` mean (kpis.md, "Periods").
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
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ => return None,
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

/// A period that could not be read, with the forms that are accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a period; use 2025-W28 (ISO week), 2025-07 (month), 2025-Q3, 2025, \
     2025-07-14 (day), 2025-07-01..2025-07-15 (inclusive dates), this-week, last-week, \
     this-month, last-month, this-quarter, last-quarter, this-year or last-year"
)]
pub struct PeriodError(pub String);

impl Period {
    /// Reads a period; `now` resolves the relative forms (`last-week`, …).
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Self, PeriodError> {
        let error = || PeriodError(text.to_owned());
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
            let from = parse_date(from).ok_or_else(error)?;
            let to = parse_date(to).ok_or_else(error)?;
            if to < from {
                return Err(error());
            }
            return Ok(Self {
                grain: Grain::Range,
                start: from,
                end: to + Duration::days(1),
            });
        }
        if let Some(date) = parse_date(trimmed) {
            return Ok(Self::day(date));
        }
        let upper = trimmed.to_ascii_uppercase();
        if let Some((year, week)) = upper.split_once("-W") {
            let year = year.parse().map_err(|_| error())?;
            let week = week.parse().map_err(|_| error())?;
            let monday = NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(error)?;
            return Ok(Self::week_of(monday));
        }
        if let Some((year, quarter)) = upper.split_once("-Q") {
            let year: i32 = year.parse().map_err(|_| error())?;
            let quarter: u32 = quarter.parse().map_err(|_| error())?;
            if !(1..=4).contains(&quarter) {
                return Err(error());
            }
            let first =
                NaiveDate::from_ymd_opt(year, (quarter - 1) * 3 + 1, 1).ok_or_else(error)?;
            return Ok(Self::quarter_of(first));
        }
        if let Some((year, month)) = trimmed.split_once('-') {
            let year = year.parse().map_err(|_| error())?;
            let month = month.parse().map_err(|_| error())?;
            let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(error)?;
            return Ok(Self::month_of(first));
        }
        if trimmed.len() == 4 {
            let year = trimmed.parse().map_err(|_| error())?;
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

    /// The periods of `grain` that cover `[from, to]`, oldest first.
    pub fn series(grain: Grain, from: NaiveDate, to: NaiveDate) -> Vec<Self> {
        let mut periods = Vec::new();
        let mut period = Self::of(grain, from);
        while period.start <= to {
            periods.push(period);
            period = Self::of(grain, period.end);
        }
        periods
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

fn parse_date(text: &str) -> Option<NaiveDate> {
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
        assert_eq!(months.len(), 12);
        let weeks = Period::series(Grain::Week, date("2025-01-01"), date("2025-12-31"));
        assert_eq!(weeks.len(), 53);
    }
}
