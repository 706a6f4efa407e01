//! # chiso-ingest: from exported files to the store, losing nothing
//!
//! One code path for every entry point (the CLI today, HTTP later):
//!
//! 1. [`source`] opens a file or a request body, recognises its format from
//!    its content (gzip, Parquet, XLSX, NDJSON, CSV with any common delimiter)
//!    and its layout from its headers (event log, or the dossier list ward
//!    staff export, in Vietnamese or English), and streams rows. A file that
//!    cannot be read as a table is refused whole, with the reason.
//! 2. Each row goes through `chiso_core::contract::parse_event`; rejected rows
//!    go to the quarantine with their line and reason, never silently away.
//! 3. Accepted events are checked against the [`index`] of every `event_id`
//!    in the store: same content → duplicate, other content → conflict
//!    (quarantined), new → written.
//!    An uploader limited to some wards (a ward's officers) passes a
//!    [`ward_gate`] first: events of other wards' dossiers are quarantined
//!    as `ward_not_permitted`.
//! 4. [`Ingester`] streams new events into the events table and commits them
//!    in one Delta commit per file, then the quarantine and the ingest record.
//!
//! Parsing runs on a blocking thread while the async side writes Parquet, so
//! both cores work and memory stays bounded by the batch size (plus the id
//! index, which grows with the store, not the file).

mod batch;
mod dossier_list;
mod error;
mod index;
mod ingester;
mod report;
pub mod sample;
pub mod source;
mod ward_gate;

pub use error::IngestError;
pub use ingester::{IngestOptions, Ingester};
pub use report::{IngestReport, Rejected};
pub use source::{Layout, SourceFormat};
