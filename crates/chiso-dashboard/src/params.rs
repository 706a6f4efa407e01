//! What a request asks for (period, ward, filters, language), as the SQL
//! literals a panel's `{{parameters}}` are filled with.

use chiso_engine::period::{Grain, Period};
use chiso_engine::queries::{date_literal, instant_literal, render, string_literal};
use chiso_engine::{EngineError, WardCode};
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use serde::Deserialize;

use crate::present::Lang;

/// The filters a page may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// Phường or xã (`wards.kind`: `phuong`, `xa`).
    Kind,
    /// The province the ward belonged to before 1 July 2025.
    Province,
}

/// Every parameter a panel's SQL may use (dashboards/README.md explains them).
pub const PARAMETERS: &[&str] = &[
    "period",
    "previous_period",
    "period_start",
    "period_end",
    "grain",
    "series_grain",
    "series_from",
    "series_to",
    "ward",
    "kind",
    "province",
    "lang",
    "now",
];

/// A request's choices; every text in it has been checked by the caller
/// (the period parsed, the ward found in the registry, the filters among the
/// registry's values), and is still quoted as a literal here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Params {
    pub period: Period,
    pub ward: Option<WardCode>,
    pub kind: Option<String>,
    pub province: Option<String>,
    pub lang: Lang,
    /// The engine's clock: what "now" means for backlogs and freshness.
    pub now: DateTime<Utc>,
}

impl Params {
    pub fn new(period: Period, lang: Lang, now: DateTime<Utc>) -> Self {
        Self {
            period,
            ward: None,
            kind: None,
            province: None,
            lang,
            now,
        }
    }

    /// The grain and inclusive date range of the trend lines: the 13 weeks
    /// up to a week, day or range; the weeks of a quarter; the 12 months up
    /// to a month; the months of a year.
    pub fn series(&self) -> (Grain, NaiveDate, NaiveDate) {
        let period = &self.period;
        let last = period.last_day();
        match period.grain {
            Grain::Week | Grain::Day | Grain::Range => {
                let to_week = Period::week_of(last);
                (Grain::Week, to_week.start - Duration::weeks(12), last)
            }
            Grain::Quarter => (Grain::Week, period.start, last),
            Grain::Month => {
                let from = period
                    .start
                    .checked_sub_months(Months::new(11))
                    .unwrap_or(period.start);
                (Grain::Month, from, last)
            }
            Grain::Year => (Grain::Month, period.start, last),
        }
    }

    /// The SQL literal of every parameter.
    pub fn literals(&self) -> Vec<(&'static str, String)> {
        let (series_grain, from, to) = self.series();
        let text = |value: Option<&str>| {
            value
                .map(string_literal)
                .unwrap_or_else(|| "CAST(NULL AS VARCHAR)".to_owned())
        };
        vec![
            ("period", string_literal(&self.period.to_string())),
            (
                "previous_period",
                string_literal(&self.period.previous().to_string()),
            ),
            ("period_start", date_literal(self.period.start)),
            ("period_end", date_literal(self.period.end)),
            ("grain", string_literal(self.period.grain.as_str())),
            ("series_grain", string_literal(series_grain.as_str())),
            ("series_from", string_literal(&from.to_string())),
            ("series_to", string_literal(&to.to_string())),
            ("ward", text(self.ward.as_ref().map(WardCode::as_str))),
            ("kind", text(self.kind.as_deref())),
            ("province", text(self.province.as_deref())),
            ("lang", string_literal(self.lang.code())),
            ("now", instant_literal(self.now)),
        ]
    }

    /// `sql` with its `{{parameters}}` filled in.
    pub fn render(&self, sql: &str) -> Result<String, EngineError> {
        render(sql, &self.literals())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-12-31T00:00:00Z")
            .map(|t| t.to_utc())
            .expect("instant")
    }

    fn period(text: &str) -> Period {
        Period::parse(text, now()).expect("period")
    }

    #[test]
    fn literals_are_quoted_and_absent_filters_are_null() {
        let mut params = Params::new(period("2025-W28"), Lang::Vi, now());
        params.province = Some("Hậu Giang's".into());
        let sql = params
            .render("{{period}} {{previous_period}} {{period_start}} {{kind}} {{province}}")
            .expect("render");
        assert_eq!(
            sql,
            "'2025-W28' '2025-W27' DATE '2025-07-07' CAST(NULL AS VARCHAR) 'Hậu Giang''s'"
        );
    }

    #[test]
    fn trends_cover_a_quarter_of_weeks_or_a_year_of_months() {
        let week = Params::new(period("2025-W28"), Lang::Vi, now()).series();
        assert_eq!(week.0, Grain::Week);
        assert_eq!(week.1.to_string(), "2025-04-14");
        assert_eq!(week.2.to_string(), "2025-07-13");
        let month = Params::new(period("2025-07"), Lang::Vi, now()).series();
        assert_eq!(
            (month.1.to_string(), month.2.to_string()),
            ("2024-08-01".into(), "2025-07-31".into())
        );
        let year = Params::new(period("2025"), Lang::En, now()).series();
        assert_eq!(
            (year.0, year.1.to_string()),
            (Grain::Month, "2025-01-01".into())
        );
    }
}
