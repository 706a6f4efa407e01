//! Values as people read them (Vietnamese first), and panels as charts.

use chiso_chart::{Bar, Chart, Series, Target, Tone};
use chiso_core::format::{decimal_in, integer_in};
use chiso_core::time::business_offset;
use chiso_engine::{Grain, Period};
use chrono::Datelike;
use serde::Deserialize;

use crate::DashboardError;
use crate::model::{Column, Panel, PanelKind};
use crate::params::Params;
use crate::table::{Table, Value};

/// The language of a page or report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// Picks the text of this language.
    pub fn pick<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Text,
    /// 1.234 (vi), 1,234 (en).
    Integer,
    /// Two decimals: 1.234,50.
    Decimal,
    /// A rate in percent: 98,25 %.
    Percent,
    /// A change in percentage points or counts, signed: +1,25.
    Change,
    /// dd/MM/yyyy.
    Date,
    /// dd/MM/yyyy HH:mm, local time.
    Datetime,
    /// The ISO week of a date: T28 (vi), W28 (en).
    Week,
    /// MM/yyyy.
    Month,
    /// The start of a trend period: a week (T28) or a month (07/2025) as the
    /// page's trend grain is (`{{series_grain}}`).
    Series,
    /// A list of numbers drawn as a small line.
    Sparkline,
    /// A band of the composite index (excellent … weak), in words.
    Band,
    /// A red flag's severity (`critical`, `warning`), in words.
    Severity,
}

impl Format {
    /// Whether values of this format are numbers, aligned to the right.
    pub fn is_numeric(self) -> bool {
        !matches!(
            self,
            Format::Text | Format::Band | Format::Severity | Format::Sparkline
        )
    }
}

pub fn grain_label(grain: Grain, lang: Lang) -> &'static str {
    match grain {
        Grain::Day => lang.pick("Ngày", "Day"),
        Grain::Week => lang.pick("Tuần", "Week"),
        Grain::Month => lang.pick("Tháng", "Month"),
        Grain::Quarter => lang.pick("Quý", "Quarter"),
        Grain::Year => lang.pick("Năm", "Year"),
        Grain::Range => lang.pick("Khoảng", "Range"),
    }
}

/// A period as people say it: "Tuần 28/2025 (07/07–13/07/2025)".
pub fn period_name(period: &Period, lang: Lang) -> String {
    let dates = format!(
        "{}–{}",
        period.start.format("%d/%m"),
        period.last_day().format("%d/%m/%Y")
    );
    let text = period.to_string();
    match period.grain {
        Grain::Week => {
            let (year, week) = text.split_once("-W").unwrap_or((&text, ""));
            format!("{} {week}/{year} ({dates})", grain_label(Grain::Week, lang))
        }
        Grain::Month => format!(
            "{} {}",
            grain_label(Grain::Month, lang),
            period.start.format("%m/%Y")
        ),
        Grain::Quarter => {
            let (year, quarter) = text.split_once("-Q").unwrap_or((&text, ""));
            format!("{} {quarter}/{year}", grain_label(Grain::Quarter, lang))
        }
        Grain::Year => format!("{} {text}", grain_label(Grain::Year, lang)),
        Grain::Day => period.start.format("%d/%m/%Y").to_string(),
        Grain::Range => dates,
    }
}

fn number(x: f64, decimals: usize, lang: Lang) -> String {
    decimal_in(x, decimals, lang == Lang::En)
}

fn integer(n: i64, lang: Lang) -> String {
    integer_in(n, lang == Lang::En)
}

/// The words of a band code of index_summary.sql.
pub fn band_name(code: &str, lang: Lang) -> &str {
    let (vi, en) = match code {
        "excellent" => ("Xuất sắc", "Excellent"),
        "good" => ("Tốt", "Good"),
        "fair" => ("Khá", "Fair"),
        "average" => ("Trung bình", "Average"),
        "weak" => ("Yếu", "Weak"),
        other => (other, other),
    };
    lang.pick(vi, en)
}

