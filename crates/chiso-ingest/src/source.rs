//! Opening an input and streaming its rows.
//!
//! The format is recognised from the content, never trusted from the file
//! name: gzip (then the content inside), Parquet (`PAR1`), XLSX (a zip),
//! NDJSON (a line starting with `{`), otherwise CSV with the delimiter the
//! header line uses. The layout — event log or dossier list — comes from the
//! header names.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use calamine::Reader as _;
use chiso_core::contract::FieldSource;
use chiso_core::event::columns;
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::Serialize;

use crate::IngestError;
use crate::dossier_list::{self, ListColumns};

/// A file format ingestion reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    Ndjson,
    Parquet,
    Xlsx,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 4] = [Self::Csv, Self::Ndjson, Self::Parquet, Self::Xlsx];

    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.name() == text || (text == "json" && *f == Self::Ndjson))
    }
}

/// What the rows of a source are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One row per event, the columns of `docs/events.md`.
    EventLog,
    /// One row per dossier, as exported by a ward's one-stop software.
    DossierList,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Self::EventLog => "event log",
            Self::DossierList => "dossier list",
        }
    }
}

/// Where rows of a source go.
pub trait RowSink {
    /// One candidate event read at `line` (line of a text file, row of a
    /// table or sheet). `raw` renders the source row for the quarantine.
    fn event(
        &mut self,
        line: u64,
        fields: &dyn FieldSource,
        raw: &dyn Fn() -> String,
    ) -> Result<(), IngestError>;
    /// A row that is not even a row of the table (wrong field count, bad JSON…).
    fn malformed(&mut self, line: u64, raw: String, message: String);
    /// A physical row was read (a dossier-list row may yield several events).
    fn row(&mut self);
    /// The `event_id`s of the next rows, in order, when the reader knows
    /// them ahead: the sink may start fetching what it will look them up in.
    fn upcoming(&mut self, event_ids: &mut dyn Iterator<Item = &str>);
}

type Input = Box<dyn BufRead + Send>;

enum Body {
    Csv {
        reader: csv::Reader<Input>,
        headers: Vec<String>,
    },
    Ndjson(Input),
    Parquet(ParquetRecordBatchReader, Vec<String>),
    Sheet(calamine::Range<calamine::Data>),
}

/// An opened input, recognised and ready to stream.
pub struct Source {
    pub name: PathBuf,
    pub format: SourceFormat,
    pub layout: Layout,
    pub gzip: bool,
    pub bytes: u64,
    body: Body,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("layout", &self.layout)
            .finish()
    }
}

const PEEK: usize = 1 << 20;

fn read_error(name: &Path, error: std::io::Error) -> IngestError {
    let reason = match error.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            "the file ends abruptly (a truncated or damaged gzip stream?)".to_owned()
        }
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            format!("the compressed data is damaged ({error})")
        }
        _ => error.to_string(),
    };
    IngestError::unreadable(name, reason)
}

impl Source {
    /// Opens a file; `forced` overrides format detection.
    pub fn open(path: &Path, forced: Option<SourceFormat>) -> Result<Self, IngestError> {
        let file = File::open(path)
            .map_err(|e| IngestError::unreadable(path, format!("cannot open the file: {e}")))?;
        let metadata = file
            .metadata()
            .map_err(|e| IngestError::unreadable(path, e.to_string()))?;
        if metadata.is_dir() {
            return Err(IngestError::unreadable(
                path,
                "this is a folder, not a file",
            ));
        }
        let bytes = metadata.len();
        let reader: Input = Box::new(BufReader::with_capacity(PEEK, file));
        Self::from_reader(path, reader, bytes, forced, None, || {
            File::open(path).map_err(|e| IngestError::unreadable(path, e.to_string()))
        })
    }

    /// Reads a request body or any in-memory file, exactly as [`Source::open`];
    /// a gzip body may decompress to `max_decompressed` bytes at most.
    pub fn from_bytes(
        name: &Path,
        data: bytes::Bytes,
        forced: Option<SourceFormat>,
        max_decompressed: Option<u64>,
    ) -> Result<Self, IngestError> {
        use bytes::Buf;
        let reader: Input = Box::new(BufReader::with_capacity(PEEK, data.clone().reader()));
        Self::from_reader(
            name,
            reader,
            data.len() as u64,
            forced,
            max_decompressed,
            move || Ok(data),
        )
    }

