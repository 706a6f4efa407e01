//! Serialising the event log as CSV, NDJSON or Parquet.
//!
//! All three formats take the same row stream: generated events, and in
//! dirty mode the hand-made rows of [`crate::dirty`] in between. Files are
//! written next to their destination and renamed into place at the end, so
//! an interrupted run never leaves a truncated file that looks complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use chiso_core::contract::parse_bool;
use chiso_core::event::{columns, event_schema};
use chiso_core::time::parse_timestamp;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::GenError;
use crate::model::{City, GenEvent};
use crate::text::{COLUMNS, TextRow, event_fields};

/// A file format of the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    Parquet,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Csv, Format::Ndjson, Format::Parquet];

    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
        }
    }

    pub fn extension(self) -> &'static str {
        self.name()
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == text.to_ascii_lowercase())
    }

    /// Text formats can carry values Parquet's typed columns cannot.
    pub fn is_text(self) -> bool {
        !matches!(self, Self::Parquet)
    }

    /// The line of the `record`-th data row (1-based), for text formats.
    pub fn line_of_record(self, record: u64) -> Option<u64> {
        match self {
            Self::Csv => Some(record + 1),
            Self::Ndjson => Some(record),
            Self::Parquet => None,
        }
    }
}

/// One row of the output.
#[derive(Debug, Clone, Copy)]
pub enum OutRow<'a> {
    Event(&'a GenEvent),
    Text(&'a TextRow),
}

/// Writes `rows` to `path` in `format`; returns the number of data rows.
pub fn write_rows<'a>(
    city: &City,
    rows: impl Iterator<Item = OutRow<'a>>,
    format: Format,
    path: &Path,
) -> Result<u64, GenError> {
    let partial = partial_path(path);
    let io = |cause| GenError::Io {
        path: path.to_owned(),
        cause,
    };
    let file = File::create(&partial).map_err(io)?;
    let result = match format {
        Format::Csv | Format::Ndjson => {
            write_text(city, rows, format, BufWriter::with_capacity(1 << 20, file)).map_err(io)
        }
        Format::Parquet => write_parquet(city, rows, file, path),
    };
    match result {
        Ok(count) => {
            std::fs::rename(&partial, path).map_err(io)?;
            Ok(count)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

/// Writes every event of the city in log order.
pub fn write_city(city: &City, format: Format, path: &Path) -> Result<u64, GenError> {
    write_rows(city, city.events.iter().map(OutRow::Event), format, path)
}

fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "events".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

/// The text of each field of a row, via a reusable buffer.
struct FieldView {
    buffer: String,
    ranges: [Option<(usize, usize)>; COLUMNS],
}

impl FieldView {
    fn new() -> Self {
        Self {
            buffer: String::with_capacity(256),
            ranges: [None; COLUMNS],
        }
    }

    fn load<'s>(&'s mut self, city: &City, row: OutRow<'s>) -> [Option<&'s str>; COLUMNS] {
        match row {
            OutRow::Event(event) => {
                event_fields(city, event, &mut self.buffer, &mut self.ranges);
                let buffer = &self.buffer;
                self.ranges.map(|r| r.map(|(a, b)| &buffer[a..b]))
            }
            OutRow::Text(text) => std::array::from_fn(|i| text.fields[i].as_deref()),
        }
    }
}

const BOOL_COLUMNS: [usize; 4] = [8, 10, 11, 12];

fn write_text<'a>(
    city: &City,
    rows: impl Iterator<Item = OutRow<'a>>,
    format: Format,
    mut out: impl Write,
) -> std::io::Result<u64> {
    let mut view = FieldView::new();
    let mut line = String::with_capacity(512);
    if format == Format::Csv {
        writeln!(out, "{}", columns::ALL.join(","))?;
    }
    let mut count = 0;
    for row in rows {
        let fields = view.load(city, row);
        line.clear();
        if format == Format::Csv {
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                if let Some(value) = field {
                    push_csv_field(&mut line, value);
                }
            }
        } else {
            line.push('{');
            let mut first = true;
            for (i, field) in fields.iter().enumerate() {
                let Some(value) = field else { continue };
                if !first {
                    line.push(',');
                }
                first = false;
                push_json_string(&mut line, columns::ALL[i]);
                line.push(':');
                if BOOL_COLUMNS.contains(&i) && matches!(*value, "true" | "false") {
                    line.push_str(value);
                } else {
                    push_json_string(&mut line, value);
                }
            }
            line.push('}');
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        count += 1;
    }
    out.flush()?;
    Ok(count)
}

fn push_csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

const BATCH_ROWS: usize = 64 * 1024;

struct Builders {
    strings: [StringBuilder; 8],
    occurred_at: TimestampMicrosecondBuilder,
    due_at: TimestampMicrosecondBuilder,
    flags: [BooleanBuilder; 4],
    rows: usize,
}

/// Positions of the string columns in the schema, in `Builders::strings` order.
const STRING_COLUMNS: [usize; 8] = [0, 1, 2, 4, 5, 6, 7, 13];

impl Builders {
    fn new() -> Self {
        Self {
            strings: std::array::from_fn(|_| {
                StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)
            }),
            occurred_at: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS)
                .with_timezone("UTC"),
            due_at: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            flags: std::array::from_fn(|_| BooleanBuilder::with_capacity(BATCH_ROWS)),
            rows: 0,
        }
    }

    fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; COLUMNS];
        for (builder, column) in self.strings.iter_mut().zip(STRING_COLUMNS) {
            arrays[column] = Some(Arc::new(builder.finish()));
        }
        arrays[3] = Some(Arc::new(self.occurred_at.finish()));
        arrays[9] = Some(Arc::new(self.due_at.finish()));
        for (builder, column) in self.flags.iter_mut().zip(BOOL_COLUMNS) {
            arrays[column] = Some(Arc::new(builder.finish()));
        }
        self.rows = 0;
        RecordBatch::try_new(event_schema(), arrays.into_iter().flatten().collect())
    }
}