/// The tone of a band, for its colour.
pub fn band_tone(code: &str) -> Tone {
    match code {
        "excellent" | "good" => Tone::Good,
        "fair" | "average" => Tone::Warn,
        "weak" => Tone::Bad,
        _ => Tone::Neutral,
    }
}

/// Words for the result columns a dashboard file leaves without a label
/// (a chart's axis), so that no header reads like a column name.
pub fn column_words(column: &str, lang: Lang) -> Option<&'static str> {
    let (vi, en) = match column {
        "ward_name" => ("Xã, phường", "Ward"),
        "ward_code" => ("Mã ĐVHC", "Ward code"),
        "period_start" => ("Kỳ", "Period"),
        "score_100" => ("Điểm 766 (thang 100)", "766 score (of 100)"),
        "on_time_rate" => ("Đúng hạn", "On time"),
        "received" => ("Tiếp nhận", "Received"),
        "resolved" => ("Đã giải quyết", "Resolved"),
        "early" => ("Trước hạn", "Early"),
        "on_time" => ("Đúng hạn", "On time"),
        "late" => ("Trễ hạn", "Late"),
        "channel" => ("Kênh", "Channel"),
        "department_name" => ("Lĩnh vực", "Department"),
        "procedure_name" => ("Thủ tục", "Procedure"),
        _ => return None,
    };
    Some(lang.pick(vi, en))
}

/// The words of a severity code of the red flags.
pub fn severity_name(code: &str, lang: Lang) -> &str {
    let (vi, en) = match code {
        "critical" => ("Nghiêm trọng", "Critical"),
        "warning" => ("Cần chú ý", "Needs attention"),
        other => (other, other),
    };
    lang.pick(vi, en)
}

fn severity_tone(code: &str) -> Tone {
    match code {
        "critical" => Tone::Bad,
        "warning" => Tone::Warn,
        _ => Tone::Neutral,
    }
}

/// `value` written in `format`; a missing value is a dash.
pub fn display(value: &Value, format: Format, lang: Lang) -> String {
    if matches!(value, Value::Null) {
        return "–".to_owned();
    }
    match (format, value) {
        (Format::Integer, Value::Int(n)) => integer(*n, lang),
        (Format::Integer, Value::Float(x)) => integer(x.round() as i64, lang),
        (Format::Decimal, v) if v.as_f64().is_some() => number(v.as_f64().unwrap_or(0.0), 2, lang),
        (Format::Percent, v) if v.as_f64().is_some() => {
            format!("{} %", number(v.as_f64().unwrap_or(0.0), 2, lang))
        }
        (Format::Change, Value::Int(n)) => {
            let sign = if *n > 0 { "+" } else { "" };
            format!("{sign}{}", integer(*n, lang))
        }
        (Format::Change, v) if v.as_f64().is_some() => {
            let x = v.as_f64().unwrap_or(0.0);
            let sign = if x > 0.0005 { "+" } else { "" };
            format!("{sign}{}", number(x, 2, lang))
        }
        (Format::Date, Value::Date(d)) => d.format("%d/%m/%Y").to_string(),
        (Format::Date | Format::Datetime, Value::Instant(t)) => {
            let local = t.with_timezone(&business_offset());
            let pattern = if format == Format::Date {
                "%d/%m/%Y"
            } else {
                "%d/%m/%Y %H:%M"
            };
            local.format(pattern).to_string()
        }
        (Format::Week, Value::Date(d)) => {
            format!("{}{}", lang.pick("T", "W"), d.iso_week().week())
        }
        (Format::Month, Value::Date(d)) => format!("{:02}/{}", d.month(), d.year()),
        (Format::Band, Value::Text(code)) => band_name(code, lang).to_owned(),
        (Format::Severity, Value::Text(code)) => severity_name(code, lang).to_owned(),
        (_, Value::Text(t)) => t.clone(),
        (_, Value::Int(n)) => integer(*n, lang),
        (_, Value::Float(x)) => number(*x, 2, lang),
        (_, Value::Date(d)) => d.format("%d/%m/%Y").to_string(),
        (_, other) => other.raw_text(),
    }
}

