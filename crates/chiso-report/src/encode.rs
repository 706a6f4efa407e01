//! A query's result as the bytes of a file: CSV, JSON, Arrow IPC, Parquet or
//! XLSX, written batch by batch. The one encoder of the product: `chiso sql`
//! and `chiso kpi --format …` write its bytes to a file or the terminal,
//! `/api/sql` and every panel download stream them.
//!
//! Every format takes any column: CSV writes nested values (lists, structs)
//! as their text and neutralises text a spreadsheet would run
//! ([`chiso_store::csv_out`]); JSON writes them as JSON arrays and objects;
//! XLSX as text cells.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chiso_store::csv_out::CsvOut;

use crate::xlsx::{SheetColumn, SheetId, Workbook};

/// The file formats of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultFormat {
    Csv,
    Json,
    Arrow,
    Parquet,
    Xlsx,
}

impl ResultFormat {
    pub const NAMES: &str = "csv, json, arrow, parquet or xlsx";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Self::Csv,
            "json" => Self::Json,
            "arrow" => Self::Arrow,
            "parquet" => Self::Parquet,
            "xlsx" => Self::Xlsx,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Arrow => "arrows",
            Self::Parquet => "parquet",
            Self::Xlsx => "xlsx",
        }
    }

    /// Whether the bytes are binary (not for a terminal).
    pub fn is_binary(self) -> bool {
        matches!(self, Self::Arrow | Self::Parquet | Self::Xlsx)
    }
}

/// How JSON is laid out: a file's array of rows, or an HTTP answer that
/// also names the columns and says how many rows came and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLayout {
    /// `[{…},{…}]`
    Rows,
    /// `{"columns":[…],"rows":[…],"row_count":N,"truncated":B,"elapsed_ms":T}`
    Answer,
}

/// Why a result could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("writing the result as {format:?}: {message}")]
pub struct EncodeError {
    pub format: ResultFormat,
    pub message: String,
}

/// Turns batches into the bytes of one format, piece by piece.
pub struct Encoder {
    format: ResultFormat,
    state: State,
}