fn write_parquet<'a>(
    city: &City,
    rows: impl Iterator<Item = OutRow<'a>>,
    file: File,
    path: &Path,
) -> Result<u64, GenError> {
    let parquet_error = |cause| GenError::Parquet {
        path: path.to_owned(),
        cause,
    };
    let unrepresentable = |column: &str, value: &str| {
        GenError::Range(format!(
            "the value `{value}` of `{column}` cannot be stored in Parquet's typed column"
        ))
    };
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(parquet_error)?,
        ))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, event_schema(), Some(properties)).map_err(parquet_error)?;
    let mut builders = Builders::new();
    let mut view = FieldView::new();
    let mut count = 0;
    let micros = |seconds: i64| seconds * 1_000_000;
    let parse_micros = |column: &str, value: &str| {
        parse_timestamp(value)
            .map(|t| t.timestamp_micros())
            .map_err(|_| unrepresentable(column, value))
    };
    for row in rows {
        let (occurred_at, due_at) = match row {
            OutRow::Event(event) => (
                micros(event.at),
                (event.kind == chiso_core::event::EventType::Received)
                    .then(|| city.dossiers[event.dossier as usize].due_at.map(micros))
                    .flatten(),
            ),
            OutRow::Text(text) => {
                let occurred = text.get(columns::OCCURRED_AT).unwrap_or("");
                (
                    parse_micros(columns::OCCURRED_AT, occurred)?,
                    text.get(columns::DUE_AT)
                        .map(|due| parse_micros(columns::DUE_AT, due))
                        .transpose()?,
                )
            }
        };
        let fields = view.load(city, row);
        for (builder, column) in builders.strings.iter_mut().zip(STRING_COLUMNS) {
            builder.append_option(fields[column]);
        }
        builders.occurred_at.append_value(occurred_at);
        builders.due_at.append_option(due_at);
        for (builder, column) in builders.flags.iter_mut().zip(BOOL_COLUMNS) {
            let value = fields[column]
                .map(|v| parse_bool(v).ok_or_else(|| unrepresentable(columns::ALL[column], v)))
                .transpose()?;
            builder.append_option(value);
        }
        builders.rows += 1;
        count += 1;
        if builders.rows == BATCH_ROWS {
            let batch = builders.finish().map_err(|e| parquet_error(e.into()))?;
            writer.write(&batch).map_err(parquet_error)?;
        }
    }
    if builders.rows > 0 {
        let batch = builders.finish().map_err(|e| parquet_error(e.into()))?;
        writer.write(&batch).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(count)
}
