//! Errors of the reference data loaders.

use std::path::PathBuf;

/// A reference file (ward registry, holiday calendar) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}, line {line}: {reason}")]
    Invalid {
        source_name: String,
        line: u64,
        reason: String,
    },
}