    fn from_reader<R: parquet::file::reader::ChunkReader + 'static>(
        name: &Path,
        mut reader: Input,
        bytes: u64,
        forced: Option<SourceFormat>,
        max_decompressed: Option<u64>,
        reopen: impl FnOnce() -> Result<R, IngestError>,
    ) -> Result<Self, IngestError> {
        let head = reader.fill_buf().map_err(|e| read_error(name, e))?.to_vec();
        if head.is_empty() {
            return Err(IngestError::unreadable(name, "the file is empty"));
        }
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        let (mut reader, head) = if gzip {
            let decoder = MultiGzDecoder::new(reader);
            let mut inner: Input = match max_decompressed {
                Some(limit) => Box::new(BufReader::with_capacity(
                    PEEK,
                    AtMost {
                        inner: decoder,
                        left: limit,
                        limit,
                    },
                )),
                None => Box::new(BufReader::with_capacity(PEEK, decoder)),
            };
            let head = inner.fill_buf().map_err(|e| read_error(name, e))?.to_vec();
            if head.is_empty() {
                return Err(IngestError::unreadable(
                    name,
                    "the gzip stream holds an empty file",
                ));
            }
            (inner, head)
        } else {
            (reader, head)
        };

        let sniffed = if head.starts_with(b"PAR1") {
            SourceFormat::Parquet
        } else if head.starts_with(b"PK\x03\x04") {
            SourceFormat::Xlsx
        } else {
            check_text(name, &head)?;
            let text = String::from_utf8_lossy(strip_bom(&head));
            match text.trim_start().chars().next() {
                Some('{') => SourceFormat::Ndjson,
                Some('[') => {
                    return Err(IngestError::unreadable(
                        name,
                        "this is a JSON array; chiso reads NDJSON: one JSON object per line",
                    ));
                }
                _ => SourceFormat::Csv,
            }
        };
        let format = forced.unwrap_or(sniffed);
        let binary = |what: &str| {
            IngestError::unreadable(
                name,
                format!("a {what} inside gzip is not supported: decompress it first"),
            )
        };
        let body = match format {
            SourceFormat::Parquet => {
                if gzip {
                    return Err(binary("Parquet file"));
                }
                drop(reader);
                let input = reopen()?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| {
                    IngestError::unreadable(name, format!("not a readable Parquet file: {e}"))
                })?;
                let headers: Vec<String> = builder
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let reader = builder.with_batch_size(8192).build().map_err(|e| {
                    IngestError::unreadable(name, format!("not a readable Parquet file: {e}"))
                })?;
                Body::Parquet(reader, headers)
            }
            SourceFormat::Xlsx => {
                if gzip {
                    return Err(binary("spreadsheet"));
                }
                let mut data = Vec::with_capacity(bytes as usize);
                reader
                    .read_to_end(&mut data)
                    .map_err(|e| read_error(name, e))?;
                let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(data))
                    .map_err(|e| {
                        IngestError::unreadable(name, format!("not a readable spreadsheet: {e}"))
                    })?;
                Body::Sheet(first_sheet(name, &mut workbook)?)
            }
            SourceFormat::Ndjson => Body::Ndjson(reader),
            SourceFormat::Csv => {
                let delimiter = sniff_delimiter(&head);
                let mut csv = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .flexible(true)
                    .has_headers(false)
                    .from_reader(reader);
                let mut first = csv::StringRecord::new();
                match csv.read_record(&mut first) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(IngestError::unreadable(name, "the file has no header row"));
                    }
                    Err(e) => {
                        return Err(IngestError::unreadable(
                            name,
                            format!("cannot read the header row: {e}"),
                        ));
                    }
                }
                let headers = first
                    .iter()
                    .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
                    .collect();
                Body::Csv {
                    reader: csv,
                    headers,
                }
            }
        };
        let layout = match &body {
            Body::Csv { headers, .. } | Body::Parquet(_, headers) => layout_of(name, headers)?,
            Body::Ndjson(_) => Layout::EventLog,
            Body::Sheet(_) => Layout::DossierList,
        };
        Ok(Self {
            name: name.to_owned(),
            format,
            layout,
            gzip,
            bytes,
            body,
        })
    }

    /// About how many events the source holds, from its size, to size the
    /// id index before checking it: a rough figure, and none where the size
    /// says little of the row count (compressed input, whose ratio varies
    /// tenfold, and spreadsheets). Rows longer than typical make it too
    /// low, which only costs the growth it was meant to save.
    pub fn estimated_events(&self) -> usize {
        // Bytes per event of typical logs: about 97 in CSV, 165 in NDJSON.
        let bytes_per_event = match (self.format, self.gzip) {
            (SourceFormat::Csv, false) => 100,
            (SourceFormat::Ndjson, false) => 160,
            _ => return 0,
        };
        usize::try_from(self.bytes / bytes_per_event).unwrap_or(usize::MAX)
    }

    /// Streams every row of the source into `sink`.
    pub fn read_into(self, sink: &mut dyn RowSink) -> Result<(), IngestError> {
        let name = self.name;
        match (self.body, self.layout) {
            (Body::Csv { reader, headers }, Layout::EventLog) => {
                read_csv_events(&name, reader, &headers, sink)
            }
            (Body::Csv { reader, headers }, Layout::DossierList) => {
                let columns = ListColumns::from_headers(&name, &headers)?;
                read_csv_list(&name, reader, &columns, sink)
            }
            (Body::Ndjson(reader), _) => read_ndjson(&name, reader, sink),
            (Body::Parquet(reader, headers), _) => read_parquet(&name, reader, &headers, sink),
            (Body::Sheet(range), _) => dossier_list::read_sheet(&name, &range, sink),
        }
    }
}

