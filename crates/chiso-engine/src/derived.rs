//! The derived tables `dossier_facts` and `dossier_history`, materialised as
//! Parquet once per version of the events table.
//!
//! Deriving dossiers from events is the expensive part of every KPI: it
//! groups the whole event log by dossier. Its T-independent part is computed
//! the first time a version of the events is queried, in three steps
//! (`queries/README.md`): `dossier_milestones.sql` (kept in memory),
//! `dossier_history.sql` and `dossier_facts.sql` (the milestones with each
//! dossier's history after its last event), and kept under
//! `STORE/derived/events-vN-F/`, so every later query of that version (in
//! this process or another) reads ~one row per dossier instead of ~seven
//! events. The version N in the folder name is what keeps the tables in
//! agreement with the events: a new ingest makes a new version, which is
//! derived afresh. F, a fingerprint of the SQL, does the same for a new
//! release whose definitions changed.
//!
//! A big city is derived in chunks of dossiers (`dossier_chunk`, a stable
//! hash of the id): one pass over the log splits the events by chunk into
//! temporary files, then each step runs once per chunk,
//! with `events` bound to that chunk's events, and writes one Parquet file
//! per chunk and table. Grouping 100 million events by dossier in one query needs
//! memory in proportion to the whole log; a chunk needs memory in proportion to its share, at the price of
//! writing the events once more. A dossier's events all fall in one chunk,
//! so every derived row is the same as in one query.
//!
//! Folders are built under a temporary name and renamed into place, so a
//! crash or a concurrent reader never sees half a table; two processes that
//! build the same version at once both succeed and one rename wins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chiso_exec::datafusion::catalog::TableProvider;
use chiso_exec::datafusion::common::config::TableParquetOptions;
use chiso_exec::datafusion::dataframe::DataFrameWriteOptions;
use chiso_exec::datafusion::datasource::empty::EmptyTable;
use chiso_exec::datafusion::prelude::{ParquetReadOptions, SessionContext};
use chiso_store::{Store, Table};

use crate::{EngineError, queries};

/// The steps of the derivation, in dependency order: the table each makes,
/// the SQL that makes it, and whether it is stored (or only kept in memory
/// for the later steps of the same chunk).
const STEPS: [(&str, &str, Kept); 3] = [
    (
        "dossier_milestones",
        queries::DOSSIER_MILESTONES,
        Kept::InMemory,
    ),
    ("dossier_history", queries::DOSSIER_HISTORY, Kept::Stored),
    ("dossier_facts", queries::DOSSIER_FACTS, Kept::Stored),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    InMemory,
    Stored,
}

/// The derived tables that queries read.
fn stored_tables() -> impl Iterator<Item = &'static str> {
    STEPS
        .iter()
        .filter(|(_, _, kept)| *kept == Kept::Stored)
        .map(|(table, _, _)| *table)
}

/// A short fingerprint of the derivation's SQL, part of the folder's name:
/// tables derived by other definitions are never read, but derived afresh.
fn definitions_fingerprint() -> String {
    let sql = STEPS.iter().map(|(_, sql, _)| *sql);
    fingerprint(sql.chain([queries::HISTORY_AT]))
}

/// FNV-1a of the texts, its upper 32 bits in hex: stable across builds and
/// releases, unlike std's hasher.
fn fingerprint<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in texts.into_iter().flat_map(str::bytes) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}

/// Row groups small enough that a period's query skips most of a big city.
const ROW_GROUP_ROWS: usize = 64 * 1024;
const PAGE_ROWS: usize = 8 * 1024;

/// Events per chunk of the derivation: a chunk's memory, not the log's,
/// bounds the derivation's (peaks in benches/README.md, "Why these
/// settings").
pub const EVENTS_PER_CHUNK: u64 = 12_000_000;

/// The folder for the derived tables of the store's loaded events version.
fn folder(store: &Store) -> PathBuf {
    store.derived_folder(&definitions_fingerprint())
}

/// A table's folder: one Parquet file per chunk.
fn table_folder(folder: &Path, table: &str) -> PathBuf {
    folder.join(table)
}

fn chunk_file(folder: &Path, table: &str, chunk: u64) -> PathBuf {
    table_folder(folder, table).join(format!("chunk-{chunk:04}.parquet"))
}

