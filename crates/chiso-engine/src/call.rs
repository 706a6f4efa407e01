//! The typed doorway: everything the product asks of the engine's figures.
//!
//! A [`Call`] is built once where text comes in (a URL, a CLI flag, a
//! dashboard parameter, a table function's arguments) out of parsed types:
//! a [`Period`], a [`Grouping`], a [`WardCode`] checked against the
//! registry. From there on nothing is formatted into SQL text and parsed
//! again: [`crate::Engine::figures`] turns a call into a DataFrame, and the
//! SQL table functions (`kpi(...)`, `kpi_series(...)`, …) are only a way of
//! spelling a call in SQL ([`Call::from_arguments`]).

use chiso_core::wards::{WardCode, WardRegistry};
use chrono::{DateTime, NaiveDate, Utc};

use crate::period::{Grain, Period, parse_date};
use crate::{Grouping, Layout, RequestError};

/// One question about the figures, with its arguments typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    /// Every KPI for a period, one row per group; with a ward, only that
    /// ward's dossiers count.
    Kpi {
        period: Period,
        by: Grouping,
        ward: Option<WardCode>,
    },
    /// The KPIs of a period against the period before, with ranks.
    Change {
        period: Period,
        by: Grouping,
        ward: Option<WardCode>,
    },
    /// The KPIs of every period of `grain` covering `from..=to`.
    Series {
        grain: Grain,
        from: NaiveDate,
        to: NaiveDate,
        by: Grouping,
        ward: Option<WardCode>,
    },
    /// The composite index per ward, with band and rank.
    Index { period: Period, layout: Layout },
    /// The composite index, one row per ward and indicator.
    IndexDetail { period: Period, layout: Layout },
    /// The derived dossiers alive in a period, as of its T.
    DossiersAt { period: Period },
    /// The dossiers in progress at `at`, not overdue, due by office close
    /// of the `days`-th working day after its day; of one ward, or all.
    DueSoon {
        at: DateTime<Utc>,
        days: u32,
        ward: Option<WardCode>,
    },
}

/// The most working days `due_soon` looks ahead: a quarter is no "soon".
pub const MOST_DUE_SOON_DAYS: u32 = 60;

/// The SQL table functions, each a spelling of one kind of [`Call`].
pub const TABLE_FUNCTIONS: [&str; 7] = [
    "kpi",
    "kpi_series",
    "kpi_change",
    "kpi_index",
    "kpi_index_detail",
    "dossiers_at",
    "due_soon",
];

impl Call {
    /// The periods the call covers, oldest first (one but for a series).
    pub fn periods(&self) -> Result<Vec<Period>, RequestError> {
        match self {
            Self::Series {
                grain, from, to, ..
            } => Ok(Period::series(*grain, *from, *to)?),
            Self::Kpi { period, .. }
            | Self::Change { period, .. }
            | Self::Index { period, .. }
            | Self::IndexDetail { period, .. }
            | Self::DossiersAt { period } => Ok(vec![*period]),
            Self::DueSoon { at, .. } => Ok(vec![Period::day(chiso_core::time::local_date(*at))]),
        }
    }

    /// The ward whose dossiers alone count, if any.
    pub fn ward(&self) -> Option<&WardCode> {
        match self {
            Self::Kpi { ward, .. }
            | Self::Change { ward, .. }
            | Self::Series { ward, .. }
            | Self::DueSoon { ward, .. } => ward.as_ref(),
            _ => None,
        }
    }

