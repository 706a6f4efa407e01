//! The reference tables analysts join with: `wards`, `calendar`, `channels`,
//! `departments`, `procedures`, the indicator catalogues and the external
//! indicator values.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chiso_core::calendar::{SpecialDayKind, WorkCalendar};
use chiso_core::event::{Channel, ContractEnum};
use chiso_core::wards::WardRegistry;
use chiso_store::Store;
use chrono::{Datelike, Duration, NaiveDate};

use crate::EngineError;

/// A table of utf8/int/float/bool/date columns, built column by column.
#[derive(Default)]
struct TableBuilder {
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
}

impl TableBuilder {
    fn text<S: AsRef<str>>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = Option<S>>,
    ) -> Self {
        let array: StringArray = values.into_iter().collect();
        self.fields.push(Field::new(name, DataType::Utf8, true));
        self.columns.push(Arc::new(array));
        self
    }

    fn column(mut self, name: &str, array: ArrayRef) -> Self {
        self.fields
            .push(Field::new(name, array.data_type().clone(), true));
        self.columns.push(array);
        self
    }

    fn build(self) -> Result<RecordBatch, EngineError> {
        let schema: SchemaRef = Arc::new(Schema::new(self.fields));
        RecordBatch::try_new(schema, self.columns).map_err(|e| EngineError::Query(e.to_string()))
    }
}

pub fn wards(registry: &WardRegistry) -> Result<RecordBatch, EngineError> {
    let wards = registry.as_slice();
    TableBuilder::default()
        .text("ward_code", wards.iter().map(|w| Some(&w.code)))
        .text("ward_name", wards.iter().map(|w| Some(w.full_name())))
        .text("short_name", wards.iter().map(|w| Some(&w.name)))
        .text("kind", wards.iter().map(|w| Some(w.kind.as_str())))
        .text("kind_vi", wards.iter().map(|w| Some(w.kind.label_vi())))
        .text(
            "former_province",
            wards.iter().map(|w| Some(&w.former_province)),
        )
        .build()
}

