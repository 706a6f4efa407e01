//! Opening, creating, writing and maintaining a store.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder, UInt32Array,
};
use arrow::datatypes::DataType as ArrowType;
use chiso_exec::datafusion::catalog::TableProvider;
use chiso_exec::datafusion::dataframe::DataFrame;
use chiso_exec::datafusion::execution::SendableRecordBatchStream;
use chiso_exec::datafusion::execution::context::SessionContext;
use chrono::{DateTime, Utc};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{DataType as DeltaType, StructField};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::schema::Table;

const MARKER: &str = "chiso-store.json";
const LOCK: &str = ".writer.lock";
const LAYOUT: u32 = 1;
/// Rows per row group of the files the store writes (see `Store::writer`).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Why the store cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{} is not a chiso store (it has no {MARKER}); `chiso ingest --store {} FILE` creates one",
        .path.display(), .path.display()
    )]
    NotAStore { path: PathBuf },
    #[error(
        "{} is not empty and is not a chiso store: choose an empty or new folder for a store",
        .path.display()
    )]
    NotEmpty { path: PathBuf },
    #[error("{} was written by a newer chiso (store layout {found}; this chiso reads layout {LAYOUT})", .path.display())]
    NewerLayout { path: PathBuf, found: u32 },
    #[error("{}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the `{table}` table of the store: {cause}")]
    Delta {
        table: &'static str,
        cause: DeltaTableError,
    },
    #[error("writing the `{table}` table of the store: {cause}")]
    Write {
        table: &'static str,
        cause: arrow::error::ArrowError,
    },
    #[error("reading the store: {0}")]
    Query(String),
    #[error("{}, line {line}: {reason}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn delta(table: Table) -> impl FnOnce(DeltaTableError) -> StoreError {
    move |cause| StoreError::Delta {
        table: table.name(),
        cause,
    }
}

/// The sum of an integer column (0 when absent).
fn sum_column(batch: &RecordBatch, name: &str) -> u64 {
    column_as::<Int64Array>(batch, name, &ArrowType::Int64)
        .map_or(0, |a| a.iter().flatten().sum::<i64>())
        .max(0) as u64
}

fn query_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Query(error.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |cause| StoreError::Io {
        path: path.to_owned(),
        cause,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    layout: u32,
    created_at: DateTime<Utc>,
}

/// An open store: its tables at the versions last loaded.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    tables: HashMap<Table, DeltaTable>,
}

/// Rows on their way into one table, invisible until committed.
///
/// For a table with a [`Table::cluster_column`], rows are held until a row
/// group's worth has come, then written grouped by that column's values
/// (stably: in arrival order within a value). Sorting a whole file would
/// hold the file in memory; a row group's worth already gives each value
/// pages of its own.
pub struct TableWriter {
    table: Table,
    inner: RecordBatchWriter,
    rows: u64,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableWriter {
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        if self.table.cluster_column().is_none() {
            return self.inner.write(batch).await.map_err(delta(self.table));
        }
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= ROW_GROUP_ROWS {
            self.write_pending().await?;
        }
        Ok(())
    }

