//! The derived tables `dossier_facts` and `dossier_history`, materialised as
//! Parquet once per version of the events table.
//!
//! Deriving dossiers from events is the expensive part of every KPI: it
//! groups the whole event log by dossier. Its T-independent part is computed
//! by `queries/dossier_facts.sql` and `queries/dossier_history.sql` the first
//! time a version of the events is queried and kept under
//! `STORE/derived/events-vN/`, so every later query of that version (in this
//! process or another) reads ~one row per dossier instead of ~seven events.
//! The version in the folder name is what keeps the tables in agreement with
//! the events: a new ingest makes a new version, which is derived afresh.
//!
//! Folders are built under a temporary name and renamed into place, so a
//! crash or a concurrent reader never sees half a table; two processes that
//! build the same version at once both succeed and one rename wins.

use std::path::{Path, PathBuf};

use chiso_store::datafusion::common::config::TableParquetOptions;
use chiso_store::datafusion::dataframe::DataFrameWriteOptions;
use chiso_store::datafusion::prelude::{ParquetReadOptions, SessionContext};
use chiso_store::{Store, Table};

use crate::{EngineError, queries};

/// The derived tables and the SQL that makes each, in dependency order.
const TABLES: [(&str, &str); 2] = [
    ("dossier_facts", queries::DOSSIER_FACTS),
    ("dossier_history", queries::DOSSIER_HISTORY),
];

/// Row groups small enough that a period's query skips most of a big city.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The folder for the derived tables of the store's loaded events version.
fn folder(store: &Store) -> PathBuf {
    let version = store.version(Table::Events);
    store
        .root()
        .join("derived")
        .join(format!("events-v{version}"))
}

fn table_file(folder: &Path, table: &str) -> PathBuf {
    folder.join(format!("{table}.parquet"))
}

/// Registers the derived tables in `context`, building them first if this
/// version of the events has not been derived yet. Returns whether it built.
pub async fn register(store: &Store, context: &SessionContext) -> Result<bool, EngineError> {
    let target = folder(store);
    let built = if target.is_dir() {
        false
    } else {
        build(context, &target).await?;
        true
    };
    for (table, _) in TABLES {
        register_file(context, table, &table_file(&target, table)).await?;
    }
    if built {
        remove_old_versions(&target);
    }
    Ok(built)
}

async fn register_file(
    context: &SessionContext,
    table: &str,
    path: &Path,
) -> Result<(), EngineError> {
    context
        .deregister_table(table)
        .map_err(EngineError::query)?;
    context
        .register_parquet(
            table,
            path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(EngineError::query)
}

async fn build(context: &SessionContext, target: &Path) -> Result<(), EngineError> {
    let parent = target.parent().unwrap_or(target);
    std::fs::create_dir_all(parent).map_err(EngineError::io(parent))?;
    let staging = parent.join(format!(
        ".building-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&staging).map_err(EngineError::io(&staging))?;
    let result = write_tables(context, &staging).await;
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

async fn write_tables(context: &SessionContext, staging: &Path) -> Result<(), EngineError> {
    let mut options = TableParquetOptions::default();
    options.global.max_row_group_size = ROW_GROUP_ROWS;
    // A cache read by every query: fast decoding matters more than size.
    options.global.compression = Some("lz4_raw".into());
    for (table, sql) in TABLES {
        let path = table_file(staging, table);
        let in_query = |error| EngineError::Query(format!("queries/{table}.sql: {error}"));
        context
            .sql(sql)
            .await
            .map_err(in_query)?
            .write_parquet(
                path.to_string_lossy().as_ref(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                Some(options.clone()),
            )
            .await
            .map_err(in_query)?;
        // Later derived tables build on earlier ones.
        register_file(context, table, &path).await?;
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
    let version = |path: &Path| -> Option<i64> {
        path.file_name()?
            .to_str()?
            .strip_prefix("events-v")?
            .parse()
            .ok()
    };
    let mut others: Vec<(i64, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != current)
        .filter_map(|p| version(&p).map(|v| (v, p)))
        .collect();
    others.sort();
    others.pop();
    for (_, path) in others {
        let _ = std::fs::remove_dir_all(path);
    }
}