pub fn channels() -> Result<RecordBatch, EngineError> {
    TableBuilder::default()
        .text("channel", Channel::ALL.iter().map(|c| Some(c.as_str())))
        .text(
            "channel_name",
            Channel::ALL.iter().map(|c| Some(c.label_vi())),
        )
        .build()
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

/// One row per local day of the years the holiday calendar covers.
pub fn calendar(calendar: &WorkCalendar) -> Result<RecordBatch, EngineError> {
    let years = calendar.special_days().map(|(date, _)| date.year());
    let (first, last) = years.fold((2024, 2026), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let start = NaiveDate::from_ymd_opt(first, 1, 1).unwrap_or_default();
    let end = NaiveDate::from_ymd_opt(last + 1, 1, 1).unwrap_or_default();
    let days: Vec<NaiveDate> = (0..(end - start).num_days())
        .map(|i| start + Duration::days(i))
        .collect();
    let special = |date: &NaiveDate| calendar.special_day(*date);
    let int = |f: &dyn Fn(&NaiveDate) -> i32| -> ArrayRef {
        Arc::new(days.iter().map(|d| Some(f(d))).collect::<Int32Array>())
    };
    TableBuilder::default()
        .column(
            "date",
            Arc::new(
                days.iter()
                    .map(|d| Some(days_since_epoch(*d)))
                    .collect::<Date32Array>(),
            ),
        )
        .column(
            "is_working_day",
            Arc::new(
                days.iter()
                    .map(|d| Some(calendar.is_working_day(*d)))
                    .collect::<BooleanArray>(),
            ),
        )
        .text(
            "day_kind",
            days.iter().map(|d| {
                Some(match special(d).map(|s| s.kind) {
                    Some(SpecialDayKind::Holiday) => "holiday",
                    Some(SpecialDayKind::Workday) => "make_up_workday",
                    None if d.weekday().number_from_monday() > 5 => "weekend",
                    None => "workday",
                })
            }),
        )
        .text(
            "holiday_name",
            days.iter().map(|d| special(d).map(|s| s.name.clone())),
        )
        .column("weekday", int(&|d| d.weekday().number_from_monday() as i32))
        .column("iso_year", int(&|d| d.iso_week().year()))
        .column("iso_week", int(&|d| d.iso_week().week() as i32))
        .column(
            "week_start",
            Arc::new(
                days.iter()
                    .map(|d| {
                        let back = i64::from(d.weekday().num_days_from_monday());
                        Some(days_since_epoch(*d - Duration::days(back)))
                    })
                    .collect::<Date32Array>(),
            ),
        )
        .column("year", int(&|d| d.year()))
        .column("quarter", int(&|d| d.month0() as i32 / 3 + 1))
        .column("month", int(&|d| d.month() as i32))
        .build()
}

/// The departments and procedures a store knows, from its catalogue
/// ([`Store::procedures`]). A store without one has empty tables: the KPI
/// results then show codes without names.
#[derive(Debug)]
pub struct Catalogue {
    pub procedures: RecordBatch,
    pub departments: RecordBatch,
}

pub fn catalogue(store: &Store) -> Result<Catalogue, EngineError> {
    let procedures: Vec<[String; 5]> = store
        .procedures()?
        .into_iter()
        .map(|p| {
            [
                p.code,
                p.name,
                p.department_code.unwrap_or_default(),
                p.department_name.unwrap_or_default(),
                p.department_name_en.unwrap_or_default(),
            ]
        })
        .collect();
    let mut departments: Vec<&[String; 5]> =
        procedures.iter().filter(|p| !p[2].is_empty()).collect();
    departments.sort_by(|a, b| a[2].cmp(&b[2]));
    departments.dedup_by(|a, b| a[2] == b[2]);
    let optional = |s: &String| (!s.is_empty()).then(|| s.clone());
    Ok(Catalogue {
        procedures: TableBuilder::default()
            .text("procedure_code", procedures.iter().map(|p| Some(&p[0])))
            .text("procedure_name", procedures.iter().map(|p| Some(&p[1])))
            .text(
                "department_code",
                procedures.iter().map(|p| optional(&p[2])),
            )
            .build()?,
        departments: TableBuilder::default()
            .text("department_code", departments.iter().map(|p| Some(&p[2])))
            .text(
                "department_name",
                departments.iter().map(|p| optional(&p[3])),
            )
            .text(
                "department_name_en",
                departments.iter().map(|p| optional(&p[4])),
            )
            .build()?,
    })
}

/// An indicator catalogue of the composite index (queries/indicators-*.csv).
pub fn indicators(source_name: &str, text: &str) -> Result<RecordBatch, EngineError> {
    let error = |message: String| EngineError::Reference {
        path: source_name.into(),
        message,
    };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| error(format!("line {}: {e}", line + 2)))?;
        if record.len() != 9 {
            return Err(error(format!("line {}: expected 9 columns", line + 2)));
        }
        rows.push(record);
    }
    let number = |row: &csv::StringRecord, i: usize, line: usize| -> Result<f64, EngineError> {
        row[i]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0)
            .ok_or_else(|| {
                error(format!(
                    "line {}: `{}` is not a positive number",
                    line + 2,
                    &row[i]
                ))
            })
    };
    let mut max_points = Vec::new();
    let mut thresholds = Vec::new();
    for (line, row) in rows.iter().enumerate() {
        max_points.push(number(row, 6, line)?);
        thresholds.push(number(row, 7, line)?);
        const SOURCES: [&str; 6] = [
            "progress_ratio",
            "e_result_rate",
            "digitization_rate",
            "online_payment_rate",
            "satisfaction",
            "external",
        ];
        if !SOURCES.contains(&row[8].trim()) {
            return Err(error(format!(
                "line {}: unknown source `{}` (one of {})",
                line + 2,
                &row[8],
                SOURCES.join(", ")
            )));
        }
    }
    let text_column = |i: usize| rows.iter().map(move |r| Some(r[i].trim().to_owned()));
    TableBuilder::default()
        .text("indicator_id", text_column(0))
        .text("group_id", text_column(1))
        .text("group_vi", text_column(2))
        .text("group_en", text_column(3))
        .text("name_vi", text_column(4))
        .text("name_en", text_column(5))
        .column("max_points", Arc::new(Float64Array::from(max_points)))
        .column("threshold", Arc::new(Float64Array::from(thresholds)))
        .text("source", text_column(8))
        .build()
}