    /// The table function that spells this call in SQL.
    pub fn function(&self) -> &'static str {
        match self {
            Self::Kpi { .. } => "kpi",
            Self::Change { .. } => "kpi_change",
            Self::Series { .. } => "kpi_series",
            Self::Index { .. } => "kpi_index",
            Self::IndexDetail { .. } => "kpi_index_detail",
            Self::DossiersAt { .. } => "dossiers_at",
            Self::DueSoon { .. } => "due_soon",
        }
    }

    /// Reads a table function's text arguments (`kpi('2025-W28', 'ward')`);
    /// `now` resolves `last-week` and friends.
    pub fn from_arguments(
        function: &str,
        arguments: &[Option<String>],
        now: DateTime<Utc>,
        wards: &WardRegistry,
    ) -> Result<Self, RequestError> {
        let (name, usage, most) = match function {
            "kpi" => (
                "kpi",
                "kpi('2025-W28', 'ward') or kpi('2025-W28', 'procedure', '31135')",
                3,
            ),
            "kpi_change" => (
                "kpi_change",
                "kpi_change('2025-W28', 'ward') or kpi_change('2025-W28', 'procedure', '31135')",
                3,
            ),
            "kpi_series" => (
                "kpi_series",
                "kpi_series('week', 'ward', '2025-01-01', '2025-12-31') or with a ward code last",
                5,
            ),
            "kpi_index" => ("kpi_index", "kpi_index('2025-07', 'portal')", 2),
            "kpi_index_detail" => (
                "kpi_index_detail",
                "kpi_index_detail('2025-07', 'portal')",
                2,
            ),
            "dossiers_at" => ("dossiers_at", "dossiers_at('2025-W28')", 1),
            "due_soon" => (
                "due_soon",
                "due_soon('2025-07-14T08:00:00+07:00', 2) or due_soon('this-week', 2, '31135')",
                3,
            ),
            _ => {
                return Err(RequestError::Arguments {
                    function: "?",
                    reason: format!("`{function}` is not a table function of chiso"),
                    usage: "kpi('2025-W28', 'ward')",
                });
            }
        };
        let refuse = |reason: String| RequestError::Arguments {
            function: name,
            reason,
            usage,
        };
        if arguments.is_empty() || arguments.len() > most {
            let plural = if most == 1 { "" } else { "s" };
            return Err(refuse(format!("takes at most {most} argument{plural}")));
        }
        let text = |index: usize| -> Result<Option<&str>, RequestError> {
            match arguments.get(index) {
                None => Ok(None),
                Some(Some(text)) => Ok(Some(text.as_str())),
                Some(None) => Err(refuse(format!(
                    "argument {} must be a text literal",
                    index + 1
                ))),
            }
        };
        let required = |index: usize| -> Result<&str, RequestError> {
            text(index)?.ok_or_else(|| refuse(format!("argument {} is missing", index + 1)))
        };
        let period = |index: usize| -> Result<Period, RequestError> {
            Ok(Period::parse(required(index)?, now)?)
        };
        let by = |index: usize| Grouping::parse(text(index)?.unwrap_or("city"));
        let layout = |index: usize| Layout::parse(text(index)?.unwrap_or("portal"));
        let ward = |index: usize| -> Result<Option<WardCode>, RequestError> {
            text(index)?
                .map(|code| wards.code(code).map_err(RequestError::from))
                .transpose()
        };
        Ok(match name {
            "kpi" => Self::Kpi {
                period: period(0)?,
                by: by(1)?,
                ward: ward(2)?,
            },
            "kpi_change" => Self::Change {
                period: period(0)?,
                by: by(1)?,
                ward: ward(2)?,
            },
            "kpi_series" => {
                let date = |index: usize| -> Result<NaiveDate, RequestError> {
                    Ok(parse_date(required(index)?)?)
                };
                let call = Self::Series {
                    grain: Grain::parse(required(0)?)?,
                    from: date(2)?,
                    to: date(3)?,
                    by: by(1)?,
                    ward: ward(4)?,
                };
                // Refused here, before anything is planned.
                call.periods()?;
                call
            }
            "kpi_index" => Self::Index {
                period: period(0)?,
                layout: layout(1)?,
            },
            "kpi_index_detail" => Self::IndexDetail {
                period: period(0)?,
                layout: layout(1)?,
            },
            "due_soon" => {
                // An instant, or a period read at its T as every figure is.
                let first = required(0)?;
                let at = match Period::parse(first, now) {
                    Ok(period) => period.evaluation_instant(now),
                    Err(_) => {
                        let at = chiso_core::time::parse_timestamp(first).map_err(|_| {
                            refuse(format!(
                                "argument 1, `{}`, is neither an instant nor a period",
                                first.chars().take(40).collect::<String>()
                            ))
                        })?;
                        crate::period::instant_in_years(first, at)?
                    }
                };
                let days = match text(1)? {
                    None => 2,
                    Some(days) => days
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|days| *days <= MOST_DUE_SOON_DAYS)
                        .ok_or_else(|| {
                            refuse(format!(
                                "argument 2 is a number of working days from 0 to \
                                 {MOST_DUE_SOON_DAYS}"
                            ))
                        })?,
                };
                Self::DueSoon {
                    at,
                    days,
                    ward: ward(2)?,
                }
            }
            _ => Self::DossiersAt { period: period(0)? },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(function: &str, arguments: &[&str]) -> Result<Call, RequestError> {
        let arguments: Vec<Option<String>> =
            arguments.iter().map(|a| Some((*a).to_owned())).collect();
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Call::from_arguments(function, &arguments, now, WardRegistry::builtin())
    }

    #[test]
    fn arguments_become_a_typed_call() {
        let kpi = call("kpi", &["2025-W28", "procedure", " 31135 "]).unwrap();
        assert_eq!(kpi.function(), "kpi");
        assert_eq!(kpi.ward().map(WardCode::as_str), Some("31135"));
        let series = call("kpi_series", &["week", "ward", "2025-01-01", "2025-12-31"]).unwrap();
        assert_eq!(series.periods().unwrap().len(), 53);
        let index = call("kpi_index", &["2025-07"]).unwrap();
        assert!(matches!(
            index,
            Call::Index {
                layout: Layout::Portal,
                ..
            }
        ));
    }

    #[test]
    fn each_wrong_argument_is_its_own_error() {
        assert!(matches!(
            call("kpi", &["2025-W99"]),
            Err(RequestError::Period(_))
        ));
        assert!(matches!(
            call("kpi", &["2025-W28", "street"]),
            Err(RequestError::Grouping(_))
        ));
        assert!(matches!(
            call("kpi", &["2025-W28", "ward", "99999"]),
            Err(RequestError::Ward(_))
        ));
        assert!(matches!(
            call("kpi_index", &["2025-07", "1999"]),
            Err(RequestError::Layout(_))
        ));
        assert!(matches!(
            call("kpi_series", &["week", "ward", "2025-12-31", "2025-01-01"]),
            Err(RequestError::Period(_))
        ));
        assert!(matches!(
            call("dossiers_at", &["2025-07", "ward"]),
            Err(RequestError::Arguments { .. })
        ));
        let not_text = Call::from_arguments("kpi", &[None], Utc::now(), WardRegistry::builtin());
        assert!(not_text.unwrap_err().to_string().contains("text literal"));
    }
}
