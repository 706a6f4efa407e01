//! The SQL files of `queries/`, compiled in, and how they are parameterised.
//!
//! The files are the definitions; this module only fills in their
//! `{{name}}` parameters with values chiso computed itself (instants, dates,
//! a grouping chosen from a fixed list), never with text a user typed.

use chrono::{DateTime, NaiveDate, Utc};

use crate::EngineError;

/// One row per received dossier: its key, attributes and milestones.
pub const DOSSIER_MILESTONES: &str = include_str!("../../../queries/dossier_milestones.sql");
/// The milestones, with each dossier's history after its last event.
pub const DOSSIER_FACTS: &str = include_str!("../../../queries/dossier_facts.sql");
/// The dossiers with events but no `received`, and their first event.
pub const DOSSIER_ORPHANS: &str = include_str!("../../../queries/dossier_orphans.sql");
/// The payment, rating and supplement events, with the pause pairing.
pub const DOSSIER_HISTORY: &str = include_str!("../../../queries/dossier_history.sql");
/// A dossier's payment, rating and supplement pauses as of each period's T.
pub const HISTORY_AT: &str = include_str!("../../../queries/history_at.sql");
/// The derived dossier of docs/events.md at each period's T.
pub const DOSSIERS: &str = include_str!("../../../queries/dossiers.sql");
/// Every KPI of docs/kpis.md for one or more periods and a grouping.
pub const KPI: &str = include_str!("../../../queries/kpi.sql");
/// A period's KPIs against the period before it.
pub const KPI_CHANGE: &str = include_str!("../../../queries/kpi_change.sql");
/// The dossiers in progress due within the next working days, at an instant.
pub const DUE_SOON: &str = include_str!("../../../queries/due_soon.sql");
/// Each ward's latest event up to an instant.
pub const LAST_EVENT_BY_WARD: &str = include_str!("../../../queries/last_event_by_ward.sql");
/// The composite index of Decision 766: one row per ward and indicator.
pub const INDEX: &str = include_str!("../../../queries/index.sql");
/// The composite index per ward, with its band and rank.
pub const INDEX_SUMMARY: &str = include_str!("../../../queries/index_summary.sql");
/// The indicator catalogues of the composite index.
pub const INDICATORS_PORTAL: &str = include_str!("../../../queries/indicators-portal.csv");
pub const INDICATORS_2022: &str = include_str!("../../../queries/indicators-2022.csv");

/// Fills in the `{{name}}` parameters of `sql`; every parameter must be given.
pub fn render(sql: &str, parameters: &[(&str, String)]) -> Result<String, EngineError> {
    let mut out = String::with_capacity(sql.len() + 256);
    let mut rest = sql;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            EngineError::Query(format!("unclosed parameter in: {}", &rest[open..]))
        })?;
        let name = after[..close].trim();
        let value = parameters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                EngineError::Query(format!("no value for the parameter {{{{{name}}}}}"))
            })?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An instant as a SQL literal of the store's timestamp type.
pub fn instant_literal(instant: DateTime<Utc>) -> String {
    format!(
        "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
        instant.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

/// The instant after every event, as a SQL literal: history_at.sql as of it
/// is the whole history. The last microsecond of year 9999, the latest
/// instant every engine can parse (chrono's own maximum prints a year of six
/// digits).
pub fn end_of_time() -> String {
    const LAST_MICROSECOND_OF_9999: i64 = 253_402_300_799_999_999;
    let instant = DateTime::<Utc>::from_timestamp_micros(LAST_MICROSECOND_OF_9999)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    instant_literal(instant)
}

/// A local date as a SQL literal.
pub fn date_literal(date: NaiveDate) -> String {
    format!("DATE '{date}'")
}

/// A string as a SQL literal.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_filled_in_and_missing_ones_refused() {
        let sql = "SELECT {{a}} + {{ b }} FROM t";
        let filled = render(sql, &[("a", "1".into()), ("b", "2".into())]).unwrap();
        assert_eq!(filled, "SELECT 1 + 2 FROM t");
        assert!(render(sql, &[("a", "1".into())]).is_err());
        assert!(render("SELECT {{a", &[("a", "1".into())]).is_err());
        assert_eq!(string_literal("Tân Lộc's"), "'Tân Lộc''s'");
        assert_eq!(
            end_of_time(),
            "arrow_cast('9999-12-31T23:59:59.999999Z', 'Timestamp(Microsecond, Some(\"UTC\"))')"
        );
    }
}