    async fn write_pending(&mut self) -> Result<(), StoreError> {
        let Some(column) = self.table.cluster_column() else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let table = self.table.name();
        let arrow_error = |cause| StoreError::Write { table, cause };
        let chunk =
            arrow::compute::concat_batches(&batches[0].schema(), &batches).map_err(arrow_error)?;
        drop(batches);
        let chunk = cluster_by(&chunk, column).map_err(arrow_error)?;
        self.inner.write(chunk).await.map_err(delta(self.table))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// The rows of `batch` grouped by the text values of `column`, values in
/// ascending order, rows of one value in their order in `batch`. One pass
/// over the column: a table's clustering column has a handful of values.
fn cluster_by(batch: &RecordBatch, column: &str) -> Result<RecordBatch, arrow::error::ArrowError> {
    let values = batch
        .column_by_name(column)
        .and_then(|c| c.as_string_opt::<i32>());
    let Some(values) = values else {
        return Err(arrow::error::ArrowError::SchemaError(format!(
            "the clustering column {column} is not text"
        )));
    };
    let mut groups: Vec<(Option<&str>, Vec<u32>)> = Vec::new();
    for (row, value) in values.iter().enumerate() {
        let group = match groups.iter().position(|(v, _)| *v == value) {
            Some(group) => group,
            None => {
                groups.push((value, Vec::new()));
                groups.len() - 1
            }
        };
        groups[group].1.push(row as u32);
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let order: UInt32Array = groups.into_iter().flat_map(|(_, rows)| rows).collect();
    arrow::compute::take_record_batch(batch, &order)
}

/// One rejected row, as the quarantine keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineRow {
    /// Line of a text file, or row of a table or sheet.
    pub line: u64,
    pub column: Option<String>,
    /// A stable code of `chiso_core::contract::RejectReason`.
    pub reason: String,
    pub message: String,
    /// The source row as read, for whoever fixes it.
    pub raw: String,
    pub event_id: Option<String>,
}

impl QuarantineRow {
    /// Rows of one ingest as a batch of the `quarantine` table.
    pub fn batch(
        rows: &[QuarantineRow],
        ingest_id: &str,
        source_file: &str,
        at: DateTime<Utc>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut ingest = StringBuilder::new();
        let mut source = StringBuilder::new();
        let mut line = Int64Builder::new();
        let mut column = StringBuilder::new();
        let mut reason = StringBuilder::new();
        let mut message = StringBuilder::new();
        let mut raw = StringBuilder::new();
        let mut event_id = StringBuilder::new();
        let mut when = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for row in rows {
            ingest.append_value(ingest_id);
            source.append_value(source_file);
            line.append_value(row.line as i64);
            column.append_option(row.column.as_deref());
            reason.append_value(&row.reason);
            message.append_value(&row.message);
            raw.append_value(&row.raw);
            event_id.append_option(row.event_id.as_deref());
            when.append_value(at.timestamp_micros());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ingest.finish()),
            Arc::new(source.finish()),
            Arc::new(line.finish()),
            Arc::new(column.finish()),
            Arc::new(reason.finish()),
            Arc::new(message.finish()),
            Arc::new(raw.finish()),
            Arc::new(event_id.finish()),
            Arc::new(when.finish()),
        ];
        RecordBatch::try_new(Table::Quarantine.schema(), columns)
    }
}

/// The exclusive right to write to a store; released on drop or process exit.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

/// Size and version of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub name: &'static str,
    pub version: i64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// What `chiso store info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    pub root: PathBuf,
    pub tables: Vec<TableInfo>,
    pub last_ingests: Vec<IngestRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    pub dry_run: bool,
    pub files_deleted: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    pub table: &'static str,
    pub files_removed: u64,
    pub files_added: u64,
    pub version: i64,
}

/// One row of the `ingests` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestRecord {
    pub ingest_id: String,
    pub source_file: String,
    pub source_format: String,
    pub source_bytes: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub rows_read: i64,
    pub events_read: i64,
    pub accepted: i64,
    pub duplicate: i64,
    pub conflict: i64,
    pub rejected: i64,
    pub orphans: i64,
    /// The events table version that holds this ingest's events; `None`
    /// when it accepted nothing new.
    pub events_version: Option<i64>,
}

fn delta_fields(table: Table) -> Vec<StructField> {
    table
        .schema()
        .fields()
        .iter()
        .map(|field| {
            let data_type = match field.data_type() {
                ArrowType::Utf8 => DeltaType::STRING,
                ArrowType::Boolean => DeltaType::BOOLEAN,
                ArrowType::Int64 => DeltaType::LONG,
                ArrowType::Timestamp(_, Some(_)) => DeltaType::TIMESTAMP,
                other => unreachable!("the store's schemas use no {other} columns"),
            };
            StructField::new(field.name().clone(), data_type, field.is_nullable())
        })
        .collect()
}

fn table_url(root: &Path, table: Table) -> Result<url::Url, StoreError> {
    let dir = root.join(table.name());
    let dir = std::path::absolute(&dir).map_err(io(&dir))?;
    deltalake::ensure_table_uri(dir.to_string_lossy()).map_err(delta(table))
}

fn has_log(folder: &Path) -> bool {
    std::fs::read_dir(folder.join("_delta_log")).is_ok_and(|mut entries| entries.next().is_some())
}