fn strip_bom(head: &[u8]) -> &[u8] {
    head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head)
}

/// Refuses binary content and text that is not UTF-8, naming the byte.
fn check_text(name: &Path, head: &[u8]) -> Result<(), IngestError> {
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Err(IngestError::unreadable(
            name,
            format!("this is not a text table: binary content (a zero byte) at byte {at}"),
        ));
    }
    if let Err(e) = std::str::from_utf8(head) {
        // A multi-byte character cut by the end of the peek is fine.
        if e.error_len().is_some() {
            let at = e.valid_up_to();
            return Err(IngestError::unreadable(
                name,
                format!(
                    "the text is not UTF-8 (byte 0x{:02x} at offset {at}); if it was saved as \
                     Windows-1258 or another legacy encoding, save it again as UTF-8",
                    head[at]
                ),
            ));
        }
    }
    Ok(())
}

/// The delimiter the header line uses most: `,` `;` tab or `|`.
/// A reader that fails once more than `limit` bytes came out of it: a
/// gzip body of a megabyte may hold gigabytes.
struct AtMost<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.left = self.left.checked_sub(read as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the gzip body decompresses to more than the {} MB accepted (--max-body-mb)",
                    self.limit / (1024 * 1024)
                ),
            )
        })?;
        Ok(read)
    }
}

/// The most cells a sheet's used range may span: a dossier list of a
/// hundred thousand rows of forty columns is a tenth of it. A sheet is laid
/// out densely in memory, so one stray cell at XFD1048576 would otherwise
/// ask for seventeen billion.
pub const MAX_SHEET_CELLS: u64 = 40_000_000;

/// The first sheet's cells. XLSX sheets are read cell by cell and their
/// extent checked before anything is laid out; other spreadsheets (XLS,
/// ODS) are read by calamine as they are.
fn first_sheet<RS: Read + std::io::Seek>(
    name: &Path,
    workbook: &mut calamine::Sheets<RS>,
) -> Result<calamine::Range<calamine::Data>, IngestError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        IngestError::unreadable(name, format!("cannot read the first sheet: {e}"))
    };
    let calamine::Sheets::Xlsx(xlsx) = workbook else {
        return workbook
            .worksheet_range_at(0)
            .ok_or_else(|| IngestError::unreadable(name, "the spreadsheet has no sheet"))?
            .map_err(|e| unreadable(&e));
    };
    let sheet = xlsx
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| IngestError::unreadable(name, "the spreadsheet has no sheet"))?;
    let mut reader = xlsx
        .worksheet_cells_reader(&sheet)
        .map_err(|e| unreadable(&e))?;
    let mut cells = Vec::new();
    let (mut first, mut last) = ((u32::MAX, u32::MAX), (0u32, 0u32));
    while let Some(cell) = reader.next_cell().map_err(|e| unreadable(&e))? {
        if matches!(cell.get_value(), calamine::DataRef::Empty) {
            continue;
        }
        let (row, column) = cell.get_position();
        first = (first.0.min(row), first.1.min(column));
        last = (last.0.max(row), last.1.max(column));
        let spans = (u64::from(last.0 - first.0) + 1) * (u64::from(last.1 - first.1) + 1);
        if spans > MAX_SHEET_CELLS {
            return Err(IngestError::unreadable(
                name,
                format!(
                    "the sheet `{sheet}` has cells from {} to {}, a range of {spans} cells; \
                     chiso reads sheets of at most {MAX_SHEET_CELLS} cells: delete the stray \
                     cells far from the list",
                    cell_name(first),
                    cell_name(last)
                ),
            ));
        }
        cells.push(calamine::Cell::new(
            (row, column),
            calamine::Data::from(cell.get_value().clone()),
        ));
    }
    Ok(calamine::Range::from_sparse(cells))
}

