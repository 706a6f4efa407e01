//! The dossier list: one row per dossier, as a ward's one-stop software
//! exports it, turned into the events of `docs/events.md` with deterministic ids
//! (`<dossier_id>#<event_type>`), so that importing the same list twice is
//! idempotent.
//!
//! Headers are matched case-insensitively in Vietnamese or English, after
//! Unicode NFC normalisation and ignoring any parenthesised hint
//! ("Kênh nộp (Trực tiếp / Trực tuyến / Bưu chính)"). Real exports put a
//! title above the header row and columns chiso does not use (STT, procedure
//! name) beside the others: the header row is found, unknown columns ignored.

use std::path::Path;

use calamine::{Data, DataType as _};
use chiso_core::contract::FieldSource;
use chiso_core::event::{EventType, columns};
use chrono::{NaiveDate, NaiveDateTime};
use unicode_normalization::UnicodeNormalization;

use crate::IngestError;
use crate::source::RowSink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    DossierId,
    WardCode,
    ProcedureCode,
    DepartmentCode,
    Channel,
    FullOnline,
    ReceivedAt,
    DueAt,
    FeeRequired,
    DigitizedAt,
    ResolvedAt,
    EResult,
    ReturnedAt,
    StoppedAt,
    WithdrawnAt,
    PaidOnline,
    Rating,
}

/// Each column of the list: Vietnamese header, English header.
const HEADERS: [(Field, &str, &str); 17] = [
    (Field::DossierId, "mã hồ sơ", "dossier_id"),
    (Field::WardCode, "mã đơn vị", "ward_code"),
    (Field::ProcedureCode, "mã thủ tục", "procedure_code"),
    (Field::DepartmentCode, "mã cơ quan", "department_code"),
    (Field::Channel, "kênh nộp", "channel"),
    (Field::FullOnline, "toàn trình", "full_online"),
    (Field::ReceivedAt, "ngày tiếp nhận", "received_at"),
    (Field::DueAt, "ngày hẹn trả", "due_at"),
    (Field::FeeRequired, "có phí", "fee_required"),
    (Field::DigitizedAt, "ngày số hóa", "digitized_at"),
    (Field::ResolvedAt, "ngày có kết quả", "resolved_at"),
    (Field::EResult, "kết quả điện tử", "e_result"),
    (Field::ReturnedAt, "ngày trả kết quả", "returned_at"),
    (Field::StoppedAt, "ngày dừng xử lý", "stopped_at"),
    (Field::WithdrawnAt, "ngày rút hồ sơ", "withdrawn_at"),
    (Field::PaidOnline, "thanh toán trực tuyến", "paid_online"),
    (Field::Rating, "đánh giá", "rating"),
];

const REQUIRED: [Field; 5] = [
    Field::DossierId,
    Field::WardCode,
    Field::ProcedureCode,
    Field::Channel,
    Field::ReceivedAt,
];

fn normalise(header: &str) -> String {
    let nfc: String = header.nfc().collect();
    let before_hint = nfc.split('(').next().unwrap_or("");
    before_hint.trim().to_lowercase()
}

fn field_of(header: &str) -> Option<Field> {
    let header = normalise(header);
    HEADERS
        .iter()
        .find(|(_, vi, en)| header == *vi || header == *en)
        .map(|(field, _, _)| *field)
}

/// Whether a header row is a dossier list's.
pub fn looks_like_list(headers: &[String]) -> bool {
    headers.iter().filter(|h| field_of(h).is_some()).count() >= 3
}

/// Where each list column is.
#[derive(Debug, Clone)]
pub struct ListColumns {
    positions: Vec<(Field, usize)>,
}