/// `format` for these parameters: [`Format::Series`] becomes weeks or months.
pub fn resolve(format: Format, params: &Params) -> Format {
    match (format, params.series().0) {
        (Format::Series, Grain::Month) => Format::Month,
        (Format::Series, _) => Format::Week,
        (format, _) => format,
    }
}

/// The colour a column's thresholds give `value` (or its band).
pub fn tone(column: &Column, value: &Value) -> Tone {
    match (column.format, value) {
        (Format::Band, Value::Text(code)) => return band_tone(code),
        (Format::Severity, Value::Text(code)) => return severity_tone(code),
        _ => {}
    }
    match (column.thresholds, value.as_f64()) {
        (Some(thresholds), Some(x)) => thresholds.tone(x),
        _ => Tone::Neutral,
    }
}

/// A change as printed beside its value: an arrow, the signed change in
/// the value's own unit (whole numbers for counts, percentage points,
/// "điểm %", for rates); `None` for a missing change.
pub fn change_text(column: &Column, change: &Value, lang: Lang) -> Option<String> {
    let x = change.as_f64()?;
    let arrow = match x {
        x if x > 0.0005 => "▲",
        x if x < -0.0005 => "▼",
        _ => "",
    };
    let amount = match column.format {
        Format::Integer => display(&Value::Int(x.round() as i64), Format::Change, lang),
        _ => display(&Value::Float(x), Format::Change, lang),
    };
    let unit = match column.format {
        Format::Percent => lang.pick(" điểm %", " pp"),
        _ => "",
    };
    Some(format!("{arrow}{amount}{unit}"))
}

/// Whether a change is for the better, for the worse, or none.
pub fn change_tone(column: &Column, change: &Value) -> Tone {
    match change.as_f64() {
        Some(x) if x.abs() < 0.005 => Tone::Neutral,
        Some(x) if (x > 0.0) != column.lower_is_better => Tone::Good,
        Some(_) => Tone::Bad,
        None => Tone::Neutral,
    }
}

fn numbers(table: &Table, column: &Column) -> Result<Vec<Option<f64>>, DashboardError> {
    Ok(table
        .column(&column.column)?
        .into_iter()
        .map(Value::as_f64)
        .collect())
}

fn labels(table: &Table, column: &Column, params: &Params) -> Result<Vec<String>, DashboardError> {
    let format = resolve(column.format, params);
    Ok(table
        .column(&column.column)?
        .into_iter()
        .map(|v| display(v, format, params.lang))
        .collect())
}

/// The chart of a chart panel (`None` for tiles and tables).
/// A panel's target as a labelled reference line.
fn chart_target(value: f64, lang: Lang) -> Target {
    Target {
        value,
        label: format!(
            "{} {}",
            lang.pick("Mục tiêu", "Target"),
            decimal_in(
                value,
                if value.fract() == 0.0 { 0 } else { 2 },
                lang == Lang::En
            )
        ),
    }
}