/// `(0, 0)` → `A1`; `(1048575, 16383)` → `XFD1048576`.
fn cell_name((row, column): (u32, u32)) -> String {
    let mut letters = Vec::new();
    let mut n = u64::from(column) + 1;
    while n > 0 {
        let rest = (n - 1) % 26;
        letters.push(char::from(b'A' + rest as u8));
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!(
        "{}{}",
        letters.into_iter().collect::<String>(),
        u64::from(row) + 1
    )
}

fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|d| (line.iter().filter(|b| *b == d).count(), *d == b','))
        .unwrap_or(b',')
}

fn normalise(header: &str) -> String {
    header.trim().to_lowercase()
}

fn layout_of(name: &Path, headers: &[String]) -> Result<Layout, IngestError> {
    let normalised: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
    let has = |c: &str| normalised.iter().any(|h| h == c);
    if has(columns::EVENT_ID) || has(columns::EVENT_TYPE) {
        let missing: Vec<&str> = [
            columns::EVENT_ID,
            columns::DOSSIER_ID,
            columns::EVENT_TYPE,
            columns::OCCURRED_AT,
        ]
        .into_iter()
        .filter(|c| !has(c))
        .collect();
        if !missing.is_empty() {
            return Err(IngestError::unreadable(
                name,
                format!(
                    "the event log lacks the required column(s) {}",
                    missing.join(", ")
                ),
            ));
        }
        return Ok(Layout::EventLog);
    }
    if dossier_list::looks_like_list(headers) {
        return Ok(Layout::DossierList);
    }
    let shown: Vec<&str> = headers.iter().take(6).map(String::as_str).collect();
    Err(IngestError::unreadable(
        name,
        format!(
            "the header row ({}) is neither an event log (event_id, dossier_id, event_type, occurred_at, …) \
             nor a dossier list (Mã hồ sơ, Mã đơn vị, Ngày tiếp nhận, …)",
            shown.join(", ")
        ),
    ))
}

/// `event_id`'s place in the contract's column order, as `columns::index_of`
/// numbers it.
const EVENT_ID_SLOT: usize = 0;

/// Maps the contract's columns to positions in a header row.
fn column_map(headers: &[String]) -> [Option<usize>; 14] {
    let mut map = [None; 14];
    for (position, header) in headers.iter().enumerate() {
        if let Some(i) = columns::index_of(&normalise(header)) {
            map[i].get_or_insert(position);
        }
    }
    map
}

struct CsvRow<'a> {
    record: &'a csv::StringRecord,
    map: &'a [Option<usize>; 14],
}

impl FieldSource for CsvRow<'_> {
    fn field(&self, column: &str) -> Option<&str> {
        let position = self.map[columns::index_of(column)?]?;
        self.record.get(position).filter(|v| !v.is_empty())
    }
}

fn joined(record: &csv::StringRecord) -> String {
    record.iter().collect::<Vec<_>>().join(",")
}

/// What the splitting thread hands over: a record, or a row it could not split.
enum Split {
    Record(u64, csv::StringRecord),
    Malformed(u64, String, String),
}

/// Records per hand-over between the splitting and the parsing thread.
const SPLIT_CHUNK: usize = 2048;

/// Records whose index slots are fetched together before they are parsed.
/// The slots are on as many pages as records; a window of a whole chunk
/// outgrew the TLB, so `Index::check` missed again on slots just fetched.
const WARM_WINDOW: usize = 64;