/// Creates `table` in the store at `root`, keeping one that an earlier,
/// interrupted creation (or another process, at the same moment) made.
async fn create_table(root: &Path, table: Table) -> Result<(), StoreError> {
    let url = table_url(root, table)?;
    let folder = root.join(table.name());
    std::fs::create_dir_all(&folder).map_err(io(root))?;
    // Loading is tried only where a log exists: delta-rs logs a failed load
    // of an empty folder as an error, which a new user would see.
    let exists = async {
        Ok::<_, StoreError>(
            has_log(&folder)
                && DeltaTable::try_from_url(url.clone())
                    .await
                    .map_err(delta(table))?
                    .version()
                    .is_some(),
        )
    };
    if exists.await? {
        return Ok(());
    }
    let ops = DeltaTableBuilder::from_url(url.clone())
        .and_then(|builder| builder.build())
        .map_err(delta(table))?;
    let created = ops
        .create()
        .with_table_name(table.name())
        .with_columns(delta_fields(table))
        .with_partition_columns(table.partition_columns().iter().copied())
        .await;
    match created {
        Ok(_) => Ok(()),
        // Another process created it first.
        Err(_) if has_log(&folder) => Ok(()),
        Err(cause) => Err(delta(table)(cause)),
    }
}

impl Store {
    /// Opens an existing store.
    pub async fn open(root: &Path) -> Result<Self, StoreError> {
        let marker_path = root.join(MARKER);
        let text = match std::fs::read_to_string(&marker_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore {
                    path: root.to_owned(),
                });
            }
            Err(e) => return Err(io(&marker_path)(e)),
        };
        let marker: Marker = serde_json::from_str(&text).map_err(|_| StoreError::NotAStore {
            path: root.to_owned(),
        })?;
        if marker.layout > LAYOUT {
            return Err(StoreError::NewerLayout {
                path: root.to_owned(),
                found: marker.layout,
            });
        }
        let mut tables = HashMap::new();
        for table in Table::ALL {
            if matches!(table, Table::Audit | Table::Alerts) && !has_log(&root.join(table.name())) {
                // Stores made before the audit log or the alerts get them
                // when first opened.
                create_table(root, table).await?;
            }
            let url = table_url(root, table)?;
            let loaded = deltalake::open_table(url).await.map_err(delta(table))?;
            tables.insert(table, loaded);
        }
        Ok(Self {
            root: root.to_owned(),
            tables,
        })
    }

    /// Opens the store at `root`, creating it (and its tables) if the
    /// directory is empty or absent. Creation is idempotent: a store left
    /// half-created by a crash is completed.
    pub async fn open_or_create(root: &Path) -> Result<Self, StoreError> {
        match Self::open(root).await {
            Err(StoreError::NotAStore { .. }) => {}
            other => return other,
        }
        if root.exists() {
            let mut entries = std::fs::read_dir(root).map_err(io(root))?;
            let unknown = entries.any(|e| {
                e.map(|e| {
                    let name = e.file_name();
                    !Table::ALL.iter().any(|t| name == t.name()) && name != LOCK
                })
                .unwrap_or(true)
            });
            if unknown {
                return Err(StoreError::NotEmpty {
                    path: root.to_owned(),
                });
            }
        }
        std::fs::create_dir_all(root).map_err(io(root))?;
        let _lock = lock_file(root)?;
        for table in Table::ALL {
            create_table(root, table).await?;
        }
        let marker = Marker {
            format: "chiso-store".into(),
            layout: LAYOUT,
            created_at: Utc::now(),
        };
        let marker_path = root.join(MARKER);
        let text = serde_json::to_string_pretty(&marker).unwrap_or_default() + "\n";
        // Written last and atomically: a directory with a marker is complete.
        let partial = root.join(format!(".{MARKER}.partial"));
        std::fs::write(&partial, text).map_err(io(&partial))?;
        std::fs::rename(&partial, &marker_path).map_err(io(&marker_path))?;
        Self::open(root).await
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table(&self, table: Table) -> &DeltaTable {
        &self.tables[&table]
    }

    /// The loaded version of a table.
    pub fn version(&self, table: Table) -> i64 {
        self.tables[&table].version().map_or(-1, |v| v as i64)
    }

    /// Loads the latest committed versions of every table.
    pub async fn refresh(&mut self) -> Result<(), StoreError> {
        for (table, loaded) in &mut self.tables {
            loaded
                .update_incremental(None)
                .await
                .map_err(delta(*table))?;
        }
        Ok(())
    }

    /// Loads the latest committed version of one table.
    pub async fn refresh_table(&mut self, table: Table) -> Result<(), StoreError> {
        let loaded = self.tables.get_mut(&table).expect("every table is loaded");
        loaded.update_incremental(None).await.map_err(delta(table))
    }

    /// Waits for, then holds, the exclusive right to write. The wait runs
    /// on a blocking thread, so other tasks of the caller keep running.
    pub async fn lock_for_writing(&self) -> Result<WriteLock, StoreError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || lock_file(&root))
            .await
            .map_err(|e| StoreError::Query(format!("waiting for the writer lock: {e}")))?
    }

    /// A streaming writer of `table`: batches go to Parquet files as they
    /// come; nothing is visible until [`Store::commit`].
    pub fn writer(&self, table: Table) -> Result<TableWriter, StoreError> {
        // LZ4 rather than zstd: it compresses several times faster, which
        // an ingest pays on every event, and decompresses faster, which
        // every query over the store pays; the files are a little larger.
        //
        // Row groups of 128 K rows, not the Parquet writer's 1 M: a row group
        // is held in memory until it closes, one per month a file touches,
        // so with 1 M rows an ingest held about all it wrote until the commit.
        let properties = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            // Pages of 8 K rows, not 20 K: the page index skips pages, so
            // the finer they are, the fewer rows a filter on the clustering
            // column decodes in vain at the edges of its values.
            .set_data_page_row_count_limit(8 * 1024);
        let properties = table
            .unique_columns()
            .iter()
            .fold(properties, |properties, column| {
                properties.set_column_dictionary_enabled(ColumnPath::from(*column), false)
            })
            .build();
        let inner = RecordBatchWriter::for_table(self.table(table))
            .map_err(delta(table))?
            .with_writer_properties(properties)
            .with_target_file_size(256 << 20);
        Ok(TableWriter {
            table,
            inner,
            rows: 0,
            pending: Vec::new(),
            pending_rows: 0,
        })
    }

    /// Commits everything a writer holds as one new version of its table,
    /// with `metadata` in the commit's info; returns the new version, or
    /// `None` (and no commit) when the writer holds no rows.
    pub async fn commit(
        &mut self,
        writer: TableWriter,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<i64>, StoreError> {
        if writer.rows == 0 {
            return Ok(None);
        }
        let mut writer = writer;
        writer.write_pending().await?;
        let table = writer.table;
        let mut inner = writer
            .inner
            .with_commit_properties(CommitProperties::default().with_metadata(metadata));
        let target = self.tables.get_mut(&table).expect("every table is loaded");
        let version = inner.flush_and_commit(target).await.map_err(delta(table))?;
        Ok(Some(version as i64))
    }

    /// Appends batches to `table` in one commit (no commit when empty).
    pub async fn append(
        &mut self,
        table: Table,
        batches: Vec<RecordBatch>,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<i64>, StoreError> {
        let mut writer = self.writer(table)?;
        for batch in batches {
            writer.write(batch).await?;
        }
        self.commit(writer, metadata).await
    }

    /// A DataFusion session ([`chiso_exec::session`]) with `events`,
    /// `quarantine` and `ingests` registered at their loaded versions.
    pub async fn session(&self) -> Result<SessionContext, StoreError> {
        let context = chiso_exec::session().map_err(query_error)?;
        for table in Table::ALL {
            let loaded = self.table(table);
            loaded
                .update_datafusion_session(&context.state())
                .map_err(delta(table))?;
            let url = table_url(&self.root, table)?;
            let provider: Arc<dyn TableProvider> = match table {
                Table::Audit | Table::Alerts => Arc::new(
                    crate::snapshot_table::LatestTable::try_new(loaded, &url)
                        .await
                        .map_err(query_error)?,
                ),
                _ => crate::snapshot_table::provider(loaded, &url, table.dictionary_columns())
                    .await
                    .map_err(query_error)?,
            };
            context
                .register_table(table.name(), provider)
                .map_err(query_error)?;
        }
        Ok(context)
    }

    /// Plans a query over the store.
    async fn frame(&self, sql: &str) -> Result<DataFrame, StoreError> {
        self.session().await?.sql(sql).await.map_err(query_error)
    }

    /// Runs a query over the store and collects the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, StoreError> {
        self.frame(sql).await?.collect().await.map_err(query_error)
    }

    /// Runs a query over the store and streams the result batch by batch.
    pub async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream, StoreError> {
        self.frame(sql)
            .await?
            .execute_stream()
            .await
            .map_err(query_error)
    }

    /// Writes the full result of a query to one CSV file, streaming, safe
    /// to open in a spreadsheet ([`crate::csv_out`]).
    pub async fn export_csv(&self, sql: &str, path: &Path) -> Result<(), StoreError> {
        let mut stream = self.stream(sql).await?;
        let file = File::create(path).map_err(io(path))?;
        let mut out = crate::csv_out::CsvOut::new(std::io::BufWriter::new(file), true);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(query_error)?;
            out.write(&batch)
                .map_err(|e| io(path)(std::io::Error::other(e)))?;
        }
        out.into_inner()
            .into_inner()
            .map_err(|e| io(path)(e.into_error()))?
            .sync_all()
            .map_err(io(path))?;
        Ok(())
    }

    /// Replaces the store's procedure catalogue ([`crate::PROCEDURE_CATALOGUE`])
    /// with the file `source`, after reading it
    /// ([`crate::catalogue::read_procedures`]). Returns the number of
    /// procedures.
    pub fn set_procedure_catalogue(&self, source: &Path) -> Result<usize, StoreError> {
        let bytes = std::fs::read(source).map_err(io(source))?;
        self.set_procedure_catalogue_bytes(source, &bytes)
    }

    /// The same, for a catalogue in memory (`name` names it in errors).
    pub fn set_procedure_catalogue_bytes(
        &self,
        name: &Path,
        bytes: &[u8],
    ) -> Result<usize, StoreError> {
        let procedures = crate::catalogue::read_procedures(name, bytes)?;
        let target = self.root.join(crate::PROCEDURE_CATALOGUE);
        let staging = target.with_extension("csv.tmp");
        if let Some(folder) = target.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        std::fs::write(&staging, bytes).map_err(io(&staging))?;
        std::fs::rename(&staging, &target).map_err(io(&target))?;
        Ok(procedures.len())
    }

    /// The procedures of the store's catalogue; none when it has none.
    pub fn procedures(&self) -> Result<Vec<crate::catalogue::Procedure>, StoreError> {
        let path = self.root.join(crate::PROCEDURE_CATALOGUE);
        match std::fs::read(&path) {
            Ok(bytes) => crate::catalogue::read_procedures(&path, &bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(cause) => Err(StoreError::Io { path, cause }),
        }
    }

    /// Whether the store has a procedure catalogue.
    pub fn has_procedure_catalogue(&self) -> bool {
        self.root.join(crate::PROCEDURE_CATALOGUE).is_file()
    }

    /// The folder of the dossier tables derived from the loaded events
    /// version by a derivation whose SQL has the fingerprint `fingerprint`:
    /// `STORE/derived/events-vN-F/`. Its parent holds those of other
    /// versions, and the deriver's staging folders.
    pub fn derived_folder(&self, fingerprint: &str) -> PathBuf {
        self.root.join("derived").join(format!(
            "events-v{}-{fingerprint}",
            self.version(Table::Events)
        ))
    }

    /// The table of only some files of a table's loaded version (by the
    /// paths [`Store::file_paths`] names them with), read as the session's
    /// table is; `None` for a table another Delta writer gave reader
    /// features. An update of the derived tables reads the events of the
    /// files it has not seen, and those of its base, this way.
    pub async fn files_table(
        &self,
        table: Table,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<Arc<dyn TableProvider>>, StoreError> {
        let url = table_url(&self.root, table)?;
        let loaded = self.table(table);
        let schema = loaded.table_provider().await.map_err(query_error)?.schema();
        crate::snapshot_table::files_provider(
            loaded,
            &schema,
            &url,
            table.dictionary_columns(),
            keep,
        )
        .map_err(query_error)
    }

    /// The files of a table's loaded version, with their row counts and sizes.
    fn files(&self, table: Table) -> Result<RecordBatch, StoreError> {
        self.table(table)
            .snapshot()
            .and_then(|s| s.add_actions_table(true))
            .map_err(delta(table))
    }

    /// The files of a table's loaded version: each one's path as the log
    /// names it (relative to the table's folder, stable when the store
    /// moves), with its location on disk.
    pub fn file_paths(&self, table: Table) -> Result<BTreeMap<String, PathBuf>, StoreError> {
        let files = self.files(table)?;
        let Some(paths) = column_as::<StringArray>(&files, "path", &ArrowType::Utf8) else {
            return Ok(BTreeMap::new());
        };
        let mut folder = table_url(&self.root, table)?;
        if !folder.path().ends_with('/') {
            folder.set_path(&format!("{}/", folder.path()));
        }
        paths
            .iter()
            .flatten()
            .map(|path| {
                let location = folder
                    .join(path)
                    .ok()
                    .and_then(|url| url.to_file_path().ok())
                    .ok_or_else(|| {
                        StoreError::Query(format!(
                            "the add action `{path}` of {} is not a file of the table",
                            table.name()
                        ))
                    })?;
                Ok((path.to_owned(), location))
            })
            .collect()
    }

    /// Rows of a table's loaded version, from the commit statistics (no scan).
    pub fn rows(&self, table: Table) -> Result<u64, StoreError> {
        Ok(sum_column(&self.files(table)?, "num_records"))
    }

    /// Versions, sizes and row counts of the tables, and the last ingests.
    pub async fn info(&self, last_ingests: usize) -> Result<StoreInfo, StoreError> {
        let mut tables = Vec::new();
        for table in Table::ALL {
            let files = self.files(table)?;
            tables.push(TableInfo {
                name: table.name(),
                version: self.version(table),
                files: files.num_rows() as u64,
                rows: sum_column(&files, "num_records"),
                bytes: sum_column(&files, "size_bytes"),
            });
        }
        let sql = format!("SELECT * FROM ingests ORDER BY started_at DESC LIMIT {last_ingests}");
        let last_ingests = ingest_records(&self.query(&sql).await?);
        Ok(StoreInfo {
            root: self.root.clone(),
            tables,
            last_ingests,
        })
    }

    /// Deletes data files no version newer than `retention` refers to,
    /// including files of ingests that crashed before committing.
    pub async fn vacuum(
        &mut self,
        retention: Duration,
        dry_run: bool,
    ) -> Result<VacuumReport, StoreError> {
        let _lock = self.lock_for_writing().await?;
        self.refresh().await?;
        let mut files_deleted = Vec::new();
        for table in Table::ALL {
            let loaded = self.tables[&table].clone();
            let (vacuumed, metrics) = loaded
                .vacuum()
                .with_retention_period(
                    chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX),
                )
                .with_enforce_retention_duration(false)
                .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
                .with_dry_run(dry_run)
                .await
                .map_err(delta(table))?;
            files_deleted.extend(
                metrics
                    .files_deleted
                    .into_iter()
                    .map(|f| format!("{}/{f}", table.name())),
            );
            self.tables.insert(table, vacuumed);
        }
        Ok(VacuumReport {
            dry_run,
            files_deleted,
        })
    }

    /// Rewrites the small files of each events partition into large ones.
    /// Readers keep reading: the old files stay until a vacuum.
    pub async fn compact(&mut self) -> Result<Vec<CompactReport>, StoreError> {
        let _lock = self.lock_for_writing().await?;
        self.refresh().await?;
        let mut reports = Vec::new();
        for table in Table::ALL {
            let loaded = self.tables[&table].clone();
            let (compacted, metrics) = loaded
                .optimize()
                .with_target_size(std::num::NonZeroU64::new(256 << 20).expect("non-zero"))
                .await
                .map_err(delta(table))?;
            reports.push(CompactReport {
                table: table.name(),
                files_removed: metrics.num_files_removed,
                files_added: metrics.num_files_added,
                version: compacted.version().map_or(-1, |v| v as i64),
            });
            self.tables.insert(table, compacted);
        }
        Ok(reports)
    }
}

