//! Spreadsheets people can compute with: one sheet per table, real numbers
//! with number formats (rates as percentages, dates as dates in local
//! time), frozen header rows, sensible column widths, Vietnamese names as
//! they are.
//!
//! Sheets are written in rust_xlsxwriter's constant-memory mode: rows go to
//! a temporary file as they come, so a result of millions of rows does not
//! sit in memory; only the finished (compressed) file does. A sheet that
//! reaches Excel's row limit continues on the next one.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use chiso_core::time::business_offset;
use chiso_dashboard::present::display;
use chiso_dashboard::{Format, Table, Value};
use rust_xlsxwriter::{Format as CellFormat, FormatAlign, Workbook as XlsxWorkbook, Worksheet};

use crate::ReportError;

/// Rows of an Excel sheet, the header included.
const SHEET_ROWS: u32 = 1_048_576;
/// The longest name Excel allows a sheet.
const SHEET_NAME: usize = 31;

/// A column of a sheet: its header and how its values are written.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetColumn {
    pub header: String,
    pub format: Format,
    /// Characters wide.
    pub width: f64,
}

impl SheetColumn {
    pub fn new(header: impl Into<String>, format: Format) -> Self {
        let header = header.into();
        let width = default_width(&header, format);
        Self {
            header,
            format,
            width,
        }
    }

    /// The same, `width` characters wide.
    pub fn width(mut self, width: f64) -> Self {
        self.width = width;
        self
    }

    /// A column of an ad-hoc result, its format guessed from its name and
    /// type: `*_rate` and `progress_ratio` are percentages (docs/kpis.md),
    /// integers get thousands separators, other numbers stay as they are.
    pub fn guess(name: &str, data_type: &DataType) -> Self {
        let format = if is_rate(name) {
            Format::Percent
        } else if data_type.is_integer() {
            Format::Integer
        } else {
            match data_type {
                DataType::Date32 | DataType::Date64 => Format::Date,
                DataType::Timestamp(_, _) => Format::Datetime,
                _ => Format::Text,
            }
        };
        Self::new(name, format)
    }

    /// The columns of an ad-hoc result.
    pub fn for_schema(schema: &Schema) -> Vec<Self> {
        schema
            .fields()
            .iter()
            .map(|f| Self::guess(f.name(), f.data_type()))
            .collect()
    }
}

fn default_width(header: &str, format: Format) -> f64 {
    let content: f64 = match format {
        Format::Text | Format::Band | Format::Severity => 16.0,
        Format::Datetime => 17.0,
        Format::Date => 11.0,
        _ => 10.0,
    };
    (header.chars().count() as f64 + 2.0).clamp(content, 40.0)
}

/// The cell formats of a workbook, made once.
struct Formats {
    header: CellFormat,
    integer: CellFormat,
    decimal: CellFormat,
    percent: CellFormat,
    change: CellFormat,
    change_integer: CellFormat,
    date: CellFormat,
    datetime: CellFormat,
    text: CellFormat,
    title: CellFormat,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: CellFormat::new()
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Top)
                .set_background_color("#E8EEF4")
                .set_border_bottom(rust_xlsxwriter::FormatBorder::Thin),
            integer: CellFormat::new().set_num_format("#,##0"),
            decimal: CellFormat::new().set_num_format("#,##0.00"),
            percent: CellFormat::new().set_num_format("0.00%"),
            change: CellFormat::new().set_num_format("+0.00;-0.00;0.00"),
            change_integer: CellFormat::new().set_num_format("+#,##0;-#,##0;0"),
            date: CellFormat::new().set_num_format("dd/mm/yyyy"),
            datetime: CellFormat::new().set_num_format("dd/mm/yyyy hh:mm"),
            text: CellFormat::new(),
            title: CellFormat::new().set_bold().set_font_size(13),
        }
    }
}

/// A workbook being written, sheet after sheet.
pub struct Workbook {
    inner: XlsxWorkbook,
    formats: Formats,
    names: Vec<String>,
    sheets: Vec<SheetState>,
}

/// A sheet of a workbook, by its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetId(usize);

/// Where a sheet is: the worksheet rows now go to, and the next row.
#[derive(Debug)]
struct SheetState {
    worksheet: usize,
    columns: Vec<SheetColumn>,
    row: u32,
    name: String,
    parts: u32,
}

impl std::fmt::Debug for Workbook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workbook")
            .field("sheets", &self.names)
            .finish_non_exhaustive()
    }
}

impl Default for Workbook {
    fn default() -> Self {
        Self::new()
    }
}