enum State {
    Json {
        layout: JsonLayout,
        rows: u64,
        started: bool,
    },
    Csv {
        header: bool,
    },
    Arrow(Box<arrow_ipc::writer::StreamWriter<Vec<u8>>>),
    Parquet(Box<parquet::arrow::ArrowWriter<Vec<u8>>>),
    /// A workbook is a zip written at its end: rows go to temporary files
    /// meanwhile, and the file comes out whole.
    Xlsx(Option<(Box<Workbook>, SheetId)>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    pub fn new(
        format: ResultFormat,
        schema: &SchemaRef,
        json: JsonLayout,
    ) -> Result<Self, EncodeError> {
        let failed = |message: String| EncodeError { format, message };
        let state = match format {
            ResultFormat::Json => State::Json {
                layout: json,
                rows: 0,
                started: false,
            },
            ResultFormat::Csv => State::Csv { header: true },
            ResultFormat::Arrow => State::Arrow(Box::new(
                arrow_ipc::writer::StreamWriter::try_new(Vec::new(), schema)
                    .map_err(|e| failed(e.to_string()))?,
            )),
            ResultFormat::Parquet => State::Parquet(Box::new(
                parquet::arrow::ArrowWriter::try_new(Vec::new(), Arc::clone(schema), None)
                    .map_err(|e| failed(e.to_string()))?,
            )),
            ResultFormat::Xlsx => {
                let mut workbook = Workbook::new();
                let sheet = workbook
                    .sheet("chiso", &[], SheetColumn::for_schema(schema))
                    .map_err(|e| failed(e.to_string()))?;
                State::Xlsx(Some((Box::new(workbook), sheet)))
            }
        };
        Ok(Self { format, state })
    }

    pub fn format(&self) -> ResultFormat {
        self.format
    }

    /// The bytes of one more batch (possibly none yet).
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, EncodeError> {
        let format = self.format;
        let failed = |message: String| EncodeError { format, message };
        match &mut self.state {
            State::Json {
                layout,
                rows,
                started,
            } => {
                let mut out = open_json(*layout, started, &batch.schema()).map_err(failed)?;
                if batch.num_rows() > 0 {
                    let mut array = Vec::new();
                    {
                        let mut writer = arrow::json::WriterBuilder::new()
                            .with_explicit_nulls(true)
                            .build::<_, arrow::json::writer::JsonArray>(&mut array);
                        writer.write(batch).map_err(|e| failed(e.to_string()))?;
                        writer.finish().map_err(|e| failed(e.to_string()))?;
                    }
                    // `[{…},{…}]` without its brackets, joined to what came before.
                    let inner = &array[1..array.len().saturating_sub(1)];
                    if *rows > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(inner);
                }
                *rows += batch.num_rows() as u64;
                Ok(out)
            }
            State::Csv { header } => {
                let mut out = CsvOut::new(Vec::new(), *header);
                out.write(batch).map_err(|e| failed(e.to_string()))?;
                *header = false;
                Ok(out.into_inner())
            }
            State::Arrow(writer) => {
                writer.write(batch).map_err(|e| failed(e.to_string()))?;
                Ok(std::mem::take(writer.get_mut()))
            }
            State::Parquet(writer) => {
                writer.write(batch).map_err(|e| failed(e.to_string()))?;
                Ok(std::mem::take(writer.inner_mut()))
            }
            State::Xlsx(open) => {
                if let Some((workbook, sheet)) = open.as_mut() {
                    workbook
                        .batch(*sheet, batch)
                        .map_err(|e| failed(e.to_string()))?;
                }
                Ok(Vec::new())
            }
        }
    }

    /// The bytes that close the result; `elapsed` and `truncated` are told
    /// by an HTTP answer's JSON.
    pub fn finish(
        &mut self,
        schema: &SchemaRef,
        elapsed: Duration,
        truncated: bool,
    ) -> Result<Vec<u8>, EncodeError> {
        let format = self.format;
        let failed = |message: String| EncodeError { format, message };
        match &mut self.state {
            State::Json {
                layout,
                rows,
                started,
            } => {
                let mut out = open_json(*layout, started, schema).map_err(failed)?;
                match layout {
                    JsonLayout::Rows => out.extend_from_slice(b"]\n"),
                    JsonLayout::Answer => out.extend_from_slice(
                        format!(
                            "],\"row_count\":{rows},\"truncated\":{truncated},\"elapsed_ms\":{:.1}}}",
                            elapsed.as_secs_f64() * 1000.0
                        )
                        .as_bytes(),
                    ),
                }
                Ok(out)
            }
            State::Csv { header } => {
                if *header {
                    // No batch came: still the header line.
                    let empty = RecordBatch::new_empty(Arc::clone(schema));
                    let mut out = CsvOut::new(Vec::new(), true);
                    out.write(&empty).map_err(|e| failed(e.to_string()))?;
                    *header = false;
                    return Ok(out.into_inner());
                }
                Ok(Vec::new())
            }
            State::Arrow(writer) => {
                writer.finish().map_err(|e| failed(e.to_string()))?;
                Ok(std::mem::take(writer.get_mut()))
            }
            State::Parquet(writer) => {
                writer.finish().map_err(|e| failed(e.to_string()))?;
                Ok(std::mem::take(writer.inner_mut()))
            }
            State::Xlsx(open) => match open.take() {
                Some((workbook, _)) => workbook.finish().map_err(|e| failed(e.to_string())),
                None => Ok(Vec::new()),
            },
        }
    }
}

/// What comes before the first row, the first time it is asked for.
fn open_json(
    layout: JsonLayout,
    started: &mut bool,
    schema: &SchemaRef,
) -> Result<Vec<u8>, String> {
    if std::mem::replace(started, true) {
        return Ok(Vec::new());
    }
    match layout {
        JsonLayout::Rows => Ok(b"[".to_vec()),
        JsonLayout::Answer => {
            let columns: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
                .collect();
            let mut out = b"{\"columns\":".to_vec();
            out.extend_from_slice(
                serde_json::to_string(&columns)
                    .map_err(|e| e.to_string())?
                    .as_bytes(),
            );
            out.extend_from_slice(b",\"rows\":[");
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, ListArray, StringArray};
    use arrow::datatypes::{Field, Int64Type, Schema};

    fn batch() -> RecordBatch {
        let list =
            ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), Some(2)])]);
        let schema = Schema::new(vec![
            Field::new("n", arrow::datatypes::DataType::Int64, true),
            Field::new("t", arrow::datatypes::DataType::Utf8, true),
            Field::new("l", list.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![-3])),
                Arc::new(StringArray::from(vec!["=1+1"])),
                Arc::new(list),
            ],
        )
        .unwrap()
    }

    fn encode(format: ResultFormat, json: JsonLayout, batches: &[RecordBatch]) -> Vec<u8> {
        let schema = batch().schema();
        let mut encoder = Encoder::new(format, &schema, json).unwrap();
        let mut out = Vec::new();
        for batch in batches {
            out.extend(encoder.batch(batch).unwrap());
        }
        out.extend(encoder.finish(&schema, Duration::ZERO, false).unwrap());
        out
    }

    #[test]
    fn every_format_takes_nested_columns() {
        let csv =
            String::from_utf8(encode(ResultFormat::Csv, JsonLayout::Rows, &[batch()])).unwrap();
        assert_eq!(csv, "n,t,l\n-3,'=1+1,\"[1, 2]\"\n");
        let json = encode(ResultFormat::Json, JsonLayout::Rows, &[batch()]);
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"n": -3, "t": "=1+1", "l": [1, 2]}])
        );
        for format in [
            ResultFormat::Arrow,
            ResultFormat::Parquet,
            ResultFormat::Xlsx,
        ] {
            assert!(
                !encode(format, JsonLayout::Rows, &[batch()]).is_empty(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn no_rows_still_name_the_columns() {
        let csv = String::from_utf8(encode(ResultFormat::Csv, JsonLayout::Rows, &[])).unwrap();
        assert_eq!(csv, "n,t,l\n");
        let answer = encode(ResultFormat::Json, JsonLayout::Answer, &[]);
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["row_count"], 0);
        assert_eq!(answer["columns"][2]["name"], "l");
        let rows = encode(ResultFormat::Json, JsonLayout::Rows, &[]);
        assert_eq!(rows, b"[]\n");
    }
}
