//! The built-in sample city: the committed sample's events and procedure
//! catalogue, compiled into the binary and ingested into a store the first
//! time a command needs one, so a new user sees a living city without
//! generating or importing anything.

use std::path::{Path, PathBuf};

use chiso_store::{Store, Table};

use crate::{IngestError, IngestOptions, Ingester};

/// `sample-data/events.parquet`: the sample city (scale 0.01, 2025).
const EVENTS: &[u8] = include_bytes!("../../../sample-data/events.parquet");
/// `sample-data/procedures.csv`: its procedure and department names.
const PROCEDURES: &[u8] = include_bytes!("../../../sample-data/procedures.csv");

/// Where the sample city's store lives: `$XDG_DATA_HOME/chiso/sample-city`,
/// else `~/.local/share/chiso/sample-city`, else the temporary folder.
pub fn default_location() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    data.join("chiso").join("sample-city")
}

/// Makes sure `path` holds the sample city; returns whether it was created
/// now. Safe to run from several processes at once: ingestion is locked and
/// idempotent.
pub async fn ensure_store(path: &Path) -> Result<bool, IngestError> {
    if let Ok(store) = Store::open(path).await
        && store.version(Table::Events) > 0
        && store.has_procedure_catalogue()
    {
        return Ok(false);
    }
    let mut ingester = Ingester::open(path).await?;
    ingester
        .ingest_bytes(
            Path::new("sample-data/events.parquet"),
            bytes::Bytes::from_static(EVENTS),
            &IngestOptions::default(),
        )
        .await?;
    ingester
        .store()
        .set_procedure_catalogue_bytes(Path::new("sample-data/procedures.csv"), PROCEDURES)?;
    Ok(true)
}
