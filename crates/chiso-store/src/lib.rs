//! # chiso-store: the durable store
//!
//! A store is one directory holding four Delta Lake tables, written with
//! delta-rs and readable by any engine that reads Delta (Spark, DuckDB,
//! Polars, pandas through the `deltalake` package) without chiso:
//!
//! ```text
//! STORE/
//!   chiso-store.json   marker: what this directory is, and its layout version
//!   .writer.lock       held by the one process writing at a time
//!   events/            the event log (partitioned by local month of occurred_at)
//!   quarantine/        every rejected row, with where it came from and why
//!   ingests/           one row per ingest: counts and the events version it made
//!   audit/             who asked a signed-in server for what ([`audit`])
//!   reference/         the procedure catalogue (procedures.csv), optional
//!   derived/           the dossier tables the engine derives per events version
//! ```
//!
//! Every path under a store directory is named here: other crates ask the
//! store for a folder ([`Store::derived_folder`]) or hand it bytes
//! ([`Store::set_procedure_catalogue_bytes`]).
//!
//! Durability and atomicity come from the Delta log: data files become
//! visible only through a commit, and a commit is one atomic file creation.
//! A writer that dies before its commit leaves unreferenced files that
//! readers never see and `vacuum` removes. Writers take an exclusive lock on
//! `.writer.lock` (released by the OS if the process dies), so ingests are
//! serialised and the deduplication index a writer reads stays true until it
//! commits. Readers never lock.
//!
//! Architecture invariant: this crate is the only one that knows the Delta
//! layout; the ingester hands it Arrow batches, the engine asks it for
//! DataFusion tables.

pub mod audit;
pub mod catalogue;
pub mod csv_out;
mod schema;
mod snapshot_table;
mod store;

/// Where a store keeps the procedure and department names it knows (the
/// columns of the sample city's `procedures.csv`); optional.
pub(crate) const PROCEDURE_CATALOGUE: &str = "reference/procedures.csv";

pub use schema::{
    EVENTS_PARTITION, Table, audit_schema, events_schema, ingests_schema, lineage, local_month,
    quarantine_schema,
};
pub use store::{
    CompactReport, IngestRecord, QuarantineRow, Store, StoreError, StoreInfo, TableInfo,
    TableWriter, VacuumReport, WriteLock, column_as,
};