/// Registers the derived tables in `context`, building them first if this
/// version of the events has not been derived yet. `events_per_chunk`
/// overrides [`EVENTS_PER_CHUNK`]. Returns whether it built.
pub async fn register(
    store: &Store,
    context: &SessionContext,
    events_per_chunk: Option<u64>,
) -> Result<bool, EngineError> {
    let target = folder(store);
    let complete = stored_tables().all(|table| table_folder(&target, table).is_dir());
    if target.is_dir() && !complete {
        // Derived by an earlier release, one file per table: derive afresh.
        std::fs::remove_dir_all(&target).map_err(EngineError::io(&target))?;
    }
    let built = if complete {
        false
    } else {
        let events = store.rows(Table::Events)?;
        let per_chunk = events_per_chunk.unwrap_or(EVENTS_PER_CHUNK).max(1);
        build(context, &target, events.div_ceil(per_chunk).max(1)).await?;
        true
    };
    for table in stored_tables() {
        register_path(context, table, &table_folder(&target, table)).await?;
    }
    if built {
        remove_old_versions(&target);
    }
    Ok(built)
}

/// Registers a Parquet file, or a folder of them, as `table`.
async fn register_path(
    context: &SessionContext,
    table: &str,
    path: &Path,
) -> Result<(), EngineError> {
    context
        .deregister_table(table)
        .map_err(EngineError::query)?;
    let mut location = path.to_string_lossy().into_owned();
    if path.is_dir() {
        // A trailing separator is how DataFusion tells a folder from a file.
        location.push(std::path::MAIN_SEPARATOR);
    }
    context
        .register_parquet(table, &location, ParquetReadOptions::default())
        .await
        .map_err(EngineError::query)
}