impl Workbook {
    pub fn new() -> Self {
        Self {
            inner: XlsxWorkbook::new(),
            formats: Formats::new(),
            names: Vec::new(),
            sheets: Vec::new(),
        }
    }

    /// Starts a sheet named `name` (shortened and made unique as Excel
    /// needs), with `title` lines above the header when given.
    pub fn sheet(
        &mut self,
        name: &str,
        title: &[String],
        columns: Vec<SheetColumn>,
    ) -> Result<SheetId, ReportError> {
        let (worksheet, row, name) = self.add_worksheet(name, title, &columns)?;
        self.sheets.push(SheetState {
            worksheet,
            columns,
            row,
            name,
            parts: 1,
        });
        Ok(SheetId(self.sheets.len() - 1))
    }

    /// One row of values, in the sheet's column order.
    pub fn row(&mut self, sheet: SheetId, values: &[Value]) -> Result<(), ReportError> {
        let formats: Vec<Format> = self.sheets[sheet.0]
            .columns
            .iter()
            .map(|c| c.format)
            .collect();
        self.row_formatted(sheet, values, &formats)
    }

    /// One row, each value in its own format (a sheet of facts).
    pub fn row_formatted(
        &mut self,
        sheet: SheetId,
        values: &[Value],
        formats: &[Format],
    ) -> Result<(), ReportError> {
        if self.sheets[sheet.0].row >= SHEET_ROWS {
            self.continue_on_next_sheet(sheet)?;
        }
        let state = &mut self.sheets[sheet.0];
        let worksheet = self
            .inner
            .worksheet_from_index(state.worksheet)
            .map_err(xlsx)?;
        for (i, (value, format)) in values.iter().zip(formats).enumerate() {
            write_cell(
                worksheet,
                &self.formats,
                state.row,
                column_index(i)?,
                value,
                *format,
            )?;
        }
        state.row += 1;
        Ok(())
    }

    /// Every row of an Arrow batch, its columns in order.
    pub fn batch(&mut self, sheet: SheetId, batch: &RecordBatch) -> Result<(), ReportError> {
        let table = Table::from_batches(std::slice::from_ref(batch), usize::MAX)
            .map_err(|e| ReportError::Data(e.to_string()))?;
        for values in &table.rows {
            self.row(sheet, values)?;
        }
        Ok(())
    }

    /// The workbook's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, ReportError> {
        if self.names.is_empty() {
            self.sheet("chiso", &[], Vec::new())?;
        }
        self.inner.save_to_buffer().map_err(xlsx)
    }

    /// A new worksheet with its widths, title lines and frozen header: its
    /// index, its first data row and its name.
    fn add_worksheet(
        &mut self,
        wanted: &str,
        title: &[String],
        columns: &[SheetColumn],
    ) -> Result<(usize, u32, String), ReportError> {
        let name = self.unique_name(wanted);
        let index = self.names.len();
        self.names.push(name.clone());
        let worksheet = self
            .inner
            .add_worksheet_with_constant_memory()
            .map_err(xlsx)?;
        worksheet.set_name(&name).map_err(xlsx)?;
        for (i, column) in columns.iter().enumerate() {
            worksheet
                .set_column_width(column_index(i)?, column.width)
                .map_err(xlsx)?;
        }
        let mut row = 0;
        for line in title {
            worksheet
                .write_string_with_format(row, 0, line, &self.formats.title)
                .map_err(xlsx)?;
            row += 1;
        }
        if !title.is_empty() {
            row += 1;
        }
        for (i, column) in columns.iter().enumerate() {
            worksheet
                .write_string_with_format(
                    row,
                    column_index(i)?,
                    &column.header,
                    &self.formats.header,
                )
                .map_err(xlsx)?;
        }
        if !columns.is_empty() {
            worksheet.set_freeze_panes(row + 1, 0).map_err(xlsx)?;
            // Printed as it is sent upward: A4 landscape, as wide as a
            // page, the header row on every page.
            worksheet.set_repeat_rows(row, row).map_err(xlsx)?;
        }
        worksheet
            .set_paper_size(9)
            .set_landscape()
            .set_print_fit_to_pages(1, 0);
        Ok((index, row + 1, name))
    }

    fn continue_on_next_sheet(&mut self, sheet: SheetId) -> Result<(), ReportError> {
        let state = &mut self.sheets[sheet.0];
        state.parts += 1;
        let wanted = format!("{} ({})", state.name, state.parts);
        let columns = state.columns.clone();
        let (worksheet, row, _) = self.add_worksheet(&wanted, &[], &columns)?;
        let state = &mut self.sheets[sheet.0];
        state.worksheet = worksheet;
        state.row = row;
        Ok(())
    }

    fn unique_name(&self, wanted: &str) -> String {
        // Characters Excel refuses in sheet names.
        let clean: String = wanted
            .chars()
            .map(|c| if "[]:*?/\\".contains(c) { '-' } else { c })
            .collect();
        let clean = clean.trim_matches('\'').trim();
        let base = shorten(clean, SHEET_NAME);
        let base = if base.is_empty() {
            "Sheet".to_owned()
        } else {
            base
        };
        let taken = |name: &str| self.names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| {
                let suffix = format!(" ({n})");
                let room = SHEET_NAME - suffix.chars().count();
                format!("{}{suffix}", shorten(&base, room))
            })
            .find(|name| !taken(name))
            .unwrap_or(base)
    }
}