/// Splits CSV records on a thread of their own and hands each one, in
/// order, to `handle` on the caller's thread: splitting is about half the
/// cost of a row, and the two run on both cores. Record buffers travel back
/// to the splitter for reuse.
fn read_csv(
    name: &Path,
    reader: csv::Reader<Input>,
    sink: &mut dyn RowSink,
    event_id_position: Option<usize>,
    mut handle: impl FnMut(&mut dyn RowSink, u64, &csv::StringRecord) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let (chunks, received) = std::sync::mpsc::sync_channel::<Result<Vec<Split>, IngestError>>(4);
    let (spares, spare_pool) = std::sync::mpsc::channel::<Vec<csv::StringRecord>>();
    std::thread::scope(|scope| {
        scope.spawn(move || split_records(name, reader, &chunks, &spare_pool));
        let mut result = Ok(());
        'chunks: for chunk in received.iter() {
            let mut items = match chunk {
                Ok(items) => items,
                Err(error) => {
                    result = Err(error);
                    break;
                }
            };
            for window in items.chunks_mut(WARM_WINDOW) {
                if let Some(position) = event_id_position {
                    sink.upcoming(&mut window.iter().filter_map(|item| match item {
                        Split::Record(_, record) => record.get(position),
                        Split::Malformed(..) => None,
                    }));
                }
                for item in window {
                    match item {
                        Split::Malformed(line, raw, message) => {
                            sink.row();
                            sink.malformed(*line, std::mem::take(raw), std::mem::take(message));
                        }
                        Split::Record(line, record) => {
                            if let Err(error) = handle(sink, *line, record) {
                                result = Err(error);
                                break 'chunks;
                            }
                        }
                    }
                }
            }
            let spare = items
                .into_iter()
                .filter_map(|item| match item {
                    Split::Record(_, record) => Some(record),
                    Split::Malformed(..) => None,
                })
                .collect();
            let _ = spares.send(spare);
        }
        // Stops a splitter still sending, so the scope can end.
        drop(received);
        result
    })
}

fn split_records(
    name: &Path,
    mut reader: csv::Reader<Input>,
    chunks: &std::sync::mpsc::SyncSender<Result<Vec<Split>, IngestError>>,
    spare_pool: &std::sync::mpsc::Receiver<Vec<csv::StringRecord>>,
) {
    let mut pool: Vec<csv::StringRecord> = Vec::new();
    loop {
        let mut items = Vec::with_capacity(SPLIT_CHUNK);
        let mut done = false;
        while items.len() < SPLIT_CHUNK {
            if pool.is_empty() {
                pool.extend(spare_pool.try_iter().flatten());
            }
            let mut record = pool.pop().unwrap_or_default();
            match reader.read_record(&mut record) {
                Ok(false) => {
                    done = true;
                    break;
                }
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    items.push(Split::Record(line, record));
                }
                Err(error) => {
                    let line = error.position().map_or(0, |p| p.line());
                    match error.kind() {
                        csv::ErrorKind::Utf8 { .. } => items.push(Split::Malformed(
                            line,
                            "(not UTF-8 text)".into(),
                            "the row is not UTF-8 text".into(),
                        )),
                        csv::ErrorKind::Io(e) => {
                            let _ = chunks.send(Ok(items));
                            let reason =
                                read_error(name, std::io::Error::new(e.kind(), e.to_string()))
                                    .to_string();
                            let _ = chunks.send(Err(IngestError::ReadFailed {
                                source_name: name.to_owned(),
                                line,
                                reason,
                            }));
                            return;
                        }
                        _ => items.push(Split::Malformed(line, String::new(), error.to_string())),
                    }
                }
            }
        }
        if (!items.is_empty() && chunks.send(Ok(items)).is_err()) || done {
            return;
        }
    }
}

fn read_csv_events(
    name: &Path,
    reader: csv::Reader<Input>,
    headers: &[String],
    sink: &mut dyn RowSink,
) -> Result<(), IngestError> {
    let map = column_map(headers);
    read_csv(
        name,
        reader,
        sink,
        map[EVENT_ID_SLOT],
        |sink, line, record| {
            sink.row();
            if record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
                return Ok(()); // a blank line
            }
            if record.len() != headers.len() {
                sink.malformed(
                    line,
                    joined(record),
                    format!(
                        "the row has {} fields; the header has {}",
                        record.len(),
                        headers.len()
                    ),
                );
                return Ok(());
            }
            let row = CsvRow { record, map: &map };
            sink.event(line, &row, &|| joined(record))
        },
    )
}