async fn build(context: &SessionContext, target: &Path, chunks: u64) -> Result<(), EngineError> {
    let parent = target.parent().unwrap_or(target);
    std::fs::create_dir_all(parent).map_err(EngineError::io(parent))?;
    let staging = parent.join(format!(
        ".building-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&staging).map_err(EngineError::io(&staging))?;
    let result = write_tables(context, &staging, chunks).await;
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    if let Err(error) = std::fs::rename(&staging, target) {
        let _ = std::fs::remove_dir_all(&staging);
        // Another process derived the same version first: use its folder.
        if !target.is_dir() {
            return Err(EngineError::io(target)(error));
        }
    }
    Ok(())
}

async fn write_tables(
    context: &SessionContext,
    staging: &Path,
    chunks: u64,
) -> Result<(), EngineError> {
    for table in stored_tables() {
        let path = table_folder(staging, table);
        std::fs::create_dir_all(&path).map_err(EngineError::io(&path))?;
    }
    if chunks == 1 {
        return write_chunk(context, staging, 1, 0).await;
    }
    // The events split by chunk in one pass; each chunk is then derived from
    // its own files, with `events` meaning that chunk's events.
    let split = staging.join(SPLIT_EVENTS);
    split_events(context, &split, chunks).await?;
    let events = context
        .table_provider(EVENTS)
        .await
        .map_err(EngineError::query)?;
    let mut result = Ok(());
    for chunk in 0..chunks {
        result = bind_events(context, &split.join(format!("chunk={chunk}")), &events).await;
        if result.is_ok() {
            result = write_chunk(context, staging, chunks, chunk).await;
        }
        if result.is_err() {
            break;
        }
    }
    let restored = context
        .deregister_table(EVENTS)
        .and_then(|_| context.register_table(EVENTS, events))
        .map_err(EngineError::query);
    let _ = std::fs::remove_dir_all(&split);
    result.and(restored.map(drop))
}

/// The folder of the events split by chunk, inside the staging folder (and
/// removed before it is renamed into place).
const SPLIT_EVENTS: &str = ".events-by-chunk";
const EVENTS: &str = "events";

/// Writes the events' contract columns to `split/chunk=N/`, one folder per
/// chunk of dossiers. Scanning the whole log once per chunk instead (a
/// `dossier_chunk` filter in the derivation) decompressed every column of
/// every file once per chunk and per derived table: most of the time of a
/// scale-10 city.
async fn split_events(
    context: &SessionContext,
    split: &Path,
    chunks: u64,
) -> Result<(), EngineError> {
    let columns: Vec<String> = chiso_core::event::event_schema()
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    let sql = format!(
        "SELECT {}, dossier_chunk(dossier_id, {chunks}) AS chunk FROM {EVENTS}",
        columns.join(", ")
    );
    let mut options = TableParquetOptions::default();
    // Read once per chunk, then deleted: fast to write and read over small.
    options.global.compression = Some("lz4_raw".into());
    let location = format!("{}{}", split.to_string_lossy(), std::path::MAIN_SEPARATOR);
    let in_split = |error| EngineError::Query(format!("splitting the events by chunk: {error}"));
    context
        .sql(&sql)
        .await
        .map_err(in_split)?
        .write_parquet(
            &location,
            DataFrameWriteOptions::new().with_partition_by(vec!["chunk".into()]),
            Some(options),
        )
        .await
        .map_err(in_split)?;
    Ok(())
}

/// Registers the events of one chunk as `events`; a chunk with no events
/// (no folder) is an empty table of the same columns.
async fn bind_events(
    context: &SessionContext,
    folder: &Path,
    events: &Arc<dyn TableProvider>,
) -> Result<(), EngineError> {
    if folder.is_dir() {
        return register_path(context, EVENTS, folder).await;
    }
    let arrow = |error: arrow::error::ArrowError| EngineError::Query(error.to_string());
    let all = events.schema();
    let columns = chiso_core::event::event_schema()
        .fields()
        .iter()
        .map(|f| all.index_of(f.name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow)?;
    let schema = Arc::new(all.project(&columns).map_err(arrow)?);
    context
        .deregister_table(EVENTS)
        .and_then(|_| context.register_table(EVENTS, Arc::new(EmptyTable::new(schema))))
        .map(drop)
        .map_err(EngineError::query)
}

/// Derives one chunk's rows of every derived table from `events`.
async fn write_chunk(
    context: &SessionContext,
    staging: &Path,
    chunks: u64,
    chunk: u64,
) -> Result<(), EngineError> {
    let mut options = TableParquetOptions::default();
    options.global.max_row_group_size = ROW_GROUP_ROWS;
    // Pages of 8 K rows: the page index then skips most of a row group that
    // a period only touches at one end.
    options.global.data_page_row_count_limit = PAGE_ROWS;
    // A cache read by every query: fast decoding matters more than size.
    options.global.compression = Some("lz4_raw".into());
    let parameters = [
        ("chunks", chunks.to_string()),
        ("chunk", chunk.to_string()),
        ("history_at", queries::history_at(&queries::end_of_time())?),
    ];
    for (table, sql, kept) in STEPS {
        let in_query = |error| EngineError::Query(format!("queries/{table}.sql: {error}"));
        let frame = context
            .sql(&queries::render(sql, &parameters)?)
            .await
            .map_err(in_query)?;
        // Later steps build on the same chunk of earlier ones.
        match kept {
            Kept::InMemory => {
                let rows = frame.cache().await.map_err(in_query)?;
                context
                    .deregister_table(table)
                    .and_then(|_| context.register_table(table, rows.into_view()))
                    .map_err(EngineError::query)?;
            }
            Kept::Stored => {
                let path = chunk_file(staging, table, chunk);
                frame
                    .write_parquet(
                        path.to_string_lossy().as_ref(),
                        DataFrameWriteOptions::new().with_single_file_output(true),
                        Some(options.clone()),
                    )
                    .await
                    .map_err(in_query)?;
                register_path(context, table, &path).await?;
            }
        }
    }
    for (table, _, kept) in STEPS {
        if kept == Kept::InMemory {
            context
                .deregister_table(table)
                .map_err(EngineError::query)?;
        }
    }
    Ok(())
}

/// Keeps the folder just built and the one before it (a process that opened
/// the previous version may still be reading it); removes the rest.
fn remove_old_versions(current: &Path) {
    let Some(parent) = current.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut others: Vec<(i64, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != current)
        .filter_map(|p| events_version(p.file_name()?.to_str()?).map(|v| (v, p)))
        .collect();
    others.sort();
    others.pop();
    for (_, path) in others {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// The events version a derived folder was built from: `events-vN-F`, or
/// `events-vN` from releases before the fingerprint.
fn events_version(folder_name: &str) -> Option<i64> {
    folder_name
        .strip_prefix("events-v")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_folders_are_told_apart_by_version_and_definitions() {
        // FNV-1a's published offset basis and the hash of "a".
        assert_eq!(fingerprint([]), "cbf29ce4");
        assert_eq!(fingerprint(["a"]), "af63dc4c");
        assert_ne!(fingerprint(["SELECT 1"]), fingerprint(["SELECT 2"]));
        let folder = format!("events-v12-{}", definitions_fingerprint());
        assert_eq!(events_version(&folder), Some(12));
        assert_eq!(events_version("events-v7"), Some(7));
        assert_eq!(events_version(".building-1-2"), None);
    }
}