impl ListColumns {
    pub fn from_headers(name: &Path, headers: &[String]) -> Result<Self, IngestError> {
        let mut positions: Vec<(Field, usize)> = Vec::new();
        for (position, header) in headers.iter().enumerate() {
            if let Some(field) = field_of(header)
                && !positions.iter().any(|(f, _)| *f == field)
            {
                positions.push((field, position));
            }
        }
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|r| !positions.iter().any(|(f, _)| f == *r))
            .map(|r| {
                let (_, vi, en) = HEADERS
                    .iter()
                    .find(|(f, _, _)| f == r)
                    .expect("every field has headers");
                let mut vi = vi.to_string();
                if let Some(first) = vi.get(..1) {
                    vi = first.to_uppercase() + &vi[1..];
                }
                format!("{vi} ({en})")
            })
            .collect();
        if !missing.is_empty() {
            return Err(IngestError::unreadable(
                name,
                format!(
                    "the dossier list lacks the required column(s) {}",
                    missing.join(", ")
                ),
            ));
        }
        Ok(Self { positions })
    }

    fn position(&self, field: Field) -> Option<usize> {
        self.positions
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, p)| *p)
    }
}

/// A cell of a list row.
#[derive(Debug, Clone)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    DateTime(NaiveDateTime),
}

impl Cell {
    pub fn text(value: &str) -> Self {
        let value = value.trim();
        if value.is_empty() {
            Self::Empty
        } else {
            Self::Text(value.to_owned())
        }
    }

    fn from_sheet(data: &Data) -> Self {
        match data {
            Data::Empty => Self::Empty,
            Data::String(s) => Self::text(s),
            Data::Float(f) => Self::Number(*f),
            Data::Int(i) => Self::Number(*i as f64),
            Data::Bool(b) => Self::Text(if *b { "true" } else { "false" }.into()),
            // calamine's conversion panics on serials far outside Excel's
            // calendar (1900-01-01 to 9999-12-31): those stay numbers as text.
            Data::DateTime(serial) if !(0.0..2_958_466.0).contains(&serial.as_f64()) => {
                Self::text(&serial.as_f64().to_string())
            }
            Data::DateTime(_) | Data::DateTimeIso(_) => data
                .as_datetime()
                .map_or_else(|| Self::text(&data.to_string()), Self::DateTime),
            Data::DurationIso(s) => Self::text(s),
            Data::Error(e) => Self::Text(format!("#{e:?}")),
        }
    }

    fn as_text(&self) -> Option<String> {
        match self {
            Self::Empty => None,
            Self::Text(s) => Some(s.clone()),
            Self::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{}", *n as i64)),
            Self::Number(n) => Some(n.to_string()),
            Self::DateTime(t) => Some(t.format("%Y-%m-%dT%H:%M:%S").to_string()),
        }
    }

    /// A local timestamp as ISO text; text that is no date passes through
    /// unchanged so that validation names it.
    fn as_timestamp(&self) -> Option<String> {
        match self {
            Self::DateTime(t) => Some(t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            Self::Number(serial) if (1.0..2_958_466.0).contains(serial) => {
                let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
                let seconds = (serial * 86_400.0).round() as i64;
                Some(
                    (epoch + chrono::Duration::seconds(seconds))
                        .format("%Y-%m-%dT%H:%M:%S")
                        .to_string(),
                )
            }
            Self::Text(s) => Some(parse_local_date(s).unwrap_or_else(|| s.clone())),
            other => other.as_text(),
        }
    }
}

/// `dd/MM/yyyy[ HH:mm[:ss]]` as ISO local text.
fn parse_local_date(text: &str) -> Option<String> {
    for format in [
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
        "%d-%m-%Y %H:%M:%S",
        "%d-%m-%Y %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
    }
    for format in ["%d/%m/%Y", "%d-%m-%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return Some(format!("{}T00:00:00", d.format("%Y-%m-%d")));
        }
    }
    None
}

fn channel(label: &str) -> String {
    match normalise(label).as_str() {
        "trực tiếp" => "direct".into(),
        "trực tuyến" => "online".into(),
        "bưu chính" | "bưu chính công ích" => "postal".into(),
        other => other.to_owned(),
    }
}

fn rating(label: &str) -> String {
    match normalise(label).as_str() {
        "rất hài lòng" => "very_satisfied".into(),
        "hài lòng" => "satisfied".into(),
        "không hài lòng" => "dissatisfied".into(),
        other => other.replace(' ', "_"),
    }
}