fn read_csv_list(
    name: &Path,
    reader: csv::Reader<Input>,
    columns: &ListColumns,
    sink: &mut dyn RowSink,
) -> Result<(), IngestError> {
    read_csv(name, reader, sink, None, |sink, line, record| {
        let cells: Vec<dossier_list::Cell> = record.iter().map(dossier_list::Cell::text).collect();
        dossier_list::emit_row(line, &cells, columns, sink)
    })
}

/// An NDJSON object as text fields.
struct JsonRow([Option<String>; 14]);

impl FieldSource for JsonRow {
    fn field(&self, column: &str) -> Option<&str> {
        self.0[columns::index_of(column)?]
            .as_deref()
            .filter(|v| !v.is_empty())
    }
}

fn read_ndjson(name: &Path, mut reader: Input, sink: &mut dyn RowSink) -> Result<(), IngestError> {
    let mut line_bytes = Vec::new();
    let mut line = 0u64;
    loop {
        line_bytes.clear();
        let read =
            reader
                .read_until(b'\n', &mut line_bytes)
                .map_err(|e| IngestError::ReadFailed {
                    source_name: name.to_owned(),
                    line: line + 1,
                    reason: read_error(name, e).to_string(),
                })?;
        if read == 0 {
            return Ok(());
        }
        line += 1;
        let bytes = if line == 1 {
            strip_bom(&line_bytes)
        } else {
            &line_bytes
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            sink.row();
            sink.malformed(
                line,
                String::from_utf8_lossy(bytes).into_owned(),
                "the line is not UTF-8 text".into(),
            );
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        sink.row();
        let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
            Ok(object) => object,
            Err(e) => {
                sink.malformed(line, text.to_owned(), format!("not a JSON object: {e}"));
                continue;
            }
        };
        let mut fields: [Option<String>; 14] = Default::default();
        for (key, value) in object {
            if let Some(i) = columns::index_of(&normalise(&key)) {
                fields[i] = match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                };
            }
        }
        sink.event(line, &JsonRow(fields), &|| text.to_owned())?;
    }
}

struct ParquetRow<'a> {
    columns: &'a [Option<StringArray>; 14],
    index: usize,
}

impl FieldSource for ParquetRow<'_> {
    fn field(&self, column: &str) -> Option<&str> {
        let array = self.columns[columns::index_of(column)?].as_ref()?;
        array
            .is_valid(self.index)
            .then(|| array.value(self.index))
            .filter(|v| !v.is_empty())
    }
}

fn read_parquet(
    name: &Path,
    reader: ParquetRecordBatchReader,
    headers: &[String],
    sink: &mut dyn RowSink,
) -> Result<(), IngestError> {
    let map = column_map(headers);
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| IngestError::ReadFailed {
            source_name: name.to_owned(),
            line: row_number + 1,
            reason: format!("the Parquet data is damaged: {e}"),
        })?;
        let mut text: [Option<StringArray>; 14] = Default::default();
        for (i, position) in map.iter().enumerate() {
            let Some(position) = position else { continue };
            let column = batch.column(*position);
            let as_text = cast(column, &DataType::Utf8).map_err(|e| {
                IngestError::unreadable(
                    name,
                    format!(
                        "column `{}` cannot be read as text: {e}",
                        headers[*position]
                    ),
                )
            })?;
            text[i] = as_text.as_any().downcast_ref::<StringArray>().cloned();
        }
        for index in 0..batch.num_rows() {
            if index % WARM_WINDOW == 0
                && let Some(event_ids) = &text[EVENT_ID_SLOT]
            {
                let window = event_ids.slice(index, WARM_WINDOW.min(batch.num_rows() - index));
                sink.upcoming(&mut window.iter().flatten());
            }
            row_number += 1;
            sink.row();
            let row = ParquetRow {
                columns: &text,
                index,
            };
            let raw = || {
                columns::ALL
                    .iter()
                    .filter_map(|c| row.field(c).map(|v| format!("{c}={v}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            sink.event(row_number, &row, &raw)?;
        }
    }
    Ok(())
}
