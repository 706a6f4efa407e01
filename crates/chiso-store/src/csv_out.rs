//! CSV as chiso writes it everywhere (`chiso sql|kpi --format csv`, the
//! quarantine export, `/api/sql?format=csv`, every panel's download):
//! safe to open in a spreadsheet.
//!
//! Ward staff open these files in Excel. A text cell such as
//! `=HYPERLINK("http://…","x")`, which any dossier id or quarantined raw
//! line may hold, would run as a formula there. Following OWASP's advice on
//! CSV injection, a text value that starts with `=`, `+`, `-`, `@`, a tab
//! or a carriage return is written with a leading `'`, which spreadsheets
//! show as text. Only text columns are touched: numbers (a negative change,
//! `-3`) stay numbers. Nested values (lists, structs) are written as their
//! text, and so neutralised too.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// The first characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text` as a spreadsheet will show it, never run it.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Writes batches as one CSV (a header first, if asked), text columns
/// neutralised.
#[derive(Debug)]
pub struct CsvOut<W: Write> {
    sink: W,
    header: bool,
}

impl<W: Write> CsvOut<W> {
    pub fn new(sink: W, header: bool) -> Self {
        Self { sink, header }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let safe = spreadsheet_safe(batch)?;
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(self.header)
            .build(&mut self.sink);
        writer.write(&safe)?;
        self.header = false;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.sink
    }
}

/// `batch` with every text and nested column as neutralised text; other
/// columns as they are.
pub fn spreadsheet_safe(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match text_of(column)? {
            Some(text) => {
                let safe: StringArray = text.iter().map(|v| v.map(neutralise)).collect();
                fields.push(Field::new(field.name(), DataType::Utf8, true));
                columns.push(Arc::new(safe));
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// A column's values as text, if it is a text (or dictionary of text) or
/// nested column; `None` for the rest.
fn text_of(column: &ArrayRef) -> Result<Option<StringArray>, ArrowError> {
    let data_type = column.data_type();
    if data_type.is_nested() {
        let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
        return Ok(Some(
            (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect(),
        ));
    }
    let is_text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let text = match data_type {
        DataType::Dictionary(_, value) if is_text(value) => true,
        t => is_text(t),
    };
    if !text {
        return Ok(None);
    }
    let utf8 = cast(column, &DataType::Utf8)?;
    Ok(Some(utf8.as_string::<i32>().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Float64Array, Int64Array, StringViewArray};
    use arrow::datatypes::Int32Type;

    #[test]
    fn formulas_become_text_and_numbers_stay_numbers() {
        let ids = StringViewArray::from(vec![
            Some("=HYPERLINK(\"http://x\",\"x\")"),
            Some("+1"),
            Some("-2"),
            Some("@SUM(A1)"),
            Some("\tx"),
            Some("\rx"),
            Some("HS-001"),
            None,
        ]);
        let channel: DictionaryArray<Int32Type> =
            vec!["=cmd", "online", "=cmd", "online", "a", "b", "c", "d"]
                .into_iter()
                .collect();
        let change = Int64Array::from(vec![-3, 1, 2, 3, 4, 5, 6, 7]);
        let rate = Float64Array::from(vec![-0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        let batch = RecordBatch::try_from_iter([
            ("dossier_id", Arc::new(ids) as ArrayRef),
            ("channel", Arc::new(channel) as ArrayRef),
            ("change", Arc::new(change) as ArrayRef),
            ("rate", Arc::new(rate) as ArrayRef),
        ])
        .expect("batch");
        let mut out = CsvOut::new(Vec::new(), true);
        out.write(&batch).expect("write");
        out.write(&batch.slice(6, 1)).expect("write");
        let text = String::from_utf8(out.into_inner()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "dossier_id,channel,change,rate");
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"x\"\")\",'=cmd,-3,-0.5"
        );
        assert_eq!(lines[2], "'+1,online,1,1.0");
        assert_eq!(lines[3], "'-2,'=cmd,2,2.0");
        assert_eq!(lines[4], "'@SUM(A1),online,3,3.0");
        assert_eq!(lines[5], "'\tx,a,4,4.0");
        assert_eq!(lines.last().copied(), Some("HS-001,c,6,6.0"));
        assert_eq!(text.matches("dossier_id").count(), 1, "one header");
    }
}
