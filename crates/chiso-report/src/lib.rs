//! # chiso-report: what leaves the building
//!
//! The review meeting runs on paper and a projector, and the city reports up
//! the chain in spreadsheets. This crate writes those documents, always from
//! the panels of `dashboards/` and never from SQL of its own, so that paper,
//! spreadsheet and screen show the same figures:
//!
//! * [`document`]: a [`Document`] is a title, the period, the data it was
//!   made from ([`Freshness`]: events version, last ingest), and sections
//!   (a panel with its table). A report pack (`dashboards/packs/*.toml`)
//!   becomes one with [`pack_document`]; the server makes one of a page from
//!   its cached tables.
//! * [`pdf`]: A4 landscape PDF, typeset by Typst as a library with the
//!   bundled font, offline.
//! * [`xlsx`]: workbooks with a sheet per table, typed cells and number
//!   formats, streamed in constant memory (also the XLSX of any ad-hoc
//!   result).
//! * [`html`]: one self-contained HTML file, charts inline.
//! * [`archive`]: the scheduled packs of a week, written once each.
//! * [`encode`]: any query's result as CSV, JSON, Arrow, Parquet or XLSX,
//!   batch by batch (the CLI's files and the server's downloads).
//!
//! Architecture invariant: reports know tables, values and charts (from
//! `chiso-dashboard` and `chiso-chart`), not DataFusion or HTTP. What a
//! figure means is decided in `queries/`; what a pack holds, in
//! `dashboards/packs/`.

pub mod archive;
pub mod document;
pub mod encode;
pub mod html;
pub mod pdf;
pub mod xlsx;

pub use document::{Document, Freshness, Outline, Section, Tables, pack_document};

/// Why a document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// What was asked for is not a thing (no such ward, a pack without one).
    #[error("{0}")]
    Request(String),
    #[error("writing the spreadsheet: {0}")]
    Xlsx(String),
    #[error("typesetting the PDF: {0}")]
    Pdf(String),
    #[error("{0}")]
    Data(String),
    #[error("{}: {cause}", .path.display())]
    Io {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
}

/// The formats a document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFormat {
    Pdf,
    Xlsx,
    Html,
}

impl DocumentFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pdf" => Some(Self::Pdf),
            "xlsx" => Some(Self::Xlsx),
            "html" => Some(Self::Html),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Xlsx => "xlsx",
            Self::Html => "html",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Html => "text/html; charset=utf-8",
        }
    }

    /// `document` in this format.
    pub fn write(self, document: &Document) -> Result<Vec<u8>, ReportError> {
        match self {
            Self::Pdf => pdf::pdf(document),
            Self::Xlsx => xlsx::workbook(document),
            Self::Html => Ok(html::html(document)?.into_bytes()),
        }
    }
}