/// One event derived from a list row.
struct ListEvent([Option<String>; 14]);

impl FieldSource for ListEvent {
    fn field(&self, column: &str) -> Option<&str> {
        self.0[columns::index_of(column)?].as_deref()
    }
}

/// Turns one list row into its events.
pub fn emit_row(
    line: u64,
    cells: &[Cell],
    columns: &ListColumns,
    sink: &mut dyn RowSink,
) -> Result<(), IngestError> {
    if cells.iter().all(|c| matches!(c, Cell::Empty)) {
        return Ok(());
    }
    sink.row();
    let cell = |field: Field| {
        columns
            .position(field)
            .and_then(|p| cells.get(p))
            .unwrap_or(&Cell::Empty)
    };
    let text = |field: Field| cell(field).as_text();
    let time = |field: Field| cell(field).as_timestamp();
    let raw = || {
        cells
            .iter()
            .map(|c| c.as_text().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let dossier = text(Field::DossierId).unwrap_or_default();
    let received_at = time(Field::ReceivedAt);
    let returned_at = time(Field::ReturnedAt);
    let resolved_at = time(Field::ResolvedAt);

    let mut emit = |kind: EventType,
                    at: Option<String>,
                    extra: &[(usize, Option<String>)]|
     -> Result<(), IngestError> {
        use chiso_core::event::ContractEnum;
        let mut fields: [Option<String>; 14] = Default::default();
        fields[0] = Some(format!("{dossier}#{}", kind.as_str()));
        fields[1] = Some(dossier.clone()).filter(|d| !d.is_empty());
        fields[2] = Some(kind.as_str().to_owned());
        fields[3] = at;
        for (i, value) in extra {
            fields[*i] = value.clone();
        }
        sink.event(line, &ListEvent(fields), &raw)
    };
    let column = |name: &str| columns::index_of(name).expect("a contract column");
    emit(
        EventType::Received,
        received_at.clone(),
        &[
            (column(columns::WARD_CODE), text(Field::WardCode)),
            (column(columns::PROCEDURE_CODE), text(Field::ProcedureCode)),
            (
                column(columns::DEPARTMENT_CODE),
                text(Field::DepartmentCode),
            ),
            (
                column(columns::CHANNEL),
                text(Field::Channel).map(|c| channel(&c)),
            ),
            (column(columns::FULL_ONLINE), text(Field::FullOnline)),
            (column(columns::DUE_AT), time(Field::DueAt)),
            (column(columns::FEE_REQUIRED), text(Field::FeeRequired)),
        ],
    )?;
    let dated = [
        (EventType::Digitized, Field::DigitizedAt),
        (EventType::Returned, Field::ReturnedAt),
        (EventType::Stopped, Field::StoppedAt),
        (EventType::Withdrawn, Field::WithdrawnAt),
    ];
    if let Some(at) = resolved_at.clone() {
        // An empty "Kết quả điện tử" beside a result date means no e-result.
        let e_result = text(Field::EResult).unwrap_or_else(|| "false".into());
        emit(
            EventType::Resolved,
            Some(at),
            &[(column(columns::E_RESULT), Some(e_result))],
        )?;
    }
    for (kind, field) in dated {
        if let Some(at) = time(field) {
            emit(kind, Some(at), &[])?;
        }
    }
    if let Some(paid) = text(Field::PaidOnline) {
        emit(
            EventType::Paid,
            received_at,
            &[(column(columns::PAID_ONLINE), Some(paid))],
        )?;
    }
    if let Some(label) = text(Field::Rating) {
        emit(
            EventType::Rated,
            returned_at.or(resolved_at),
            &[(column(columns::RATING), Some(rating(&label)))],
        )?;
    }
    Ok(())
}

/// Reads the first sheet of a workbook: finds the header row among the
/// first rows, then turns every row below it into events.
pub fn read_sheet(
    name: &Path,
    range: &calamine::Range<Data>,
    sink: &mut dyn RowSink,
) -> Result<(), IngestError> {
    let first_row = range.start().map_or(0, |(row, _)| row);
    let rows: Vec<&[Data]> = range.rows().collect();
    let header_index = rows
        .iter()
        .take(30)
        .enumerate()
        .map(|(i, row)| (i, row.iter().filter(|c| field_of(&c.to_string()).is_some()).count()))
        .filter(|(_, matches)| *matches >= 3)
        .max_by_key(|(i, matches)| (*matches, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
        .ok_or_else(|| {
            IngestError::unreadable(
                name,
                "no header row of a dossier list (Mã hồ sơ, Mã đơn vị, Mã thủ tục, Kênh nộp, Ngày tiếp nhận, …) \
                 in the first 30 rows of the first sheet",
            )
        })?;
    let headers: Vec<String> = rows[header_index].iter().map(|c| c.to_string()).collect();
    let columns = ListColumns::from_headers(name, &headers)?;
    for (i, row) in rows.iter().enumerate().skip(header_index + 1) {
        let excel_row = u64::from(first_row) + i as u64 + 1;
        let cells: Vec<Cell> = row.iter().map(Cell::from_sheet).collect();
        emit_row(excel_row, &cells, &columns, sink)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Cell as SheetCell, ExcelDateTime, ExcelDateTimeType, Range};
    use proptest::prelude::*;

    /// Runs every candidate event through the contract, as ingestion does.
    struct Checked {
        events: u64,
        malformed: u64,
    }

    impl RowSink for Checked {
        fn event(
            &mut self,
            _line: u64,
            fields: &dyn FieldSource,
            raw: &dyn Fn() -> String,
        ) -> Result<(), IngestError> {
            let wards = chiso_core::wards::WardRegistry::builtin();
            let contract = chiso_core::contract::Contract {
                wards,
                now: chrono::Utc::now(),
            };
            let _ = chiso_core::contract::parse_event(fields, &contract);
            let _ = raw();
            self.events += 1;
            Ok(())
        }

        fn malformed(&mut self, _line: u64, _raw: String, message: String) {
            assert!(!message.is_empty());
            self.malformed += 1;
        }

        fn row(&mut self) {}

        fn upcoming(&mut self, event_ids: &mut dyn Iterator<Item = &str>) {
            event_ids.for_each(drop);
        }
    }

    fn cell_value() -> impl Strategy<Value = Data> {
        prop_oneof![
            Just(Data::Empty),
            "\\PC{0,20}".prop_map(Data::String),
            "[0-9]{1,2}/[0-9]{1,2}/-?[0-9]{1,6}( [0-9]{1,2}:[0-9]{2})?".prop_map(Data::String),
            any::<f64>().prop_map(Data::Float),
            any::<i64>().prop_map(Data::Int),
            any::<bool>().prop_map(Data::Bool),
            any::<f64>().prop_map(|v| Data::DateTime(ExcelDateTime::new(
                v,
                ExcelDateTimeType::DateTime,
                false
            ))),
        ]
    }

    proptest! {
        /// A sheet with the list's headers and any cells below them: events,
        /// rejections or malformed rows, never a panic.
        #[test]
        fn any_cells_under_the_headers_are_read_without_panic(
            rows in proptest::collection::vec(proptest::collection::vec(cell_value(), 17), 0..6),
            first_row in 0u32..5,
        ) {
            let mut cells = Vec::new();
            for (column, (_, header, _)) in HEADERS.iter().enumerate() {
                cells.push(SheetCell::new((first_row, column as u32), Data::String((*header).to_owned())));
            }
            for (i, row) in rows.iter().enumerate() {
                for (column, value) in row.iter().enumerate() {
                    cells.push(SheetCell::new((first_row + 1 + i as u32, column as u32), value.clone()));
                }
            }
            let range = Range::from_sparse(cells);
            let mut sink = Checked { events: 0, malformed: 0 };
            let read = read_sheet(Path::new("list.xlsx"), &range, &mut sink);
            if let Err(error) = read {
                prop_assert!(error.to_string().contains("list.xlsx"), "{error}");
            }
        }
    }
}