pub fn chart(
    panel: &Panel,
    table: &Table,
    params: &Params,
) -> Result<Option<Chart>, DashboardError> {
    let lang = params.lang;
    let chart = match &panel.kind {
        PanelKind::Text { .. } | PanelKind::Tiles { .. } | PanelKind::Table { .. } => {
            return Ok(None);
        }
        PanelKind::Line { x, series, target } => Chart::Line {
            categories: labels(table, x, params)?,
            series: series
                .iter()
                .map(|s| {
                    Ok(Series {
                        name: s.label.get(lang).to_owned(),
                        values: numbers(table, s)?,
                    })
                })
                .collect::<Result<_, DashboardError>>()?,
            target: target.map(|value| chart_target(value, lang)),
        },
        PanelKind::Bar {
            label,
            value,
            target,
        } => {
            let names = labels(table, label, params)?;
            let values = table.column(&value.column)?;
            Chart::Bar {
                bars: names
                    .into_iter()
                    .zip(values)
                    .map(|(label, v)| Bar {
                        label,
                        value: v.as_f64(),
                        tone: tone(value, v),
                    })
                    .collect(),
                target: target.map(|value| chart_target(value, lang)),
                range: None,
            }
        }
        PanelKind::Stacked { x, parts } => Chart::StackedBar {
            categories: labels(table, x, params)?,
            parts: parts
                .iter()
                .map(|p| {
                    Ok(Series {
                        name: p.label.get(lang).to_owned(),
                        values: numbers(table, p)?,
                    })
                })
                .collect::<Result<_, DashboardError>>()?,
        },
        PanelKind::Heatmap { x, y, value, scale } => {
            let xs = labels(table, x, params)?;
            let ys = labels(table, y, params)?;
            let values = numbers(table, value)?;
            // Columns (weeks) in the order of their values, rows (wards) in
            // the order of the query.
            let mut keyed: Vec<(String, &String)> = table
                .column(&x.column)?
                .into_iter()
                .map(Value::raw_text)
                .zip(&xs)
                .collect();
            keyed.sort();
            keyed.dedup();
            let mut columns: Vec<String> = Vec::new();
            for (_, label) in keyed {
                if !columns.contains(label) {
                    columns.push(label.clone());
                }
            }
            let mut rows: Vec<String> = Vec::new();
            for label in &ys {
                if !rows.contains(label) {
                    rows.push(label.clone());
                }
            }
            let mut grid = vec![vec![None; columns.len()]; rows.len()];
            for ((cx, ry), v) in xs.iter().zip(&ys).zip(values) {
                let c = columns.iter().position(|l| l == cx);
                let r = rows.iter().position(|l| l == ry);
                if let (Some(c), Some(r)) = (c, r) {
                    grid[r][c] = v;
                }
            }
            Chart::Heatmap {
                columns,
                rows,
                values: grid,
                low: scale[0],
                high: scale[1],
            }
        }
    };
    Ok(Some(chart))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn numbers_and_dates_read_the_vietnamese_way_or_the_english_way() {
        let cases = [
            (Value::Int(1234), Format::Integer, "1.234", "1,234"),
            (Value::Float(98.25), Format::Percent, "98,25 %", "98.25 %"),
            (
                Value::Float(1234.5),
                Format::Decimal,
                "1.234,50",
                "1,234.50",
            ),
            (Value::Float(1.5), Format::Change, "+1,50", "+1.50"),
            (Value::Int(-3), Format::Change, "-3", "-3"),
            (Value::Null, Format::Percent, "–", "–"),
            (Value::Text("weak".into()), Format::Band, "Yếu", "Weak"),
        ];
        for (value, format, vi, en) in cases {
            assert_eq!(display(&value, format, Lang::Vi), vi, "{value:?}");
            assert_eq!(display(&value, format, Lang::En), en, "{value:?}");
        }
        let day = Value::Date(NaiveDate::from_ymd_opt(2025, 7, 7).expect("date"));
        assert_eq!(display(&day, Format::Date, Lang::Vi), "07/07/2025");
        assert_eq!(display(&day, Format::Week, Lang::Vi), "T28");
        assert_eq!(display(&day, Format::Week, Lang::En), "W28");
        assert_eq!(display(&day, Format::Month, Lang::En), "07/2025");
        let instant = chrono::DateTime::from_timestamp(1_751_900_400, 0).expect("instant");
        // 2025-07-07 15:00 UTC is 22:00 in Cần Thơ.
        assert_eq!(
            display(&Value::Instant(instant), Format::Datetime, Lang::Vi),
            "07/07/2025 22:00"
        );
    }
}