fn lock_file(root: &Path) -> Result<WriteLock, StoreError> {
    let path = root.join(LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    file.lock().map_err(io(&path))?;
    Ok(WriteLock { _file: file })
}

/// A column of a query result as the plain Arrow type the caller expects,
/// whatever physical type the scan chose (string views, dictionaries…).
pub fn column_as<A: Array + Clone + 'static>(
    batch: &RecordBatch,
    name: &str,
    data_type: &ArrowType,
) -> Option<A> {
    let column = batch.column_by_name(name)?;
    let cast = arrow::compute::cast(column, data_type).ok()?;
    cast.as_any().downcast_ref::<A>().cloned()
}

/// The `ingests` rows of query results with the `ingests` schema.
pub(crate) fn ingest_records(batches: &[RecordBatch]) -> Vec<IngestRecord> {
    let mut records = Vec::new();
    let timestamp = chiso_core::event::timestamp_type();
    for batch in batches {
        let text = |name: &str| column_as::<StringArray>(batch, name, &ArrowType::Utf8);
        let int = |name: &str| column_as::<Int64Array>(batch, name, &ArrowType::Int64);
        let time = |name: &str| column_as::<TimestampMicrosecondArray>(batch, name, &timestamp);
        let (Some(id), Some(source), Some(format)) = (
            text("ingest_id"),
            text("source_file"),
            text("source_format"),
        ) else {
            continue;
        };
        let ints: Vec<Option<Int64Array>> = [
            "source_bytes",
            "rows_read",
            "events_read",
            "accepted",
            "duplicate",
            "conflict",
            "rejected",
            "orphans",
            "events_version",
        ]
        .iter()
        .map(|n| int(n))
        .collect();
        let (Some(started), Some(finished)) = (time("started_at"), time("finished_at")) else {
            continue;
        };
        let at = |a: &TimestampMicrosecondArray, i: usize| {
            DateTime::from_timestamp_micros(a.value(i)).unwrap_or_default()
        };
        let get = |k: usize, i: usize| ints[k].as_ref().map_or(0, |a| a.value(i));
        for i in 0..batch.num_rows() {
            records.push(IngestRecord {
                ingest_id: id.value(i).to_owned(),
                source_file: source.value(i).to_owned(),
                source_format: format.value(i).to_owned(),
                source_bytes: get(0, i),
                started_at: at(&started, i),
                finished_at: at(&finished, i),
                rows_read: get(1, i),
                events_read: get(2, i),
                accepted: get(3, i),
                duplicate: get(4, i),
                conflict: get(5, i),
                rejected: get(6, i),
                orphans: get(7, i),
                events_version: ints[8]
                    .as_ref()
                    .filter(|a| !a.is_null(i))
                    .map(|a| a.value(i)),
            });
        }
    }
    records
}

