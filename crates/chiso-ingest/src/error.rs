//! Why an ingest did not happen. Rows that break the contract are not
//! errors: they are quarantined and counted in the report.

use std::path::PathBuf;

use chiso_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file cannot be read as a table at all: nothing was stored.
    #[error("{}: {reason}", .source_name.display())]
    Unreadable {
        source_name: PathBuf,
        reason: String,
    },
    /// Reading failed part-way (for example a truncated gzip stream): the
    /// ingest was abandoned and nothing of the file was stored.
    #[error("{}, line {line}: {reason}; nothing from this file was stored", .source_name.display())]
    ReadFailed {
        source_name: PathBuf,
        line: u64,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("building the events batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("the ingest was interrupted: {0}")]
    Interrupted(String),
}

impl IngestError {
    pub(crate) fn unreadable(source_name: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Unreadable {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }
}