/// A column of docs/kpis.md's rates, in percent: `*_rate`, `progress_ratio`.
fn is_rate(name: &str) -> bool {
    name.ends_with("_rate") || name == "progress_ratio"
}

/// `text` in at most `room` characters, cut between words (a single word
/// longer than that is cut where it must be).
fn shorten(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let mut out = String::new();
    for word in text.split_whitespace() {
        let wanted = out.chars().count() + usize::from(!out.is_empty()) + word.chars().count();
        if wanted > room {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    let out = out
        .trim_end_matches([',', ';', ':', '-', '(', '·'])
        .trim_end();
    if out.is_empty() {
        text.chars().take(room).collect()
    } else {
        out.to_owned()
    }
}

fn column_index(i: usize) -> Result<u16, ReportError> {
    u16::try_from(i).map_err(|_| ReportError::Data("more than 65,535 columns".into()))
}

fn write_cell(
    worksheet: &mut Worksheet,
    formats: &Formats,
    row: u32,
    column: u16,
    value: &Value,
    format: Format,
) -> Result<(), ReportError> {
    match value {
        Value::Null => Ok(()),
        Value::Bool(b) => worksheet.write_boolean(row, column, *b).map(drop),
        Value::Int(_) | Value::Float(_) => {
            let Some(x) = value.as_f64() else {
                return Ok(());
            };
            let (x, cell) = match format {
                Format::Percent => (x / 100.0, &formats.percent),
                Format::Integer => (x, &formats.integer),
                Format::Decimal => (x, &formats.decimal),
                // A count's change is a whole number: -116, not -116.00.
                Format::Change if matches!(value, Value::Int(_)) => (x, &formats.change_integer),
                Format::Change => (x, &formats.change),
                _ if matches!(value, Value::Int(_)) => (x, &formats.integer),
                _ => (x, &formats.text),
            };
            worksheet
                .write_number_with_format(row, column, x, cell)
                .map(drop)
        }
        Value::Text(text) => worksheet
            .write_string_with_format(row, column, text, &formats.text)
            .map(drop),
        Value::Date(date) => worksheet
            .write_datetime_with_format(row, column, date, &formats.date)
            .map(drop),
        Value::Instant(instant) => {
            let local = instant.with_timezone(&business_offset()).naive_local();
            worksheet
                .write_datetime_with_format(row, column, local, &formats.datetime)
                .map(drop)
        }
        Value::List(_) => worksheet
            .write_string(row, column, value.raw_text())
            .map(drop),
    }
    .map_err(xlsx)
}

fn xlsx(error: rust_xlsxwriter::XlsxError) -> ReportError {
    ReportError::Xlsx(error.to_string())
}

/// The workbook of a document: a sheet saying what it is and which data it
/// shows, a sheet per panel (its table; a chart's numbers), and the
/// definitions.
pub fn workbook(document: &crate::Document) -> Result<Vec<u8>, ReportError> {
    use chiso_dashboard::PanelKind;
    let lang = document.lang();
    let mut workbook = Workbook::new();
    let local = |t: chrono::DateTime<chrono::Utc>| Value::Instant(t);
    let freshness = &document.freshness;
    let about = workbook.sheet(
        lang.pick("Thông tin", "About"),
        &[format!("{} — {}", document.title, document.scope)],
        vec![
            SheetColumn::new(lang.pick("Mục", "Item"), Format::Text).width(30.0),
            SheetColumn::new(lang.pick("Giá trị", "Value"), Format::Text).width(48.0),
        ],
    )?;
    let t = document
        .params
        .period
        .evaluation_instant(document.params.now);
    let mut facts: Vec<(&str, Value)> = vec![
        (
            lang.pick("Kỳ báo cáo", "Period"),
            Value::Text(document.period_name()),
        ),
        (
            lang.pick("Từ ngày", "From"),
            Value::Date(document.params.period.start),
        ),
        (
            lang.pick("Đến ngày", "To"),
            Value::Date(document.params.period.last_day()),
        ),
        (lang.pick("Số liệu tính đến", "Figures as of"), local(t)),
    ];
    if let Some((first, last)) = freshness.data_range {
        facts.push((lang.pick("Dữ liệu có từ", "Data from"), Value::Date(first)));
        facts.push((lang.pick("Dữ liệu đến", "Data to"), Value::Date(last)));
    }
    if let Some(last) = freshness.last_ingest {
        facts.push((
            lang.pick("Lần nạp dữ liệu gần nhất", "Last ingest"),
            local(last),
        ));
    }
    facts.push((
        lang.pick("Phiên bản dữ liệu (sự kiện)", "Data version (events)"),
        Value::Int(freshness.events_version),
    ));
    facts.push((lang.pick("Lập lúc", "Made"), local(freshness.generated_at)));
    for (label, value) in facts {
        let format = match value {
            Value::Date(_) => Format::Date,
            Value::Instant(_) => Format::Datetime,
            _ => Format::Text,
        };
        workbook.row_formatted(
            about,
            &[Value::Text(label.to_owned()), value],
            &[Format::Text, format],
        )?;
    }

    for section in &document.sections {
        let panel = &section.panel;
        let table = &section.table;
        let title = vec![panel.title.get(lang).to_owned()];
        match &panel.kind {
            PanelKind::Tiles { tiles } => {
                let sheet = workbook.sheet(
                    panel.title.get(lang),
                    &title,
                    vec![
                        SheetColumn::new(lang.pick("Chỉ số", "Figure"), Format::Text).width(34.0),
                        SheetColumn::new(lang.pick("Giá trị", "Value"), Format::Decimal),
                        SheetColumn::new(
                            lang.pick("Thay đổi so với kỳ trước", "Change"),
                            Format::Change,
                        )
                        .width(14.0),
                    ],
                )?;
                for tile in tiles {
                    let value = table.get(0, &tile.column).cloned().unwrap_or(Value::Null);
                    let change = tile
                        .change
                        .as_deref()
                        .and_then(|c| table.get(0, c).cloned())
                        .unwrap_or(Value::Null);
                    workbook.row_formatted(
                        sheet,
                        &[Value::Text(column_label(tile, lang)), value, change],
                        &[Format::Text, tile.format, Format::Change],
                    )?;
                }
            }
            _ => {
                let columns = sheet_columns(panel, table, lang);
                let sheet = workbook.sheet(
                    panel.title.get(lang),
                    &title,
                    columns.iter().map(|(_, c)| c.clone()).collect(),
                )?;
                for row in &table.rows {
                    let values: Vec<Value> = columns
                        .iter()
                        .map(|(index, column)| {
                            let value = index.map_or(Value::Null, |i| row[i].clone());
                            match (column.format, &value) {
                                // Bands and levels in words, as on paper.
                                (Format::Band | Format::Severity, Value::Text(_)) => {
                                    Value::Text(display(&value, column.format, lang))
                                }
                                _ => value,
                            }
                        })
                        .collect();
                    workbook.row(sheet, &values)?;
                }
            }
        }
    }

    if !document.methods.is_empty() {
        let sheet = workbook.sheet(
            lang.pick("Định nghĩa", "Definitions"),
            &[lang
                .pick("Phương pháp tính (docs/kpis.md)", "Methods (docs/kpis.md)")
                .to_owned()],
            vec![
                SheetColumn::new(lang.pick("Chỉ số", "Figure"), Format::Text).width(40.0),
                SheetColumn::new(lang.pick("Định nghĩa", "Definition"), Format::Text).width(120.0),
            ],
        )?;
        for measure in &document.methods {
            workbook.row(
                sheet,
                &[
                    Value::Text(measure.name.clone()),
                    Value::Text(lang.pick(&measure.vi, &measure.en).to_owned()),
                ],
            )?;
        }
    }
    workbook.finish()
}

/// A panel's columns as sheet columns: each with its change beside it, as
/// numbers; a chart's category and series. Sparklines stay on the page.
fn sheet_columns(
    panel: &chiso_dashboard::Panel,
    table: &Table,
    lang: chiso_dashboard::Lang,
) -> Vec<(Option<usize>, SheetColumn)> {
    use chiso_dashboard::PanelKind;
    let declared: Vec<&chiso_dashboard::Column> = match &panel.kind {
        PanelKind::Table { columns } => columns.iter().collect(),
        PanelKind::Text { text } => vec![text],
        PanelKind::Tiles { tiles } => tiles.iter().collect(),
        PanelKind::Line { x, series, .. } | PanelKind::Stacked { x, parts: series } => {
            std::iter::once(x).chain(series.iter()).collect()
        }
        PanelKind::Bar { label, value, .. } => vec![label, value],
        PanelKind::Heatmap { x, y, value, .. } => vec![x, y, value],
    };
    let mut out = Vec::new();
    let declares = |name: &str| declared.iter().any(|c| c.column == name);
    for column in &declared {
        if column.format == Format::Sparkline {
            continue;
        }
        // A ward is sent upward with its code (mã ĐVHC) beside its name.
        if column.column == "ward_name"
            && !declares("ward_code")
            && let Some(code) = table.column_index("ward_code")
        {
            out.push((
                Some(code),
                SheetColumn::new(lang.pick("Mã ĐVHC", "Ward code"), Format::Text).width(10.0),
            ));
        }
        let index = table.column_index(&column.column);
        let holds_numbers = index
            .and_then(|i| table.rows.first().map(|r| &r[i]))
            .is_some_and(|v| matches!(v, Value::Float(_)));
        let format = match column.format {
            // Week and month labels are dates in a spreadsheet.
            Format::Series | Format::Week | Format::Month => Format::Date,
            // A chart's rates are percentages like every other sheet's.
            Format::Text if holds_numbers && is_rate(&column.column) => Format::Percent,
            Format::Text if holds_numbers => Format::Decimal,
            other => other,
        };
        let header = column_label(column, lang);
        let mut sheet_column = SheetColumn::new(header.clone(), format);
        if let Some(i) = index {
            let longest = table
                .rows
                .iter()
                .map(|r| r[i].raw_text().chars().count())
                .max()
                .unwrap_or(0);
            // A summary's sentences get a wide column; other texts their length.
            let widest = match panel.kind {
                PanelKind::Text { .. } => 140.0,
                _ => 60.0,
            };
            if format == Format::Text {
                sheet_column = sheet_column.width((longest as f64 + 2.0).clamp(10.0, widest));
            }
        }
        out.push((index, sheet_column));
        if let Some(change) = &column.change {
            out.push((
                table.column_index(change),
                SheetColumn::new(format!("± {header}"), Format::Change),
            ));
        }
    }
    out
}

/// A column's label; when the file gives none (a chart's axis), the words
/// for the column's name, or the name itself.
fn column_label(column: &chiso_dashboard::Column, lang: chiso_dashboard::Lang) -> String {
    let label = column.label.get(lang);
    // A column without a label is labelled with its own name.
    if label.is_empty() || label == column.column {
        chiso_dashboard::present::column_words(&column.column, lang)
            .unwrap_or(&column.column)
            .to_owned()
    } else {
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shortened_between_words() {
        assert_eq!(
            shorten("Tỷ lệ đúng hạn theo kỳ của các xã, phường cần chú ý", 31),
            "Tỷ lệ đúng hạn theo kỳ của các"
        );
        assert_eq!(shorten("Tóm tắt", 31), "Tóm tắt");
        assert_eq!(
            shorten("Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 31)
                .chars()
                .count(),
            31
        );
        assert_eq!(shorten("Xã, phường cần chú ý", 10), "Xã, phường");
        assert_eq!(shorten("Điểm 766 của xã, phường", 13), "Điểm 766 của");
    }

    #[test]
    fn sheet_names_are_shortened_cleaned_and_unique() {
        let mut workbook = Workbook::new();
        let long = "Xếp hạng theo Bộ chỉ số 766 của các xã: tháng 7/2025";
        workbook.sheet(long, &[], Vec::new()).expect("first");
        workbook.sheet(long, &[], Vec::new()).expect("second");
        let (first, second) = (workbook.names[0].clone(), workbook.names[1].clone());
        assert!(first.chars().count() <= 31, "{first}");
        assert_eq!(first, "Xếp hạng theo Bộ chỉ số 766 của");
        assert!(!first.contains(':') && !first.contains('/'));
        assert!(
            second.ends_with(" (2)") && second.chars().count() <= 31,
            "{second}"
        );
        assert!(workbook.finish().expect("bytes").starts_with(b"PK"));
    }
}