/// External indicator values: `ward_code, period_start, period_end,
/// indicator_id, ratio` (docs/kpis.md, "The composite index").
pub fn external_indicators(
    source: &Path,
    wards: &WardRegistry,
    indicator_ids: &[String],
) -> Result<RecordBatch, EngineError> {
    let error = |line: Option<usize>, message: String| EngineError::Reference {
        path: source.to_owned(),
        message: match line {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        },
    };
    let mut reader = csv::Reader::from_path(source).map_err(|e| error(None, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| error(None, e.to_string()))?
        .clone();
    let wanted = [
        "ward_code",
        "period_start",
        "period_end",
        "indicator_id",
        "ratio",
    ];
    let positions = wanted
        .iter()
        .map(|w| {
            headers
                .iter()
                .position(|h| h.trim().trim_start_matches('\u{feff}') == *w)
                .ok_or_else(|| {
                    error(
                        Some(1),
                        format!(
                            "the header has no `{w}` column (needs {})",
                            wanted.join(", ")
                        ),
                    )
                })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let (mut codes, mut starts, mut ends, mut ids, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| error(Some(line), e.to_string()))?;
        let field = |i: usize| record.get(positions[i]).unwrap_or_default().trim();
        let code = field(0);
        if !wards.contains(code) {
            return Err(error(Some(line), format!("unknown ward_code `{code}`")));
        }
        let date = |i: usize| {
            NaiveDate::parse_from_str(field(i), "%Y-%m-%d").map_err(|_| {
                error(
                    Some(line),
                    format!("`{}` is not a date (YYYY-MM-DD)", field(i)),
                )
            })
        };
        let (start, end) = (date(1)?, date(2)?);
        if end <= start {
            return Err(error(
                Some(line),
                "period_end must be after period_start (end is exclusive)".into(),
            ));
        }
        let id = field(3);
        if !indicator_ids.iter().any(|known| known == id) {
            return Err(error(
                Some(line),
                format!(
                    "unknown indicator_id `{id}` (the catalogue has {})",
                    indicator_ids.join(", ")
                ),
            ));
        }
        let ratio = field(4);
        let ratio = if ratio.is_empty() {
            None
        } else {
            Some(
                ratio
                    .replace(',', ".")
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=100.0).contains(r))
                    .ok_or_else(|| {
                        error(
                            Some(line),
                            format!("ratio `{ratio}` is not a percentage from 0 to 100"),
                        )
                    })?,
            )
        };
        codes.push(code.to_owned());
        starts.push(days_since_epoch(start));
        ends.push(days_since_epoch(end));
        ids.push(id.to_owned());
        ratios.push(ratio);
    }
    external_batch(codes, starts, ends, ids, ratios)
}

/// No external values: every external indicator is not assessed.
pub fn no_external_indicators() -> Result<RecordBatch, EngineError> {
    external_batch(Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new())
}

fn external_batch(
    codes: Vec<String>,
    starts: Vec<i32>,
    ends: Vec<i32>,
    ids: Vec<String>,
    ratios: Vec<Option<f64>>,
) -> Result<RecordBatch, EngineError> {
    TableBuilder::default()
        .text("ward_code", codes.iter().map(Some))
        .column("period_start", Arc::new(Date32Array::from(starts)))
        .column("period_end", Arc::new(Date32Array::from(ends)))
        .text("indicator_id", ids.iter().map(Some))
        .column("ratio", Arc::new(Float64Array::from(ratios)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_has_every_day_with_holidays_named() {
        let table = calendar(&WorkCalendar::builtin()).unwrap();
        assert_eq!(table.num_rows(), 366 + 365 + 365);
        let names = table
            .column_by_name("holiday_name")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(names.iter().flatten().any(|n| n.contains("Tết Nguyên đán")));
    }

    #[test]
    fn shipped_catalogues_total_one_hundred_points() {
        for (name, text) in [
            ("portal", crate::queries::INDICATORS_PORTAL),
            ("2022", crate::queries::INDICATORS_2022),
        ] {
            let table = indicators(name, text).unwrap();
            let points = table
                .column_by_name("max_points")
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            assert_eq!(points.iter().flatten().sum::<f64>(), 100.0, "{name}");
        }
        let bad = "a,b,c,d,e,f,g,h,i\nx,g,G,G,n,n,5,100,guesswork\n";
        let error = indicators("bad.csv", bad).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("guesswork"),
            "{error}"
        );
    }
}