impl IngestRecord {
    /// The record as a batch of the `ingests` table.
    pub fn to_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let text = |v: &str| -> ArrayRef {
            let mut b = StringBuilder::new();
            b.append_value(v);
            Arc::new(b.finish())
        };
        let int = |v: Option<i64>| -> ArrayRef {
            let mut b = Int64Builder::new();
            b.append_option(v);
            Arc::new(b.finish())
        };
        let time = |v: DateTime<Utc>| -> ArrayRef {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            b.append_value(v.timestamp_micros());
            Arc::new(b.finish())
        };
        RecordBatch::try_new(
            Table::Ingests.schema(),
            vec![
                text(&self.ingest_id),
                text(&self.source_file),
                text(&self.source_format),
                int(Some(self.source_bytes)),
                time(self.started_at),
                time(self.finished_at),
                int(Some(self.rows_read)),
                int(Some(self.events_read)),
                int(Some(self.accepted)),
                int(Some(self.duplicate)),
                int(Some(self.conflict)),
                int(Some(self.rejected)),
                int(Some(self.orphans)),
                int(self.events_version),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustering_groups_values_and_keeps_arrival_order_within_one() {
        let kinds = StringArray::from(vec![
            Some("resolved"),
            Some("received"),
            None,
            Some("resolved"),
            Some("received"),
        ]);
        let order = Int64Array::from(vec![0, 1, 2, 3, 4]);
        let batch = RecordBatch::try_from_iter([
            ("kind", Arc::new(kinds) as ArrayRef),
            ("order", Arc::new(order) as ArrayRef),
        ])
        .unwrap();
        let clustered = cluster_by(&batch, "kind").unwrap();
        let kinds: Vec<_> = clustered.column(0).as_string::<i32>().iter().collect();
        let order = clustered
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            kinds,
            [
                None,
                Some("received"),
                Some("received"),
                Some("resolved"),
                Some("resolved")
            ]
        );
        assert_eq!(order.values(), &[2, 1, 4, 0, 3]);
    }

    #[test]
    fn clustering_refuses_a_column_that_is_not_text() {
        let batch =
            RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
                .unwrap();
        assert!(cluster_by(&batch, "n").is_err());
    }
}
