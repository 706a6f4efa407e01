//! # chiso-report: what leaves the building
//!
//! The review meeting runs on paper and a projector, and the city reports up
//! the chain in spreadsheets. This crate writes those documents from the
//! plain tables and charts of `chiso-dashboard`, never from SQL of its own:
//!
//! * [`xlsx`]: workbooks with a sheet per table, typed cells and number
//!   formats, streamed in constant memory (also the XLSX download of any
//!   ad-hoc result).
//!
//! Architecture invariant: reports know tables, values and charts, not
//! DataFusion or HTTP. What a figure means is decided in `queries/`; what a
//! pack holds, in `dashboards/`.

pub mod xlsx;

/// Why a document could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing the spreadsheet: {0}")]
    Xlsx(String),
    #[error("{0}")]
    Data(String),
}
